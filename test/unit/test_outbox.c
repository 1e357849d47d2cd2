/* The outbox (agents/lib/outbox.h), driven with a fake session: marks,
 * retries, refusals and the republish window. */
#include "runtime_fixture.h"

static void open_window(void) { fixture_open(&fixture_agent, 60); }
static void open_no_window(void) { fixture_open(&fixture_agent, 0); }
static void close_all(void) { fixture_close(); }

TestSuite(outbox, .init = open_window, .fini = close_all);
TestSuite(outbox_no_window, .init = open_no_window, .fini = close_all);

/* Stages n outputs "o1".."on" on topic p/out in one transaction and flushes. */
static void emit(int n)
{
	cr_assert_eq(mqp_store_begin(fx.store), 0);
	for (int i = 1; i <= n; i++) {
		char *payload = malloc(16);
		snprintf(payload, 16, "o%d", i);
		struct outbox_output o = {"p/out", 2, NULL, NULL, 0};
		cr_assert_eq(outbox__stage(fx.outbox, &o, payload, strlen(payload)), 0);
	}
	cr_assert_eq(mqp_store_commit(fx.store), 0);
	outbox__flush(fx.outbox);
}

/* Runs outbox__note in a transaction at now_ms. */
static void note(int64_t now_ms)
{
	cr_assert_eq(mqp_store_begin(fx.store), 0);
	cr_assert_eq(outbox__note(fx.outbox, now_ms), 0);
	cr_assert_eq(mqp_store_commit(fx.store), 0);
}

Test(outbox, a_flushed_output_is_published_once_and_waits_for_its_acknowledgement)
{
	emit(2);
	cr_assert_eq(fixture_published("p/out"), 2);
	cr_assert_eq(outbox__depth(fx.outbox), 2);
	cr_assert_eq(outbox__inflight(fx.outbox), 2);
	cr_assert_eq(outbox__staged(fx.outbox), 0);
	outbox__acked(fx.outbox, fx.fake.ev[0].id);
	cr_assert(outbox__has_outcomes(fx.outbox));
	note(mqp_now_ms());
	cr_assert_eq(outbox__depth(fx.outbox), 1);
	cr_assert_eq(outbox__inflight(fx.outbox), 1);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM outbox WHERE acked_ms IS NOT NULL"), 1,
		     "kept for the republish window");
}

Test(outbox, a_row_acknowledged_twice_counts_once)
{
	emit(1);
	outbox__acked(fx.outbox, fx.fake.ev[0].id);
	note(mqp_now_ms());
	outbox__acked(fx.outbox, fx.fake.ev[0].id); /* after a republish */
	note(mqp_now_ms());
	cr_assert_eq(outbox__depth(fx.outbox), 0);
}

Test(outbox_no_window, without_a_window_acknowledged_rows_are_deleted_at_the_next_purge)
{
	emit(1);
	int64_t now = mqp_now_ms();
	outbox__acked(fx.outbox, fx.fake.ev[0].id);
	note(now);
	note(now + 1500); /* purges run about once a second */
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM outbox"), 0);
}

Test(outbox, unstaged_outputs_are_never_sent)
{
	cr_assert_eq(mqp_store_begin(fx.store), 0);
	struct outbox_output o = {"p/out", 2, NULL, NULL, 0};
	cr_assert_eq(outbox__stage(fx.outbox, &o, strdup("kept"), 4), 0);
	cr_assert_eq(mqp_store_savepoint(fx.store), 0);
	cr_assert_eq(outbox__stage(fx.outbox, &o, strdup("undone"), 6), 0);
	mqp_store_rollback_savepoint(fx.store);
	outbox__unstage(fx.outbox, 1);
	cr_assert_eq(mqp_store_commit(fx.store), 0);
	outbox__flush(fx.outbox);
	cr_assert_eq(fixture_published("p/out"), 1);
	cr_assert_str_eq(fixture_last("p/out")->payload, "kept");
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM outbox"), 1);
}

Test(outbox, a_send_refused_at_once_is_sent_again_by_retry)
{
	fx.fake.refuse_sends = 1;
	emit(1);
	cr_assert_eq(fixture_published("p/out"), 0);
	cr_assert(outbox__has_failures(fx.outbox));
	cr_assert_eq(outbox__inflight(fx.outbox), 0);
	cr_assert_eq(outbox__retry(fx.outbox), 0);
	cr_assert_eq(fixture_published("p/out"), 1);
	cr_assert_not(outbox__has_failures(fx.outbox));
}

Test(outbox, a_failed_send_is_sent_again_by_retry)
{
	emit(1);
	outbox__failed(fx.outbox, fx.fake.ev[0].id);
	cr_assert_eq(outbox__inflight(fx.outbox), 0);
	cr_assert_eq(outbox__retry(fx.outbox), 0);
	cr_assert_eq(fixture_published("p/out"), 2);
	cr_assert_eq(fx.fake.ev[1].id, fx.fake.ev[0].id, "the same row");
}

Test(outbox, a_row_refused_for_good_becomes_a_dead_letter_and_leaves_the_outbox)
{
	emit(1);
	outbox__refused(fx.outbox, fx.fake.ev[0].id, 135, "Not authorized");
	note(mqp_now_ms());
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM outbox"), 0);
	cr_assert_eq(outbox__depth(fx.outbox), 0);
	cr_assert_str_eq(fixture_text("SELECT reason FROM deadletter"),
			 "publish refused by the broker: 135 not authorized");
	cr_assert_str_eq(fixture_text("SELECT topic FROM deadletter"), "p/out");
	cr_assert_str_eq(fixture_text("SELECT payload FROM deadletter"), "o1");
	cr_assert_eq(fixture_published("p/deadletter/p/out"), 0,
		     "no event for it: that too could be refused");
}

Test(outbox, republish_sends_again_what_was_acknowledged_within_the_window)
{
	emit(2);
	int64_t now = mqp_now_ms();
	outbox__acked(fx.outbox, fx.fake.ev[0].id);
	note(now - 120 * 1000); /* acknowledged two minutes ago: out of the 60 s window */
	outbox__acked(fx.outbox, fx.fake.ev[1].id);
	note(now);
	cr_assert_eq(outbox__republish(fx.outbox, now), 0);
	cr_assert_eq(fixture_published("p/out"), 3, "only the second again");
	cr_assert_str_eq(fixture_last("p/out")->payload, "o2");
}

Test(outbox, send_all_publishes_what_the_last_run_left)
{
	emit(2);
	outbox__free(fx.outbox); /* the process died: the rows stay in the store */
	fx.fake.n = 0;
	cr_assert_eq(outbox__new(&fx.outbox, fx.store, fx.metrics, &fx.dl, &fx.ops, 60), 0);
	fx.fake.outbox = fx.outbox;
	cr_assert_eq(outbox__depth(fx.outbox), 2);
	outbox__send_all(fx.outbox);
	cr_assert_eq(fixture_published("p/out"), 2);
}

Test(outbox, a_reply_keeps_its_correlation_data_and_its_metrics_label)
{
	cr_assert_eq(mqp_store_begin(fx.store), 0);
	struct outbox_output o = {"replies/me", 0, "answers", "c9", 2};
	cr_assert_eq(outbox__stage(fx.outbox, &o, strdup("{}"), 2), 0);
	cr_assert_eq(mqp_store_commit(fx.store), 0);
	outbox__flush(fx.outbox);
	const struct fake_event *e = fixture_last("replies/me");
	cr_assert_not_null(e);
	cr_assert_str_eq(e->correlation, "c9");
	cr_assert_eq(fixture_scalar("SELECT length(correlation) FROM outbox"), 2);
}
