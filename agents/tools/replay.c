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

static int replay__speed(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_number_arg(arg, 1e-3, 1e6, &((struct replay *)ctx)->speed, err, errlen);
}

static int replay__rate(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_number_arg(arg, 1e-3, 1e7, &((struct replay *)ctx)->rate, err, errlen);
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

/* A replay in progress. */
struct replay_run {
	struct replay r;
	struct mqp_options opts;
	struct tool_client *c;
	const char *path;
	FILE *in;
	int tty;                 /* progress on standard error */
	long sent, skipped;
	double start, last_progress, lag;
	double offset;           /* the trace time where this pass starts (--loop) */
	enum trace_format format; /* detected from the first trace line */
	char *line;
	size_t cap;
};

/* Parses argv into run->r and run->opts. Returns -1 to go on, else the
 * exit code (0 after --help, MQP_EX_USAGE after a usage error, printed). */
static int replay__parse(struct replay_run *run, int argc, char **argv)
{
	run->r = (struct replay){.speed = 1, .loops = 1, .qos = -1};
	run->opts = (struct mqp_options){
		.max_args = 1,
		.tool_synopsis = "[OPTION]... FILE",
		.tool_about = "Publishes a trace (mqpipe JSON Lines, mosquitto_sub -F %J, or mqtt-recorder\n"
			      "CSV; FILE - is standard input) with its recorded spacing, and waits for\n"
			      "every acknowledgement.",
	};
	switch (mqp_options_parse(&run->opts, "replay", argc, argv, replay__options,
				  MQP_LEN(replay__options), &run->r, stdout, stderr)) {
	case MQP_PARSE_EXIT_OK: return 0;
	case MQP_PARSE_USAGE: return MQP_EX_USAGE;
	case MQP_PARSE_RUN: break;
	}
	const char *why = NULL;
	if (run->opts.n_args != 1)
		why = "give the trace FILE (- for standard input)";
	else if (run->r.fast && run->r.rate > 0)
		why = "--fast and --rate exclude each other";
	else if (strcmp(run->opts.args[0], "-") == 0 && run->r.loops > 1)
		why = "--loop needs a file, not standard input";
	if (why) {
		fprintf(stderr, "mqpipe-replay: %s\n", why);
		return MQP_EX_USAGE;
	}
	run->path = run->opts.args[0];
	return -1;
}

/* Waits for t's time on the schedule (--speed, --rate or --fast), then
 * publishes it and shows progress. Returns 0 or -1 (printed). */
static int replay__play(struct replay_run *run, const struct trace_msg *t)
{
	const struct replay *r = &run->r;
	double due = r->fast ? 0 : r->rate > 0 ? (double)run->sent / r->rate : (run->offset + t->t) / r->speed;
	double now = replay__now() - run->start;
	if (due > now)
		usleep((useconds_t)((due - now) * 1e6));
	else
		run->lag = now - due;
	if (replay__send(run->c, &run->opts, t, r->qos >= 0 ? r->qos : t->qos, REPLAY__WINDOW))
		return -1;
	run->sent++;
	now = replay__now();
	if (run->tty && now - run->last_progress >= 0.5) {
		run->last_progress = now;
		fprintf(stderr, "\r%ld sent, %.0f msg/s, %.3f s behind schedule   ", run->sent,
			run->sent / (now - run->start), r->fast ? 0.0 : run->lag);
	}
	return 0;
}

/* One line of the trace (n bytes, the lineno-th): a message is played, a
 * malformed line reported and skipped. *first and *last_t are the pass's
 * first and latest message times. Returns 0 or -1 (a publish failed). */
static int replay__line(struct replay_run *run, long lineno, ssize_t n, double *first, double *last_t)
{
	if (run->format == TRACE_UNKNOWN && (run->format = trace_detect(run->line)) == TRACE_UNKNOWN &&
	    strspn(run->line, " \t\r\n") != (size_t)n) {
		fprintf(stderr, "%s:%ld: not a trace line (mqpipe JSON Lines, mosquitto_sub -F %%J, "
				"or mqtt-recorder CSV)\n", run->path, lineno);
		run->skipped++;
		return 0;
	}
	struct trace_msg t;
	char err[300] = "";
	int rc = run->format == TRACE_UNKNOWN ? 1 : trace_parse(run->format, run->line, first, &t, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s:%ld: %s, skipped\n", run->path, lineno, err);
		run->skipped++;
	}
	if (rc != 0)
		return 0;
	*last_t = t.t;
	rc = replay__play(run, &t);
	trace_msg_free(&t);
	return rc;
}

/* One pass over the trace (--loop N makes N, each after the last). Returns 0 or -1. */
static int replay__pass(struct replay_run *run)
{
	double first = -1, last_t = 0;
	long lineno = 0;
	ssize_t n;
	while ((n = getline(&run->line, &run->cap, run->in)) >= 0)
		if (replay__line(run, ++lineno, n, &first, &last_t))
			return -1;
	run->offset += last_t + (run->r.speed > 0 ? 0.001 : 0);
	return 0;
}

/* Waits for the acknowledgements and prints the summary. Returns the exit code. */
static int replay__report(struct replay_run *run)
{
	long left = tool_drain(run->c, 60);
	double secs = replay__now() - run->start;
	long failed = tool_failed(run->c);
	if (run->tty)
		fputc('\n', stderr);
	fprintf(stderr, "mqpipe-replay: %ld messages sent in %.2f s (%.0f msg/s), %ld acknowledged, "
			"%ld refused, %ld unanswered, %ld lines skipped, %ld sent again after a drop\n",
		run->sent, secs, secs > 0 ? run->sent / secs : 0.0, tool_acked(run->c), failed, left,
		run->skipped, tool_resent(run->c));
	return left || failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct replay_run run;
	int code = replay__parse(&run, argc, argv);
	if (code >= 0)
		return code;
	run.in = strcmp(run.path, "-") == 0 ? stdin : fopen(run.path, "r");
	if (!run.in) {
		fprintf(stderr, "mqpipe-replay: cannot read '%s': %s\n", run.path, strerror(errno));
		return 66; /* EX_NOINPUT */
	}
	run.c = tool_connect(&run.opts, "mqpipe-replay", NULL, NULL, 30, REPLAY__SESSION_S);
	if (!run.c)
		return 69; /* EX_UNAVAILABLE */
	run.tty = isatty(2);
	run.start = run.last_progress = replay__now();
	int failed = 0;
	for (long pass = 0; pass < run.r.loops && !failed; pass++) {
		if (pass > 0)
			rewind(run.in);
		failed = replay__pass(&run) != 0;
	}
	free(run.line);
	if (run.in != stdin)
		fclose(run.in);
	code = failed ? 1 : replay__report(&run);
	tool_close(run.c, 0);
	return code;
}
