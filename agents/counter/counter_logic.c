/* Module success-rate rules: see counter_logic.h. */
#include <stdint.h>
#include <string.h>

#include "mqpipe/error.h"
#include "counter_logic.h"

/* Parses payload as an object and reads what every counter input has: the
 * module id (either spelling) into module[SR_MODULE_MAX + 1] and the
 * timestamp. On success *root owns the tree for further fields. */
static int sr__parse_head(const void *payload, size_t len, char *module, uint64_t *timestamp,
			  cJSON **root, struct mqp_reason *why)
{
	const char *id;
	int rc = mqp_json_parse_object(payload, len, root, why);
	if (rc)
		return rc;
	rc = mqp_json_string_alias(*root, "moduleId", "moduleid", SR_MODULE_MAX, &id, why);
	if (!rc)
		rc = mqp_json_uint(*root, "timestamp", MQP_UINT_MAX_EXACT, timestamp, why);
	if (rc) {
		cJSON_Delete(*root);
		*root = NULL;
		return rc;
	}
	strcpy(module, id); /* bounded by SR_MODULE_MAX above */
	return MQP_OK;
}

int sr_parse_recv(const void *payload, size_t len, struct sr_recv *out, struct mqp_reason *why)
{
	cJSON *root;
	int rc = sr__parse_head(payload, len, out->module, &out->timestamp, &root, why);
	cJSON_Delete(root);
	return rc;
}

int sr_parse_diag(const void *payload, size_t len, struct sr_diag *out, struct mqp_reason *why)
{
	cJSON *root;
	int rc = sr__parse_head(payload, len, out->module, &out->timestamp, &root, why);
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
	w->folded = 0;
}

bool sr_window_step(struct sr_window *w, uint64_t timestamp, uint64_t attempts, uint64_t folded)
{
	if (w->found)
		return true;
	if (w->later_attempts < attempts) { /* the counter went down: a reset in between */
		w->found = true;
		w->after_timestamp = timestamp; /* its own interval ends at the window's start */
		return true;
	}
	w->later_attempts = attempts;
	w->folded += folded;
	return false;
}

enum sr_place sr_place_diag(uint64_t timestamp, const struct sr_cover *cover)
{
	if (!cover->found)
		return SR_PLACE_OPEN;
	if (cover->timestamp == timestamp)
		return SR_PLACE_REPEAT;
	return cover->sealed ? SR_PLACE_SEALED : SR_PLACE_OPEN;
}

enum sr_place sr_place_recv(const struct sr_cover *cover)
{
	return cover->found && cover->sealed ? SR_PLACE_SEALED : SR_PLACE_OPEN;
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
