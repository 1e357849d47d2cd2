/* The flags every agent accepts (README "Running it", the flags table), parsed with getopt_long.
 *
 * options.c holds them as one table (name, letter, argument, parser, range,
 * environment variable, help line), from which the parse, the MQPIPE_*
 * defaults and --help all come. Its connection part (broker, client id,
 * prefix, credentials, TLS) is what the tools (mqpipe-record, -replay,
 * -load) take. An agent or tool may add its own flags through struct
 * mqp_extra_option; both sets are parsed in one pass so usage errors look
 * the same everywhere. */
#ifndef MQPIPE_OPTIONS_H
#define MQPIPE_OPTIONS_H

#include <stdint.h>
#include <stdio.h>
#include "mqpipe/log.h"

#define MQP_EX_USAGE 64     /* sysexits.h EX_USAGE: a bad flag or MQPIPE_* variable */
#define MQP_EX_SOFTWARE 70  /* EX_SOFTWARE: our own failure (a database error, a bug) */
#define MQP_EX_CANTCREAT 73 /* EX_CANTCREAT: the state cannot be created or opened */
#define MQP_EX_TEMPFAIL 75  /* EX_TEMPFAIL: another agent holds the state */
#define MQP_EX_CONFIG 78    /* EX_CONFIG: another process took this client id's session */

/* The number of elements of an array (not a pointer). */
/* The default --max-payload: 1 MiB, far above any payload of README "Topics and payloads". */
#define MQP_MAX_PAYLOAD_DEFAULT 1048576L
/* The default --deadletter-max-bytes (16 MiB) and --deadletter-max-age (7 days). */
#define MQP_DEADLETTER_MAX_BYTES_DEFAULT (16LL * 1024 * 1024)
#define MQP_DEADLETTER_MAX_AGE_MS_DEFAULT (7LL * 86400 * 1000)
#define MQP_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct mqp_options {
	const char *agent;          /* "counter": names the default db and client id */
	char broker[512];
	char client_id[128];
	int has_client_id;          /* -i was given (tools otherwise pick name-pid) */
	char db_path[1024];
	int db_default_var;         /* db_path is the fallback ./var/<name>.db (no -d, no $STATE_DIRECTORY) */
	char prefix[128];           /* "" when none; otherwise topics become prefix/topic */
	char username[128];
	char password[256];         /* read from --password-file */
	int has_username, has_password;
	char cafile[512], cert[512], key[512];
	enum mqp_log_level log_level;
	enum mqp_log_format log_format;
	int metrics_interval_s;
	int sync_full;              /* --sync full: fsync each inbox write */
	long max_payload;           /* --max-payload: longer payloads are dead letters; 0 not given */
	int republish_window_s;     /* --republish-window: acked outputs sent again after a reconnect */
	int64_t deadletter_max_bytes;  /* --deadletter-max-bytes: dead letters kept, oldest dropped */
	int64_t deadletter_max_age_ms; /* --deadletter-max-age: older dead letters are dropped */
	int shards;                 /* --shards: the deployment's shards (README "Scaling out"), 1: none */
	int shard;                  /* --shard: the one this instance owns; -1 when not given */
	int ask_republish_off;      /* --ask-republish off: no republish request at a lost session */
	int max_args;               /* operands allowed after the flags (tools: a file) */
	/* Set before the call, from the agent (struct mqp_agent): many
	 * instances per broker (the default client id names the host, the
	 * default store the client id), and the default --max-payload --help
	 * shows (0: MQP_MAX_PAYLOAD_DEFAULT). */
	int instances_per_host;
	long max_payload_default;
	/* Set before the call, from the agent: it owns one shard (--shard,
	 * --ask-republish apply; with --shards above 1 its default client id
	 * and store name the shard). */
	int sharded;
	/* A tool's "[OPTION]... FILE" and one-line description, set before the
	 * call: only the connection flags are then taken, and --help shows
	 * them, the tool's own and these. */
	const char *tool_synopsis, *tool_about;
	char **args;                /* the operands, when max_args > 0 */
	int n_args;
};

/* An agent-specific flag. `handle` gets the agent's context and the argument
 * (NULL for a flag without one) and returns 0, or a negative value with a
 * one-line message in err to refuse it. */
struct mqp_extra_option {
	const char *name;           /* long name, without the dashes */
	int has_arg;                /* 0 or 1 */
	const char *arg_name;       /* for --help: "N", "FILE" */
	const char *help;
	int (*handle)(void *ctx, const char *arg, char *err, size_t errlen);
	char short_name;            /* a one-letter form (tools: -t, -o), or 0 */
};

/* Outcome of mqp_options_parse. */
enum mqp_parse_result {
	MQP_PARSE_RUN = 0,     /* run the agent */
	MQP_PARSE_EXIT_OK,     /* --help or --version was printed */
	MQP_PARSE_USAGE,       /* a usage error was printed: exit MQP_EX_USAGE */
};

/* Parses argv into *opts (defaults from README "Running it", $MQPIPE_BROKER, $STATE_DIRECTORY).
 * Every MQPIPE_* variable that is set and not empty is checked as its flag
 * would be, whether or not the flag is also given: a bad one is a usage
 * error naming the variable (README "Running it").
 * Operands are a usage error unless opts->max_args, set before the call,
 * allows that many (then they are in opts->args).
 * Help and version go to `out`; a usage error is one line on `err`. */
enum mqp_parse_result mqp_options_parse(struct mqp_options *opts, const char *agent, int argc,
					char **argv, const struct mqp_extra_option *extra,
					size_t n_extra, void *extra_ctx, FILE *out, FILE *err);

/* Checks -b's argument: one broker URI, or several separated by commas
 * (tried in order, README "Scaling out"), each as mqp_options_check_broker.
 * Returns 0, or -1 with a one-line reason in err. */
int mqp_options_check_brokers(const char *what, const char *list, char *err, size_t errlen);

/* Checks a broker URI as -b does: tcp://, ssl://, ws://, wss://, mqtt:// or
 * mqtts://, then a host (a name, an address, or [an IPv6 address]), then
 * optionally :port with port 1..65535, and for ws:// and wss:// a /path.
 * `what` names the source ("--broker", "MQPIPE_BROKER") in the message.
 * Returns 0, or -1 with a one-line reason in err. */
int mqp_options_check_broker(const char *what, const char *uri, char *err, size_t errlen);

/* Writes prefix/topic (or topic when there is no prefix) into buf.
 * Returns 0, or MQP_ERR_INVAL when it does not fit. */
int mqp_options_topic(const struct mqp_options *opts, const char *topic, char *buf, size_t size);

/* Reads a small file an option names (a profile, a rules file) into
 * buf[cap]: *len receives its size. Returns 0, or -1 with "'path': why"
 * in err (unreadable, or larger than cap - 1 bytes). buf is NUL-terminated. */
int mqp_read_option_file(const char *path, char *buf, size_t cap, size_t *len, char *err,
			 size_t errlen);

/* Parses a whole decimal number in [min, max]. Returns 0 or MQP_ERR_INVAL. */
int mqp_parse_long(const char *text, long min, long max, long *out);

/* Parses a decimal number (strtod's syntax) in [min, max]. Returns 0 or MQP_ERR_INVAL. */
int mqp_parse_number(const char *text, double min, double max, double *out);

/* mqp_parse_number for a tool's flag handler: on error err says
 * "'text': a number from MIN to MAX". Returns 0 or -1. */
int mqp_number_arg(const char *arg, double min, double max, double *out, char *err, size_t errlen);

/* Parses a retention-style duration: whole seconds, or a number followed by
 * s, m, h or d, at most ten years. Returns 0 with *ms set, or MQP_ERR_INVAL. */
int mqp_parse_duration(const char *text, int64_t *ms);

/* mqp_parse_duration for an agent's flag handler: on error err says what a
 * duration looks like. Returns 0 or -1. */
int mqp_duration_arg(const char *arg, int64_t *ms, char *err, size_t errlen);

/* mqp_duration_arg for a duration of at least one second (a timeout or an
 * expiry, where 0 would mean at once). Returns 0 or -1 with err set. */
int mqp_duration_arg_1s(const char *arg, int64_t *ms, char *err, size_t errlen);

#endif
