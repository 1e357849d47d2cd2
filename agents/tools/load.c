/* mqpipe-load: load for request/response agents, and the plain responder
 * that is their yardstick.
 *
 *   mqpipe-load [-b URI] [-t TOPIC] [-n N] [--window W | --rate R] [--invalid P] [--json]
 *     sends N user.ingest requests (MQTT 5, QoS 1, a response topic of its own
 *     and "<pid>-<number>" as correlation data): random records, P % of
 *     them invalid (default 20), half as JSON and half as query strings. With
 *     --window it keeps W requests outstanding (as fast as replies come back,
 *     default 64); with --rate it sends R per second. Then it reports
 *     requests/s (first send to last reply), latency p50/p95/p99/max and the
 *     200/400 split, as text or one JSON line.
 *   mqpipe-load --echo [-b URI] [-t TOPIC]
 *     answers every request on TOPIC at once with {"status":200} on its
 *     response topic and correlation data: what a responder costs with no
 *     work at all.
 *
 * Why hand-written: mosquitto_rr sends one request per process, and no
 * Debian tool drives MQTT 5 request/response under load. */
#include <MQTTAsync.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mqpipe/net.h"
#include "mqpipe/options.h"

#define LOAD__EX_USAGE 64

struct load {
	MQTTAsync client;
	const char *broker;
	const char *topic;
	char reply_topic[128];
	int echo;
	long n, window, invalid_pct;
	double rate;
	/* Guarded by lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long outstanding, answered, ok, bad, other, unmatched;
	int subscribed;
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

static void load__on_subscribed(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	struct load *l = ctx;
	pthread_mutex_lock(&l->lock);
	l->subscribed = 1;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void load__on_connected(void *ctx, char *cause)
{
	(void)cause;
	struct load *l = ctx;
	mqp_net_nodelay_to(l->broker, NULL); /* Paho never sets it: ~40 ms a hop without */
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess5 = load__on_subscribed;
	ro.context = l;
	MQTTAsync_subscribe(l->client, l->echo ? l->topic : l->reply_topic, 1, &ro);
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

static int load__on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	(void)topic_len;
	struct load *l = ctx;
	MQTTProperty *rt = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
	MQTTProperty *cd = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	if (l->echo) {
		if (rt) {
			char reply_to[1024];
			snprintf(reply_to, sizeof(reply_to), "%.*s", rt->value.data.len, rt->value.data.data);
			load__publish(l, reply_to, "{\"status\":200}", 14, NULL,
				      cd ? cd->value.data.data : NULL, cd ? cd->value.data.len : 0);
		}
	} else {
		int64_t now = load__now_us();
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
	(void)topic;
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

static void load__usage(FILE *f)
{
	fputs("usage: mqpipe-load [-b URI] [-t TOPIC] [-n N] [--window W | --rate R] [--invalid PCT] [--json]\n"
	      "       mqpipe-load --echo [-b URI] [-t TOPIC]\n", f);
}

int main(int argc, char **argv)
{
	static struct load l = {.topic = "user.ingest", .n = 10000, .window = 64, .invalid_pct = 20};
	const char *broker = getenv("MQPIPE_BROKER");
	int json = 0;
	char why[700];
	/* As every agent and tool does: a set variable is checked like -b. */
	if (broker && *broker && mqp_options_check_broker("MQPIPE_BROKER", broker, why, sizeof(why))) {
		fprintf(stderr, "mqpipe-load: %s\n", why);
		return LOAD__EX_USAGE;
	}
	static const struct option opts[] = {
		{"broker", required_argument, 0, 'b'}, {"topic", required_argument, 0, 't'},
		{"count", required_argument, 0, 'n'},  {"window", required_argument, 0, 'w'},
		{"rate", required_argument, 0, 'r'},   {"invalid", required_argument, 0, 'x'},
		{"echo", no_argument, 0, 'e'},         {"json", no_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
	int c;
	char *end = NULL;
	while ((c = getopt_long(argc, argv, "b:t:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (mqp_options_check_broker("--broker", optarg, why, sizeof(why))) {
				fprintf(stderr, "mqpipe-load: %s\n", why);
				return LOAD__EX_USAGE;
			}
			broker = optarg;
			break;
		case 't': l.topic = optarg; break;
		case 'n': l.n = strtol(optarg, &end, 10); break;
		case 'w': l.window = strtol(optarg, &end, 10); break;
		case 'r': l.rate = strtod(optarg, &end); break;
		case 'x': l.invalid_pct = strtol(optarg, &end, 10); break;
		case 'e': l.echo = 1; break;
		case 'j': json = 1; break;
		case 'h': load__usage(stdout); return 0;
		default: load__usage(stderr); return LOAD__EX_USAGE;
		}
		if (end && *end) {
			fprintf(stderr, "mqpipe-load: '%s' is not a number\n", optarg);
			return LOAD__EX_USAGE;
		}
		end = NULL;
	}
	if (optind < argc || l.n < 1 || l.n > 10000000 || l.window < 1 || l.rate < 0 ||
	    l.invalid_pct < 0 || l.invalid_pct > 100) {
		load__usage(stderr);
		return LOAD__EX_USAGE;
	}
	if (!broker || !*broker)
		broker = "tcp://127.0.0.1:1883";
	l.broker = broker;
	pthread_mutex_init(&l.lock, NULL);
	pthread_cond_init(&l.cond, NULL);
	l.rng = (uint64_t)load__now_us() | 1;
	/* Under the ingest agent's default --reply-prefix, in the request
	 * topic's namespace: "bench/user.ingest" (an agent run with -p bench)
	 * is answered under bench/replies/. */
	const char *slash = strrchr(l.topic, '/');
	snprintf(l.reply_topic, sizeof(l.reply_topic), "%.*s%sreplies/mqpipe-load/%d",
		 slash ? (int)(slash - l.topic) : 0, l.topic, slash ? "/" : "", (int)getpid());
	if (!l.echo && (!(l.sent_us = calloc((size_t)l.n, sizeof(int64_t))) ||
			!(l.latency_ms = calloc((size_t)l.n, sizeof(double))))) {
		fputs("mqpipe-load: out of memory\n", stderr);
		return 1;
	}

	char id[64];
	snprintf(id, sizeof(id), "mqpipe-load-%s-%d", l.echo ? "echo" : "req", (int)getpid());
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
	cro.maxBufferedMessages = 1 << 20;
	if (MQTTAsync_createWithOptions(&l.client, broker, id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
					&cro) != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "mqpipe-load: bad broker '%s'\n", broker);
		return LOAD__EX_USAGE;
	}
	mqp_net_paho_quiet();
	MQTTAsync_setCallbacks(l.client, &l, NULL, load__on_message, NULL);
	MQTTAsync_setConnected(l.client, &l, load__on_connected);
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
	co.cleanstart = 1;
	co.maxInflight = 65535;
	co.automaticReconnect = 1;
	if (MQTTAsync_connect(l.client, &co) != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "mqpipe-load: cannot connect to %s\n", broker);
		return 1;
	}
	/* Requests go out once the subscription for their answers is in. */
	pthread_mutex_lock(&l.lock);
	for (int i = 0; i < 30 && !l.subscribed; i++) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&l.cond, &l.lock, &until);
	}
	int subscribed = l.subscribed;
	pthread_mutex_unlock(&l.lock);
	if (!subscribed) {
		fprintf(stderr, "mqpipe-load: no subscription on %s after 30 s\n", broker);
		return 1;
	}
	if (l.echo) {
		fprintf(stderr, "mqpipe-load: answering %s on %s\n", l.topic, broker);
		for (;;)
			pause();
	}

	char payload[512], corr[40];
	int64_t start = load__now_us();
	for (long i = 0; i < l.n; i++) {
		pthread_mutex_lock(&l.lock);
		while (l.rate == 0 && l.outstanding >= l.window)
			pthread_cond_wait(&l.cond, &l.lock);
		pthread_mutex_unlock(&l.lock);
		if (l.rate > 0) { /* paced: wait for this request's slot */
			int64_t due = start + (int64_t)((double)i * 1e6 / l.rate), now = load__now_us();
			if (due > now)
				usleep((useconds_t)(due - now));
		}
		int len = load__record(&l, i, payload, sizeof(payload));
		/* Unique across runs: the ingest agent answers a repeat from memory. */
		int clen = snprintf(corr, sizeof(corr), "%d-%ld", (int)getpid(), i);
		pthread_mutex_lock(&l.lock);
		l.sent_us[i] = load__now_us();
		if (i == 0)
			l.first_us = l.sent_us[0];
		l.outstanding++;
		pthread_mutex_unlock(&l.lock);
		int rc;
		while ((rc = load__publish(&l, l.topic, payload, (size_t)len, l.reply_topic, corr, clen)) !=
		       MQTTASYNC_SUCCESS)
			usleep(1000); /* disconnected or buffer full: try again */
	}
	/* Wait for the stragglers, at most 10 s after the last answer. */
	pthread_mutex_lock(&l.lock);
	while (l.outstanding > 0) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		if (pthread_cond_timedwait(&l.cond, &l.lock, &until) != 0)
			break;
	}
	long answered = l.answered, lost = l.outstanding;
	pthread_mutex_unlock(&l.lock);
	qsort(l.latency_ms, (size_t)answered, sizeof(double), load__cmp);
	double secs = (double)(l.last_us - l.first_us) / 1e6;
	double rps = secs > 0 ? (double)answered / secs : 0;
	double p50 = load__pct(l.latency_ms, answered, 50), p95 = load__pct(l.latency_ms, answered, 95),
	       p99 = load__pct(l.latency_ms, answered, 99),
	       max = answered ? l.latency_ms[answered - 1] : 0;
	if (json)
		printf("{\"requests\":%ld,\"answered\":%ld,\"lost\":%ld,\"rps\":%.1f,\"p50_ms\":%.3f,"
		       "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"status_200\":%ld,"
		       "\"status_400\":%ld,\"other\":%ld}\n",
		       l.n, answered, lost, rps, p50, p95, p99, max, l.ok, l.bad, l.other);
	else
		printf("%ld requests, %ld answered (%ld lost) in %.2f s: %.0f requests/s\n"
		       "latency ms: p50 %.3f  p95 %.3f  p99 %.3f  max %.3f\n"
		       "answers: %ld x 200, %ld x 400, %ld other\n",
		       l.n, answered, lost, secs, rps, p50, p95, p99, max, l.ok, l.bad, l.other);
	MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer5;
	MQTTAsync_disconnect(l.client, &dc);
	usleep(100000);
	MQTTAsync_destroy(&l.client);
	return lost ? 1 : 0;
}
