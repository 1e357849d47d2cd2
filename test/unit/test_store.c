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
	snprintf(path, sizeof(path), "%s/a.db", dir);
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

Test(store, opens_in_wal_mode)
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

Test(store, a_missing_directory_is_refused_and_nothing_is_created)
{
	struct mqp_store *s;
	char missing[300], sub[200];
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	snprintf(missing, sizeof(missing), "%s/dir/a.db", sub);
	cr_assert_eq(mqp_store_open(&s, missing, 0, "x", v1, 1), MQP_ERR_IO);
	cr_assert_null(s);
	cr_assert_eq(mqp_store_check_dir(missing, 0), MQP_ERR_IO);
	cr_assert_neq(access(sub, F_OK), 0, "no directory was made");
	cr_assert_eq(mqp_store_check_dir(path, 0), 0, "the test's own directory exists");
}

Test(store, check_dir_creates_one_level_only_when_asked)
{
	char p1[300], p2[300], d1[200];
	snprintf(d1, sizeof(d1), "%s/var", dir);
	snprintf(p1, sizeof(p1), "%s/a.db", d1);
	snprintf(p2, sizeof(p2), "%s/deep/er/a.db", dir);
	cr_assert_eq(mqp_store_check_dir(p1, 1), 0);
	cr_assert_eq(access(d1, F_OK), 0);
	cr_assert_eq(mqp_store_check_dir(p2, 1), MQP_ERR_IO, "never mkdir -p");
}

Test(store, a_file_that_is_not_a_database_is_an_io_error_and_stays_untouched)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("plain text, not SQLite\n", f);
	fclose(f);
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), MQP_ERR_IO);
	char buf[64] = "";
	f = fopen(path, "r");
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_assert_str_eq(buf, "plain text, not SQLite\n");
}

Test(store, the_lock_admits_one_holder_and_names_it)
{
	struct mqp_state_lock l1, l2;
	cr_assert_eq(mqp_store_lock(path, 0, &l1), 0);
	cr_assert_geq(l1.lock_fd, 0);
	cr_assert_geq(l1.db_fd, 0);
	cr_assert_eq(access(path, F_OK), 0, "the database file is created, empty, to be locked");
	char lock[200], pid[32] = "", want[32];
	snprintf(lock, sizeof(lock), "%s.lock", path);
	FILE *f = fopen(lock, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(pid, sizeof(pid), f));
	fclose(f);
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	cr_assert_str_eq(pid, want, "the holder's pid is in the lock file");
	/* A second open file description conflicts even in the same process. */
	cr_assert_eq(mqp_store_lock(path, 100, &l2), MQP_ERR_BUSY);
	cr_assert_eq(l2.lock_fd, -1);
	cr_assert_eq(l2.db_fd, -1);
	mqp_store_unlock(&l1);
	cr_assert_eq(l1.lock_fd, -1, "unlocking resets the handle");
	cr_assert_eq(mqp_store_lock(path, 100, &l2), 0, "free again once released");
	mqp_store_unlock(&l2);
}

Test(store, the_lock_holds_against_a_symbolic_link_to_the_database)
{
	struct mqp_state_lock l1, l2;
	char link[200];
	snprintf(link, sizeof(link), "%s/link.db", dir);
	cr_assert_eq(mqp_store_lock(path, 0, &l1), 0);
	cr_assert_eq(symlink("a.db", link), 0);
	cr_assert_eq(mqp_store_lock(link, 100, &l2), MQP_ERR_BUSY);
	cr_assert_eq(l2.lock_fd, -1);
	mqp_store_unlock(&l1);
}

Test(store, the_lock_holds_against_a_hard_link_to_the_database)
{
	struct mqp_state_lock l1, l2;
	char hard[200], hard_lock[220];
	snprintf(hard, sizeof(hard), "%s/hard.db", dir);
	snprintf(hard_lock, sizeof(hard_lock), "%s.lock", hard);
	cr_assert_eq(mqp_store_lock(path, 0, &l1), 0);
	cr_assert_eq(link(path, hard), 0);
	/* hard.db.lock is another file, free: the database's inode is not. */
	cr_assert_eq(mqp_store_lock(hard, 100, &l2), MQP_ERR_BUSY);
	cr_assert_eq(l2.lock_fd, -1);
	cr_assert_eq(l2.db_fd, -1);
	char buf[8];
	FILE *f = fopen(hard_lock, "r");
	cr_assert_not_null(f);
	cr_assert_null(fgets(buf, sizeof(buf), f), "the refused agent wrote no pid");
	fclose(f);
	mqp_store_unlock(&l1);
	cr_assert_eq(mqp_store_lock(hard, 100, &l2), 0, "free again once released");
	mqp_store_unlock(&l2);
}

Test(store, the_database_stays_usable_while_and_after_it_is_locked)
{
	/* The lock's own descriptor of the database file stays open under
	 * SQLite (store.h: unlock only after closing the store). */
	struct mqp_state_lock l;
	struct mqp_store *s;
	cr_assert_eq(mqp_store_lock(path, 0, &l), 0);
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(sqlite3_exec(mqp_store_db(s), "INSERT INTO t(a) VALUES (1)", 0, 0, 0), SQLITE_OK);
	mqp_store_close(s);
	mqp_store_unlock(&l);
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(scalar(s, "SELECT count(*) FROM t"), 1);
	mqp_store_close(s);
}

Test(store, a_lock_in_a_missing_directory_is_an_io_error)
{
	char missing[200];
	struct mqp_state_lock l;
	snprintf(missing, sizeof(missing), "%s/none/a.db", dir);
	cr_assert_eq(mqp_store_lock(missing, 0, &l), MQP_ERR_IO);
	cr_assert_eq(l.lock_fd, -1);
}

/* Adds n dead letters of `size` payload bytes on topic "t" with reason "r",
 * received at ms 1000 + i, and returns how many were dropped in all. */
static int add_deadletters(struct mqp_store *s, int n, size_t size)
{
	char payload[4096];
	memset(payload, 'p', sizeof(payload));
	int dropped = 0;
	for (int i = 0; i < n; i++) {
		int rc = mqp_store_deadletter_add(s, "t", "r", payload, size, 1000 + i);
		cr_assert_geq(rc, 0);
		dropped += rc;
	}
	return dropped;
}

Test(store, dead_letters_stay_within_the_bound_oldest_dropped_first)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	mqp_store_deadletter_bound(s, 10 * 100); /* ten of 98 + 1 + 1 bytes */
	cr_assert_eq(mqp_store_begin(s), 0);
	cr_assert_eq(add_deadletters(s, 10, 98), 0, "ten fit exactly");
	cr_assert_eq(add_deadletters(s, 5, 98), 5, "each one more drops one");
	cr_assert_eq(mqp_store_commit(s), 0);
	cr_assert_eq(scalar(s, "SELECT count(*) FROM deadletter"), 10);
	cr_assert_eq(scalar(s, "SELECT min(id) FROM deadletter"), 6, "the five oldest went");
	cr_assert_eq(scalar(s, "SELECT max(id) FROM deadletter"), 15, "the newest stay");
	cr_assert_eq(scalar(s, "SELECT sum(bytes) FROM deadletter"), 1000);
	cr_assert_eq(scalar(s, "SELECT value FROM runtime_meta WHERE key='deadletter_bytes'"), 1000);
	/* A big one pushes out as many small ones as it needs. */
	cr_assert_eq(mqp_store_deadletter_add(s, "t", "r", "", 0, 2000), 1, "2 bytes more: one goes");
	char big[600];
	memset(big, 'b', sizeof(big));
	/* 902 + 602 bytes: six of 100 go, the 2-byte one stays */
	cr_assert_eq(mqp_store_deadletter_add(s, "t", "r", big, sizeof(big), 2001), 6);
	cr_assert_eq(scalar(s, "SELECT count(*) FROM deadletter WHERE received_ms = 2001"), 1);
	cr_assert_leq(scalar(s, "SELECT sum(bytes) FROM deadletter"), 1000);
	mqp_store_close(s);
}

Test(store, a_dead_letter_larger_than_the_bound_is_not_kept)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	mqp_store_deadletter_bound(s, 100);
	cr_assert_eq(add_deadletters(s, 1, 50), 0);
	cr_assert_eq(add_deadletters(s, 1, 200), 1, "counted as dropped");
	cr_assert_eq(scalar(s, "SELECT count(*) FROM deadletter"), 1, "the older small one stays");
	mqp_store_deadletter_bound(s, 0);
	cr_assert_eq(add_deadletters(s, 1, 0), 1, "a bound of 0 keeps none");
	mqp_store_close(s);
}

Test(store, the_default_bound_is_16_mib)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	char *big = calloc(1, 16 * 1024 * 1024);
	cr_assert_not_null(big);
	cr_assert_eq(mqp_store_deadletter_add(s, "t", "r", big, 16 * 1024 * 1024 - 2, 1), 0,
		     "16 MiB in all fits");
	cr_assert_eq(mqp_store_deadletter_add(s, "t", "r", big, 1, 2), 1, "one byte more drops the first");
	free(big);
	mqp_store_close(s);
}

Test(store, dead_letters_past_the_age_are_expired_and_the_total_follows)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	mqp_store_deadletter_bound(s, 1000);
	cr_assert_eq(add_deadletters(s, 8, 98), 0); /* received at 1000..1007 */
	cr_assert_eq(mqp_store_deadletter_expire(s, 1005), 5);
	cr_assert_eq(mqp_store_deadletter_expire(s, 1005), 0, "nothing left that old");
	cr_assert_eq(scalar(s, "SELECT count(*) FROM deadletter"), 3);
	cr_assert_eq(scalar(s, "SELECT value FROM runtime_meta WHERE key='deadletter_bytes'"), 300);
	cr_assert_eq(add_deadletters(s, 7, 98), 0, "room for seven more after the expiry");
	cr_assert_eq(add_deadletters(s, 1, 98), 1);
	mqp_store_close(s);
}

Test(store, dead_letters_from_before_the_bound_are_counted_at_the_upgrade)
{
	/* A database of the previous version: three runtime steps, dead
	 * letters without a size. */
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db,
		"CREATE TABLE schema_version(component TEXT PRIMARY KEY, version INTEGER NOT NULL);"
		"INSERT INTO schema_version VALUES ('runtime', 3);"
		"CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
		" payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
		" created_ms INTEGER NOT NULL, correlation BLOB, acked_ms INTEGER);"
		"CREATE TABLE deadletter(id INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
		" reason TEXT NOT NULL, payload BLOB NOT NULL, received_ms INTEGER NOT NULL);"
		"CREATE TABLE runtime_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
		"INSERT INTO deadletter(topic, reason, payload, received_ms)"
		" VALUES ('tt', 'rr', x'00112233', 1), ('té', 'r', '', 2);",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v1, 1), 0);
	cr_assert_eq(scalar(s, "SELECT bytes FROM deadletter WHERE received_ms = 1"), 8);
	cr_assert_eq(scalar(s, "SELECT bytes FROM deadletter WHERE received_ms = 2"), 4, "bytes, not characters");
	cr_assert_eq(scalar(s, "SELECT value FROM runtime_meta WHERE key='deadletter_bytes'"), 12);
	mqp_store_close(s);
}

/* Fills table t with n rows of about 1 KiB. */
static void fill(struct mqp_store *s, int from, int n)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "WITH RECURSIVE n(v) AS (SELECT %d UNION ALL SELECT v + 1"
		 " FROM n WHERE v < %d) INSERT INTO t(a, b) SELECT v, randomblob(1000) FROM n",
		 from, from + n - 1);
	cr_assert_eq(mqp_store_begin(s), 0);
	cr_assert_eq(sqlite3_exec(mqp_store_db(s), sql, NULL, NULL, NULL), SQLITE_OK);
	cr_assert_eq(mqp_store_commit(s), 0);
}

Test(store, a_new_state_gives_freed_space_back_a_bounded_piece_at_a_time)
{
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v2, 2), 0);
	cr_assert_eq(scalar(s, "PRAGMA auto_vacuum"), 2, "incremental");
	fill(s, 1, 8000); /* about 8 MB */
	int64_t full = scalar(s, "PRAGMA page_count");
	cr_assert_eq(sqlite3_exec(mqp_store_db(s), "DELETE FROM t WHERE a > 1000", NULL, NULL, NULL),
		     SQLITE_OK);
	cr_assert_gt(mqp_store_reclaimable(s), 0);
	int steps = 0, back;
	while ((back = mqp_store_reclaim(s, 100)) > 0) {
		cr_assert_leq(back, 100, "never more than asked for at once");
		steps++;
	}
	cr_assert_eq(back, 0);
	cr_assert_gt(steps, 10, "given back in pieces");
	int64_t now = scalar(s, "PRAGMA page_count"), free_pages = scalar(s, "PRAGMA freelist_count");
	cr_assert_lt(now, full / 2, "the file shrank: %lld of %lld pages", (long long)now, (long long)full);
	cr_assert_leq(free_pages, MQP_STORE_KEEP_FREE_PAGES > now / 4 ? MQP_STORE_KEEP_FREE_PAGES : now / 4,
		      "a reserve is kept for reuse, no more");
	cr_assert_eq(scalar(s, "SELECT count(*) FROM t"), 1000, "nothing stored is lost");
	mqp_store_close(s);
}

Test(store, an_older_state_without_incremental_vacuum_reuses_its_free_pages)
{
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "CREATE TABLE old(a)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct mqp_store *s;
	cr_assert_eq(mqp_store_open(&s, path, 0, "x", v2, 2), 0);
	cr_assert_eq(scalar(s, "PRAGMA auto_vacuum"), 0, "it cannot change without a VACUUM");
	fill(s, 1, 2000);
	cr_assert_eq(sqlite3_exec(mqp_store_db(s), "DELETE FROM t", NULL, NULL, NULL), SQLITE_OK);
	int64_t pages = scalar(s, "PRAGMA page_count");
	cr_assert_eq(mqp_store_reclaimable(s), 0);
	cr_assert_eq(mqp_store_reclaim(s, 100), 0);
	fill(s, 1, 2000);
	cr_assert_leq(scalar(s, "PRAGMA page_count"), pages + 2, "the freed pages were used again");
	mqp_store_close(s);
}
