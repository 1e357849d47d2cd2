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
 * (README "What each agent keeps").
 *
 * Case deadlines (README "Case deadlines"): each case put in the outbox is
 * also kept in sent_case, in the same transaction, with its deadline, until
 * the first compute.done for it arrives. The tick resends a case whose
 * deadline passed (to any worker, through the outbox) until --case-attempts
 * sends, then publishes a failed compute.done for it itself, so its job
 * finishes. */
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
#define DISPATCHER__CASE_TIMEOUT_DEFAULT_MS (5 * 60 * 1000)
#define DISPATCHER__CASE_ATTEMPTS_DEFAULT 3
#define DISPATCHER__CASE_ATTEMPTS_MAX 100
#define DISPATCHER__EXPIRE_BATCH 256 /* expired cases handled per tick at most */

/* compute.done: a case is done (README "Case deadlines"); with --shards
 * above 1, shard/<K>/compute.done like the counter's. */
static const char *const dispatcher__subscriptions[] = {"job.submit", "dashboard.request",
							 "compute.done", NULL};

struct dispatcher {
	struct dispatcher_state *db;
	int64_t retain_ms;      /* --retain-jobs */
	int64_t next_purge_ms;
	int64_t case_timeout_ms; /* --case-timeout */
	long case_attempts;      /* --case-attempts */
	int64_t next_expire_ms;  /* the earliest deadline; 0: no case waits; -1: look */
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

/* A compute.done: its case, if this dispatcher waits for it, is done (the
 * first one wins). One it cannot read or does not wait for changes nothing
 * here; the counter and the aggregator dead-letter the bad ones. */
static int dispatcher__done(struct dispatcher *d, const struct mqp_message *msg)
{
	struct jobs_done done;
	struct mqp_reason ignored;
	if (jobs_parse_done(msg->payload, msg->len, &done, &ignored))
		return MQP_OK;
	int rc = dispatcher_state_case_done(d->db, done.request_id, done.case_id);
	return rc < 0 ? rc : MQP_OK;
}

static int dispatcher__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			      struct mqp_reason *why)
{
	struct dispatcher *d = state;
	struct dispatch_job job;
	int rc;
	if (strcmp(msg->topic, "compute.done") == 0)
		return dispatcher__done(d, msg);
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

struct dispatcher__sending {
	struct dispatcher *d;
	struct mqp_ctx *ctx;
	int64_t now_ms;
};

/* Puts one rendered compute.request in the outbox and remembers it with its
 * deadline (dispatcher_state_each_case). */
static int dispatcher__emit_case(void *arg, const char *request, size_t len)
{
	struct dispatcher__sending *s = arg;
	struct dispatch_sent c;
	int rc = dispatch_read_sent(request, len, &c);
	if (rc == MQP_ERR_INPUT) /* cannot be: the dispatcher rendered it */
		rc = MQP_ERR_INVAL;
	if (rc || (rc = mqp_emit_raw(s->ctx, "compute.request", request, len)))
		return rc;
	int64_t span = dispatch_case_span_ms(s->d->case_timeout_ms, c.estimate_ms);
	int64_t deadline = s->now_ms + span;
	if (!s->d->next_expire_ms || deadline < s->d->next_expire_ms)
		s->d->next_expire_ms = deadline;
	return dispatcher_state_add_sent(s->d->db, &c, span, deadline, request, len);
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
	struct dispatcher__sending sending = {d, ctx, now_ms};
	if ((rc = dispatcher_state_each_case(d->db, request_id, sent, budget, dispatcher__emit_case,
					     &sending, &k)))
		return rc;
	if ((rc = dispatcher_state_mark_sent(d->db, request_id, sent + k, now_ms)))
		return rc;
	if (sent + k >= cases && (rc = dispatcher_state_drop_cases(d->db, request_id)))
		return rc;
	*next_ms = now_ms; /* more of this job, or another one, may be waiting */
	return MQP_OK;
}

/* Handles one case whose deadline passed: sends it again, or after its last
 * attempt publishes its failed compute.done to the job's shard. Returns 0 or
 * a negative error. */
static int dispatcher__expired(struct dispatcher *d, struct mqp_ctx *ctx,
			       const struct dispatcher_due *c, int64_t now_ms)
{
	int rc;
	if (dispatch_on_deadline(c->attempt, d->case_attempts) == DISPATCH_RESEND) {
		mqp_debug("case_resent", "request_id=%s case_id=%s attempt=%lld", c->c.request_id,
			 c->c.case_id, (long long)c->attempt + 1);
		if ((rc = mqp_emit_raw(ctx, "compute.request", c->request, c->len)))
			return rc;
		return dispatcher_state_retry(d->db, c->c.request_id, c->c.case_id,
					      now_ms + c->span_ms);
	}
	mqp_debug("case_failed", "request_id=%s case_id=%s attempts=%lld", c->c.request_id,
		 c->c.case_id, (long long)c->attempt);
	cJSON *ev = dispatch_failed_done(c->c.request_id, c->c.case_id, c->c.index, c->attempt,
					 mqp_ctx_client_id(ctx));
	if (!ev)
		return MQP_ERR_NOMEM;
	char topic[300]; /* to the counter and aggregator that own the job */
	rc = mqp_ctx_shard_topic(ctx, "compute.done", c->c.request_id, topic, sizeof(topic));
	rc = rc ? rc : mqp_emit(ctx, topic, ev);
	cJSON_Delete(ev);
	rc = rc ? rc : dispatcher_state_case_done(d->db, c->c.request_id, c->c.case_id);
	return rc < 0 ? rc : MQP_OK;
}

/* Handles the cases whose deadline passed, as far as the window allows, and
 * sets d->next_expire_ms to when to look again. Returns 0 or a negative
 * error. */
static int dispatcher__expire(struct dispatcher *d, struct mqp_ctx *ctx, int64_t now_ms)
{
	int64_t room = DISPATCHER__WINDOW - mqp_ctx_unacked(ctx);
	if (room <= 0) { /* resends wait for acknowledgements like first sends */
		d->next_expire_ms = now_ms + 5;
		return MQP_OK;
	}
	int limit = room < DISPATCHER__EXPIRE_BATCH ? (int)room : DISPATCHER__EXPIRE_BATCH;
	struct dispatcher_due *due;
	size_t n;
	int rc = dispatcher_state_due(d->db, now_ms, limit, &due, &n);
	size_t failed = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		failed += dispatch_on_deadline(due[i].attempt, d->case_attempts) == DISPATCH_FAIL;
		rc = dispatcher__expired(d, ctx, &due[i], now_ms);
	}
	if (!rc && n) /* one line per round, not per case: a lost host may hold thousands */
		mqp_log(failed ? MQP_LOG_WARN : MQP_LOG_INFO, "cases_expired",
			"resent=%zu failed=%zu first_request_id=%s first_case_id=%s", n - failed,
			failed, due[0].c.request_id, due[0].c.case_id);
	dispatcher_state_free_due(due, n);
	if (rc)
		return rc;
	if (n == (size_t)limit) { /* maybe more due: at once */
		d->next_expire_ms = now_ms;
		return MQP_OK;
	}
	int64_t next;
	rc = dispatcher_state_next_deadline(d->db, &next);
	if (rc < 0)
		return rc;
	d->next_expire_ms = rc ? next : 0; /* 0: no case waits; a send sets it */
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
	/* At start (next_expire_ms -1) it looks for deadlines that passed while
	 * it was down. */
	if (!rc && d->next_expire_ms && now_ms >= d->next_expire_ms)
		rc = dispatcher__expire(d, ctx, now_ms);
	if (!rc && now_ms >= d->next_purge_ms) {
		d->next_purge_ms = now_ms + DISPATCHER__PURGE_EVERY_MS;
		rc = dispatcher_state_purge(d->db, now_ms - d->retain_ms, DISPATCHER__PURGE_BATCH);
		if (rc == DISPATCHER__PURGE_BATCH) /* more to forget: soon */
			d->next_purge_ms = now_ms;
		rc = rc < 0 ? rc : MQP_OK;
	}
	*next_ms = send_ms && send_ms < d->next_purge_ms ? send_ms : d->next_purge_ms;
	if (d->next_expire_ms > 0 && d->next_expire_ms < *next_ms)
		*next_ms = d->next_expire_ms;
	return rc;
}

/* --retain-jobs DURATION: seconds, or a number with s, m, h or d. */
static int dispatcher__retain_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_duration_arg(arg, &((struct dispatcher *)ctx)->retain_ms, err, errlen);
}

/* --case-timeout DURATION: as --retain-jobs, at least a second. */
static int dispatcher__timeout_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_duration_arg_1s(arg, &((struct dispatcher *)ctx)->case_timeout_ms, err, errlen);
}

/* --case-attempts N: 1 to DISPATCHER__CASE_ATTEMPTS_MAX. */
static int dispatcher__attempts_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	if (mqp_parse_long(arg, 1, DISPATCHER__CASE_ATTEMPTS_MAX,
			   &((struct dispatcher *)ctx)->case_attempts)) {
		snprintf(err, errlen, "'%s': a whole number from 1 to %d", arg,
			 DISPATCHER__CASE_ATTEMPTS_MAX);
		return -1;
	}
	return 0;
}

static const struct mqp_extra_option dispatcher__options[] = {
	{"retain-jobs", 1, "DURATION",
	 "remember sent jobs (to absorb a resubmit) this long, then forget them (default 24h)",
	 dispatcher__retain_option, 0},
	{"case-timeout", 1, "DURATION",
	 "send a case again when no compute.done came this long after it was sent, or twice its"
	 " work estimate if longer (default 5m)",
	 dispatcher__timeout_option, 0},
	{"case-attempts", 1, "N",
	 "sends of a case at most; after the last one's deadline the case is failed (default 3)",
	 dispatcher__attempts_option, 0},
};

int dispatcher_agent(struct mqp_agent *agent)
{
	struct dispatcher *d = calloc(1, sizeof(*d));
	if (!d)
		return MQP_ERR_NOMEM;
	d->retain_ms = DISPATCHER__RETAIN_DEFAULT_S * 1000LL;
	d->case_timeout_ms = DISPATCHER__CASE_TIMEOUT_DEFAULT_MS;
	d->case_attempts = DISPATCHER__CASE_ATTEMPTS_DEFAULT;
	d->next_expire_ms = -1; /* look at the first tick */
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
