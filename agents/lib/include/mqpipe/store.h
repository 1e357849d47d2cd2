/* The agent's SQLite file: WAL mode, schema migrations, and the tables the
 * runtime owns (outbox, dead letters, inbox progress).
 *
 * A store is used by one thread at a time: the applier thread once the agent
 * runs. All writes happen inside mqp_store_begin/commit. */
#ifndef MQPIPE_STORE_H
#define MQPIPE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

struct mqp_store;

/* One schema step: SQL run once, in order, inside a transaction. */
struct mqp_migration {
	const char *sql;
};

/* Opens (creating it when missing, in a directory that must exist) the
 * SQLite file at path, applies the runtime's migrations and then the agent's,
 * recorded per `component`. synchronous=FULL when sync_full, else NORMAL. On
 * success returns 0 and *out owns the store (close with mqp_store_close).
 * Errors are logged: MQP_ERR_IO when the file cannot be opened or is not a
 * database (missing directory, permissions, read-only), MQP_ERR_DB when a
 * migration fails or the schema is newer than this program. */
int mqp_store_open(struct mqp_store **out, const char *path, int sync_full, const char *component,
		   const struct mqp_migration *migrations, size_t n_migrations);
void mqp_store_close(struct mqp_store *store);

/* Checks that the directory that will hold path exists and is a directory;
 * with create, makes it first when missing (one level, mode 0750: only for
 * the default ./var). Returns 0, or MQP_ERR_IO (logged, naming the
 * directory), or MQP_ERR_INVAL for an over-long path. */
int mqp_store_check_dir(const char *path, int create);

/* The state's locks (mqp_store_lock): descriptors of PATH.lock and of the
 * database file, -1 when not held. */
struct mqp_state_lock {
	int lock_fd;
	int db_fd;
};

/* One agent per state, whatever name it goes by (README "Running it"):
 * takes an exclusive flock on db_path + ".lock" (beside the real file when
 * db_path is a symbolic link; created when missing), then on the database
 * file itself (created empty when missing, as SQLite would), which a hard
 * link shares. Each is tried again every 50 ms for up to wait_ms while
 * another holds it (a SIGKILLed predecessor may take a moment to die); then
 * the caller's pid is written into the lock file. The kernel drops both
 * locks when the process ends, however it ends, so a left-over file never
 * blocks. Returns 0 with *lock held (release it with mqp_store_unlock, only
 * after mqp_store_close), MQP_ERR_BUSY when another process still holds
 * either (logged as state_locked, with that process's pid when the lock
 * file names it), MQP_ERR_IO (logged) when a file cannot be created or
 * locked, MQP_ERR_INVAL for an over-long path; on error *lock is {-1, -1}. */
int mqp_store_lock(const char *db_path, int wait_ms, struct mqp_state_lock *lock);
/* Releases what mqp_store_lock took (nothing when {-1, -1}) and resets *lock.
 * Call it after mqp_store_close: closing a descriptor of the database file
 * drops SQLite's POSIX locks on it. */
void mqp_store_unlock(struct mqp_state_lock *lock);

/* Free pages a new state keeps for reuse before giving any back: 1 MiB at
 * SQLite's 4 KiB pages, or a quarter of the file when that is more. */
#define MQP_STORE_KEEP_FREE_PAGES 256

/* Free pages mqp_store_reclaim would give back to the file system now: 0
 * for a file made without incremental vacuum (before mqpipe set it), whose
 * free pages are only reused. Never fails (a failed read counts as 0). */
int64_t mqp_store_reclaimable(struct mqp_store *store);

/* Gives back up to max_pages free pages past the reserve by moving pages
 * from the end of the file into free ones (SQLite's incremental vacuum): a
 * bounded piece of work, inside the open transaction or as its own. Returns
 * the pages given back, or MQP_ERR_DB (logged). */
int mqp_store_reclaim(struct mqp_store *store, int max_pages);

/* The connection, for an agent's own prepared statements. */
sqlite3 *mqp_store_db(struct mqp_store *store);

/* Transactions and per-message savepoints. Return 0 or MQP_ERR_DB (logged). */
int mqp_store_begin(struct mqp_store *store);
int mqp_store_commit(struct mqp_store *store);
void mqp_store_rollback(struct mqp_store *store);
int mqp_store_savepoint(struct mqp_store *store);
int mqp_store_release(struct mqp_store *store);
void mqp_store_rollback_savepoint(struct mqp_store *store);

/* One outbox row, as mqp_store_outbox_each/get hand it out (valid during the
 * callback only). correlation is NULL unless the output replies to an MQTT 5
 * request. */
struct mqp_outbox_row {
	int64_t id;
	const char *topic;
	const void *payload;
	size_t len;
	int qos, retain;
	const void *correlation;
	size_t correlation_len;
};
typedef int (*mqp_outbox_row_fn)(void *ctx, const struct mqp_outbox_row *row);

/* Adds an output event to the outbox (correlation may be NULL); *id receives
 * its row id. */
int mqp_store_outbox_add(struct mqp_store *store, const char *topic, const void *payload,
			 size_t len, int qos, int retain, const void *correlation,
			 size_t correlation_len, int64_t *id);
/* Marks an output acknowledged at acked_ms; it stays until
 * mqp_store_outbox_purge passes that time. Returns 1 when it was waiting, 0
 * when it was already acknowledged or is gone, or MQP_ERR_DB. */
int mqp_store_outbox_acked(struct mqp_store *store, int64_t id, int64_t acked_ms);
/* Deletes the outputs acknowledged before before_ms. Returns how many, or
 * MQP_ERR_DB. */
int mqp_store_outbox_purge(struct mqp_store *store, int64_t before_ms);
/* Calls fn for every output not yet acknowledged, oldest first; stops early
 * when fn returns non-zero and returns that value. */
int mqp_store_outbox_each(struct mqp_store *store, mqp_outbox_row_fn fn, void *ctx);
/* The same for the outputs acknowledged at since_ms or later (to publish
 * them again after the broker may have lost them). */
int mqp_store_outbox_acked_since(struct mqp_store *store, int64_t since_ms, mqp_outbox_row_fn fn,
				 void *ctx);
/* Calls fn for the outbox row with this id, if it is still there. Returns
 * fn's value, 0 when the row is gone, or MQP_ERR_DB. */
int mqp_store_outbox_get(struct mqp_store *store, int64_t id, mqp_outbox_row_fn fn, void *ctx);
/* Number of outputs not yet acknowledged, or a negative error. */
int64_t mqp_store_outbox_depth(struct mqp_store *store);
/* Deletes the outbox row id if it is still unacknowledged, and calls fn
 * with it as it was (the broker refused it for good: fn keeps it as a dead
 * letter, in the same transaction). Returns what fn returned, 0 when the row
 * was not there (fn not called), or MQP_ERR_DB. */
int mqp_store_outbox_take(struct mqp_store *store, int64_t id, mqp_outbox_row_fn fn, void *ctx);

/* Dead letters kept: at most max_bytes of them in all (a dead letter's size
 * is its payload, topic and reason), the oldest dropped first. The default
 * is MQP_DEADLETTER_MAX_BYTES_DEFAULT; 0 keeps none. */
void mqp_store_deadletter_bound(struct mqp_store *store, int64_t max_bytes);
/* Records a dead letter, inside the caller's transaction, then drops the
 * oldest until the kept ones fit the bound (a running total in runtime_meta:
 * usually one row goes per row added). One larger than the bound by itself
 * is not kept. Returns how many dead letters were dropped (the new one
 * included when not kept), or MQP_ERR_DB. */
int mqp_store_deadletter_add(struct mqp_store *store, const char *topic, const char *reason,
			     const void *payload, size_t len, int64_t received_ms);
/* Drops the dead letters received before before_ms. Returns how many, or
 * MQP_ERR_DB. */
int mqp_store_deadletter_expire(struct mqp_store *store, int64_t before_ms);

/* A small integer key/value table for runtime state (e.g. the last applied
 * inbox sequence). get leaves *value untouched when the key is missing. */
int mqp_store_meta_get(struct mqp_store *store, const char *key, int64_t *value);
int mqp_store_meta_set(struct mqp_store *store, const char *key, int64_t value);

/* For an agent's own statements: prepares sql[0..n) into stmts (persistent
 * statements, reused for every message). Returns 0, or MQP_ERR_DB (logged)
 * with the statements prepared so far left for mqp_store_finalize_all. */
int mqp_store_prepare_all(struct mqp_store *store, const char *const *sql, sqlite3_stmt **stmts,
			  size_t n);
/* Finalizes stmts[0..n) (NULL entries are fine). */
void mqp_store_finalize_all(sqlite3_stmt **stmts, size_t n);
/* Steps a statement that returns no rows once and resets it (its bindings
 * stay). Returns the number of rows it changed, or MQP_ERR_DB (logged). */
int mqp_store_exec(struct mqp_store *store, sqlite3_stmt *st);

/* Logs the connection's last error with `what` as context; returns MQP_ERR_DB. */
int mqp_store_fail(struct mqp_store *store, const char *what);

/* An agent state's prepared queries: stmt[i] is sql[i] prepared on store.
 * The agent's state struct begins with one, allocated by mqp_queries_new. */
struct mqp_queries {
	struct mqp_store *store;
	const char *const *sql;
	size_t n;
	sqlite3_stmt **stmt;
};

/* Allocates a zeroed block of size bytes (at least sizeof(struct
 * mqp_queries)) that begins with a struct mqp_queries, and prepares
 * sql[0..n) on store (which must outlive it) into it. Returns the block (free
 * with mqp_queries_free), or NULL with *rc set to MQP_ERR_NOMEM or
 * MQP_ERR_DB (logged); *rc is 0 on success. */
void *mqp_queries_new(struct mqp_store *store, const char *const *sql, size_t n, size_t size,
		      int *rc);
/* Finalizes the statements and frees the block q begins; NULL is a no-op. */
void mqp_queries_free(struct mqp_queries *q);
/* mqp_store_exec of stmt[which]: rows changed, or MQP_ERR_DB (logged). */
int mqp_queries_exec(struct mqp_queries *q, size_t which);
/* mqp_store_fail naming sql[which]; returns MQP_ERR_DB. */
int mqp_queries_fail(struct mqp_queries *q, size_t which);

#endif
