/* The dead-letter event (mqpipe/runtime.h), apart from the store's dead
 * letters (deadletter.c) so that what links no SQLite (the broker plugin,
 * README "Routing inside mosquitto") builds the same event. */
#include <stdlib.h>
#include <string.h>

#include "mqpipe/base64.h"
#include "mqpipe/json.h"
#include "mqpipe/runtime.h"
#include "mqpipe/utf8.h"

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
