/* The counter's SQLite state: see counter_state.h. */
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
	/* Jobs never accepted (compute.done alone), found by age to be forgotten. */
	{"CREATE INDEX job_unaccepted ON job(first_seen_ms) WHERE target IS NULL;"},
};
const size_t counter_state_n_migrations =
	sizeof(counter_state_migrations) / sizeof(counter_state_migrations[0]);

enum counter_state__stmt {
	CS_RECV_ADD,
	CS_DIAG_ADD,
	CS_DIAG_EARLIER,
	CS_RECV_COUNT,
	CS_JOB_ENSURE,
	CS_JOB_GET,
	CS_JOB_ACCEPT,
	CS_CASE_ADD,
	CS_JOB_COMPLETED,
	CS_JOB_TRIGGERED,
	CS_PURGE_CASES,
	CS_PURGE_JOBS,
	CS_ORPHAN_CASES,
	CS_ORPHAN_JOBS,
	CS__COUNT
};

static const char *const counter_state__sql[CS__COUNT] = {
	[CS_RECV_ADD] = "INSERT OR IGNORE INTO recv_message(module, ts) VALUES (?1, ?2)",
	/* received is kept beside the diagnostic so a published figure can be audited. */
	[CS_DIAG_ADD] = "INSERT OR IGNORE INTO weekly_diagnostic(module, ts, attempts, received)"
			" VALUES (?1, ?2, ?3, ?4)",
	[CS_DIAG_EARLIER] = "SELECT ts, attempts FROM weekly_diagnostic"
			    " WHERE module = ?1 AND ts < ?2 ORDER BY ts DESC",
	[CS_RECV_COUNT] = "SELECT count(*) FROM recv_message WHERE module = ?1 AND ts > ?2"
			  " AND ts <= ?3",
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
	/* Likewise the oldest jobs first seen before ?1 and never accepted. */
	[CS_ORPHAN_CASES] = "DELETE FROM job_case WHERE request_id IN (SELECT request_id FROM job"
			    " WHERE target IS NULL AND first_seen_ms < ?1 ORDER BY first_seen_ms LIMIT ?2)",
	[CS_ORPHAN_JOBS] = "DELETE FROM job WHERE request_id IN (SELECT request_id FROM job"
			   " WHERE target IS NULL AND first_seen_ms < ?1 ORDER BY first_seen_ms LIMIT ?2)",
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
				   (uint64_t)sqlite3_column_int64(st, 1)))
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
	return n < 0 ? mqp_queries_fail(&s->q, CS_RECV_COUNT) : n;
}

int counter_state_add_diag(struct counter_state *s, const struct sr_diag *d, int64_t received)
{
	sqlite3_stmt *st = s->q.stmt[CS_DIAG_ADD];
	sqlite3_bind_text(st, 1, d->module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)d->timestamp);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)d->attempts);
	sqlite3_bind_int64(st, 4, received);
	return mqp_queries_exec(&s->q, CS_DIAG_ADD);
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

int counter_state_purge_orphans(struct counter_state *s, int64_t before_ms, int batch)
{
	int rc = MQP_OK;
	for (int which = CS_ORPHAN_CASES; which <= CS_ORPHAN_JOBS && rc >= 0; which++) {
		sqlite3_stmt *st = s->q.stmt[which];
		sqlite3_bind_int64(st, 1, before_ms);
		sqlite3_bind_int(st, 2, batch);
		rc = mqp_queries_exec(&s->q, (size_t)which);
	}
	return rc; /* the jobs deleted, or MQP_ERR_DB */
}
