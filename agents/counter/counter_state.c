/* The counter's SQLite state: see counter_state.h. */
#include <stdio.h>
#include <stdlib.h>

#include "counter_state.h"
#include "mqpipe/error.h"

/* Natural keys make every insert idempotent under QoS 1 redelivery. */
const struct mqp_migration counter_state_migrations[] = {
	{"CREATE TABLE recv_message(module TEXT NOT NULL, ts INTEGER NOT NULL,"
	 " PRIMARY KEY(module, ts)) WITHOUT ROWID;"
	 "CREATE TABLE weekly_diagnostic(module TEXT NOT NULL, ts INTEGER NOT NULL,"
	 " attempts INTEGER NOT NULL, received INTEGER NOT NULL,"
	 " PRIMARY KEY(module, ts)) WITHOUT ROWID;"},
	/* A job row appears with its first event, whichever it is; target stays
	 * NULL until job.accepted. triggered_ms marks the one aggregate.trigger. */
	{"CREATE TABLE job(request_id TEXT PRIMARY KEY, target INTEGER, kind TEXT,"
	 " accepted_at INTEGER, completed INTEGER NOT NULL DEFAULT 0,"
	 " first_seen_ms INTEGER NOT NULL, triggered_ms INTEGER) WITHOUT ROWID;"
	 "CREATE INDEX job_triggered ON job(triggered_ms) WHERE triggered_ms IS NOT NULL;"
	 "CREATE TABLE job_case(request_id TEXT NOT NULL, case_id TEXT NOT NULL,"
	 " PRIMARY KEY(request_id, case_id)) WITHOUT ROWID;"},
	/* Sealed windows (README "Sealed windows"): a diagnostic's interval is
	 * sealed --dedup-horizon after applied_ms, and its messages are moved
	 * into folded (NULL while open), a bounded batch at a time while it waits
	 * in fold_pending. Diagnostics stored before this had no arrival time:
	 * they count as applied now, so no window closes earlier than it would
	 * have for a diagnostic that came at the upgrade. */
	{"ALTER TABLE weekly_diagnostic ADD COLUMN applied_ms INTEGER NOT NULL DEFAULT 0;"
	 "ALTER TABLE weekly_diagnostic ADD COLUMN folded INTEGER;"
	 "UPDATE weekly_diagnostic SET applied_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000;"
	 "CREATE INDEX weekly_diagnostic_open ON weekly_diagnostic(applied_ms)"
	 " WHERE folded IS NULL;"
	 "CREATE TABLE fold_pending(module TEXT NOT NULL, ts INTEGER NOT NULL,"
	 " PRIMARY KEY(module, ts)) WITHOUT ROWID;"},
};
const size_t counter_state_n_migrations =
	sizeof(counter_state_migrations) / sizeof(counter_state_migrations[0]);

enum counter_state__stmt {
	CS_RECV_ADD,
	CS_DIAG_ADD,
	CS_DIAG_EARLIER,
	CS_RECV_COUNT,
	CS_COVER,
	CS_SEAL_QUEUE,
	CS_SEAL_MARK,
	CS_FOLD_NEXT,
	CS_FOLD_PREVIOUS,
	CS_FOLD_MOVE,
	CS_FOLD_ADD,
	CS_FOLD_DONE,
	CS_JOB_ENSURE,
	CS_JOB_GET,
	CS_JOB_ACCEPT,
	CS_CASE_ADD,
	CS_JOB_COMPLETED,
	CS_JOB_TRIGGERED,
	CS_PURGE_CASES,
	CS_PURGE_JOBS,
	CS__COUNT
};

static const char *const counter_state__sql[CS__COUNT] = {
	[CS_RECV_ADD] = "INSERT OR IGNORE INTO recv_message(module, ts) VALUES (?1, ?2)",
	/* received is kept beside the diagnostic so a published figure can be audited. */
	[CS_DIAG_ADD] = "INSERT OR IGNORE INTO weekly_diagnostic(module, ts, attempts, received,"
			" applied_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
	[CS_DIAG_EARLIER] = "SELECT ts, attempts, coalesce(folded, 0) FROM weekly_diagnostic"
			    " WHERE module = ?1 AND ts < ?2 ORDER BY ts DESC",
	[CS_RECV_COUNT] = "SELECT count(*) FROM recv_message WHERE module = ?1 AND ts > ?2"
			  " AND ts <= ?3",
	[CS_COVER] = "SELECT ts, folded IS NOT NULL FROM weekly_diagnostic"
		     " WHERE module = ?1 AND ts >= ?2 ORDER BY ts LIMIT 1",
	/* Sealing queues the due diagnostics, then marks them folded = 0 (the
	 * pending ones from earlier ticks are folded already: not NULL). */
	[CS_SEAL_QUEUE] = "INSERT OR IGNORE INTO fold_pending(module, ts) SELECT module, ts"
			  " FROM weekly_diagnostic WHERE folded IS NULL AND applied_ms <= ?1"
			  " ORDER BY applied_ms LIMIT ?2",
	[CS_SEAL_MARK] = "UPDATE weekly_diagnostic SET folded = 0 WHERE folded IS NULL"
			 " AND (module, ts) IN (SELECT module, ts FROM fold_pending)",
	[CS_FOLD_NEXT] = "SELECT module, ts FROM fold_pending LIMIT 1",
	[CS_FOLD_PREVIOUS] = "SELECT coalesce(max(ts), -1) FROM weekly_diagnostic"
			     " WHERE module = ?1 AND ts < ?2",
	[CS_FOLD_MOVE] = "DELETE FROM recv_message WHERE module = ?1 AND ts IN (SELECT ts"
			 " FROM recv_message WHERE module = ?1 AND ts > ?2 AND ts <= ?3"
			 " ORDER BY ts LIMIT ?4)",
	[CS_FOLD_ADD] = "UPDATE weekly_diagnostic SET folded = folded + ?3"
			" WHERE module = ?1 AND ts = ?2",
	[CS_FOLD_DONE] = "DELETE FROM fold_pending WHERE module = ?1 AND ts = ?2",
	[CS_JOB_ENSURE] = "INSERT OR IGNORE INTO job(request_id, first_seen_ms) VALUES (?1, ?2)",
	[CS_JOB_GET] = "SELECT target, completed, triggered_ms FROM job WHERE request_id = ?1",
	[CS_JOB_ACCEPT] = "UPDATE job SET target = ?2, kind = ?3, accepted_at = ?4"
			  " WHERE request_id = ?1 AND target IS NULL",
	[CS_CASE_ADD] = "INSERT OR IGNORE INTO job_case(request_id, case_id) VALUES (?1, ?2)",
	[CS_JOB_COMPLETED] = "UPDATE job SET completed = completed + 1 WHERE request_id = ?1",
	[CS_JOB_TRIGGERED] = "UPDATE job SET triggered_ms = ?2 WHERE request_id = ?1",
	/* The same oldest finished jobs in both: cases first, then the jobs. */
	[CS_PURGE_CASES] = "DELETE FROM job_case WHERE request_id IN (SELECT request_id FROM job"
			   " WHERE triggered_ms < ?1 ORDER BY triggered_ms LIMIT ?2)",
	[CS_PURGE_JOBS] = "DELETE FROM job WHERE request_id IN (SELECT request_id FROM job"
			  " WHERE triggered_ms < ?1 ORDER BY triggered_ms LIMIT ?2)",
};

struct counter_state {
	struct mqp_queries q; /* first: the block mqp_queries_new allocates */
};

int counter_state_open(struct mqp_store *store, struct counter_state **out)
{
	int rc;
	*out = mqp_queries_new(store, counter_state__sql, CS__COUNT, sizeof(**out), &rc);
	return rc;
}

void counter_state_close(struct counter_state *s)
{
	mqp_queries_free(s ? &s->q : NULL);
}

int counter_state_add_recv(struct counter_state *s, const struct sr_recv *r)
{
	sqlite3_stmt *st = s->q.stmt[CS_RECV_ADD];
	sqlite3_bind_text(st, 1, r->module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)r->timestamp);
	return mqp_queries_exec(&s->q, CS_RECV_ADD);
}

int64_t counter_state_received(struct counter_state *s, const struct sr_diag *d)
{
	struct sr_window w;
	sr_window_init(&w, d->attempts);
	sqlite3_stmt *st = s->q.stmt[CS_DIAG_EARLIER];
	sqlite3_bind_text(st, 1, d->module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)d->timestamp);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sr_window_step(&w, (uint64_t)sqlite3_column_int64(st, 0),
				   (uint64_t)sqlite3_column_int64(st, 1),
				   (uint64_t)sqlite3_column_int64(st, 2)))
			break;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return mqp_queries_fail(&s->q, CS_DIAG_EARLIER);

	st = s->q.stmt[CS_RECV_COUNT];
	sqlite3_bind_text(st, 1, d->module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, w.found ? (sqlite3_int64)w.after_timestamp : -1);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)d->timestamp);
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	return n < 0 ? mqp_queries_fail(&s->q, CS_RECV_COUNT) : n + (int64_t)w.folded;
}

int counter_state_cover(struct counter_state *s, const char *module, uint64_t timestamp,
			struct sr_cover *out)
{
	sqlite3_stmt *st = s->q.stmt[CS_COVER];
	sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)timestamp);
	int rc = sqlite3_step(st);
	out->found = rc == SQLITE_ROW;
	out->timestamp = out->found ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	out->sealed = out->found && sqlite3_column_int(st, 1);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? MQP_OK : mqp_queries_fail(&s->q, CS_COVER);
}

int counter_state_add_diag(struct counter_state *s, const struct sr_diag *d, int64_t received,
			   int64_t applied_ms)
{
	sqlite3_stmt *st = s->q.stmt[CS_DIAG_ADD];
	sqlite3_bind_text(st, 1, d->module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)d->timestamp);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)d->attempts);
	sqlite3_bind_int64(st, 4, received);
	sqlite3_bind_int64(st, 5, applied_ms);
	return mqp_queries_exec(&s->q, CS_DIAG_ADD);
}

int counter_state_seal(struct counter_state *s, int64_t applied_before_ms, int batch)
{
	sqlite3_stmt *st = s->q.stmt[CS_SEAL_QUEUE];
	sqlite3_bind_int64(st, 1, applied_before_ms);
	sqlite3_bind_int(st, 2, batch);
	int n = mqp_queries_exec(&s->q, CS_SEAL_QUEUE);
	if (n <= 0)
		return n;
	int rc = mqp_queries_exec(&s->q, CS_SEAL_MARK);
	return rc < 0 ? rc : n;
}

/* Moves up to budget messages of one pending diagnostic's interval into its
 * count. Returns the messages moved (fewer than budget: the interval is empty
 * now and the diagnostic leaves fold_pending), or MQP_ERR_DB. */
static int counter_state__fold_one(struct counter_state *s, const char *module, int64_t ts,
				   int budget)
{
	sqlite3_stmt *st = s->q.stmt[CS_FOLD_PREVIOUS];
	sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, ts);
	int64_t previous = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -2;
	sqlite3_reset(st);
	if (previous == -2)
		return mqp_queries_fail(&s->q, CS_FOLD_PREVIOUS);

	st = s->q.stmt[CS_FOLD_MOVE];
	sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, previous);
	sqlite3_bind_int64(st, 3, ts);
	sqlite3_bind_int(st, 4, budget);
	int moved = mqp_queries_exec(&s->q, CS_FOLD_MOVE);
	if (moved < 0)
		return moved;
	int rc = MQP_OK;
	if (moved > 0) {
		st = s->q.stmt[CS_FOLD_ADD];
		sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, ts);
		sqlite3_bind_int(st, 3, moved);
		rc = mqp_queries_exec(&s->q, CS_FOLD_ADD);
	}
	if (rc >= 0 && moved < budget) {
		st = s->q.stmt[CS_FOLD_DONE];
		sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, ts);
		rc = mqp_queries_exec(&s->q, CS_FOLD_DONE);
	}
	return rc < 0 ? rc : moved;
}

int counter_state_fold(struct counter_state *s, int budget)
{
	char module[SR_MODULE_MAX + 1];
	while (budget > 0) {
		sqlite3_stmt *st = s->q.stmt[CS_FOLD_NEXT];
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(st);
			return 0; /* nothing pending */
		}
		if (rc != SQLITE_ROW) {
			sqlite3_reset(st);
			return mqp_queries_fail(&s->q, CS_FOLD_NEXT);
		}
		/* Copied out: the statement is reset before the moves change the table. */
		snprintf(module, sizeof(module), "%s", (const char *)sqlite3_column_text(st, 0));
		int64_t ts = sqlite3_column_int64(st, 1);
		sqlite3_reset(st);
		int moved = counter_state__fold_one(s, module, ts, budget);
		if (moved < 0)
			return moved;
		budget -= moved > 0 ? moved : 1; /* an empty interval costs a little too */
	}
	return 1;
}

int counter_state_job(struct counter_state *s, const char *request_id, int64_t now_ms,
		      struct jobs_state *out)
{
	sqlite3_stmt *st = s->q.stmt[CS_JOB_ENSURE];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = mqp_queries_exec(&s->q, CS_JOB_ENSURE);
	if (rc < 0)
		return rc;
	st = s->q.stmt[CS_JOB_GET];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return mqp_queries_fail(&s->q, CS_JOB_GET);
	}
	out->accepted = sqlite3_column_type(st, 0) != SQLITE_NULL;
	out->target = (uint64_t)sqlite3_column_int64(st, 0);
	out->completed = (uint64_t)sqlite3_column_int64(st, 1);
	out->triggered = sqlite3_column_type(st, 2) != SQLITE_NULL;
	sqlite3_reset(st);
	return MQP_OK;
}

int counter_state_accept(struct counter_state *s, const struct jobs_accepted *a)
{
	sqlite3_stmt *st = s->q.stmt[CS_JOB_ACCEPT];
	sqlite3_bind_text(st, 1, a->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->target);
	sqlite3_bind_text(st, 3, a->kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)a->accepted_at);
	int rc = mqp_queries_exec(&s->q, CS_JOB_ACCEPT);
	return rc < 0 ? rc : MQP_OK;
}

int counter_state_add_case(struct counter_state *s, const char *request_id, const char *case_id)
{
	sqlite3_stmt *st = s->q.stmt[CS_CASE_ADD];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, case_id, -1, SQLITE_STATIC);
	int rc = mqp_queries_exec(&s->q, CS_CASE_ADD);
	if (rc <= 0)
		return rc; /* 0: this case was counted already */
	st = s->q.stmt[CS_JOB_COMPLETED];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	rc = mqp_queries_exec(&s->q, CS_JOB_COMPLETED);
	return rc < 0 ? rc : 1;
}

int counter_state_mark_triggered(struct counter_state *s, const char *request_id, int64_t now_ms)
{
	sqlite3_stmt *st = s->q.stmt[CS_JOB_TRIGGERED];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = mqp_queries_exec(&s->q, CS_JOB_TRIGGERED);
	return rc < 0 ? rc : MQP_OK;
}

int counter_state_purge(struct counter_state *s, int64_t before_ms, int batch)
{
	for (int which = CS_PURGE_CASES; which <= CS_PURGE_JOBS; which++) {
		sqlite3_stmt *st = s->q.stmt[which];
		sqlite3_bind_int64(st, 1, before_ms);
		sqlite3_bind_int(st, 2, batch);
		int rc = mqp_queries_exec(&s->q, (size_t)which);
		if (rc < 0)
			return rc;
	}
	return MQP_OK;
}
