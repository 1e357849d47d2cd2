/* mqpipe-replay: publishes a trace (README "Traces: record and replay") with its original spacing
 * scaled by --speed, at --rate N per second, or --fast; waits for every
 * acknowledgement. Reads its own format, mosquitto_sub -F %J/%j output and
 * mqtt-recorder CSV, detected from the first line; a malformed line is
 * reported with its number and skipped. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "mqpipe/error.h"
#include "trace.h"

/* Unacknowledged publishes at most. Small on purpose: Paho gives each
 * publish a message id by scanning every queued and unacknowledged message,
 * so a publish costs more the larger the window (--fast measured 8 400 msg/s
 * with 20 000, 37 000 with 500; scripts/bench replay). */
#define REPLAY__WINDOW 500
/* The broker keeps replay's session this long past a drop, so the publishes
 * a broker restart cut off are sent again; replay ends it when done. */
#define REPLAY__SESSION_S 300

struct replay {
	double speed;   /* 1 = as recorded */
	double rate;    /* messages per second, 0 = use the spacing */
	int fast;
	long loops;
	int qos;        /* -1: each message's own */
};

static double replay__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int replay__number(const char *arg, double lo, double hi, double *out, char *err,
			  size_t errlen)
{
	char *end;
	double v = strtod(arg, &end);
	if (end == arg || *end || !(v >= lo && v <= hi)) {
		snprintf(err, errlen, "'%s': a number from %g to %g", arg, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int replay__speed(void *ctx, const char *arg, char *err, size_t errlen)
{
	return replay__number(arg, 1e-3, 1e6, &((struct replay *)ctx)->speed, err, errlen);
}

static int replay__rate(void *ctx, const char *arg, char *err, size_t errlen)
{
	return replay__number(arg, 1e-3, 1e7, &((struct replay *)ctx)->rate, err, errlen);
}

static int replay__fast(void *ctx, const char *arg, char *err, size_t errlen)
{
	(void)arg;
	(void)err;
	(void)errlen;
	((struct replay *)ctx)->fast = 1;
	return 0;
}

static int replay__loop(void *ctx, const char *arg, char *err, size_t errlen)
{
	if (mqp_parse_long(arg, 1, 1000000, &((struct replay *)ctx)->loops)) {
		snprintf(err, errlen, "'%s': a whole number of passes from 1", arg);
		return -1;
	}
	return 0;
}

static int replay__qos(void *ctx, const char *arg, char *err, size_t errlen)
{
	long q;
	if (mqp_parse_long(arg, 0, 2, &q)) {
		snprintf(err, errlen, "'%s': 0, 1 or 2", arg);
		return -1;
	}
	((struct replay *)ctx)->qos = (int)q;
	return 0;
}

static const struct mqp_extra_option replay__options[] = {
	{"speed", 1, "X", "the recorded spacing divided by X (default 1)", replay__speed, 0},
	{"rate", 1, "N", "N messages per second instead of the recorded spacing", replay__rate, 0},
	{"fast", 0, NULL, "as fast as the broker acknowledges", replay__fast, 0},
	{"loop", 1, "N", "play the trace N times (default 1)", replay__loop, 0},
	{"qos", 1, "Q", "publish at QoS Q instead of each message's own", replay__qos, 'q'},
};

/* Publishes one message with its properties. */
static int replay__send(struct tool_client *c, const struct mqp_options *opts,
			const struct trace_msg *t, int qos, long window)
{
	char topic[2048];
	if (mqp_options_topic(opts, t->topic, topic, sizeof(topic)))
		return -1;
	MQTTAsync_message m = MQTTAsync_message_initializer;
	m.payload = t->payload;
	m.payloadlen = (int)t->len;
	m.qos = qos;
	m.retained = t->retain;
	MQTTProperty p;
	if (t->response_topic) {
		p = (MQTTProperty){.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC};
		p.value.data.data = t->response_topic;
		p.value.data.len = (int)strlen(t->response_topic);
		MQTTProperties_add(&m.properties, &p);
	}
	if (t->correlation) {
		p = (MQTTProperty){.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
		p.value.data.data = (char *)t->correlation;
		p.value.data.len = (int)t->correlation_len;
		MQTTProperties_add(&m.properties, &p);
	}
	if (t->content_type) {
		p = (MQTTProperty){.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE};
		p.value.data.data = t->content_type;
		p.value.data.len = (int)strlen(t->content_type);
		MQTTProperties_add(&m.properties, &p);
	}
	for (int i = 0; i < t->user_count; i++) {
		p = (MQTTProperty){.identifier = MQTTPROPERTY_CODE_USER_PROPERTY};
		p.value.data.data = t->user_keys[i];
		p.value.data.len = (int)strlen(t->user_keys[i]);
		p.value.value.data = t->user_values[i];
		p.value.value.len = (int)strlen(t->user_values[i]);
		MQTTProperties_add(&m.properties, &p);
	}
	int rc = tool_publish(c, topic, &m, window);
	MQTTProperties_free(&m.properties);
	return rc;
}

int main(int argc, char **argv)
{
	struct replay r = {.speed = 1, .loops = 1, .qos = -1};
	struct mqp_options opts = {
		.max_args = 1,
		.tool_synopsis = "[OPTION]... FILE",
		.tool_about = "Publishes a trace (mqpipe JSON Lines, mosquitto_sub -F %J, or mqtt-recorder\n"
			      "CSV; FILE - is standard input) with its recorded spacing, and waits for\n"
			      "every acknowledgement.",
	};
	switch (mqp_options_parse(&opts, "replay", argc, argv, replay__options,
				  MQP_LEN(replay__options), &r, stdout, stderr)) {
	case MQP_PARSE_EXIT_OK: return 0;
	case MQP_PARSE_USAGE: return MQP_EX_USAGE;
	case MQP_PARSE_RUN: break;
	}
	if (opts.n_args != 1 || (r.fast && r.rate > 0)) {
		fputs(opts.n_args != 1 ? "mqpipe-replay: give the trace FILE (- for standard input)\n"
				       : "mqpipe-replay: --fast and --rate exclude each other\n", stderr);
		return MQP_EX_USAGE;
	}
	const char *path = opts.args[0];
	int from_stdin = strcmp(path, "-") == 0;
	if (from_stdin && r.loops > 1) {
		fputs("mqpipe-replay: --loop needs a file, not standard input\n", stderr);
		return MQP_EX_USAGE;
	}
	FILE *in = from_stdin ? stdin : fopen(path, "r");
	if (!in) {
		fprintf(stderr, "mqpipe-replay: cannot read '%s': %s\n", path, strerror(errno));
		return 66; /* EX_NOINPUT */
	}
	struct tool_client *c = tool_connect(&opts, "mqpipe-replay", NULL, NULL, 30, REPLAY__SESSION_S);
	if (!c)
		return 69;
	int tty = isatty(2);
	long sent = 0, skipped = 0;
	double start = replay__now(), last_progress = start, lag = 0, offset = 0;
	char *line = NULL;
	size_t cap = 0;
	enum trace_format format = TRACE_UNKNOWN;
	for (long pass = 0; pass < r.loops; pass++) {
		if (pass > 0)
			rewind(in);
		double first = -1, last_t = 0;
		long lineno = 0;
		ssize_t n;
		while ((n = getline(&line, &cap, in)) >= 0) {
			lineno++;
			if (format == TRACE_UNKNOWN && (format = trace_detect(line)) == TRACE_UNKNOWN &&
			    strspn(line, " \t\r\n") != (size_t)n) {
				fprintf(stderr, "%s:%ld: not a trace line (mqpipe JSON Lines, mosquitto_sub -F %%J, "
						"or mqtt-recorder CSV)\n", path, lineno);
				skipped++;
				continue;
			}
			struct trace_msg t;
			char err[300] = "";
			int rc = format == TRACE_UNKNOWN ? 1 : trace_parse(format, line, &first, &t, err, sizeof(err));
			if (rc < 0) {
				fprintf(stderr, "%s:%ld: %s, skipped\n", path, lineno, err);
				skipped++;
				continue;
			}
			if (rc > 0)
				continue;
			double due = r.fast ? 0 : r.rate > 0 ? (double)sent / r.rate : (offset + t.t) / r.speed;
			double now = replay__now() - start;
			if (due > now)
				usleep((useconds_t)((due - now) * 1e6));
			else
				lag = now - due;
			last_t = t.t;
			if (replay__send(c, &opts, &t, r.qos >= 0 ? r.qos : t.qos, REPLAY__WINDOW)) {
				trace_msg_free(&t);
				free(line);
				tool_close(c, 0);
				return 1;
			}
			trace_msg_free(&t);
			sent++;
			now = replay__now();
			if (tty && now - last_progress >= 0.5) {
				last_progress = now;
				fprintf(stderr, "\r%ld sent, %.0f msg/s, %.3f s behind schedule   ", sent,
					sent / (now - start), r.fast ? 0.0 : lag);
			}
		}
		offset += last_t + (r.speed > 0 ? 0.001 : 0);
	}
	free(line);
	if (in != stdin)
		fclose(in);
	long left = tool_drain(c, 60);
	double secs = replay__now() - start;
	long failed = tool_failed(c);
	if (tty)
		fputc('\n', stderr);
	fprintf(stderr, "mqpipe-replay: %ld messages sent in %.2f s (%.0f msg/s), %ld acknowledged, "
			"%ld refused, %ld unanswered, %ld lines skipped, %ld sent again after a drop\n",
		sent, secs, secs > 0 ? sent / secs : 0.0, tool_acked(c), failed, left, skipped,
		tool_resent(c));
	tool_close(c, 0);
	return left || failed ? 1 : 0;
}
