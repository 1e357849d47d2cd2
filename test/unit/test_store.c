/* The SQLite store (mqpipe/store.h): migrations, outbox, dead letters, meta. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/store.h"

static char dir[64], path[160];

static void setup(void)
{
	strcpy(dir, "/tmp/mqpipe-store-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/dir/a.db", dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

static const struct mqp_migration v1[] = {{"CREATE TABLE t(a INTEGER PRIMARY KEY);"}};
static const struct mqp_migration v2[] = {{"CREATE TABLE t(a INTEGER PRIMARY KEY);"},
					  {"ALTER TABLE t ADD COLUMN b TEXT;"}};

static int64_t scalar(struct mqp_store *s, const char *sql)
{
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(mqp_store_db(s), sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

Test(store, opens_in_wal_mode_creating_its_directory)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(mqp_store_db(s), "PRAGMA journal_mode", -1, &st, NULL);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	cr_assert_eq(scalar(s, "PRAGMA synchronous"), 1, "NORMAL");
	mqp_store_close(s);
	cr_assert_eq(mqp_store_open(&s, path, 1, "x", v1, 1), 0);
	cr_assert_eq(scalar(s, "PRAGMA synchronous"), 2, "FULL with --sync full");
	mqp_store_close(s);
}

Test(store, migrations_run_once_and_new_steps_apply_on_upgrade)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(sqlite3_exec(mqp_store_db(s), "INSERT INTO t(a) VALUES (1)", 0, 0, 0), SQLITE_OK);
	mqp_store_close(s);
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0, "reopening does not re-run step 1");
	mqp_store_close(s);
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v2, 2), 0);
	cr_assert_eq(scalar(s, "SELECT count(*) FROM t WHERE b IS NULL"), 1, "data kept");
	cr_assert_eq(scalar(s, "SELECT version FROM schema_version WHERE component='x'"), 2);
	mqp_store_close(s);
}

Test(store, refuses_a_schema_newer_than_the_program)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v2, 2), 0);
	mqp_store_close(s);
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), MQP_ERR_DB);
}

struct rows {
	int n;
	int64_t ids[8];
	char topics[8][32];
	char correlation[8][16]; /* "" when none */
};

static int collect(void *ctx, const struct mqp_outbox_row *row)
{
	struct rows *r = ctx;
	cr_assert_eq(row->qos, 1);
	cr_assert_eq(row->retain, 0);
	cr_assert_eq(row->len, 2);
	cr_assert_eq(memcmp(row->payload, "{}", 2), 0);
	r->ids[r->n] = row->id;
	snprintf(r->correlation[r->n], 16, "%.*s", (int)row->correlation_len,
		 row->correlation ? (const char *)row->correlation : "");
	snprintf(r->topics[r->n++], 32, "%s", row->topic);
	return 0;
}

Test(store, outbox_rows_stay_until_acknowledged)
{
	struct mqp_store *s;
	int64_t a, b;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(mqp_store_begin(s), 0);
	cr_assert_eq(mqp_store_outbox_add(s, "one", "{}", 2, 1, 0, NULL, 0, &a), 0);
	cr_assert_eq(mqp_store_outbox_add(s, "two", "{}", 2, 1, 0, "c-7", 3, &b), 0);
	cr_assert_eq(mqp_store_commit(s), 0);
	cr_assert_eq(mqp_store_outbox_depth(s), 2);
	mqp_store_close(s);

	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	struct rows r = {0};
	cr_assert_eq(mqp_store_outbox_each(s, collect, &r), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_str_eq(r.topics[0], "one");
	cr_assert_str_eq(r.topics[1], "two");
	cr_assert_str_eq(r.correlation[0], "", "no correlation data unless given");
	cr_assert_str_eq(r.correlation[1], "c-7", "a reply keeps its correlation data");
	struct rows one = {0};
	cr_assert_eq(mqp_store_outbox_get(s, b, collect, &one), 0);
	cr_assert_str_eq(one.topics[0], "two");
	cr_assert_eq(mqp_store_outbox_acked(s, a, 1000), 1);
	cr_assert_eq(mqp_store_outbox_acked(s, a, 2000), 0, "acknowledged twice counts once");
	cr_assert_eq(mqp_store_outbox_depth(s), 1);
	struct rows waiting = {0};
	cr_assert_eq(mqp_store_outbox_each(s, collect, &waiting), 0);
	cr_assert_eq(waiting.n, 1, "the acknowledged row is not offered at start");
	cr_assert_str_eq(waiting.topics[0], "two");
	mqp_store_close(s);
}

Test(store, acknowledged_rows_stay_for_the_republish_window)
{
	struct mqp_store *s;
	int64_t a, b, c;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(mqp_store_begin(s), 0);
	cr_assert_eq(mqp_store_outbox_add(s, "old", "{}", 2, 1, 0, NULL, 0, &a), 0);
	cr_assert_eq(mqp_store_outbox_add(s, "recent", "{}", 2, 1, 0, NULL, 0, &b), 0);
	cr_assert_eq(mqp_store_outbox_add(s, "waiting", "{}", 2, 1, 0, NULL, 0, &c), 0);
	cr_assert_eq(mqp_store_outbox_acked(s, a, 1000), 1);
	cr_assert_eq(mqp_store_outbox_acked(s, b, 9000), 1);
	cr_assert_eq(mqp_store_commit(s), 0);
	struct rows since = {0};
	cr_assert_eq(mqp_store_outbox_acked_since(s, 5000, collect, &since), 0);
	cr_assert_eq(since.n, 1);
	cr_assert_str_eq(since.topics[0], "recent");
	cr_assert_eq(mqp_store_begin(s), 0);
	cr_assert_eq(mqp_store_outbox_purge(s, 5000), 1, "only the row acknowledged before 5000");
	cr_assert_eq(mqp_store_commit(s), 0);
	struct rows left = {0};
	cr_assert_eq(mqp_store_outbox_acked_since(s, 0, collect, &left), 0);
	cr_assert_eq(left.n, 1);
	cr_assert_str_eq(left.topics[0], "recent");
	cr_assert_eq(mqp_store_outbox_depth(s), 1, "the unacknowledged row is untouched");
	mqp_store_close(s);
}

Test(store, a_rolled_back_savepoint_leaves_the_rest_of_the_transaction)
{
	struct mqp_store *s;
	int64_t id;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(mqp_store_begin(s), 0);
	cr_assert_eq(mqp_store_savepoint(s), 0);
	mqp_store_outbox_add(s, "kept", "{}", 2, 1, 0, NULL, 0, &id);
	cr_assert_eq(mqp_store_release(s), 0);
	cr_assert_eq(mqp_store_savepoint(s), 0);
	mqp_store_outbox_add(s, "undone", "{}", 2, 1, 0, NULL, 0, &id);
	mqp_store_rollback_savepoint(s);
	cr_assert_eq(mqp_store_commit(s), 0);
	struct rows r = {0};
	mqp_store_outbox_each(s, collect, &r);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.topics[0], "kept");
	mqp_store_close(s);
}

Test(store, dead_letters_and_meta_are_stored)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(mqp_store_deadletter_add(s, "recv_message", "bad", "\xff", 1, 99), 0);
	cr_assert_eq(scalar(s, "SELECT count(*) FROM deadletter WHERE reason='bad' AND received_ms=99"
			       " AND payload = x'ff'"), 1);
	int64_t v = -1;
	cr_assert_eq(mqp_store_meta_get(s, "k", &v), 0);
	cr_assert_eq(v, -1, "missing key leaves the value");
	cr_assert_eq(mqp_store_meta_set(s, "k", 5), 0);
	cr_assert_eq(mqp_store_meta_set(s, "k", 6), 0);
	cr_assert_eq(mqp_store_meta_get(s, "k", &v), 0);
	cr_assert_eq(v, 6);
	mqp_store_close(s);
}

Test(store, agent_statements_are_prepared_run_and_finalized_together)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	const char *const sql[] = {"INSERT OR IGNORE INTO t(a) VALUES (?1)", "DELETE FROM t"};
	sqlite3_stmt *st[2] = {NULL, NULL};
	cr_assert_eq(mqp_store_prepare_all(s, sql, st, 2), 0);
	sqlite3_bind_int(st[0], 1, 7);
	cr_assert_eq(mqp_store_exec(s, st[0]), 1, "one row inserted");
	cr_assert_eq(mqp_store_exec(s, st[0]), 0, "bindings stay: the repeat changes nothing");
	cr_assert_eq(mqp_store_exec(s, st[1]), 1);
	const char *const bad[] = {"SELECT * FROM nowhere"};
	sqlite3_stmt *none[1] = {NULL};
	cr_assert_eq(mqp_store_prepare_all(s, bad, none, 1), MQP_ERR_DB);
	mqp_store_finalize_all(st, 2);
	mqp_store_finalize_all(none, 1);
	mqp_store_close(s);
}

/* mqp_store_outbox_take callback: keeps the row as a dead letter, as the
 * runtime does with an output the broker refused. */
static int take_as_deadletter(void *ctx, const struct mqp_outbox_row *row)
{
	int rc = mqp_store_deadletter_add(ctx, row->topic, "publish refused by the broker: 135 not authorized",
					  row->payload, row->len, 5);
	return rc ? rc : 1;
}

Test(store, a_taken_row_leaves_the_outbox_for_good)
{
	struct mqp_store *s;
	int64_t a, b;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(mqp_store_begin(s), 0);
	cr_assert_eq(mqp_store_outbox_add(s, "refused", "{\"k\":1}", 7, 1, 0, NULL, 0, &a), 0);
	cr_assert_eq(mqp_store_outbox_add(s, "acked", "{}", 2, 1, 0, NULL, 0, &b), 0);
	cr_assert_eq(mqp_store_outbox_acked(s, b, 1000), 1);
	cr_assert_eq(mqp_store_outbox_take(s, a, take_as_deadletter, s), 1, "fn saw the row");
	cr_assert_eq(mqp_store_outbox_take(s, a, take_as_deadletter, s), 0, "taken once");
	cr_assert_eq(mqp_store_outbox_take(s, b, take_as_deadletter, s), 0,
		     "an acknowledged row is not taken");
	cr_assert_eq(mqp_store_commit(s), 0);
	cr_assert_eq(mqp_store_outbox_depth(s), 0);
	struct rows r = {0};
	cr_assert_eq(mqp_store_outbox_each(s, collect, &r), 0);
	cr_assert_eq(r.n, 0, "nothing is offered at the next start");
	cr_assert_eq(scalar(s, "SELECT count(*) FROM deadletter WHERE topic = 'refused' AND payload = "
			       "CAST('{\"k\":1}' AS BLOB) AND reason LIKE '%135 not authorized'"), 1);
	mqp_store_close(s);
}
