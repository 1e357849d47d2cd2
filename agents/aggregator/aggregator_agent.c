/* The aggregator agent: job.accepted, compute.done and aggregate.trigger in;
 * job.summary and dashboard.ready out. The rules (modes, schedule, rendering)
 * are pure functions in aggregator_logic.c; this file is the SQLite shell around them.
 *
 * Every input is checkpointed in SQLite as it arrives, in every mode, with
 * the request's state (agg_job). Whenever that state changes, the time its
 * result is due is recomputed and stored; the tick sends the results that
 * are due, in the same transaction that marks the request done and drops its
 * inputs. The start-up cost (--setup-ms) and eager polling are timers, never
 * sleeps, so many requests overlap. A crash loses nothing: the checkpoints
 * and due times are in the store, and a result sent but not acknowledged is
 * in the outbox. */
#include <stdlib.h>
#include <string.h>

#include "aggregator_agent.h"
#include "aggregator_logic.h"

#define AGGREGATOR__RETAIN_DEFAULT_S (24 * 3600)
#define AGGREGATOR__SENDS_PER_TICK 16  /* results rendered per transaction at most */
#define AGGREGATOR__PURGE_BATCH 16     /* finished requests forgotten per purge */
#define AGGREGATOR__PURGE_EVERY_MS 1000

static const char *const aggregator__subscriptions[] = {"job.accepted", "compute.done",
							 "aggregate.trigger", NULL};

static const struct mqp_migration aggregator__migrations[] = {
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

enum aggregator__stmt {
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

static const char *const aggregator__sql[AS__COUNT] = {
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

struct aggregator {
	struct mqp_store *store;
	sqlite3_stmt *stmt[AS__COUNT];
	struct fanin_timing timing;
	int64_t retain_ms;      /* --retain-jobs */
	int64_t next_purge_ms;
};

/* One request's row of agg_job. */
struct aggregator__job {
	char request_id[JOBS_ID_MAX + 1];
	char kind[JOBS_ID_MAX + 1];           /* "" until job.accepted */
	char dashboard_type[JOBS_ID_MAX + 1], time_range[JOBS_ID_MAX + 1];
	struct fanin_job state;
	bool done;
};

static int aggregator__init(void *state, struct mqp_store *store)
{
	struct aggregator *a = state;
	a->store = store;
	return mqp_store_prepare_all(store, aggregator__sql, a->stmt, AS__COUNT);
}

static void aggregator__fini(void *state)
{
	struct aggregator *a = state;
	mqp_store_finalize_all(a->stmt, AS__COUNT);
	free(a);
}

/* Copies column i (text or NULL) into out[JOBS_ID_MAX + 1]. */
static void aggregator__text(sqlite3_stmt *st, int i, char *out)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	snprintf(out, JOBS_ID_MAX + 1, "%s", s ? (const char *)s : "");
}

/* Loads the request's row into *j, or a fresh one. Returns 0 or MQP_ERR_DB. */
static int aggregator__get(struct aggregator *a, const char *request_id, struct aggregator__job *j)
{
	memset(j, 0, sizeof(*j));
	snprintf(j->request_id, sizeof(j->request_id), "%s", request_id);
	sqlite3_stmt *st = a->stmt[AS_JOB_GET];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		aggregator__text(st, 0, j->kind);
		j->state.accepted = sqlite3_column_type(st, 1) != SQLITE_NULL;
		j->state.target = (uint64_t)sqlite3_column_int64(st, 1);
		j->state.accepted_ms = sqlite3_column_int64(st, 2);
		aggregator__text(st, 3, j->dashboard_type);
		aggregator__text(st, 4, j->time_range);
		j->state.inputs = (uint64_t)sqlite3_column_int64(st, 5);
		j->state.first_ms = sqlite3_column_int64(st, 6);
		j->state.last_ms = sqlite3_column_int64(st, 7);
		j->state.trigger_ms = sqlite3_column_int64(st, 8);
		j->done = sqlite3_column_type(st, 9) != SQLITE_NULL;
	}
	sqlite3_reset(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? MQP_OK
							  : mqp_store_fail(a->store, aggregator__sql[AS_JOB_GET]);
}

/* Binds an int64 column that is NULL while 0 ("not yet"). */
static void aggregator__bind_time(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* Stores *j (not done) with its due time recomputed. */
static int aggregator__put(struct aggregator *a, const struct aggregator__job *j)
{
	sqlite3_stmt *st = a->stmt[AS_JOB_PUT];
	int64_t due = fanin_due(&a->timing, &j->state);
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
	aggregator__bind_time(st, 8, j->state.first_ms);
	aggregator__bind_time(st, 9, j->state.last_ms);
	aggregator__bind_time(st, 10, j->state.trigger_ms);
	if (due >= 0)
		sqlite3_bind_int64(st, 11, due);
	else
		sqlite3_bind_null(st, 11);
	int rc = mqp_store_exec(a->store, st);
	return rc < 0 ? rc : MQP_OK;
}

static int aggregator__accepted(struct aggregator *a, const struct mqp_message *msg,
				struct mqp_reason *why)
{
	struct jobs_accepted acc;
	struct aggregator__job j;
	int rc = jobs_parse_accepted(msg->payload, msg->len, &acc, why);
	if (rc || (rc = aggregator__get(a, acc.request_id, &j)))
		return rc;
	if (j.state.accepted) { /* a repeat: the same target changes nothing */
		if (j.state.target != acc.target)
			return mqp_reason_set(why, "job '%s' was accepted with target %llu, not %llu",
					      acc.request_id, (unsigned long long)j.state.target,
					      (unsigned long long)acc.target);
		return MQP_OK;
	}
	if (j.done) /* finished and not accepted? cannot be: ignore like a repeat */
		return MQP_OK;
	snprintf(j.kind, sizeof(j.kind), "%s", acc.kind);
	memcpy(j.dashboard_type, acc.dashboard_type, sizeof(j.dashboard_type));
	memcpy(j.time_range, acc.time_range, sizeof(j.time_range));
	j.state.accepted = true;
	j.state.target = acc.target;
	j.state.accepted_ms = (int64_t)acc.accepted_at;
	return aggregator__put(a, &j);
}

static int aggregator__input(struct aggregator *a, const struct mqp_message *msg,
			     struct mqp_reason *why)
{
	struct fanin_input in;
	struct aggregator__job j;
	int rc = fanin_parse_input(msg->payload, msg->len, &in, why);
	if (rc)
		return rc;
	if ((rc = aggregator__get(a, in.ids.request_id, &j)) || j.done) {
		fanin_input_free(&in); /* a late duplicate of a finished request: nothing to do */
		return rc;
	}
	sqlite3_stmt *st = a->stmt[AS_INPUT_ADD];
	sqlite3_bind_text(st, 1, in.ids.request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, in.ids.case_id, -1, SQLITE_STATIC);
	if (in.index >= 0)
		sqlite3_bind_int64(st, 3, in.index);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)in.processing_ms);
	sqlite3_bind_text(st, 5, in.result, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, in.worker, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, msg->received_ms);
	rc = mqp_store_exec(a->store, st);
	fanin_input_free(&in);
	if (rc <= 0) /* an error, or a duplicate: already checkpointed */
		return rc;
	if (!j.state.first_ms)
		j.state.first_ms = msg->received_ms;
	if (msg->received_ms > j.state.last_ms)
		j.state.last_ms = msg->received_ms;
	j.state.inputs++;
	return aggregator__put(a, &j);
}

static int aggregator__trigger(struct aggregator *a, const struct mqp_message *msg,
			       struct mqp_reason *why)
{
	char request_id[JOBS_ID_MAX + 1];
	struct aggregator__job j;
	int rc = fanin_parse_trigger(msg->payload, msg->len, request_id, why);
	if (rc || (rc = aggregator__get(a, request_id, &j)) || j.done || j.state.trigger_ms)
		return rc; /* a repeated trigger keeps the first one's time */
	j.state.trigger_ms = msg->received_ms;
	return aggregator__put(a, &j);
}

static int aggregator__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			      struct mqp_reason *why)
{
	(void)ctx;
	struct aggregator *a = state;
	if (strcmp(msg->topic, "compute.done") == 0)
		return aggregator__input(a, msg, why);
	if (strcmp(msg->topic, "job.accepted") == 0)
		return aggregator__accepted(a, msg, why);
	if (strcmp(msg->topic, "aggregate.trigger") == 0)
		return aggregator__trigger(a, msg, why);
	return mqp_reason_set(why, "topic '%s' is not one the aggregator reads", msg->topic);
}

/* Renders the request's result from its checkpointed inputs and queues it. */
static int aggregator__send(struct aggregator *a, struct mqp_ctx *ctx,
			    const struct aggregator__job *j, int64_t now_ms)
{
	bool dashboard = strcmp(j->kind, "dashboard") == 0;
	uint64_t pre = fanin_pre_resolved(&a->timing, &j->state);
	int64_t e2e = now_ms - j->state.accepted_ms;
	struct fanin_text text = {0};
	/* A dashboard has six inputs; keep their texts for fanin_dashboard. */
	char *ids[JOBS_SOURCES * 2] = {0}, *results[JOBS_SOURCES * 2] = {0};
	size_t n = 0;
	if (!dashboard)
		fanin_summary_begin(&text, j->request_id, j->state.target);
	sqlite3_stmt *st = a->stmt[AS_INPUTS];
	sqlite3_bind_text(st, 1, j->request_id, -1, SQLITE_STATIC);
	int step, rc = MQP_OK;
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *result = (const char *)sqlite3_column_text(st, 2);
		if (!dashboard) {
			fanin_summary_add(&text, id, (uint64_t)sqlite3_column_int64(st, 1), result);
		} else if (n < JOBS_SOURCES * 2) {
			ids[n] = strdup(id);
			results[n] = strdup(result);
			if (!ids[n++] || !results[n - 1])
				rc = MQP_ERR_NOMEM;
		}
	}
	sqlite3_reset(st);
	if (!rc && step != SQLITE_DONE)
		rc = mqp_store_fail(a->store, aggregator__sql[AS_INPUTS]);
	char *payload = NULL;
	if (!rc && dashboard) {
		payload = fanin_dashboard(j->request_id, j->dashboard_type, j->time_range,
					  (const char *const *)ids, (const char *const *)results, n,
					  a->timing.mode, pre, e2e);
		rc = payload ? MQP_OK : MQP_ERR_NOMEM;
	} else if (!rc) {
		fanin_summary_end(&text, a->timing.mode, pre, e2e);
		rc = text.failed ? MQP_ERR_NOMEM : MQP_OK;
	}
	if (!rc)
		rc = dashboard ? mqp_emit_raw(ctx, "dashboard.ready", payload, strlen(payload))
			       : mqp_emit_raw(ctx, "job.summary", text.s, text.len);
	free(payload);
	fanin_text_free(&text);
	for (size_t i = 0; i < n; i++) {
		free(ids[i]);
		free(results[i]);
	}
	if (rc)
		return rc;
	/* The seed's aggregator lines: what was merged early, then the result. */
	mqp_info("async_inputs_retrieved", "function=aggregator request_id=%s pre_resolved=%llu"
		 " total_inputs=%llu mode=%s", j->request_id, (unsigned long long)pre,
		 (unsigned long long)j->state.inputs, fanin_mode_name(a->timing.mode));
	mqp_info(dashboard ? "dashboard_ready" : "job_summary",
		 "request_id=%s cases=%llu e2e_ms=%lld last_input_to_result_ms=%lld", j->request_id,
		 (unsigned long long)j->state.target, (long long)e2e,
		 (long long)(j->state.last_ms ? now_ms - j->state.last_ms : 0));
	st = a->stmt[AS_JOB_DONE];
	sqlite3_bind_text(st, 1, j->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	if ((rc = mqp_store_exec(a->store, st)) < 0)
		return rc;
	st = a->stmt[AS_INPUTS_DROP];
	sqlite3_bind_text(st, 1, j->request_id, -1, SQLITE_STATIC);
	rc = mqp_store_exec(a->store, st);
	return rc < 0 ? rc : MQP_OK;
}

/* Steps a single-value query; *out is its integer, or `none` for NULL/no row. */
static int aggregator__scalar(struct aggregator *a, enum aggregator__stmt which, int64_t none,
			      int64_t *out)
{
	sqlite3_stmt *st = a->stmt[which];
	int step = sqlite3_step(st);
	*out = step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
		       ? sqlite3_column_int64(st, 0)
		       : none;
	sqlite3_reset(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? MQP_OK
							  : mqp_store_fail(a->store, aggregator__sql[which]);
}

/* Forgets requests whose job.accepted never came (their inputs or trigger
 * arrived, the acceptance did not) once they are older than --retain-jobs:
 * without it they would stay for ever. Each is logged with what it held.
 * Returns 0 or MQP_ERR_DB. */
static int aggregator__purge_orphans(struct aggregator *a, int64_t now_ms)
{
	char ids[AGGREGATOR__PURGE_BATCH][JOBS_ID_MAX + 1];
	int64_t inputs[AGGREGATOR__PURGE_BATCH];
	int n = 0, step;
	sqlite3_stmt *st = a->stmt[AS_ORPHANS];
	sqlite3_bind_int64(st, 1, now_ms - a->retain_ms);
	sqlite3_bind_int(st, 2, AGGREGATOR__PURGE_BATCH);
	while (n < AGGREGATOR__PURGE_BATCH && (step = sqlite3_step(st)) == SQLITE_ROW) {
		aggregator__text(st, 0, ids[n]);
		inputs[n++] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (n == 0 && step != SQLITE_DONE)
		return mqp_store_fail(a->store, aggregator__sql[AS_ORPHANS]);
	static const enum aggregator__stmt drops[] = {AS_INPUTS_DROP, AS_JOB_DROP};
	int rc = MQP_OK;
	for (int i = 0; i < n && !rc; i++) {
		for (size_t k = 0; k < MQP_LEN(drops) && !rc; k++) {
			sqlite3_bind_text(a->stmt[drops[k]], 1, ids[i], -1, SQLITE_STATIC);
			rc = mqp_store_exec(a->store, a->stmt[drops[k]]);
			rc = rc < 0 ? rc : MQP_OK;
		}
		char q[JOBS_ID_MAX * 2 + 8];
		mqp_warn("orphan_forgotten",
			 "request_id=%s inputs=%lld reason=\"no job.accepted within --retain-jobs\"",
			 mqp_log_quote(q, sizeof(q), ids[i]), (long long)inputs[i]);
	}
	if (n == AGGREGATOR__PURGE_BATCH)
		a->next_purge_ms = now_ms;
	return rc;
}

/* Sends the results that are due, forgets old finished requests now and
 * then, and asks to be called at the next due time. */
static int aggregator__tick(void *state, struct mqp_ctx *ctx, int64_t now_ms, int64_t *next_ms)
{
	struct aggregator *a = state;
	int rc = MQP_OK;
	for (int sent = 0; !rc && sent < AGGREGATOR__SENDS_PER_TICK; sent++) {
		sqlite3_stmt *st = a->stmt[AS_FIRST_DUE];
		sqlite3_bind_int64(st, 1, now_ms);
		int step = sqlite3_step(st);
		char request_id[JOBS_ID_MAX + 1];
		if (step == SQLITE_ROW)
			aggregator__text(st, 0, request_id);
		sqlite3_reset(st);
		if (step == SQLITE_DONE)
			break;
		struct aggregator__job j;
		if (step != SQLITE_ROW)
			rc = mqp_store_fail(a->store, aggregator__sql[AS_FIRST_DUE]);
		else if (!(rc = aggregator__get(a, request_id, &j)))
			rc = aggregator__send(a, ctx, &j, now_ms);
	}
	if (!rc && now_ms >= a->next_purge_ms) {
		a->next_purge_ms = now_ms + AGGREGATOR__PURGE_EVERY_MS;
		sqlite3_stmt *st = a->stmt[AS_PURGE];
		sqlite3_bind_int64(st, 1, now_ms - a->retain_ms);
		sqlite3_bind_int(st, 2, AGGREGATOR__PURGE_BATCH);
		rc = mqp_store_exec(a->store, st);
		if (rc == AGGREGATOR__PURGE_BATCH) /* more to forget: soon */
			a->next_purge_ms = now_ms;
		rc = rc < 0 ? rc : aggregator__purge_orphans(a, now_ms);
	}
	int64_t due = 0;
	if (!rc)
		rc = aggregator__scalar(a, AS_NEXT_DUE, 0, &due);
	*next_ms = due && due < a->next_purge_ms ? due : a->next_purge_ms;
	return rc;
}

/* ---- flags --------------------------------------------------------------- */

static int aggregator__mode_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	struct aggregator *a = ctx;
	if (fanin_mode_parse(arg, &a->timing.mode)) {
		snprintf(err, errlen, "'%s': expected classic, eager or future", arg);
		return -1;
	}
	return 0;
}

/* --setup-ms and --poll-ms: whole ms up to an hour. */
static int aggregator__ms(const char *arg, int64_t *out, char *err, size_t errlen)
{
	long v;
	if (mqp_parse_long(arg, 0, 3600000, &v)) {
		snprintf(err, errlen, "'%s': whole ms from 0 to 3600000", arg);
		return -1;
	}
	*out = v;
	return 0;
}

static int aggregator__setup_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return aggregator__ms(arg, &((struct aggregator *)ctx)->timing.setup_ms, err, errlen);
}

static int aggregator__poll_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return aggregator__ms(arg, &((struct aggregator *)ctx)->timing.poll_ms, err, errlen);
}

static int aggregator__retain_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_duration_arg(arg, &((struct aggregator *)ctx)->retain_ms, err, errlen);
}

static const struct mqp_extra_option aggregator__options[] = {
	{"mode", 1, "MODE", "fan-in mode: classic, eager or future (default future)",
	 aggregator__mode_option, 0},
	{"setup-ms", 1, "N", "start-up cost per request, ms (default 0)", aggregator__setup_option, 0},
	{"poll-ms", 1, "N", "eager mode's polling period, ms (default 100)", aggregator__poll_option, 0},
	{"retain-jobs", 1, "DURATION", "remember finished requests this long (default 24h)",
	 aggregator__retain_option, 0},
};

int aggregator_agent(struct mqp_agent *agent)
{
	struct aggregator *a = calloc(1, sizeof(*a));
	if (!a)
		return MQP_ERR_NOMEM;
	a->timing.mode = FANIN_FUTURE;
	a->timing.poll_ms = 100;
	a->retain_ms = AGGREGATOR__RETAIN_DEFAULT_S * 1000LL;
	*agent = (struct mqp_agent){
		.name = "aggregator",
		.subscriptions = aggregator__subscriptions,
		.migrations = aggregator__migrations,
		.n_migrations = MQP_LEN(aggregator__migrations),
		.options = aggregator__options,
		.n_options = MQP_LEN(aggregator__options),
		.options_ctx = a,
		.init = aggregator__init,
		.fini = aggregator__fini,
		.handle = aggregator__handle,
		.tick = aggregator__tick,
		.state = a,
	};
	return MQP_OK;
}
