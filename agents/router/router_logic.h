/* The router's rule (README "Scaling out"): which key of an input on a plain
 * topic names the shard it goes to. Pure: no SQLite, no MQTT. */
#ifndef MQPIPE_ROUTER_LOGIC_H
#define MQPIPE_ROUTER_LOGIC_H

#include <stddef.h>

#include "mqpipe/json.h"

#define ROUTE_KEY_MAX 511 /* a metric's name after metrics/ (README "Alerts": series up to 511 bytes) */

/* The topics the router reads, NULL-terminated, before the --prefix. */
extern const char *const route_topics[];

/* Finds the shard key of the input `topic` (without the --prefix) holding
 * len bytes of payload: moduleId (or moduleid) of recv_message and
 * weekly_diagnostic, requestId of job.submit, request_id of
 * dashboard.request, and of metrics/<name...> the name. Copies it,
 * NUL-terminated, into key[ROUTE_KEY_MAX + 1]. Returns 0, or MQP_ERR_INPUT
 * with the reason in why (not JSON, no such field, a topic not routed). */
int route_key(const char *topic, const void *payload, size_t len, char *key,
	      struct mqp_reason *why);

#endif
