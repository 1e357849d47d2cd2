/* Counters and a handling-time histogram, reported as the retained JSON on
 * mqpipe/metrics/<client-id>. Thread-safe: the applier records, the main
 * thread reports. */
#ifndef MQPIPE_METRICS_H
#define MQPIPE_METRICS_H

#include <stdint.h>
#include <cjson/cJSON.h>

struct mqp_metrics;

int mqp_metrics_new(struct mqp_metrics **out);
void mqp_metrics_free(struct mqp_metrics *m);

/* Counts one message in or out on topic (the first 64 distinct topics each get
 * their own count; the rest are summed under "other"). */
void mqp_metrics_in(struct mqp_metrics *m, const char *topic, size_t topic_len);
void mqp_metrics_out(struct mqp_metrics *m, const char *topic);
void mqp_metrics_deadletter(struct mqp_metrics *m);
/* Counts n stored dead letters dropped to keep the store within its bounds. */
void mqp_metrics_deadletters_dropped(struct mqp_metrics *m, uint64_t n);
void mqp_metrics_error(struct mqp_metrics *m);
/* Counts one output the broker refused for good (now a dead letter). */
void mqp_metrics_refused(struct mqp_metrics *m);
/* Records one handling time in microseconds. */
void mqp_metrics_handled(struct mqp_metrics *m, uint64_t usec);

/* Builds the report and starts a new interval. Counts are totals since
 * start; handling times and the rates in_per_s/out_per_s cover the interval
 * since the last report (the first: since uptime 0).
 * Returns a new object (caller frees) or NULL when out of memory. */
cJSON *mqp_metrics_report(struct mqp_metrics *m, const char *agent, const char *client_id,
			  int64_t outbox_depth, double uptime_s);

/* Value at quantile q (0..1) of a histogram of n samples: exposed for tests. */
uint64_t mqp_metrics_quantile(const uint64_t *buckets, uint64_t n, double q);
/* Bucket index for a value, and a bucket's upper bound: exposed for tests. */
unsigned mqp_metrics_bucket(uint64_t usec);
uint64_t mqp_metrics_bucket_upper(unsigned bucket);
#define MQP_METRICS_BUCKETS 240

#endif
