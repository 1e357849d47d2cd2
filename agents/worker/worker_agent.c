/* The worker agent: compute.request in (on $share/workers, so each case goes
 * to one worker), compute.done out. The rules are pure functions in
 * worker_logic.c, the queue in SQLite in worker_state.c; this file wires them
 * to the messages and the timers.
 *
 * Simulated work never sleeps: a case that takes time is queued in SQLite,
 * started by the tick while fewer than --concurrency cases run, and finished
 * by the tick once its due time has come, its compute.done written to the
 * outbox in the same transaction that deletes it. So a crash loses no case: a
 * restart finishes the running ones at their due time and starts the rest. A
 * case with no work and nothing queued before it is answered at once. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker_agent.h"
#include "worker_logic.h"
#include "worker_state.h"

#define WORKER__FINISH_BATCH 1000 /* cases finished per tick at most */

static const char *const worker__subscriptions[] = {"$share/workers/compute.request", NULL};

struct worker {
	struct worker_state *db;
	struct work_profile profile;
	long concurrency;     /* --concurrency */
	int64_t running;      /* cases started and not finished */
	int64_t queued;       /* cases waiting for a slot */
	uint64_t rng;
	int64_t session_expiry_ms; /* --session-expiry */
};

/* The default --session-expiry: a minute (README "Case deadlines"). */
#define WORKER__SESSION_EXPIRY_MS (60 * 1000)

static int worker__init(void *state, struct mqp_store *store)
{
	struct worker *w = state;
	int rc = worker_state_open(store, &w->db);
	if (rc || (rc = worker_state_counts(w->db, &w->running, &w->queued)))
		return rc;
	if (w->running || w->queued)
		mqp_info("resuming", "running=%lld queued=%lld", (long long)w->running,
			 (long long)w->queued);
	return MQP_OK;
}

static void worker__fini(void *state)
{
	struct worker *w = state;
	worker_state_close(w->db);
	free(w);
}

/* Queues a case's compute.done on the topic of the shard that owns its job
 * (README "Scaling out"). Returns 0 or a negative error. */
static int worker__emit_done(struct mqp_ctx *ctx, const struct work_case *c, const char *payload)
{
	char topic[300];
	int rc = mqp_ctx_shard_topic(ctx, "compute.done", c->request_id, topic, sizeof(topic));
	return rc ? rc : mqp_emit_raw(ctx, topic, payload, strlen(payload));
}

/* Makes the case's result and queues its compute.done. */
static int worker__finish(struct worker *w, struct mqp_ctx *ctx, const struct work_case *c,
			  int64_t processing_ms)
{
	cJSON *result = work_result(c, &w->rng);
	char *payload = result ? work_done_payload(c, (uint64_t)processing_ms, result,
						   mqp_ctx_client_id(ctx))
			       : NULL;
	cJSON_Delete(result);
	if (!payload)
		return MQP_ERR_NOMEM;
	int rc = worker__emit_done(ctx, c, payload);
	free(payload);
	/* The seed's per-function line; a job's cases only at debug (there may be 100 000). */
	mqp_log(c->source >= 0 ? MQP_LOG_INFO : MQP_LOG_DEBUG, "function_complete",
		"function=%s request_id=%s case_id=%s latency_ms=%lld status=%s",
		c->source >= 0 ? jobs_sources[c->source].name : "compute", c->request_id, c->case_id,
		(long long)processing_ms, rc ? "error" : "success");
	return rc;
}

/* A case the worker cannot run but can name (an old dispatcher's, or one
 * published by hand): its job must still finish, so it is answered at once
 * with a failed result (README "Workers") and dead-lettered as well. Returns
 * 0 or a negative error. */
static int worker__refuse(struct mqp_ctx *ctx, const struct work_case *c,
			  const struct mqp_reason *why)
{
	cJSON *result = work_failed_result(why->text);
	char *payload = result ? work_done_payload(c, 0, result, mqp_ctx_client_id(ctx)) : NULL;
	cJSON_Delete(result);
	if (!payload)
		return MQP_ERR_NOMEM;
	int rc = worker__emit_done(ctx, c, payload);
	free(payload);
	mqp_log(MQP_LOG_INFO, "function_complete",
		"function=compute request_id=%s case_id=%s latency_ms=0 status=failed", c->request_id,
		c->case_id);
	return rc ? rc : mqp_deadletter(ctx, why->text);
}

static int worker__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			  struct mqp_reason *why)
{
	struct worker *w = state;
	if (strcmp(msg->topic, "compute.request") != 0)
		return mqp_reason_set(why, "topic '%s' is not one the worker reads", msg->topic);
	struct work_case c;
	int rc = work_parse_request(msg->payload, msg->len, &c, why);
	if (rc == MQP_ERR_INPUT && c.request_id[0])
		return worker__refuse(ctx, &c, why);
	if (rc)
		return rc;
	unsigned ms = work_duration(&w->profile, &c, &w->rng);
	if (ms == 0 && w->queued == 0)
		return worker__finish(w, ctx, &c, 0);
	rc = worker_state_add(w->db, &c, msg->payload, msg->len, ms);
	if (rc < 0)
		return rc;
	w->queued += rc;
	return MQP_OK;
}

/* Starts queued cases while there are free slots. */
static int worker__start(struct worker *w, int64_t now_ms)
{
	int64_t room = w->concurrency - w->running;
	if (room <= 0 || w->queued == 0)
		return MQP_OK;
	if (room > WORKER__FINISH_BATCH)
		room = WORKER__FINISH_BATCH;
	int64_t seqs[WORKER__FINISH_BATCH];
	int n;
	int rc = worker_state_queued(w->db, room, seqs, &n);
	for (int i = 0; !rc && i < n; i++) {
		if ((rc = worker_state_start(w->db, seqs[i], now_ms)))
			break;
		w->running++;
		w->queued--;
	}
	return rc;
}

/* Finishes the running cases that are due; *more is set when the batch was
 * full. */
static int worker__finish_due(struct worker *w, struct mqp_ctx *ctx, int64_t now_ms, int *more)
{
	struct worker_state_due *due = calloc(WORKER__FINISH_BATCH, sizeof(*due));
	if (!due)
		return MQP_ERR_NOMEM;
	int n;
	int rc = worker_state_due(w->db, now_ms, WORKER__FINISH_BATCH, due, &n);
	for (int i = 0; !rc && i < n; i++) {
		struct work_case c;
		struct mqp_reason why;
		/* Stored only after it parsed, so it parses again. */
		if (work_parse_request(due[i].request, due[i].len, &c, &why))
			rc = MQP_ERR_DB;
		if (!rc)
			rc = worker__finish(w, ctx, &c, now_ms - due[i].started_ms);
		if (!rc && !(rc = worker_state_done(w->db, due[i].seq)))
			w->running--;
	}
	worker_state_due_free(due, n);
	free(due);
	*more = n == WORKER__FINISH_BATCH;
	return rc;
}

/* The timers: start what fits, finish what is due, and ask to be called again
 * at the next due time. */
static int worker__tick(void *state, struct mqp_ctx *ctx, int64_t now_ms, int64_t *next_ms)
{
	struct worker *w = state;
	int more = 0, rc;
	if ((rc = worker__start(w, now_ms)) || (rc = worker__finish_due(w, ctx, now_ms, &more)) ||
	    (rc = worker__start(w, now_ms)))
		return rc;
	*next_ms = 0;
	if (more || (w->running < w->concurrency && w->queued > 0)) {
		*next_ms = now_ms;
	} else if (w->running > 0) {
		return worker_state_next_due(w->db, next_ms);
	}
	return MQP_OK;
}

/* ---- flags --------------------------------------------------------------- */

static int worker__concurrency_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	struct worker *w = ctx;
	if (mqp_parse_long(arg, 1, JOBS_CASES_MAX, &w->concurrency)) {
		snprintf(err, errlen, "'%s': a whole number from 1 to %d", arg, JOBS_CASES_MAX);
		return -1;
	}
	return 0;
}

static int worker__work_ms_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	struct worker *w = ctx;
	if (work_parse_range(arg, &w->profile.work_min_ms, &w->profile.work_max_ms)) {
		snprintf(err, errlen, "'%s': MIN or MIN-MAX in whole ms, at most %u", arg, WORK_MS_MAX);
		return -1;
	}
	return 0;
}

static int worker__scale_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	struct worker *w = ctx;
	char *end;
	double f = strtod(arg, &end);
	if (end == arg || *end || !(f >= 0 && f <= 1000)) {
		snprintf(err, errlen, "'%s': a factor from 0 to 1000, like 0.01", arg);
		return -1;
	}
	w->profile.latency_scale = f;
	return 0;
}

static int worker__profile_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	struct worker *w = ctx;
	char buf[8192];
	size_t n;
	if (mqp_read_option_file(arg, buf, sizeof(buf), &n, err, errlen))
		return -1;
	char why[300];
	if (work_profile_load(&w->profile, buf, n, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", arg, why);
		return -1;
	}
	return 0;
}

/* --session-expiry DURATION: at least a second (an expiry of 0 would end
 * the session, and its queued cases, at every lost connection). */
static int worker__expiry_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_duration_arg_1s(arg, &((struct worker *)ctx)->session_expiry_ms, err, errlen);
}

static const struct mqp_extra_option worker__options[] = {
	{"concurrency", 1, "N", "cases worked on at once (default 64)", worker__concurrency_option, 0},
	{"work-ms", 1, "MIN[-MAX]", "simulated work per job case, uniform (default 0)",
	 worker__work_ms_option, 0},
	{"latency-scale", 1, "F", "multiply the dashboard sources' latencies (default 1)",
	 worker__scale_option, 0},
	{"profile", 1, "FILE", "dashboard source latencies, JSON {\"sales\":[100,400],…}",
	 worker__profile_option, 0},
	{"session-expiry", 1, "DURATION",
	 "the broker drops this worker's session (and the cases queued in it) this long after"
	 " it lost the connection (default 60s)",
	 worker__expiry_option, 0},
};

int worker_agent(struct mqp_agent *agent)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return MQP_ERR_NOMEM;
	work_profile_default(&w->profile);
	w->concurrency = 64;
	w->session_expiry_ms = WORKER__SESSION_EXPIRY_MS;
	w->rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
	*agent = (struct mqp_agent){
		.name = "worker",
		.instances_per_host = 1,
		/* A lost worker's queued cases go back to the group when its session
		 * expires; the dispatcher resends what it took (README "Case
		 * deadlines"). */
		.session_expiry_ms = &w->session_expiry_ms,
		.subscriptions = worker__subscriptions,
		.migrations = worker_state_migrations,
		.n_migrations = worker_state_n_migrations,
		.options = worker__options,
		.n_options = MQP_LEN(worker__options),
		.options_ctx = w,
		.init = worker__init,
		.fini = worker__fini,
		.handle = worker__handle,
		.tick = worker__tick,
		.state = w,
	};
	return MQP_OK;
}
