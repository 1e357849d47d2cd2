/* The worker's rules: reading compute.request, how long work takes, mock
 * results and compute.done (README "Workers"). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqpipe/error.h"
#include "worker_logic.h"

static struct work_case parse_ok(const char *text)
{
	struct work_case c;
	struct mqp_reason why = {""};
	cr_assert_eq(work_parse_request(text, strlen(text), &c, &why), 0, "%s: %s", text, why.text);
	return c;
}

static void parse_bad(const char *text, const char *reason_part)
{
	struct work_case c;
	struct mqp_reason why = {""};
	cr_assert_eq(work_parse_request(text, strlen(text), &c, &why), MQP_ERR_INPUT, "%s", text);
	cr_assert(strstr(why.text, reason_part), "'%s': reason '%s' lacks '%s'", text, why.text,
		  reason_part);
}

Test(request, reads_ids_index_work_and_source)
{
	struct work_case c = parse_ok("{\"requestId\":\"r\",\"caseId\":7,\"index\":3,"
				      "\"case\":{\"caseId\":7,\"workMs\":250}}");
	cr_assert_str_eq(c.request_id, "r");
	cr_assert_str_eq(c.case_id, "7");
	cr_assert_eq(c.index, 3);
	cr_assert_eq(c.work_ms, 250);
	cr_assert_eq(c.source, -1);
	c = parse_ok("{\"requestId\":\"d\",\"caseId\":\"weather\",\"case\":{\"caseId\":\"weather\","
		     "\"source\":\"weather\",\"dashboard_type\":\"ops\",\"time_range\":\"7d\"}}");
	cr_assert_eq(c.index, -1);
	cr_assert_eq(c.work_ms, -1);
	cr_assert_str_eq(jobs_sources[c.source].name, "weather");
	cr_assert_str_eq(c.dashboard_type, "ops");
	cr_assert_str_eq(c.time_range, "7d");
}

Test(request, refuses_what_it_cannot_work_on)
{
	parse_bad("{\"caseId\":1,\"case\":{}}", "missing field 'requestId'");
	parse_bad("{\"requestId\":\"r\",\"caseId\":1}", "'case' must be an object");
	parse_bad("{\"requestId\":\"r\",\"caseId\":1,\"case\":[]}", "'case' must be an object");
	parse_bad("{\"requestId\":\"r\",\"caseId\":1,\"case\":{\"workMs\":-5}}", "case: field 'workMs'");
	parse_bad("{\"requestId\":\"r\",\"caseId\":1,\"case\":{\"workMs\":3600001}}", "case: field 'workMs'");
	parse_bad("{\"requestId\":\"r\",\"caseId\":1,\"case\":{\"source\":\"tarot\"}}",
		  "field 'source' is 'tarot', not a dashboard source");
	parse_bad("{\"requestId\":\"r\",\"caseId\":1,\"index\":100000,\"case\":{}}", "field 'index'");
}

Test(request, a_refused_case_keeps_its_ids_so_it_can_be_answered)
{
	struct work_case c;
	struct mqp_reason why = {""};
	const char *t = "{\"requestId\":\"r\",\"caseId\":\"b\",\"index\":4,\"case\":{\"workMs\":1e300}}";
	cr_assert_eq(work_parse_request(t, strlen(t), &c, &why), MQP_ERR_INPUT);
	cr_assert_str_eq(c.request_id, "r");
	cr_assert_str_eq(c.case_id, "\"b\"");
	cr_assert_eq(c.index, 4);
	cr_assert(strstr(why.text, "case: field 'workMs' must be a whole number from 0 to 3600000"),
		  "%s", why.text);
	t = "{\"requestId\":\"r\",\"caseId\":1,\"index\":-1,\"case\":{}}";
	cr_assert_eq(work_parse_request(t, strlen(t), &c, &why), MQP_ERR_INPUT);
	cr_assert_str_eq(c.request_id, "r", "a bad index still names the case");
	cr_assert_eq(c.index, -1);
	t = "{\"caseId\":1,\"case\":{}}";
	cr_assert_eq(work_parse_request(t, strlen(t), &c, &why), MQP_ERR_INPUT);
	cr_assert_str_eq(c.request_id, "", "without its ids a request cannot be answered");
}

Test(result, a_refused_case_is_answered_failed)
{
	struct work_case c;
	struct mqp_reason why;
	const char *t = "{\"requestId\":\"r\",\"caseId\":2,\"index\":1,\"case\":{\"workMs\":-5}}";
	cr_assert_eq(work_parse_request(t, strlen(t), &c, &why), MQP_ERR_INPUT);
	cJSON *result = work_failed_result(why.text);
	char *text = work_done_payload(&c, 0, result, "w1");
	char want[512];
	snprintf(want, sizeof(want), "{\"requestId\":\"r\",\"caseId\":2,\"index\":1,\"processingMs\":0,"
		 "\"result\":{\"status\":\"failed\",\"error\":\"%s\"},\"worker\":\"w1\"}", why.text);
	cr_assert_str_eq(text, want);
	free(text);
	cJSON_Delete(result);
}

Test(duration, case_work_ms_wins_over_the_flag)
{
	struct work_profile p;
	work_profile_default(&p);
	cr_assert_eq(work_parse_range("40-60", &p.work_min_ms, &p.work_max_ms), 0);
	uint64_t rng = 1;
	struct work_case c = parse_ok("{\"requestId\":\"r\",\"caseId\":1,\"case\":{\"workMs\":7}}");
	cr_assert_eq(work_duration(&p, &c, &rng), 7);
	c = parse_ok("{\"requestId\":\"r\",\"caseId\":1,\"case\":{}}");
	for (int i = 0; i < 1000; i++) {
		unsigned ms = work_duration(&p, &c, &rng);
		cr_assert(ms >= 40 && ms <= 60, "%u", ms);
	}
}

Test(duration, sources_stay_in_their_scaled_ranges)
{
	struct work_profile p;
	work_profile_default(&p);
	p.latency_scale = 0.1;
	uint64_t rng = 42;
	struct work_case c = parse_ok("{\"requestId\":\"d\",\"caseId\":\"x\",\"case\":"
				      "{\"source\":\"external_market\"}}");
	unsigned lo = 100000, hi = 0;
	for (int i = 0; i < 5000; i++) {
		unsigned ms = work_duration(&p, &c, &rng);
		lo = ms < lo ? ms : lo;
		hi = ms > hi ? ms : hi;
	}
	cr_assert(lo >= 50 && lo < 55 && hi <= 300 && hi > 295, "range %u-%u", lo, hi);
}

Test(range, parses_min_and_min_max)
{
	unsigned lo, hi;
	cr_assert_eq(work_parse_range("0", &lo, &hi), 0);
	cr_assert(lo == 0 && hi == 0);
	cr_assert_eq(work_parse_range("5-20", &lo, &hi), 0);
	cr_assert(lo == 5 && hi == 20);
	cr_assert_eq(work_parse_range("20-5", &lo, &hi), MQP_ERR_INVAL);
	cr_assert_eq(work_parse_range("-5", &lo, &hi), MQP_ERR_INVAL);
	cr_assert_eq(work_parse_range("5-", &lo, &hi), MQP_ERR_INVAL);
	cr_assert_eq(work_parse_range("1x", &lo, &hi), MQP_ERR_INVAL);
	cr_assert_eq(work_parse_range("3600001", &lo, &hi), MQP_ERR_INVAL);
}

Test(profile, overrides_named_sources_and_names_a_bad_entry)
{
	struct work_profile p;
	work_profile_default(&p);
	char err[300] = "";
	const char *ok = "{\"sales\":[1,2],\"weather\":[10,10]}";
	cr_assert_eq(work_profile_load(&p, ok, strlen(ok), err, sizeof(err)), 0, "%s", err);
	cr_assert(p.source_min_ms[0] == 1 && p.source_max_ms[0] == 2);
	cr_assert(p.source_min_ms[4] == 10 && p.source_max_ms[4] == 10);
	cr_assert(p.source_min_ms[3] == 500 && p.source_max_ms[3] == 3000, "others keep theirs");
	const char *bad[][2] = {
		{"{\"salse\":[1,2]}", "'salse' is not a source"},
		{"{\"sales\":[5,2]}", "'sales': expected [min_ms, max_ms]"},
		{"{\"sales\":[1.5,2]}", "'sales': expected"},
		{"{\"sales\":100}", "'sales': expected"},
		{"[1,2]", "expected a JSON object"},
		{"{\"sales\":[1,2]", "expected a JSON object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(work_profile_load(&p, bad[i][0], strlen(bad[i][0]), err, sizeof(err)),
			     MQP_ERR_INVAL, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "'%s': '%s'", bad[i][0], err);
	}
}

Test(result, each_source_returns_data_of_its_kind)
{
	static const char *const expect[JOBS_SOURCES] = {"top_products", "warehouses", "campaigns",
							 "indices", "locations", "competitors"};
	uint64_t rng = 7;
	for (int s = 0; s < JOBS_SOURCES; s++) {
		char text[300];
		snprintf(text, sizeof(text),
			 "{\"requestId\":\"d\",\"caseId\":\"%s\",\"case\":{\"source\":\"%s\","
			 "\"time_range\":\"7d\"}}", jobs_sources[s].name, jobs_sources[s].name);
		struct work_case c = parse_ok(text);
		cJSON *r = work_result(&c, &rng);
		cr_assert_not_null(r);
		cr_assert_str_eq(cJSON_GetObjectItem(r, "source")->valuestring, jobs_sources[s].name);
		cr_assert_str_eq(cJSON_GetObjectItem(r, "time_range")->valuestring, "7d");
		cJSON *list = cJSON_GetObjectItem(r, expect[s]);
		cr_assert(cJSON_IsArray(list) && cJSON_GetArraySize(list) == 3, "%s", expect[s]);
		cJSON_Delete(r);
	}
}

Test(done, echoes_ids_index_and_signs_with_the_worker)
{
	struct work_case c = parse_ok("{\"requestId\":\"r\",\"caseId\":9007199254740991,\"index\":4,"
				      "\"case\":{}}");
	uint64_t rng = 3;
	cJSON *r = work_result(&c, &rng);
	char *text = work_done_payload(&c, 12, r, "w1");
	cr_assert_str_eq(text, "{\"requestId\":\"r\",\"caseId\":9007199254740991,\"index\":4,"
			       "\"processingMs\":12,\"result\":{\"status\":\"success\"},\"worker\":\"w1\"}");
	free(text);
	cJSON_Delete(r);
}
