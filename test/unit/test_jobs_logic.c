/* The counter's fan-in rules for jobs (README "Fan-out" and "Fan-in"). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "jobs_logic.h"
#include "mqpipe/error.h"

static void done_ok(const char *text, const char *request_id, const char *case_id)
{
	struct jobs_done d;
	struct mqp_reason why = {""};
	cr_assert_eq(jobs_parse_done(text, strlen(text), &d, &why), 0, "%s: %s", text, why.text);
	cr_assert_str_eq(d.request_id, request_id);
	cr_assert_str_eq(d.case_id, case_id);
}

static void done_bad(const char *text, const char *reason_part)
{
	struct jobs_done d;
	struct mqp_reason why = {""};
	cr_assert_eq(jobs_parse_done(text, strlen(text), &d, &why), MQP_ERR_INPUT, "%s", text);
	cr_assert(strstr(why.text, reason_part), "'%s': reason '%s' lacks '%s'", text, why.text,
		  reason_part);
}

Test(done, keeps_string_and_number_case_ids_apart)
{
	done_ok("{\"requestId\":\"r\",\"caseId\":\"7\",\"processingMs\":3}", "r", "\"7\"");
	done_ok("{\"requestId\":\"r\",\"caseId\":7}", "r", "7");
	done_ok("{\"requestId\":\"r\",\"caseId\":\"a\\\"b\"}", "r", "\"a\\\"b\"");
}

Test(done, refuses_bad_case_ids_and_missing_fields)
{
	done_bad("{\"caseId\":1}", "missing field 'requestId'");
	done_bad("{\"requestId\":\"r\"}", "missing field 'caseId'");
	done_bad("{\"requestId\":\"r\",\"caseId\":{}}", "string or a whole number");
	done_bad("{\"requestId\":\"r\",\"caseId\":true}", "string or a whole number");
	done_bad("{\"requestId\":\"r\",\"caseId\":1.5}", "whole number");
	done_bad("{\"requestId\":\"r\",\"caseId\":-1}", "whole number");
	done_bad("{\"requestId\":\"r\",\"caseId\":\"\"}", "1 to 256 bytes");
	done_bad("{\"requestId\":5,\"caseId\":1}", "must be a string");
	done_bad("[]", "JSON object");
}

Test(accepted, reads_every_field)
{
	const char *t = "{\"requestId\":\"r1\",\"target\":7,\"kind\":\"job\",\"acceptedAt\":1700000000000}";
	struct jobs_accepted a;
	cr_assert_eq(jobs_parse_accepted(t, strlen(t), &a, NULL), 0);
	cr_assert_str_eq(a.request_id, "r1");
	cr_assert_eq(a.target, 7);
	cr_assert_str_eq(a.kind, "job");
	cr_assert_eq(a.accepted_at, 1700000000000ULL);
}

Test(accepted, refuses_a_target_past_the_case_limit)
{
	const char *t = "{\"requestId\":\"r1\",\"target\":100001,\"kind\":\"job\",\"acceptedAt\":1}";
	struct jobs_accepted a;
	struct mqp_reason why;
	cr_assert_eq(jobs_parse_accepted(t, strlen(t), &a, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "from 0 to 100000"), "%s", why.text);
	t = "{\"requestId\":\"r1\",\"target\":1,\"acceptedAt\":1}";
	cr_assert_eq(jobs_parse_accepted(t, strlen(t), &a, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "missing field 'kind'"), "%s", why.text);
}

Test(trigger, fires_once_every_case_is_done_and_the_target_is_known)
{
	struct jobs_state s = {false, 0, 3, false};
	cr_assert_not(jobs_should_trigger(&s), "target unknown: wait for job.accepted");
	s = (struct jobs_state){true, 3, 2, false};
	cr_assert_not(jobs_should_trigger(&s));
	s.completed = 3;
	cr_assert(jobs_should_trigger(&s));
	s.triggered = true;
	cr_assert_not(jobs_should_trigger(&s), "only once");
}

Test(trigger, a_job_of_zero_cases_is_complete_when_accepted)
{
	struct jobs_state s = {true, 0, 0, false};
	cr_assert(jobs_should_trigger(&s));
}

Test(trigger, event_has_the_documented_fields)
{
	cJSON *o = jobs_trigger_event("r1", 7, 7);
	char *s = cJSON_PrintUnformatted(o);
	cr_assert_str_eq(s, "{\"requestId\":\"r1\",\"target\":7,\"completed\":7}");
	free(s);
	cJSON_Delete(o);
}


/* jobs_parse_case on the object in text; returns its rc, the reason in why. */
static int parse_case(const char *text, struct jobs_case *c, struct mqp_reason *why)
{
	cJSON *o = cJSON_Parse(text);
	cr_assert_not_null(o, "%s", text);
	int rc = jobs_parse_case(o, c, why);
	cJSON_Delete(o);
	return rc;
}

Test(cases, a_case_is_read_as_a_worker_will_read_it)
{
	struct jobs_case c;
	struct mqp_reason why = {""};
	cr_assert_eq(parse_case("{\"caseId\":1,\"other\":[1]}", &c, &why), 0, "%s", why.text);
	cr_assert(c.work_ms == -1 && c.source == -1 && !c.dashboard_type[0] && !c.time_range[0]);
	cr_assert_eq(parse_case("{\"workMs\":3600000,\"source\":\"weather\",\"dashboard_type\":\"ops\","
				"\"time_range\":\"7d\"}", &c, &why), 0, "%s", why.text);
	cr_assert_eq(c.work_ms, 3600000);
	cr_assert_str_eq(jobs_sources[c.source].name, "weather");
	cr_assert_str_eq(c.dashboard_type, "ops");
	cr_assert_str_eq(c.time_range, "7d");
}

Test(cases, refuses_what_no_worker_could_run)
{
	static const char *const bad[][2] = {
		{"{\"workMs\":-5}", "field 'workMs' must be a whole number from 0 to 3600000"},
		{"{\"workMs\":1e300}", "field 'workMs' must be a whole number from 0 to 3600000"},
		{"{\"workMs\":3600001}", "field 'workMs' must be a whole number from 0 to 3600000"},
		{"{\"workMs\":\"5\"}", "field 'workMs' must be a number"},
		{"{\"source\":\"tarot\"}", "field 'source' is 'tarot', not a dashboard source"},
		{"{\"source\":5}", "field 'source' must be a string"},
		{"{\"dashboard_type\":\"\"}", "field 'dashboard_type' must not be empty"},
		{"{\"time_range\":[]}", "field 'time_range' must be a string"},
		{"[]", "a case must be an object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct jobs_case c;
		struct mqp_reason why = {""};
		cr_assert_eq(parse_case(bad[i][0], &c, &why), MQP_ERR_INPUT, "%s", bad[i][0]);
		cr_assert(strstr(why.text, bad[i][1]), "'%s': '%s' lacks '%s'", bad[i][0], why.text,
			  bad[i][1]);
	}
}
