/* The module success-rate rules (README "The success rate"), as pure
 * functions over plain values: no SQLite, no MQTT. */
#ifndef MQPIPE_COUNTER_LOGIC_H
#define MQPIPE_COUNTER_LOGIC_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "mqpipe/json.h"

#define SR_MODULE_MAX MQP_STR_MAX

/* recv_message: {"moduleId"|"moduleid": str, "timestamp": uint} */
struct sr_recv {
	char module[SR_MODULE_MAX + 1];
	uint64_t timestamp;
};

/* weekly_diagnostic: {"moduleid"|"moduleId": str, "timestamp": uint, "attempts": uint32} */
struct sr_diag {
	char module[SR_MODULE_MAX + 1];
	uint64_t timestamp;
	uint64_t attempts;
};

/* Parse and validate a payload. Return 0, or MQP_ERR_INPUT with a reason. */
int sr_parse_recv(const void *payload, size_t len, struct sr_recv *out, struct mqp_reason *why);
int sr_parse_diag(const void *payload, size_t len, struct sr_diag *out, struct mqp_reason *why);

/* Finds where the counting window of a diagnostic starts, and adds up the
 * messages already folded inside it (README "Sealed windows").
 *
 * Feed it the module's earlier diagnostics newest first (timestamps strictly
 * below the new one's), each with the count of messages folded into it (those
 * of the interval between it and the diagnostic before it; 0 while open). A
 * reset happened between two neighbours when the later one's attempts are
 * lower; the window opens after the diagnostic just before the most recent
 * reset. sr_window_step returns true once the window start is known (then feed
 * no more); if the feed runs out first there was no reset and every earlier
 * message counts. Either way `folded` is what the window holds in folded
 * counts: the stored messages with ts in (after_timestamp, new ts] are the rest. */
struct sr_window {
	uint64_t later_attempts; /* attempts of the diagnostic after the one fed next */
	bool found;
	uint64_t after_timestamp; /* valid when found: count messages with ts > this */
	uint64_t folded;          /* folded messages inside the window so far */
};
void sr_window_init(struct sr_window *w, uint64_t attempts);
bool sr_window_step(struct sr_window *w, uint64_t timestamp, uint64_t attempts, uint64_t folded);

/* The module's first diagnostic at or after an event's timestamp: the one
 * whose interval the event falls in (README "Sealed windows"). */
struct sr_cover {
	bool found;     /* false: the event is after every diagnostic */
	uint64_t timestamp;
	bool sealed;    /* its interval's messages are folded into a count */
};

enum sr_place {
	SR_PLACE_OPEN,   /* in an open interval, or after every diagnostic: apply it */
	SR_PLACE_REPEAT, /* a diagnostic at a timestamp stored already: ignore it */
	SR_PLACE_SEALED, /* in a sealed interval: it can no longer be placed (dead letter) */
};

/* Where a diagnostic at timestamp falls, given its cover. */
enum sr_place sr_place_diag(uint64_t timestamp, const struct sr_cover *cover);

/* Where a recv_message falls, given its cover: never a repeat here (the
 * store's key tells those in an open interval); in a sealed interval it
 * cannot be told from a repeat whose key was folded away. */
enum sr_place sr_place_recv(const struct sr_cover *cover);

/* min(100, 100 * received / attempts). Returns false (rate is null) when
 * attempts is 0. */
bool sr_rate(uint64_t received, uint64_t attempts, double *rate);

/* Builds the success_rate event
 * {"moduleid","timestamp","success_rate"(number|null),"received","attempts"}.
 * Returns a new object or NULL when out of memory. */
cJSON *sr_event(const struct sr_diag *diag, uint64_t received);

#endif
