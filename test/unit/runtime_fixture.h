/* A runtime without a broker, for the unit tests of the outbox, the applier
 * and the clean stop: a real store and inbox in a throw-away directory, and
 * a fake session (session_ops.h) that records what is published and answers
 * as a test tells it. Header-only: each test file includes it once. */
#ifndef MQPIPE_TEST_RUNTIME_FIXTURE_H
#define MQPIPE_TEST_RUNTIME_FIXTURE_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "applier.h"
#include "deadletter.h"
#include "outbox.h"
#include "session_ops.h"

#define FAKE__MAX 256

/* What the fake session saw, in order: publishes, "offline", "disconnect". */
struct fake_event {
	char what[16]; /* "publish", "offline", "disconnect" */
	int64_t id;
	char topic[256];
	char payload[512];
	int has_correlation;
	char correlation[64];
};

struct fake_session {
	pthread_mutex_t lock;
	struct fake_event ev[FAKE__MAX];
	int n;
	int online, reconnected, bursting;
	int session_lost; /* the next session_lost() says so once */
	int auto_ack;     /* acknowledge each outbox row at once */
	int refuse_sends; /* this many next sends fail at once (MQP_ERR_MQTT) */
	struct outbox *outbox;
};

static inline int fake__publish(void *impl, int64_t id, const char *topic, const void *payload,
			 size_t len, int qos, int retain, const void *correlation,
			 size_t correlation_len)
{
	(void)qos;
	(void)retain;
	struct fake_session *f = impl;
	pthread_mutex_lock(&f->lock);
	if (f->refuse_sends > 0) {
		f->refuse_sends--;
		pthread_mutex_unlock(&f->lock);
		return MQP_ERR_MQTT;
	}
	cr_assert_lt(f->n, FAKE__MAX);
	struct fake_event *e = &f->ev[f->n++];
	memset(e, 0, sizeof(*e));
	strcpy(e->what, "publish");
	e->id = id;
	snprintf(e->topic, sizeof(e->topic), "%s", topic);
	snprintf(e->payload, sizeof(e->payload), "%.*s", (int)len, (const char *)payload);
	if (correlation) {
		e->has_correlation = 1;
		snprintf(e->correlation, sizeof(e->correlation), "%.*s", (int)correlation_len,
			 (const char *)correlation);
	}
	int ack = f->auto_ack && id > 0;
	pthread_mutex_unlock(&f->lock);
	if (ack)
		outbox__acked(f->outbox, id);
	return MQP_OK;
}

static inline void fake__note(struct fake_session *f, const char *what)
{
	pthread_mutex_lock(&f->lock);
	cr_assert_lt(f->n, FAKE__MAX);
	memset(&f->ev[f->n], 0, sizeof(f->ev[0]));
	strcpy(f->ev[f->n++].what, what);
	pthread_mutex_unlock(&f->lock);
}

static inline int fake__online(void *impl) { return ((struct fake_session *)impl)->online; }
static inline int fake__bursting(void *impl) { return ((struct fake_session *)impl)->bursting; }
static inline void fake__applied(void *impl) { (void)impl; }

static inline int fake__reconnected(void *impl)
{
	struct fake_session *f = impl;
	int r = f->reconnected;
	f->reconnected = 0;
	return r;
}

static inline int fake__session_lost(void *impl)
{
	struct fake_session *f = impl;
	int r = f->session_lost;
	f->session_lost = 0;
	return r;
}
static inline void fake__say_offline(void *impl, int wait_ms)
{
	(void)wait_ms;
	struct fake_session *f = impl;
	if (f->online)
		fake__note(f, "offline");
}

static inline void fake__disconnect(void *impl, int wait_ms)
{
	(void)wait_ms;
	fake__note(impl, "disconnect");
}


/* The fixture: one agent's runtime parts over a fresh directory. */
static struct fixture {
	char dir[64];
	struct mqp_options opts;
	struct mqp_store *store;
	struct mqp_inbox *inbox;
	struct mqp_metrics *metrics;
	struct deadletters dl;
	struct fake_session fake;
	struct session_ops ops;
	struct outbox *outbox;
	struct applier *applier;
	char reply_prefix[64];
} fx;

/* Opens the parts for agent (prefix "p": topics become p/...), with a
 * republish window of window_s seconds. */
static inline void fixture_open(const struct mqp_agent *agent, int window_s)
{
	char path[128];
	memset(&fx, 0, sizeof(fx));
	mqp_log_init(MQP_LOG_ERROR, MQP_LOG_KV, "test"); /* quiet: the tests assert, not the log */
	strcpy(fx.dir, "/tmp/mqpipe-rt-XXXXXX");
	cr_assert_not_null(mkdtemp(fx.dir));
	strcpy(fx.opts.prefix, "p");
	strcpy(fx.opts.client_id, "test-1");
	fx.opts.max_payload = 1024;
	fx.opts.republish_window_s = window_s;
	fx.opts.deadletter_max_bytes = 1 << 20;
	fx.opts.deadletter_max_age_ms = 3600 * 1000LL;
	snprintf(path, sizeof(path), "%s/a.db", fx.dir);
	cr_assert_eq(mqp_store_open(&fx.store, path, 0, agent->name, agent->migrations,
				    agent->n_migrations), 0);
	mqp_store_deadletter_bound(fx.store, fx.opts.deadletter_max_bytes);
	snprintf(path, sizeof(path), "%s/a.db.inbox", fx.dir);
	cr_assert_eq(mqp_inbox_open(&fx.inbox, path, 0, 0), 0);
	cr_assert_eq(mqp_metrics_new(&fx.metrics), 0);
	deadletter__init(&fx.dl, fx.store, fx.metrics, fx.opts.deadletter_max_bytes,
			 fx.opts.deadletter_max_age_ms);
	pthread_mutex_init(&fx.fake.lock, NULL);
	fx.fake.online = 1;
	fx.ops = (struct session_ops){fake__publish, fake__online, fake__reconnected, fake__bursting,
				      fake__applied, fake__say_offline, fake__disconnect,
				      fake__session_lost, &fx.fake};
	cr_assert_eq(outbox__new(&fx.outbox, fx.store, fx.metrics, &fx.dl, &fx.ops, window_s), 0);
	fx.fake.outbox = fx.outbox;
	if (agent->reply_prefix)
		cr_assert_eq(mqp_options_topic(&fx.opts, agent->reply_prefix, fx.reply_prefix,
					       sizeof(fx.reply_prefix)), 0);
	struct applier_parts ap = {agent, &fx.opts, fx.reply_prefix, fx.store, fx.inbox,
				   fx.metrics, fx.outbox, &fx.dl, &fx.ops, 0};
	cr_assert_eq(applier__new(&fx.applier, &ap), 0);
}

static inline void fixture_close(void)
{
	char cmd[128];
	applier__free(fx.applier);
	outbox__free(fx.outbox);
	mqp_inbox_close(fx.inbox);
	mqp_store_close(fx.store);
	mqp_metrics_free(fx.metrics);
	pthread_mutex_destroy(&fx.fake.lock);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx.dir);
	cr_assert_eq(system(cmd), 0);
}

/* Appends a message as the session would (topic with the prefix). */
static inline void fixture_append(const char *topic, const char *payload)
{
	cr_assert_eq(mqp_inbox_append(fx.inbox, topic, strlen(topic), payload, strlen(payload), 1,
				      mqp_now_us(), NULL), 0);
}

/* The one integer a query returns. */
static inline int64_t fixture_scalar(const char *sql)
{
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(mqp_store_db(fx.store), sql, -1, &st, NULL), SQLITE_OK, "%s",
		     sql);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The text a query returns (a static buffer). */
static inline const char *fixture_text(const char *sql)
{
	static char buf[512];
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(mqp_store_db(fx.store), sql, -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
	snprintf(buf, sizeof(buf), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}

/* How many publishes the fake saw on topic. */
static inline int fixture_published(const char *topic)
{
	int n = 0;
	pthread_mutex_lock(&fx.fake.lock);
	for (int i = 0; i < fx.fake.n; i++)
		n += strcmp(fx.fake.ev[i].what, "publish") == 0 && strcmp(fx.fake.ev[i].topic, topic) == 0;
	pthread_mutex_unlock(&fx.fake.lock);
	return n;
}

/* The last event the fake saw on topic (NULL when none). */
static inline const struct fake_event *fixture_last(const char *topic)
{
	const struct fake_event *e = NULL;
	for (int i = 0; i < fx.fake.n; i++)
		if (strcmp(fx.fake.ev[i].topic, topic) == 0)
			e = &fx.fake.ev[i];
	return e;
}

/* The test agent: stores each payload in t(v) and answers by what it says.
 *   "ok..."   emits it on "out"
 *   "bad"     refused: MQP_ERR_INPUT, reason "bad input"
 *   "boom"    emits on "out", stores, then refuses (all of it rolled back)
 *   "db"      MQP_ERR_DB (the store failed)
 *   "oops"    MQP_ERR_NOMEM (an internal error)
 *   "reply"   mqp_reply on fallback "answers" */
static const struct mqp_migration fixture_migrations[] = {{"CREATE TABLE t(v TEXT NOT NULL);"}};

static inline int fixture_handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			  struct mqp_reason *why)
{
	(void)state;
	char v[256];
	snprintf(v, sizeof(v), "%.*s", (int)msg->len, (const char *)msg->payload);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(mqp_store_db(fx.store), "INSERT INTO t(v) VALUES (?1)", -1, &st,
			       NULL) != SQLITE_OK)
		return MQP_ERR_DB;
	sqlite3_bind_text(st, 1, v, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st) == SQLITE_DONE ? MQP_OK : MQP_ERR_DB;
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (strncmp(v, "ok", 2) == 0)
		return mqp_emit_raw(ctx, "out", v, strlen(v));
	if (strcmp(v, "bad") == 0) {
		snprintf(why->text, sizeof(why->text), "bad input");
		return MQP_ERR_INPUT;
	}
	if (strcmp(v, "boom") == 0) {
		cr_assert_eq(mqp_emit_raw(ctx, "out", v, strlen(v)), 0);
		snprintf(why->text, sizeof(why->text), "boom after an output");
		return MQP_ERR_INPUT;
	}
	if (strcmp(v, "db") == 0)
		return MQP_ERR_DB;
	if (strcmp(v, "oops") == 0)
		return MQP_ERR_NOMEM;
	if (strcmp(v, "reply") == 0)
		return mqp_reply(ctx, "answers", "{\"status\":200}", 14);
	return MQP_OK;
}

/* The test agent's refusal hook: {"field":F,"message":M} as text. */
static inline char *fixture_refusal(const char *field, const char *message)
{
	char *text = malloc(strlen(field) + strlen(message) + 32);
	if (text)
		sprintf(text, "{\"field\":\"%s\",\"message\":\"%s\"}", field, message);
	return text;
}

static const char *const fixture_subscriptions[] = {"in", NULL};

/* The plain test agent, and one that answers requests under "replies/". */
__attribute__((unused)) static const struct mqp_agent fixture_agent = {
	.name = "test", .subscriptions = fixture_subscriptions,
	.migrations = fixture_migrations, .n_migrations = 1, .handle = fixture_handle};
__attribute__((unused)) static const struct mqp_agent fixture_responder = {
	.name = "test", .subscriptions = fixture_subscriptions,
	.migrations = fixture_migrations, .n_migrations = 1, .handle = fixture_handle,
	.reply_prefix = "replies/", .refusal = fixture_refusal};

#endif
