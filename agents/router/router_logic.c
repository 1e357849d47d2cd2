/* The router's rule: see router_logic.h. */
#include <string.h>

#include "mqpipe/error.h"
#include "router_logic.h"

#define ROUTE__METRICS "metrics/"

const char *const route_topics[] = {"recv_message", "weekly_diagnostic", "job.submit",
				    "dashboard.request", ROUTE__METRICS "#", NULL};

/* The field that holds the key of a JSON input topic: name, and the
 * other spelling the owner accepts too (or NULL). */
struct route__field {
	const char *topic, *name, *alias;
};

static const struct route__field route__fields[] = {
	{"recv_message", "moduleId", "moduleid"},
	{"weekly_diagnostic", "moduleId", "moduleid"},
	{"job.submit", "requestId", NULL},
	{"dashboard.request", "request_id", NULL},
};

/* Copies len bytes of src into key as a string. Returns 0 or MQP_ERR_INPUT. */
static int route__copy(char *key, const char *src, size_t len, const char *what,
		       struct mqp_reason *why)
{
	if (len == 0 || len > ROUTE_KEY_MAX)
		return mqp_reason_set(why, "%s must be 1 to %d bytes", what, ROUTE_KEY_MAX);
	memcpy(key, src, len);
	key[len] = '\0';
	return MQP_OK;
}

int route_key(const char *topic, const void *payload, size_t len, char *key,
	      struct mqp_reason *why)
{
	size_t m = sizeof(ROUTE__METRICS) - 1;
	if (strncmp(topic, ROUTE__METRICS, m) == 0) /* the name is in the topic */
		return route__copy(key, topic + m, strlen(topic + m), "the metric's name", why);
	const struct route__field *f = NULL;
	for (size_t i = 0; i < sizeof(route__fields) / sizeof(route__fields[0]) && !f; i++)
		if (strcmp(topic, route__fields[i].topic) == 0)
			f = &route__fields[i];
	if (!f)
		return mqp_reason_set(why, "topic '%s' is not one the router reads", topic);
	cJSON *root = NULL;
	const char *value = NULL;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (!rc)
		rc = f->alias ? mqp_json_string_alias(root, f->name, f->alias, MQP_STR_MAX, &value, why)
			      : mqp_json_string(root, f->name, MQP_STR_MAX, &value, why);
	if (!rc)
		rc = route__copy(key, value, strlen(value), f->name, why);
	cJSON_Delete(root);
	return rc;
}
