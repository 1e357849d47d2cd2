/* Common flags: see mqpipe/options.h. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/options.h"
#include "mqpipe/shard.h"

/* The largest --deadletter-max-bytes: 1 TiB, or what a long holds where it
 * has 32 bits (1L << 40 would not fit there). */
#if LONG_MAX > 1099511627776
#define OPTIONS__DEADLETTER_MAX 1099511627776L
#else
#define OPTIONS__DEADLETTER_MAX LONG_MAX
#endif

int mqp_parse_duration(const char *text, int64_t *ms)
{
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	long long unit = 1;
	if (end != text && *end && !end[1]) {
		unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
		end++;
	}
	if (end == text || *end || errno || v < 0 || unit == 0 || v > 3650LL * 86400 / unit)
		return MQP_ERR_INVAL;
	*ms = v * unit * 1000;
	return MQP_OK;
}

int mqp_duration_arg(const char *arg, int64_t *ms, char *err, size_t errlen)
{
	if (mqp_parse_duration(arg, ms) == MQP_OK)
		return 0;
	snprintf(err, errlen, "'%s': a duration like 3600, 90m, 24h or 7d", arg);
	return -1;
}

int mqp_duration_arg_1s(const char *arg, int64_t *ms, char *err, size_t errlen)
{
	int64_t v;
	if (mqp_duration_arg(arg, &v, err, errlen))
		return -1;
	if (v < 1000) {
		snprintf(err, errlen, "'%s': at least 1 second", arg);
		return -1;
	}
	*ms = v;
	return 0;
}

int mqp_parse_long(const char *text, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return MQP_ERR_INVAL;
	*out = v;
	return MQP_OK;
}

int mqp_parse_number(const char *text, double min, double max, double *out)
{
	char *end;
	double v = strtod(text, &end);
	if (end == text || *end || !(v >= min && v <= max)) /* NaN is out of every range */
		return MQP_ERR_INVAL;
	*out = v;
	return MQP_OK;
}

int mqp_number_arg(const char *arg, double min, double max, double *out, char *err, size_t errlen)
{
	if (mqp_parse_number(arg, min, max, out) == MQP_OK)
		return 0;
	snprintf(err, errlen, "'%s': a number from %g to %g", arg, min, max);
	return -1;
}

/* Copies src into dst[size]; returns MQP_ERR_INVAL when it does not fit. */
static int options__copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (n >= size)
		return MQP_ERR_INVAL;
	memcpy(dst, src, n + 1);
	return MQP_OK;
}

/* One parse in progress: what the row parsers read and write. */
struct options__ctx {
	struct mqp_options *opts;
	const char *agent;
	const struct mqp_extra_option *extra;
	size_t n_extra;
	void *extra_ctx;
	FILE *out;
	int tool;     /* opts->tool_synopsis: only the connection rows apply */
	int db_given; /* -d was given (a worker's default store follows its id otherwise) */
	char msg[512];
};

struct options__row;

/* A row's parser: `what` names the source ("--broker", or "MQPIPE_BROKER"
 * for a row's variable) in the message, arg is the argument (NULL for a
 * row without one). Returns 0; -1 with a one-line reason in c->msg; or 1
 * when it printed what was asked (--help, --version) and the program ends. */
typedef int options__parse_fn(struct options__ctx *c, const struct options__row *r,
			      const char *what, const char *arg);

/* One common flag (README "Running it", the flags table). */
struct options__row {
	const char *name;     /* the long name, without the dashes */
	char letter;          /* its one-letter form, or 0 */
	const char *arg;      /* the argument's name in --help; NULL: the flag takes none */
	unsigned scope;       /* OPTIONS__CONN, OPTIONS__LAST */
	options__parse_fn *parse;
	size_t field, size;   /* offsetof and sizeof the struct mqp_options member it sets */
	long min, max;        /* a number's range */
	const char *unit;     /* a number's unit in the message: "bytes", "whole seconds" */
	const char *const *words; /* an enumeration's words, NULL-terminated; the value is the index */
	const char *env;      /* the variable that sets it for every agent of a host, or NULL */
	const char *label;    /* --help's left column, when not "--name ARG" */
	const char *help;     /* --help's text ("" when another row's line covers it; tokens below) */
	const char *tool_help; /* the tools' text, when it differs */
};

/* Scope: OPTIONS__CONN rows are the connection part, which the tools
 * (mqpipe-record, -replay, -load) take too; OPTIONS__LAST rows are listed
 * after the agent's or tool's own flags. */
#define OPTIONS__CONN 1u
#define OPTIONS__LAST 2u
#define OPTIONS__SHARDED 4u /* only an agent that owns a shard takes it */
/* A continuation line of --help, under the text column. */
#define OPTIONS__MORE "\n                            "
#define OPTIONS__FIELD(m) offsetof(struct mqp_options, m), sizeof(((struct mqp_options *)0)->m)

/* Stores v into the row's field, at the field's own width (int, long or int64_t). */
static void options__store(struct options__ctx *c, const struct options__row *r, int64_t v)
{
	char *dst = (char *)c->opts + r->field;
	if (r->size == sizeof(int)) {
		int x = (int)v;
		memcpy(dst, &x, sizeof(x));
	} else if (r->size == sizeof(long)) {
		long x = (long)v;
		memcpy(dst, &x, sizeof(x));
	} else {
		memcpy(dst, &v, sizeof(v));
	}
}

/* The row's text field: a copy of arg, if it fits. Returns 0 or MQP_ERR_INVAL. */
static int options__set_text(struct options__ctx *c, const struct options__row *r, const char *arg)
{
	return options__copy((char *)c->opts + r->field, r->size, arg);
}

/* True for a byte that may stand in a host name or address: what DNS names,
 * IPv4 and (inside brackets) IPv6 addresses use. */
static int options__host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

int mqp_options_check_broker(const char *what, const char *uri, char *err, size_t errlen)
{
	static const char *const schemes[] = {"tcp://", "ssl://", "ws://", "wss://", "mqtt://",
					      "mqtts://"};
	const char *p = NULL;
	int web = 0;
	for (size_t i = 0; i < MQP_LEN(schemes) && !p; i++)
		if (strncmp(uri, schemes[i], strlen(schemes[i])) == 0) {
			p = uri + strlen(schemes[i]);
			web = schemes[i][0] == 'w';
		}
	const char *why = "expected tcp://host:port, ssl://…, ws://…";
	if (p) {
		const char *host = p;
		if (*p == '[') { /* [IPv6] */
			while (*++p && (options__host_char(*p) || *p == ':'))
				;
			p = *p == ']' && p > host + 1 ? p + 1 : NULL;
		} else {
			while (options__host_char(*p))
				p++;
			if (p == host)
				p = NULL;
		}
		if (!p)
			why = "no host name or address after the scheme";
	}
	if (p && *p == ':') {
		long port;
		char digits[8];
		size_t n = strspn(p + 1, "0123456789");
		if (n == 0 || n >= sizeof(digits) ||
		    (memcpy(digits, p + 1, n), digits[n] = '\0', mqp_parse_long(digits, 1, 65535, &port))) {
			why = "the port must be a number from 1 to 65535";
			p = NULL;
		} else {
			p += 1 + n;
		}
	}
	if (p && *p && !(web && *p == '/')) {
		why = web ? "expected host[:port][/path]" : "expected host[:port] and nothing after it";
		p = NULL;
	}
	if (p && strlen(uri) >= sizeof(((struct mqp_options *)0)->broker)) {
		why = "too long";
		p = NULL;
	}
	if (p)
		return 0;
	snprintf(err, errlen, "%s '%s': %s", what, uri, why);
	return -1;
}

#define OPTIONS__BROKERS_MAX 16 /* URIs in one -b list */

int mqp_options_check_brokers(const char *what, const char *list, char *err, size_t errlen)
{
	char one[sizeof(((struct mqp_options *)0)->broker)];
	const char *p = list;
	for (int i = 0;; i++) {
		size_t n = strcspn(p, ",");
		if (i == OPTIONS__BROKERS_MAX || n >= sizeof(one)) {
			snprintf(err, errlen, "%s '%s': at most %d URIs of at most %zu bytes in all", what,
				 list, OPTIONS__BROKERS_MAX, sizeof(one) - 1);
			return -1;
		}
		memcpy(one, p, n);
		one[n] = '\0';
		if (mqp_options_check_broker(what, one, err, errlen))
			return -1;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

/* -b: a broker URI, or a comma-separated list of them (mqp_options_check_brokers). */
static int options__broker(struct options__ctx *c, const struct options__row *r, const char *what,
			   const char *arg)
{
	if (mqp_options_check_brokers(what, arg, c->msg, sizeof(c->msg)))
		return -1;
	return options__set_text(c, r, arg) ? -1 : 0; /* checked: it fits */
}

/* -i: it names the status and metrics topics, so no topic syntax in it. */
static int options__client_id(struct options__ctx *c, const struct options__row *r,
			      const char *what, const char *arg)
{
	if (!*arg || strpbrk(arg, "+#/") || options__set_text(c, r, arg)) {
		snprintf(c->msg, sizeof(c->msg), "%s '%s': 1 to %zu bytes without '+', '#' or '/'",
			 what, arg, r->size - 1);
		return -1;
	}
	c->opts->has_client_id = 1;
	return 0;
}

/* -d: a path that fits. */
static int options__path(struct options__ctx *c, const struct options__row *r, const char *what,
			 const char *arg)
{
	c->db_given = 1;
	c->opts->db_default_var = 0;
	if (!*arg || options__set_text(c, r, arg)) {
		snprintf(c->msg, sizeof(c->msg), "%s: a path of 1 to %zu bytes", what, r->size - 1);
		return -1;
	}
	return 0;
}

/* -p: no wildcards; "a/b/" and "a/b" mean the same namespace. */
static int options__prefix(struct options__ctx *c, const struct options__row *r, const char *what,
			   const char *arg)
{
	if (options__set_text(c, r, arg) || strpbrk(arg, "#+")) {
		snprintf(c->msg, sizeof(c->msg), "%s '%s': no wildcards, at most %zu bytes", what, arg,
			 r->size - 1);
		return -1;
	}
	size_t n = strlen(c->opts->prefix);
	if (n && c->opts->prefix[n - 1] == '/')
		c->opts->prefix[n - 1] = '\0';
	return 0;
}

/* -u: a user name that fits. */
static int options__username(struct options__ctx *c, const struct options__row *r,
			     const char *what, const char *arg)
{
	if (options__set_text(c, r, arg)) {
		snprintf(c->msg, sizeof(c->msg), "%s: too long", what);
		return -1;
	}
	c->opts->has_username = 1;
	return 0;
}

/* --password-file: the first line of the file is the password. */
static int options__password_file(struct options__ctx *c, const struct options__row *r,
				  const char *what, const char *arg)
{
	FILE *f = fopen(arg, "r");
	if (!f) {
		snprintf(c->msg, sizeof(c->msg), "%s %s: %s", what, arg, strerror(errno));
		return -1;
	}
	char *pw = (char *)c->opts + r->field;
	if (!fgets(pw, (int)r->size, f))
		pw[0] = '\0';
	fclose(f);
	pw[strcspn(pw, "\r\n")] = '\0';
	c->opts->has_password = 1;
	return 0;
}

/* --cafile, --cert, --key: a file this process can read, named by a path that fits. */
static int options__readable_file(struct options__ctx *c, const struct options__row *r,
				  const char *what, const char *arg)
{
	if (options__set_text(c, r, arg) || access(arg, R_OK)) {
		snprintf(c->msg, sizeof(c->msg), "%s %s: cannot read the file", what, arg);
		return -1;
	}
	return 0;
}

/* Writes "w1, w2 or w3" of a NULL-terminated list of words into buf. */
static void options__join(const char *const *words, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; words[i] && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", i == 0 ? "" : words[i + 1] ? ", " : " or ",
				      words[i]);
}

/* One of the row's words (--log-format, --sync): the field gets its index. */
static int options__word(struct options__ctx *c, const struct options__row *r, const char *what,
			 const char *arg)
{
	for (int i = 0; r->words[i]; i++)
		if (strcmp(arg, r->words[i]) == 0) {
			options__store(c, r, i);
			return 0;
		}
	char list[128];
	options__join(r->words, list, sizeof(list));
	snprintf(c->msg, sizeof(c->msg), "%s '%s': expected %s", what, arg, list);
	return -1;
}

/* -l: a log level, as log.h spells them (the row's words, for the message). */
static int options__log_level(struct options__ctx *c, const struct options__row *r,
			      const char *what, const char *arg)
{
	if (mqp_log_level_parse(arg, &c->opts->log_level) == 0)
		return 0;
	return options__word(c, r, what, arg);
}

/* A whole number in the row's range, in its unit. */
static int options__number(struct options__ctx *c, const struct options__row *r, const char *what,
			   const char *arg)
{
	long v;
	if (mqp_parse_long(arg, r->min, r->max, &v)) {
		snprintf(c->msg, sizeof(c->msg), "%s '%s': %s from %ld to %ld", what, arg, r->unit, r->min,
			 r->max);
		return -1;
	}
	options__store(c, r, v);
	return 0;
}

/* A duration (mqp_parse_duration), in milliseconds. */
static int options__duration(struct options__ctx *c, const struct options__row *r,
			     const char *what, const char *arg)
{
	int64_t ms;
	char why[200];
	if (mqp_duration_arg(arg, &ms, why, sizeof(why))) {
		snprintf(c->msg, sizeof(c->msg), "%s %s", what, why);
		return -1;
	}
	options__store(c, r, ms);
	return 0;
}

static void options__usage(struct options__ctx *c);

/* -h: prints --help on c->out. Returns 1: the program ends. */
static int options__help(struct options__ctx *c, const struct options__row *r, const char *what,
			 const char *arg)
{
	(void)r, (void)what, (void)arg;
	options__usage(c);
	return 1;
}

/* -V: prints the version on c->out. Returns 1: the program ends. */
static int options__version(struct options__ctx *c, const struct options__row *r,
			    const char *what, const char *arg)
{
	(void)r, (void)what, (void)arg;
	fprintf(c->out, "mqpipe-%s %s\n", c->agent, MQPIPE_VERSION);
	return 1;
}

static const char *const options__levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const options__formats[] = {"kv", "json", NULL}; /* enum mqp_log_format */
static const char *const options__syncs[] = {"normal", "full", NULL}; /* sync_full 0, 1 */
static const char *const options__on_off[] = {"on", "off", NULL}; /* an _off field: 0, 1 */

/* The common flags, in --help's order. Help texts may hold {agent}, {host}
 * ("-HOSTNAME" for an agent of many instances per host), {db} (the default
 * store's name) and {max-payload} (the agent's default). */
static const struct options__row options__rows[] = {
	{"broker", 'b', "URI", OPTIONS__CONN, options__broker, OPTIONS__FIELD(broker),
	 .env = "MQPIPE_BROKER",
	 .help = "tcp://host:port, ssl://…, ws://… (default $MQPIPE_BROKER, else" OPTIONS__MORE
		 "tcp://127.0.0.1:1883); several, comma-separated, are tried in turn"},
	{"client-id", 'i', "ID", OPTIONS__CONN, options__client_id, OPTIONS__FIELD(client_id),
	 .help = "MQTT client id and session (default the user name" OPTIONS__MORE
		 "given by -u, else mqpipe-{agent}{host})",
	 .tool_help = "MQTT client id (default mqpipe-{agent}-PID)"},
	{"db", 'd', "PATH", 0, options__path, OPTIONS__FIELD(db_path),
	 .help = "SQLite state file (default $STATE_DIRECTORY/{db}.db, else ./var/{db}.db)"},
	{"prefix", 'p', "P", OPTIONS__CONN, options__prefix, OPTIONS__FIELD(prefix),
	 .help = "topic namespace: every topic becomes P/topic"},
	{"shards", 0, "S", 0, options__number, OPTIONS__FIELD(shards), 1, MQP_SHARDS_MAX,
	 "a whole number", .env = "MQPIPE_SHARDS",
	 .help = "the deployment's number of shards (default $MQPIPE_SHARDS, else 1:" OPTIONS__MORE
		 "no shard topics)"},
	{"shard", 0, "K", OPTIONS__SHARDED, options__number, OPTIONS__FIELD(shard), 0,
	 MQP_SHARDS_MAX - 1, "a whole number",
	 .help = "the shard this instance owns, 0 to S-1 (needed when S > 1)"},
	{"ask-republish", 0, "on|off", OPTIONS__SHARDED, options__word,
	 OPTIONS__FIELD(ask_republish_off), .words = options__on_off,
	 .help = "with S > 1, at a connect that finds the session gone, ask" OPTIONS__MORE
		 "producers to publish again their recent outputs for the" OPTIONS__MORE
		 "shard (default on)"},
	{"username", 'u', "U", OPTIONS__CONN, options__username, OPTIONS__FIELD(username),
	 .env = "MQPIPE_USERNAME", .help = "broker user name (default $MQPIPE_USERNAME)"},
	{"password-file", 0, "F", OPTIONS__CONN, options__password_file, OPTIONS__FIELD(password),
	 .env = "MQPIPE_PASSWORD_FILE",
	 .help = "broker password: the first line of F (default $MQPIPE_PASSWORD_FILE)"},
	{"cafile", 0, "F", OPTIONS__CONN, options__readable_file, OPTIONS__FIELD(cafile),
	 .env = "MQPIPE_CAFILE", .help = "CA certificates for ssl:// (default $MQPIPE_CAFILE)"},
	{"cert", 0, "F", OPTIONS__CONN, options__readable_file, OPTIONS__FIELD(cert),
	 .env = "MQPIPE_CERT", .label = "--cert F, --key F",
	 .help = "client certificate and key for ssl:// ($MQPIPE_CERT, $MQPIPE_KEY)"},
	{"key", 0, "F", OPTIONS__CONN, options__readable_file, OPTIONS__FIELD(key),
	 .env = "MQPIPE_KEY", .help = ""},
	{"log-level", 'l', "L", 0, options__log_level, OPTIONS__FIELD(log_level),
	 .words = options__levels, .help = "error, warn, info (default) or debug"},
	{"log-format", 0, "F", 0, options__word, OPTIONS__FIELD(log_format), .words = options__formats,
	 .help = "kv (default) or json"},
	{"metrics-interval", 0, "S", 0, options__number, OPTIONS__FIELD(metrics_interval_s), 1, 86400,
	 "whole seconds", .help = "seconds between metrics reports (default 10)"},
	{"sync", 0, "MODE", 0, options__word, OPTIONS__FIELD(sync_full), .words = options__syncs,
	 .help = "normal (default: survives a process crash) or full" OPTIONS__MORE
		 "(fsync each message: survives power loss, slower)"},
	/* MQTT's own limit is 256 MB; an agent reads a payload whole. */
	{"max-payload", 0, "N", 0, options__number, OPTIONS__FIELD(max_payload), 64, 268435455, "bytes",
	 .help = "longest payload in bytes; a longer one is a dead letter" OPTIONS__MORE
		 "holding its first bytes (default {max-payload})"},
	{"republish-window", 0, "S", 0, options__number, OPTIONS__FIELD(republish_window_s), 0, 86400,
	 "seconds",
	 .help = "after a reconnect, publish again the outputs the broker" OPTIONS__MORE
		 "acknowledged in the last S seconds, which a broker crash" OPTIONS__MORE
		 "may have lost (default 10: twice the autosave; 0 off)"},
	{"deadletter-max-bytes", 0, "N", 0, options__number, OPTIONS__FIELD(deadletter_max_bytes), 0,
	 OPTIONS__DEADLETTER_MAX, "bytes",
	 .help = "dead letters kept in the database, oldest dropped" OPTIONS__MORE
		 "first (default 16777216; 0 keeps none)"},
	{"deadletter-max-age", 0, "D", 0, options__duration, OPTIONS__FIELD(deadletter_max_age_ms),
	 .help = "dead letters older than D are dropped (3600, 90m," OPTIONS__MORE
		 "24h, 7d; default 7d)"},
	{"help", 'h', NULL, OPTIONS__CONN | OPTIONS__LAST, options__help, .help = "this help"},
	{"version", 'V', NULL, OPTIONS__CONN | OPTIONS__LAST, options__version,
	 .help = "print the version"},
};
#define OPTIONS__N_ROWS MQP_LEN(options__rows)
/* getopt_long's codes: a common row's long form, an agent's flag. */
#define OPTIONS__ROW_BASE 1000
#define OPTIONS__EXTRA_BASE 2000
#define OPTIONS__MAX_EXTRA 32

/* --log-format's enum is stored as an int (options__store). */
_Static_assert(sizeof(enum mqp_log_format) == sizeof(int), "options__store writes an int");

/* Whether row r applies to this program (an agent: all; a tool: the connection part). */
static int options__applies(const struct options__ctx *c, const struct options__row *r)
{
	return !c->tool || (r->scope & OPTIONS__CONN);
}

/* Whether --help lists row r: an agent's shard flags only when it owns one
 * (the others still parse them, to refuse them by name: getopt_long would
 * take --shard for an abbreviation of --shards). */
static int options__listed(const struct options__ctx *c, const struct options__row *r)
{
	return options__applies(c, r) && (!(r->scope & OPTIONS__SHARDED) || c->opts->sharded);
}

/* Writes text to out with its {tokens} replaced (see options__rows). */
static void options__expand(const struct options__ctx *c, FILE *out, const char *text)
{
	int per_host = c->opts->instances_per_host;
	char payload[24];
	snprintf(payload, sizeof(payload), "%ld",
		 c->opts->max_payload_default ? c->opts->max_payload_default
					      : (long)MQP_MAX_PAYLOAD_DEFAULT);
	const char *const tokens[][2] = {{"{agent}", c->agent},
					 {"{host}", per_host ? "-HOSTNAME" : ""},
					 {"{db}", per_host ? "CLIENT-ID" : c->agent},
					 {"{max-payload}", payload}};
	while (*text) {
		size_t i = 0;
		while (i < MQP_LEN(tokens) && strncmp(text, tokens[i][0], strlen(tokens[i][0])))
			i++;
		if (i < MQP_LEN(tokens)) {
			fputs(tokens[i][1], out);
			text += strlen(tokens[i][0]);
		} else {
			fputc(*text++, out);
		}
	}
}

/* The left column of a --help line: "  -x, --name ARG        ". */
static void options__help_left(FILE *out, char letter, const char *left)
{
	if (letter)
		fprintf(out, "  -%c, %-20s  ", letter, left);
	else
		fprintf(out, "      %-20s  ", left);
}

/* Prints the common rows of this scope that are (last) or are not (!last)
 * listed after the program's own flags. */
static void options__usage_rows(struct options__ctx *c, int last)
{
	for (size_t i = 0; i < OPTIONS__N_ROWS; i++) {
		const struct options__row *r = &options__rows[i];
		const char *help = c->tool && r->tool_help ? r->tool_help : r->help;
		if (!options__listed(c, r) || !(r->scope & OPTIONS__LAST) != !last || !*help)
			continue;
		char left[64];
		if (r->label)
			snprintf(left, sizeof(left), "%s", r->label);
		else
			snprintf(left, sizeof(left), "--%s%s%s", r->name, r->arg ? " " : "",
				 r->arg ? r->arg : "");
		options__help_left(c->out, r->letter, left);
		options__expand(c, c->out, help);
		fputc('\n', c->out);
	}
}

/* --help: the synopsis, the common rows, the program's own flags, help and version. */
static void options__usage(struct options__ctx *c)
{
	const struct mqp_options *o = c->opts;
	if (c->tool)
		fprintf(c->out, "Usage: mqpipe-%s %s\n%s\n\n", c->agent, o->tool_synopsis,
			o->tool_about ? o->tool_about : "");
	else
		fprintf(c->out,
			"Usage: mqpipe-%s [OPTION]...\n"
			"mqpipe %s agent: reads and writes events through an MQTT broker.\n\n",
			c->agent, c->agent);
	options__usage_rows(c, 0);
	for (size_t i = 0; i < c->n_extra; i++) {
		const struct mqp_extra_option *x = &c->extra[i];
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", x->name, x->has_arg ? " " : "",
			 x->has_arg ? x->arg_name : "");
		options__help_left(c->out, x->short_name, left);
		fprintf(c->out, "%s\n", x->help);
	}
	options__usage_rows(c, 1);
}

/* The default --db: <state dir>/<name>.db, the state dir being systemd's
 * StateDirectory= (the first when it lists several) or ./var. Returns 0, or
 * -1 with the reason in err when $STATE_DIRECTORY makes too long a path. */
static int options__default_db(struct mqp_options *opts, const char *name, char *err,
			       size_t errlen)
{
	const char *state = getenv("STATE_DIRECTORY");
	int n;
	opts->db_default_var = !(state && *state);
	if (state && *state) {
		size_t len = strcspn(state, ":");
		n = snprintf(opts->db_path, sizeof(opts->db_path), "%.*s/%s.db", (int)len, state, name);
	} else {
		n = snprintf(opts->db_path, sizeof(opts->db_path), "./var/%s.db", name);
	}
	if (n < 0 || (size_t)n >= sizeof(opts->db_path)) {
		snprintf(err, errlen, "STATE_DIRECTORY: a path of at most %zu bytes with '/%s.db'",
			 sizeof(opts->db_path) - 1, name);
		return -1;
	}
	return 0;
}

/* Fills the defaults of README "Running it" ($MQPIPE_BROKER and the other
 * variables come after, in options__from_env). An agent run as many
 * instances per broker (the workers) gets a default client id naming the
 * host (README "Running it"). */
static void options__defaults(struct mqp_options *opts, const char *agent, int per_host)
{
	memset(opts, 0, sizeof(*opts));
	opts->agent = agent;
	snprintf(opts->broker, sizeof(opts->broker), "%s", "tcp://127.0.0.1:1883");
	char host[64] = "";
	if (per_host && gethostname(host, sizeof(host) - 1) == 0 && *host &&
	    !strpbrk(host, "+#/"))
		snprintf(opts->client_id, sizeof(opts->client_id), "mqpipe-%s-%s", agent, host);
	else
		snprintf(opts->client_id, sizeof(opts->client_id), "mqpipe-%s", agent);
	opts->log_level = MQP_LOG_INFO;
	opts->log_format = MQP_LOG_KV;
	opts->metrics_interval_s = 10;
	opts->max_payload = 0; /* not given: the runtime applies the agent's default */
	opts->republish_window_s = 10;
	opts->shards = 1;
	opts->shard = -1;
	opts->deadletter_max_bytes = MQP_DEADLETTER_MAX_BYTES_DEFAULT;
	opts->deadletter_max_age_ms = MQP_DEADLETTER_MAX_AGE_MS_DEFAULT;
}

/* Connection settings from the environment, for every agent of a host at
 * once (a systemd drop-in): each row's variable (MQPIPE_BROKER,
 * MQPIPE_USERNAME, ...) is checked as its flag is; an empty one counts as
 * unset. Flags given later override them. Returns 0, or -1 with the
 * reason, naming the variable, in c->msg. */
static int options__from_env(struct options__ctx *c)
{
	for (size_t i = 0; i < OPTIONS__N_ROWS; i++) {
		const struct options__row *r = &options__rows[i];
		const char *v = r->env ? getenv(r->env) : NULL;
		if (v && *v && r->parse(c, r, r->env, v))
			return -1;
	}
	return 0;
}

/* Fills longopts (at least OPTIONS__N_ROWS + OPTIONS__MAX_EXTRA + 1) and
 * shorts (at least 2 + 2 * that) for getopt_long from the rows that apply
 * and the program's own flags. */
static void options__getopt_tables(const struct options__ctx *c, struct option *longopts,
				   char *shorts)
{
	size_t n = 0, s = 0;
	shorts[s++] = ':'; /* a missing argument is ':', not '?' */
	for (size_t i = 0; i < OPTIONS__N_ROWS; i++) {
		const struct options__row *r = &options__rows[i];
		if (!options__applies(c, r))
			continue;
		longopts[n++] = (struct option){r->name, r->arg ? required_argument : no_argument, NULL,
						OPTIONS__ROW_BASE + (int)i};
		if (r->letter) {
			shorts[s++] = r->letter;
			if (r->arg)
				shorts[s++] = ':';
		}
	}
	for (size_t i = 0; i < c->n_extra; i++) {
		const struct mqp_extra_option *x = &c->extra[i];
		longopts[n++] = (struct option){x->name, x->has_arg ? required_argument : no_argument,
						NULL, OPTIONS__EXTRA_BASE + (int)i};
		if (x->short_name) {
			shorts[s++] = x->short_name;
			if (x->has_arg)
				shorts[s++] = ':';
		}
	}
	longopts[n] = (struct option){0};
	shorts[s] = '\0';
}

/* The long-form code of what getopt_long returned: a one-letter form
 * becomes its row's or flag's code (a program's own flag first). */
static int options__code(const struct options__ctx *c, int code)
{
	for (size_t i = 0; i < c->n_extra && code < OPTIONS__ROW_BASE; i++)
		if (c->extra[i].short_name && code == c->extra[i].short_name)
			return OPTIONS__EXTRA_BASE + (int)i;
	for (size_t i = 0; i < OPTIONS__N_ROWS && code < OPTIONS__ROW_BASE; i++)
		if (options__rows[i].letter && code == options__rows[i].letter &&
		    options__applies(c, &options__rows[i]))
			return OPTIONS__ROW_BASE + (int)i;
	return code;
}

/* Acts on one flag getopt_long returned (code), with its argument.
 * Returns what a row's parser returns (0, -1 with c->msg, 1 to end). */
static int options__one(struct options__ctx *c, int code, const char *arg, char **argv)
{
	code = options__code(c, code);
	if (code >= OPTIONS__ROW_BASE && code < OPTIONS__ROW_BASE + (int)OPTIONS__N_ROWS) {
		const struct options__row *r = &options__rows[code - OPTIONS__ROW_BASE];
		char what[64];
		snprintf(what, sizeof(what), "--%s", r->name);
		if ((r->scope & OPTIONS__SHARDED) && !c->opts->sharded) {
			snprintf(c->msg, sizeof(c->msg), "%s: mqpipe-%s owns no shard (README \"Scaling out\")",
				 what, c->agent);
			return -1;
		}
		return r->parse(c, r, what, r->arg ? arg : NULL);
	}
	if (code >= OPTIONS__EXTRA_BASE && code < OPTIONS__EXTRA_BASE + (int)c->n_extra) {
		const struct mqp_extra_option *x = &c->extra[code - OPTIONS__EXTRA_BASE];
		char xerr[400] = "";
		if (x->handle(c->extra_ctx, x->has_arg ? arg : NULL, xerr, sizeof(xerr)) == 0)
			return 0;
		snprintf(c->msg, sizeof(c->msg), "--%s: %s", x->name, xerr);
	} else if (code == ':') {
		snprintf(c->msg, sizeof(c->msg), "option '%s' needs an argument", argv[optind - 1]);
	} else if (optopt > 0 && optopt < OPTIONS__ROW_BASE) {
		snprintf(c->msg, sizeof(c->msg), "unknown option '-%c'", optopt);
	} else {
		snprintf(c->msg, sizeof(c->msg), "unknown option '%s'", argv[optind - 1]);
	}
	return -1;
}

/* Runs getopt_long over argv. Returns 0, 1 when --help or --version
 * ended it, or -1 after printing a usage error on err. */
static int options__flags(struct options__ctx *c, int argc, char **argv, FILE *err)
{
	struct option longopts[OPTIONS__N_ROWS + OPTIONS__MAX_EXTRA + 1];
	char shorts[2 + 2 * (OPTIONS__N_ROWS + OPTIONS__MAX_EXTRA)];
	options__getopt_tables(c, longopts, shorts);
	optind = 1;
	opterr = 0; /* we print our own one-line errors */
	int code, rc = 0;
	while (rc == 0 && (code = getopt_long(argc, argv, shorts, longopts, NULL)) != -1)
		rc = options__one(c, code, optarg, argv);
	if (rc < 0)
		fprintf(err, "mqpipe-%s: %s (see --help)\n", c->agent, c->msg);
	return rc;
}

/* A sharded agent (README "Scaling out"): with --shards above 1 it needs
 * --shard below it, and its default client id and store name the shard
 * (mqpipe-counter-3, counter-3.db), so each shard's session and files are
 * its own. Returns 0, or -1 after printing the usage error on err. */
static int options__shard_defaults(struct options__ctx *c, FILE *err)
{
	struct mqp_options *opts = c->opts;
	if (!opts->sharded)
		return 0;
	if (opts->shard >= opts->shards || (opts->shards > 1 && opts->shard < 0)) {
		if (opts->shard < 0)
			fprintf(err, "mqpipe-%s: --shards %d needs --shard K, the shard this instance owns (0 to %d) (see --help)\n",
				c->agent, opts->shards, opts->shards - 1);
		else
			fprintf(err, "mqpipe-%s: --shard %d: a shard from 0 to %d (--shards %d) (see --help)\n",
				c->agent, opts->shard, opts->shards - 1, opts->shards);
		return -1;
	}
	if (opts->shards == 1)
		return 0;
	char name[64];
	snprintf(name, sizeof(name), "%.40s-%d", c->agent, opts->shard); /* agent names are short */
	if (!opts->has_client_id && !opts->has_username)
		snprintf(opts->client_id, sizeof(opts->client_id), "mqpipe-%s", name);
	if (!c->db_given && options__default_db(opts, name, c->msg, sizeof(c->msg))) {
		fprintf(err, "mqpipe-%s: %s\n", c->agent, c->msg);
		return -1;
	}
	return 0;
}

/* After the flags: the operands, and the defaults that depend on other
 * flags. Returns MQP_PARSE_RUN, or MQP_PARSE_USAGE after printing why. */
static enum mqp_parse_result options__finish(struct options__ctx *c, int argc, char **argv,
					     FILE *err)
{
	struct mqp_options *opts = c->opts;
	if (argc - optind > opts->max_args) {
		fprintf(err, "mqpipe-%s: unexpected argument '%s' (see --help)\n", c->agent,
			argv[optind + opts->max_args]);
		return MQP_PARSE_USAGE;
	}
	opts->args = argv + optind;
	opts->n_args = argc - optind;
	/* A user name without -i: the client id is the user name, the only one
	 * the secure profile lets that identity use (README "Security"). */
	if (opts->has_username && !opts->has_client_id && opts->username[0] &&
	    !strpbrk(opts->username, "+#/"))
		options__copy(opts->client_id, sizeof(opts->client_id), opts->username);
	if (options__shard_defaults(c, err))
		return MQP_PARSE_USAGE;
	/* Several instances on one host each need their own store and inbox. */
	if (!c->db_given && opts->instances_per_host &&
	    options__default_db(opts, opts->client_id, c->msg, sizeof(c->msg))) {
		fprintf(err, "mqpipe-%s: %s\n", c->agent, c->msg);
		return MQP_PARSE_USAGE;
	}
	return MQP_PARSE_RUN;
}

enum mqp_parse_result mqp_options_parse(struct mqp_options *opts, const char *agent, int argc,
					char **argv, const struct mqp_extra_option *extra,
					size_t n_extra, void *extra_ctx, FILE *out, FILE *err)
{
	/* What the caller set before the call survives the defaults. */
	struct mqp_options kept = *opts;
	options__defaults(opts, agent, kept.instances_per_host);
	opts->max_args = kept.max_args;
	opts->instances_per_host = kept.instances_per_host;
	opts->sharded = kept.sharded;
	opts->max_payload_default = kept.max_payload_default;
	opts->tool_synopsis = kept.tool_synopsis;
	opts->tool_about = kept.tool_about;
	struct options__ctx c = {.opts = opts, .agent = agent, .extra = extra,
				 .n_extra = n_extra < OPTIONS__MAX_EXTRA ? n_extra : OPTIONS__MAX_EXTRA,
				 .extra_ctx = extra_ctx, .out = out, .tool = opts->tool_synopsis != NULL};
	if (options__default_db(opts, agent, c.msg, sizeof(c.msg)) || options__from_env(&c)) {
		fprintf(err, "mqpipe-%s: %s\n", agent, c.msg);
		return MQP_PARSE_USAGE;
	}
	int rc = options__flags(&c, argc, argv, err);
	if (rc)
		return rc > 0 ? MQP_PARSE_EXIT_OK : MQP_PARSE_USAGE;
	return options__finish(&c, argc, argv, err);
}

int mqp_read_option_file(const char *path, char *buf, size_t cap, size_t *len, char *err,
			 size_t errlen)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
	int too_big = f && fgetc(f) != EOF;
	int failed = f && ferror(f);
	if (f)
		fclose(f);
	if (!f || too_big || failed) {
		snprintf(err, errlen, "'%s': %s", path,
			 !f || failed ? strerror(errno ? errno : EIO) : "too large");
		return -1;
	}
	buf[n] = '\0';
	*len = n;
	return 0;
}

int mqp_options_topic(const struct mqp_options *opts, const char *topic, char *buf, size_t size)
{
	int n = opts->prefix[0] ? snprintf(buf, size, "%s/%s", opts->prefix, topic)
				: snprintf(buf, size, "%s", topic);
	return (n < 0 || (size_t)n >= size) ? MQP_ERR_INVAL : MQP_OK;
}
