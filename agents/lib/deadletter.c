/* Dead letters: see deadletter.h and mqpipe/runtime.h. */
#include <stdlib.h>
#include <string.h>

#include "deadletter.h"
#include "mqpipe/base64.h"
#include "mqpipe/log.h"
#include "mqpipe/runtime.h"
#include "mqpipe/utf8.h"

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

/* True when payload[0..len) can travel as a JSON string at about its own
 * size: UTF-8 without control bytes other than tab, LF and CR (each other
 * one would grow six-fold as \u00XX: a 1 MiB payload of them, 6 MiB). */
static int deadletter__plain_text(const void *payload, size_t len)
{
	const unsigned char *p = payload;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return 0;
	return mqp_utf8_valid(payload, len);
}

cJSON *mqp_deadletter_event(const char *agent, const char *topic, const char *reason,
			    const void *payload, size_t len, int64_t received_ms)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	int ok = cJSON_AddStringToObject(o, "agent", agent) &&
		 cJSON_AddStringToObject(o, "topic", topic) &&
		 cJSON_AddStringToObject(o, "reason", reason);
	if (ok && deadletter__plain_text(payload, len)) {
		char *text = malloc(len + 1);
		ok = text != NULL;
		if (ok) {
			memcpy(text, payload, len);
			text[len] = '\0';
			ok = cJSON_AddStringToObject(o, "payload", text) != NULL;
			free(text);
		}
	} else if (ok) {
		char *b64 = mqp_base64_encode(payload, len);
		ok = b64 && cJSON_AddStringToObject(o, "payload_b64", b64);
		free(b64);
	}
	ok = ok && mqp_json_add_uint(o, "received_at", (uint64_t)received_ms);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
