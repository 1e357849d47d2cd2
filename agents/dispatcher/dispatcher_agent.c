/* The dispatcher agent: job.submit and dashboard.request in; job.accepted,
 * then one compute.request per case, out. The rules are pure functions in
 * dispatcher_logic.c, the SQLite state in dispatcher_state.c; this file
 * wires them to the messages and the tick.
 *
 * A job's cases are stored with their rendered compute.request when it is
 * accepted, in the same transaction as its job.accepted. The tick then moves
 * them into the outbox in batches, keeping at most DISPATCHER__WINDOW outputs
 * unacknowledged, with the job's `sent` cursor committed together with the
 * outbox rows: a crash midway resumes at the cursor, and the outbox resends
 * what the broker had not acknowledged. Memory stays bounded however large
 * the job, and job.accepted always leaves before its first compute.request.
 * A job sent completely is remembered (its requestId and digest, to absorb
 * a resubmit) for --retain-jobs, then forgotten by the tick a batch at a time
 * (README "What each agent keeps"). */
#include <stdlib.h>
#include <string.h>

#include "dispatcher_agent.h"
#include "dispatcher_logic.h"
#include "dispatcher_state.h"

#define DISPATCHER__WINDOW 10000 /* unacknowledged outputs at most */
#define DISPATCHER__BATCH 1000   /* compute.requests per transaction */
#define DISPATCHER__RETAIN_DEFAULT_S (24 * 3600)
#define DISPATCHER__PURGE_BATCH 64      /* sent jobs forgotten per purge */
#define DISPATCHER__PURGE_EVERY_MS 1000

static const char *const dispatcher__subscriptions[] = {"job.submit", "dashboard.request", NULL};

struct dispatcher {
	struct dispatcher_state *db;
	int64_t retain_ms;      /* --retain-jobs */
	int64_t next_purge_ms;
};

static int dispatcher__init(void *state, struct mqp_store *store)
{
	struct dispatcher *d = state;
	return dispatcher_state_open(store, &d->db);
}

static void dispatcher__fini(void *state)
{
	struct dispatcher *d = state;
	dispatcher_state_close(d->db);
	free(d);
}

/* Stores an accepted job and its cases and publishes job.accepted; a repeat
 * of an accepted requestId is ignored when its content is the same. */
static int dispatcher__accept(struct dispatcher *d, struct mqp_ctx *ctx,
			      const struct mqp_message *msg, struct dispatch_job *job,
			      struct mqp_reason *why)
{
	uint64_t digest;
	int rc = dispatcher_state_digest(d->db, job->request_id, &digest);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		if (digest == job->digest)
			return MQP_OK; /* the same job again: already dispatched */
		return mqp_reason_set(why, "requestId '%s' was accepted before with other content",
				      job->request_id);
	}
	if ((rc = dispatcher_state_add_job(d->db, job, msg->received_ms)))
		return rc;
	cJSON *ev = dispatch_accepted_event(job, (uint64_t)msg->received_ms);
	if (!ev)
		return MQP_ERR_NOMEM;
	char topic[300]; /* to the counter and aggregator that own the job (README "Scaling out") */
	rc = mqp_ctx_shard_topic(ctx, "job.accepted", job->request_id, topic, sizeof(topic));
	rc = rc ? rc : mqp_emit(ctx, topic, ev);
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
	rc = mqp_ctx_check_owner(ctx, "requestId", job.request_id, why);
	rc = rc ? rc : dispatcher__accept(d, ctx, msg, &job, why);
	dispatch_job_free(&job);
	return rc;
}

/* Puts one rendered compute.request in the outbox (dispatcher_state_each_case). */
static int dispatcher__emit_case(void *ctx, const char *request, size_t len)
{
	return mqp_emit_raw(ctx, "compute.request", request, len);
}

/* Moves the next cases of the oldest unfinished job into the outbox, as far
 * as the window allows. Sets *next_ms to when it has more to send: now_ms,
 * a backstop while the window is full, or 0 when every job is sent. Returns
 * 0 or MQP_ERR_DB. */
static int dispatcher__send(struct dispatcher *d, struct mqp_ctx *ctx, int64_t now_ms,
			    int64_t *next_ms)
{
	int64_t room = DISPATCHER__WINDOW - mqp_ctx_unacked(ctx);
	char request_id[JOBS_ID_MAX + 1];
	int64_t sent, cases;
	int rc = dispatcher_state_next_unsent(d->db, request_id, &sent, &cases);
	*next_ms = 0; /* nothing to send until the next job */
	if (rc <= 0)
		return rc;
	if (room <= 0) { /* acknowledgements wake us too; this is a backstop */
		*next_ms = now_ms + 5;
		return MQP_OK;
	}
	int64_t budget = room < DISPATCHER__BATCH ? room : DISPATCHER__BATCH, k;
	if ((rc = dispatcher_state_each_case(d->db, request_id, sent, budget, dispatcher__emit_case,
					     ctx, &k)))
		return rc;
	if ((rc = dispatcher_state_mark_sent(d->db, request_id, sent + k, now_ms)))
		return rc;
	if (sent + k >= cases && (rc = dispatcher_state_drop_cases(d->db, request_id)))
		return rc;
	*next_ms = now_ms; /* more of this job, or another one, may be waiting */
	return MQP_OK;
}

/* Sends what the window allows and, once a second (at once again while a
 * full batch went), forgets jobs sent more than --retain-jobs ago; asks to be
 * called again for whichever comes first. */
static int dispatcher__tick(void *state, struct mqp_ctx *ctx, int64_t now_ms, int64_t *next_ms)
{
	struct dispatcher *d = state;
	int64_t send_ms;
	int rc = dispatcher__send(d, ctx, now_ms, &send_ms);
	if (!rc && now_ms >= d->next_purge_ms) {
		d->next_purge_ms = now_ms + DISPATCHER__PURGE_EVERY_MS;
		rc = dispatcher_state_purge(d->db, now_ms - d->retain_ms, DISPATCHER__PURGE_BATCH);
		if (rc == DISPATCHER__PURGE_BATCH) /* more to forget: soon */
			d->next_purge_ms = now_ms;
		rc = rc < 0 ? rc : MQP_OK;
	}
	*next_ms = send_ms && send_ms < d->next_purge_ms ? send_ms : d->next_purge_ms;
	return rc;
}

/* --retain-jobs DURATION: seconds, or a number with s, m, h or d. */
static int dispatcher__retain_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_duration_arg(arg, &((struct dispatcher *)ctx)->retain_ms, err, errlen);
}

static const struct mqp_extra_option dispatcher__options[] = {
	{"retain-jobs", 1, "DURATION",
	 "remember sent jobs (to absorb a resubmit) this long, then forget them (default 24h)",
	 dispatcher__retain_option, 0},
};

int dispatcher_agent(struct mqp_agent *agent)
{
	struct dispatcher *d = calloc(1, sizeof(*d));
	if (!d)
		return MQP_ERR_NOMEM;
	d->retain_ms = DISPATCHER__RETAIN_DEFAULT_S * 1000LL;
	*agent = (struct mqp_agent){
		.name = "dispatcher",
		.subscriptions = dispatcher__subscriptions,
		.sharded = 1,
		.migrations = dispatcher_state_migrations,
		.n_migrations = dispatcher_state_n_migrations,
		.options = dispatcher__options,
		.n_options = MQP_LEN(dispatcher__options),
		.options_ctx = d,
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
