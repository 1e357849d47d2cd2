/* Dead letters kept in the store (agents/lib/deadletter.h): the byte bound,
 * the age limit and when it is looked for, and the published event. */
#include "runtime_fixture.h"

static void open_all(void) { fixture_open(&fixture_agent, 60); }
static void close_all(void) { fixture_close(); }

TestSuite(deadletter, .init = open_all, .fini = close_all);

/* deadletter__keep in a transaction. */
static void keep(const char *topic, int64_t received_ms)
{
	cr_assert_eq(mqp_store_begin(fx.store), 0);
	cr_assert_eq(deadletter__keep(&fx.dl, topic, "why", "payload", 7, received_ms), 0);
	cr_assert_eq(mqp_store_commit(fx.store), 0);
}

Test(deadletter, kept_dead_letters_are_in_the_store)
{
	keep("a", 1000);
	cr_assert_str_eq(fixture_text("SELECT topic || ' ' || reason || ' ' || payload FROM deadletter"),
			 "a why payload");
}

Test(deadletter, over_the_byte_bound_the_oldest_are_dropped)
{
	mqp_store_deadletter_bound(fx.store, 100); /* room for about three */
	for (int i = 0; i < 10; i++)
		keep(i < 9 ? "old" : "new", 1000 + i);
	cr_assert_lt(fixture_scalar("SELECT count(*) FROM deadletter"), 10);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM deadletter WHERE topic = 'new'"), 1,
		     "the newest is kept");
	cr_assert(fx.dl.bound_said, "the first drop is said once");
}

Test(deadletter, expiry_is_looked_for_at_start_then_not_before_it_is_due)
{
	int64_t now = mqp_now_ms();
	keep("old", now - 2 * 3600 * 1000LL); /* older than the hour of max age */
	keep("young", now);
	cr_assert(deadletter__due(&fx.dl, now), "due at start");
	cr_assert_eq(mqp_store_begin(fx.store), 0);
	cr_assert_eq(deadletter__expire(&fx.dl, now), 0);
	cr_assert_eq(mqp_store_commit(fx.store), 0);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM deadletter"), 1);
	cr_assert_str_eq(fixture_text("SELECT topic FROM deadletter"), "young");
	cr_assert_not(deadletter__due(&fx.dl, now + 1000), "a quarter of the age, at most a minute");
	cr_assert(deadletter__due(&fx.dl, now + 60 * 1000));
}

Test(deadletter, the_event_carries_text_as_text_and_binary_as_base64)
{
	cJSON *text = mqp_deadletter_event("a", "t", "r", "hi\n", 3, 5);
	cJSON *bin = mqp_deadletter_event("a", "t", "r", "\x01\xff", 2, 5);
	cr_assert_str_eq(cJSON_GetObjectItem(text, "payload")->valuestring, "hi\n");
	cr_assert_null(cJSON_GetObjectItem(bin, "payload"));
	cr_assert_str_eq(cJSON_GetObjectItem(bin, "payload_b64")->valuestring, "Af8=");
	char *printed = cJSON_PrintUnformatted(text);
	cr_assert(strstr(printed, "\"received_at\":5"), "%s", printed);
	free(printed);
	cJSON_Delete(text);
	cJSON_Delete(bin);
}
