/* The two log formats: key=value text and a JSON object built from the same
 * format arguments (`--log-format`, README "Running it"). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqpipe/log.h"

/* Points stderr at a new temporary file; *saved keeps the real one. */
static FILE *capture_start(int *saved)
{
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	fflush(stderr);
	*saved = dup(STDERR_FILENO);
	dup2(fileno(f), STDERR_FILENO);
	return f;
}

/* Puts stderr back and returns what was written to f after the timestamp
 * (which changes every call): from "level=" in key=value, from ",\"level\""
 * in JSON. The caller frees it. */
static char *capture_end(FILE *f, int saved, enum mqp_log_format format)
{
	dup2(saved, STDERR_FILENO);
	close(saved);
	static char buf[4096];
	rewind(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	const char *from = strstr(buf, format == MQP_LOG_JSON ? ",\"level\"" : "level=");
	cr_assert_not_null(from, "no level in %s", buf);
	return strdup(from);
}

/* Logs one info line in format and asserts what follows its timestamp. */
#define CHECK(format, expected, ...)                                                              \
	do {                                                                                      \
		mqp_log_init(MQP_LOG_DEBUG, format, "t");                                          \
		int saved_;                                                                       \
		FILE *f_ = capture_start(&saved_);                                                \
		mqp_info("ev", __VA_ARGS__);                                                      \
		char *got_ = capture_end(f_, saved_, format);                                     \
		cr_assert_str_eq(got_, expected);                                                 \
		free(got_);                                                                       \
	} while (0)

#define KV MQP_LOG_KV
#define JSON MQP_LOG_JSON

Test(log, plain_pairs_are_fields)
{
	CHECK(KV, "level=info agent=t event=ev a=1 b=x\n", "a=%d b=%s", 1, "x");
	CHECK(JSON, ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"a\":\"1\",\"b\":\"x\"}\n",
	      "a=%d b=%s", 1, "x");
}

Test(log, no_pairs_is_the_event_alone)
{
	CHECK(KV, "level=info agent=t event=ev\n", "%s", "");
	CHECK(JSON, ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\"}\n", "%s", "");
}

Test(log, numbers_print_as_their_conversion_says)
{
	CHECK(KV, "level=info agent=t event=ev n=-3 u=18446744073709551615 z=7 g=0.25 f=1.5 x=ff\n",
	      "n=%lld u=%llu z=%zu g=%g f=%.1f x=%x", -3LL, 18446744073709551615ULL, (size_t)7,
	      0.25, 1.5, 255u);
	CHECK(JSON,
	      ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"n\":\"-3\","
	      "\"u\":\"18446744073709551615\",\"z\":\"7\",\"g\":\"0.25\",\"f\":\"1.5\",\"x\":\"ff\"}\n",
	      "n=%lld u=%llu z=%zu g=%g f=%.1f x=%x", -3LL, 18446744073709551615ULL, (size_t)7,
	      0.25, 1.5, 255u);
}

Test(log, a_value_quoted_in_the_format_is_one_field)
{
	CHECK(KV, "level=info agent=t event=ev msg=\"out of memory\" exit=70\n",
	      "msg=\"%s\" exit=%d", "out of memory", 70);
	CHECK(JSON,
	      ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"msg\":\"out of memory\","
	      "\"exit\":\"70\"}\n",
	      "msg=\"%s\" exit=%d", "out of memory", 70);
}

Test(log, literal_values_and_text_around_a_conversion_are_kept)
{
	CHECK(KV, "level=info agent=t event=ev action=exit id=a7 effect=\"x y\"\n",
	      "action=exit id=a%d effect=\"x y\"", 7);
	CHECK(JSON,
	      ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"action\":\"exit\",\"id\":\"a7\","
	      "\"effect\":\"x y\"}\n",
	      "action=exit id=a%d effect=\"x y\"", 7);
}

Test(log, a_value_quoted_by_mqp_log_quote_loses_its_quotes_in_json)
{
	char q[64];
	CHECK(KV, "level=info agent=t event=ev module=\"a b\" ts=1\n", "module=%s ts=%d",
	      mqp_log_quote(q, sizeof(q), "a b"), 1);
	CHECK(JSON,
	      ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"module\":\"a b\",\"ts\":\"1\"}\n",
	      "module=%s ts=%d", mqp_log_quote(q, sizeof(q), "a b"), 1);
	/* A JSON case id ("\"c\"") reads as the string inside it. */
	CHECK(JSON, ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"case_id\":\"c\"}\n",
	      "case_id=%s", "\"c\"");
}

Test(log, json_escapes_quotes_backslashes_and_control_bytes)
{
	char q[64];
	/* mqp_log_quote's own escapes stay as they are, escaped again for JSON. */
	CHECK(KV, "level=info agent=t event=ev v=\"a\\\"b\\x01\"\n", "v=%s",
	      mqp_log_quote(q, sizeof(q), "a\"b\x01"));
	CHECK(JSON,
	      ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"v\":\"a\\\\\\\"b\\\\x01\"}\n",
	      "v=%s", mqp_log_quote(q, sizeof(q), "a\"b\x01"));
	CHECK(JSON, ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"msg\":\"a\\u0009b\"}\n",
	      "msg=\"%s\"", "a\tb");
}

Test(log, text_that_is_not_a_pair_goes_under_msg)
{
	CHECK(KV, "level=info agent=t event=ev a=1 free text\n", "a=%d free %s", 1, "text");
	CHECK(JSON,
	      ",\"level\":\"info\",\"agent\":\"t\",\"event\":\"ev\",\"a\":\"1\",\"msg\":\"free text\"}\n",
	      "a=%d free %s", 1, "text");
}

Test(log, levels_above_the_threshold_print_nothing)
{
	mqp_log_init(MQP_LOG_WARN, MQP_LOG_KV, "t");
	int saved;
	FILE *f = capture_start(&saved);
	mqp_info("ev", "a=%d", 1);
	mqp_warn("ev", "a=%d", 2);
	char *got = capture_end(f, saved, MQP_LOG_KV);
	cr_assert_str_eq(got, "level=warn agent=t event=ev a=2\n");
	free(got);
}
