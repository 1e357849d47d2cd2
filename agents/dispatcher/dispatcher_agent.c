/* The dispatcher agent: job.submit and dashboard.request in; job.accepted,
 * then one compute.request per case, out. The rules are pure functions in
 * dispatcher_logic.c; this file is the SQLite shell around them.
 *
 * A job's cases are stored with their rendered compute.request when it is
 * accepted, in the same transaction as its job.accepted. The tick then moves
 * them into the outbox in batches, keeping at most DISPATCHER__WINDOW outputs
 * unacknowledged, with the job's `sent` cursor committed together with the
 * outbox rows: a crash midway resumes at the cursor, and the outbox resends
 * what the broker had not acknowledged. Memory stays bounded however large
 * the job, and job.accepted always leaves before its first compute.request. */
#include <stdlib.h>
#include <string.h>

#include "dispatcher_logic.h"
#include "dispatcher_agent.h"

#define DISPATCHER__WINDOW 10000 /* unacknowledged outputs at most */
#define DISPATCHER__BATCH 1000   /* compute.requests per transaction */

static const char *const dispatcher__subscriptions[] = {"job.submit", "dashboard.request", NULL};

static const struct mqp_migration dispatcher__migrations[] = {
	{"CREATE TABLE job(request_id TEXT PRIMARY KEY, kind TEXT NOT NULL, digest INTEGER NOT NULL,"
	 " cases INTEGER NOT NULL, accepted_ms INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0)"
	 " WITHOUT ROWID;"
	 "CREATE INDEX job_unsent ON job(accepted_ms) WHERE sent < cases;"
	 "CREATE TABLE job_case(request_id TEXT NOT NULL, idx INTEGER NOT NULL,"
	 " request TEXT NOT NULL, PRIMARY KEY(request_id, idx)) WITHOUT ROWID;"},
};

enum dispatcher__stmt {
	DS_JOB_DIGEST,
	DS_JOB_ADD,
	DS_CASE_ADD,
	DS_NEXT_UNSENT,
	DS_CASES_FROM,
	DS_JOB_SENT,
	DS_CASES_DROP,
	DS__COUNT
};

static const char *const dispatcher__sql[DS__COUNT] = {
	[DS_JOB_DIGEST] = "SELECT digest FROM job WHERE request_id = ?1",
	[DS_JOB_ADD] = "INSERT INTO job(request_id, kind, digest, cases, accepted_ms)"
		       " VALUES (?1, ?2, ?3, ?4, ?5)",
	[DS_CASE_ADD] = "INSERT INTO job_case(request_id, idx, request) VALUES (?1, ?2, ?3)",
	[DS_NEXT_UNSENT] = "SELECT request_id, sent, cases FROM job WHERE sent < cases"
			   " ORDER BY accepted_ms LIMIT 1",
	[DS_CASES_FROM] = "SELECT request FROM job_case WHERE request_id = ?1 AND idx >= ?2"
			  " ORDER BY idx LIMIT ?3",
	[DS_JOB_SENT] = "UPDATE job SET sent = ?2 WHERE request_id = ?1",
	/* Once every case is in the outbox, the outbox is their durable copy. */
	[DS_CASES_DROP] = "DELETE FROM job_case WHERE request_id = ?1",
};

struct dispatcher {
	struct mqp_store *store;
	sqlite3_stmt *stmt[DS__COUNT];
};

static int dispatcher__init(void *state, struct mqp_store *store)
{
	struct dispatcher *d = state;
	d->store = store;
	return mqp_store_prepare_all(store, dispatcher__sql, d->stmt, DS__COUNT);
}

static void dispatcher__fini(void *state)
{
	struct dispatcher *d = state;
	mqp_store_finalize_all(d->stmt, DS__COUNT);
	free(d);
}

/* Steps a write statement once. Returns 0 or MQP_ERR_DB. */
static int dispatcher__exec(struct dispatcher *d, enum dispatcher__stmt which)
{
	int rc = mqp_store_exec(d->store, d->stmt[which]);
	return rc < 0 ? rc : MQP_OK;
}

/* Stores an accepted job and its cases and publishes job.accepted; a repeat
 * of an accepted requestId is ignored when its content is the same. */
static int dispatcher__accept(struct dispatcher *d, struct mqp_ctx *ctx,
			      const struct mqp_message *msg, struct dispatch_job *job,
			      struct mqp_reason *why)
{
	sqlite3_stmt *st = d->stmt[DS_JOB_DIGEST];
	sqlite3_bind_text(st, 1, job->request_id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	int64_t digest = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (step == SQLITE_ROW) {
		if ((uint64_t)digest == job->digest)
			return MQP_OK; /* the same job again: already dispatched */
		return mqp_reason_set(why, "requestId '%s' was accepted before with other content",
				      job->request_id);
	}
	if (step != SQLITE_DONE)
		return mqp_store_fail(d->store, dispatcher__sql[DS_JOB_DIGEST]);

	st = d->stmt[DS_JOB_ADD];
	sqlite3_bind_text(st, 1, job->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, job->kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)job->digest);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)job->n_cases);
	sqlite3_bind_int64(st, 5, msg->received_ms);
	int rc = dispatcher__exec(d, DS_JOB_ADD);
	st = d->stmt[DS_CASE_ADD];
	for (size_t i = 0; !rc && i < job->n_cases; i++) {
		sqlite3_bind_text(st, 1, job->request_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_text(st, 3, job->requests[i], -1, SQLITE_STATIC);
		rc = dispatcher__exec(d, DS_CASE_ADD);
	}
	if (rc)
		return rc;
	cJSON *ev = dispatch_accepted_event(job, (uint64_t)msg->received_ms);
	if (!ev)
		return MQP_ERR_NOMEM;
	rc = mqp_emit(ctx, "job.accepted", ev);
	cJSON_Delete(ev);
	return rc;
}

static int dispatcher__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			      struct mqp_reason *why)
{
	struct dispatcher *d = state;
	struct dispatch_job job;
	int rc;
	if (strcmp(msg->topic, "job.submit") == 0)
		rc = dispatch_parse_submit(msg->payload, msg->len, &job, why);
	else if (strcmp(msg->topic, "dashboard.request") == 0)
		rc = dispatch_parse_dashboard(msg->payload, msg->len, &job, why);
	else
		return mqp_reason_set(why, "topic '%s' is not one the dispatcher reads", msg->topic);
	if (rc)
		return rc;
	rc = dispatcher__accept(d, ctx, msg, &job, why);
	dispatch_job_free(&job);
	return rc;
}

/* Moves the next cases of the oldest unfinished job into the outbox, as far
 * as the window allows. */
static int dispatcher__tick(void *state, struct mqp_ctx *ctx, int64_t now_ms, int64_t *next_ms)
{
	struct dispatcher *d = state;
	int64_t room = DISPATCHER__WINDOW - mqp_ctx_unacked(ctx);
	sqlite3_stmt *st = d->stmt[DS_NEXT_UNSENT];
	int step = sqlite3_step(st);
	if (step != SQLITE_ROW) {
		sqlite3_reset(st);
		*next_ms = 0; /* nothing to send until the next job */
		return step == SQLITE_DONE ? MQP_OK
					   : mqp_store_fail(d->store, dispatcher__sql[DS_NEXT_UNSENT]);
	}
	if (room <= 0) { /* acknowledgements wake us too; this is a backstop */
		sqlite3_reset(st);
		*next_ms = now_ms + 5;
		return MQP_OK;
	}
	char request_id[JOBS_ID_MAX + 1];
	snprintf(request_id, sizeof(request_id), "%s", (const char *)sqlite3_column_text(st, 0));
	int64_t sent = sqlite3_column_int64(st, 1), cases = sqlite3_column_int64(st, 2);
	sqlite3_reset(st);

	int64_t budget = room < DISPATCHER__BATCH ? room : DISPATCHER__BATCH;
	st = d->stmt[DS_CASES_FROM];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, sent);
	sqlite3_bind_int64(st, 3, budget);
	int rc = MQP_OK;
	int64_t k = 0;
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		rc = mqp_emit_raw(ctx, "compute.request", (const char *)sqlite3_column_text(st, 0),
				  (size_t)sqlite3_column_bytes(st, 0));
		k++;
	}
	sqlite3_reset(st);
	if (rc)
		return rc;
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return mqp_store_fail(d->store, dispatcher__sql[DS_CASES_FROM]);
	st = d->stmt[DS_JOB_SENT];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, sent + k);
	if ((rc = dispatcher__exec(d, DS_JOB_SENT)))
		return rc;
	if (sent + k >= cases) {
		st = d->stmt[DS_CASES_DROP];
		sqlite3_bind_text(st, 1, request_id, -1, SQLITE_TRANSIENT);
		if ((rc = dispatcher__exec(d, DS_CASES_DROP)))
			return rc;
	}
	*next_ms = now_ms; /* more of this job, or another one, may be waiting */
	return MQP_OK;
}

int dispatcher_agent(struct mqp_agent *agent)
{
	struct dispatcher *d = calloc(1, sizeof(*d));
	if (!d)
		return MQP_ERR_NOMEM;
	*agent = (struct mqp_agent){
		.name = "dispatcher",
		.subscriptions = dispatcher__subscriptions,
		.migrations = dispatcher__migrations,
		.n_migrations = MQP_LEN(dispatcher__migrations),
		.init = dispatcher__init,
		.fini = dispatcher__fini,
		.handle = dispatcher__handle,
		.tick = dispatcher__tick,
		.state = d,
		/* A job of JOBS_CASES_MAX cases (README "Fan-out") is several MB of JSON. */
		.max_payload = 16L << 20,
	};
	return MQP_OK;
}
