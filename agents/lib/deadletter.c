/* Dead letters: see deadletter.h and mqpipe/runtime.h. */
#include <stdlib.h>
#include <string.h>

#include "deadletter.h"
#include "mqpipe/log.h"
#include "mqpipe/runtime.h"

#define DEADLETTER__EXPIRE_EVERY_MS 60000 /* looked for this often at most... */
#define DEADLETTER__EXPIRE_MIN_MS 1000    /* ...or a quarter of a shorter age, >= 1 s */

void deadletter__init(struct deadletters *dl, struct mqp_store *store,
		      struct mqp_metrics *metrics, long long max_bytes, int64_t max_age_ms)
{
	memset(dl, 0, sizeof(*dl));
	dl->store = store;
	dl->metrics = metrics;
	dl->max_bytes = max_bytes;
	dl->max_age_ms = max_age_ms;
}

int deadletter__keep(struct deadletters *dl, const char *topic, const char *reason,
		     const void *payload, size_t len, int64_t received_ms)
{
	int rc = mqp_store_deadletter_add(dl->store, topic, reason, payload, len, received_ms);
	if (rc <= 0)
		return rc;
	mqp_metrics_deadletters_dropped(dl->metrics, (uint64_t)rc);
	if (!dl->bound_said) {
		dl->bound_said = 1;
		mqp_info("deadletters_dropped",
			 "max_bytes=%lld msg=\"the oldest stored dead letters are dropped from now "
			 "on (counted in metrics as deadletters_dropped)\"",
			 dl->max_bytes);
	}
	return MQP_OK;
}

int deadletter__due(const struct deadletters *dl, int64_t now_ms)
{
	return now_ms >= dl->next_expire_ms;
}

int deadletter__expire(struct deadletters *dl, int64_t now_ms)
{
	if (!deadletter__due(dl, now_ms))
		return MQP_OK;
	int64_t every = dl->max_age_ms / 4;
	every = every > DEADLETTER__EXPIRE_EVERY_MS ? DEADLETTER__EXPIRE_EVERY_MS
		: every < DEADLETTER__EXPIRE_MIN_MS ? DEADLETTER__EXPIRE_MIN_MS : every;
	dl->next_expire_ms = now_ms + every;
	int n = mqp_store_deadletter_expire(dl->store, now_ms - dl->max_age_ms);
	if (n > 0) {
		mqp_metrics_deadletters_dropped(dl->metrics, (uint64_t)n);
		mqp_info("deadletters_expired", "count=%d max_age_s=%lld", n,
			 (long long)(dl->max_age_ms / 1000));
	}
	return n < 0 ? n : MQP_OK;
}
