/* The dispatcher's rules: job.submit validation, dashboard expansion, the
 * rendered compute.requests and the resubmit digest. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dispatcher_logic.h"
#include "mqpipe/error.h"

static struct dispatch_job submit_ok(const char *text)
{
	struct dispatch_job job;
	struct mqp_reason why = {""};
	cr_assert_eq(dispatch_parse_submit(text, strlen(text), &job, &why), 0, "%s: %s", text, why.text);
	return job;
}

static void submit_bad(const char *text, const char *reason_part)
{
	struct dispatch_job job;
	struct mqp_reason why = {""};
	cr_assert_eq(dispatch_parse_submit(text, strlen(text), &job, &why), MQP_ERR_INPUT, "%s", text);
	cr_assert(strstr(why.text, reason_part), "'%s': reason '%s' lacks '%s'", text, why.text,
		  reason_part);
	cr_assert_null(job.requests, "nothing left allocated");
}

Test(submit, renders_one_compute_request_per_case_in_order)
{
	struct dispatch_job job = submit_ok(
		"{\"requestId\":\"r1\",\"requests\":[{\"caseId\":\"a\",\"workMs\":5},{\"caseId\":2}]}");
	cr_assert_str_eq(job.request_id, "r1");
	cr_assert_str_eq(job.kind, "job");
	cr_assert_eq(job.n_cases, 2);
	cr_assert_str_eq(job.requests[0], "{\"requestId\":\"r1\",\"caseId\":\"a\",\"index\":0,\"case\":{\"caseId\":\"a\",\"workMs\":5}}");
	cr_assert_str_eq(job.requests[1], "{\"requestId\":\"r1\",\"caseId\":2,\"index\":1,\"case\":{\"caseId\":2}}");
	dispatch_job_free(&job);
}

Test(submit, accepts_zero_cases_and_a_length_as_number_or_digits)
{
	struct dispatch_job job = submit_ok("{\"requestId\":\"r0\",\"requests\":[],\"length\":0}");
	cr_assert_eq(job.n_cases, 0);
	dispatch_job_free(&job);
	job = submit_ok("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1}],\"length\":\"1\"}");
	cr_assert_eq(job.n_cases, 1);
	dispatch_job_free(&job);
}

Test(submit, refuses_every_class_of_bad_job)
{
	submit_bad("{\"requests\":[]}", "missing field 'requestId'");
	submit_bad("{\"requestId\":\"r\"}", "missing field 'requests'");
	submit_bad("{\"requestId\":\"r\",\"requests\":{}}", "must be an array");
	submit_bad("{\"requestId\":\"r\",\"requests\":[1]}", "requests[0] must be an object");
	submit_bad("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1},{}]}", "requests[1]: missing field 'caseId'");
	submit_bad("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1.5}]}", "requests[0]: field 'caseId'");
	submit_bad("{\"requestId\":\"r\",\"requests\":[{\"caseId\":\"x\"},{\"caseId\":\"x\"}]}", "caseId \"x\" appears more than once");
	submit_bad("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1}],\"length\":2}", "'length' is 2 but there are 1 requests");
	submit_bad("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1}],\"length\":\"one\"}", "string of digits");
	submit_bad("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1}],\"length\":-1}", "whole number");
}

Test(submit, refuses_a_case_no_worker_could_run_naming_it)
{
	/* Accepted before, such a job never finished: the worker refused the case. */
	const char *bad[][2] = {
		{"-5", "field 'workMs' must be a whole number from 0 to 3600000"},
		{"1e300", "field 'workMs' must be a whole number from 0 to 3600000"},
		{"3600001", "field 'workMs' must be a whole number from 0 to 3600000"},
		{"1.5", "field 'workMs' must be a whole number from 0 to 3600000"},
		{"\"5\"", "field 'workMs' must be a number"},
		{"null", "field 'workMs' must be a number"},
	};
	char text[256], want[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "{\"requestId\":\"r\",\"requests\":[{\"caseId\":\"a\"},"
			 "{\"caseId\":\"b\",\"workMs\":%s}]}", bad[i][0]);
		snprintf(want, sizeof(want), "requests[1] (caseId \"b\"): %s", bad[i][1]);
		submit_bad(text, want);
	}
	submit_bad("{\"requestId\":\"r\",\"requests\":[{\"caseId\":7,\"source\":\"tarot\"}]}",
		   "requests[0] (caseId 7): field 'source' is 'tarot', not a dashboard source");
	submit_bad("{\"requestId\":\"r\",\"requests\":[{\"caseId\":7,\"time_range\":\"\"}]}",
		   "requests[0] (caseId 7): field 'time_range' must not be empty");
	struct dispatch_job job = submit_ok("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1,\"workMs\":0},"
					    "{\"caseId\":2,\"workMs\":3600000},{\"caseId\":3,\"source\":\"sales\"}]}");
	cr_assert_eq(job.n_cases, 3, "0 and 3600000 ms are the bounds");
	dispatch_job_free(&job);
}

Test(submit, refuses_nul_in_ids_naming_the_field)
{
	static const char raw[] = "{\"requestId\":\"r\",\"requests\":[{\"caseId\":\"a\0x\"}]}";
	struct dispatch_job job;
	struct mqp_reason why = {""};
	cr_assert_eq(dispatch_parse_submit(raw, sizeof(raw) - 1, &job, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "field 'requests[0].caseId' holds a raw control character (byte 0x00)"),
		  "%s", why.text);
	submit_bad("{\"requestId\":\"r\\u0000x\",\"requests\":[]}", "field 'requestId' holds \\u0000 (NUL)");
}

Test(submit, the_string_7_and_the_number_7_are_different_cases)
{
	struct dispatch_job job = submit_ok("{\"requestId\":\"r\",\"requests\":[{\"caseId\":\"7\"},{\"caseId\":7}]}");
	cr_assert_eq(job.n_cases, 2);
	dispatch_job_free(&job);
}

Test(submit, refuses_more_than_the_case_limit)
{
	size_t n = 100001, size = n * 20 + 64;
	char *text = malloc(size);
	size_t pos = (size_t)snprintf(text, size, "{\"requestId\":\"big\",\"requests\":[");
	for (size_t i = 0; i < n; i++)
		pos += (size_t)snprintf(text + pos, size - pos, "%s{\"caseId\":%zu}", i ? "," : "", i);
	snprintf(text + pos, size - pos, "]}");
	submit_bad(text, "more than 100000 cases");
	free(text);
}

Test(digest, is_the_same_for_the_same_content_however_spaced)
{
	struct dispatch_job a = submit_ok("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1}]}");
	struct dispatch_job b = submit_ok("{ \"requestId\" : \"r\",\n \"requests\" : [ { \"caseId\" : 1 } ] }");
	struct dispatch_job c = submit_ok("{\"requestId\":\"r\",\"requests\":[{\"caseId\":2}]}");
	cr_assert_eq(a.digest, b.digest);
	cr_assert_neq(a.digest, c.digest);
	dispatch_job_free(&a);
	dispatch_job_free(&b);
	dispatch_job_free(&c);
}

Test(dashboard, expands_into_the_six_sources_with_defaults)
{
	const char *t = "{\"request_id\":\"d1\"}";
	struct dispatch_job job;
	cr_assert_eq(dispatch_parse_dashboard(t, strlen(t), &job, NULL), 0);
	cr_assert_str_eq(job.kind, "dashboard");
	cr_assert_eq(job.n_cases, JOBS_SOURCES);
	cr_assert_str_eq(job.requests[0], "{\"requestId\":\"d1\",\"caseId\":\"sales\",\"index\":0,\"case\":{\"caseId\":\"sales\","
					  "\"source\":\"sales\",\"dashboard_type\":\"executive\",\"time_range\":\"24h\"}}");
	cr_assert(strstr(job.requests[5], "\"caseId\":\"competitor_pricing\",\"index\":5,"));
	cr_assert_str_eq(job.dashboard_type, "executive");
	cr_assert_str_eq(job.time_range, "24h");
	cJSON *acc = dispatch_accepted_event(&job, 5);
	char *text = cJSON_PrintUnformatted(acc);
	cr_assert_str_eq(text, "{\"requestId\":\"d1\",\"target\":6,\"kind\":\"dashboard\","
			       "\"acceptedAt\":5,\"dashboard_type\":\"executive\",\"time_range\":\"24h\"}");
	cJSON_free(text);
	cJSON_Delete(acc);
	struct dispatch_job same;
	const char *u = "{\"request_id\":\"d1\",\"dashboard_type\":\"executive\",\"time_range\":\"24h\"}";
	cr_assert_eq(dispatch_parse_dashboard(u, strlen(u), &same, NULL), 0);
	cr_assert_eq(job.digest, same.digest, "defaults spelled out are the same request");
	dispatch_job_free(&job);
	dispatch_job_free(&same);
}

Test(dashboard, refuses_a_missing_or_mistyped_field)
{
	struct dispatch_job job;
	struct mqp_reason why;
	const char *t = "{\"time_range\":\"1h\"}";
	cr_assert_eq(dispatch_parse_dashboard(t, strlen(t), &job, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "missing field 'request_id'"), "%s", why.text);
	t = "{\"request_id\":\"d\",\"time_range\":24}";
	cr_assert_eq(dispatch_parse_dashboard(t, strlen(t), &job, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "'time_range' must be a string"), "%s", why.text);
}

Test(accepted, has_the_documented_fields)
{
	struct dispatch_job job = submit_ok("{\"requestId\":\"r\",\"requests\":[{\"caseId\":1}]}");
	cJSON *o = dispatch_accepted_event(&job, 1700000000123ULL);
	char *s = cJSON_PrintUnformatted(o);
	cr_assert_str_eq(s, "{\"requestId\":\"r\",\"target\":1,\"kind\":\"job\",\"acceptedAt\":1700000000123}");
	free(s);
	cJSON_Delete(o);
	dispatch_job_free(&job);
}

/* ---- case deadlines (README "Case deadlines") ---------------------------- */

Test(deadline, a_case_is_resent_until_its_last_attempt_then_failed)
{
	cr_assert_eq(dispatch_on_deadline(1, 3), DISPATCH_RESEND);
	cr_assert_eq(dispatch_on_deadline(2, 3), DISPATCH_RESEND);
	cr_assert_eq(dispatch_on_deadline(3, 3), DISPATCH_FAIL);
	cr_assert_eq(dispatch_on_deadline(1, 1), DISPATCH_FAIL, "one attempt: no resend");
	cr_assert_eq(dispatch_on_deadline(5, 3), DISPATCH_FAIL, "more sends than allowed (a lowered flag)");
}

Test(deadline, the_span_is_the_timeout_or_twice_the_estimate_when_longer)
{
	cr_assert_eq(dispatch_case_span_ms(300000, 0), 300000);
	cr_assert_eq(dispatch_case_span_ms(2000, 999), 2000);
	cr_assert_eq(dispatch_case_span_ms(2000, 1000), 2000);
	cr_assert_eq(dispatch_case_span_ms(2000, 1001), 2002);
	cr_assert_eq(dispatch_case_span_ms(300000, 3600000), 7200000, "an hour's work: two hours");
}

/* Reads what the dispatcher keeps of each case of text (a job.submit or,
 * with dashboard, a dashboard.request). */
static void read_cases(const char *text, int dashboard, struct dispatch_sent *out, size_t n)
{
	struct dispatch_job job;
	struct mqp_reason why = {""};
	int rc = dashboard ? dispatch_parse_dashboard(text, strlen(text), &job, &why)
			   : dispatch_parse_submit(text, strlen(text), &job, &why);
	cr_assert_eq(rc, 0, "%s", why.text);
	cr_assert_eq(job.n_cases, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(dispatch_read_sent(job.requests[i], strlen(job.requests[i]), &out[i]), 0,
			     "%s", job.requests[i]);
	dispatch_job_free(&job);
}

Test(deadline, a_sent_case_is_read_back_with_its_work_estimate)
{
	struct dispatch_sent c[3];
	read_cases("{\"requestId\":\"r\",\"requests\":[{\"caseId\":\"a\",\"workMs\":250},{\"caseId\":7},"
		   "{\"caseId\":\"7\",\"workMs\":0}]}",
		   0, c, 3);
	cr_assert_str_eq(c[0].request_id, "r");
	cr_assert_str_eq(c[0].case_id, "\"a\"", "the caseId's JSON text, as the counter keys it");
	cr_assert_eq(c[0].index, 0);
	cr_assert_eq(c[0].estimate_ms, 250);
	cr_assert_str_eq(c[1].case_id, "7");
	cr_assert_eq(c[1].index, 1);
	cr_assert_eq(c[1].estimate_ms, 0, "no workMs: no estimate");
	cr_assert_str_eq(c[2].case_id, "\"7\"", "the string 7 is another case than the number 7");
	struct dispatch_sent d[JOBS_SOURCES];
	read_cases("{\"request_id\":\"d\"}", 1, d, JOBS_SOURCES);
	for (int i = 0; i < JOBS_SOURCES; i++)
		cr_assert_eq(d[i].estimate_ms, (int64_t)jobs_sources[i].max_ms,
			     "a source's slowest latency");
	const char *bad = "{\"caseId\":1}";
	cr_assert_eq(dispatch_read_sent(bad, strlen(bad), &c[0]), MQP_ERR_INPUT);
}

Test(deadline, the_failed_compute_done_names_the_case_and_the_attempts)
{
	cJSON *o = dispatch_failed_done("r", "\"a\"", 4, 3, "mqpipe-dispatcher");
	char *s = cJSON_PrintUnformatted(o);
	cr_assert_str_eq(s, "{\"requestId\":\"r\",\"caseId\":\"a\",\"index\":4,\"processingMs\":0,"
			    "\"result\":{\"status\":\"failed\",\"error\":\"no worker finished the case"
			    " within 3 attempts\"},\"worker\":\"mqpipe-dispatcher\"}");
	free(s);
	cJSON_Delete(o);
	o = dispatch_failed_done("r", "7", 0, 1, "x");
	s = cJSON_PrintUnformatted(o);
	cr_assert(strstr(s, "\"caseId\":7,") && strstr(s, "within 1 attempt\""), "%s", s);
	free(s);
	cJSON_Delete(o);
	cr_assert_null(dispatch_failed_done("r", "not json", 0, 1, "x"));
	cr_assert_null(dispatch_failed_done("r", "[1]", 0, 1, "x"));
}
