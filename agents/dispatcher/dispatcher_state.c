/* The dispatcher's SQLite state: see dispatcher_state.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	/* Each case sent and not done yet, with its rendered compute.request
	 * for a resend (README "Case deadlines"): attempt is how many times it
	 * was sent, span_ms its deadline's length. Cases sent before this
	 * version have no deadline. */
	{"CREATE TABLE sent_case(request_id TEXT NOT NULL, case_id TEXT NOT NULL,"
	 " idx INTEGER NOT NULL, attempt INTEGER NOT NULL, span_ms INTEGER NOT NULL,"
	 " deadline_ms INTEGER NOT NULL, request TEXT NOT NULL, PRIMARY KEY(request_id, case_id));"
	 "CREATE INDEX sent_case_deadline ON sent_case(deadline_ms);"},
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
	DS_SENT_ADD,
	DS_SENT_DONE,
	DS_SENT_DUE,
	DS_SENT_RETRY,
	DS_SENT_NEXT,
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
	/* OR IGNORE: a case is sent once per job (caseIds are unique). */
	[DS_SENT_ADD] = "INSERT OR IGNORE INTO sent_case(request_id, case_id, idx, attempt, span_ms,"
			" deadline_ms, request) VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6)",
	[DS_SENT_DONE] = "DELETE FROM sent_case WHERE request_id = ?1 AND case_id = ?2",
	[DS_SENT_DUE] = "SELECT request_id, case_id, idx, attempt, span_ms, request FROM sent_case"
			" WHERE deadline_ms <= ?1 ORDER BY deadline_ms LIMIT ?2",
	[DS_SENT_RETRY] = "UPDATE sent_case SET attempt = attempt + 1, deadline_ms = ?3"
			  " WHERE request_id = ?1 AND case_id = ?2",
	[DS_SENT_NEXT] = "SELECT min(deadline_ms) FROM sent_case",
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

int dispatcher_state_add_sent(struct dispatcher_state *s, const struct dispatch_sent *c,
			      int64_t span_ms, int64_t deadline_ms, const char *request, size_t len)
{
	sqlite3_stmt *st = s->q.stmt[DS_SENT_ADD];
	sqlite3_bind_text(st, 1, c->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, c->case_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, c->index);
	sqlite3_bind_int64(st, 4, span_ms);
	sqlite3_bind_int64(st, 5, deadline_ms);
	sqlite3_bind_text(st, 6, request, (int)len, SQLITE_STATIC);
	return dispatcher_state__exec(s, DS_SENT_ADD);
}

int dispatcher_state_case_done(struct dispatcher_state *s, const char *request_id,
			       const char *case_id)
{
	sqlite3_stmt *st = s->q.stmt[DS_SENT_DONE];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, case_id, -1, SQLITE_STATIC);
	return mqp_queries_exec(&s->q, DS_SENT_DONE);
}

void dispatcher_state_free_due(struct dispatcher_due *due, size_t n)
{
	for (size_t i = 0; due && i < n; i++)
		free(due[i].request);
	free(due);
}

int dispatcher_state_due(struct dispatcher_state *s, int64_t now_ms, int limit,
			 struct dispatcher_due **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct dispatcher_due *due = calloc((size_t)(limit > 0 ? limit : 1), sizeof(*due));
	if (!due)
		return MQP_ERR_NOMEM;
	sqlite3_stmt *st = s->q.stmt[DS_SENT_DUE];
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int(st, 2, limit);
	int rc = MQP_OK, step;
	size_t k = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct dispatcher_due *d = &due[k];
		snprintf(d->c.request_id, sizeof(d->c.request_id), "%s",
			 (const char *)sqlite3_column_text(st, 0));
		snprintf(d->c.case_id, sizeof(d->c.case_id), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		d->c.index = sqlite3_column_int64(st, 2);
		d->attempt = sqlite3_column_int64(st, 3);
		d->span_ms = sqlite3_column_int64(st, 4);
		d->len = (size_t)sqlite3_column_bytes(st, 5);
		const unsigned char *text = sqlite3_column_text(st, 5);
		if (!text || !(d->request = malloc(d->len + 1))) {
			rc = MQP_ERR_NOMEM;
			break;
		}
		memcpy(d->request, text, d->len + 1);
		k++;
	}
	sqlite3_reset(st);
	if (!rc && step != SQLITE_DONE)
		rc = mqp_queries_fail(&s->q, DS_SENT_DUE);
	if (rc) {
		dispatcher_state_free_due(due, k);
		return rc;
	}
	*out = due;
	*n = k;
	return MQP_OK;
}

int dispatcher_state_retry(struct dispatcher_state *s, const char *request_id, const char *case_id,
			   int64_t deadline_ms)
{
	sqlite3_stmt *st = s->q.stmt[DS_SENT_RETRY];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, case_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, deadline_ms);
	return dispatcher_state__exec(s, DS_SENT_RETRY);
}

int dispatcher_state_next_deadline(struct dispatcher_state *s, int64_t *deadline_ms)
{
	sqlite3_stmt *st = s->q.stmt[DS_SENT_NEXT];
	int step = sqlite3_step(st), has = 0;
	if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*deadline_ms = sqlite3_column_int64(st, 0);
		has = 1;
	}
	sqlite3_reset(st);
	if (step != SQLITE_ROW)
		return mqp_queries_fail(&s->q, DS_SENT_NEXT);
	return has;
}
