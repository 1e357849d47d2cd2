/* The aggregator's rules: when each fan-in mode sends its result, what it
 * merged early, and how the results are rendered (README "Aggregator"). */
#include <criterion/criterion.h>
#include <string.h>

#include "aggregator_logic.h"
#include "mqpipe/error.h"

/* Six inputs: the first at 1000, the last at 4000 (the slowest branch). */
static struct fanin_job dashboard(void)
{
	return (struct fanin_job){.accepted = true, .target = 6, .accepted_ms = 900, .inputs = 6,
				  .first_ms = 1000, .last_ms = 4000, .trigger_ms = 4002};
}

static struct fanin_timing timing(enum fanin_mode mode, int64_t setup, int64_t poll)
{
	return (struct fanin_timing){mode, setup, poll};
}

Test(schedule, future_hides_the_setup_behind_the_slowest_branch)
{
	struct fanin_job j = dashboard();
	struct fanin_timing t = timing(FANIN_FUTURE, 500, 100);
	cr_assert_eq(fanin_due(&t, &j), 4000, "the result goes out as the last input lands");
	cr_assert_eq(fanin_pre_resolved(&t, &j), 5);
	t.setup_ms = 3500; /* start-up longer than the wait: it shows */
	cr_assert_eq(fanin_due(&t, &j), 4500);
	cr_assert_eq(fanin_pre_resolved(&t, &j), 0);
}

Test(schedule, classic_pays_the_setup_after_the_trigger)
{
	struct fanin_job j = dashboard();
	struct fanin_timing t = timing(FANIN_CLASSIC, 500, 100);
	cr_assert_eq(fanin_due(&t, &j), 4502);
	cr_assert_eq(fanin_pre_resolved(&t, &j), 0);
	j.trigger_ms = 0;
	cr_assert_eq(fanin_due(&t, &j), -1, "no trigger, no result");
	j.trigger_ms = 3000; /* the counter is ahead of this agent's own inputs */
	cr_assert_eq(fanin_due(&t, &j), 4000);
}

Test(schedule, eager_waits_for_the_first_poll_after_the_last_input)
{
	struct fanin_job j = dashboard();
	struct fanin_timing t = timing(FANIN_EAGER, 500, 100);
	/* setup done at 1500; polls at 1600 … 4000: the last lands on a poll */
	cr_assert_eq(fanin_due(&t, &j), 4000);
	j.last_ms = 4001;
	cr_assert_eq(fanin_due(&t, &j), 4100);
	cr_assert_eq(fanin_pre_resolved(&t, &j), 0);
	t.setup_ms = 5000; /* everything is there before the setup ends */
	cr_assert_eq(fanin_due(&t, &j), 6000);
	t.poll_ms = 0;
	t.setup_ms = 500;
	cr_assert_eq(fanin_due(&t, &j), 4001, "poll 0 checks at every input");
}

Test(schedule, nothing_goes_out_while_inputs_or_the_target_are_missing)
{
	struct fanin_job j = dashboard();
	for (int m = FANIN_CLASSIC; m <= FANIN_FUTURE; m++) {
		struct fanin_timing t = timing((enum fanin_mode)m, 0, 10);
		j.inputs = 5;
		cr_assert_eq(fanin_due(&t, &j), -1);
		j.inputs = 6;
		j.accepted = false;
		cr_assert_eq(fanin_due(&t, &j), -1, "inputs before job.accepted");
		j.accepted = true;
		cr_assert_geq(fanin_due(&t, &j), 4000);
	}
}

Test(schedule, zero_cases_go_out_at_acceptance_in_every_mode)
{
	struct fanin_job j = {.accepted = true, .target = 0, .accepted_ms = 777};
	for (int m = FANIN_CLASSIC; m <= FANIN_FUTURE; m++) {
		struct fanin_timing t = timing((enum fanin_mode)m, 1000, 10);
		cr_assert_eq(fanin_due(&t, &j), 777);
		cr_assert_eq(fanin_pre_resolved(&t, &j), 0);
	}
}

Test(mode, parses_the_three_names)
{
	enum fanin_mode m;
	cr_assert_eq(fanin_mode_parse("eager", &m), 0);
	cr_assert_eq(m, FANIN_EAGER);
	cr_assert_str_eq(fanin_mode_name(FANIN_FUTURE), "future");
	cr_assert_eq(fanin_mode_parse("FUTURE", &m), MQP_ERR_INVAL);
	cr_assert_eq(fanin_mode_parse("", &m), MQP_ERR_INVAL);
}

Test(input, keeps_the_result_text_and_refuses_incomplete_ones)
{
	struct fanin_input in;
	struct mqp_reason why = {""};
	const char *ok = "{\"requestId\":\"r\",\"caseId\":\"c\",\"index\":2,\"processingMs\":5,"
			 "\"result\":{\"v\": [1, 2]},\"worker\":\"w\"}";
	cr_assert_eq(fanin_parse_input(ok, strlen(ok), &in, &why), 0, "%s", why.text);
	cr_assert_str_eq(in.result, "{\"v\":[1,2]}");
	cr_assert_eq(in.index, 2);
	cr_assert_str_eq(in.worker, "w");
	fanin_input_free(&in);
	const char *bad[][2] = {
		{"{\"requestId\":\"r\",\"caseId\":\"c\",\"processingMs\":5}", "missing field 'result'"},
		{"{\"requestId\":\"r\",\"caseId\":\"c\",\"result\":1}", "processingMs"},
		{"{\"requestId\":\"r\",\"caseId\":\"c\",\"processingMs\":-1,\"result\":1}", "processingMs"},
		{"{\"requestId\":\"r\",\"caseId\":\"c\",\"processingMs\":1,\"result\":1,\"worker\":7}", "worker"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(fanin_parse_input(bad[i][0], strlen(bad[i][0]), &in, &why), MQP_ERR_INPUT,
			     "%s", bad[i][0]);
		cr_assert(strstr(why.text, bad[i][1]), "'%s': '%s'", bad[i][0], why.text);
	}
}

Test(trigger, reads_the_request_id)
{
	char id[JOBS_ID_MAX + 1];
	struct mqp_reason why = {""};
	const char *ok = "{\"requestId\":\"r9\",\"target\":3,\"completed\":3}";
	cr_assert_eq(fanin_parse_trigger(ok, strlen(ok), id, &why), 0, "%s", why.text);
	cr_assert_str_eq(id, "r9");
	const char *bad = "{\"requestId\":\"r9\",\"target\":3}";
	cr_assert_eq(fanin_parse_trigger(bad, strlen(bad), id, &why), MQP_ERR_INPUT);
}

Test(render, summary_is_json_in_the_order_given)
{
	struct fanin_text t = {0};
	fanin_summary_begin(&t, "r\"1", 2);
	fanin_summary_add(&t, "\"a\"", 3, "{\"x\":1}");
	fanin_summary_add(&t, "7", 0, "null");
	fanin_summary_end(&t, FANIN_FUTURE, 1, 42);
	cr_assert_str_eq(t.s, "{\"requestId\":\"r\\\"1\",\"cases\":2,\"results\":["
			      "{\"caseId\":\"a\",\"processingMs\":3,\"result\":{\"x\":1}},"
			      "{\"caseId\":7,\"processingMs\":0,\"result\":null}],"
			      "\"mode\":\"future\",\"preResolved\":1,\"e2eMs\":42}");
	cJSON *parsed = cJSON_Parse(t.s);
	cr_assert_not_null(parsed);
	cJSON_Delete(parsed);
	fanin_text_free(&t);
	fanin_summary_begin(&t, "empty", 0);
	fanin_summary_end(&t, FANIN_CLASSIC, 0, 0);
	cr_assert_str_eq(t.s, "{\"requestId\":\"empty\",\"cases\":0,\"results\":[],"
			      "\"mode\":\"classic\",\"preResolved\":0,\"e2eMs\":0}");
	fanin_text_free(&t);
}

Test(render, dashboard_maps_sources_to_results)
{
	const char *ids[] = {"\"sales\"", "\"weather\""};
	const char *results[] = {"{\"orders\":3}", "{\"temp_c\":20.5}"};
	char *text = fanin_dashboard("d1", "executive", "24h", ids, results, 2, FANIN_EAGER, 0, 99);
	cr_assert_str_eq(text, "{\"request_id\":\"d1\",\"dashboard_type\":\"executive\","
			       "\"time_range\":\"24h\",\"sources\":{\"sales\":{\"orders\":3},"
			       "\"weather\":{\"temp_c\":20.5}},\"mode\":\"eager\",\"pre_resolved\":0,"
			       "\"total_inputs\":2,\"e2e_ms\":99}");
	free(text);
}
