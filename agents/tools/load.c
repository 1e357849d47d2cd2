/* mqpipe-load: load for request/response agents, and the plain responder
 * that is their yardstick (README "Performance", "Ingestion").
 *
 *   mqpipe-load [OPTION]... [-t TOPIC] [-n N] [--window W | --rate R] [--invalid P] [--json]
 *     sends N user.ingest requests (MQTT 5, QoS 1, a response topic of its own
 *     and "<pid>-<number>" as correlation data): random records, P % of
 *     them invalid (default 20), half as JSON and half as query strings. With
 *     --window it keeps W requests outstanding (as fast as replies come back,
 *     default 64); with --rate it sends R per second. Then it reports
 *     requests/s (first send to last reply), latency p50/p95/p99/max and the
 *     200/400 split, as text or one JSON line.
 *   mqpipe-load --echo [OPTION]... [-t TOPIC]
 *     answers every request on TOPIC at once with {"status":200} on its
 *     response topic and correlation data: what a responder costs with no
 *     work at all.
 * OPTION is any of the common connection flags (-b, -i, -p, -u,
 * --password-file, --cafile, --cert, --key and their MQPIPE_* variables),
 * parsed and used as by mqpipe-record and mqpipe-replay (options.h, client.h).
 *
 * Why hand-written: mosquitto_rr sends one request per process, and no
 * Debian tool drives MQTT 5 request/response under load. */
#include <MQTTAsync.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "mqpipe/options.h"

struct load {
	struct tool_client *conn;
	MQTTAsync client;      /* conn's Paho handle */
	const char *topic_arg; /* -t, before -p */
	char topic[1024];      /* the request topic (what --echo answers), under -p */
	char reply_topic[1280];
	char *filters[1];      /* what is subscribed: reply_topic, or topic with --echo */
	int echo, json;
	long n, window, invalid_pct;
	double rate;
	/* Guarded by lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long outstanding, answered, ok, bad, other, unmatched;
	int64_t *sent_us;      /* per request number, 0 once answered */
	double *latency_ms;    /* in order of answer */
	int64_t first_us, last_us;
	uint64_t rng;
};

static int64_t load__now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static unsigned load__rand(struct load *l, unsigned n)
{
	l->rng ^= l->rng << 13;
	l->rng ^= l->rng >> 7;
	l->rng ^= l->rng << 17;
	return (unsigned)(l->rng % n);
}

/* One random record, valid or broken in one of the fields. */
static int load__record(struct load *l, long i, char *buf, size_t size)
{
	char name[32], email[64], pin[16];
	snprintf(name, sizeof(name), "user%ld", i);
	snprintf(email, sizeof(email), "u%ld@host%u.com", i, load__rand(l, 1000));
	snprintf(pin, sizeof(pin), "%0*u", 4 + (int)load__rand(l, 3), load__rand(l, 10000));
	if ((long)load__rand(l, 100) < l->invalid_pct) {
		switch (load__rand(l, 3)) {
		case 0: snprintf(email, sizeof(email), "u%ld@host.org", i); break;
		case 1: snprintf(pin, sizeof(pin), "12x"); break;
		default: name[0] = '\0'; break;
		}
	}
	if (load__rand(l, 2))
		return snprintf(buf, size, "{\"user_name\":\"%s\",\"email\":\"%s\",\"pincode\":\"%s\"}",
				name, email, pin);
	return snprintf(buf, size, "user_name=%s&email=%s&pincode=%s", name, email, pin);
}

/* Publishes payload at QoS 1, with a response topic and correlation data
 * when given. Returns Paho's code. */
static int load__publish(struct load *l, const char *topic, const char *payload, size_t len,
			 const char *response_topic, const void *corr, int corr_len)
{
	MQTTAsync_message m = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	m.payload = (void *)payload;
	m.payloadlen = (int)len;
	m.qos = 1;
	if (response_topic) {
		MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC};
		p.value.data.data = (char *)response_topic;
		p.value.data.len = (int)strlen(response_topic);
		MQTTProperties_add(&m.properties, &p);
	}
	if (corr) {
		MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
		p.value.data.data = (char *)corr;
		p.value.data.len = corr_len;
		MQTTProperties_add(&m.properties, &p);
	}
	int rc = MQTTAsync_sendMessage(l->client, topic, &m, &ro);
	MQTTProperties_free(&m.properties);
	return rc;
}

/* --echo: answers a request on its response topic, with its correlation data. */
static void load__echo_one(struct load *l, MQTTAsync_message *m)
{
	MQTTProperty *rt = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
	MQTTProperty *cd = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	if (!rt)
		return;
	char reply_to[1024];
	snprintf(reply_to, sizeof(reply_to), "%.*s", rt->value.data.len, rt->value.data.data);
	load__publish(l, reply_to, "{\"status\":200}", 14, NULL, cd ? cd->value.data.data : NULL,
		      cd ? cd->value.data.len : 0);
}

/* An answer: matched to its request by the correlation data "<pid>-<i>". */
static void load__answer(struct load *l, MQTTAsync_message *m)
{
	int64_t now = load__now_us();
	MQTTProperty *cd = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	char num[40] = "";
	if (cd && cd->value.data.len < (int)sizeof(num))
		memcpy(num, cd->value.data.data, (size_t)cd->value.data.len);
	const char *dash = strchr(num, '-');
	long i = dash ? strtol(dash + 1, NULL, 10) : -1;
	const char *p = m->payload;
	int is200 = m->payloadlen >= 13 && memcmp(p, "{\"status\":200", 13) == 0;
	int is400 = m->payloadlen >= 13 && memcmp(p, "{\"status\":400", 13) == 0;
	pthread_mutex_lock(&l->lock);
	if (cd && i >= 0 && i < l->n && l->sent_us[i]) {
		l->latency_ms[l->answered++] = (double)(now - l->sent_us[i]) / 1000.0;
		l->sent_us[i] = 0;
		l->outstanding--;
		l->last_us = now;
		if (is200)
			l->ok++;
		else if (is400)
			l->bad++;
		else
			l->other++;
		pthread_cond_broadcast(&l->cond);
	} else {
		l->unmatched++;
	}
	pthread_mutex_unlock(&l->lock);
}

static int load__on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	(void)topic_len;
	struct load *l = ctx;
	if (l->echo)
		load__echo_one(l, m);
	else
		load__answer(l, m);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static int load__cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double load__pct(const double *v, long n, double p)
{
	if (n == 0)
		return 0;
	long i = (long)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* The flags of mqpipe-load's own (struct mqp_extra_option handlers). */
static int load__opt_topic(void *ctx, const char *arg, char *err, size_t errlen)
{
	if (!*arg || strpbrk(arg, "+#")) {
		snprintf(err, errlen, "'%s': a topic name, without wildcards", arg);
		return -1;
	}
	((struct load *)ctx)->topic_arg = arg;
	return 0;
}

static int load__opt_whole(const char *arg, long min, long max, long *out, char *err, size_t errlen)
{
	if (mqp_parse_long(arg, min, max, out) == 0)
		return 0;
	snprintf(err, errlen, "'%s': a whole number from %ld to %ld", arg, min, max);
	return -1;
}

static int load__opt_count(void *ctx, const char *arg, char *err, size_t errlen)
{
	return load__opt_whole(arg, 1, 10000000, &((struct load *)ctx)->n, err, errlen);
}

static int load__opt_window(void *ctx, const char *arg, char *err, size_t errlen)
{
	return load__opt_whole(arg, 1, 1000000, &((struct load *)ctx)->window, err, errlen);
}

static int load__opt_invalid(void *ctx, const char *arg, char *err, size_t errlen)
{
	return load__opt_whole(arg, 0, 100, &((struct load *)ctx)->invalid_pct, err, errlen);
}

static int load__opt_rate(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_number_arg(arg, 1e-3, 1e7, &((struct load *)ctx)->rate, err, errlen);
}

static int load__opt_json(void *ctx, const char *arg, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	((struct load *)ctx)->json = 1;
	return 0;
}

static int load__opt_echo(void *ctx, const char *arg, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	((struct load *)ctx)->echo = 1;
	return 0;
}

static const struct mqp_extra_option load__options[] = {
	{"topic", 1, "TOPIC", "the request topic (default user.ingest; under -p)", load__opt_topic, 't'},
	{"count", 1, "N", "requests to send (default 10000)", load__opt_count, 'n'},
	{"window", 1, "W", "requests outstanding at once (default 64)", load__opt_window, 0},
	{"rate", 1, "R", "R requests a second instead of a window", load__opt_rate, 0},
	{"invalid", 1, "PCT", "the percentage of invalid records (default 20)", load__opt_invalid, 0},
	{"json", 0, NULL, "report as one JSON line", load__opt_json, 0},
	{"echo", 0, NULL, "answer every request on TOPIC with {\"status\":200} instead",
	 load__opt_echo, 0},
};

/* Parses argv into l and opts. Returns -1 to go on, else the exit code
 * (0 after --help, MQP_EX_USAGE after a usage error, printed). */
static int load__parse(struct load *l, struct mqp_options *opts, int argc, char **argv)
{
	*opts = (struct mqp_options){
		.tool_synopsis = "[OPTION]...",
		.tool_about = "Sends user.ingest requests (MQTT 5 request/response), then reports requests/s,\n"
			      "the latency of the answers and their 200/400 split; with --echo, answers\n"
			      "every request at once instead: a responder that does no work.",
	};
	switch (mqp_options_parse(opts, "load", argc, argv, load__options, MQP_LEN(load__options), l,
				  stdout, stderr)) {
	case MQP_PARSE_EXIT_OK: return 0;
	case MQP_PARSE_USAGE: return MQP_EX_USAGE;
	case MQP_PARSE_RUN: break;
	}
	if (mqp_options_topic(opts, l->topic_arg, l->topic, sizeof(l->topic))) {
		fprintf(stderr, "mqpipe-load: -p and -t make too long a topic (see --help)\n");
		return MQP_EX_USAGE;
	}
	/* Under the ingest agent's default --reply-prefix, in the request
	 * topic's namespace ("bench/user.ingest" is answered under
	 * bench/replies/), and under the user's own replies/USER/, which the
	 * secure profile lets every identity read (README "Security"). */
	const char *slash = strrchr(l->topic, '/');
	snprintf(l->reply_topic, sizeof(l->reply_topic), "%.*s%sreplies/%s/%d",
		 slash ? (int)(slash - l->topic) : 0, l->topic, slash ? "/" : "",
		 opts->has_username ? opts->username : "mqpipe-load", (int)getpid());
	l->filters[0] = l->echo ? l->topic : l->reply_topic;
	return -1;
}

/* Sends the n requests, each once the window (or the rate) lets it. */
static void load__send_all(struct load *l)
{
	char payload[512], corr[40];
	int64_t start = load__now_us();
	for (long i = 0; i < l->n; i++) {
		pthread_mutex_lock(&l->lock);
		while (l->rate == 0 && l->outstanding >= l->window)
			pthread_cond_wait(&l->cond, &l->lock);
		pthread_mutex_unlock(&l->lock);
		if (l->rate > 0) { /* paced: wait for this request's slot */
			int64_t due = start + (int64_t)((double)i * 1e6 / l->rate), now = load__now_us();
			if (due > now)
				usleep((useconds_t)(due - now));
		}
		int len = load__record(l, i, payload, sizeof(payload));
		/* Unique across runs: the ingest agent answers a repeat from memory. */
		int clen = snprintf(corr, sizeof(corr), "%d-%ld", (int)getpid(), i);
		pthread_mutex_lock(&l->lock);
		l->sent_us[i] = load__now_us();
		if (i == 0)
			l->first_us = l->sent_us[0];
		l->outstanding++;
		pthread_mutex_unlock(&l->lock);
		while (load__publish(l, l->topic, payload, (size_t)len, l->reply_topic, corr, clen) !=
		       MQTTASYNC_SUCCESS)
			usleep(1000); /* disconnected or buffer full: try again */
	}
}

/* Waits for the stragglers, at most 10 s after the last answer. Returns
 * the number answered; the latencies are then sorted. */
static long load__wait_answers(struct load *l)
{
	pthread_mutex_lock(&l->lock);
	while (l->outstanding > 0) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		if (pthread_cond_timedwait(&l->cond, &l->lock, &until) != 0)
			break;
	}
	long answered = l->answered;
	pthread_mutex_unlock(&l->lock);
	qsort(l->latency_ms, (size_t)answered, sizeof(double), load__cmp);
	return answered;
}

/* Prints the rate, the latencies and the answers' split, as text or JSON. */
static void load__report(const struct load *l, long answered)
{
	long lost = l->n - answered;
	double secs = (double)(l->last_us - l->first_us) / 1e6;
	double rps = secs > 0 ? (double)answered / secs : 0;
	double p50 = load__pct(l->latency_ms, answered, 50), p95 = load__pct(l->latency_ms, answered, 95),
	       p99 = load__pct(l->latency_ms, answered, 99),
	       max = answered ? l->latency_ms[answered - 1] : 0;
	if (l->json)
		printf("{\"requests\":%ld,\"answered\":%ld,\"lost\":%ld,\"rps\":%.1f,\"p50_ms\":%.3f,"
		       "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"status_200\":%ld,"
		       "\"status_400\":%ld,\"other\":%ld}\n",
		       l->n, answered, lost, rps, p50, p95, p99, max, l->ok, l->bad, l->other);
	else
		printf("%ld requests, %ld answered (%ld lost) in %.2f s: %.0f requests/s\n"
		       "latency ms: p50 %.3f  p95 %.3f  p99 %.3f  max %.3f\n"
		       "answers: %ld x 200, %ld x 400, %ld other\n",
		       l->n, answered, lost, secs, rps, p50, p95, p99, max, l->ok, l->bad, l->other);
}

/* Connects and subscribes (the answers' topic, or with --echo the
 * requests'). Returns 0, or -1 after printing why. */
static int load__connect(struct load *l, const struct mqp_options *opts)
{
	l->conn = tool_connect(opts, "mqpipe-load", load__on_message, l, 30, 0);
	if (!l->conn)
		return -1;
	l->client = tool_handle(l->conn);
	if (tool_subscribe(l->conn, l->filters, 1)) {
		fprintf(stderr, "mqpipe-load: cannot subscribe to %s on %s\n", l->filters[0], opts->broker);
		tool_close(l->conn, 0);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct load l = {.topic_arg = "user.ingest", .n = 10000, .window = 64,
				.invalid_pct = 20, .lock = PTHREAD_MUTEX_INITIALIZER,
				.cond = PTHREAD_COND_INITIALIZER};
	struct mqp_options opts;
	int code = load__parse(&l, &opts, argc, argv);
	if (code >= 0)
		return code;
	l.rng = (uint64_t)load__now_us() | 1;
	if (!l.echo && (!(l.sent_us = calloc((size_t)l.n, sizeof(int64_t))) ||
			!(l.latency_ms = calloc((size_t)l.n, sizeof(double))))) {
		fputs("mqpipe-load: out of memory\n", stderr);
		return 1;
	}
	if (load__connect(&l, &opts))
		return 69; /* EX_UNAVAILABLE */
	if (l.echo) {
		fprintf(stderr, "mqpipe-load: answering %s on %s\n", l.topic, opts.broker);
		for (;;)
			pause();
	}
	load__send_all(&l);
	long answered = load__wait_answers(&l);
	load__report(&l, answered);
	tool_close(l.conn, 0);
	free(l.sent_us);
	free(l.latency_ms);
	return answered < l.n ? 1 : 0;
}
