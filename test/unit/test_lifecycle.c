/* The clean stop (agents/lib/lifecycle.h), driven with a fake session and a
 * real applier thread: what is in hand is finished, then offline is said,
 * then the session disconnects, and only then does the applier stop. */
#include "lifecycle.h"
#include "runtime_fixture.h"

static void open_all(void)
{
	fixture_open(&fixture_agent, 60);
	fx.fake.auto_ack = 1; /* the broker acknowledges each output at once */
}
static void close_all(void) { fixture_close(); }

TestSuite(lifecycle, .init = open_all, .fini = close_all);

/* Index of the first event named what (-1 when none). */
static int first(const char *what)
{
	for (int i = 0; i < fx.fake.n; i++)
		if (strcmp(fx.fake.ev[i].what, what) == 0)
			return i;
	return -1;
}

Test(lifecycle, the_backlog_is_applied_and_sent_before_offline_then_disconnect)
{
	for (int i = 0; i < 50; i++)
		fixture_append("p/in", "ok");
	cr_assert_eq(applier__start(fx.applier), 0);
	cr_assert_eq(lifecycle__shutdown(&fx.ops, fx.applier, fx.outbox, fx.inbox), 0);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 50, "every record applied");
	cr_assert_eq(fixture_published("p/out"), 50, "and its output sent");
	int offline = first("offline"), disconnect = first("disconnect");
	cr_assert_geq(offline, 0);
	cr_assert_eq(disconnect, offline + 1, "offline is said, then the session disconnects");
	for (int i = 0; i < fx.fake.n; i++)
		if (strcmp(fx.fake.ev[i].what, "publish") == 0)
			cr_assert_lt(i, offline, "no output after offline");
	cr_assert_eq(outbox__inflight(fx.outbox), 0);
}

Test(lifecycle, records_that_arrive_before_the_disconnect_are_still_committed)
{
	/* The applier is not running while the session drains: whatever is in
	 * the inbox when the session has disconnected is applied by the stop. */
	fx.fake.online = 0; /* offline: nothing to wait for, nothing to say */
	fixture_append("p/in", "ok");
	fixture_append("p/in", "ok");
	cr_assert_eq(applier__start(fx.applier), 0);
	cr_assert_eq(lifecycle__shutdown(&fx.ops, fx.applier, fx.outbox, fx.inbox), 0);
	cr_assert_eq(first("offline"), -1, "offline is not said when offline");
	cr_assert_geq(first("disconnect"), 0);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 2);
	cr_assert_eq(fixture_scalar("SELECT value FROM runtime_meta WHERE key = 'inbox_seq'"), 2);
}

Test(lifecycle, a_store_failure_stops_the_applier_and_the_stop_reports_it)
{
	fixture_append("p/in", "ok");
	fixture_append("p/in", "db");
	cr_assert_eq(applier__start(fx.applier), 0);
	for (int i = 0; i < 1000 && !applier__failed(fx.applier); i++)
		usleep(10000);
	cr_assert_eq(applier__failed(fx.applier), MQP_ERR_DB, "the thread stopped on its own");
	cr_assert_eq(lifecycle__shutdown(&fx.ops, fx.applier, fx.outbox, fx.inbox), MQP_ERR_DB);
	cr_assert_eq(fixture_scalar("SELECT count(*) FROM t"), 0, "nothing of that batch kept");
	cr_assert_eq(fixture_published("p/out"), 0);
}
