/* The worker's SQLite state: see worker_state.h. */
#include <stdlib.h>
#include <string.h>

#include "mqpipe/error.h"
#include "worker_state.h"

const struct mqp_migration worker_state_migrations[] = {
	{"CREATE TABLE work_case(seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL,"
	 " case_id TEXT NOT NULL, request TEXT NOT NULL, work_ms INTEGER NOT NULL,"
	 " started_ms INTEGER, due_ms INTEGER, UNIQUE(request_id, case_id));"
	 "CREATE INDEX work_case_due ON work_case(due_ms) WHERE due_ms IS NOT NULL;"},
};
const size_t worker_state_n_migrations =
	sizeof(worker_state_migrations) / sizeof(worker_state_migrations[0]);

enum worker_state__stmt {
	WS_ADD,
	WS_COUNTS,
	WS_QUEUED,
	WS_START,
	WS_DUE,
	WS_DONE,
	WS_NEXT_DUE,
	WS__COUNT
};

static const char *const worker_state__sql[WS__COUNT] = {
	/* A redelivered request still waiting or running is the same case. */
	[WS_ADD] = "INSERT OR IGNORE INTO work_case(request_id, case_id, request, work_ms)"
		   " VALUES (?1, ?2, ?3, ?4)",
	[WS_COUNTS] = "SELECT count(due_ms), count(*) - count(due_ms) FROM work_case",
	[WS_QUEUED] = "SELECT seq, work_ms FROM work_case WHERE due_ms IS NULL ORDER BY seq LIMIT ?1",
	[WS_START] = "UPDATE work_case SET started_ms = ?2, due_ms = ?2 + work_ms WHERE seq = ?1",
	[WS_DUE] = "SELECT seq, request, started_ms FROM work_case"
		   " WHERE due_ms IS NOT NULL AND due_ms <= ?1 ORDER BY due_ms LIMIT ?2",
	[WS_DONE] = "DELETE FROM work_case WHERE seq = ?1",
	[WS_NEXT_DUE] = "SELECT min(due_ms) FROM work_case WHERE due_ms IS NOT NULL",
};

struct worker_state {
	struct mqp_queries q; /* first: the block mqp_queries_new allocates */
};

int worker_state_open(struct mqp_store *store, struct worker_state **out)
{
	int rc;
	*out = mqp_queries_new(store, worker_state__sql, WS__COUNT, sizeof(**out), &rc);
	return rc;
}

void worker_state_close(struct worker_state *s)
{
	mqp_queries_free(s ? &s->q : NULL);
}

int worker_state_counts(struct worker_state *s, int64_t *running, int64_t *queued)
{
	sqlite3_stmt *st = s->q.stmt[WS_COUNTS];
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return mqp_queries_fail(&s->q, WS_COUNTS);
	}
	*running = sqlite3_column_int64(st, 0);
	*queued = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return MQP_OK;
}

int worker_state_add(struct worker_state *s, const struct work_case *c, const void *request,
		     size_t len, unsigned work_ms)
{
	sqlite3_stmt *st = s->q.stmt[WS_ADD];
	sqlite3_bind_text(st, 1, c->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, c->case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, request, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, work_ms);
	return mqp_store_exec(s->q.store, st);
}

/* The rows are read before they are changed (worker_state_start): SQLite
 * leaves a scan of rows being updated undefined. */
int worker_state_queued(struct worker_state *s, int64_t limit, int64_t *seqs, int *n)
{
	sqlite3_stmt *q = s->q.stmt[WS_QUEUED];
	int step;
	*n = 0;
	sqlite3_bind_int64(q, 1, limit);
	while ((step = sqlite3_step(q)) == SQLITE_ROW)
		seqs[(*n)++] = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	if (step != SQLITE_DONE)
		return mqp_queries_fail(&s->q, WS_QUEUED);
	return MQP_OK;
}

int worker_state_start(struct worker_state *s, int64_t seq, int64_t now_ms)
{
	sqlite3_stmt *st = s->q.stmt[WS_START];
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = mqp_store_exec(s->q.store, st);
	return rc < 0 ? rc : MQP_OK;
}

int worker_state_due(struct worker_state *s, int64_t now_ms, int limit,
		     struct worker_state_due *due, int *n)
{
	sqlite3_stmt *st = s->q.stmt[WS_DUE];
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int(st, 2, limit);
	int step, rc = MQP_OK;
	*n = 0;
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct worker_state_due *d = &due[(*n)++];
		d->seq = sqlite3_column_int64(st, 0);
		d->started_ms = sqlite3_column_int64(st, 2);
		d->len = (size_t)sqlite3_column_bytes(st, 1);
		if (!(d->request = malloc(d->len + 1)))
			rc = MQP_ERR_NOMEM;
		else
			memcpy(d->request, sqlite3_column_blob(st, 1), d->len);
	}
	sqlite3_reset(st);
	if (!rc && step != SQLITE_DONE)
		rc = mqp_queries_fail(&s->q, WS_DUE);
	return rc;
}

void worker_state_due_free(struct worker_state_due *due, int n)
{
	for (int i = 0; i < n; i++)
		free(due[i].request);
}

int worker_state_done(struct worker_state *s, int64_t seq)
{
	sqlite3_stmt *st = s->q.stmt[WS_DONE];
	sqlite3_bind_int64(st, 1, seq);
	int rc = mqp_store_exec(s->q.store, st);
	return rc < 0 ? rc : MQP_OK;
}

int worker_state_next_due(struct worker_state *s, int64_t *due_ms)
{
	sqlite3_stmt *st = s->q.stmt[WS_NEXT_DUE];
	int step = sqlite3_step(st);
	*due_ms = 0;
	if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*due_ms = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (step != SQLITE_ROW)
		return mqp_queries_fail(&s->q, WS_NEXT_DUE);
	return MQP_OK;
}
