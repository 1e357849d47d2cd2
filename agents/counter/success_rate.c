/* Module success-rate rules: see success_rate.h. */
#include <stdint.h>
#include <string.h>

#include "mqpipe/error.h"
#include "success_rate.h"

/* Reads the module id in either spelling into out[SR_MODULE_MAX + 1]. */
static int sr__module(const cJSON *root, char *out, struct mqp_reason *why)
{
	const char *module;
	int rc = mqp_json_string_alias(root, "moduleId", "moduleid", SR_MODULE_MAX, &module, why);
	if (rc)
		return rc;
	strcpy(out, module); /* bounded by SR_MODULE_MAX above */
	return MQP_OK;
}

int sr_parse_recv(const void *payload, size_t len, struct sr_recv *out, struct mqp_reason *why)
{
	cJSON *root;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	rc = sr__module(root, out->module, why);
	if (!rc)
		rc = mqp_json_uint(root, "timestamp", MQP_UINT_MAX_EXACT, &out->timestamp, why);
	cJSON_Delete(root);
	return rc;
}

int sr_parse_diag(const void *payload, size_t len, struct sr_diag *out, struct mqp_reason *why)
{
	cJSON *root;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	rc = sr__module(root, out->module, why);
	if (!rc)
		rc = mqp_json_uint(root, "timestamp", MQP_UINT_MAX_EXACT, &out->timestamp, why);
	if (!rc)
		rc = mqp_json_uint(root, "attempts", UINT32_MAX, &out->attempts, why);
	cJSON_Delete(root);
	return rc;
}

void sr_window_init(struct sr_window *w, uint64_t attempts)
{
	w->later_attempts = attempts;
	w->found = false;
	w->after_timestamp = 0;
}

bool sr_window_step(struct sr_window *w, uint64_t timestamp, uint64_t attempts)
{
	if (w->found)
		return true;
	if (w->later_attempts < attempts) { /* the counter went down: a reset in between */
		w->found = true;
		w->after_timestamp = timestamp;
		return true;
	}
	w->later_attempts = attempts;
	return false;
}

bool sr_rate(uint64_t received, uint64_t attempts, double *rate)
{
	if (attempts == 0)
		return false;
	double r = 100.0 * (double)received / (double)attempts;
	*rate = r > 100.0 ? 100.0 : r;
	return true;
}

cJSON *sr_event(const struct sr_diag *diag, uint64_t received)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	double rate;
	bool has_rate = sr_rate(received, diag->attempts, &rate);
	if (!cJSON_AddStringToObject(o, "moduleid", diag->module) ||
	    !mqp_json_add_uint(o, "timestamp", diag->timestamp) ||
	    !(has_rate ? cJSON_AddNumberToObject(o, "success_rate", rate)
		       : cJSON_AddNullToObject(o, "success_rate")) ||
	    !mqp_json_add_uint(o, "received", received) ||
	    !mqp_json_add_uint(o, "attempts", diag->attempts)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
