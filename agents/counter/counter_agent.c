/* The counter agent. Success rates: recv_message and weekly_diagnostic in,
 * success_rate out. Jobs: job.accepted and compute.done in, aggregate.trigger
 * out once every case of a job is done. The rules are pure functions in
 * counter_logic.c and jobs_logic.c, the SQLite state in counter_state.c; this
 * file wires them to the messages: handlers, emits and the agent definition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter_agent.h"
#include "counter_logic.h"
#include "counter_state.h"
#include "jobs_logic.h"

#define COUNTER__RETAIN_DEFAULT_S 86400 /* finished jobs are kept a day */
#define COUNTER__PURGE_BATCH 4          /* finished jobs purged per job.accepted */

static const char *const counter__subscriptions[] = {"recv_message", "weekly_diagnostic",
						     "job.accepted", "compute.done", NULL};

struct counter {
	struct counter_state *db;
	int64_t retain_ms; /* --retain-jobs */
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

static int counter__recv(struct counter *c, const struct mqp_message *msg, struct mqp_reason *why)
{
	struct sr_recv r;
	int rc = sr_parse_recv(msg->payload, msg->len, &r, why);
	if (rc)
		return rc;
	rc = counter_state_add_recv(c->db, &r);
	return rc < 0 ? rc : MQP_OK;
}

static int counter__diag(struct counter *c, struct mqp_ctx *ctx, const struct mqp_message *msg,
			 struct mqp_reason *why)
{
	struct sr_diag d;
	int rc = sr_parse_diag(msg->payload, msg->len, &d, why);
	if (rc)
		return rc;
	/* The window only looks at earlier diagnostics, so it can be counted
	 * before the insert tells whether this one is new. */
	int64_t received = counter_state_received(c->db, &d);
	if (received < 0)
		return (int)received;
	if ((rc = counter_state_add_diag(c->db, &d, received)) <= 0) {
		char qm[300];
		if (rc == 0) /* a repeat: the first one already published its rate */
			mqp_debug("diagnostic_repeat", "module=%s timestamp=%llu",
				  mqp_log_quote(qm, sizeof(qm), d.module), (unsigned long long)d.timestamp);
		return rc < 0 ? rc : MQP_OK;
	}
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
	rc = mqp_emit(ctx, "aggregate.trigger", ev);
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
	if (rc || (rc = counter_state_job(c->db, a.request_id, msg->received_ms, &s)))
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
	if (rc || (rc = counter_state_job(c->db, d.request_id, msg->received_ms, &s)))
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

static int counter__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			   struct mqp_reason *why)
{
	struct counter *c = state;
	if (strcmp(msg->topic, "recv_message") == 0)
		return counter__recv(c, msg, why);
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

static const struct mqp_extra_option counter__options[] = {
	{"retain-jobs", 1, "DURATION", "keep finished jobs this long, then purge them (default 24h)",
	 counter__retain_option, 0},
};

int counter_agent(struct mqp_agent *agent)
{
	struct counter *c = calloc(1, sizeof(*c));
	if (!c)
		return MQP_ERR_NOMEM;
	*agent = (struct mqp_agent){
		.name = "counter",
		.subscriptions = counter__subscriptions,
		.migrations = counter_state_migrations,
		.n_migrations = counter_state_n_migrations,
		.options = counter__options,
		.n_options = MQP_LEN(counter__options),
		.options_ctx = c,
		.init = counter__init,
		.fini = counter__fini,
		.handle = counter__handle,
		.state = c,
	};
	c->retain_ms = COUNTER__RETAIN_DEFAULT_S * 1000LL;
	return MQP_OK;
}
