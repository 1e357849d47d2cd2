/* Payload decoding and field validation (mqpipe/json.h), and dead-letter events. */
#include <criterion/criterion.h>
#include <string.h>

#include "mqpipe/error.h"
#include "mqpipe/json.h"
#include "mqpipe/runtime.h"
#include "mqpipe/utf8.h"

static cJSON *parse_ok(const char *text)
{
	cJSON *o = NULL;
	struct mqp_reason why = {""};
	cr_assert_eq(mqp_json_parse_object(text, strlen(text), &o, &why), 0, "%s: %s", text,
		     why.text);
	return o;
}

static void parse_bad(const char *text, size_t len, const char *reason_part)
{
	cJSON *o = (cJSON *)1;
	struct mqp_reason why = {""};
	cr_assert_eq(mqp_json_parse_object(text, len, &o, &why), MQP_ERR_INPUT);
	cr_assert_null(o);
	cr_assert(strstr(why.text, reason_part), "reason '%s' lacks '%s'", why.text, reason_part);
}

Test(json_parse, accepts_an_object_with_surrounding_white_space)
{
	cJSON_Delete(parse_ok("  {\"a\":1}\n"));
}

Test(json_parse, refuses_an_empty_payload) { parse_bad("", 0, "empty"); }
Test(json_parse, refuses_text_that_is_not_json) { parse_bad("hello", 5, "not JSON"); }
Test(json_parse, refuses_trailing_data) { parse_bad("{} {}", 5, "after the value"); }
Test(json_parse, refuses_an_array) { parse_bad("[1,2]", 5, "must be a JSON object"); }
Test(json_parse, refuses_a_bare_number) { parse_bad("42", 2, "must be a JSON object"); }
Test(json_parse, refuses_invalid_utf8) { parse_bad("{\"a\":\"\xff\"}", 8, "UTF-8"); }
Test(json_parse, refuses_a_payload_cut_short) { parse_bad("{\"a\":1", 6, "not JSON"); }
Test(json_parse, refuses_an_embedded_nul_before_the_end)
{
	parse_bad("{\"a\":1}\0xx", 10, "control character 0x00 at byte 7");
}

Test(json_parse, refuses_an_escaped_nul_that_would_cut_a_string)
{
	const char *t = "{\"moduleId\":\"a\\u0000b\"}";
	parse_bad(t, strlen(t), "\\u0000");
	cJSON_Delete(parse_ok("{\"a\":\"\\\\u0000 is text here\"}"));
	cJSON_Delete(parse_ok("{\"a\":\"\\u0001\"}"));
}

Test(json_parse, refuses_a_raw_nul_inside_a_string_naming_the_field)
{
	/* cJSON would read "victim\0x" as "victim": two modules would be one. */
	static const char t[] = "{\"moduleId\":\"victim\0x\",\"timestamp\":1}";
	parse_bad(t, sizeof(t) - 1,
		  "field 'moduleId' holds a raw control character (byte 0x00) at byte 19");
}

Test(json_parse, refuses_a_raw_control_character_inside_a_string)
{
	const char *t = "{\"a\":{\"b\":[1,\"x\ty\"]}}";
	parse_bad(t, strlen(t), "field 'a.b[1]' holds a raw control character (byte 0x09)");
	t = "{\"requests\":[{\"caseId\":1},{\"caseId\":\"c\x1f\"}]}";
	parse_bad(t, strlen(t), "field 'requests[1].caseId' holds a raw control character (byte 0x1f)");
}

Test(json_parse, refuses_a_control_character_in_a_member_name)
{
	static const char nul[] = "{\"ok\":1,\"k\0\":2}";
	parse_bad(nul, sizeof(nul) - 1, "a member name holds a raw control character (byte 0x00)");
	const char *t = "{\"o\":{\"a\":1,\"\x01\":2}}";
	parse_bad(t, strlen(t), "a member name in 'o' holds");
}

Test(json_parse, refuses_an_escaped_nul_naming_the_field)
{
	const char *t = "{\"rows\":[\"a\",\"b\\u0000\"]}";
	parse_bad(t, strlen(t), "field 'rows[1]' holds \\u0000 (NUL)");
	t = "{\"a\\u0000\":1}";
	parse_bad(t, strlen(t), "a member name holds \\u0000");
}

Test(json_parse, refuses_control_characters_between_tokens)
{
	/* cJSON skips every byte up to 0x20 as white space; RFC 8259 allows four. */
	parse_bad("{\x01\"a\":1}", 8, "not JSON: control character 0x01 at byte 1");
	static const char nul[] = "{\"a\":\0001}";
	parse_bad(nul, sizeof(nul) - 1, "control character 0x00 at byte 5");
	cJSON_Delete(parse_ok("{\t\"a\" :\r\n1 }"));
}

Test(json_parse, accepts_escaped_control_characters_and_tricky_backslashes)
{
	cJSON *o = parse_ok("{\"a\":\"\\t\\n\\u001f\",\"b\":\"\\\\\",\"c\":\"\\\"}\"}");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "a")->valuestring, "\t\n\x1f");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "c")->valuestring, "\"}");
	cJSON_Delete(o);
}

Test(json_parse, names_deep_fields_in_bounded_text)
{
	char t[8192] = "";
	for (int i = 0; i < 200; i++)
		strcat(t, "{\"a_rather_long_member_name\":");
	strcat(t, "\"\x02\"");
	for (int i = 0; i < 200; i++)
		strcat(t, "}");
	parse_bad(t, strlen(t), "field 'a_rather_long_member_name.a_rather_long_member_name."
				"a_rather_long_member_name.a_rather_long_member_name...' holds a raw "
				"control character (byte 0x02)");
}

Test(json_parse_value, parses_a_bare_number_under_the_same_rules)
{
	cJSON *v = NULL;
	struct mqp_reason why = {""};
	cr_assert_eq(mqp_json_parse(" 42\n", 4, &v, &why), 0);
	cr_assert(cJSON_IsNumber(v));
	cJSON_Delete(v);
	cr_assert_eq(mqp_json_parse("\x01" "42", 3, &v, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "control character 0x01"), "%s", why.text);
}

Test(json_string, reads_a_present_string)
{
	cJSON *o = parse_ok("{\"m\":\"abc\"}");
	const char *s;
	cr_assert_eq(mqp_json_string(o, "m", 256, &s, NULL), 0);
	cr_assert_str_eq(s, "abc");
	cJSON_Delete(o);
}

static void string_bad(const char *text, size_t max, const char *reason_part)
{
	cJSON *o = parse_ok(text);
	const char *s = NULL;
	struct mqp_reason why = {""};
	cr_assert_eq(mqp_json_string(o, "m", max, &s, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, reason_part), "reason '%s' lacks '%s'", why.text, reason_part);
	cJSON_Delete(o);
}

Test(json_string, refuses_a_missing_field) { string_bad("{}", 256, "missing field 'm'"); }
Test(json_string, refuses_a_number) { string_bad("{\"m\":1}", 256, "must be a string"); }
Test(json_string, refuses_null) { string_bad("{\"m\":null}", 256, "must be a string"); }
Test(json_string, refuses_an_empty_string) { string_bad("{\"m\":\"\"}", 256, "empty"); }
Test(json_string, refuses_one_byte_over_the_bound)
{
	string_bad("{\"m\":\"abcde\"}", 4, "longer than 4 bytes");
}

Test(json_string, accepts_exactly_the_bound)
{
	char text[300] = "{\"m\":\"";
	memset(text + 6, 'x', 256);
	strcpy(text + 262, "\"}");
	cJSON *o = parse_ok(text);
	const char *s;
	cr_assert_eq(mqp_json_string(o, "m", 256, &s, NULL), 0);
	cr_assert_eq(strlen(s), 256);
	cJSON_Delete(o);
}

Test(json_string, counts_bounds_in_bytes_not_characters)
{
	string_bad("{\"m\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}", 5, "longer than 5 bytes");
}

Test(json_alias, takes_either_spelling_or_both_when_equal)
{
	const char *s;
	cJSON *a = parse_ok("{\"moduleId\":\"x\"}"), *b = parse_ok("{\"moduleid\":\"y\"}"),
	      *c = parse_ok("{\"moduleid\":\"z\",\"moduleId\":\"z\"}");
	cr_assert_eq(mqp_json_string_alias(a, "moduleId", "moduleid", 256, &s, NULL), 0);
	cr_assert_str_eq(s, "x");
	cr_assert_eq(mqp_json_string_alias(b, "moduleId", "moduleid", 256, &s, NULL), 0);
	cr_assert_str_eq(s, "y");
	cr_assert_eq(mqp_json_string_alias(c, "moduleId", "moduleid", 256, &s, NULL), 0);
	cr_assert_str_eq(s, "z");
	cJSON_Delete(a);
	cJSON_Delete(b);
	cJSON_Delete(c);
}

Test(json_alias, refuses_two_different_values_and_other_cases)
{
	const char *s;
	struct mqp_reason why;
	cJSON *a = parse_ok("{\"moduleid\":\"z\",\"moduleId\":\"w\"}"), *b = parse_ok("{\"MODULEID\":\"q\"}");
	cr_assert_eq(mqp_json_string_alias(a, "moduleId", "moduleid", 256, &s, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "differ"));
	cr_assert_eq(mqp_json_string_alias(b, "moduleId", "moduleid", 256, &s, &why), MQP_ERR_INPUT);
	cr_assert(strstr(why.text, "missing field"));
	cJSON_Delete(a);
	cJSON_Delete(b);
}

static void uint_bad(const char *text, uint64_t max, const char *reason_part)
{
	cJSON *o = parse_ok(text);
	uint64_t v = 7;
	struct mqp_reason why = {""};
	cr_assert_eq(mqp_json_uint(o, "n", max, &v, &why), MQP_ERR_INPUT, "%s", text);
	cr_assert_eq(v, 7, "the output is untouched on refusal");
	cr_assert(strstr(why.text, reason_part), "reason '%s' lacks '%s'", why.text, reason_part);
	cJSON_Delete(o);
}

static uint64_t uint_ok(const char *text, uint64_t max)
{
	cJSON *o = parse_ok(text);
	uint64_t v = 0;
	cr_assert_eq(mqp_json_uint(o, "n", max, &v, NULL), 0, "%s", text);
	cJSON_Delete(o);
	return v;
}

Test(json_uint, accepts_zero_and_the_largest_exact_integer)
{
	cr_assert_eq(uint_ok("{\"n\":0}", MQP_UINT_MAX_EXACT), 0);
	cr_assert_eq(uint_ok("{\"n\":9007199254740991}", MQP_UINT_MAX_EXACT), 9007199254740991ULL);
}

Test(json_uint, accepts_whole_numbers_written_with_exponent_or_fraction)
{
	cr_assert_eq(uint_ok("{\"n\":1e3}", MQP_UINT_MAX_EXACT), 1000);
	cr_assert_eq(uint_ok("{\"n\":5.0}", MQP_UINT_MAX_EXACT), 5);
}

Test(json_uint, refuses_two_to_the_53_rather_than_rounding)
{
	uint_bad("{\"n\":9007199254740992}", MQP_UINT_MAX_EXACT, "whole number from 0 to 9007199254740991");
	uint_bad("{\"n\":9007199254740993}", MQP_UINT_MAX_EXACT, "whole number");
	uint_bad("{\"n\":1e300}", MQP_UINT_MAX_EXACT, "whole number");
}

Test(json_uint, refuses_negative_fractional_and_mistyped_values)
{
	uint_bad("{\"n\":-1}", MQP_UINT_MAX_EXACT, "whole number");
	uint_bad("{\"n\":1.5}", MQP_UINT_MAX_EXACT, "whole number");
	uint_bad("{\"n\":\"12\"}", MQP_UINT_MAX_EXACT, "must be a number");
	uint_bad("{\"n\":true}", MQP_UINT_MAX_EXACT, "must be a number");
	uint_bad("{}", MQP_UINT_MAX_EXACT, "missing field 'n'");
}

Test(json_uint, applies_a_smaller_bound)
{
	cr_assert_eq(uint_ok("{\"n\":4294967295}", UINT32_MAX), UINT32_MAX);
	uint_bad("{\"n\":4294967296}", UINT32_MAX, "from 0 to 4294967295");
}

Test(json_add_uint, prints_large_integers_exactly)
{
	cJSON *o = cJSON_CreateObject();
	mqp_json_add_uint(o, "a", 9007199254740991ULL);
	mqp_json_add_uint(o, "b", 1234567890123456ULL);
	char *s = cJSON_PrintUnformatted(o);
	cr_assert_str_eq(s, "{\"a\":9007199254740991,\"b\":1234567890123456}");
	free(s);
	cJSON_Delete(o);
}

Test(utf8, accepts_well_formed_text)
{
	const char *ok[] = {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
			    "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		cr_assert(mqp_utf8_valid(ok[i], strlen(ok[i])), "case %zu", i);
}

Test(utf8, refuses_overlongs_surrogates_and_truncations)
{
	const char *bad[] = {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
			     "\xf5\x80\x80\x80", "\xc3", "\xe2\x82", "\x80", "\xfe"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert(!mqp_utf8_valid(bad[i], strlen(bad[i])), "case %zu", i);
}

Test(deadletter_event, carries_text_payloads_as_text)
{
	cJSON *o = mqp_deadletter_event("counter", "recv_message", "why", "{\"a\":", 5, 1700);
	char *s = cJSON_PrintUnformatted(o);
	cr_assert_str_eq(s, "{\"agent\":\"counter\",\"topic\":\"recv_message\",\"reason\":\"why\","
			    "\"payload\":\"{\\\"a\\\":\",\"received_at\":1700}");
	free(s);
	cJSON_Delete(o);
}

Test(deadletter_event, carries_binary_payloads_as_base64)
{
	cJSON *o = mqp_deadletter_event("counter", "t", "r", "\xff\x00\x01", 3, 1);
	cr_assert_null(cJSON_GetObjectItem(o, "payload"));
	cr_assert_str_eq(cJSON_GetObjectItem(o, "payload_b64")->valuestring, "/wAB");
	cJSON_Delete(o);
	o = mqp_deadletter_event("counter", "t", "r", "a\0b", 3, 1);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "payload_b64")->valuestring, "YQBi");
	cJSON_Delete(o);
	o = mqp_deadletter_event("counter", "t", "r", "", 0, 1);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "payload")->valuestring, "");
	cJSON_Delete(o);
}

Test(deadletter_event, carries_control_bytes_as_base64_not_as_six_byte_escapes)
{
	cJSON *o = mqp_deadletter_event("counter", "t", "r", "\x01\x01\x01", 3, 1);
	cr_assert_null(cJSON_GetObjectItem(o, "payload"));
	cr_assert_str_eq(cJSON_GetObjectItem(o, "payload_b64")->valuestring, "AQEB");
	cJSON_Delete(o);
	o = mqp_deadletter_event("counter", "t", "r", "a\tb\r\nc", 6, 1);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "payload")->valuestring, "a\tb\r\nc",
			 "tab, CR and LF are text");
	cJSON_Delete(o);
}
