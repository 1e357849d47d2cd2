/* mqpipe-record: records what the broker carries on some topic filters as a
 * trace (README "Traces: record and replay"): one JSON Lines record per message, flushed as it is
 * written, so a recorder killed at any moment leaves a readable file. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "mqpipe/error.h"
#include "trace.h"

#define RECORD__FILTERS_MAX 32
#define RECORD__SESSION_S 86400 /* --keep-session: a day */

struct record {
	char *filters[RECORD__FILTERS_MAX];
	int n_filters;
	const char *output;
	long count;        /* stop after this many, 0 = no limit */
	double duration_s; /* stop after this long, 0 = no limit */
	int keep_session;  /* -c: the broker keeps the session (and queues) while we are away */
	FILE *out;
	double first;      /* monotonic seconds of the first message, <0 before */
	atomic_long written;
	atomic_int done;
	pthread_mutex_t lock;
};

static double record__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Copies a binary property into a new buffer. */
static void *record__copy(const MQTTLenString *s)
{
	void *p = malloc((size_t)s->len + 1);
	if (p) {
		memcpy(p, s->data, (size_t)s->len);
		((char *)p)[s->len] = '\0';
	}
	return p;
}

static int record__on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct record *r = ctx;
	struct trace_msg t = {0};
	double now = record__now();
	pthread_mutex_lock(&r->lock);
	if (!atomic_load(&r->done)) {
		if (r->first < 0)
			r->first = now;
		t.t = now - r->first;
		t.topic = topic_len > 0 ? strndup(topic, (size_t)topic_len) : strdup(topic);
		t.payload = malloc((size_t)m->payloadlen + 1);
		if (t.payload)
			memcpy(t.payload, m->payload, (size_t)m->payloadlen);
		t.len = (size_t)m->payloadlen;
		t.qos = m->qos;
		t.retain = m->retained;
		for (int i = 0; i < m->properties.count; i++) {
			MQTTProperty *p = &m->properties.array[i];
			switch (p->identifier) {
			case MQTTPROPERTY_CODE_RESPONSE_TOPIC:
				t.response_topic = record__copy(&p->value.data);
				break;
			case MQTTPROPERTY_CODE_CORRELATION_DATA:
				t.correlation = record__copy(&p->value.data);
				t.correlation_len = (size_t)p->value.data.len;
				break;
			case MQTTPROPERTY_CODE_CONTENT_TYPE:
				t.content_type = record__copy(&p->value.data);
				break;
			case MQTTPROPERTY_CODE_USER_PROPERTY:
				if (t.user_count < 16) {
					t.user_keys[t.user_count] = record__copy(&p->value.data);
					t.user_values[t.user_count++] = record__copy(&p->value.value);
				}
				break;
			default:
				break;
			}
		}
		char *line = t.topic && t.payload ? trace_render(&t) : NULL;
		if (line) {
			fputs(line, r->out);
			fputc('\n', r->out);
			fflush(r->out); /* a killed recorder leaves every whole line */
			free(line);
			long n = atomic_fetch_add(&r->written, 1) + 1;
			if (r->count && n >= r->count)
				atomic_store(&r->done, 1);
		} else {
			fprintf(stderr, "mqpipe-record: out of memory, a message on %s is lost\n", topic);
		}
		trace_msg_free(&t);
	}
	pthread_mutex_unlock(&r->lock);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static int record__topic(void *ctx, const char *arg, char *err, size_t errlen)
{
	struct record *r = ctx;
	if (r->n_filters >= RECORD__FILTERS_MAX || !*arg) {
		snprintf(err, errlen, "at most %d non-empty filters", RECORD__FILTERS_MAX);
		return -1;
	}
	r->filters[r->n_filters++] = (char *)arg;
	return 0;
}

static int record__output(void *ctx, const char *arg, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	((struct record *)ctx)->output = arg;
	return 0;
}

static int record__count(void *ctx, const char *arg, char *err, size_t errlen)
{
	if (mqp_parse_long(arg, 1, 1000000000L, &((struct record *)ctx)->count)) {
		snprintf(err, errlen, "'%s': a whole number from 1", arg);
		return -1;
	}
	return 0;
}

static int record__duration(void *ctx, const char *arg, char *err, size_t errlen)
{
	char *end;
	double d = strtod(arg, &end);
	if (end == arg || *end || !(d > 0 && d < 1e9)) {
		snprintf(err, errlen, "'%s': seconds, more than 0", arg);
		return -1;
	}
	((struct record *)ctx)->duration_s = d;
	return 0;
}

static int record__keep_session(void *ctx, const char *arg, char *err, size_t errlen)
{
	(void)arg;
	(void)err;
	(void)errlen;
	((struct record *)ctx)->keep_session = 1;
	return 0;
}

static const struct mqp_extra_option record__options[] = {
	{"topic", 1, "FILTER", "a topic filter to record (repeat for more; required)", record__topic, 't'},
	{"output", 1, "FILE", "where to write the trace (default: standard output)", record__output, 'o'},
	{"count", 1, "N", "stop after N messages", record__count, 0},
	{"duration", 1, "S", "stop after S seconds", record__duration, 0},
	{"keep-session", 0, "", "keep the session for a day after a disconnect (needs -i ID):\n"
	 "                            what arrives meanwhile, or in a broker restart, is\n"
	 "                            recorded on return (mosquitto_sub's -c)", record__keep_session, 'c'},
};

int main(int argc, char **argv)
{
	static struct record r = {.first = -1, .lock = PTHREAD_MUTEX_INITIALIZER};
	struct mqp_options opts = {
		.tool_synopsis = "-t FILTER... [OPTION]...",
		.tool_about = "Writes the messages on the topic filters as JSON Lines, one flushed line each.",
	};
	switch (mqp_options_parse(&opts, "record", argc, argv, record__options,
				  MQP_LEN(record__options), &r, stdout, stderr)) {
	case MQP_PARSE_EXIT_OK: return 0;
	case MQP_PARSE_USAGE: return MQP_EX_USAGE;
	case MQP_PARSE_RUN: break;
	}
	if (r.n_filters == 0) {
		fputs("mqpipe-record: give at least one -t FILTER (see --help)\n", stderr);
		return MQP_EX_USAGE;
	}
	if (r.keep_session && !opts.has_client_id) {
		fputs("mqpipe-record: --keep-session needs -i ID, the session's name\n", stderr);
		return MQP_EX_USAGE;
	}
	r.out = !r.output || strcmp(r.output, "-") == 0 ? stdout : fopen(r.output, "w");
	if (!r.out) {
		fprintf(stderr, "mqpipe-record: cannot write '%s'\n", r.output);
		return 73; /* EX_CANTCREAT */
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	struct tool_client *c = tool_connect(&opts, "mqpipe-record", record__on_message, &r, 30,
					     r.keep_session ? RECORD__SESSION_S : 0);
	if (!c || tool_subscribe(c, r.filters, r.n_filters)) {
		fputs("mqpipe-record: cannot subscribe\n", stderr);
		return 69; /* EX_UNAVAILABLE */
	}
	fprintf(stderr, "mqpipe-record: recording %d filter(s) from %s\n", r.n_filters, opts.broker);
	double start = record__now();
	while (!atomic_load(&r.done)) {
		struct timespec tick = {0, 50000000L};
		if (sigtimedwait(&sigs, NULL, &tick) > 0)
			break;
		if (r.duration_s > 0 && record__now() - start >= r.duration_s)
			break;
	}
	pthread_mutex_lock(&r.lock);
	atomic_store(&r.done, 1);
	pthread_mutex_unlock(&r.lock);
	tool_close(c, r.keep_session);
	fprintf(stderr, "mqpipe-record: %ld messages\n", atomic_load(&r.written));
	if (r.out != stdout)
		fclose(r.out);
	return 0;
}
