/* The counter agent. Success rates: recv_message and weekly_diagnostic in,
 * success_rate out. Jobs: job.accepted and compute.done in, aggregate.trigger
 * out once every case of a job is done. The rules are pure functions in
 * counter_logic.c and jobs_logic.c; this file is the SQLite shell around them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter_agent.h"
#include "jobs_logic.h"
#include "counter_logic.h"

#define COUNTER__RETAIN_DEFAULT_S 86400 /* finished jobs are kept a day */
#define COUNTER__PURGE_BATCH 4          /* finished jobs purged per job.accepted */

static const char *const counter__subscriptions[] = {"recv_message", "weekly_diagnostic",
						     "job.accepted", "compute.done", NULL};

/* Natural keys make every insert idempotent under QoS 1 redelivery. */
static const struct mqp_migration counter__migrations[] = {
	{"CREATE TABLE recv_message(module TEXT NOT NULL, ts INTEGER NOT NULL,"
	 " PRIMARY KEY(module, ts)) WITHOUT ROWID;"
	 "CREATE TABLE weekly_diagnostic(module TEXT NOT NULL, ts INTEGER NOT NULL,"
	 " attempts INTEGER NOT NULL, received INTEGER NOT NULL,"
	 " PRIMARY KEY(module, ts)) WITHOUT ROWID;"},
	/* A job row appears with its first event, whichever it is; target stays
	 * NULL until job.accepted. triggered_ms marks the one aggregate.trigger. */
	{"CREATE TABLE job(request_id TEXT PRIMARY KEY, target INTEGER, kind TEXT,"
	 " accepted_at INTEGER, completed INTEGER NOT NULL DEFAULT 0,"
	 " first_seen_ms INTEGER NOT NULL, triggered_ms INTEGER) WITHOUT ROWID;"
	 "CREATE INDEX job_triggered ON job(triggered_ms) WHERE triggered_ms IS NOT NULL;"
	 "CREATE TABLE job_case(request_id TEXT NOT NULL, case_id TEXT NOT NULL,"
	 " PRIMARY KEY(request_id, case_id)) WITHOUT ROWID;"},
};

enum counter__stmt {
	CS_RECV_ADD,
	CS_DIAG_ADD,
	CS_DIAG_EARLIER,
	CS_RECV_COUNT,
	CS_JOB_ENSURE,
	CS_JOB_GET,
	CS_JOB_ACCEPT,
	CS_CASE_ADD,
	CS_JOB_COMPLETED,
	CS_JOB_TRIGGERED,
	CS_PURGE_CASES,
	CS_PURGE_JOBS,
	CS__COUNT
};

static const char *const counter__sql[CS__COUNT] = {
	[CS_RECV_ADD] = "INSERT OR IGNORE INTO recv_message(module, ts) VALUES (?1, ?2)",
	/* received is kept beside the diagnostic so a published figure can be audited. */
	[CS_DIAG_ADD] = "INSERT OR IGNORE INTO weekly_diagnostic(module, ts, attempts, received)"
			" VALUES (?1, ?2, ?3, ?4)",
	[CS_DIAG_EARLIER] = "SELECT ts, attempts FROM weekly_diagnostic"
			    " WHERE module = ?1 AND ts < ?2 ORDER BY ts DESC",
	[CS_RECV_COUNT] = "SELECT count(*) FROM recv_message WHERE module = ?1 AND ts > ?2"
			  " AND ts <= ?3",
	[CS_JOB_ENSURE] = "INSERT OR IGNORE INTO job(request_id, first_seen_ms) VALUES (?1, ?2)",
	[CS_JOB_GET] = "SELECT target, completed, triggered_ms FROM job WHERE request_id = ?1",
	[CS_JOB_ACCEPT] = "UPDATE job SET target = ?2, kind = ?3, accepted_at = ?4"
			  " WHERE request_id = ?1 AND target IS NULL",
	[CS_CASE_ADD] = "INSERT OR IGNORE INTO job_case(request_id, case_id) VALUES (?1, ?2)",
	[CS_JOB_COMPLETED] = "UPDATE job SET completed = completed + 1 WHERE request_id = ?1",
	[CS_JOB_TRIGGERED] = "UPDATE job SET triggered_ms = ?2 WHERE request_id = ?1",
	/* The same oldest finished jobs in both: cases first, then the jobs. */
	[CS_PURGE_CASES] = "DELETE FROM job_case WHERE request_id IN (SELECT request_id FROM job"
			   " WHERE triggered_ms < ?1 ORDER BY triggered_ms LIMIT ?2)",
	[CS_PURGE_JOBS] = "DELETE FROM job WHERE request_id IN (SELECT request_id FROM job"
			  " WHERE triggered_ms < ?1 ORDER BY triggered_ms LIMIT ?2)",
};

struct counter {
	struct mqp_store *store;
	sqlite3_stmt *stmt[CS__COUNT];
	int64_t retain_ms; /* --retain-jobs */
};

static int counter__init(void *state, struct mqp_store *store)
{
	struct counter *c = state;
	c->store = store;
	return mqp_store_prepare_all(store, counter__sql, c->stmt, CS__COUNT);
}

static void counter__fini(void *state)
{
	struct counter *c = state;
	mqp_store_finalize_all(c->stmt, CS__COUNT);
	free(c);
}

/* Steps a write statement once. Returns rows changed or MQP_ERR_DB. */
static int counter__exec(struct counter *c, enum counter__stmt which)
{
	return mqp_store_exec(c->store, c->stmt[which]);
}

static int counter__recv(struct counter *c, const struct mqp_message *msg, struct mqp_reason *why)
{
	struct sr_recv r;
	int rc = sr_parse_recv(msg->payload, msg->len, &r, why);
	if (rc)
		return rc;
	sqlite3_stmt *st = c->stmt[CS_RECV_ADD];
	sqlite3_bind_text(st, 1, r.module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)r.timestamp);
	rc = counter__exec(c, CS_RECV_ADD);
	return rc < 0 ? rc : MQP_OK;
}

/* Counts the module's stored messages in the diagnostic's window (see
 * sr_window_step). Returns the count, or MQP_ERR_DB. */
static int64_t counter__received(struct counter *c, const struct sr_diag *d)
{
	struct sr_window w;
	sr_window_init(&w, d->attempts);
	sqlite3_stmt *st = c->stmt[CS_DIAG_EARLIER];
	sqlite3_bind_text(st, 1, d->module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)d->timestamp);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sr_window_step(&w, (uint64_t)sqlite3_column_int64(st, 0),
				   (uint64_t)sqlite3_column_int64(st, 1)))
			break;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return mqp_store_fail(c->store, counter__sql[CS_DIAG_EARLIER]);

	st = c->stmt[CS_RECV_COUNT];
	sqlite3_bind_text(st, 1, d->module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, w.found ? (sqlite3_int64)w.after_timestamp : -1);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)d->timestamp);
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	return n < 0 ? mqp_store_fail(c->store, counter__sql[CS_RECV_COUNT]) : n;
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
	int64_t received = counter__received(c, &d);
	if (received < 0)
		return (int)received;
	sqlite3_stmt *st = c->stmt[CS_DIAG_ADD];
	sqlite3_bind_text(st, 1, d.module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)d.timestamp);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)d.attempts);
	sqlite3_bind_int64(st, 4, received);
	if ((rc = counter__exec(c, CS_DIAG_ADD)) <= 0) {
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

/* Makes sure the job has a row and reads what the counter knows of it. */
static int counter__job(struct counter *c, const char *request_id, int64_t now_ms,
			struct jobs_state *s)
{
	sqlite3_stmt *st = c->stmt[CS_JOB_ENSURE];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = counter__exec(c, CS_JOB_ENSURE);
	if (rc < 0)
		return rc;
	st = c->stmt[CS_JOB_GET];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return mqp_store_fail(c->store, counter__sql[CS_JOB_GET]);
	}
	s->accepted = sqlite3_column_type(st, 0) != SQLITE_NULL;
	s->target = (uint64_t)sqlite3_column_int64(st, 0);
	s->completed = (uint64_t)sqlite3_column_int64(st, 1);
	s->triggered = sqlite3_column_type(st, 2) != SQLITE_NULL;
	sqlite3_reset(st);
	return MQP_OK;
}

/* Publishes the job's one aggregate.trigger when its state calls for it. */
static int counter__maybe_trigger(struct counter *c, struct mqp_ctx *ctx, const char *request_id,
				  const struct jobs_state *s, int64_t now_ms)
{
	if (!jobs_should_trigger(s))
		return MQP_OK;
	sqlite3_stmt *st = c->stmt[CS_JOB_TRIGGERED];
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = counter__exec(c, CS_JOB_TRIGGERED);
	if (rc < 0)
		return rc;
	cJSON *ev = jobs_trigger_event(request_id, s->target, s->completed);
	if (!ev)
		return MQP_ERR_NOMEM;
	rc = mqp_emit(ctx, "aggregate.trigger", ev);
	cJSON_Delete(ev);
	return rc;
}

/* Forgets a few jobs that finished more than --retain-jobs ago. */
static int counter__purge(struct counter *c, int64_t now_ms)
{
	for (int which = CS_PURGE_CASES; which <= CS_PURGE_JOBS; which++) {
		sqlite3_stmt *st = c->stmt[which];
		sqlite3_bind_int64(st, 1, now_ms - c->retain_ms);
		sqlite3_bind_int(st, 2, COUNTER__PURGE_BATCH);
		int rc = counter__exec(c, (enum counter__stmt)which);
		if (rc < 0)
			return rc;
	}
	return MQP_OK;
}

static int counter__accepted(struct counter *c, struct mqp_ctx *ctx, const struct mqp_message *msg,
			     struct mqp_reason *why)
{
	struct jobs_accepted a;
	struct jobs_state s;
	int rc = jobs_parse_accepted(msg->payload, msg->len, &a, why);
	if (rc || (rc = counter__job(c, a.request_id, msg->received_ms, &s)))
		return rc;
	if (s.accepted) { /* a repeat: the same target changes nothing */
		if (s.target != a.target)
			return mqp_reason_set(why, "job '%s' was accepted with target %llu, not %llu",
					      a.request_id, (unsigned long long)s.target,
					      (unsigned long long)a.target);
		return MQP_OK;
	}
	sqlite3_stmt *st = c->stmt[CS_JOB_ACCEPT];
	sqlite3_bind_text(st, 1, a.request_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a.target);
	sqlite3_bind_text(st, 3, a.kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)a.accepted_at);
	if ((rc = counter__exec(c, CS_JOB_ACCEPT)) < 0)
		return rc;
	s.accepted = true;
	s.target = a.target;
	if ((rc = counter__maybe_trigger(c, ctx, a.request_id, &s, msg->received_ms)))
		return rc;
	return counter__purge(c, msg->received_ms);
}

static int counter__done(struct counter *c, struct mqp_ctx *ctx, const struct mqp_message *msg,
			 struct mqp_reason *why)
{
	struct jobs_done d;
	struct jobs_state s;
	int rc = jobs_parse_done(msg->payload, msg->len, &d, why);
	if (rc || (rc = counter__job(c, d.request_id, msg->received_ms, &s)))
		return rc;
	sqlite3_stmt *st = c->stmt[CS_CASE_ADD];
	sqlite3_bind_text(st, 1, d.request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d.case_id, -1, SQLITE_STATIC);
	if ((rc = counter__exec(c, CS_CASE_ADD)) <= 0)
		return rc; /* 0: this case was counted already */
	st = c->stmt[CS_JOB_COMPLETED];
	sqlite3_bind_text(st, 1, d.request_id, -1, SQLITE_STATIC);
	if ((rc = counter__exec(c, CS_JOB_COMPLETED)) < 0)
		return rc;
	s.completed++;
	if (s.accepted && s.completed > s.target) {
		char qr[300];
		mqp_warn("job_overcomplete", "request_id=%s target=%llu completed=%llu",
			 mqp_log_quote(qr, sizeof(qr), d.request_id), (unsigned long long)s.target,
			 (unsigned long long)s.completed);
	}
	return counter__maybe_trigger(c, ctx, d.request_id, &s, msg->received_ms);
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
		.migrations = counter__migrations,
		.n_migrations = MQP_LEN(counter__migrations),
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
