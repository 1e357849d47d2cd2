/* The counter agent. Success rates: recv_message and weekly_diagnostic in,
 * success_rate out. Jobs: job.accepted and compute.done in, aggregate.trigger
 * out once every case of a job is done. The rules are pure functions in
 * counter_logic.c and jobs_logic.c, the SQLite state in counter_state.c; this
 * file wires them to the messages (handlers, emits), to the tick that seals
 * windows --dedup-horizon after their diagnostic, and defines the agent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter_agent.h"
#include "counter_logic.h"
#include "counter_state.h"
#include "jobs_logic.h"

#define COUNTER__RETAIN_DEFAULT_S 86400 /* finished jobs are kept a day */
#define COUNTER__PURGE_BATCH 4          /* finished jobs purged per job.accepted */
#define COUNTER__HORIZON_DEFAULT_S (7 * 86400) /* --dedup-horizon: a week */
#define COUNTER__SEAL_BATCH 128        /* diagnostics sealed per tick at most */
#define COUNTER__FOLD_BUDGET 1024      /* messages folded per tick: half a batch */
#define COUNTER__FOLD_EVERY_MS 1000    /* how often to look for due windows */
/* While more are due, the gap between two folds: a week's seals of a whole
 * fleet come due at once, and paced they are small pieces between the inputs
 * that keep coming rather than one long run of them (up to 40 000 messages
 * a second). */
#define COUNTER__FOLD_PACE_MS 25

static const char *const counter__subscriptions[] = {"recv_message", "weekly_diagnostic",
						     "job.accepted", "compute.done", NULL};

struct counter {
	struct counter_state *db;
	int64_t retain_ms;  /* --retain-jobs */
	int64_t horizon_ms; /* --dedup-horizon */
	int64_t next_fold_ms;
};

static int counter__init(void *state, struct mqp_store *store)
{
	struct counter *c = state;
	return counter_state_open(store, &c->db);
}

static void counter__fini(void *state)
{
	struct counter *c = state;
	counter_state_close(c->db);
	free(c);
}

/* Refuses an event that falls in a sealed window (README "Sealed windows"),
 * saying which window and why that matters for it. Returns MQP_ERR_INPUT. */
static int counter__sealed(struct mqp_reason *why, const char *module, uint64_t timestamp,
			   const struct sr_cover *cover, const char *consequence)
{
	return mqp_reason_set(why,
			      "timestamp %llu falls in the window of module '%s' up to its diagnostic"
			      " at %llu, sealed --dedup-horizon after that diagnostic: %s",
			      (unsigned long long)timestamp, module,
			      (unsigned long long)cover->timestamp, consequence);
}

static int counter__recv(struct counter *c, struct mqp_ctx *ctx, const struct mqp_message *msg,
			 struct mqp_reason *why)
{
	struct sr_recv r;
	struct sr_cover cover;
	int rc = sr_parse_recv(msg->payload, msg->len, &r, why);
	if (rc || (rc = mqp_ctx_check_owner(ctx, "moduleId", r.module, why)) ||
	    (rc = counter_state_cover(c->db, r.module, r.timestamp, &cover)))
		return rc;
	if (sr_place_recv(&cover) == SR_PLACE_SEALED)
		return counter__sealed(why, r.module, r.timestamp, &cover,
				       "a message this late cannot be told from a repeat and is not"
				       " counted");
	rc = counter_state_add_recv(c->db, &r);
	return rc < 0 ? rc : MQP_OK;
}

static int counter__diag(struct counter *c, struct mqp_ctx *ctx, const struct mqp_message *msg,
			 struct mqp_reason *why)
{
	struct sr_diag d;
	struct sr_cover cover;
	int rc = sr_parse_diag(msg->payload, msg->len, &d, why);
	if (rc || (rc = mqp_ctx_check_owner(ctx, "moduleId", d.module, why)) ||
	    (rc = counter_state_cover(c->db, d.module, d.timestamp, &cover)))
		return rc;
	switch (sr_place_diag(d.timestamp, &cover)) {
	case SR_PLACE_REPEAT: { /* the first one already published its rate */
		char qm[300];
		mqp_debug("diagnostic_repeat", "module=%s timestamp=%llu",
			  mqp_log_quote(qm, sizeof(qm), d.module), (unsigned long long)d.timestamp);
		return MQP_OK;
	}
	case SR_PLACE_SEALED:
		return counter__sealed(why, d.module, d.timestamp, &cover,
				       "its messages are a count now and the window cannot be split");
	case SR_PLACE_OPEN:
		break;
	}
	int64_t received = counter_state_received(c->db, &d);
	if (received < 0)
		return (int)received;
	if ((rc = counter_state_add_diag(c->db, &d, received, msg->received_ms)) < 0)
		return rc;
	cJSON *ev = sr_event(&d, (uint64_t)received);
	if (!ev)
		return MQP_ERR_NOMEM;
	rc = mqp_emit(ctx, "success_rate", ev);
	cJSON_Delete(ev);
	return rc;
}

/* Publishes the job's one aggregate.trigger when its state calls for it. */
static int counter__maybe_trigger(struct counter *c, struct mqp_ctx *ctx, const char *request_id,
				  const struct jobs_state *s, int64_t now_ms)
{
	if (!jobs_should_trigger(s))
		return MQP_OK;
	int rc = counter_state_mark_triggered(c->db, request_id, now_ms);
	if (rc < 0)
		return rc;
	cJSON *ev = jobs_trigger_event(request_id, s->target, s->completed);
	if (!ev)
		return MQP_ERR_NOMEM;
	char topic[300]; /* to the aggregator that owns the job (README "Scaling out") */
	rc = mqp_ctx_shard_topic(ctx, "aggregate.trigger", request_id, topic, sizeof(topic));
	rc = rc ? rc : mqp_emit(ctx, topic, ev);
	cJSON_Delete(ev);
	return rc;
}

/* Forgets a few jobs whose job.accepted never came within --retain-jobs of
 * their first compute.done (README "Fan-in"): without it, compute.done for
 * unknown requests would stay for ever. Returns 0 or MQP_ERR_DB. */
static int counter__forget_orphans(struct counter *c, int64_t now_ms)
{
	int n = counter_state_purge_orphans(c->db, now_ms - c->retain_ms, COUNTER__PURGE_BATCH);
	if (n > 0)
		mqp_warn("orphan_forgotten",
			 "jobs=%d reason=\"no job.accepted within --retain-jobs\"", n);
	return n < 0 ? n : MQP_OK;
}

static int counter__accepted(struct counter *c, struct mqp_ctx *ctx, const struct mqp_message *msg,
			     struct mqp_reason *why)
{
	struct jobs_accepted a;
	struct jobs_state s;
	int rc = jobs_parse_accepted(msg->payload, msg->len, &a, why);
	if (rc || (rc = mqp_ctx_check_owner(ctx, "requestId", a.request_id, why)) ||
	    (rc = counter_state_job(c->db, a.request_id, msg->received_ms, &s)))
		return rc;
	if (s.accepted) { /* a repeat: the same target changes nothing */
		if (s.target != a.target)
			return mqp_reason_set(why, "job '%s' was accepted with target %llu, not %llu",
					      a.request_id, (unsigned long long)s.target,
					      (unsigned long long)a.target);
		return MQP_OK;
	}
	if ((rc = counter_state_accept(c->db, &a)))
		return rc;
	s.accepted = true;
	s.target = a.target;
	if ((rc = counter__maybe_trigger(c, ctx, a.request_id, &s, msg->received_ms)))
		return rc;
	/* Forgets a few jobs that finished more than --retain-jobs ago. */
	if ((rc = counter_state_purge(c->db, msg->received_ms - c->retain_ms, COUNTER__PURGE_BATCH)))
		return rc;
	return counter__forget_orphans(c, msg->received_ms);
}

static int counter__done(struct counter *c, struct mqp_ctx *ctx, const struct mqp_message *msg,
			 struct mqp_reason *why)
{
	struct jobs_done d;
	struct jobs_state s;
	int rc = jobs_parse_done(msg->payload, msg->len, &d, why);
	if (rc || (rc = mqp_ctx_check_owner(ctx, "requestId", d.request_id, why)) ||
	    (rc = counter_state_job(c->db, d.request_id, msg->received_ms, &s)))
		return rc;
	if ((rc = counter_state_add_case(c->db, d.request_id, d.case_id)) <= 0)
		return rc; /* 0: this case was counted already */
	s.completed++;
	if (s.accepted && s.completed > s.target) {
		char qr[300];
		mqp_warn("job_overcomplete", "request_id=%s target=%llu completed=%llu",
			 mqp_log_quote(qr, sizeof(qr), d.request_id), (unsigned long long)s.target,
			 (unsigned long long)s.completed);
	}
	rc = counter__maybe_trigger(c, ctx, d.request_id, &s, msg->received_ms);
	/* A job not accepted yet may never be: each such compute.done forgets a
	 * few old ones (perhaps this one), so they cannot pile up however many
	 * come. */
	if (!rc && !s.accepted)
		rc = counter__forget_orphans(c, msg->received_ms);
	return rc;
}

/* Seals the windows whose diagnostics are older than --dedup-horizon and
 * folds their messages into counts, a bounded amount per tick so no
 * transaction grows past about a batch (README "Sealed windows"). */
static int counter__tick(void *state, struct mqp_ctx *ctx, int64_t now_ms, int64_t *next_ms)
{
	struct counter *c = state;
	(void)ctx;
	if (now_ms >= c->next_fold_ms) {
		int sealed = counter_state_seal(c->db, now_ms - c->horizon_ms, COUNTER__SEAL_BATCH);
		int pending = sealed < 0 ? sealed : counter_state_fold(c->db, COUNTER__FOLD_BUDGET);
		if (pending < 0)
			return pending;
		c->next_fold_ms = now_ms + (sealed == COUNTER__SEAL_BATCH || pending
						    ? COUNTER__FOLD_PACE_MS
						    : COUNTER__FOLD_EVERY_MS);
	}
	*next_ms = c->next_fold_ms;
	return MQP_OK;
}

static int counter__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			   struct mqp_reason *why)
{
	struct counter *c = state;
	if (strcmp(msg->topic, "recv_message") == 0)
		return counter__recv(c, ctx, msg, why);
	if (strcmp(msg->topic, "weekly_diagnostic") == 0)
		return counter__diag(c, ctx, msg, why);
	if (strcmp(msg->topic, "compute.done") == 0)
		return counter__done(c, ctx, msg, why);
	if (strcmp(msg->topic, "job.accepted") == 0)
		return counter__accepted(c, ctx, msg, why);
	return mqp_reason_set(why, "topic '%s' is not one the counter reads", msg->topic);
}

/* --retain-jobs DURATION: seconds, or a number with s, m, h or d. */
static int counter__retain_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_duration_arg(arg, &((struct counter *)ctx)->retain_ms, err, errlen);
}

/* --dedup-horizon DURATION: how long after a diagnostic its window stays open. */
static int counter__horizon_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_duration_arg(arg, &((struct counter *)ctx)->horizon_ms, err, errlen);
}

static const struct mqp_extra_option counter__options[] = {
	{"retain-jobs", 1, "DURATION", "keep finished jobs this long, then purge them (default 24h)",
	 counter__retain_option, 0},
	{"dedup-horizon", 1, "DURATION",
	 "keep a diagnostic's messages one by one this long after it, then fold them into"
	 " a count (default 7d)",
	 counter__horizon_option, 0},
};

int counter_agent(struct mqp_agent *agent)
{
	struct counter *c = calloc(1, sizeof(*c));
	if (!c)
		return MQP_ERR_NOMEM;
	*agent = (struct mqp_agent){
		.name = "counter",
		.subscriptions = counter__subscriptions,
		.sharded = 1,
		.coalesce_reads = 1,
		.migrations = counter_state_migrations,
		.n_migrations = counter_state_n_migrations,
		.options = counter__options,
		.n_options = MQP_LEN(counter__options),
		.options_ctx = c,
		.init = counter__init,
		.fini = counter__fini,
		.handle = counter__handle,
		.tick = counter__tick,
		.state = c,
	};
	c->retain_ms = COUNTER__RETAIN_DEFAULT_S * 1000LL;
	c->horizon_ms = COUNTER__HORIZON_DEFAULT_S * 1000LL;
	return MQP_OK;
}
