/* Dead letters kept in the store (internal): within --deadletter-max-bytes
 * (the store drops the oldest) and --deadletter-max-age (expired here). The
 * published event is mqp_deadletter_event (mqpipe/runtime.h). Applier thread
 * only. */
#ifndef MQPIPE_LIB_DEADLETTER_H
#define MQPIPE_LIB_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#include "mqpipe/metrics.h"
#include "mqpipe/store.h"

struct deadletters {
	struct mqp_store *store;
	struct mqp_metrics *metrics;
	long long max_bytes;    /* --deadletter-max-bytes, only for the log line */
	int64_t max_age_ms;     /* --deadletter-max-age */
	int64_t next_expire_ms; /* wall clock; 0: at the first look */
	int bound_said;         /* the first drop for the bound is logged, the rest counted */
};

/* Sets dl up over an open store (whose bound is already set). */
void deadletter__init(struct deadletters *dl, struct mqp_store *store,
		      struct mqp_metrics *metrics, long long max_bytes, int64_t max_age_ms);

/* Keeps a dead letter in the store, inside the open transaction: the one
 * place that counts the older ones the bound drops, and says so the first
 * time. Returns 0 or MQP_ERR_DB. */
int deadletter__keep(struct deadletters *dl, const char *topic, const char *reason,
		     const void *payload, size_t len, int64_t received_ms);

/* True when deadletter__expire has work to look for at now_ms. */
int deadletter__due(const struct deadletters *dl, int64_t now_ms);

/* Once due (at start, then once a minute, or every quarter of a shorter age,
 * at most once a second), inside the open transaction: drops the dead
 * letters older than the max age. Returns 0 or MQP_ERR_DB. */
int deadletter__expire(struct deadletters *dl, int64_t now_ms);

#endif
