/* The aggregator's rules: see aggregator_logic.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator_logic.h"
#include "mqpipe/error.h"

static const char *const fanin__modes[] = {"classic", "eager", "future"};

int fanin_mode_parse(const char *text, enum fanin_mode *out)
{
	for (int m = FANIN_CLASSIC; m <= FANIN_FUTURE; m++)
		if (strcmp(text, fanin__modes[m]) == 0) {
			*out = (enum fanin_mode)m;
			return MQP_OK;
		}
	return MQP_ERR_INVAL;
}

const char *fanin_mode_name(enum fanin_mode mode)
{
	return fanin__modes[mode];
}

bool fanin_complete(const struct fanin_job *j)
{
	return j->accepted && j->inputs >= j->target;
}

static int64_t fanin__max(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

int64_t fanin_due(const struct fanin_timing *t, const struct fanin_job *j)
{
	if (!fanin_complete(j))
		return -1;
	if (j->target == 0) /* nothing to wait for: at once (README "Aggregator") */
		return j->accepted_ms;
	switch (t->mode) {
	case FANIN_CLASSIC:
		return j->trigger_ms ? fanin__max(j->trigger_ms + t->setup_ms, j->last_ms) : -1;
	case FANIN_EAGER: {
		int64_t ready = j->first_ms + t->setup_ms;
		int64_t wait = j->last_ms - ready;
		if (wait <= 0 || t->poll_ms <= 0)
			return fanin__max(ready, j->last_ms);
		/* The first poll at or after the last input. */
		return ready + (wait + t->poll_ms - 1) / t->poll_ms * t->poll_ms;
	}
	case FANIN_FUTURE:
	default:
		return fanin__max(j->first_ms + t->setup_ms, j->last_ms);
	}
}

uint64_t fanin_pre_resolved(const struct fanin_timing *t, const struct fanin_job *j)
{
	if (t->mode != FANIN_FUTURE || j->inputs == 0)
		return 0;
	return j->first_ms + t->setup_ms <= j->last_ms ? j->inputs - 1 : 0;
}

int fanin_parse_input(const void *payload, size_t len, struct fanin_input *out,
		      struct mqp_reason *why)
{
	memset(out, 0, sizeof(*out));
	out->index = -1;
	cJSON *root;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	uint64_t v;
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (!(rc = jobs_parse_done_root(root, &out->ids, why)) &&
	    !(rc = mqp_json_uint(root, "processingMs", MQP_UINT_MAX_EXACT, &out->processing_ms, why)) &&
	    !(rc = jobs_optional_id(root, "worker", out->worker, why))) {
		if (cJSON_GetObjectItemCaseSensitive(root, "index") &&
		    !(rc = mqp_json_uint(root, "index", JOBS_CASES_MAX - 1, &v, why)))
			out->index = (int64_t)v;
	}
	if (!rc && !result)
		rc = mqp_reason_set(why, "missing field 'result'");
	if (!rc && !(out->result = cJSON_PrintUnformatted(result)))
		rc = MQP_ERR_NOMEM;
	cJSON_Delete(root);
	if (rc)
		fanin_input_free(out);
	return rc;
}

void fanin_input_free(struct fanin_input *in)
{
	cJSON_free(in->result);
	in->result = NULL;
}

int fanin_parse_trigger(const void *payload, size_t len, char *request_id,
			struct mqp_reason *why)
{
	cJSON *root;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	const char *s;
	uint64_t v;
	if (!(rc = mqp_json_string(root, "requestId", JOBS_ID_MAX, &s, why)) &&
	    !(rc = mqp_json_uint(root, "target", JOBS_CASES_MAX, &v, why)) &&
	    !(rc = mqp_json_uint(root, "completed", JOBS_CASES_MAX, &v, why)))
		strcpy(request_id, s); /* bounded above */
	cJSON_Delete(root);
	return rc;
}

void fanin_text_put(struct fanin_text *t, const char *s, size_t n)
{
	if (t->failed)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *p = realloc(t->s, cap);
		if (!p) {
			t->failed = 1;
			return;
		}
		t->s = p;
		t->cap = cap;
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
}

void fanin_text_puts(struct fanin_text *t, const char *s)
{
	fanin_text_put(t, s, strlen(s));
}

void fanin_text_free(struct fanin_text *t)
{
	free(t->s);
	memset(t, 0, sizeof(*t));
}

/* Appends s as a JSON string (quoted and escaped by cJSON). */
static void fanin__string(struct fanin_text *t, const char *s)
{
	cJSON *str = cJSON_CreateString(s);
	char *json = str ? cJSON_PrintUnformatted(str) : NULL;
	if (json)
		fanin_text_puts(t, json);
	else
		t->failed = 1;
	cJSON_free(json);
	cJSON_Delete(str);
}

void fanin_summary_begin(struct fanin_text *t, const char *request_id, uint64_t cases)
{
	char num[32];
	fanin_text_puts(t, "{\"requestId\":");
	fanin__string(t, request_id);
	snprintf(num, sizeof(num), ",\"cases\":%" PRIu64 ",\"results\":[", cases);
	fanin_text_puts(t, num);
}

void fanin_summary_add(struct fanin_text *t, const char *case_id, uint64_t processing_ms,
		       const char *result)
{
	char num[48];
	fanin_text_puts(t, t->len && t->s[t->len - 1] == '[' ? "{\"caseId\":" : ",{\"caseId\":");
	fanin_text_puts(t, case_id);
	snprintf(num, sizeof(num), ",\"processingMs\":%" PRIu64 ",\"result\":", processing_ms);
	fanin_text_puts(t, num);
	fanin_text_puts(t, result);
	fanin_text_puts(t, "}");
}

void fanin_summary_end(struct fanin_text *t, enum fanin_mode mode, uint64_t pre_resolved,
		       int64_t e2e_ms)
{
	char tail[128];
	snprintf(tail, sizeof(tail), "],\"mode\":\"%s\",\"preResolved\":%" PRIu64 ",\"e2eMs\":%" PRId64 "}",
		 fanin_mode_name(mode), pre_resolved, e2e_ms < 0 ? 0 : e2e_ms);
	fanin_text_puts(t, tail);
}

char *fanin_dashboard(const char *request_id, const char *dashboard_type, const char *time_range,
		      const char *const *case_ids, const char *const *results, size_t n,
		      enum fanin_mode mode, uint64_t pre_resolved, int64_t e2e_ms)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *sources = o ? cJSON_CreateObject() : NULL;
	int ok = sources && cJSON_AddStringToObject(o, "request_id", request_id) &&
		 cJSON_AddStringToObject(o, "dashboard_type", dashboard_type) &&
		 cJSON_AddStringToObject(o, "time_range", time_range) &&
		 cJSON_AddItemToObject(o, "sources", sources);
	if (!ok)
		cJSON_Delete(sources);
	for (size_t i = 0; ok && i < n; i++) {
		cJSON *id = cJSON_Parse(case_ids[i]);
		cJSON *r = cJSON_Parse(results[i]);
		/* A numeric caseId still gets a key: its digits. */
		const char *key = cJSON_IsString(id) ? id->valuestring : case_ids[i];
		ok = id && r && cJSON_AddItemToObject(sources, key, r);
		if (!ok)
			cJSON_Delete(r);
		cJSON_Delete(id);
	}
	char *text = NULL;
	if (ok && cJSON_AddStringToObject(o, "mode", fanin_mode_name(mode)) &&
	    mqp_json_add_uint(o, "pre_resolved", pre_resolved) &&
	    mqp_json_add_uint(o, "total_inputs", n) &&
	    mqp_json_add_uint(o, "e2e_ms", e2e_ms < 0 ? 0 : (uint64_t)e2e_ms))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}
