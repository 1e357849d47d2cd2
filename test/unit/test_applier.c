/* The applier (agents/lib/applier.h), driven with a fake session: what a
 * step commits, what it publishes, and how it refuses. */
#include "runtime_fixture.h"
#include "mqpipe/shard.h"

static void open_plain(void) { fixture_open(&fixture_agent, 60); }
static void open_responder(void) { fixture_open(&fixture_responder, 60); }
static void close_all(void) { fixture_close(); }

TestSuite(applier, .init = open_plain, .fini = close_all);
TestSuite(applier_requests, .init = open_responder, .fini = close_all);

Test(applier, applies_a_batch_in_one_step_and_publishes_only_after_the_commit)
{
	fixture_append("p/in", "ok1");
	fixture_append("p/in", "ok2");
	fixture_append("p/in", "ok3");
	cr_assert_eq(applier__step(fx.applier), 3);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 3);
	cr_assert_eq(fixture_published("p/out"), 3, "each output once, with the --prefix");
	cr_assert_str_eq(fixture_last("p/out")->payload, "ok3");
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM outbox WHERE acked_ms IS NULL"), 3,
		     "unacknowledged outputs stay in the outbox");
	cr_assert_eq(fixture_scalar("SELECT value FROM runtime_meta WHERE key = 'inbox_seq'"), 3);
	cr_assert_eq(applier__step(fx.applier), 0, "nothing is applied twice");
}

Test(applier, a_refused_message_keeps_no_effect_and_becomes_a_dead_letter)
{
	fixture_append("p/in", "ok1");
	fixture_append("p/in", "bad");
	fixture_append("p/in", "ok2");
	cr_assert_eq(applier__step(fx.applier), 3);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t WHERE v = 'bad'"), 0);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 2, "its neighbours stay");
	cr_assert_str_eq(fixture_text("SELECT reason FROM deadletter"), "bad input");
	cr_assert_str_eq(fixture_text("SELECT topic FROM deadletter"), "in");
	cr_assert_eq(fixture_published("p/deadletter/in"), 1);
	cr_assert(strstr(fixture_last("p/deadletter/in")->payload, "\"reason\":\"bad input\""));
}

Test(applier, outputs_of_a_refused_message_are_never_sent)
{
	fixture_append("p/in", "boom");
	cr_assert_eq(applier__step(fx.applier), 1);
	cr_assert_eq(fixture_published("p/out"), 0);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM outbox WHERE topic = 'p/out'"), 0);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 0);
	cr_assert_eq(fixture_published("p/deadletter/in"), 1);
}

Test(applier, an_internal_error_is_dead_lettered_as_such)
{
	fixture_append("p/in", "oops");
	cr_assert_eq(applier__step(fx.applier), 1);
	cr_assert(strncmp(fixture_text("SELECT reason FROM deadletter"), "internal error: ", 16) == 0);
}

Test(applier, a_store_failure_commits_nothing_and_sends_nothing)
{
	fixture_append("p/in", "ok1");
	fixture_append("p/in", "db");
	cr_assert_eq(applier__step(fx.applier), MQP_ERR_DB);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 0);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM outbox"), 0);
	cr_assert_eq(fx.fake.n, 0, "not even the first record's output");
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM runtime_meta WHERE key = 'inbox_seq'"), 0,
		     "the inbox position did not move: both are applied at the next start");
}

Test(applier, a_payload_over_the_limit_is_dead_lettered_with_its_start)
{
	struct mqp_inbox_meta meta = {.cut_from = 5000};
	cr_assert_eq(mqp_inbox_append(fx.inbox, "p/in", 4, "okay", 4, 1, mqp_now_us(), &meta), 0);
	cr_assert_eq(applier__step(fx.applier), 1);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 0, "the handler never saw it");
	cr_assert(strstr(fixture_text("SELECT reason FROM deadletter"),
			 "payload of 5000 bytes is over the limit of 1024 (--max-payload)"));
	cr_assert_eq(fixture_published("p/deadletter/in"), 1);
}

/* A ticking agent: each tick emits "tick" and asks to run again in an hour. */
static int ticks;
static int tick_emit(void *state, struct mqp_ctx *ctx, int64_t now_ms, int64_t *next_ms)
{
	(void)state;
	ticks++;
	*next_ms = now_ms + 3600 * 1000;
	return mqp_emit_raw(ctx, "tick", "t", 1);
}
static const struct mqp_agent ticker = {
	.name = "test", .subscriptions = fixture_subscriptions,
	.migrations = fixture_migrations, .n_migrations = 1, .handle = fixture_handle,
	.tick = tick_emit};
static void open_ticker(void) { ticks = 0; fixture_open(&ticker, 60); }
TestSuite(applier_tick, .init = open_ticker, .fini = close_all);

Test(applier_tick, the_tick_runs_at_start_and_then_only_when_due)
{
	applier__turn(fx.applier, 1);
	cr_assert_eq(ticks, 1, "a first tick at start");
	cr_assert_eq(fixture_published("p/tick"), 1, "its output goes out after the commit");
	cr_assert_eq(applier__turn(fx.applier, 1), 0, "stopping, with nothing to apply");
	cr_assert_eq(ticks, 1, "not due for an hour");
	fixture_append("p/in", "ok1");
	cr_assert_eq(applier__turn(fx.applier, 1), 1, "a record applied: there may be more");
	cr_assert_eq(ticks, 2, "and after every batch");
}

/* Appends a request with response topic to and correlation data "c1". */
static void append_request(const char *payload, const char *to)
{
	struct mqp_inbox_meta meta = {to, strlen(to), "c1", 2, 0};
	cr_assert_eq(mqp_inbox_append(fx.inbox, "p/in", 4, payload, strlen(payload), 1,
				      mqp_now_us(), &meta), 0);
}

Test(applier_requests, a_reply_goes_to_the_response_topic_with_its_correlation_data)
{
	append_request("reply", "p/replies/me");
	cr_assert_eq(applier__step(fx.applier), 1);
	const struct fake_event *e = fixture_last("p/replies/me");
	cr_assert_not_null(e);
	cr_assert_str_eq(e->payload, "{\"status\":200}");
	cr_assert(e->has_correlation);
	cr_assert_str_eq(e->correlation, "c1");
}

Test(applier_requests, a_reply_off_the_reply_prefix_is_rolled_back_and_refused_on_the_fallback)
{
	append_request("reply", "success_rate");
	cr_assert_eq(applier__step(fx.applier), 1);
	cr_assert_eq(fixture_published("success_rate"), 0, "nothing goes where it pointed");
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 0, "its effects are rolled back");
	const struct fake_event *e = fixture_last("p/answers");
	cr_assert_not_null(e, "the refusal goes to the fallback topic, with the --prefix");
	cr_assert(strstr(e->payload, "\"field\":\"response_topic\""));
	cr_assert(strstr(e->payload, "'success_rate' is not under 'p/replies/'"));
}

Test(applier, an_agent_without_a_reply_prefix_answers_any_response_topic)
{
	append_request("reply", "anywhere");
	cr_assert_eq(applier__step(fx.applier), 1);
	cr_assert_eq(fixture_published("anywhere"), 1);
}

/* A responder with a reply prefix and no refusal hook. */
static const struct mqp_agent prefix_only = {
	.name = "test", .subscriptions = fixture_subscriptions,
	.migrations = fixture_migrations, .n_migrations = 1, .handle = fixture_handle,
	.reply_prefix = "replies/"};
static void open_prefix_only(void) { fixture_open(&prefix_only, 60); }
TestSuite(applier_no_hook, .init = open_prefix_only, .fini = close_all);

Test(applier_no_hook, a_reply_off_the_prefix_without_a_refusal_hook_is_only_dead_lettered)
{
	append_request("reply", "success_rate");
	cr_assert_eq(applier__step(fx.applier), 1);
	cr_assert_eq(fixture_published("success_rate"), 0);
	cr_assert_eq(fixture_published("p/answers"), 0, "no answer of the agent's");
	cr_assert(strstr(fixture_text("SELECT reason FROM deadletter"),
			 "response topic 'success_rate' is not under 'p/replies/'"));
	cr_assert_eq(fixture_published("p/deadletter/in"), 1);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 0);
}

Test(applier_requests, an_oversized_request_is_answered_with_the_refusal_and_dead_lettered)
{
	struct mqp_inbox_meta meta = {"p/replies/me", 12, "c1", 2, 9000};
	cr_assert_eq(mqp_inbox_append(fx.inbox, "p/in", 4, "big", 3, 1, mqp_now_us(), &meta), 0);
	cr_assert_eq(applier__step(fx.applier), 1);
	const struct fake_event *e = fixture_last("p/replies/me");
	cr_assert_not_null(e);
	cr_assert(strstr(e->payload, "\"field\":\"body\""));
	cr_assert_str_eq(e->correlation, "c1");
	cr_assert_eq(fixture_published("p/deadletter/in"), 1);
}

/* ---- shards (README "Scaling out") ---------------------------------------- */

/* A sharded agent of shard 1 of 4: it stores the topic it saw and the
 * payload's owner check, and emits "job" on the payload's shard topic. */
static int shard_handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			struct mqp_reason *why)
{
	(void)state;
	char key[64], topic[128];
	snprintf(key, sizeof(key), "%.*s", (int)msg->len, (const char *)msg->payload);
	int rc = mqp_ctx_check_owner(ctx, "key", key, why);
	if (rc)
		return rc;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(mqp_store_db(fx.store), "INSERT INTO t(v) VALUES (?1)", -1, &st,
			       NULL) != SQLITE_OK)
		return MQP_ERR_DB;
	sqlite3_bind_text(st, 1, msg->topic, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st) == SQLITE_DONE ? MQP_OK : MQP_ERR_DB;
	sqlite3_finalize(st);
	if (!rc && !(rc = mqp_ctx_shard_topic(ctx, "job", key, topic, sizeof(topic))))
		rc = mqp_emit_raw(ctx, topic, key, strlen(key));
	return rc;
}

static const struct mqp_agent shard_agent = {
	.name = "test", .subscriptions = fixture_subscriptions, .sharded = 1,
	.migrations = fixture_migrations, .n_migrations = 1, .handle = shard_handle};

/* Keys of each shard of 4 (CRC-32 modulo 4: mqpipe-shard --shards 4 KEY). */
#define KEY_OF_SHARD_0 "m-1"
#define KEY_OF_SHARD_1 "b"
#define KEY_OF_SHARD_2 "m-2"

static void open_shard(void)
{
	fixture_open(&shard_agent, 60);
	fx.opts.shards = 4;
	fx.opts.shard = 1;
	fx.opts.sharded = 1;
	fx.fake.auto_ack = 1;
}

TestSuite(applier_shard, .init = open_shard, .fini = close_all);

Test(applier_shard, the_handler_sees_its_input_without_the_shard_level)
{
	cr_assert_eq(mqp_shard_of(KEY_OF_SHARD_1, 1, 4), 1);
	fixture_append("p/shard/1/in", KEY_OF_SHARD_1);
	applier__turn(fx.applier, 1);
	cr_assert_str_eq(fixture_text("SELECT v FROM t"), "in");
}

Test(applier_shard, a_key_of_another_shard_is_a_dead_letter_naming_both)
{
	fixture_append("p/shard/1/in", KEY_OF_SHARD_2);
	applier__turn(fx.applier, 1);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 0, "never applied");
	cr_assert_str_eq(fixture_text("SELECT reason FROM deadletter"),
			 "key 'm-2' is of shard 2 of 4, not of this instance's shard 1 "
			 "(publish it on shard/2/…, or through mqpipe-router)");
}

Test(applier_shard, an_output_for_another_agent_goes_to_its_keys_shard)
{
	fixture_append("p/shard/1/in", KEY_OF_SHARD_1);
	applier__turn(fx.applier, 1);
	cr_assert_eq(fixture_published("p/shard/1/job"), 1);
}

/* Publishes of outputs under shard K's topics (republished or not). */
static int published_under(const char *under)
{
	int n = 0;
	for (int i = 0; i < fx.fake.n; i++)
		n += strncmp(fx.fake.ev[i].topic, under, strlen(under)) == 0;
	return n;
}

Test(applier_shard, a_republish_request_sends_again_only_that_shards_acknowledged_outputs)
{
	cr_assert_eq(mqp_store_begin(fx.store), 0);
	struct outbox_output a = {"p/shard/0/job", 2, NULL, NULL, 0};
	struct outbox_output b = {"p/shard/2/job", 2, NULL, NULL, 0};
	cr_assert_eq(outbox__stage(fx.outbox, &a, strdup(KEY_OF_SHARD_0), 3), 0);
	cr_assert_eq(outbox__stage(fx.outbox, &b, strdup(KEY_OF_SHARD_2), 3), 0);
	cr_assert_eq(mqp_store_commit(fx.store), 0);
	outbox__flush(fx.outbox); /* both sent and acknowledged at once */
	cr_assert_eq(mqp_store_begin(fx.store), 0);
	cr_assert_eq(outbox__note(fx.outbox, mqp_now_ms()), 0); /* the acknowledgements noted */
	cr_assert_eq(mqp_store_commit(fx.store), 0);
	fixture_append("p/mqpipe/republish/2", "{}");
	applier__turn(fx.applier, 1);
	cr_assert_eq(published_under("p/shard/2/"), 2, "sent, and sent again");
	cr_assert_eq(published_under("p/shard/0/"), 1, "another shard's: not again");
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 0, "not the handler's");
	fixture_append("p/mqpipe/republish/2", "{}"); /* an outsider repeating it */
	applier__turn(fx.applier, 1);
	cr_assert_eq(published_under("p/shard/2/"), 2, "at most once a second per shard");
}

Test(applier_shard, a_lost_session_asks_for_its_shards_republish_once)
{
	fx.fake.session_lost = 1;
	applier__turn(fx.applier, 1);
	cr_assert_eq(fixture_published("p/mqpipe/republish/1"), 1);
	cr_assert_str_eq(fixture_last("p/mqpipe/republish/1")->payload,
			 "{\"shard\":1,\"shards\":4,\"client_id\":\"test-1\"}");
	applier__turn(fx.applier, 1);
	cr_assert_eq(fixture_published("p/mqpipe/republish/1"), 1, "once per lost session");
}

Test(applier_shard, a_session_lost_again_within_a_second_asks_a_second_later)
{
	fx.fake.session_lost = 1;
	applier__turn(fx.applier, 1);
	cr_assert_eq(fixture_published("p/mqpipe/republish/1"), 1);
	fx.fake.session_lost = 1; /* an automatic reconnect at once: lost again, maybe */
	applier__turn(fx.applier, 1);
	cr_assert_eq(fixture_published("p/mqpipe/republish/1"), 1, "not twice in a second");
	usleep(1100 * 1000);
	applier__turn(fx.applier, 1);
	cr_assert_eq(fixture_published("p/mqpipe/republish/1"), 2, "asked once the second is over");
}

Test(applier_shard, with_ask_republish_off_a_lost_session_asks_nothing)
{
	fx.opts.ask_republish_off = 1;
	fx.fake.session_lost = 1;
	applier__turn(fx.applier, 1);
	cr_assert_eq(fixture_published("p/mqpipe/republish/1"), 0);
}
