/* Fan-in rules for jobs: see jobs_logic.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_logic.h"
#include "mqpipe/error.h"
#include "mqpipe/utf8.h"

const struct jobs_source jobs_sources[JOBS_SOURCES] = {
	{"sales", 100, 400},          {"inventory", 150, 500}, {"marketing", 200, 800},
	{"external_market", 500, 3000}, {"weather", 300, 1500}, {"competitor_pricing", 400, 2500},
};

int jobs_source_find(const char *name)
{
	for (int i = 0; i < JOBS_SOURCES; i++)
		if (strcmp(jobs_sources[i].name, name) == 0)
			return i;
	return -1;
}

int jobs_case_id(const cJSON *item, char *out, struct mqp_reason *why)
{
	if (!item)
		return mqp_reason_set(why, "missing field 'caseId'");
	if (cJSON_IsString(item)) {
		size_t n = item->valuestring ? strlen(item->valuestring) : 0;
		if (n == 0 || n > JOBS_ID_MAX)
			return mqp_reason_set(why, "field 'caseId' must be 1 to %d bytes", JOBS_ID_MAX);
		if (!mqp_utf8_valid(item->valuestring, n))
			return mqp_reason_set(why, "field 'caseId' is not valid UTF-8");
		/* Its JSON text: at most two bytes per byte plus quotes, escapes aside. */
		char *text = cJSON_PrintUnformatted(item);
		if (!text)
			return MQP_ERR_NOMEM;
		int fits = strlen(text) < 2 * JOBS_ID_MAX + 3;
		if (fits)
			strcpy(out, text);
		cJSON_free(text);
		return fits ? MQP_OK : mqp_reason_set(why, "field 'caseId' is too long once escaped");
	}
	/* A number: read through the shared whole-number rule. */
	cJSON *wrap = cJSON_CreateObject();
	if (!wrap)
		return MQP_ERR_NOMEM;
	cJSON_AddItemReferenceToObject(wrap, "caseId", (cJSON *)item);
	uint64_t v = 0;
	int rc = cJSON_IsNumber(item) ? mqp_json_uint(wrap, "caseId", MQP_UINT_MAX_EXACT, &v, why)
				      : mqp_reason_set(why, "field 'caseId' must be a string or a whole number");
	cJSON_Delete(wrap);
	if (!rc)
		snprintf(out, 2 * JOBS_ID_MAX + 3, "%llu", (unsigned long long)v);
	return rc;
}

/* Copies the string member name (1..JOBS_ID_MAX bytes) into out. */
static int jobs__id(const cJSON *root, const char *name, char *out, struct mqp_reason *why)
{
	const char *s;
	int rc = mqp_json_string(root, name, JOBS_ID_MAX, &s, why);
	if (!rc)
		strcpy(out, s); /* bounded above */
	return rc;
}

int jobs_optional_id(const cJSON *root, const char *name, char *out, struct mqp_reason *why)
{
	out[0] = '\0';
	return cJSON_GetObjectItemCaseSensitive(root, name) ? jobs__id(root, name, out, why) : MQP_OK;
}

int jobs_parse_case(const cJSON *c, struct jobs_case *out, struct mqp_reason *why)
{
	out->source = -1;
	out->work_ms = -1;
	out->dashboard_type[0] = out->time_range[0] = '\0';
	if (!cJSON_IsObject(c))
		return mqp_reason_set(why, "a case must be an object");
	uint64_t v;
	int rc;
	if (cJSON_GetObjectItemCaseSensitive(c, "workMs")) {
		if ((rc = mqp_json_uint(c, "workMs", JOBS_WORK_MS_MAX, &v, why)))
			return rc;
		out->work_ms = (int64_t)v;
	}
	char source[JOBS_ID_MAX + 1];
	if ((rc = jobs_optional_id(c, "source", source, why)))
		return rc;
	if (source[0] && (out->source = jobs_source_find(source)) < 0)
		return mqp_reason_set(why, "field 'source' is '%s', not a dashboard source (sales, "
				      "inventory, marketing, external_market, weather, "
				      "competitor_pricing)", source);
	if ((rc = jobs_optional_id(c, "dashboard_type", out->dashboard_type, why)))
		return rc;
	return jobs_optional_id(c, "time_range", out->time_range, why);
}

int jobs_parse_accepted(const void *payload, size_t len, struct jobs_accepted *out,
			struct mqp_reason *why)
{
	cJSON *root;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	if (!(rc = jobs__id(root, "requestId", out->request_id, why)) &&
	    !(rc = mqp_json_uint(root, "target", JOBS_CASES_MAX, &out->target, why)) &&
	    !(rc = jobs__id(root, "kind", out->kind, why)))
		rc = mqp_json_uint(root, "acceptedAt", MQP_UINT_MAX_EXACT, &out->accepted_at, why);
	if (!rc && !(rc = jobs_optional_id(root, "dashboard_type", out->dashboard_type, why)))
		rc = jobs_optional_id(root, "time_range", out->time_range, why);
	cJSON_Delete(root);
	return rc;
}

int jobs_parse_done_root(const cJSON *root, struct jobs_done *out, struct mqp_reason *why)
{
	int rc = jobs__id(root, "requestId", out->request_id, why);
	if (!rc)
		rc = jobs_case_id(cJSON_GetObjectItemCaseSensitive(root, "caseId"), out->case_id, why);
	return rc;
}

int jobs_parse_done(const void *payload, size_t len, struct jobs_done *out, struct mqp_reason *why)
{
	cJSON *root;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	rc = jobs_parse_done_root(root, out, why);
	cJSON_Delete(root);
	return rc;
}


bool jobs_should_trigger(const struct jobs_state *s)
{
	return s->accepted && !s->triggered && s->completed >= s->target;
}

cJSON *jobs_trigger_event(const char *request_id, uint64_t target, uint64_t completed)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	if (!cJSON_AddStringToObject(o, "requestId", request_id) ||
	    !mqp_json_add_uint(o, "target", target) || !mqp_json_add_uint(o, "completed", completed)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
