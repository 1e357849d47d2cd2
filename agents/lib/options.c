/* Common flags: see mqpipe/options.h. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/options.h"

/* The largest --deadletter-max-bytes: 1 TiB, or what a long holds where it
 * has 32 bits (1L << 40 would not fit there). */
#if LONG_MAX > 1099511627776
#define OPTIONS__DEADLETTER_MAX 1099511627776L
#else
#define OPTIONS__DEADLETTER_MAX LONG_MAX
#endif

enum {
	OPT_PASSWORD_FILE = 1000,
	OPT_CAFILE,
	OPT_CERT,
	OPT_KEY,
	OPT_LOG_FORMAT,
	OPT_METRICS_INTERVAL,
	OPT_SYNC,
	OPT_MAX_PAYLOAD,
	OPT_REPUBLISH_WINDOW,
	OPT_DEADLETTER_MAX_BYTES,
	OPT_DEADLETTER_MAX_AGE,
	OPT_EXTRA_BASE = 2000,
};

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

static const struct option options__common[] = {
	{"broker", required_argument, NULL, 'b'},
	{"client-id", required_argument, NULL, 'i'},
	{"db", required_argument, NULL, 'd'},
	{"prefix", required_argument, NULL, 'p'},
	{"username", required_argument, NULL, 'u'},
	{"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
	{"cafile", required_argument, NULL, OPT_CAFILE},
	{"cert", required_argument, NULL, OPT_CERT},
	{"key", required_argument, NULL, OPT_KEY},
	{"log-level", required_argument, NULL, 'l'},
	{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	{"metrics-interval", required_argument, NULL, OPT_METRICS_INTERVAL},
	{"sync", required_argument, NULL, OPT_SYNC},
	{"max-payload", required_argument, NULL, OPT_MAX_PAYLOAD},
	{"republish-window", required_argument, NULL, OPT_REPUBLISH_WINDOW},
	{"deadletter-max-bytes", required_argument, NULL, OPT_DEADLETTER_MAX_BYTES},
	{"deadletter-max-age", required_argument, NULL, OPT_DEADLETTER_MAX_AGE},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
};
#define OPTIONS__N_COMMON (sizeof(options__common) / sizeof(options__common[0]))

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

/* Copies src into dst[size]; returns MQP_ERR_INVAL when it does not fit. */
static int options__copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (n >= size)
		return MQP_ERR_INVAL;
	memcpy(dst, src, n + 1);
	return MQP_OK;
}

/* Reads the first line of path as the password; what names it (a flag or
 * a variable) goes into the error. */
static int options__read_password(struct mqp_options *opts, const char *what, const char *path,
				  char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return MQP_ERR_INVAL;
	}
	if (!fgets(opts->password, sizeof(opts->password), f))
		opts->password[0] = '\0';
	fclose(f);
	opts->password[strcspn(opts->password, "\r\n")] = '\0';
	opts->has_password = 1;
	return MQP_OK;
}

/* The help lines agents and tools share. */
#define OPTIONS__HELP_BROKER                                                                       \
	"  -b, --broker URI          tcp://host:port, ssl://…, ws://… "                           \
	"(default $MQPIPE_BROKER, else tcp://127.0.0.1:1883)\n"
#define OPTIONS__HELP_PREFIX "  -p, --prefix P            topic namespace: every topic becomes P/topic\n"
#define OPTIONS__HELP_CREDENTIALS                                                                  \
	"  -u, --username U          broker user name (default $MQPIPE_USERNAME)\n"                \
	"      --password-file F     broker password: the first line of F "                       \
	"(default $MQPIPE_PASSWORD_FILE)\n"                                                      \
	"      --cafile F            CA certificates for ssl:// (default $MQPIPE_CAFILE)\n"       \
	"      --cert F, --key F     client certificate and key for ssl:// "                       \
	"($MQPIPE_CERT, $MQPIPE_KEY)\n"

/* The agent's or tool's own flags, then help and version. */
static void options__usage_extra(FILE *out, const struct mqp_extra_option *extra, size_t n_extra)
{
	for (size_t i = 0; i < n_extra; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", extra[i].name, extra[i].has_arg ? " " : "",
			 extra[i].has_arg ? extra[i].arg_name : "");
		if (extra[i].short_name)
			fprintf(out, "  -%c, %-20s  %s\n", extra[i].short_name, left, extra[i].help);
		else
			fprintf(out, "      %-20s  %s\n", left, extra[i].help);
	}
	fprintf(out, "  -h, --help                this help\n"
		     "  -V, --version             print the version\n");
}

static void options__usage(FILE *out, const struct mqp_options *opts, const char *agent,
			   const struct mqp_extra_option *extra, size_t n_extra)
{
	if (opts->tool_synopsis) {
		fprintf(out,
			"Usage: mqpipe-%s %s\n%s\n\n" OPTIONS__HELP_BROKER
			"  -i, --client-id ID        MQTT client id (default mqpipe-%s-PID)\n"
			OPTIONS__HELP_PREFIX OPTIONS__HELP_CREDENTIALS,
			agent, opts->tool_synopsis, opts->tool_about ? opts->tool_about : "", agent);
		options__usage_extra(out, extra, n_extra);
		return;
	}
	fprintf(out,
		"Usage: mqpipe-%s [OPTION]...\n"
		"mqpipe %s agent: reads and writes events through an MQTT broker.\n\n"
		OPTIONS__HELP_BROKER
		"  -i, --client-id ID        MQTT client id and session (default the user name\n"
		"                            given by -u, else mqpipe-%s%s)\n"
		"  -d, --db PATH             SQLite state file (default $STATE_DIRECTORY/%s.db, "
		"else ./var/%s.db)\n"
		OPTIONS__HELP_PREFIX OPTIONS__HELP_CREDENTIALS
		"  -l, --log-level L         error, warn, info (default) or debug\n"
		"      --log-format F        kv (default) or json\n"
		"      --metrics-interval S  seconds between metrics reports (default 10)\n"
		"      --sync MODE           normal (default: survives a process crash) or full\n"
		"                            (fsync each message: survives power loss, slower)\n"
		"      --max-payload N       longest payload in bytes; a longer one is a dead letter\n"
		"                            holding its first bytes (default %ld)\n"
		"      --republish-window S  after a reconnect, publish again the outputs the broker\n"
		"                            acknowledged in the last S seconds, which a broker crash\n"
		"                            may have lost (default 10: twice the autosave; 0 off)\n"
		"      --deadletter-max-bytes N  dead letters kept in the database, oldest dropped\n"
		"                            first (default 16777216; 0 keeps none)\n"
		"      --deadletter-max-age D  dead letters older than D are dropped (3600, 90m,\n"
		"                            24h, 7d; default 7d)\n",
		agent, agent, agent, opts->instances_per_host ? "-HOSTNAME" : "",
		opts->instances_per_host ? "CLIENT-ID" : agent, opts->instances_per_host ? "CLIENT-ID" : agent,
		opts->max_payload_default ? opts->max_payload_default : (long)MQP_MAX_PAYLOAD_DEFAULT);
	options__usage_extra(out, extra, n_extra);
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
	opts->deadletter_max_bytes = MQP_DEADLETTER_MAX_BYTES_DEFAULT;
	opts->deadletter_max_age_ms = MQP_DEADLETTER_MAX_AGE_MS_DEFAULT;
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

/* Connection settings from the environment, for every agent of a host at
 * once (a systemd drop-in): MQPIPE_BROKER, MQPIPE_USERNAME,
 * MQPIPE_PASSWORD_FILE, MQPIPE_CAFILE, MQPIPE_CERT, MQPIPE_KEY, each checked
 * as its flag is; an empty one counts as unset. Flags given later override
 * them. Returns 0, or -1 with the reason, naming the variable, in err. */
static int options__from_env(struct mqp_options *opts, char *err, size_t errlen)
{
	const char *v = getenv("MQPIPE_BROKER");
	if (v && *v) {
		if (mqp_options_check_broker("MQPIPE_BROKER", v, err, errlen))
			return -1;
		options__copy(opts->broker, sizeof(opts->broker), v); /* checked: it fits */
	}
	if ((v = getenv("MQPIPE_USERNAME")) && *v) {
		if (options__copy(opts->username, sizeof(opts->username), v)) {
			snprintf(err, errlen, "MQPIPE_USERNAME: too long");
			return -1;
		}
		opts->has_username = 1;
	}
	if ((v = getenv("MQPIPE_PASSWORD_FILE")) && *v &&
	    options__read_password(opts, "MQPIPE_PASSWORD_FILE", v, err, errlen))
		return -1;
	static const char *const names[] = {"MQPIPE_CAFILE", "MQPIPE_CERT", "MQPIPE_KEY"};
	char *const dsts[] = {opts->cafile, opts->cert, opts->key};
	for (size_t i = 0; i < MQP_LEN(names); i++) {
		if (!(v = getenv(names[i])) || !*v)
			continue;
		if (options__copy(dsts[i], sizeof(opts->cafile), v) || access(v, R_OK)) {
			snprintf(err, errlen, "%s %s: cannot read the file", names[i], v);
			return -1;
		}
	}
	return 0;
}

enum mqp_parse_result mqp_options_parse(struct mqp_options *opts, const char *agent, int argc,
					char **argv, const struct mqp_extra_option *extra,
					size_t n_extra, void *extra_ctx, FILE *out, FILE *err)
{
	int max_args = opts->max_args, per_host = opts->instances_per_host;
	long max_payload_default = opts->max_payload_default;
	const char *synopsis = opts->tool_synopsis, *about = opts->tool_about;
	options__defaults(opts, agent, per_host);
	opts->max_args = max_args;
	opts->instances_per_host = per_host;
	opts->max_payload_default = max_payload_default;
	opts->tool_synopsis = synopsis;
	opts->tool_about = about;
	struct option longopts[OPTIONS__N_COMMON + 32 + 1];
	if (n_extra > 32)
		n_extra = 32;
	memcpy(longopts, options__common, sizeof(options__common));
	for (size_t i = 0; i < n_extra; i++) {
		longopts[OPTIONS__N_COMMON + i] = (struct option){
			extra[i].name, extra[i].has_arg ? required_argument : no_argument, NULL,
			OPT_EXTRA_BASE + (int)i};
	}
	memset(&longopts[OPTIONS__N_COMMON + n_extra], 0, sizeof(struct option));

	char msg[512] = "";
	if (options__default_db(opts, agent, msg, sizeof(msg)) ||
	    options__from_env(opts, msg, sizeof(msg))) {
		fprintf(err, "mqpipe-%s: %s\n", agent, msg);
		return MQP_PARSE_USAGE;
	}
	int c, db_given = 0;
	optind = 1;
	opterr = 0; /* we print our own one-line errors */
	char shorts[64 + 2 * 32] = ":b:i:d:p:u:l:hV";
	for (size_t i = 0; i < n_extra; i++) {
		if (extra[i].short_name) {
			size_t n = strlen(shorts);
			shorts[n++] = extra[i].short_name;
			if (extra[i].has_arg)
				shorts[n++] = ':';
			shorts[n] = '\0';
		}
	}
	while ((c = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
		for (size_t i = 0; i < n_extra; i++) /* a one-letter extra: as its long form */
			if (extra[i].short_name && c == extra[i].short_name)
				c = OPT_EXTRA_BASE + (int)i;
		int bad = 0;
		switch (c) {
		case 'b':
			bad = mqp_options_check_broker("--broker", optarg, msg, sizeof(msg)) != 0;
			if (!bad)
				options__copy(opts->broker, sizeof(opts->broker), optarg);
			break;
		case 'i':
			/* It names the status and metrics topics, so no topic syntax in it. */
			bad = !*optarg || strpbrk(optarg, "+#/") != NULL ||
			      options__copy(opts->client_id, sizeof(opts->client_id), optarg);
			opts->has_client_id = !bad;
			if (bad)
				snprintf(msg, sizeof(msg),
					 "--client-id '%s': 1 to %zu bytes without '+', '#' or '/'",
					 optarg, sizeof(opts->client_id) - 1);
			break;
		case 'd':
			bad = !*optarg || options__copy(opts->db_path, sizeof(opts->db_path), optarg);
			db_given = 1;
			opts->db_default_var = 0;
			if (bad)
				snprintf(msg, sizeof(msg), "--db: a path of 1 to %zu bytes",
					 sizeof(opts->db_path) - 1);
			break;
		case 'p':
			bad = options__copy(opts->prefix, sizeof(opts->prefix), optarg) ||
			      strpbrk(optarg, "#+") != NULL;
			/* "a/b/" and "a/b" mean the same namespace */
			if (!bad && opts->prefix[0] && opts->prefix[strlen(opts->prefix) - 1] == '/')
				opts->prefix[strlen(opts->prefix) - 1] = '\0';
			if (bad)
				snprintf(msg, sizeof(msg), "--prefix '%s': no wildcards, at most %zu bytes",
					 optarg, sizeof(opts->prefix) - 1);
			break;
		case 'u':
			bad = options__copy(opts->username, sizeof(opts->username), optarg);
			opts->has_username = !bad;
			if (bad)
				snprintf(msg, sizeof(msg), "--username: too long");
			break;
		case OPT_PASSWORD_FILE:
			bad = options__read_password(opts, "--password-file", optarg, msg, sizeof(msg)) != 0;
			break;
		case OPT_CAFILE:
		case OPT_CERT:
		case OPT_KEY: {
			char *dst = c == OPT_CAFILE ? opts->cafile : c == OPT_CERT ? opts->cert : opts->key;
			bad = options__copy(dst, sizeof(opts->cafile), optarg) || access(optarg, R_OK);
			if (bad)
				snprintf(msg, sizeof(msg), "%s %s: cannot read the file", argv[optind - 2],
					 optarg);
			break;
		}
		case 'l':
			bad = mqp_log_level_parse(optarg, &opts->log_level) != 0;
			if (bad)
				snprintf(msg, sizeof(msg),
					 "--log-level '%s': expected error, warn, info or debug", optarg);
			break;
		case OPT_LOG_FORMAT:
			if (strcmp(optarg, "kv") == 0)
				opts->log_format = MQP_LOG_KV;
			else if (strcmp(optarg, "json") == 0)
				opts->log_format = MQP_LOG_JSON;
			else
				bad = snprintf(msg, sizeof(msg),
					       "--log-format '%s': expected kv or json", optarg) > 0;
			break;
		case OPT_METRICS_INTERVAL: {
			long v = 0;
			bad = mqp_parse_long(optarg, 1, 86400, &v) != 0;
			if (!bad)
				opts->metrics_interval_s = (int)v;
			else
				snprintf(msg, sizeof(msg),
					 "--metrics-interval '%s': whole seconds from 1 to 86400", optarg);
			break;
		}
		case OPT_REPUBLISH_WINDOW: {
			long v = 0;
			bad = mqp_parse_long(optarg, 0, 86400, &v) != 0;
			if (!bad)
				opts->republish_window_s = (int)v;
			else
				snprintf(msg, sizeof(msg), "--republish-window '%s': seconds from 0 to 86400",
					 optarg);
			break;
		}
		case OPT_DEADLETTER_MAX_BYTES: {
			long v = 0;
			bad = mqp_parse_long(optarg, 0, OPTIONS__DEADLETTER_MAX, &v) != 0;
			if (!bad)
				opts->deadletter_max_bytes = v;
			else
				snprintf(msg, sizeof(msg),
					 "--deadletter-max-bytes '%s': bytes from 0 to %ld", optarg,
					 OPTIONS__DEADLETTER_MAX);
			break;
		}
		case OPT_DEADLETTER_MAX_AGE: {
			char why[200];
			bad = mqp_duration_arg(optarg, &opts->deadletter_max_age_ms, why, sizeof(why)) != 0;
			if (bad)
				snprintf(msg, sizeof(msg), "--deadletter-max-age %s", why);
			break;
		}
		case OPT_MAX_PAYLOAD:
			/* MQTT's own limit is 256 MB; an agent reads a payload whole */
			bad = mqp_parse_long(optarg, 64, 268435455, &opts->max_payload) != 0;
			if (bad)
				snprintf(msg, sizeof(msg), "--max-payload '%s': bytes from 64 to 268435455",
					 optarg);
			break;
		case OPT_SYNC:
			if (strcmp(optarg, "normal") == 0)
				opts->sync_full = 0;
			else if (strcmp(optarg, "full") == 0)
				opts->sync_full = 1;
			else
				bad = snprintf(msg, sizeof(msg), "--sync '%s': expected normal or full",
					       optarg) > 0;
			break;
		case 'h':
			options__usage(out, opts, agent, extra, n_extra);
			return MQP_PARSE_EXIT_OK;
		case 'V':
			fprintf(out, "mqpipe-%s %s\n", agent, MQPIPE_VERSION);
			return MQP_PARSE_EXIT_OK;
		case ':':
			snprintf(msg, sizeof(msg), "option '%s' needs an argument", argv[optind - 1]);
			bad = 1;
			break;
		case '?':
			if (optopt)
				snprintf(msg, sizeof(msg), "unknown option '-%c'", optopt);
			else
				snprintf(msg, sizeof(msg), "unknown option '%s'", argv[optind - 1]);
			bad = 1;
			break;
		default:
			if (c >= OPT_EXTRA_BASE && c < OPT_EXTRA_BASE + (int)n_extra) {
				const struct mqp_extra_option *x = &extra[c - OPT_EXTRA_BASE];
				char xerr[400] = "";
				if (x->handle(extra_ctx, x->has_arg ? optarg : NULL, xerr, sizeof(xerr))) {
					snprintf(msg, sizeof(msg), "--%s: %s", x->name, xerr);
					bad = 1;
				}
			}
			break;
		}
		if (bad) {
			fprintf(err, "mqpipe-%s: %s (see --help)\n", agent, msg);
			return MQP_PARSE_USAGE;
		}
	}
	if (argc - optind > opts->max_args) {
		fprintf(err, "mqpipe-%s: unexpected argument '%s' (see --help)\n", agent,
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
	/* Several instances on one host each need their own store and inbox. */
	if (!db_given && per_host &&
	    options__default_db(opts, opts->client_id, msg, sizeof(msg))) {
		fprintf(err, "mqpipe-%s: %s\n", agent, msg);
		return MQP_PARSE_USAGE;
	}
	return MQP_PARSE_RUN;
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
