/* The counter agent, success-rate half: recv_message and weekly_diagnostic in,
 * success_rate out. Parsing and the rules are in success_rate.c; this file is
 * the SQLite shell around them. */
#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "success_rate.h"

static const char *const counter__subscriptions[] = {"recv_message", "weekly_diagnostic", NULL};

/* Natural keys make every insert idempotent under QoS 1 redelivery. */
static const struct mqp_migration counter__migrations[] = {
	{"CREATE TABLE recv_message(module TEXT NOT NULL, ts INTEGER NOT NULL,"
	 " PRIMARY KEY(module, ts)) WITHOUT ROWID;"
	 "CREATE TABLE weekly_diagnostic(module TEXT NOT NULL, ts INTEGER NOT NULL,"
	 " attempts INTEGER NOT NULL, received INTEGER NOT NULL,"
	 " PRIMARY KEY(module, ts)) WITHOUT ROWID;"},
};

enum counter__stmt {
	CS_RECV_ADD,
	CS_DIAG_ADD,
	CS_DIAG_EARLIER,
	CS_RECV_COUNT,
	CS_DIAG_SET_RECEIVED,
	CS__COUNT
};

static const char *const counter__sql[CS__COUNT] = {
	[CS_RECV_ADD] = "INSERT OR IGNORE INTO recv_message(module, ts) VALUES (?1, ?2)",
	[CS_DIAG_ADD] = "INSERT OR IGNORE INTO weekly_diagnostic(module, ts, attempts, received)"
			" VALUES (?1, ?2, ?3, 0)",
	[CS_DIAG_EARLIER] = "SELECT ts, attempts FROM weekly_diagnostic"
			    " WHERE module = ?1 AND ts < ?2 ORDER BY ts DESC",
	[CS_RECV_COUNT] = "SELECT count(*) FROM recv_message WHERE module = ?1 AND ts > ?2"
			  " AND ts <= ?3",
	[CS_DIAG_SET_RECEIVED] = "UPDATE weekly_diagnostic SET received = ?3"
				 " WHERE module = ?1 AND ts = ?2",
};

struct counter {
	struct mqp_store *store;
	sqlite3_stmt *stmt[CS__COUNT];
};

static int counter__init(void *state, struct mqp_store *store)
{
	struct counter *c = state;
	c->store = store;
	for (int i = 0; i < CS__COUNT; i++)
		if (sqlite3_prepare_v3(mqp_store_db(store), counter__sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &c->stmt[i], NULL) != SQLITE_OK)
			return mqp_store_fail(store, counter__sql[i]);
	return MQP_OK;
}

static void counter__fini(void *state)
{
	struct counter *c = state;
	for (int i = 0; i < CS__COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	free(c);
}

/* Steps a write statement once and resets it. Returns rows changed or MQP_ERR_DB. */
static int counter__exec(struct counter *c, enum counter__stmt which)
{
	sqlite3_stmt *st = c->stmt[which];
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return mqp_store_fail(c->store, counter__sql[which]);
	return sqlite3_changes(mqp_store_db(c->store));
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
	sqlite3_stmt *st = c->stmt[CS_DIAG_ADD];
	sqlite3_bind_text(st, 1, d.module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)d.timestamp);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)d.attempts);
	if ((rc = counter__exec(c, CS_DIAG_ADD)) <= 0) {
		if (rc == 0) /* a repeat: the first one already published its rate */
			mqp_debug("diagnostic_repeat", "module=\"%s\" timestamp=%llu", d.module,
				  (unsigned long long)d.timestamp);
		return rc < 0 ? rc : MQP_OK;
	}
	int64_t received = counter__received(c, &d);
	if (received < 0)
		return (int)received;
	/* Kept beside the diagnostic so the published figure can be audited later. */
	st = c->stmt[CS_DIAG_SET_RECEIVED];
	sqlite3_bind_text(st, 1, d.module, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)d.timestamp);
	sqlite3_bind_int64(st, 3, received);
	if ((rc = counter__exec(c, CS_DIAG_SET_RECEIVED)) < 0)
		return rc;
	cJSON *ev = sr_event(&d, (uint64_t)received);
	if (!ev)
		return MQP_ERR_NOMEM;
	rc = mqp_emit(ctx, "success_rate", ev);
	cJSON_Delete(ev);
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
	return mqp_reason_set(why, "topic '%s' is not one the counter reads", msg->topic);
}

int counter_agent(struct mqp_agent *agent)
{
	struct counter *c = calloc(1, sizeof(*c));
	if (!c)
		return MQP_ERR_NOMEM;
	memset(agent, 0, sizeof(*agent));
	agent->name = "counter";
	agent->subscriptions = counter__subscriptions;
	agent->migrations = counter__migrations;
	agent->n_migrations = sizeof(counter__migrations) / sizeof(counter__migrations[0]);
	agent->init = counter__init;
	agent->fini = counter__fini;
	agent->handle = counter__handle;
	agent->state = c;
	return MQP_OK;
}
