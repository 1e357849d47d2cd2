/* The dispatcher's SQLite state: see dispatcher_state.h. */
#include <stdio.h>
#include <stdlib.h>

#include "dispatcher_state.h"
#include "mqpipe/error.h"

const struct mqp_migration dispatcher_state_migrations[] = {
	{"CREATE TABLE job(request_id TEXT PRIMARY KEY, kind TEXT NOT NULL, digest INTEGER NOT NULL,"
	 " cases INTEGER NOT NULL, accepted_ms INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0)"
	 " WITHOUT ROWID;"
	 "CREATE INDEX job_unsent ON job(accepted_ms) WHERE sent < cases;"
	 "CREATE TABLE job_case(request_id TEXT NOT NULL, idx INTEGER NOT NULL,"
	 " request TEXT NOT NULL, PRIMARY KEY(request_id, idx)) WITHOUT ROWID;"},
	/* When a job's last case went into the outbox: --retain-jobs counts from
	 * there (README "What each agent keeps"). Jobs sent before this version
	 * count from their acceptance. */
	{"ALTER TABLE job ADD COLUMN done_ms INTEGER;"
	 "UPDATE job SET done_ms = accepted_ms WHERE sent >= cases;"
	 "CREATE INDEX job_done ON job(done_ms) WHERE done_ms IS NOT NULL;"},
};
const size_t dispatcher_state_n_migrations =
	sizeof(dispatcher_state_migrations) / sizeof(dispatcher_state_migrations[0]);

enum dispatcher_state__stmt {
	DS_JOB_DIGEST,
	DS_JOB_ADD,
	DS_CASE_ADD,
	DS_NEXT_UNSENT,
	DS_CASES_FROM,
	DS_JOB_SENT,
	DS_CASES_DROP,
	DS_PURGE,
	DS__COUNT
};

static const char *const dispatcher_state__sql[DS__COUNT] = {
	[DS_JOB_DIGEST] = "SELECT digest FROM job WHERE request_id = ?1",
	/* A job of no cases is done when accepted: nothing will move its cursor. */
	[DS_JOB_ADD] = "INSERT INTO job(request_id, kind, digest, cases, accepted_ms, done_ms)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?4 = 0 THEN ?5 END)",
	[DS_CASE_ADD] = "INSERT INTO job_case(request_id, idx, request) VALUES (?1, ?2, ?3)",
	[DS_NEXT_UNSENT] = "SELECT request_id, sent, cases FROM job WHERE sent < cases"
			   " ORDER BY accepted_ms LIMIT 1",
	[DS_CASES_FROM] = "SELECT request FROM job_case WHERE request_id = ?1 AND idx >= ?2"
			  " ORDER BY idx LIMIT ?3",
	/* done_ms is set once, when the cursor reaches the end (?3: now). */
	[DS_JOB_SENT] = "UPDATE job SET sent = ?2,"
			" done_ms = CASE WHEN ?2 >= cases THEN ?3 END WHERE request_id = ?1",
	/* Once every case is in the outbox, the outbox is their durable copy. */
	[DS_CASES_DROP] = "DELETE FROM job_case WHERE request_id = ?1",
	/* Sent jobs have no cases left: the job row is all there is to forget. */
	[DS_PURGE] = "DELETE FROM job WHERE request_id IN (SELECT request_id FROM job"
		     " WHERE done_ms < ?1 ORDER BY done_ms LIMIT ?2)",
};

struct dispatcher_state {
	struct mqp_queries q; /* first: the block mqp_queries_new allocates */
};

int dispatcher_state_open(struct mqp_store *store, struct dispatcher_state **out)
{
	int rc;
	*out = mqp_queries_new(store, dispatcher_state__sql, DS__COUNT, sizeof(**out), &rc);
	return rc;
}

void dispatcher_state_close(struct dispatcher_state *s)
{
	mqp_queries_free(s ? &s->q : NULL);
}

/* Steps a write statement once. Returns 0 or MQP_ERR_DB. */
static int dispatcher_state__exec(struct dispatcher_state *s, enum dispatcher_state__stmt which)
{
	int rc = mqp_queries_exec(&s->q, which);
	return rc < 0 ? rc : MQP_OK;
}

int dispatcher_state_digest(struct dispatcher_state *s, const char *request_id, uint64_t *digest)
{
	sqlite3_stmt *st = s->q.stmt[DS_JOB_DIGEST];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	*digest = step == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (step == SQLITE_ROW)
		return 1;
	if (step != SQLITE_DONE)
		return mqp_queries_fail(&s->q, DS_JOB_DIGEST);
	return 0;
}

int dispatcher_state_add_job(struct dispatcher_state *s, const struct dispatch_job *job,
			     int64_t accepted_ms)
{
	sqlite3_stmt *st = s->q.stmt[DS_JOB_ADD];
	sqlite3_bind_text(st, 1, job->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, job->kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)job->digest);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)job->n_cases);
	sqlite3_bind_int64(st, 5, accepted_ms);
	int rc = dispatcher_state__exec(s, DS_JOB_ADD);
	st = s->q.stmt[DS_CASE_ADD];
	for (size_t i = 0; !rc && i < job->n_cases; i++) {
		sqlite3_bind_text(st, 1, job->request_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_text(st, 3, job->requests[i], -1, SQLITE_STATIC);
		rc = dispatcher_state__exec(s, DS_CASE_ADD);
	}
	return rc;
}

int dispatcher_state_next_unsent(struct dispatcher_state *s, char *request_id, int64_t *sent,
				 int64_t *cases)
{
	sqlite3_stmt *st = s->q.stmt[DS_NEXT_UNSENT];
	int step = sqlite3_step(st);
	if (step != SQLITE_ROW) {
		sqlite3_reset(st);
		return step == SQLITE_DONE
			       ? 0
			       : mqp_queries_fail(&s->q, DS_NEXT_UNSENT);
	}
	snprintf(request_id, JOBS_ID_MAX + 1, "%s", (const char *)sqlite3_column_text(st, 0));
	*sent = sqlite3_column_int64(st, 1);
	*cases = sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	return 1;
}

int dispatcher_state_each_case(struct dispatcher_state *s, const char *request_id, int64_t from,
			       int64_t limit, int (*fn)(void *arg, const char *request, size_t len),
			       void *arg, int64_t *n)
{
	sqlite3_stmt *st = s->q.stmt[DS_CASES_FROM];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, limit);
	int rc = MQP_OK, step;
	*n = 0;
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		rc = fn(arg, (const char *)sqlite3_column_text(st, 0),
			(size_t)sqlite3_column_bytes(st, 0));
		(*n)++;
	}
	sqlite3_reset(st);
	if (rc)
		return rc;
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return mqp_queries_fail(&s->q, DS_CASES_FROM);
	return MQP_OK;
}

int dispatcher_state_mark_sent(struct dispatcher_state *s, const char *request_id, int64_t sent,
			       int64_t now_ms)
{
	sqlite3_stmt *st = s->q.stmt[DS_JOB_SENT];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, sent);
	sqlite3_bind_int64(st, 3, now_ms);
	return dispatcher_state__exec(s, DS_JOB_SENT);
}

int dispatcher_state_drop_cases(struct dispatcher_state *s, const char *request_id)
{
	sqlite3_stmt *st = s->q.stmt[DS_CASES_DROP];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_TRANSIENT);
	return dispatcher_state__exec(s, DS_CASES_DROP);
}

int dispatcher_state_purge(struct dispatcher_state *s, int64_t before_ms, int batch)
{
	sqlite3_stmt *st = s->q.stmt[DS_PURGE];
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, batch);
	return mqp_queries_exec(&s->q, DS_PURGE);
}
