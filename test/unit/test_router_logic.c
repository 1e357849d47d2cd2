/* The router's rule (agents/router/router_logic.h): which key routes an input. */
#include <criterion/criterion.h>
#include <string.h>

#include "mqpipe/error.h"
#include "router_logic.h"

static int key_of(const char *topic, const char *payload, char *key, struct mqp_reason *why)
{
	return route_key(topic, payload, strlen(payload), key, why);
}

Test(route, module_events_go_by_their_module_in_either_spelling)
{
	char key[ROUTE_KEY_MAX + 1];
	struct mqp_reason why = {""};
	cr_assert_eq(key_of("recv_message", "{\"moduleId\":\"m-7\",\"timestamp\":1}", key, &why), 0);
	cr_assert_str_eq(key, "m-7");
	cr_assert_eq(key_of("weekly_diagnostic", "{\"moduleid\":\"m-8\",\"attempts\":3}", key, &why),
		     0);
	cr_assert_str_eq(key, "m-8");
}

Test(route, jobs_go_by_request_id_and_dashboards_by_request_id_field)
{
	char key[ROUTE_KEY_MAX + 1];
	struct mqp_reason why = {""};
	cr_assert_eq(key_of("job.submit", "{\"requestId\":\"j1\",\"requests\":[]}", key, &why), 0);
	cr_assert_str_eq(key, "j1");
	cr_assert_eq(key_of("dashboard.request", "{\"request_id\":\"d1\"}", key, &why), 0);
	cr_assert_str_eq(key, "d1");
}

Test(route, a_metric_goes_by_its_name_after_metrics)
{
	char key[ROUTE_KEY_MAX + 1];
	struct mqp_reason why = {""};
	cr_assert_eq(key_of("metrics/cpu/host1", "not even json", key, &why), 0);
	cr_assert_str_eq(key, "cpu/host1");
}

Test(route, an_event_without_its_key_is_refused_with_the_field)
{
	char key[ROUTE_KEY_MAX + 1];
	struct mqp_reason why = {""};
	cr_assert_eq(key_of("recv_message", "{\"timestamp\":1}", key, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "moduleId"), "%s", why.text);
	cr_assert_eq(key_of("job.submit", "{\"requestId\":7}", key, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "requestId"), "%s", why.text);
	cr_assert_eq(key_of("recv_message", "{broken", key, &why), MQP_ERR_INPUT);
	cr_assert_eq(key_of("recv_message", "{\"moduleId\":\"a\",\"moduleid\":\"b\"}", key, &why),
		     MQP_ERR_INPUT, "two spellings that differ");
}

Test(route, a_topic_it_does_not_read_is_refused)
{
	char key[ROUTE_KEY_MAX + 1];
	struct mqp_reason why = {""};
	cr_assert_eq(key_of("success_rate", "{}", key, &why), MQP_ERR_INPUT);
	cr_assert_str_eq(why.text, "topic 'success_rate' is not one the router reads");
	cr_assert_eq(key_of("metrics/", "1", key, &why), MQP_ERR_INPUT, "no name");
}
