/* The aggregator's SQLite state: see aggregator_state.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator_state.h"
#include "mqpipe/error.h"

const struct mqp_migration aggregator_state_migrations[] = {
	{"CREATE TABLE agg_job(request_id TEXT PRIMARY KEY, kind TEXT, target INTEGER,"
	 " accepted_ms INTEGER, dashboard_type TEXT, time_range TEXT,"
	 " inputs INTEGER NOT NULL DEFAULT 0, first_ms INTEGER, last_ms INTEGER,"
	 " trigger_ms INTEGER, due_ms INTEGER, done_ms INTEGER) WITHOUT ROWID;"
	 "CREATE INDEX agg_job_due ON agg_job(due_ms) WHERE done_ms IS NULL AND due_ms IS NOT NULL;"
	 "CREATE INDEX agg_job_done ON agg_job(done_ms) WHERE done_ms IS NOT NULL;"
	 "CREATE TABLE agg_input(request_id TEXT NOT NULL, case_id TEXT NOT NULL, idx INTEGER,"
	 " processing_ms INTEGER NOT NULL, result TEXT NOT NULL, worker TEXT,"
	 " arrived_ms INTEGER NOT NULL, PRIMARY KEY(request_id, case_id)) WITHOUT ROWID;"},
};
const size_t aggregator_state_n_migrations =
	sizeof(aggregator_state_migrations) / sizeof(aggregator_state_migrations[0]);

enum aggregator_state__stmt {
	AS_JOB_GET,
	AS_JOB_PUT,
	AS_INPUT_ADD,
	AS_NEXT_DUE,
	AS_FIRST_DUE,
	AS_INPUTS,
	AS_JOB_DONE,
	AS_INPUTS_DROP,
	AS_PURGE,
	AS_ORPHANS,
	AS_JOB_DROP,
	AS__COUNT
};

static const char *const aggregator_state__sql[AS__COUNT] = {
	[AS_JOB_GET] = "SELECT kind, target, accepted_ms, dashboard_type, time_range, inputs,"
		       " first_ms, last_ms, trigger_ms, done_ms FROM agg_job WHERE request_id = ?1",
	[AS_JOB_PUT] = "INSERT OR REPLACE INTO agg_job(request_id, kind, target, accepted_ms,"
		       " dashboard_type, time_range, inputs, first_ms, last_ms, trigger_ms, due_ms)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[AS_INPUT_ADD] = "INSERT OR IGNORE INTO agg_input(request_id, case_id, idx, processing_ms,"
			 " result, worker, arrived_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[AS_NEXT_DUE] = "SELECT min(due_ms) FROM agg_job WHERE done_ms IS NULL AND due_ms IS NOT NULL",
	[AS_FIRST_DUE] = "SELECT request_id FROM agg_job WHERE done_ms IS NULL AND due_ms IS NOT NULL"
			 " AND due_ms <= ?1 ORDER BY due_ms LIMIT 1",
	/* Submission order; inputs without an index (foreign workers) by arrival. */
	[AS_INPUTS] = "SELECT case_id, processing_ms, result FROM agg_input WHERE request_id = ?1"
		      " ORDER BY idx IS NULL, idx, arrived_ms",
	[AS_JOB_DONE] = "UPDATE agg_job SET done_ms = ?2, due_ms = NULL WHERE request_id = ?1",
	[AS_INPUTS_DROP] = "DELETE FROM agg_input WHERE request_id = ?1",
	[AS_PURGE] = "DELETE FROM agg_job WHERE request_id IN (SELECT request_id FROM agg_job"
		     " WHERE done_ms IS NOT NULL AND done_ms < ?1 LIMIT ?2)",
	/* Inputs or triggers whose job.accepted never came. */
	[AS_ORPHANS] = "SELECT request_id, inputs FROM agg_job WHERE target IS NULL AND done_ms IS NULL"
		       " AND coalesce(first_ms, trigger_ms) < ?1 LIMIT ?2",
	[AS_JOB_DROP] = "DELETE FROM agg_job WHERE request_id = ?1",
};

struct aggregator_state {
	struct mqp_queries q; /* first: the block mqp_queries_new allocates */
};

int aggregator_state_open(struct mqp_store *store, struct aggregator_state **out)
{
	int rc;
	*out = mqp_queries_new(store, aggregator_state__sql, AS__COUNT, sizeof(**out), &rc);
	return rc;
}

void aggregator_state_close(struct aggregator_state *s)
{
	mqp_queries_free(s ? &s->q : NULL);
}

/* Steps a write statement once. Returns 0 or MQP_ERR_DB. */
static int aggregator_state__exec(struct aggregator_state *s, enum aggregator_state__stmt which)
{
	int rc = mqp_queries_exec(&s->q, which);
	return rc < 0 ? rc : MQP_OK;
}

/* Copies column i (text or NULL) into out[JOBS_ID_MAX + 1]. */
static void aggregator_state__text(sqlite3_stmt *st, int i, char *out)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	snprintf(out, JOBS_ID_MAX + 1, "%s", s ? (const char *)s : "");
}

int aggregator_state_get(struct aggregator_state *s, const char *request_id,
			 struct aggregator_job *j)
{
	memset(j, 0, sizeof(*j));
	snprintf(j->request_id, sizeof(j->request_id), "%s", request_id);
	sqlite3_stmt *st = s->q.stmt[AS_JOB_GET];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		aggregator_state__text(st, 0, j->kind);
		j->state.accepted = sqlite3_column_type(st, 1) != SQLITE_NULL;
		j->state.target = (uint64_t)sqlite3_column_int64(st, 1);
		j->state.accepted_ms = sqlite3_column_int64(st, 2);
		aggregator_state__text(st, 3, j->dashboard_type);
		aggregator_state__text(st, 4, j->time_range);
		j->state.inputs = (uint64_t)sqlite3_column_int64(st, 5);
		j->state.first_ms = sqlite3_column_int64(st, 6);
		j->state.last_ms = sqlite3_column_int64(st, 7);
		j->state.trigger_ms = sqlite3_column_int64(st, 8);
		j->done = sqlite3_column_type(st, 9) != SQLITE_NULL;
	}
	sqlite3_reset(st);
	return step == SQLITE_ROW || step == SQLITE_DONE
		       ? MQP_OK
		       : mqp_queries_fail(&s->q, AS_JOB_GET);
}

/* Binds an int64 column that is NULL while 0 ("not yet"). */
static void aggregator_state__bind_time(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

int aggregator_state_put(struct aggregator_state *s, const struct aggregator_job *j,
			 int64_t due_ms)
{
	sqlite3_stmt *st = s->q.stmt[AS_JOB_PUT];
	sqlite3_bind_text(st, 1, j->request_id, -1, SQLITE_STATIC);
	if (j->kind[0]) {
		sqlite3_bind_text(st, 2, j->kind, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)j->state.target);
		sqlite3_bind_int64(st, 4, j->state.accepted_ms);
		sqlite3_bind_text(st, 5, j->dashboard_type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, j->time_range, -1, SQLITE_STATIC);
	} else {
		for (int i = 2; i <= 6; i++)
			sqlite3_bind_null(st, i);
	}
	sqlite3_bind_int64(st, 7, (sqlite3_int64)j->state.inputs);
	aggregator_state__bind_time(st, 8, j->state.first_ms);
	aggregator_state__bind_time(st, 9, j->state.last_ms);
	aggregator_state__bind_time(st, 10, j->state.trigger_ms);
	if (due_ms >= 0)
		sqlite3_bind_int64(st, 11, due_ms);
	else
		sqlite3_bind_null(st, 11);
	return aggregator_state__exec(s, AS_JOB_PUT);
}

int aggregator_state_add_input(struct aggregator_state *s, const struct fanin_input *in,
			       int64_t arrived_ms)
{
	sqlite3_stmt *st = s->q.stmt[AS_INPUT_ADD];
	sqlite3_bind_text(st, 1, in->ids.request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, in->ids.case_id, -1, SQLITE_STATIC);
	if (in->index >= 0)
		sqlite3_bind_int64(st, 3, in->index);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)in->processing_ms);
	sqlite3_bind_text(st, 5, in->result, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, in->worker, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, arrived_ms);
	return mqp_store_exec(s->q.store, st);
}

int aggregator_state_each_input(struct aggregator_state *s, const char *request_id,
				int (*fn)(void *arg, const char *case_id, uint64_t processing_ms,
					  const char *result),
				void *arg)
{
	sqlite3_stmt *st = s->q.stmt[AS_INPUTS];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	int step, rc = MQP_OK;
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
		rc = fn(arg, (const char *)sqlite3_column_text(st, 0),
			(uint64_t)sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2));
	sqlite3_reset(st);
	if (!rc && step != SQLITE_DONE)
		rc = mqp_queries_fail(&s->q, AS_INPUTS);
	return rc;
}

int aggregator_state_mark_done(struct aggregator_state *s, const char *request_id,
			       int64_t now_ms)
{
	sqlite3_stmt *st = s->q.stmt[AS_JOB_DONE];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = aggregator_state__exec(s, AS_JOB_DONE);
	if (rc)
		return rc;
	sqlite3_bind_text(s->q.stmt[AS_INPUTS_DROP], 1, request_id, -1, SQLITE_STATIC);
	return aggregator_state__exec(s, AS_INPUTS_DROP);
}

int aggregator_state_purge(struct aggregator_state *s, int64_t before_ms, int batch)
{
	sqlite3_stmt *st = s->q.stmt[AS_PURGE];
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, batch);
	return mqp_store_exec(s->q.store, st);
}

int aggregator_state_orphans(struct aggregator_state *s, int64_t before_ms, int batch,
			     char (*ids)[JOBS_ID_MAX + 1], int64_t *inputs, int *n)
{
	sqlite3_stmt *st = s->q.stmt[AS_ORPHANS];
	int step = SQLITE_DONE;
	*n = 0;
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, batch);
	while (*n < batch && (step = sqlite3_step(st)) == SQLITE_ROW) {
		aggregator_state__text(st, 0, ids[*n]);
		inputs[(*n)++] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (*n == 0 && step != SQLITE_DONE)
		return mqp_queries_fail(&s->q, AS_ORPHANS);
	return MQP_OK;
}

int aggregator_state_forget(struct aggregator_state *s, const char *request_id)
{
	static const enum aggregator_state__stmt drops[] = {AS_INPUTS_DROP, AS_JOB_DROP};
	int rc = MQP_OK;
	for (size_t k = 0; k < sizeof(drops) / sizeof(drops[0]) && !rc; k++) {
		sqlite3_bind_text(s->q.stmt[drops[k]], 1, request_id, -1, SQLITE_STATIC);
		rc = aggregator_state__exec(s, drops[k]);
	}
	return rc;
}

int aggregator_state_first_due(struct aggregator_state *s, int64_t now_ms, char *request_id)
{
	sqlite3_stmt *st = s->q.stmt[AS_FIRST_DUE];
	sqlite3_bind_int64(st, 1, now_ms);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		aggregator_state__text(st, 0, request_id);
	sqlite3_reset(st);
	if (step == SQLITE_DONE)
		return 0;
	return step == SQLITE_ROW ? 1 : mqp_queries_fail(&s->q, AS_FIRST_DUE);
}

int aggregator_state_next_due(struct aggregator_state *s, int64_t *due_ms)
{
	sqlite3_stmt *st = s->q.stmt[AS_NEXT_DUE];
	int step = sqlite3_step(st);
	*due_ms = step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
			  ? sqlite3_column_int64(st, 0)
			  : 0;
	sqlite3_reset(st);
	return step == SQLITE_ROW || step == SQLITE_DONE
		       ? MQP_OK
		       : mqp_queries_fail(&s->q, AS_NEXT_DUE);
}
