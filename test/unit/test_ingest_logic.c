/* The ingest agent's rules (README "Ingestion"): the query-string
 * decoder, the three field rules with every failing field named, the replies,
 * and user.list's paging arguments. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "mqpipe/error.h"
#include "ingest_logic.h"

static struct ingest_rules rules;

static void setup(void)
{
	cr_assert_eq(ingest_rules_init(&rules), 0);
}

static void teardown(void)
{
	ingest_rules_free(&rules);
}

TestSuite(query, .init = setup, .fini = teardown);
TestSuite(fields, .init = setup, .fini = teardown);

/* Decodes text and returns member name's value, or fails. */
static char *decoded(const char *text, const char *name)
{
	cJSON *o;
	struct ingest_errors errs = {0};
	cr_assert_eq(ingest_query_decode(text, strlen(text), &o, &errs), 0, "%s: %s", text,
		     errs.n ? errs.e[0].message : "");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	char *out = v ? strdup(v->valuestring) : NULL;
	cJSON_Delete(o);
	return out;
}

/* Decoding text fails with an error on field containing message_part. */
static void refused(const char *text, const char *field, const char *message_part)
{
	cJSON *o;
	struct ingest_errors errs = {0};
	cr_assert_eq(ingest_query_decode(text, strlen(text), &o, &errs), MQP_ERR_INPUT, "%s", text);
	cr_assert_null(o);
	for (int i = 0; i < errs.n; i++)
		if (strcmp(errs.e[i].field, field) == 0 && strstr(errs.e[i].message, message_part))
			return;
	cr_assert_fail("'%s': no error on '%s' with '%s' (first: %s: %s)", text, field, message_part,
		       errs.n ? errs.e[0].field : "-", errs.n ? errs.e[0].message : "-");
}

Test(query, decodes_percent_escapes_and_plus)
{
	char *v = decoded("user_name=Ada+Lovelace%21&x=%C3%A9t%c3%a9", "user_name");
	cr_assert_str_eq(v, "Ada Lovelace!");
	free(v);
	v = decoded("user_name=Ada+Lovelace%21&x=%C3%A9t%c3%a9", "x");
	cr_assert_str_eq(v, "été", "escapes of either case; UTF-8 kept");
	free(v);
	v = decoded("a%2Bb=1%2B1", "a+b");
	cr_assert_str_eq(v, "1+1", "keys are decoded too; an escaped + stays a +");
	free(v);
}

Test(query, empty_values_and_empty_pairs)
{
	char *v = decoded("user_name=&email", "user_name");
	cr_assert_str_eq(v, "");
	free(v);
	v = decoded("user_name=&email", "email");
	cr_assert_str_eq(v, "", "a key without '=' has an empty value");
	free(v);
	v = decoded("&&a=1&&", "a");
	cr_assert_str_eq(v, "1");
	free(v);
	cr_assert_null(decoded("", "a"));
}

Test(query, refuses_malformed_escapes_nul_and_bad_utf8)
{
	refused("user_name=100%", "user_name", "malformed percent-escape");
	refused("user_name=%4", "user_name", "malformed percent-escape");
	refused("user_name=%zz", "user_name", "malformed percent-escape");
	refused("user_name=a%00b", "user_name", "NUL");
	refused("user_name=%C3", "user_name", "not valid UTF-8");
	refused("us%xxer=1", "query", "malformed percent-escape");
}

Test(query, refuses_repeated_keys)
{
	refused("pincode=1234&pincode=5678", "pincode", "more than once");
	refused("a=1&a", "a", "more than once");
}

Test(query, refuses_over_long_input)
{
	char big[INGEST_INPUT_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	refused(big, "body", "longer than 4096 bytes");
}

/* Parses payload and checks that it is valid. */
static struct ingest_user valid(const char *payload)
{
	struct ingest_user u;
	struct ingest_errors errs;
	char rid[MQP_STR_MAX + 1];
	int rc = ingest_parse(&rules, payload, strlen(payload), &u, rid, &errs);
	cr_assert_eq(rc, 0, "%s: %s %s", payload, errs.n ? errs.e[0].field : "",
		     errs.n ? errs.e[0].message : "");
	return u;
}

/* Parses payload; the errors' fields, joined by ',', must be `fields`. */
static void invalid(const char *payload, const char *fields)
{
	struct ingest_user u;
	struct ingest_errors errs;
	char rid[MQP_STR_MAX + 1], got[256] = "";
	cr_assert_eq(ingest_parse(&rules, payload, strlen(payload), &u, rid, &errs), MQP_ERR_INPUT,
		     "%s", payload);
	for (int i = 0; i < errs.n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "," : "",
			 errs.e[i].field);
	cr_assert_str_eq(got, fields, "%s", payload);
}

Test(fields, the_seeds_example_in_both_forms)
{
	struct ingest_user u = valid("user_name=Rishabh&email=rishabh@gmail.com&pincode=3055");
	cr_assert_str_eq(u.user_name, "Rishabh");
	cr_assert_str_eq(u.email, "rishabh@gmail.com");
	cr_assert_str_eq(u.pincode, "3055");
	u = valid("{\"user_name\":\"Rishabh\",\"email\":\"rishabh@gmail.com\",\"pincode\":3055}");
	cr_assert_str_eq(u.pincode, "3055", "a JSON number is read as its digits");
	u = valid("  {\"user_name\":\"Zoë\",\"email\":\"z9@x1.com\",\"pincode\":\"012345\"}");
	cr_assert_str_eq(u.pincode, "012345");
}

Test(fields, every_failing_field_is_named)
{
	invalid("", "user_name,email,pincode");
	invalid("user_name=&email=a@b.org&pincode=12", "user_name,email,pincode");
	invalid("{\"user_name\":7,\"email\":\"x@y.com\",\"pincode\":\"1234\"}", "user_name");
	invalid("{\"user_name\":\"a\",\"email\":\"1x@y.com\",\"pincode\":1234.5}", "email,pincode");
	invalid("{\"user_name\":\"a\",\"email\":\"x@y.com\",\"pincode\":-1234}", "pincode");
	invalid("{\"user_name\":\"a\",\"email\":\"x@y.com\",\"pincode\":true}", "pincode");
	invalid("{\"user_name\":\"a\",\"email\":\"x@y.com\",\"pincode\":\"12a4\"}", "pincode");
	invalid("{\"user_name\":\"a\",\"email\":\"x@y.com\",\"pincode\":\"1234567\"}", "pincode");
	invalid("{\"user_name\":\"a\",\"email\":\"x@y.com\",\"pincode\":\"1234\",\"request_id\":\"\"}",
		"request_id");
}

Test(fields, email_follows_the_seeds_pattern)
{
	valid("user_name=a&email=A1b2@Gmail99.com&pincode=1234");
	const char *bad[] = {"a@b.comx", "a@b.co", "a.b@c.com", "a@b.c.com", "_a@b.com", "a@.com",
			     "@b.com", "a@b_c.com", "a b@c.com", "a@b.com\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char json[128];
		cJSON *s = cJSON_CreateString(bad[i]);
		char *q = cJSON_PrintUnformatted(s);
		snprintf(json, sizeof(json), "{\"user_name\":\"a\",\"email\":%s,\"pincode\":\"1234\"}", q);
		cJSON_free(q);
		cJSON_Delete(s);
		invalid(json, "email");
	}
}

Test(fields, user_name_is_bounded_utf8_without_controls)
{
	char name[200], payload[300];
	memset(name, 'n', 128);
	name[128] = '\0';
	snprintf(payload, sizeof(payload), "user_name=%s&email=a@b.com&pincode=1234", name);
	valid(payload);
	strcat(name, "n");
	snprintf(payload, sizeof(payload), "user_name=%s&email=a@b.com&pincode=1234", name);
	invalid(payload, "user_name");
	invalid("user_name=a%09b&email=a@b.com&pincode=1234", "user_name");
	invalid("user_name=a%7Fb&email=a@b.com&pincode=1234", "user_name");
	invalid("user_name=a%C2%85b&email=a@b.com&pincode=1234", "user_name");
	invalid("{\"user_name\":\"a\\u0000b\",\"email\":\"a@b.com\",\"pincode\":\"1234\"}", "body");
}

Test(fields, bad_json_is_a_400_on_the_body)
{
	invalid("{\"user_name\":", "body");
	invalid("{\"user_name\":\"\xff\"}", "body");
}

Test(replies, render_status_and_fields)
{
	struct ingest_user u = {"Ada", "ada@x.com", "1234"};
	char *ok = ingest_reply_ok(7, &u, 1700000000000);
	cr_assert_str_eq(ok, "{\"status\":200,\"id\":7,\"user\":{\"user_name\":\"Ada\",\"email\":"
			     "\"ada@x.com\",\"pincode\":\"1234\",\"created_at\":1700000000000}}");
	free(ok);
	struct ingest_errors errs = {0};
	ingest_error(&errs, "pincode", "must be %d to %d digits", 4, 6);
	char *bad = ingest_reply_errors(&errs);
	cr_assert_str_eq(bad, "{\"status\":400,\"errors\":[{\"field\":\"pincode\",\"message\":"
			      "\"must be 4 to 6 digits\"}]}");
	free(bad);
}

Test(list, limit_and_cursor)
{
	int64_t limit, after;
	struct ingest_errors errs;
	cr_assert_eq(ingest_parse_list("", 0, &limit, &after, &errs), 0);
	cr_assert(limit == 100 && after == 0);
	char cursor[24];
	ingest_cursor(4660, cursor);
	char req[64];
	snprintf(req, sizeof(req), "{\"limit\":1000,\"after\":\"%s\"}", cursor);
	cr_assert_eq(ingest_parse_list(req, strlen(req), &limit, &after, &errs), 0);
	cr_assert(limit == 1000 && after == 4660);
	const char *bad[][2] = {
		{"{\"limit\":0}", "limit"},      {"{\"limit\":1001}", "limit"},
		{"{\"limit\":\"5\"}", "limit"},  {"{\"after\":\"x12\"}", "after"},
		{"{\"after\":\"c\"}", "after"},   {"{\"after\":\"cZZ\"}", "after"},
		{"{\"after\":12}", "after"},      {"[1]", "body"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(ingest_parse_list(bad[i][0], strlen(bad[i][0]), &limit, &after, &errs),
			     MQP_ERR_INPUT, "%s", bad[i][0]);
		cr_assert_str_eq(errs.e[0].field, bad[i][1], "%s", bad[i][0]);
	}
}

Test(validate, a_refusal_is_one_400_error_of_any_length)
{
	char msg[600];
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	char *text = ingest_reply_error("response_topic", msg);
	cr_assert_not_null(text);
	char want[700];
	snprintf(want, sizeof(want), "{\"status\":400,\"errors\":[{\"field\":\"response_topic\",\"message\":\"%s\"}]}",
		 msg);
	cr_assert_str_eq(text, want, "the whole message, not cut at an ingest_errors slot");
	free(text);
}
