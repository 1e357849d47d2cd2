/* The aggregator agent: job.accepted, compute.done and aggregate.trigger in;
 * job.summary and dashboard.ready out. The rules (modes, schedule, rendering)
 * are pure functions in aggregator_logic.c, the checkpoints in SQLite in
 * aggregator_state.c; this file wires them to the messages and the tick.
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
#include "aggregator_state.h"

#define AGGREGATOR__RETAIN_DEFAULT_S (24 * 3600)
#define AGGREGATOR__SENDS_PER_TICK 16  /* results rendered per transaction at most */
#define AGGREGATOR__PURGE_BATCH 16     /* finished requests forgotten per purge */
#define AGGREGATOR__PURGE_EVERY_MS 1000

static const char *const aggregator__subscriptions[] = {"job.accepted", "compute.done",
							 "aggregate.trigger", NULL};

struct aggregator {
	struct aggregator_state *db;
	struct fanin_timing timing;
	int64_t retain_ms;      /* --retain-jobs */
	int64_t next_purge_ms;
};

static int aggregator__init(void *state, struct mqp_store *store)
{
	struct aggregator *a = state;
	return aggregator_state_open(store, &a->db);
}

static void aggregator__fini(void *state)
{
	struct aggregator *a = state;
	aggregator_state_close(a->db);
	free(a);
}

/* Stores *j (not done) with its due time recomputed. */
static int aggregator__put(struct aggregator *a, const struct aggregator_job *j)
{
	return aggregator_state_put(a->db, j, fanin_due(&a->timing, &j->state));
}

static int aggregator__accepted(struct aggregator *a, struct mqp_ctx *ctx,
				const struct mqp_message *msg, struct mqp_reason *why)
{
	struct jobs_accepted acc;
	struct aggregator_job j;
	int rc = jobs_parse_accepted(msg->payload, msg->len, &acc, why);
	if (rc || (rc = mqp_ctx_check_owner(ctx, "requestId", acc.request_id, why)) ||
	    (rc = aggregator_state_get(a->db, acc.request_id, &j)))
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

static int aggregator__input(struct aggregator *a, struct mqp_ctx *ctx,
			     const struct mqp_message *msg, struct mqp_reason *why)
{
	struct fanin_input in;
	struct aggregator_job j;
	int rc = fanin_parse_input(msg->payload, msg->len, &in, why);
	if (rc)
		return rc;
	if ((rc = mqp_ctx_check_owner(ctx, "requestId", in.ids.request_id, why)) ||
	    (rc = aggregator_state_get(a->db, in.ids.request_id, &j)) || j.done) {
		fanin_input_free(&in); /* a late duplicate of a finished request: nothing to do */
		return rc;
	}
	rc = aggregator_state_add_input(a->db, &in, msg->received_ms);
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

static int aggregator__trigger(struct aggregator *a, struct mqp_ctx *ctx,
			       const struct mqp_message *msg, struct mqp_reason *why)
{
	char request_id[JOBS_ID_MAX + 1];
	struct aggregator_job j;
	int rc = fanin_parse_trigger(msg->payload, msg->len, request_id, why);
	if (rc || (rc = mqp_ctx_check_owner(ctx, "requestId", request_id, why)) ||
	    (rc = aggregator_state_get(a->db, request_id, &j)) || j.done || j.state.trigger_ms)
		return rc; /* a repeated trigger keeps the first one's time */
	j.state.trigger_ms = msg->received_ms;
	return aggregator__put(a, &j);
}

static int aggregator__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			      struct mqp_reason *why)
{
	struct aggregator *a = state;
	if (strcmp(msg->topic, "compute.done") == 0)
		return aggregator__input(a, ctx, msg, why);
	if (strcmp(msg->topic, "job.accepted") == 0)
		return aggregator__accepted(a, ctx, msg, why);
	if (strcmp(msg->topic, "aggregate.trigger") == 0)
		return aggregator__trigger(a, ctx, msg, why);
	return mqp_reason_set(why, "topic '%s' is not one the aggregator reads", msg->topic);
}

/* What aggregator__send gathers of a request's inputs. */
struct aggregator__gather {
	bool dashboard;
	struct fanin_text text;
	/* A dashboard has six inputs; keep their texts for fanin_dashboard. */
	char *ids[JOBS_SOURCES * 2], *results[JOBS_SOURCES * 2];
	size_t n;
};

/* Adds one input to the summary, or keeps its texts for the dashboard
 * (aggregator_state_each_input). Returns 0 or MQP_ERR_NOMEM. */
static int aggregator__gather(void *arg, const char *id, uint64_t processing_ms,
			      const char *result)
{
	struct aggregator__gather *g = arg;
	if (!g->dashboard) {
		fanin_summary_add(&g->text, id, processing_ms, result);
	} else if (g->n < JOBS_SOURCES * 2) {
		g->ids[g->n] = strdup(id);
		g->results[g->n] = strdup(result);
		if (!g->ids[g->n++] || !g->results[g->n - 1])
			return MQP_ERR_NOMEM;
	}
	return MQP_OK;
}

/* Renders the request's result from its checkpointed inputs and queues it. */
static int aggregator__send(struct aggregator *a, struct mqp_ctx *ctx,
			    const struct aggregator_job *j, int64_t now_ms)
{
	struct aggregator__gather g = {.dashboard = strcmp(j->kind, "dashboard") == 0};
	bool dashboard = g.dashboard;
	uint64_t pre = fanin_pre_resolved(&a->timing, &j->state);
	int64_t e2e = now_ms - j->state.accepted_ms;
	if (!dashboard)
		fanin_summary_begin(&g.text, j->request_id, j->state.target);
	int rc = aggregator_state_each_input(a->db, j->request_id, aggregator__gather, &g);
	char *payload = NULL;
	if (!rc && dashboard) {
		payload = fanin_dashboard(j->request_id, j->dashboard_type, j->time_range,
					  (const char *const *)g.ids, (const char *const *)g.results,
					  g.n, a->timing.mode, pre, e2e);
		rc = payload ? MQP_OK : MQP_ERR_NOMEM;
	} else if (!rc) {
		fanin_summary_end(&g.text, a->timing.mode, pre, e2e);
		rc = g.text.failed ? MQP_ERR_NOMEM : MQP_OK;
	}
	if (!rc)
		rc = dashboard ? mqp_emit_raw(ctx, "dashboard.ready", payload, strlen(payload))
			       : mqp_emit_raw(ctx, "job.summary", g.text.s, g.text.len);
	free(payload);
	fanin_text_free(&g.text);
	for (size_t i = 0; i < g.n; i++) {
		free(g.ids[i]);
		free(g.results[i]);
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
	return aggregator_state_mark_done(a->db, j->request_id, now_ms);
}

/* Forgets requests whose job.accepted never came (their inputs or trigger
 * arrived, the acceptance did not) once they are older than --retain-jobs:
 * without it they would stay for ever. Each is logged with what it held.
 * Returns 0 or MQP_ERR_DB. */
static int aggregator__purge_orphans(struct aggregator *a, int64_t now_ms)
{
	char ids[AGGREGATOR__PURGE_BATCH][JOBS_ID_MAX + 1];
	int64_t inputs[AGGREGATOR__PURGE_BATCH];
	int n;
	int rc = aggregator_state_orphans(a->db, now_ms - a->retain_ms, AGGREGATOR__PURGE_BATCH, ids,
					  inputs, &n);
	if (rc)
		return rc;
	for (int i = 0; i < n && !rc; i++) {
		rc = aggregator_state_forget(a->db, ids[i]);
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
		char request_id[JOBS_ID_MAX + 1];
		struct aggregator_job j;
		int due = aggregator_state_first_due(a->db, now_ms, request_id);
		if (due == 0)
			break;
		if (due < 0)
			rc = due;
		else if (!(rc = aggregator_state_get(a->db, request_id, &j)))
			rc = aggregator__send(a, ctx, &j, now_ms);
	}
	if (!rc && now_ms >= a->next_purge_ms) {
		a->next_purge_ms = now_ms + AGGREGATOR__PURGE_EVERY_MS;
		rc = aggregator_state_purge(a->db, now_ms - a->retain_ms, AGGREGATOR__PURGE_BATCH);
		if (rc == AGGREGATOR__PURGE_BATCH) /* more to forget: soon */
			a->next_purge_ms = now_ms;
		rc = rc < 0 ? rc : aggregator__purge_orphans(a, now_ms);
	}
	int64_t due = 0;
	if (!rc)
		rc = aggregator_state_next_due(a->db, &due);
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
		.sharded = 1,
		.migrations = aggregator_state_migrations,
		.n_migrations = aggregator_state_n_migrations,
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
