/* The applier: see applier.h. The handler's calls (mqp_emit, mqp_reply,
 * mqp_deadletter, mqp_ctx_*) are here too: they act on the step in hand. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "applier.h"
#include "clock.h"
#include "mqpipe/shard.h"

#define APPLIER__BATCH 2048        /* records per transaction at most */
#define APPLIER__IDLE_WAIT_MS 250  /* wake-up when idle (acks, heartbeat) */
#define APPLIER__BURST_WAIT_MS 1   /* how often to look for a burst's end (session_ops.h) */
#define APPLIER__GATHER_BELOW 64   /* a batch this small in a stream waits for more... */
#define APPLIER__GATHER_US 300     /* ...this long (µs) */
#define APPLIER__STREAM_US 3000    /* batches this close, with no outputs, make a quiet stream... */
#define APPLIER__STREAM_GATHER_US 2000 /* ...which waits this long (µs) for more */
#define APPLIER__RECLAIM_EVERY_MS 1000 /* free space is given back at most this often... */
#define APPLIER__RECLAIM_PAGES 512     /* ...this much at a time: 2 MiB, about a batch's work */
#define APPLIER__REPUBLISH_EVERY_MS 1000 /* a shard's republish request is answered at most this often */

struct applier {
	struct applier_parts p;
	size_t prefix_len; /* bytes of "prefix/" to strip from incoming topics */
	int64_t *batch_received_us;
	size_t n_batch;
	int64_t last_batch_us; /* when the last step that applied records ended (mqp_now_us) */
	size_t step_outputs;   /* outputs the last step sent */
	int64_t next_tick_ms; /* when the agent's tick wants to run, 0 = after the next batch */
	int64_t next_reclaim_ms; /* when to look for free space to give back */
	int reclaim_due;         /* the store has some: a step gives it back */
	int ask_republish_due;   /* the session was lost: a step asks for a republish */
	int64_t asked_ms;        /* when it last asked (Unix ms, 0: never): once a second at most */
	/* When each shard's republish request was last answered (Unix ms): an
	 * outsider repeating requests makes a producer resend at most this often. */
	int64_t republished_ms[MQP_SHARDS_MAX];
	char topic_buf[65536 + 1];
	char reply_buf[65536 + 1]; /* the applied message's response topic */
	pthread_t thread;
	int started;
	atomic_int stop, failed;
	atomic_int busy; /* inside a step: records taken from the inbox, outputs not yet sent */
	atomic_llong heartbeat_ms;
};

struct mqp_ctx {
	struct applier *a;
	const struct mqp_message *msg;
	/* Set by mqp_reply when the message's response topic is not under the
	 * agent's reply prefix: the fallback topic the answer goes to. */
	char refused_reply[256];
};

int applier__new(struct applier **out, const struct applier_parts *parts)
{
	struct applier *a = calloc(1, sizeof(*a));
	if (!a || !(a->batch_received_us = calloc(APPLIER__BATCH, sizeof(int64_t)))) {
		free(a);
		return MQP_ERR_NOMEM;
	}
	a->p = *parts;
	a->prefix_len = parts->opts->prefix[0] ? strlen(parts->opts->prefix) + 1 : 0;
	a->next_tick_ms = parts->agent->tick ? 1 : 0; /* a first tick at start resumes due work */
	*out = a;
	return MQP_OK;
}

void applier__free(struct applier *a)
{
	if (!a)
		return;
	free(a->batch_received_us);
	free(a);
}

/* ---- what handlers call -------------------------------------------------- */

/* Stages an output whose payload the applier now owns (freed on failure).
 * reply_to, when not NULL, is the absolute topic of a reply (no prefix), and
 * topic then only names it in the metrics; correlation goes with the reply. */
static int applier__emit_owned(struct applier *a, const char *topic, char *payload, size_t len,
			       const char *reply_to, const void *correlation, size_t correlation_len)
{
	char full[1024];
	struct outbox_output o = {reply_to, 0, topic, correlation, correlation_len};
	if (!reply_to) {
		if (mqp_options_topic(a->p.opts, topic, full, sizeof(full))) {
			free(payload);
			return MQP_ERR_INVAL;
		}
		o = (struct outbox_output){full, strlen(full) - strlen(topic), NULL, NULL, 0};
	}
	return outbox__stage(a->p.outbox, &o, payload, len);
}

/* A malloc'ed, NUL-terminated copy of len bytes, or NULL. */
static char *applier__copy(const char *payload, size_t len)
{
	char *copy = malloc(len + 1);
	if (copy) {
		memcpy(copy, payload, len);
		copy[len] = '\0';
	}
	return copy;
}

int mqp_emit(struct mqp_ctx *ctx, const char *topic, const cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	if (!text)
		return MQP_ERR_NOMEM;
	return applier__emit_owned(ctx->a, topic, text, strlen(text), NULL, NULL, 0);
}

int mqp_emit_raw(struct mqp_ctx *ctx, const char *topic, const char *payload, size_t len)
{
	char *copy = applier__copy(payload, len);
	if (!copy)
		return MQP_ERR_NOMEM;
	return applier__emit_owned(ctx->a, topic, copy, len, NULL, NULL, 0);
}

/* True when a reply may go to topic: it lies under the agent's reply prefix
 * (with the --prefix), or the agent has none. */
static int applier__reply_allowed(const struct applier *a, const char *topic)
{
	size_t n = strlen(a->p.reply_prefix);
	return n == 0 || (strncmp(topic, a->p.reply_prefix, n) == 0 && topic[n] != '\0');
}

int mqp_reply(struct mqp_ctx *ctx, const char *fallback_topic, const char *payload, size_t len)
{
	const struct mqp_message *m = ctx->msg;
	if (m && m->response_topic && !applier__reply_allowed(ctx->a, m->response_topic)) {
		/* Nothing goes where the requester pointed: applier__apply undoes
		 * the message's effects and answers on the fallback topic. */
		int n = snprintf(ctx->refused_reply, sizeof(ctx->refused_reply), "%s", fallback_topic);
		return n > 0 && (size_t)n < sizeof(ctx->refused_reply) ? MQP_OK : MQP_ERR_INVAL;
	}
	char *copy = applier__copy(payload, len);
	if (!copy)
		return MQP_ERR_NOMEM;
	if (!m || !m->response_topic)
		return applier__emit_owned(ctx->a, fallback_topic, copy, len, NULL, NULL, 0);
	return applier__emit_owned(ctx->a, fallback_topic, copy, len, m->response_topic,
				   m->correlation, m->correlation_len);
}

int64_t mqp_ctx_unacked(struct mqp_ctx *ctx)
{
	return outbox__depth(ctx->a->p.outbox) + (int64_t)outbox__staged(ctx->a->p.outbox);
}

int mqp_ctx_shard_topic(struct mqp_ctx *ctx, const char *topic, const char *key, char *buf,
			size_t size)
{
	uint32_t shards = (uint32_t)ctx->a->p.opts->shards;
	return mqp_shard_topic(shards, mqp_shard_of(key, strlen(key), shards), topic, buf, size);
}

int mqp_ctx_owns(struct mqp_ctx *ctx, const char *key)
{
	const struct mqp_options *o = ctx->a->p.opts;
	return !o->sharded || o->shards <= 1 ||
	       mqp_shard_of(key, strlen(key), (uint32_t)o->shards) == (uint32_t)o->shard;
}

int mqp_ctx_check_owner(struct mqp_ctx *ctx, const char *what, const char *key,
			struct mqp_reason *why)
{
	if (mqp_ctx_owns(ctx, key))
		return MQP_OK;
	const struct mqp_options *o = ctx->a->p.opts;
	return mqp_reason_set(why, "%s '%.64s' is of shard %u of %d, not of this instance's shard %d "
			      "(publish it on shard/%u/…, or through mqpipe-router)",
			      what, key, (unsigned)mqp_shard_of(key, strlen(key), (uint32_t)o->shards),
			      o->shards, o->shard,
			      (unsigned)mqp_shard_of(key, strlen(key), (uint32_t)o->shards));
}

const char *mqp_ctx_client_id(struct mqp_ctx *ctx)
{
	return ctx->a->p.opts->client_id;
}

/* Stores and announces the message in ctx as a dead letter. */
static int applier__deadletter(struct mqp_ctx *ctx, const char *reason)
{
	struct applier *a = ctx->a;
	const struct mqp_message *m = ctx->msg;
	char qt[300], qr[600];
	mqp_warn("deadletter", "topic=%s reason=%s", mqp_log_quote(qt, sizeof(qt), m->topic),
		 mqp_log_quote(qr, sizeof(qr), reason));
	int rc = deadletter__keep(a->p.deadletters, m->topic, reason, m->payload, m->len,
				  m->received_ms);
	if (rc < 0)
		return rc;
	cJSON *ev = mqp_deadletter_event(a->p.agent->name, m->topic, reason, m->payload, m->len,
					 m->received_ms);
	if (!ev)
		return MQP_ERR_NOMEM;
	char topic[1024];
	snprintf(topic, sizeof(topic), "deadletter/%s", m->topic);
	rc = mqp_emit(ctx, topic, ev);
	cJSON_Delete(ev);
	if (!rc)
		mqp_metrics_deadletter(a->p.metrics);
	return rc;
}

int mqp_deadletter(struct mqp_ctx *ctx, const char *reason)
{
	/* Inside the handler's savepoint: it stands or falls with the handler's
	 * other effects. */
	return ctx->msg ? applier__deadletter(ctx, reason) : MQP_ERR_INVAL;
}

/* ---- refusals ------------------------------------------------------------ */

/* Answers a request the agent never saw (its payload was over the limit) on
 * its response topic, with the agent's refusal naming the body (none
 * without the hook). Returns 0 or MQP_ERR_NOMEM. */
static int applier__refuse_request(struct mqp_ctx *ctx, const char *reason)
{
	if (!ctx->a->p.agent->refusal)
		return MQP_OK;
	char *text = ctx->a->p.agent->refusal("body", reason);
	if (!text)
		return MQP_ERR_NOMEM;
	int rc = mqp_reply(ctx, ctx->msg->response_topic, text, strlen(text));
	free(text);
	return rc;
}

/* The handler answered a request whose response topic is not under the
 * reply prefix (mqp_reply noted the fallback topic): its effects are already
 * rolled back; the answer is the agent's refusal naming the response topic,
 * on the fallback topic (with the --prefix), or without the hook a dead
 * letter. Returns 0 or a negative error. */
static int applier__refuse_reply(struct mqp_ctx *ctx)
{
	struct applier *a = ctx->a;
	const char *to = ctx->msg->response_topic;
	size_t n = strlen(to) + strlen(a->p.reply_prefix) + 100;
	char *why = malloc(n), qt[300], qf[300];
	if (!why)
		return MQP_ERR_NOMEM;
	snprintf(why, n, "response topic '%s' is not under '%s' (--reply-prefix): answered here instead",
		 to, a->p.reply_prefix);
	if (!a->p.agent->refusal) { /* no answer of the agent's: the dead letter says it */
		int rc = applier__deadletter(ctx, why);
		free(why);
		return rc;
	}
	char *text = a->p.agent->refusal("response_topic", why);
	free(why);
	if (!text)
		return MQP_ERR_NOMEM;
	mqp_warn("reply_refused", "response_topic=%s fallback=%s", mqp_log_quote(qt, sizeof(qt), to),
		 mqp_log_quote(qf, sizeof(qf), ctx->refused_reply));
	return applier__emit_owned(a, ctx->refused_reply, text, strlen(text), NULL, NULL, 0);
}

/* A record whose payload was over --max-payload (only its start is kept):
 * answered with the agent's refusal when it is a request, and dead-lettered. */
static int applier__refuse_oversize(struct mqp_ctx *ctx, uint64_t cut_from)
{
	struct applier *a = ctx->a;
	char why[sizeof(((struct mqp_reason *)0)->text)];
	snprintf(why, sizeof(why),
		 "payload of %llu bytes is over the limit of %ld (--max-payload); its first %zu bytes are kept",
		 (unsigned long long)cut_from, a->p.opts->max_payload, ctx->msg->len);
	/* A response topic off the reply prefix gets no answer here: the
	 * runtime does not know the agent's fallback topic; the dead letter
	 * says it all. */
	const char *to = ctx->msg->response_topic;
	int rc = to && applier__reply_allowed(a, to) ? applier__refuse_request(ctx, why) : MQP_OK;
	return rc ? rc : applier__deadletter(ctx, why);
}

/* ---- a step -------------------------------------------------------------- */

/* The message a record holds, its topic without the --prefix (in the
 * applier's buffers: valid until the next record). */
static struct mqp_message applier__message(struct applier *a, const struct mqp_inbox_record *rec)
{
	const char *topic = rec->topic;
	size_t tlen = rec->topic_len;
	const char *prefix = a->p.opts->prefix;
	if (a->prefix_len && tlen > a->prefix_len && memcmp(topic, prefix, a->prefix_len - 1) == 0 &&
	    topic[a->prefix_len - 1] == '/') {
		topic += a->prefix_len;
		tlen -= a->prefix_len;
	}
	/* A shard's input: the handler sees the topic without shard/<K>/. */
	uint32_t k;
	const struct mqp_options *o = a->p.opts;
	size_t level = o->sharded ? mqp_shard_level(topic, tlen, (uint32_t)o->shards, &k) : 0;
	if (level && k == (uint32_t)o->shard) {
		topic += level;
		tlen -= level;
	}
	memcpy(a->topic_buf, topic, tlen);
	a->topic_buf[tlen] = '\0';
	struct mqp_message msg = {a->topic_buf, rec->payload, rec->payload_len,
				  rec->received_us / 1000, NULL, rec->correlation, rec->correlation_len};
	if (rec->response_topic) {
		memcpy(a->reply_buf, rec->response_topic, rec->response_topic_len);
		a->reply_buf[rec->response_topic_len] = '\0';
		msg.response_topic = a->reply_buf;
	}
	mqp_metrics_in(a->p.metrics, a->topic_buf, tlen);
	return msg;
}

/* mqp_inbox_read callback: applies one record inside its own savepoint. A
 * negative return stops the batch: the transaction is rolled back and the
 * agent exits without acknowledging anything more. */
/* When msg is a republish request (mqpipe/republish/<K>, with --shards
 * above 1: README "Scaling out"), sets *shard to K and returns 1; else 0. */
static int applier__republish_request(const struct applier *a, const struct mqp_message *msg,
				      uint32_t *shard)
{
	const size_t n = sizeof(MQP_REPUBLISH_TOPIC) - 1;
	long k;
	return a->p.opts->shards > 1 && strncmp(msg->topic, MQP_REPUBLISH_TOPIC "/", n + 1) == 0 &&
	       mqp_parse_long(msg->topic + n + 1, 0, a->p.opts->shards - 1, &k) == MQP_OK &&
	       (*shard = (uint32_t)k, 1);
}

/* Answers a republish request for shard k: the outputs for that shard the
 * broker acknowledged within --republish-window are sent again, at most
 * once a second per shard. Returns 0 or MQP_ERR_DB. */
static int applier__republish_shard(struct applier *a, uint32_t k, int64_t now_ms)
{
	char level[64], under[1024];
	if (now_ms - a->republished_ms[k] < APPLIER__REPUBLISH_EVERY_MS) {
		mqp_info("republish_request_skipped", "shard=%u reason=\"answered less than a second ago\"",
			 (unsigned)k);
		return MQP_OK;
	}
	a->republished_ms[k] = now_ms;
	snprintf(level, sizeof(level), MQP_SHARD_LEVEL "/%u/", (unsigned)k);
	if (mqp_options_topic(a->p.opts, level, under, sizeof(under)))
		return MQP_OK; /* no output of ours can lie under a prefix that long */
	return outbox__republish_under(a->p.outbox, now_ms, under);
}

static int applier__apply(void *arg, const struct mqp_inbox_record *rec)
{
	struct applier *a = arg;
	struct mqp_message msg = applier__message(a, rec);
	struct mqp_ctx ctx = {a, &msg, ""};
	struct mqp_reason why = {""};
	uint32_t shard;
	a->batch_received_us[a->n_batch++] = rec->received_us;
	if (rec->cut_from)
		return applier__refuse_oversize(&ctx, rec->cut_from);
	if (applier__republish_request(a, &msg, &shard)) /* the runtime's, not the handler's */
		return applier__republish_shard(a, shard, mqp_now_ms());
	size_t staged_before = outbox__staged(a->p.outbox);
	int rc = mqp_store_savepoint(a->p.store);
	if (rc)
		return rc;
	rc = a->p.agent->handle(a->p.agent->state, &ctx, &msg, &why);
	if (rc == MQP_OK && !ctx.refused_reply[0])
		return mqp_store_release(a->p.store);
	mqp_store_rollback_savepoint(a->p.store);
	outbox__unstage(a->p.outbox, staged_before);
	if (rc == MQP_ERR_DB)
		return rc;
	if (ctx.refused_reply[0]) /* nothing stored, nothing sent where it pointed */
		return applier__refuse_reply(&ctx);
	if (rc != MQP_ERR_INPUT) {
		mqp_metrics_error(a->p.metrics);
		snprintf(why.text, sizeof(why.text), "internal error: %s", mqp_strerror(rc));
	}
	return applier__deadletter(&ctx, why.text);
}

/* Runs the agent's tick (inside the open transaction) and notes when it
 * wants to run again. */
static int applier__tick(struct applier *a)
{
	struct mqp_ctx ctx = {a, NULL, ""};
	int64_t next = 0;
	int rc = a->p.agent->tick(a->p.agent->state, &ctx, mqp_now_ms(), &next);
	a->next_tick_ms = next;
	return rc;
}

/* Whether a republish request is to be sent now: one is due, and the last
 * went out long enough ago (mqp_shard_ask_at); a later one waits. */
static int applier__ask_due(const struct applier *a, int64_t now_ms)
{
	return a->ask_republish_due && now_ms >= mqp_shard_ask_at(a->asked_ms, now_ms);
}

/* Asks the producers for shard K's recent outputs, through the outbox like
 * any output (README "Scaling out"). Returns 0 or a negative error. */
static int applier__ask_republish(struct applier *a)
{
	const struct mqp_options *o = a->p.opts;
	char topic[64];
	a->ask_republish_due = 0;
	a->asked_ms = mqp_now_ms();
	snprintf(topic, sizeof(topic), MQP_REPUBLISH_TOPIC "/%d", o->shard);
	cJSON *ask = cJSON_CreateObject();
	char *payload = ask && mqp_json_add_uint(ask, "shard", (uint64_t)o->shard) &&
				mqp_json_add_uint(ask, "shards", (uint64_t)o->shards) &&
				cJSON_AddStringToObject(ask, "client_id", o->client_id)
			? cJSON_PrintUnformatted(ask)
			: NULL;
	cJSON_Delete(ask);
	if (!payload)
		return MQP_ERR_NOMEM;
	mqp_info("republish_asked", "shard=%d topic=%s", o->shard, topic);
	return applier__emit_owned(a, topic, payload, strlen(payload), NULL, NULL, 0);
}

/* The body of a step's transaction. Returns records applied or an error. */
static int applier__step_body(struct applier *a)
{
	int rc = deadletter__expire(a->p.deadletters, mqp_now_ms());
	if (!rc)
		rc = outbox__note(a->p.outbox, mqp_now_ms());
	int n = rc ? rc : mqp_inbox_read(a->p.inbox, APPLIER__BATCH, applier__apply, a);
	if (n > 0)
		rc = mqp_store_meta_set(a->p.store, "inbox_seq", (int64_t)mqp_inbox_last_seq(a->p.inbox));
	if (n >= 0 && !rc && applier__ask_due(a, mqp_now_ms()))
		rc = applier__ask_republish(a);
	if (n >= 0 && !rc && a->p.agent->tick)
		rc = applier__tick(a);
	if (n >= 0 && !rc && a->reclaim_due) { /* README "Space" */
		int back = mqp_store_reclaim(a->p.store, APPLIER__RECLAIM_PAGES);
		rc = back < 0 ? back : MQP_OK;
		a->reclaim_due = back == APPLIER__RECLAIM_PAGES;
	}
	return n < 0 ? n : rc ? rc : n;
}

static int applier__step_locked(struct applier *a);

int applier__step(struct applier *a)
{
	atomic_store(&a->busy, 1); /* before the inbox read empties the backlog */
	int rc = applier__step_locked(a);
	atomic_store(&a->busy, 0); /* after the flush counted its outputs in flight */
	return rc;
}

/* applier__step inside its busy mark. */
static int applier__step_locked(struct applier *a)
{
	int rc = mqp_store_begin(a->p.store);
	if (rc)
		return rc;
	a->n_batch = 0;
	int n = applier__step_body(a);
	if (n < 0 || (rc = mqp_store_commit(a->p.store))) {
		mqp_store_rollback(a->p.store);
		outbox__unstage(a->p.outbox, 0);
		return n < 0 ? n : rc;
	}
	if (n > 0 && mqp_inbox_applied(a->p.inbox)) /* only a failed shrink: harmless */
		mqp_warn("inbox_shrink_failed", "msg=\"%s\"", strerror(errno));
	a->step_outputs = outbox__staged(a->p.outbox);
	outbox__flush(a->p.outbox);
	int64_t now = mqp_now_us();
	for (size_t i = 0; i < a->n_batch; i++) /* replays from before this start are not timed */
		if (a->batch_received_us[i] >= a->p.start_us)
			mqp_metrics_handled(a->p.metrics, (uint64_t)(now - a->batch_received_us[i]));
	return n;
}

/* ---- the loop ------------------------------------------------------------ */

/* How long the loop may wait for records: until the tick is due, and only a
 * millisecond while a burst arrives (its end is looked for). */
static int applier__wait_ms(struct applier *a)
{
	const struct session_ops *s = a->p.session;
	int wait_ms = s->bursting(s->impl) ? APPLIER__BURST_WAIT_MS : APPLIER__IDLE_WAIT_MS;
	if (a->next_tick_ms) {
		int64_t until = a->next_tick_ms - mqp_now_ms();
		wait_ms = until <= 0 ? 0 : until < wait_ms ? (int)until : wait_ms;
	}
	if (a->ask_republish_due) { /* a request waiting for its second */
		int64_t until = mqp_shard_ask_at(a->asked_ms, mqp_now_ms()) - mqp_now_ms();
		wait_ms = until <= 0 ? 0 : until < wait_ms ? (int)until : wait_ms;
	}
	return wait_ms;
}

int applier__turn(struct applier *a, int stopping)
{
	const struct session_ops *s = a->p.session;
	atomic_store(&a->heartbeat_ms, clock__mono_ms());
	int ready = mqp_inbox_wait(a->p.inbox, stopping ? 0 : applier__wait_ms(a));
	int outcomes = outbox__has_outcomes(a->p.outbox);
	int rc = MQP_OK;
	if (outbox__has_failures(a->p.outbox) && s->online(s->impl))
		rc = outbox__retry(a->p.outbox);
	if (!rc && s->online(s->impl) && s->reconnected(s->impl))
		rc = outbox__republish(a->p.outbox, mqp_now_ms());
	/* An owner of a shard of several whose session the broker no longer had
	 * (a cluster node lost with it): what was queued for it may be gone. */
	if (s->session_lost && s->session_lost(s->impl) && a->p.opts->sharded &&
	    a->p.opts->shards > 1 && !a->p.opts->ask_republish_off)
		a->ask_republish_due = 1;
	if (rc)
		return rc;
	int64_t now = mqp_now_ms();
	if (now >= a->next_reclaim_ms) { /* a look at the file's header, once a second */
		a->next_reclaim_ms = now + APPLIER__RECLAIM_EVERY_MS;
		a->reclaim_due = a->reclaim_due || mqp_store_reclaimable(a->p.store) > 0;
	}
	int tick_due = applier__ask_due(a, now) || (a->next_tick_ms && now >= a->next_tick_ms) ||
		       deadletter__due(a->p.deadletters, now) || a->reclaim_due;
	if (ready || outcomes || tick_due) {
		int n = applier__step(a);
		if (n < 0)
			return n;
		if (n > 0) {
			s->applied(s->impl);
			/* In a stream, a transaction and a wake-up per handful of
			 * records cost more than the records (SQLite's locks and
			 * WAL writes are per transaction): after a small batch
			 * while more keep coming, let them gather briefly. A
			 * stream whose records send nothing (the counter's
			 * recv_message) has nobody waiting on it: it gathers
			 * longer, so an instance fed a few thousand records a
			 * second (one shard of several) commits per batch, not
			 * per record (README "Performance", "Shards"). Records
			 * are acknowledged once in the inbox either way. */
			int64_t t = mqp_now_us();
			int quiet = a->step_outputs == 0 && t - a->last_batch_us < APPLIER__STREAM_US;
			a->last_batch_us = t;
			if (quiet && n < APPLIER__GATHER_BELOW)
				usleep(APPLIER__STREAM_GATHER_US);
			else if (n < APPLIER__GATHER_BELOW && mqp_inbox_backlog(a->p.inbox) > 0)
				usleep(APPLIER__GATHER_US);
			return 1;
		}
	}
	if (!ready)
		s->applied(s->impl);
	return stopping && !ready ? 0 : 1;
}

/* The thread: rounds until stopped or failed. A failure is logged here,
 * once; the lifecycle sees applier__failed and ends the process. */
static void *applier__main(void *arg)
{
	struct applier *a = arg;
	int rc;
	while ((rc = applier__turn(a, atomic_load(&a->stop))) > 0)
		;
	if (rc < 0) {
		mqp_error("applier_failed", "msg=\"%s\" action=exit", mqp_strerror(rc));
		atomic_store(&a->failed, rc);
	}
	return NULL;
}

int applier__start(struct applier *a)
{
	atomic_store(&a->heartbeat_ms, clock__mono_ms());
	if (pthread_create(&a->thread, NULL, applier__main, a))
		return MQP_ERR_NOMEM;
	a->started = 1;
	return MQP_OK;
}

int applier__stop(struct applier *a)
{
	if (a->started) {
		atomic_store(&a->stop, 1);
		mqp_inbox_wake(a->p.inbox);
		pthread_join(a->thread, NULL);
		a->started = 0;
	}
	return atomic_load(&a->failed);
}

int applier__failed(struct applier *a)
{
	return atomic_load(&a->failed);
}

int applier__busy(struct applier *a)
{
	return atomic_load(&a->busy);
}

int64_t applier__heartbeat_ms(struct applier *a)
{
	return atomic_load(&a->heartbeat_ms);
}
