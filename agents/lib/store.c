/* The SQLite store: see mqpipe/store.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/log.h"
#include "mqpipe/options.h"
#include "mqpipe/store.h"

#define STORE__DEADLETTER_BYTES "deadletter_bytes" /* runtime_meta: the sum of deadletter.bytes */
#define STORE__DROP_STEP 64 /* oldest dead letters looked at per query when over the bound */

enum store__stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_OUTBOX_ADD,
	ST_OUTBOX_ACKED,
	ST_OUTBOX_PURGE,
	ST_OUTBOX_SINCE,
	ST_OUTBOX_EACH,
	ST_OUTBOX_GET,
	ST_OUTBOX_DEPTH,
	ST_OUTBOX_TAKE,
	ST_DEADLETTER_ADD,
	ST_DEADLETTER_OLDEST,
	ST_DEADLETTER_DROP_UPTO,
	ST_DEADLETTER_AGED,
	ST_DEADLETTER_EXPIRE,
	ST_META_GET,
	ST_META_SET,
	ST__COUNT
};

static const char *const store__sql[ST__COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT msg",
	[ST_RELEASE] = "RELEASE msg",
	[ST_ROLLBACK_TO] = "ROLLBACK TO msg",
	[ST_OUTBOX_ADD] = "INSERT INTO outbox(topic, payload, qos, retain, correlation, created_ms) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))",
	[ST_OUTBOX_ACKED] = "UPDATE outbox SET acked_ms = ?2 WHERE id = ?1 AND acked_ms IS NULL",
	[ST_OUTBOX_PURGE] = "DELETE FROM outbox WHERE acked_ms < ?1",
	[ST_OUTBOX_EACH] = "SELECT id, topic, payload, qos, retain, correlation FROM outbox"
			   " WHERE acked_ms IS NULL ORDER BY id",
	[ST_OUTBOX_SINCE] = "SELECT id, topic, payload, qos, retain, correlation FROM outbox"
			    " WHERE acked_ms >= ?1 ORDER BY id",
	[ST_OUTBOX_GET] = "SELECT id, topic, payload, qos, retain, correlation FROM outbox WHERE id = ?1",
	[ST_OUTBOX_DEPTH] = "SELECT count(*) FROM outbox WHERE acked_ms IS NULL",
	[ST_OUTBOX_TAKE] = "DELETE FROM outbox WHERE id = ?1 AND acked_ms IS NULL"
			   " RETURNING id, topic, payload, qos, retain, correlation",
	[ST_DEADLETTER_ADD] = "INSERT INTO deadletter(topic, reason, payload, received_ms, bytes) "
			      "VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_DEADLETTER_OLDEST] = "SELECT id, bytes FROM deadletter WHERE id > ?1 ORDER BY id LIMIT 64",
	[ST_DEADLETTER_DROP_UPTO] = "DELETE FROM deadletter WHERE id <= ?1",
	[ST_DEADLETTER_AGED] = "SELECT count(*), coalesce(sum(bytes), 0) FROM deadletter"
			       " WHERE received_ms < ?1",
	[ST_DEADLETTER_EXPIRE] = "DELETE FROM deadletter WHERE received_ms < ?1",
	[ST_META_GET] = "SELECT value FROM runtime_meta WHERE key = ?1",
	[ST_META_SET] = "INSERT INTO runtime_meta(key, value) VALUES (?1, ?2) "
			"ON CONFLICT(key) DO UPDATE SET value = excluded.value",
};

/* The runtime's own tables; agents' migrations are recorded separately. */
static const struct mqp_migration store__runtime_migrations[] = {
	{"CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
	 " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
	 " created_ms INTEGER NOT NULL);"
	 "CREATE TABLE deadletter(id INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
	 " reason TEXT NOT NULL, payload BLOB NOT NULL, received_ms INTEGER NOT NULL);"
	 "CREATE TABLE runtime_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"},
	/* A reply to an MQTT 5 request carries the request's correlation data. */
	{"ALTER TABLE outbox ADD COLUMN correlation BLOB;"},
	/* Acknowledged outputs stay for the republish window (a broker that
	 * crashes loses what it accepted since its last snapshot). */
	{"ALTER TABLE outbox ADD COLUMN acked_ms INTEGER;"
	 "CREATE INDEX outbox_acked ON outbox(acked_ms) WHERE acked_ms IS NOT NULL;"},
	/* Dead letters are bounded in bytes and age (README "Bounded
	 * resources"): each row's size, their sum in runtime_meta, and an index
	 * to find the old ones. */
	{"ALTER TABLE deadletter ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;"
	 "UPDATE deadletter SET bytes = length(payload) + length(CAST(topic AS BLOB))"
	 " + length(CAST(reason AS BLOB));"
	 "CREATE INDEX deadletter_received ON deadletter(received_ms);"
	 "INSERT INTO runtime_meta(key, value) SELECT '" STORE__DEADLETTER_BYTES "',"
	 " coalesce(sum(bytes), 0) FROM deadletter WHERE true"
	 " ON CONFLICT(key) DO UPDATE SET value = excluded.value;"},
};

struct mqp_store {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST__COUNT];
	int64_t deadletter_max_bytes;
};

int mqp_store_fail(struct mqp_store *store, const char *what)
{
	char qw[300], qm[300];
	mqp_error("db_error", "what=%s code=%d msg=%s", mqp_log_quote(qw, sizeof(qw), what),
		  sqlite3_extended_errcode(store->db), mqp_log_quote(qm, sizeof(qm), sqlite3_errmsg(store->db)));
	return MQP_ERR_DB;
}

/* Runs one of the prepared statements that take no parameters and return no rows. */
static int store__run(struct mqp_store *store, enum store__stmt which)
{
	int rc = mqp_store_exec(store, store->stmt[which]);
	return rc < 0 ? rc : MQP_OK;
}

/* Applies migrations[version..n) of component, each in its own transaction. */
static int store__migrate(struct mqp_store *store, const char *component,
			  const struct mqp_migration *migrations, size_t n)
{
	sqlite3_stmt *get;
	if (sqlite3_prepare_v2(store->db,
			       "SELECT version FROM schema_version WHERE component = ?1", -1, &get,
			       NULL) != SQLITE_OK)
		return mqp_store_fail(store, "prepare schema_version");
	sqlite3_bind_text(get, 1, component, -1, SQLITE_STATIC);
	sqlite3_int64 version = 0;
	if (sqlite3_step(get) == SQLITE_ROW)
		version = sqlite3_column_int64(get, 0);
	sqlite3_finalize(get);
	if (version > (sqlite3_int64)n) {
		mqp_error("db_schema_newer", "component=%s version=%lld known=%zu", component,
			  (long long)version, n);
		return MQP_ERR_DB;
	}
	for (size_t i = (size_t)version; i < n; i++) {
		char bump[256];
		snprintf(bump, sizeof(bump),
			 "INSERT INTO schema_version(component, version) VALUES ('%s', %zu) "
			 "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
			 component, i + 1);
		char *msg = NULL;
		if (sqlite3_exec(store->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(store->db, migrations[i].sql, NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(store->db, bump, NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(store->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
			char qm[300];
			mqp_error("db_migration_failed", "component=%s step=%zu msg=%s", component,
				  i + 1, mqp_log_quote(qm, sizeof(qm), msg ? msg : "?"));
			sqlite3_free(msg);
			sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
			return MQP_ERR_DB;
		}
		mqp_info("db_migrated", "component=%s version=%zu", component, i + 1);
	}
	return MQP_OK;
}

int mqp_store_open(struct mqp_store **out, const char *path, int sync_full, const char *component,
		   const struct mqp_migration *migrations, size_t n_migrations)
{
	*out = NULL;
	struct mqp_store *store = calloc(1, sizeof(*store));
	if (!store)
		return MQP_ERR_NOMEM;
	store->deadletter_max_bytes = MQP_DEADLETTER_MAX_BYTES_DEFAULT;
	/* No directory is made here: a missing one is the caller's mistake
	 * (README "Running it"), and SQLite then fails with "unable to open". */
	if (sqlite3_open_v2(path, &store->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		mqp_error("db_open_failed", "path=%s msg=\"%s\"", path,
			  store->db ? sqlite3_errmsg(store->db) : "out of memory");
		int rc = store->db ? MQP_ERR_IO : MQP_ERR_NOMEM;
		mqp_store_close(store);
		return rc;
	}
	/* WAL + NORMAL: a commit survives any process crash; FULL adds power loss.
	 * The busy timeout lets `sqlite3` readers (tests, operators) coexist.
	 * auto_vacuum takes effect only in a file without tables yet: a new
	 * state can give freed space back (mqp_store_reclaim), an older one
	 * reuses it (README "Space"). */
	char pragmas[256];
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA auto_vacuum=INCREMENTAL;"
		 "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
		 "PRAGMA foreign_keys=ON; PRAGMA cache_size=-2000;"
		 "CREATE TABLE IF NOT EXISTS schema_version(component TEXT PRIMARY KEY,"
		 " version INTEGER NOT NULL);",
		 sync_full ? "FULL" : "NORMAL");
	char *msg = NULL;
	if (sqlite3_exec(store->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		/* The first read of the file: not a database, unreadable, read-only. */
		mqp_error("db_open_failed", "path=%s msg=\"%s\"", path, msg ? msg : "?");
		sqlite3_free(msg);
		mqp_store_close(store);
		return MQP_ERR_IO;
	}
	int rc = store__migrate(store, "runtime", store__runtime_migrations,
				sizeof(store__runtime_migrations) / sizeof(store__runtime_migrations[0]));
	if (!rc)
		rc = store__migrate(store, component, migrations, n_migrations);
	for (int i = 0; !rc && i < ST__COUNT; i++) {
		if (sqlite3_prepare_v3(store->db, store__sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &store->stmt[i], NULL) != SQLITE_OK)
			rc = mqp_store_fail(store, store__sql[i]);
	}
	if (rc) {
		mqp_store_close(store);
		return rc;
	}
	*out = store;
	return MQP_OK;
}

void mqp_store_close(struct mqp_store *store)
{
	if (!store)
		return;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(store->stmt[i]);
	sqlite3_close_v2(store->db);
	free(store);
}

/* One integer a PRAGMA returns, or -1 when it fails. */
static int64_t store__pragma_int(struct mqp_store *store, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;
	if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int64_t mqp_store_reclaimable(struct mqp_store *store)
{
	if (store__pragma_int(store, "PRAGMA auto_vacuum") != 2)
		return 0; /* a file made before incremental vacuum: its free pages are reused */
	int64_t pages = store__pragma_int(store, "PRAGMA page_count");
	int64_t free_pages = store__pragma_int(store, "PRAGMA freelist_count");
	if (pages < 0 || free_pages < 0)
		return 0;
	int64_t keep = pages / 4 > MQP_STORE_KEEP_FREE_PAGES ? pages / 4 : MQP_STORE_KEEP_FREE_PAGES;
	return free_pages > keep ? free_pages - keep : 0;
}

int mqp_store_reclaim(struct mqp_store *store, int max_pages)
{
	int64_t n = mqp_store_reclaimable(store);
	if (n <= 0)
		return 0;
	if (n > max_pages)
		n = max_pages;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%lld)", (long long)n);
	if (sqlite3_exec(store->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return mqp_store_fail(store, sql);
	return (int)n;
}

sqlite3 *mqp_store_db(struct mqp_store *store)
{
	return store->db;
}

int mqp_store_prepare_all(struct mqp_store *store, const char *const *sql, sqlite3_stmt **stmts,
			  size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (sqlite3_prepare_v3(store->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &stmts[i],
				       NULL) != SQLITE_OK)
			return mqp_store_fail(store, sql[i]);
	return MQP_OK;
}

void mqp_store_finalize_all(sqlite3_stmt **stmts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sqlite3_finalize(stmts[i]);
}

int mqp_store_exec(struct mqp_store *store, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return mqp_store_fail(store, sqlite3_sql(st));
	return sqlite3_changes(store->db);
}

int mqp_store_begin(struct mqp_store *store) { return store__run(store, ST_BEGIN); }
int mqp_store_commit(struct mqp_store *store) { return store__run(store, ST_COMMIT); }
int mqp_store_savepoint(struct mqp_store *store) { return store__run(store, ST_SAVEPOINT); }
int mqp_store_release(struct mqp_store *store) { return store__run(store, ST_RELEASE); }

void mqp_store_rollback(struct mqp_store *store)
{
	if (!sqlite3_get_autocommit(store->db))
		store__run(store, ST_ROLLBACK);
}

void mqp_store_rollback_savepoint(struct mqp_store *store)
{
	/* ROLLBACK TO keeps the savepoint open; RELEASE closes it. */
	store__run(store, ST_ROLLBACK_TO);
	store__run(store, ST_RELEASE);
}

int mqp_store_outbox_add(struct mqp_store *store, const char *topic, const void *payload,
			 size_t len, int qos, int retain, const void *correlation,
			 size_t correlation_len, int64_t *id)
{
	sqlite3_stmt *st = store->stmt[ST_OUTBOX_ADD];
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 2, payload, len, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, qos);
	sqlite3_bind_int(st, 4, retain);
	if (correlation)
		sqlite3_bind_blob64(st, 5, correlation, correlation_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return mqp_store_fail(store, "outbox add");
	*id = sqlite3_last_insert_rowid(store->db);
	return MQP_OK;
}

int mqp_store_outbox_acked(struct mqp_store *store, int64_t id, int64_t acked_ms)
{
	sqlite3_stmt *st = store->stmt[ST_OUTBOX_ACKED];
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, acked_ms);
	return mqp_store_exec(store, st);
}

int mqp_store_outbox_purge(struct mqp_store *store, int64_t before_ms)
{
	sqlite3_stmt *st = store->stmt[ST_OUTBOX_PURGE];
	sqlite3_bind_int64(st, 1, before_ms);
	return mqp_store_exec(store, st);
}

/* Calls fn on each row st yields. */
static int store__outbox_rows(struct mqp_store *store, sqlite3_stmt *st,
			      mqp_outbox_row_fn fn, void *ctx)
{
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mqp_outbox_row row = {
			sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
			sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
			sqlite3_column_int(st, 3), sqlite3_column_int(st, 4),
			sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5)};
		ret = fn(ctx, &row);
		if (ret)
			break;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (!ret && rc != SQLITE_DONE && rc != SQLITE_ROW)
		return mqp_store_fail(store, "outbox scan");
	return ret;
}

int mqp_store_outbox_each(struct mqp_store *store, mqp_outbox_row_fn fn, void *ctx)
{
	return store__outbox_rows(store, store->stmt[ST_OUTBOX_EACH], fn, ctx);
}

int mqp_store_outbox_acked_since(struct mqp_store *store, int64_t since_ms, mqp_outbox_row_fn fn,
				 void *ctx)
{
	sqlite3_bind_int64(store->stmt[ST_OUTBOX_SINCE], 1, since_ms);
	return store__outbox_rows(store, store->stmt[ST_OUTBOX_SINCE], fn, ctx);
}

int mqp_store_outbox_get(struct mqp_store *store, int64_t id, mqp_outbox_row_fn fn, void *ctx)
{
	sqlite3_bind_int64(store->stmt[ST_OUTBOX_GET], 1, id);
	return store__outbox_rows(store, store->stmt[ST_OUTBOX_GET], fn, ctx);
}

int mqp_store_outbox_take(struct mqp_store *store, int64_t id, mqp_outbox_row_fn fn, void *ctx)
{
	sqlite3_bind_int64(store->stmt[ST_OUTBOX_TAKE], 1, id);
	return store__outbox_rows(store, store->stmt[ST_OUTBOX_TAKE], fn, ctx);
}

int64_t mqp_store_outbox_depth(struct mqp_store *store)
{
	sqlite3_stmt *st = store->stmt[ST_OUTBOX_DEPTH];
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : MQP_ERR_DB;
	sqlite3_reset(st);
	return n;
}

void mqp_store_deadletter_bound(struct mqp_store *store, int64_t max_bytes)
{
	store->deadletter_max_bytes = max_bytes;
}

/* Deletes the oldest dead letters, never the one with id keep, until the
 * running total *total is within the bound. Returns how many went, or
 * MQP_ERR_DB. */
static int store__deadletter_shrink(struct mqp_store *store, int64_t keep, int64_t *total)
{
	sqlite3_stmt *st = store->stmt[ST_DEADLETTER_OLDEST];
	int64_t last = 0;
	int dropped = 0, rc = SQLITE_DONE, more = 1;
	while (*total > store->deadletter_max_bytes && more) {
		sqlite3_bind_int64(st, 1, last);
		more = 0;
		while (*total > store->deadletter_max_bytes && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(st, 0);
			if (id == keep)
				break;
			*total -= sqlite3_column_int64(st, 1);
			last = id;
			dropped++;
			more = 1;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return mqp_store_fail(store, "deadletter oldest");
	}
	if (*total > store->deadletter_max_bytes) /* the sum was off: only `keep` is left */
		*total = store->deadletter_max_bytes;
	if (dropped) {
		sqlite3_bind_int64(store->stmt[ST_DEADLETTER_DROP_UPTO], 1, last);
		if ((rc = mqp_store_exec(store, store->stmt[ST_DEADLETTER_DROP_UPTO])) < 0)
			return rc;
	}
	return dropped;
}

int mqp_store_deadletter_add(struct mqp_store *store, const char *topic, const char *reason,
			     const void *payload, size_t len, int64_t received_ms)
{
	int64_t bytes = (int64_t)(len + strlen(topic) + strlen(reason));
	if (bytes > store->deadletter_max_bytes)
		return 1; /* it alone is over the bound: not kept */
	int64_t total = 0;
	int rc = mqp_store_meta_get(store, STORE__DEADLETTER_BYTES, &total);
	if (rc)
		return rc;
	sqlite3_stmt *st = store->stmt[ST_DEADLETTER_ADD];
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 3, len ? payload : "", len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, received_ms);
	sqlite3_bind_int64(st, 5, bytes);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return mqp_store_fail(store, "deadletter add");
	total += bytes;
	int dropped = store__deadletter_shrink(store, sqlite3_last_insert_rowid(store->db), &total);
	if (dropped < 0)
		return dropped;
	rc = mqp_store_meta_set(store, STORE__DEADLETTER_BYTES, total);
	return rc ? rc : dropped;
}

int mqp_store_deadletter_expire(struct mqp_store *store, int64_t before_ms)
{
	sqlite3_stmt *st = store->stmt[ST_DEADLETTER_AGED];
	sqlite3_bind_int64(st, 1, before_ms);
	int64_t n = 0, bytes = 0;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		n = sqlite3_column_int64(st, 0);
		bytes = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return mqp_store_fail(store, "deadletter aged");
	if (n == 0)
		return 0;
	int64_t total = 0;
	sqlite3_bind_int64(store->stmt[ST_DEADLETTER_EXPIRE], 1, before_ms);
	if ((rc = mqp_store_exec(store, store->stmt[ST_DEADLETTER_EXPIRE])) < 0 ||
	    (rc = mqp_store_meta_get(store, STORE__DEADLETTER_BYTES, &total)) ||
	    (rc = mqp_store_meta_set(store, STORE__DEADLETTER_BYTES, total > bytes ? total - bytes : 0)))
		return rc;
	return n > 1000000000 ? 1000000000 : (int)n;
}

int mqp_store_check_dir(const char *path, int create)
{
	char dir[1024];
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return MQP_ERR_INVAL;
	char *slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	struct stat st;
	if (create && mkdir(dir, 0750) == 0)
		mqp_info("state_dir_created", "path=%s", dir);
	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return MQP_OK;
	int err = errno;
	char qm[300];
	mqp_error("state_dir_missing", "path=%s msg=%s", dir,
		  mqp_log_quote(qm, sizeof(qm),
				stat(dir, &st) == 0 ? "not a directory"
				: err == ENOENT ? "no such directory (an agent never creates the directory of -d or $STATE_DIRECTORY: make it first)"
						: strerror(err)));
	return MQP_ERR_IO;
}

/* Takes an exclusive flock on fd, trying again every 50 ms for up to
 * wait_ms. Returns 0, or -1 with errno (EWOULDBLOCK: another holds it). */
static int store__flock(int fd, int wait_ms)
{
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK || wait_ms <= 0)
			return -1;
		nanosleep(&(struct timespec){0, 50000000L}, NULL);
		wait_ms -= 50;
	}
	return 0;
}

/* Logs state_unusable for path and errno value err; returns MQP_ERR_IO. */
static int store__unusable(const char *path, int err)
{
	char qm[300];
	mqp_error("state_unusable", "path=%s msg=%s", path,
		  mqp_log_quote(qm, sizeof(qm), strerror(err)));
	return MQP_ERR_IO;
}

int mqp_store_lock(const char *db_path, int wait_ms, struct mqp_state_lock *lock)
{
	*lock = (struct mqp_state_lock){-1, -1};
	/* A symbolic link finds the lock file beside the real database, where
	 * SQLite puts its -wal too, so the holder's pid is found by any name. */
	char path[PATH_MAX + 8];
	char *real = realpath(db_path, NULL); /* NULL while the database does not exist */
	int too_long = snprintf(path, sizeof(path), "%s.lock", real ? real : db_path) >=
		       (int)sizeof(path);
	free(real);
	if (too_long)
		return MQP_ERR_INVAL;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return store__unusable(path, errno);
	if (store__flock(fd, wait_ms)) {
		int err = errno;
		char pid[32] = "";
		ssize_t n = err == EWOULDBLOCK ? pread(fd, pid, sizeof(pid) - 1, 0) : -1;
		pid[n > 0 ? strcspn(pid, "\n") : 0] = '\0';
		close(fd);
		if (err != EWOULDBLOCK)
			return store__unusable(path, err);
		mqp_error("state_locked",
			  "db=%s lock=%s holder_pid=%s msg=\"another agent runs on this database and "
			  "inbox: stop it, or give this one its own -d\"",
			  db_path, path, *pid ? pid : "unknown");
		return MQP_ERR_BUSY;
	}
	/* The database file itself, locked too: flock belongs to the inode, so
	 * a hard link (which has its own PATH.lock) conflicts as well. It is
	 * created as SQLite would (an empty file is an empty database). */
	int db = open(db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
	if (db < 0) {
		int err = errno;
		close(fd);
		return store__unusable(db_path, err);
	}
	if (store__flock(db, wait_ms)) {
		int err = errno;
		close(db);
		close(fd); /* nothing written to it: the holder's is elsewhere */
		if (err != EWOULDBLOCK)
			return store__unusable(db_path, err);
		mqp_error("state_locked",
			  "db=%s lock=%s holder_pid=unknown msg=\"held by another process, under "
			  "another name of this file (a hard link?): stop it, or give this one its "
			  "own -d\"",
			  db_path, db_path);
		return MQP_ERR_BUSY;
	}
	/* The holder's pid, for the message a second agent gives. */
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n)
		mqp_warn("state_lock_pid_not_written", "path=%s msg=\"%s\"", path, strerror(errno));
	*lock = (struct mqp_state_lock){fd, db};
	return MQP_OK;
}

void mqp_store_unlock(struct mqp_state_lock *lock)
{
	/* Closing a descriptor releases its flock. But closing ANY descriptor
	 * of the database file also drops every POSIX (fcntl) lock this process
	 * holds on it, and those are SQLite's: so db_fd is closed only once
	 * SQLite has closed the database (after mqp_store_close). */
	if (lock->db_fd >= 0)
		close(lock->db_fd);
	if (lock->lock_fd >= 0)
		close(lock->lock_fd);
	*lock = (struct mqp_state_lock){-1, -1};
}

int mqp_store_meta_get(struct mqp_store *store, const char *key, int64_t *value)
{
	sqlite3_stmt *st = store->stmt[ST_META_GET];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*value = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? MQP_OK : mqp_store_fail(store, "meta get");
}

int mqp_store_meta_set(struct mqp_store *store, const char *key, int64_t value)
{
	sqlite3_stmt *st = store->stmt[ST_META_SET];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? MQP_OK : mqp_store_fail(store, "meta set");
}

void *mqp_queries_new(struct mqp_store *store, const char *const *sql, size_t n, size_t size,
		      int *rc)
{
	struct mqp_queries *q = size >= sizeof(*q) ? calloc(1, size) : NULL;
	if (!q || !(q->stmt = calloc(n ? n : 1, sizeof(*q->stmt)))) {
		free(q);
		*rc = MQP_ERR_NOMEM;
		return NULL;
	}
	q->store = store;
	q->sql = sql;
	q->n = n;
	if ((*rc = mqp_store_prepare_all(store, sql, q->stmt, n))) {
		mqp_queries_free(q);
		return NULL;
	}
	return q;
}

void mqp_queries_free(struct mqp_queries *q)
{
	if (!q)
		return;
	mqp_store_finalize_all(q->stmt, q->n);
	free(q->stmt);
	free(q);
}

int mqp_queries_exec(struct mqp_queries *q, size_t which)
{
	return mqp_store_exec(q->store, q->stmt[which]);
}

int mqp_queries_fail(struct mqp_queries *q, size_t which)
{
	return mqp_store_fail(q->store, q->sql[which]);
}
