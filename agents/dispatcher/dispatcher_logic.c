/* Dispatcher rules: see dispatcher_logic.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher_logic.h"
#include "mqpipe/error.h"

/* FNV-1a 64 of the canonical (re-printed) request: equal for the same
 * content however it was spaced; not a defence against crafted collisions. */
static uint64_t dispatch__digest(const cJSON *root)
{
	char *text = cJSON_PrintUnformatted(root);
	uint64_t h = 14695981039346656037ULL;
	for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	cJSON_free(text);
	return text ? h : 0;
}

/* Renders {"requestId":…,"caseId":…,"index":…,"case":…} for one case; index
 * is its place in the submission, so the aggregator can keep that order. */
static char *dispatch__request(const char *request_id_json, const char *case_id, size_t index,
			       const cJSON *item)
{
	char *body = cJSON_PrintUnformatted(item);
	if (!body)
		return NULL;
	size_t n = strlen(request_id_json) + strlen(case_id) + strlen(body) + 64;
	char *text = malloc(n);
	if (text)
		snprintf(text, n, "{\"requestId\":%s,\"caseId\":%s,\"index\":%zu,\"case\":%s}",
			 request_id_json, case_id, index, body);
	cJSON_free(body);
	return text;
}

static int dispatch__cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fills out's cases from items (an array of case objects); checks that the
 * caseIds are there and different. */
static int dispatch__cases(struct dispatch_job *out, const cJSON *items, struct mqp_reason *why)
{
	size_t n = (size_t)cJSON_GetArraySize(items);
	cJSON *rid = cJSON_CreateString(out->request_id);
	char *rid_json = rid ? cJSON_PrintUnformatted(rid) : NULL;
	cJSON_Delete(rid);
	/* The ids only live for the duplicate check: one small copy each, not a
	 * worst-case slot per case (51 MB for 100 000 cases). */
	char **sorted = calloc(n ? n : 1, sizeof(char *));
	out->requests = calloc(n ? n : 1, sizeof(char *));
	int rc = (rid_json && sorted && out->requests) ? MQP_OK : MQP_ERR_NOMEM;
	char id[2 * JOBS_ID_MAX + 3];
	size_t i = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, items) {
		if (rc)
			break;
		if (!cJSON_IsObject(item)) {
			rc = mqp_reason_set(why, "requests[%zu] must be an object", i);
			break;
		}
		struct mqp_reason inner;
		rc = jobs_case_id(cJSON_GetObjectItemCaseSensitive(item, "caseId"), id, &inner);
		if (rc == MQP_ERR_INPUT)
			rc = mqp_reason_set(why, "requests[%zu]: %s", i, inner.text);
		if (rc)
			break;
		/* The worker reads the case with the same rules: refused here, it
		 * cannot leave a job that never finishes (README "Fan-out"). */
		struct jobs_case checked;
		if (jobs_parse_case(item, &checked, &inner)) {
			rc = mqp_reason_set(why, "requests[%zu] (caseId %.64s): %s", i, id, inner.text);
			break;
		}
		if (!(out->requests[i] = dispatch__request(rid_json, id, i, item)) ||
		    !(sorted[i] = strdup(id)))
			rc = MQP_ERR_NOMEM;
		out->n_cases = ++i;
	}
	if (!rc) { /* duplicates sit next to each other once sorted */
		n = out->n_cases;
		qsort(sorted, n, sizeof(char *), dispatch__cmp);
		for (size_t k = 1; k < n && !rc; k++)
			if (strcmp(sorted[k - 1], sorted[k]) == 0)
				rc = mqp_reason_set(why, "caseId %s appears more than once", sorted[k]);
	}
	cJSON_free(rid_json);
	for (size_t k = 0; sorted && k < out->n_cases; k++)
		free(sorted[k]);
	free(sorted);
	return rc;
}

/* Reads the optional length (a whole number or a string of digits). Returns
 * 0 with *has = 0 when absent. */
static int dispatch__length(const cJSON *root, int *has, uint64_t *length, struct mqp_reason *why)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "length");
	*has = item != NULL;
	if (!item)
		return MQP_OK;
	if (cJSON_IsString(item)) {
		const char *s = item->valuestring;
		size_t n = strlen(s);
		if (n == 0 || n > 15 || strspn(s, "0123456789") != n)
			return mqp_reason_set(why, "field 'length' must be a whole number or a string of digits");
		*length = strtoull(s, NULL, 10);
		return MQP_OK;
	}
	return mqp_json_uint(root, "length", MQP_UINT_MAX_EXACT, length, why);
}

int dispatch_parse_submit(const void *payload, size_t len, struct dispatch_job *out,
			  struct mqp_reason *why)
{
	memset(out, 0, sizeof(*out));
	out->kind = "job";
	cJSON *root;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	const char *rid;
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "requests");
	int has_length = 0;
	uint64_t length = 0;
	if ((rc = mqp_json_string(root, "requestId", JOBS_ID_MAX, &rid, why)))
		goto done;
	strcpy(out->request_id, rid); /* bounded above */
	if (!items)
		rc = mqp_reason_set(why, "missing field 'requests'");
	else if (!cJSON_IsArray(items))
		rc = mqp_reason_set(why, "field 'requests' must be an array");
	else if (cJSON_GetArraySize(items) > JOBS_CASES_MAX)
		rc = mqp_reason_set(why, "field 'requests' holds more than %d cases", JOBS_CASES_MAX);
	else if (!(rc = dispatch__length(root, &has_length, &length, why)) && has_length &&
		 length != (uint64_t)cJSON_GetArraySize(items))
		rc = mqp_reason_set(why, "field 'length' is %llu but there are %d requests",
				    (unsigned long long)length, cJSON_GetArraySize(items));
	if (!rc)
		rc = dispatch__cases(out, items, why);
	if (!rc && !(out->digest = dispatch__digest(root)))
		rc = MQP_ERR_NOMEM;
done:
	cJSON_Delete(root);
	if (rc)
		dispatch_job_free(out);
	return rc;
}

/* Reads an optional string member (1-256 bytes) or its default. */
static int dispatch__optional(const cJSON *root, const char *name, const char *fallback,
			      const char **out, struct mqp_reason *why)
{
	*out = fallback;
	if (!cJSON_GetObjectItemCaseSensitive(root, name))
		return MQP_OK;
	return mqp_json_string(root, name, JOBS_ID_MAX, out, why);
}

int dispatch_parse_dashboard(const void *payload, size_t len, struct dispatch_job *out,
			     struct mqp_reason *why)
{
	memset(out, 0, sizeof(*out));
	out->kind = "dashboard";
	cJSON *root, *cases = NULL;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	const char *rid, *type, *range;
	if (!(rc = mqp_json_string(root, "request_id", JOBS_ID_MAX, &rid, why)) &&
	    !(rc = dispatch__optional(root, "dashboard_type", "executive", &type, why)) &&
	    !(rc = dispatch__optional(root, "time_range", "24h", &range, why))) {
		strcpy(out->request_id, rid); /* bounded above */
		strcpy(out->dashboard_type, type);
		strcpy(out->time_range, range);
		rc = (cases = cJSON_CreateArray()) ? MQP_OK : MQP_ERR_NOMEM;
		for (int i = 0; !rc && i < JOBS_SOURCES; i++) {
			cJSON *c = cJSON_CreateObject();
			if (!c || !cJSON_AddItemToArray(cases, c) ||
			    !cJSON_AddStringToObject(c, "caseId", jobs_sources[i].name) ||
			    !cJSON_AddStringToObject(c, "source", jobs_sources[i].name) ||
			    !cJSON_AddStringToObject(c, "dashboard_type", type) ||
			    !cJSON_AddStringToObject(c, "time_range", range))
				rc = MQP_ERR_NOMEM;
		}
		if (!rc)
			rc = dispatch__cases(out, cases, why);
		/* The content is what the request means, defaults filled in. */
		if (!rc && !(out->digest = dispatch__digest(cases)))
			rc = MQP_ERR_NOMEM;
	}
	cJSON_Delete(cases);
	cJSON_Delete(root);
	if (rc)
		dispatch_job_free(out);
	return rc;
}

void dispatch_job_free(struct dispatch_job *job)
{
	for (size_t i = 0; job->requests && i < job->n_cases; i++)
		free(job->requests[i]);
	free(job->requests);
	job->requests = NULL;
	job->n_cases = 0;
}

cJSON *dispatch_accepted_event(const struct dispatch_job *job, uint64_t accepted_at_ms)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	if (!cJSON_AddStringToObject(o, "requestId", job->request_id) ||
	    !mqp_json_add_uint(o, "target", job->n_cases) ||
	    !cJSON_AddStringToObject(o, "kind", job->kind) ||
	    !mqp_json_add_uint(o, "acceptedAt", accepted_at_ms) ||
	    (job->dashboard_type[0] &&
	     (!cJSON_AddStringToObject(o, "dashboard_type", job->dashboard_type) ||
	      !cJSON_AddStringToObject(o, "time_range", job->time_range)))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int dispatch_read_sent(const char *request, size_t len, struct dispatch_sent *out)
{
	memset(out, 0, sizeof(*out));
	struct mqp_reason why;
	cJSON *root;
	int rc = mqp_json_parse_object(request, len, &root, &why);
	if (rc)
		return rc;
	struct jobs_done d;
	uint64_t index;
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "case");
	struct jobs_case work;
	if (!(rc = jobs_parse_done_root(root, &d, &why)) &&
	    !(rc = mqp_json_uint(root, "index", JOBS_CASES_MAX, &index, &why)) &&
	    !(rc = c ? jobs_parse_case(c, &work, &why) : MQP_ERR_INPUT)) {
		strcpy(out->request_id, d.request_id); /* same sizes */
		strcpy(out->case_id, d.case_id);
		out->index = (int64_t)index;
		out->estimate_ms = work.work_ms >= 0   ? work.work_ms
				   : work.source >= 0 ? (int64_t)jobs_sources[work.source].max_ms
						      : 0;
	}
	cJSON_Delete(root);
	return rc;
}

int64_t dispatch_case_span_ms(int64_t timeout_ms, int64_t estimate_ms)
{
	int64_t by_estimate = estimate_ms * DISPATCH_ESTIMATE_FACTOR;
	return by_estimate > timeout_ms ? by_estimate : timeout_ms;
}

enum dispatch_expiry dispatch_on_deadline(int64_t attempts_made, int64_t max_attempts)
{
	return attempts_made < max_attempts ? DISPATCH_RESEND : DISPATCH_FAIL;
}

cJSON *dispatch_failed_done(const char *request_id, const char *case_id, int64_t index,
			    int64_t attempts, const char *by)
{
	char error[96];
	snprintf(error, sizeof(error), "no worker finished the case within %lld attempt%s",
		 (long long)attempts, attempts == 1 ? "" : "s");
	cJSON *o = cJSON_CreateObject(), *id = cJSON_Parse(case_id), *result;
	if (!o || !id || (!cJSON_IsString(id) && !cJSON_IsNumber(id)) ||
	    !cJSON_AddStringToObject(o, "requestId", request_id) ||
	    !cJSON_AddItemToObject(o, "caseId", id)) {
		cJSON_Delete(id);
		cJSON_Delete(o);
		return NULL;
	}
	if (!mqp_json_add_uint(o, "index", (uint64_t)index) ||
	    !mqp_json_add_uint(o, "processingMs", 0) ||
	    !(result = cJSON_AddObjectToObject(o, "result")) ||
	    !cJSON_AddStringToObject(result, "status", "failed") ||
	    !cJSON_AddStringToObject(result, "error", error) ||
	    !cJSON_AddStringToObject(o, "worker", by)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
