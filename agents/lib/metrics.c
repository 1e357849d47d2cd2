/* Metrics: see mqpipe/metrics.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/json.h"
#include "mqpipe/metrics.h"

#define METRICS__TOPICS 64

struct metrics__topic {
	char name[128];
	uint64_t in, out;
};

struct mqp_metrics {
	pthread_mutex_t lock;
	struct metrics__topic topics[METRICS__TOPICS];
	size_t n_topics;
	uint64_t other_in, other_out, in, out, deadletters, deadletters_dropped, errors, refused;
	/* Log-linear histogram of handling times: 8 buckets per power of two, so a
	 * quantile is within 12.5% of the true value, in fixed memory. */
	uint64_t buckets[MQP_METRICS_BUCKETS];
	uint64_t samples, max_us;
	/* Totals and uptime at the last report: rates cover the interval since. */
	uint64_t last_in, last_out;
	double last_uptime_s;
};

unsigned mqp_metrics_bucket(uint64_t usec)
{
	if (usec < 16)
		return (unsigned)usec;
	unsigned e = 63U - (unsigned)__builtin_clzll(usec);
	unsigned b = 16U + (e - 4U) * 8U + (unsigned)((usec >> (e - 3U)) & 7U);
	return b < MQP_METRICS_BUCKETS ? b : MQP_METRICS_BUCKETS - 1;
}

uint64_t mqp_metrics_bucket_upper(unsigned bucket)
{
	if (bucket < 16)
		return bucket;
	unsigned e = (bucket - 16U) / 8U + 4U, sub = (bucket - 16U) % 8U;
	return ((uint64_t)(8U + sub + 1U) << (e - 3U)) - 1U;
}

uint64_t mqp_metrics_quantile(const uint64_t *buckets, uint64_t n, double q)
{
	if (n == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)n + 0.999999); /* ceil, 1-based */
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned b = 0; b < MQP_METRICS_BUCKETS; b++) {
		seen += buckets[b];
		if (seen >= rank)
			return mqp_metrics_bucket_upper(b);
	}
	return mqp_metrics_bucket_upper(MQP_METRICS_BUCKETS - 1);
}

int mqp_metrics_new(struct mqp_metrics **out)
{
	struct mqp_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return MQP_ERR_NOMEM;
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return MQP_OK;
}

void mqp_metrics_free(struct mqp_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Finds or adds topic; NULL when the table is full. Caller holds the lock. */
static struct metrics__topic *metrics__topic(struct mqp_metrics *m, const char *topic, size_t len)
{
	if (len >= sizeof(m->topics[0].name))
		return NULL;
	for (size_t i = 0; i < m->n_topics; i++)
		if (strncmp(m->topics[i].name, topic, len) == 0 && m->topics[i].name[len] == '\0')
			return &m->topics[i];
	if (m->n_topics == METRICS__TOPICS)
		return NULL;
	struct metrics__topic *t = &m->topics[m->n_topics++];
	memcpy(t->name, topic, len);
	t->name[len] = '\0';
	return t;
}

void mqp_metrics_in(struct mqp_metrics *m, const char *topic, size_t topic_len)
{
	pthread_mutex_lock(&m->lock);
	struct metrics__topic *t = metrics__topic(m, topic, topic_len);
	if (t)
		t->in++;
	else
		m->other_in++;
	m->in++;
	pthread_mutex_unlock(&m->lock);
}

void mqp_metrics_out(struct mqp_metrics *m, const char *topic)
{
	pthread_mutex_lock(&m->lock);
	struct metrics__topic *t = metrics__topic(m, topic, strlen(topic));
	if (t)
		t->out++;
	else
		m->other_out++;
	m->out++;
	pthread_mutex_unlock(&m->lock);
}

void mqp_metrics_deadletter(struct mqp_metrics *m)
{
	pthread_mutex_lock(&m->lock);
	m->deadletters++;
	pthread_mutex_unlock(&m->lock);
}

void mqp_metrics_refused(struct mqp_metrics *m)
{
	pthread_mutex_lock(&m->lock);
	m->refused++;
	pthread_mutex_unlock(&m->lock);
}

void mqp_metrics_deadletters_dropped(struct mqp_metrics *m, uint64_t n)
{
	pthread_mutex_lock(&m->lock);
	m->deadletters_dropped += n;
	pthread_mutex_unlock(&m->lock);
}

void mqp_metrics_error(struct mqp_metrics *m)
{
	pthread_mutex_lock(&m->lock);
	m->errors++;
	pthread_mutex_unlock(&m->lock);
}

void mqp_metrics_handled(struct mqp_metrics *m, uint64_t usec)
{
	pthread_mutex_lock(&m->lock);
	m->buckets[mqp_metrics_bucket(usec)]++;
	m->samples++;
	if (usec > m->max_us)
		m->max_us = usec;
	pthread_mutex_unlock(&m->lock);
}

/* Resident and peak resident set, in bytes, from /proc/self/status. */
static void metrics__rss(uint64_t *rss, uint64_t *peak)
{
	*rss = *peak = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return;
	char line[256];
	unsigned long long kb;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			*rss = kb * 1024;
		else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
			*peak = kb * 1024;
	}
	fclose(f);
}

/* Messages per second over span_s seconds, to one decimal; 0 for no span. */
static double metrics__rate(uint64_t n, double span_s)
{
	return span_s > 0 ? (double)(int64_t)((double)n / span_s * 10 + 0.5) / 10 : 0;
}

cJSON *mqp_metrics_report(struct mqp_metrics *m, const char *agent, const char *client_id,
			  int64_t outbox_depth, double uptime_s)
{
	uint64_t rss, peak;
	metrics__rss(&rss, &peak);
	cJSON *o = cJSON_CreateObject(), *in = NULL, *out = NULL, *h = NULL;
	if (!o)
		return NULL;
	pthread_mutex_lock(&m->lock);
	double span_s = uptime_s - m->last_uptime_s;
	int ok = cJSON_AddStringToObject(o, "agent", agent) &&
		 cJSON_AddStringToObject(o, "client_id", client_id) &&
		 mqp_json_add_uint(o, "pid", (uint64_t)getpid()) &&
		 cJSON_AddNumberToObject(o, "uptime_s", (double)(int64_t)(uptime_s * 10) / 10) &&
		 (in = cJSON_AddObjectToObject(o, "in")) && (out = cJSON_AddObjectToObject(o, "out"));
	for (size_t i = 0; ok && i < m->n_topics; i++) {
		if (m->topics[i].in)
			ok = mqp_json_add_uint(in, m->topics[i].name, m->topics[i].in) != NULL;
		if (ok && m->topics[i].out)
			ok = mqp_json_add_uint(out, m->topics[i].name, m->topics[i].out) != NULL;
	}
	if (ok && m->other_in)
		ok = mqp_json_add_uint(in, "other", m->other_in) != NULL;
	if (ok && m->other_out)
		ok = mqp_json_add_uint(out, "other", m->other_out) != NULL;
	ok = ok && mqp_json_add_uint(o, "messages_in", m->in) &&
	     mqp_json_add_uint(o, "messages_out", m->out) &&
	     mqp_json_add_uint(o, "deadletters", m->deadletters) &&
	     mqp_json_add_uint(o, "deadletters_dropped", m->deadletters_dropped) &&
	     mqp_json_add_uint(o, "errors", m->errors) &&
	     mqp_json_add_uint(o, "refused", m->refused) &&
	     (h = cJSON_AddObjectToObject(o, "handling_us")) &&
	     mqp_json_add_uint(h, "count", m->samples) &&
	     mqp_json_add_uint(h, "p50", mqp_metrics_quantile(m->buckets, m->samples, 0.50)) &&
	     mqp_json_add_uint(h, "p95", mqp_metrics_quantile(m->buckets, m->samples, 0.95)) &&
	     mqp_json_add_uint(h, "p99", mqp_metrics_quantile(m->buckets, m->samples, 0.99)) &&
	     mqp_json_add_uint(h, "max", m->max_us) &&
	     cJSON_AddNumberToObject(o, "in_per_s", metrics__rate(m->in - m->last_in, span_s)) &&
	     cJSON_AddNumberToObject(o, "out_per_s", metrics__rate(m->out - m->last_out, span_s)) &&
	     cJSON_AddNumberToObject(o, "outbox_depth", (double)outbox_depth) &&
	     mqp_json_add_uint(o, "rss_bytes", rss) && mqp_json_add_uint(o, "rss_peak_bytes", peak);
	/* Handling times and rates describe the interval since the last report. */
	memset(m->buckets, 0, sizeof(m->buckets));
	m->samples = m->max_us = 0;
	m->last_in = m->in;
	m->last_out = m->out;
	m->last_uptime_s = uptime_s;
	pthread_mutex_unlock(&m->lock);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
