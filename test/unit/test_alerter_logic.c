/* The alerter's rules (README "Alerts"): the running window sum, the decision,
 * reading points, matching topics and the rules file. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mqpipe/error.h"
#include "alerter_logic.h"

Test(window, an_empty_window_never_alerts)
{
	struct alert_rule r;
	alert_rule_default(&r);
	struct win_sum w = {0, 0, 0};
	cr_assert_not(alert_decide(&r, &w, 1e300));
	cr_assert_eq(win_mean(&w), 0);
}

Test(window, alerts_strictly_above_three_times_the_mean)
{
	struct alert_rule r;
	alert_rule_default(&r);
	struct win_sum w = {0, 0, 0};
	win_add(&w, 100);
	win_add(&w, 100);
	cr_assert_not(alert_decide(&r, &w, 300), "exactly 3x is not above");
	cr_assert(alert_decide(&r, &w, 300.0001));
	r.direction = ALERT_BELOW;
	r.factor = 1.0 / 3;
	cr_assert(alert_decide(&r, &w, 33));
	cr_assert_not(alert_decide(&r, &w, 34));
	r.min_samples = 3;
	cr_assert_not(alert_decide(&r, &w, 1), "fewer samples than the rule asks");
}

Test(window, negative_means_follow_the_same_rule)
{
	struct alert_rule r;
	alert_rule_default(&r);
	struct win_sum w = {0, 0, 0};
	win_add(&w, -10);
	cr_assert(alert_decide(&r, &w, -29), "-29 > 3 x -10");
	cr_assert_not(alert_decide(&r, &w, -31));
}

Test(window, huge_values_come_and_go_without_drift)
{
	struct win_sum w = {0, 0, 0};
	win_add(&w, 1e300);
	win_add(&w, 1);
	win_add(&w, -1e300);
	cr_assert_eq(w.sum + w.comp, 1, "got %g", w.sum + w.comp);
	win_remove(&w, -1e300);
	win_remove(&w, 1e300);
	cr_assert_eq(win_mean(&w), 1);
	for (int i = 0; i < 100000; i++)
		win_add(&w, 0.1);
	for (int i = 0; i < 100000; i++)
		win_remove(&w, 0.1);
	cr_assert_eq(w.count, 1);
	cr_assert_float_eq(win_mean(&w), 1, 1e-12);
	win_remove(&w, 1);
	cr_assert(w.count == 0 && w.sum == 0 && w.comp == 0, "empty is exactly zero");
}

#define ARRIVAL 1800000000 /* the alerter's clock when the point arrived, Unix s */

static struct alert_point point_ok(const struct alert_rule *r, const char *topic, const char *payload)
{
	struct alert_point p;
	struct mqp_reason why = {""};
	cr_assert_eq(alert_point_parse(r, topic, payload, strlen(payload), ARRIVAL, &p, &why), 0,
		     "%s: %s", payload, why.text);
	return p;
}

static void point_bad_on(const struct alert_rule *r, const char *topic, const char *payload,
			 size_t len, const char *reason)
{
	struct alert_point p;
	struct mqp_reason why = {""};
	cr_assert_eq(alert_point_parse(r, topic, payload, len, ARRIVAL, &p, &why), MQP_ERR_INPUT,
		     "%s", payload);
	cr_assert(strstr(why.text, reason), "'%s': '%s' lacks '%s'", payload, why.text, reason);
}

static void point_bad(const struct alert_rule *r, const char *payload, const char *reason)
{
	point_bad_on(r, "metrics/x", payload, strlen(payload), reason);
}

/* The rule that separates success_rate's series by module. */
static void rule_by_module(struct alert_rule *r)
{
	alert_rule_default(r);
	strcpy(r->filter, "success_rate");
	strcpy(r->value_field, "success_rate");
	strcpy(r->key_field, "moduleid");
}

Test(points, objects_and_bare_numbers)
{
	struct alert_rule r;
	alert_rule_default(&r);
	struct alert_point p = point_ok(&r, "metrics/btc/volume", "{\"value\":12.5,\"timestamp\":1700000000}");
	cr_assert_str_eq(p.series, "btc/volume");
	cr_assert(p.value == 12.5 && p.ts == 1700000000);
	p = point_ok(&r, "metrics/gold", " -3e2 ");
	cr_assert(p.value == -300 && p.ts == ARRIVAL, "a bare number's time is its arrival");
	p = point_ok(&r, "metrics/gold", "{\"value\":1}");
	cr_assert_eq(p.ts, ARRIVAL);
}

Test(points, refuses_nan_text_infinities_and_the_rest)
{
	struct alert_rule r;
	alert_rule_default(&r);
	point_bad(&r, "NaN", "not JSON");
	point_bad(&r, "{\"value\":\"NaN\"}", "must be a number");
	point_bad(&r, "1e999", "must be a number");
	point_bad(&r, "{\"value\":2e300}", "beyond");
	point_bad(&r, "{\"timestamp\":5}", "missing field 'value'");
	point_bad(&r, "{\"value\":1,\"timestamp\":-5}", "timestamp");
	point_bad(&r, "{\"value\":1,\"timestamp\":1.5}", "timestamp");
	point_bad(&r, "", "empty");
}

Test(points, a_key_separates_series_and_null_is_no_point)
{
	struct alert_rule r;
	rule_by_module(&r);
	struct alert_point p = point_ok(&r, "success_rate",
					"{\"moduleid\":\"m-1\",\"timestamp\":9,\"success_rate\":80}");
	cr_assert_str_eq(p.series, "success_rate/m-1");
	p = point_ok(&r, "success_rate", "{\"moduleid\":7,\"timestamp\":9,\"success_rate\":1}");
	cr_assert_str_eq(p.series, "success_rate/7");
	p = point_ok(&r, "success_rate", "{\"moduleid\":7,\"timestamp\":9,\"success_rate\":null}");
	cr_assert(p.none);
	point_bad(&r, "{\"success_rate\":1}", "moduleid");
	point_bad(&r, "5", "bare number");
}

Test(points, a_key_that_cannot_be_a_topic_level_is_refused_not_rewritten)
{
	/* "#" and "+" used to become "_": three modules in one series. */
	struct alert_rule r;
	rule_by_module(&r);
	const char *bad[] = {
		"{\"moduleid\":\"#\",\"success_rate\":1}", "{\"moduleid\":\"+\",\"success_rate\":1}",
		"{\"moduleid\":\"m+1\",\"success_rate\":1}", "{\"moduleid\":\"a/b\",\"success_rate\":1}",
		"{\"moduleid\":\"a\\u0001\",\"success_rate\":1}", /* escaped: decoded by cJSON */
		"{\"moduleid\":\"a\\u007f\",\"success_rate\":1}",
		"{\"moduleid\":\"a\\u0085\",\"success_rate\":1}", /* C1, two bytes in UTF-8 */
		"{\"moduleid\":\"\",\"success_rate\":1}", "{\"moduleid\":-1,\"success_rate\":1}",
		"{\"moduleid\":1e16,\"success_rate\":1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		point_bad_on(&r, "success_rate", bad[i], strlen(bad[i]), "can be a topic level");
	struct alert_point p = point_ok(&r, "success_rate", "{\"moduleid\":\"caf\u00e9\",\"success_rate\":1}");
	cr_assert_str_eq(p.series, "success_rate/caf\xc3\xa9", "other characters are kept");
}

Test(points, a_raw_nul_in_a_key_is_refused_naming_the_field)
{
	struct alert_rule r;
	rule_by_module(&r);
	static const char t[] = "{\"moduleid\":\"victim\0x\",\"success_rate\":1}";
	point_bad_on(&r, "success_rate", t, sizeof(t) - 1, "field 'moduleid' holds a raw control character");
}

Test(points, a_series_name_is_never_cut)
{
	/* Cut at 511 bytes, two long names were one series. */
	struct alert_rule r;
	alert_rule_default(&r);
	char topic[700] = "metrics/";
	memset(topic + 8, 'n', 511);
	struct alert_point p = point_ok(&r, topic, "1");
	cr_assert_eq(strlen(p.series), 511, "511 bytes is the most");
	topic[8 + 511] = 'a';
	point_bad_on(&r, topic, "1", 1, "the series name would be 512 bytes, more than 511");
	memset(topic + 8, 'n', 600);
	point_bad_on(&r, topic, "1", 1, "more than 511");

	/* The key counts too. */
	rule_by_module(&r);
	char name[600] = "success_rate/", payload[400];
	memset(name + 13, 's', 300);
	snprintf(payload, sizeof(payload), "{\"moduleid\":\"%0256d\",\"success_rate\":1}", 0);
	point_bad_on(&r, name, payload, strlen(payload), "more than 511");
}

Test(points, timestamps_obey_the_integer_rule_and_a_bound_ahead_of_the_clock)
{
	/* A point stamped 99999999999999999 used to be rounded and accepted, and
	 * every real point of its series was "too old" from then on. */
	struct alert_rule r;
	alert_rule_default(&r);
	point_bad(&r, "{\"value\":1,\"timestamp\":99999999999999999}",
		  "field 'timestamp' must be a whole number from 0 to 9007199254740991");
	point_bad(&r, "{\"value\":1,\"timestamp\":9007199254740992}", "9007199254740991");
	point_bad(&r, "{\"value\":1,\"timestamp\":9007199254740991}",
		  "field 'timestamp' (9007199254740991) is more than 86400 s ahead of the alerter's clock");
	point_bad(&r, "{\"value\":1,\"timestamp\":1800000000000}", "ahead"); /* ms by mistake */
	point_bad(&r, "{\"value\":1,\"timestamp\":1800086401}", "ahead");
	struct alert_point p = point_ok(&r, "metrics/x", "{\"value\":1,\"timestamp\":1800086400}");
	cr_assert_eq(p.ts, 1800086400, "a day ahead is still on time");
	p = point_ok(&r, "metrics/x", "{\"value\":1,\"timestamp\":0}");
	cr_assert_eq(p.ts, 0, "the past has no bound");
}

Test(points, bare_numbers_obey_the_text_rules)
{
	struct alert_rule r;
	alert_rule_default(&r);
	point_bad(&r, "\x01" "5", "control character 0x01");
	point_bad(&r, "\"5\"", "must be a number or a JSON object");
	point_bad(&r, "5 5", "after the value");
}

Test(topics, filters_match_like_mosquitto)
{
	cr_assert(alert_topic_matches("metrics/#", "metrics/a/b"));
	cr_assert(alert_topic_matches("metrics/#", "metrics"));
	cr_assert(alert_topic_matches("metrics/+/volume", "metrics/btc/volume"));
	cr_assert(alert_topic_matches("#", "anything/at/all"));
	cr_assert(alert_topic_matches("success_rate", "success_rate"));
	cr_assert_not(alert_topic_matches("metrics/#", "metricsx/a"));
	cr_assert_not(alert_topic_matches("metrics/+", "metrics/a/b"));
	cr_assert_not(alert_topic_matches("metrics/+/volume", "metrics/btc"));
	cr_assert_not(alert_topic_matches("success_rate", "success_rate/x"));
	cr_assert_not(alert_topic_matches("a/b", "a"));
}

Test(rules, a_file_adds_rules_and_a_bad_line_is_named)
{
	struct alert_rule rules[ALERT_RULES_MAX];
	size_t n = 0;
	char err[400] = "";
	const char *ok = "# module success rates falling to a third of their hour\n"
			 "\n"
			 "{\"name\":\"rate-drop\",\"topic\":\"success_rate\",\"value\":\"success_rate\","
			 "\"key\":\"moduleid\",\"factor\":0.3333,\"direction\":\"below\",\"min_samples\":2}\n"
			 "{\"name\":\"cpu\",\"topic\":\"metrics/+/cpu\",\"window_s\":600,\"cooldown_s\":60}\n";
	cr_assert_eq(alert_rules_load(ok, strlen(ok), rules, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert(rules[0].direction == ALERT_BELOW && rules[0].min_samples == 2);
	cr_assert_str_eq(rules[0].key_field, "moduleid");
	cr_assert(rules[1].window_s == 600 && rules[1].cooldown_s == 60 && rules[1].factor == 3);
	const char *bad[][2] = {
		{"{\"name\":\"a\",\"topic\":\"x\"}\n{\"name\":\"b\"}", "line 2: 'name' and 'topic' are required"},
		{"\n\n{\"name\":\"a\",\"topic\":\"x\",\"factr\":2}", "line 3: unknown field 'factr'"},
		{"{\"name\":\"a\",\"topic\":\"x/#/y\"}", "line 1: 'topic' is not a valid MQTT topic filter"},
		{"{\"name\":\"a\",\"topic\":\"x\",\"window_s\":0}", "line 1: 'window_s' must be a whole number"},
		{"{\"name\":\"a\",\"topic\":\"x\",\"direction\":\"up\"}", "line 1: 'direction'"},
		{"{\"name\":\"a\",\"topic\":\"x\",\"factor\":-1}", "line 1: 'factor'"},
		{"{\"name\":\"a\",\"topic\":\"x\"}\n{\"name\":\"a\",\"topic\":\"y\"}", "line 2: a rule named 'a'"},
		{"{\"name\":\"a\",", "line 1: not a JSON object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 0;
		cr_assert_eq(alert_rules_load(bad[i][0], strlen(bad[i][0]), rules, &n, err, sizeof(err)),
			     MQP_ERR_INVAL, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "'%s': '%s' lacks '%s'", bad[i][0], err, bad[i][1]);
	}
}

Test(event, carries_every_field)
{
	struct alert_rule r;
	alert_rule_default(&r);
	struct win_sum w = {0, 0, 0};
	win_add(&w, 100);
	struct alert_point p = {false, 400, 1700000000, "gold/volume"};
	cJSON *e = alert_event(&r, &p, &w);
	char *text = cJSON_PrintUnformatted(e);
	cr_assert_str_eq(text, "{\"metric\":\"gold/volume\",\"value\":400,\"average\":100,\"ratio\":4,"
			       "\"factor\":3,\"window_s\":3600,\"samples\":1,\"timestamp\":1700000000,"
			       "\"rule\":\"spike\",\"direction\":\"above\"}");
	cJSON_free(text);
	cJSON_Delete(e);
}
