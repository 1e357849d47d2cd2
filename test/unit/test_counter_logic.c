/* The module success-rate rules (README "The success rate"), without a broker. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "mqpipe/error.h"
#include "counter_logic.h"

struct d { uint64_t ts, attempts, folded; };

/* Window start for a new diagnostic given earlier ones in ascending order;
 * returns -1 when there is no reset (every earlier message counts). */
static int64_t window_after(const struct d *earlier, size_t n, uint64_t attempts)
{
	struct sr_window w;
	sr_window_init(&w, attempts);
	for (size_t i = n; i-- > 0;)
		if (sr_window_step(&w, earlier[i].ts, earlier[i].attempts, earlier[i].folded))
			break;
	return w.found ? (int64_t)w.after_timestamp : -1;
}

Test(window, without_earlier_diagnostics_counts_everything)
{
	cr_assert_eq(window_after(NULL, 0, 10), -1);
}

Test(window, rising_attempts_mean_no_reset)
{
	struct d e[] = {{100, 5, 0}, {200, 9, 0}, {300, 9, 0}};
	cr_assert_eq(window_after(e, 3, 12), -1);
}

Test(window, a_drop_before_the_new_diagnostic_opens_after_the_previous_one)
{
	struct d e[] = {{100, 5, 0}, {200, 50, 0}};
	cr_assert_eq(window_after(e, 2, 3), 200);
}

Test(window, a_drop_between_earlier_neighbours_opens_after_the_one_before_it)
{
	struct d e[] = {{100, 40, 0}, {200, 60, 0}, {300, 4, 0}, {400, 9, 0}};
	cr_assert_eq(window_after(e, 4, 15), 200);
}

Test(window, the_most_recent_of_several_resets_wins)
{
	struct d e[] = {{100, 40, 0}, {200, 2, 0}, {300, 30, 0}, {400, 1, 0}, {500, 6, 0}};
	cr_assert_eq(window_after(e, 5, 8), 300);
}

Test(window, equal_attempts_are_not_a_reset)
{
	struct d e[] = {{100, 7, 0}, {200, 7, 0}};
	cr_assert_eq(window_after(e, 2, 7), -1);
}

Test(window, a_drop_to_zero_is_a_reset)
{
	struct d e[] = {{100, 7, 0}};
	cr_assert_eq(window_after(e, 1, 0), 100);
}

/* The folded messages a window holds, given earlier diagnostics ascending. */
static uint64_t window_folded(const struct d *earlier, size_t n, uint64_t attempts)
{
	struct sr_window w;
	sr_window_init(&w, attempts);
	for (size_t i = n; i-- > 0;)
		if (sr_window_step(&w, earlier[i].ts, earlier[i].attempts, earlier[i].folded))
			break;
	return w.folded;
}

Test(window, without_a_reset_holds_every_folded_count)
{
	struct d e[] = {{100, 5, 4}, {200, 9, 3}, {300, 12, 2}};
	cr_assert_eq(window_folded(e, 3, 20), 9);
}

Test(window, stops_adding_folded_counts_at_the_diagnostic_before_the_reset)
{
	/* The reset is between 200 and 300: the window opens after 200, so it
	 * holds 300's and 400's intervals, not 200's or 100's. */
	struct d e[] = {{100, 40, 7}, {200, 60, 11}, {300, 4, 3}, {400, 9, 5}};
	cr_assert_eq(window_after(e, 4, 15), 200);
	cr_assert_eq(window_folded(e, 4, 15), 8);
}

Test(window, right_after_a_reset_holds_no_folded_count)
{
	struct d e[] = {{100, 5, 4}, {200, 50, 30}};
	cr_assert_eq(window_folded(e, 2, 3), 0);
}

Test(place, an_event_after_every_diagnostic_is_open)
{
	struct sr_cover none = {.found = false};
	cr_assert_eq(sr_place_diag(500, &none), SR_PLACE_OPEN);
	cr_assert_eq(sr_place_recv(&none), SR_PLACE_OPEN);
}

Test(place, a_diagnostic_at_a_stored_timestamp_is_a_repeat_even_when_sealed)
{
	struct sr_cover sealed = {.found = true, .timestamp = 500, .sealed = true};
	cr_assert_eq(sr_place_diag(500, &sealed), SR_PLACE_REPEAT);
}

Test(place, an_event_inside_a_sealed_window_cannot_be_placed)
{
	struct sr_cover sealed = {.found = true, .timestamp = 500, .sealed = true};
	cr_assert_eq(sr_place_diag(499, &sealed), SR_PLACE_SEALED);
	cr_assert_eq(sr_place_recv(&sealed), SR_PLACE_SEALED);
}

Test(place, an_event_inside_an_open_window_is_applied)
{
	struct sr_cover open = {.found = true, .timestamp = 500, .sealed = false};
	cr_assert_eq(sr_place_diag(499, &open), SR_PLACE_OPEN);
	cr_assert_eq(sr_place_recv(&open), SR_PLACE_OPEN);
}

Test(rate, is_the_received_share_of_attempts)
{
	double r;
	cr_assert(sr_rate(5, 8, &r));
	cr_assert_float_eq(r, 62.5, 1e-12);
	cr_assert(sr_rate(0, 3, &r));
	cr_assert_float_eq(r, 0.0, 1e-12);
}

Test(rate, is_capped_at_100)
{
	double r;
	cr_assert(sr_rate(9, 4, &r));
	cr_assert_float_eq(r, 100.0, 1e-12);
}

Test(rate, is_null_without_attempts)
{
	double r = -1;
	cr_assert_not(sr_rate(3, 0, &r));
	cr_assert_float_eq(r, -1.0, 1e-12, "untouched");
}

Test(event, has_every_field_with_exact_integers)
{
	struct sr_diag d = {"mod-1", 9007199254740991ULL, 8};
	cJSON *o = sr_event(&d, 5);
	char *s = cJSON_PrintUnformatted(o);
	cr_assert_str_eq(s, "{\"moduleid\":\"mod-1\",\"timestamp\":9007199254740991,"
			    "\"success_rate\":62.5,\"received\":5,\"attempts\":8}");
	free(s);
	cJSON_Delete(o);
}

Test(event, has_a_null_rate_when_attempts_are_zero)
{
	struct sr_diag d = {"m", 1, 0};
	cJSON *o = sr_event(&d, 2);
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "success_rate")));
	cJSON_Delete(o);
}

Test(parse, reads_recv_message_in_both_spellings)
{
	struct sr_recv r;
	const char *a = "{\"moduleId\":\"m1\",\"timestamp\":17}", *b = "{\"moduleid\":\"m2\",\"timestamp\":18}";
	cr_assert_eq(sr_parse_recv(a, strlen(a), &r, NULL), 0);
	cr_assert_str_eq(r.module, "m1");
	cr_assert_eq(r.timestamp, 17);
	cr_assert_eq(sr_parse_recv(b, strlen(b), &r, NULL), 0);
	cr_assert_str_eq(r.module, "m2");
}

Test(parse, reads_a_diagnostic_in_both_spellings_ignoring_extra_fields)
{
	struct sr_diag d;
	const char *a = "{\"moduleId\":\"m\",\"timestamp\":1,\"attempts\":4294967295,\"x\":[1]}";
	cr_assert_eq(sr_parse_diag(a, strlen(a), &d, NULL), 0);
	cr_assert_eq(d.attempts, UINT32_MAX);
}

static void diag_bad(const char *text, const char *reason_part)
{
	struct sr_diag d;
	struct mqp_reason why = {""};
	cr_assert_eq(sr_parse_diag(text, strlen(text), &d, &why), MQP_ERR_INPUT, "%s", text);
	cr_assert(strstr(why.text, reason_part), "'%s': reason '%s' lacks '%s'", text, why.text,
		  reason_part);
}

Test(parse, refuses_every_class_of_bad_diagnostic)
{
	diag_bad("nope", "not JSON");
	diag_bad("[]", "JSON object");
	diag_bad("{\"timestamp\":1,\"attempts\":1}", "missing field 'moduleId'");
	diag_bad("{\"moduleid\":7,\"timestamp\":1,\"attempts\":1}", "must be a string");
	diag_bad("{\"moduleid\":\"\",\"timestamp\":1,\"attempts\":1}", "empty");
	diag_bad("{\"moduleid\":\"m\",\"attempts\":1}", "missing field 'timestamp'");
	diag_bad("{\"moduleid\":\"m\",\"timestamp\":-5,\"attempts\":1}", "whole number");
	diag_bad("{\"moduleid\":\"m\",\"timestamp\":1.25,\"attempts\":1}", "whole number");
	diag_bad("{\"moduleid\":\"m\",\"timestamp\":1}", "missing field 'attempts'");
	diag_bad("{\"moduleid\":\"m\",\"timestamp\":1,\"attempts\":4294967296}", "4294967295");
	diag_bad("{\"moduleid\":\"m\",\"timestamp\":1,\"attempts\":\"3\"}", "must be a number");
	diag_bad("{\"moduleid\":\"a\",\"moduleId\":\"b\",\"timestamp\":1,\"attempts\":1}", "differ");
	diag_bad("{\"moduleid\":\"\xc3(\",\"timestamp\":1,\"attempts\":1}", "UTF-8");
}

Test(parse, refuses_a_module_id_over_256_bytes)
{
	char text[400];
	int n = snprintf(text, sizeof(text), "{\"moduleId\":\"");
	memset(text + n, 'm', 257);
	strcpy(text + n + 257, "\",\"timestamp\":1}");
	struct sr_recv r;
	struct mqp_reason why;
	cr_assert_eq(sr_parse_recv(text, strlen(text), &r, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "longer than 256 bytes"));
}
