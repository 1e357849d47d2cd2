/* The agent runtime: see mqpipe/runtime.h.
 *
 * Threads: Paho's receive thread appends each message to the durable inbox and
 * returns 1 (so the PUBACK leaves only once the bytes are in the kernel); the
 * applier thread owns the store and moves inbox records into SQLite in batched
 * transactions, publishing outputs after each commit; the main thread handles
 * signals, connection retries, metrics and the systemd watchdog. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "mqpipe/inbox.h"
#include "mqpipe/metrics.h"
#include "mqpipe/net.h"
#include "mqpipe/notify.h"
#include "mqpipe/rxbuf.h"
#include "mqpipe/runtime.h"

#define RUNTIME__BATCH 2048          /* records per transaction at most */
#define RUNTIME__IDLE_WAIT_MS 250    /* applier wake-up when idle (acks, heartbeat) */
#define RUNTIME__EX_SOFTWARE 70      /* sysexits.h: our own failure, systemd restarts */
#define RUNTIME__GATHER_BELOW 64     /* a batch this small in a stream waits for more... */
#define RUNTIME__GATHER_US 300        /* ...this long (µs) */
#define RUNTIME__CUT_KEEP 256       /* bytes of an over-long payload kept for its dead letter */
#define RUNTIME__PUBACK 4            /* MQTT control packet type (Paho keeps its enum private) */
#define RUNTIME__MIN_RECEIVE_MAX 1000 /* below it, warn at connect (net.h) */
#define RUNTIME__ID_STATUS (-1)      /* send contexts that are not outbox rows */
#define RUNTIME__ID_OFFLINE (-2)
#define RUNTIME__ID_METRICS (-3)
#define RUNTIME__EXPIRE_EVERY_MS 60000 /* dead letters past --deadletter-max-age: looked for */
#define RUNTIME__EXPIRE_MIN_MS 1000    /* ...this often, or a quarter of a shorter age, >= 1 s */
#define RUNTIME__LOCK_WAIT_MS 2000     /* a held state: tried again this long before exit 75 */

/* An output written to the outbox in the open transaction, sent after commit. */
struct runtime__output {
	int64_t id;
	char *topic;   /* with prefix, or a reply's response topic as it came */
	char *payload;
	size_t len;
	int qos, retain;
	size_t rel;    /* offset of the topic without prefix, for metrics */
	char *label;   /* a reply's metrics topic (its fallback topic), else NULL */
	void *correlation; /* a reply's correlation data, else NULL */
	size_t correlation_len;
};

/* A growable list of int64 ids shared between Paho's threads and the applier. */
struct runtime__ids {
	int64_t *v;
	size_t n, cap;
};

/* Outbox rows the broker refused for good, with its reason codes (Paho's
 * threads add, the applier takes). */
struct runtime__refusals {
	struct runtime__refusal {
		int64_t id;
		int reason;
	} *v;
	size_t n, cap;
};

struct mqp_ctx {
	struct runtime *rt;
	const struct mqp_message *msg;
	/* Set by mqp_reply when the message's response topic is not under the
	 * agent's reply prefix: the fallback topic the 400 goes to. */
	char refused_reply[256];
};

struct runtime {
	const struct mqp_agent *agent;
	struct mqp_options opts;
	struct mqp_store *store;
	struct mqp_state_lock state_lock; /* mqp_store_lock; {-1, -1} until taken */
	struct mqp_inbox *inbox;
	struct mqp_metrics *metrics;
	MQTTAsync client;
	char status_topic[300], metrics_topic[300];
	char *online_payload, *offline_payload;
	char **subs;
	int *subs_qos;
	MQTTSubscribe_options *subs_options;
	int n_subs;
	size_t prefix_len; /* bytes of "prefix/" to strip from incoming topics */
	char reply_prefix[1100]; /* response topics must start with it ("" = any) */

	/* Connection (callbacks set, main thread reads). */
	MQTTAsync_connectOptions conn;
	MQTTAsync_willOptions will;
	MQTTProperties conn_props;
	MQTTAsync_SSLOptions ssl;
	atomic_int connect_failed, subscribe_failed, online, ever_online, offline_acked, disconnected;
	atomic_int connects;       /* successful connects so far */
	atomic_int republish_due;  /* reconnected: publish the republish window again */
	int64_t next_outbox_purge_ms;
	long republished;          /* rows sent by the last runtime__republish */
	/* Adaptive Nagle (see runtime__on_message): the broker socket, whether
	 * TCP_NODELAY is on, and when the last message arrived. */
	atomic_int broker_fd, nodelay_on;
	atomic_llong last_arrival_us;
	unsigned arrivals; /* receive thread only */

	/* Applier (thread and what it alone touches). */
	pthread_t applier;
	atomic_int applier_stop;
	atomic_llong heartbeat_ms;
	struct runtime__output *outputs;
	size_t n_outputs, cap_outputs;
	int64_t *batch_received_us;
	size_t n_batch;
	int64_t next_tick_ms; /* when the agent's tick wants to run, 0 = after the next batch */
	int64_t next_expire_ms; /* when to drop dead letters past --deadletter-max-age (0: at once) */
	int deadletter_bound_said; /* the first drop for the bound is logged, the rest counted */
	char topic_buf[65536 + 1];
	char reply_buf[65536 + 1]; /* the applied message's response topic */
	atomic_llong outbox_depth;
	int64_t start_us;

	/* Shared with Paho's callbacks. */
	pthread_mutex_t lock;
	struct runtime__ids acked, failed;
	struct runtime__refusals refused;
	atomic_long inflight;
};

static struct runtime runtime__rt; /* one runtime per process */

int64_t mqp_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mqp_now_ms(void)
{
	return mqp_now_us() / 1000;
}

static int64_t runtime__mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends id to list under rt->lock. Returns 0 or MQP_ERR_NOMEM. */
static int runtime__ids_push(struct runtime__ids *ids, int64_t id)
{
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 256;
		int64_t *v = realloc(ids->v, cap * sizeof(*v));
		if (!v)
			return MQP_ERR_NOMEM;
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->n++] = id;
	return MQP_OK;
}

/* Moves the shared list into *out (which must be empty), leaving it empty. */
static void runtime__ids_take(struct runtime *rt, struct runtime__ids *shared,
			      struct runtime__ids *out)
{
	pthread_mutex_lock(&rt->lock);
	*out = *shared;
	memset(shared, 0, sizeof(*shared));
	pthread_mutex_unlock(&rt->lock);
}

/* ---- dead letters -------------------------------------------------------- */

/* True when payload[0..len) can travel as a JSON string at about its own
 * size: UTF-8 without control bytes other than tab, LF and CR (each other
 * one would grow six-fold as \u00XX: a 1 MiB payload of them, 6 MiB). */
static int runtime__plain_text(const void *payload, size_t len)
{
	const unsigned char *p = payload;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return 0;
	return mqp_utf8_valid(payload, len);
}

cJSON *mqp_deadletter_event(const char *agent, const char *topic, const char *reason,
			    const void *payload, size_t len, int64_t received_ms)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	int ok = cJSON_AddStringToObject(o, "agent", agent) &&
		 cJSON_AddStringToObject(o, "topic", topic) &&
		 cJSON_AddStringToObject(o, "reason", reason);
	if (ok && runtime__plain_text(payload, len)) {
		char *text = malloc(len + 1);
		ok = text != NULL;
		if (ok) {
			memcpy(text, payload, len);
			text[len] = '\0';
			ok = cJSON_AddStringToObject(o, "payload", text) != NULL;
			free(text);
		}
	} else if (ok) {
		char *b64 = mqp_base64_encode(payload, len);
		ok = b64 && cJSON_AddStringToObject(o, "payload_b64", b64);
		free(b64);
	}
	ok = ok && mqp_json_add_uint(o, "received_at", (uint64_t)received_ms);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- outputs ------------------------------------------------------------- */

static void runtime__on_sent(void *context, MQTTAsync_successData5 *response)
{
	(void)response;
	struct runtime *rt = &runtime__rt;
	int64_t id = (int64_t)(intptr_t)context;
	if (id == RUNTIME__ID_OFFLINE)
		atomic_store(&rt->offline_acked, 1);
	if (id <= 0)
		return;
	pthread_mutex_lock(&rt->lock);
	int rc = runtime__ids_push(&rt->acked, id);
	pthread_mutex_unlock(&rt->lock);
	atomic_fetch_sub(&rt->inflight, 1);
	if (rc) /* the row stays in the outbox and is sent again at the next start */
		mqp_error("ack_lost", "id=%lld msg=\"out of memory\"", (long long)id);
}

/* True for a PUBACK reason code that sending again cannot change: the
 * broker refused the topic or the payload (MQTT 5, 3.4.2.1), e.g. an ACL's
 * "not authorized". Quota exceeded and unspecified errors may pass later. */
static int runtime__refused_for_good(const MQTTAsync_failureData5 *r)
{
	return r && r->packet_type == RUNTIME__PUBACK &&
	       r->reasonCode >= MQTTREASONCODE_IMPLEMENTATION_SPECIFIC_ERROR &&
	       r->reasonCode != MQTTREASONCODE_QUOTA_EXCEEDED;
}

static void runtime__on_send_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct runtime *rt = &runtime__rt;
	int64_t id = (int64_t)(intptr_t)context;
	if (runtime__refused_for_good(response)) {
		/* Sending again would be refused again, and Paho drops the
		 * connection after each refusal: an outbox row leaves the outbox
		 * as a dead letter (the applier moves it, runtime__note_refused),
		 * so neither a reconnect nor a restart sends it again (README
		 * "Security"). Logged here, once. */
		mqp_error("publish_refused", "id=%lld reason=%d msg=\"%s\" action=\"%s\"",
			  (long long)id, (int)response->reasonCode,
			  MQTTReasonCode_toString(response->reasonCode),
			  id > 0 ? "dead-lettered" : "dropped");
		if (id <= 0)
			return;
		pthread_mutex_lock(&rt->lock);
		int rc = MQP_OK;
		if (rt->refused.n == rt->refused.cap) {
			size_t cap = rt->refused.cap ? rt->refused.cap * 2 : 64;
			struct runtime__refusal *v = realloc(rt->refused.v, cap * sizeof(*v));
			if (v) {
				rt->refused.v = v;
				rt->refused.cap = cap;
			} else {
				rc = MQP_ERR_NOMEM;
			}
		}
		if (!rc)
			rt->refused.v[rt->refused.n++] =
				(struct runtime__refusal){id, (int)response->reasonCode};
		pthread_mutex_unlock(&rt->lock);
		atomic_fetch_sub(&rt->inflight, 1);
		if (rc) /* the row stays in the outbox: refused again at the next start */
			mqp_error("refusal_lost", "id=%lld msg=\"out of memory\"", (long long)id);
		return;
	}
	mqp_warn("publish_failed", "id=%lld code=%d msg=\"%s\"", (long long)id,
		 response ? response->code : 0,
		 response && response->message ? response->message : "");
	if (id <= 0)
		return;
	pthread_mutex_lock(&rt->lock);
	int rc = runtime__ids_push(&rt->failed, id);
	pthread_mutex_unlock(&rt->lock);
	atomic_fetch_sub(&rt->inflight, 1);
	if (rc)
		mqp_error("retry_lost", "id=%lld msg=\"out of memory\"", (long long)id);
}

/* Publishes one message at QoS qos, with MQTT 5 correlation data when it is
 * not NULL; id >0 is an outbox row, else a RUNTIME__ID_*. A refused send of an
 * outbox row is queued for retry. Returns 0 or MQP_ERR_MQTT. */
static int runtime__send(struct runtime *rt, int64_t id, const char *topic, const void *payload,
			 size_t len, int qos, int retain, const void *correlation,
			 size_t correlation_len)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = qos;
	msg.retained = retain;
	ro.onSuccess5 = runtime__on_sent;
	ro.onFailure5 = runtime__on_send_failed;
	ro.context = (void *)(intptr_t)id;
	if (correlation) { /* Paho copies the property list, and sends it */
		MQTTProperty prop = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
		prop.value.data.data = (char *)correlation;
		prop.value.data.len = (int)correlation_len;
		if (MQTTProperties_add(&msg.properties, &prop))
			mqp_warn("correlation_dropped", "topic=%s", topic);
	}
	if (id > 0)
		atomic_fetch_add(&rt->inflight, 1);
	int rc = MQTTAsync_sendMessage(rt->client, topic, &msg, &ro);
	MQTTProperties_free(&msg.properties);
	if (rc == MQTTASYNC_SUCCESS)
		return MQP_OK;
	if (id > 0) {
		atomic_fetch_sub(&rt->inflight, 1);
		pthread_mutex_lock(&rt->lock);
		int pushed = runtime__ids_push(&rt->failed, id);
		pthread_mutex_unlock(&rt->lock);
		if (pushed) /* still in the outbox: published again at the next start */
			mqp_error("retry_lost", "id=%lld msg=\"out of memory\"", (long long)id);
	}
	char qt[300];
	mqp_debug("publish_refused", "topic=%s code=%d", mqp_log_quote(qt, sizeof(qt), topic), rc);
	return MQP_ERR_MQTT;
}

/* mqp_store_outbox_* callback: sends a stored outbox row. */
static int runtime__send_row(void *ctx, const struct mqp_outbox_row *row)
{
	runtime__send(ctx, row->id, row->topic, row->payload, row->len, row->qos, row->retain,
		      row->correlation, row->correlation_len);
	return 0;
}

/* Queues an output whose payload the runtime now owns (freed on failure).
 * reply_to, when not NULL, is the absolute topic of a reply (no prefix), and
 * topic then only names it in the metrics; correlation goes with the reply. */
static int runtime__emit_owned(struct runtime *rt, const char *topic, char *payload, size_t len,
			       const char *reply_to, const void *correlation, size_t correlation_len)
{
	if (rt->n_outputs == rt->cap_outputs) {
		size_t cap = rt->cap_outputs ? rt->cap_outputs * 2 : 64;
		struct runtime__output *v = realloc(rt->outputs, cap * sizeof(*v));
		if (!v) {
			free(payload);
			return MQP_ERR_NOMEM;
		}
		rt->outputs = v;
		rt->cap_outputs = cap;
	}
	struct runtime__output *out = &rt->outputs[rt->n_outputs];
	memset(out, 0, sizeof(*out));
	out->payload = payload;
	out->len = len;
	out->qos = 1;
	char full[1024];
	int rc = MQP_OK;
	if (reply_to) {
		out->topic = strdup(reply_to);
		out->label = strdup(topic);
		if (correlation && (out->correlation = malloc(correlation_len ? correlation_len : 1)))
			memcpy(out->correlation, correlation, correlation_len);
		out->correlation_len = correlation_len;
		if (!out->topic || !out->label || (correlation && !out->correlation))
			rc = MQP_ERR_NOMEM;
	} else if (mqp_options_topic(&rt->opts, topic, full, sizeof(full))) {
		rc = MQP_ERR_INVAL;
	} else if (!(out->topic = strdup(full))) {
		rc = MQP_ERR_NOMEM;
	} else {
		out->rel = strlen(full) - strlen(topic);
	}
	if (!rc)
		rc = mqp_store_outbox_add(rt->store, out->topic, out->payload, out->len, out->qos,
					  out->retain, out->correlation, out->correlation_len, &out->id);
	if (rc) {
		free(out->topic);
		free(out->payload);
		free(out->label);
		free(out->correlation);
		return rc;
	}
	rt->n_outputs++;
	return MQP_OK;
}

int mqp_emit(struct mqp_ctx *ctx, const char *topic, const cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	if (!text)
		return MQP_ERR_NOMEM;
	return runtime__emit_owned(ctx->rt, topic, text, strlen(text), NULL, NULL, 0);
}

int mqp_emit_raw(struct mqp_ctx *ctx, const char *topic, const char *payload, size_t len)
{
	char *copy = malloc(len + 1);
	if (!copy)
		return MQP_ERR_NOMEM;
	memcpy(copy, payload, len);
	copy[len] = '\0';
	return runtime__emit_owned(ctx->rt, topic, copy, len, NULL, NULL, 0);
}

/* True when a reply may go to topic: it lies under the agent's reply prefix
 * (with the --prefix), or the agent has none. */
static int runtime__reply_allowed(const struct runtime *rt, const char *topic)
{
	size_t n = strlen(rt->reply_prefix);
	return n == 0 || (strncmp(topic, rt->reply_prefix, n) == 0 && topic[n] != '\0');
}

int mqp_reply(struct mqp_ctx *ctx, const char *fallback_topic, const char *payload, size_t len)
{
	const struct mqp_message *m = ctx->msg;
	if (m && m->response_topic && !runtime__reply_allowed(ctx->rt, m->response_topic)) {
		/* Nothing goes where the requester pointed: runtime__apply undoes
		 * the message's effects and answers 400 on the fallback topic. */
		int n = snprintf(ctx->refused_reply, sizeof(ctx->refused_reply), "%s", fallback_topic);
		return n > 0 && (size_t)n < sizeof(ctx->refused_reply) ? MQP_OK : MQP_ERR_INVAL;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return MQP_ERR_NOMEM;
	memcpy(copy, payload, len);
	copy[len] = '\0';
	if (!m || !m->response_topic)
		return runtime__emit_owned(ctx->rt, fallback_topic, copy, len, NULL, NULL, 0);
	return runtime__emit_owned(ctx->rt, fallback_topic, copy, len, m->response_topic,
				   m->correlation, m->correlation_len);
}

int64_t mqp_ctx_unacked(struct mqp_ctx *ctx)
{
	return atomic_load(&ctx->rt->outbox_depth) + (int64_t)ctx->rt->n_outputs;
}

/* Drops the outputs queued after the first `keep` (their savepoint rolled back). */
static void runtime__outputs_truncate(struct runtime *rt, size_t keep)
{
	for (size_t i = keep; i < rt->n_outputs; i++) {
		free(rt->outputs[i].topic);
		free(rt->outputs[i].payload);
		free(rt->outputs[i].label);
		free(rt->outputs[i].correlation);
	}
	rt->n_outputs = keep;
}

/* Sends the outputs of the committed transaction and forgets them. */
static void runtime__outputs_flush(struct runtime *rt)
{
	for (size_t i = 0; i < rt->n_outputs; i++) {
		struct runtime__output *o = &rt->outputs[i];
		atomic_fetch_add(&rt->outbox_depth, 1);
		mqp_metrics_out(rt->metrics, o->label ? o->label : o->topic + o->rel);
		runtime__send(rt, o->id, o->topic, o->payload, o->len, o->qos, o->retain,
			      o->correlation, o->correlation_len);
	}
	runtime__outputs_truncate(rt, 0);
}

const char *mqp_ctx_client_id(struct mqp_ctx *ctx)
{
	return ctx->rt->opts.client_id;
}

/* TCP_NODELAY makes every PUBACK its own segment through the whole TCP path,
 * which caps how fast a queued backlog drains; Nagle coalesces them. So when
 * the broker has a backlog for us (more than RUNTIME__BACKLOG_BYTES already
 * waiting in the socket, checked every 8th message) Nagle is let on; once the
 * applier has caught up and arrivals have paused for RUNTIME__BURST_GAP_US it
 * turns TCP_NODELAY back on, which also sends what Nagle held. Live traffic
 * and lone messages, and the outputs they cause, never wait on Nagle. */
#define RUNTIME__BACKLOG_BYTES 4096
#define RUNTIME__BURST_GAP_US 200
#define RUNTIME__BURST_CHECK_MS 1 /* how often the applier looks for a burst's end */

/* Bytes from the broker not yet handed to Paho: in the socket, and in the
 * read buffer under it (rxbuf.h). */
static long runtime__waiting_bytes(struct runtime *rt)
{
	int fd = atomic_load(&rt->broker_fd);
	int in_socket = mqp_net_pending(fd);
	return (in_socket > 0 ? in_socket : 0) + (long)mqp_rxbuf_held(fd);
}

static void runtime__nodelay(struct runtime *rt, int on)
{
	int fd = atomic_load(&rt->broker_fd);
	if (fd >= 0 && atomic_exchange(&rt->nodelay_on, on) != on)
		mqp_net_set_nodelay(fd, on);
}

/* Applier: once caught up with a paused stream, nothing (PUBACKs, outputs)
 * may wait on Nagle any longer. */
static void runtime__burst_check(struct runtime *rt)
{
	if (!atomic_load(&rt->nodelay_on) &&
	    mqp_now_us() - atomic_load(&rt->last_arrival_us) >= RUNTIME__BURST_GAP_US &&
	    mqp_inbox_backlog(rt->inbox) == 0)
		runtime__nodelay(rt, 1);
}

/* ---- the applier --------------------------------------------------------- */

/* Keeps a dead letter in the store (within --deadletter-max-bytes): the one
 * place that counts the older ones this drops, and says so the first time.
 * Returns 0 or MQP_ERR_DB. */
static int runtime__keep_deadletter(struct runtime *rt, const char *topic, const char *reason,
				    const void *payload, size_t len, int64_t received_ms)
{
	int rc = mqp_store_deadletter_add(rt->store, topic, reason, payload, len, received_ms);
	if (rc <= 0)
		return rc;
	mqp_metrics_deadletters_dropped(rt->metrics, (uint64_t)rc);
	if (!rt->deadletter_bound_said) {
		rt->deadletter_bound_said = 1;
		mqp_info("deadletters_dropped",
			 "max_bytes=%lld msg=\"the oldest stored dead letters are dropped from now "
			 "on (counted in metrics as deadletters_dropped)\"",
			 (long long)rt->opts.deadletter_max_bytes);
	}
	return MQP_OK;
}

/* Stores and announces the message in ctx as a dead letter. */
static int runtime__deadletter(struct mqp_ctx *ctx, const char *reason)
{
	struct runtime *rt = ctx->rt;
	const struct mqp_message *m = ctx->msg;
	char qt[300], qr[600];
	mqp_warn("deadletter", "topic=%s reason=%s", mqp_log_quote(qt, sizeof(qt), m->topic),
		 mqp_log_quote(qr, sizeof(qr), reason));
	int rc = runtime__keep_deadletter(rt, m->topic, reason, m->payload, m->len, m->received_ms);
	if (rc < 0)
		return rc;
	cJSON *ev = mqp_deadletter_event(rt->agent->name, m->topic, reason, m->payload, m->len,
					 m->received_ms);
	if (!ev)
		return MQP_ERR_NOMEM;
	char topic[1024];
	snprintf(topic, sizeof(topic), "deadletter/%s", m->topic);
	rc = mqp_emit(ctx, topic, ev);
	cJSON_Delete(ev);
	if (!rc)
		mqp_metrics_deadletter(rt->metrics);
	return rc;
}

/* Renders a request/response agent's answer to bad input:
 * {"status":400,"errors":[{"field":field,"message":message}]}. Returns a
 * malloc'ed string, or NULL when out of memory. */
/* Answers a request the agent never saw (its payload was over the limit) on
 * its response topic, with the agent's refusal naming the body (none
 * without the hook). Returns 0 or MQP_ERR_NOMEM. */
static int runtime__refuse_request(struct mqp_ctx *ctx, const char *reason)
{
	if (!ctx->rt->agent->refusal)
		return MQP_OK;
	char *text = ctx->rt->agent->refusal("body", reason);
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
static int runtime__refuse_reply(struct mqp_ctx *ctx)
{
	struct runtime *rt = ctx->rt;
	const char *to = ctx->msg->response_topic;
	size_t n = strlen(to) + strlen(rt->reply_prefix) + 100;
	char *why = malloc(n), qt[300], qf[300];
	if (!why)
		return MQP_ERR_NOMEM;
	snprintf(why, n, "response topic '%s' is not under '%s' (--reply-prefix): answered here instead",
		 to, rt->reply_prefix);
	if (!rt->agent->refusal) { /* no answer of the agent's: the dead letter says it */
		int rc = runtime__deadletter(ctx, why);
		free(why);
		return rc;
	}
	char *text = rt->agent->refusal("response_topic", why);
	free(why);
	if (!text)
		return MQP_ERR_NOMEM;
	mqp_warn("reply_refused", "response_topic=%s fallback=%s", mqp_log_quote(qt, sizeof(qt), to),
		 mqp_log_quote(qf, sizeof(qf), ctx->refused_reply));
	return runtime__emit_owned(rt, ctx->refused_reply, text, strlen(text), NULL, NULL, 0);
}

/* mqp_inbox_read callback: applies one record inside its own savepoint. A
 * negative return stops the batch: the transaction is rolled back and the
 * agent exits without acknowledging anything more. */
static int runtime__apply(void *arg, const struct mqp_inbox_record *rec)
{
	struct runtime *rt = arg;
	const char *topic = rec->topic;
	size_t tlen = rec->topic_len;
	if (rt->prefix_len && tlen > rt->prefix_len &&
	    memcmp(topic, rt->opts.prefix, rt->prefix_len - 1) == 0 &&
	    topic[rt->prefix_len - 1] == '/') {
		topic += rt->prefix_len;
		tlen -= rt->prefix_len;
	}
	memcpy(rt->topic_buf, topic, tlen);
	rt->topic_buf[tlen] = '\0';
	struct mqp_message msg = {rt->topic_buf, rec->payload, rec->payload_len,
				  rec->received_us / 1000, NULL, rec->correlation, rec->correlation_len};
	if (rec->response_topic) {
		memcpy(rt->reply_buf, rec->response_topic, rec->response_topic_len);
		rt->reply_buf[rec->response_topic_len] = '\0';
		msg.response_topic = rt->reply_buf;
	}
	struct mqp_ctx ctx = {rt, &msg, ""};
	struct mqp_reason why = {""};
	mqp_metrics_in(rt->metrics, rt->topic_buf, tlen);
	rt->batch_received_us[rt->n_batch++] = rec->received_us;

	if (rec->cut_from) {
		snprintf(why.text, sizeof(why.text),
			 "payload of %llu bytes is over the limit of %ld (--max-payload); its first %zu bytes are kept",
			 (unsigned long long)rec->cut_from, rt->opts.max_payload, rec->payload_len);
		/* A response topic off the reply prefix gets no answer here: the
		 * runtime does not know the agent's fallback topic; the dead
		 * letter says it all. */
		int rc = msg.response_topic && runtime__reply_allowed(rt, msg.response_topic)
				 ? runtime__refuse_request(&ctx, why.text)
				 : MQP_OK;
		return rc ? rc : runtime__deadletter(&ctx, why.text);
	}
	size_t outputs_before = rt->n_outputs;
	int rc = mqp_store_savepoint(rt->store);
	if (rc)
		return rc;
	rc = rt->agent->handle(rt->agent->state, &ctx, &msg, &why);
	if (rc == MQP_OK && !ctx.refused_reply[0])
		return mqp_store_release(rt->store);
	mqp_store_rollback_savepoint(rt->store);
	runtime__outputs_truncate(rt, outputs_before);
	if (rc == MQP_ERR_DB)
		return rc;
	if (ctx.refused_reply[0]) /* nothing stored, nothing sent where it pointed */
		return runtime__refuse_reply(&ctx);
	if (rc != MQP_ERR_INPUT) {
		mqp_metrics_error(rt->metrics);
		snprintf(why.text, sizeof(why.text), "internal error: %s", mqp_strerror(rc));
	}
	return runtime__deadletter(&ctx, why.text);
}

/* Marks the outbox rows the broker acknowledged (inside the open
 * transaction), and about once a second forgets those acknowledged before
 * the republish window. A row acknowledged again (it was republished) is
 * counted once. */
static int runtime__note_acked(struct runtime *rt)
{
	struct runtime__ids ids;
	runtime__ids_take(rt, &rt->acked, &ids);
	int64_t now = mqp_now_ms();
	long long newly = 0;
	int rc = MQP_OK;
	for (size_t i = 0; i < ids.n && rc >= 0; i++)
		if ((rc = mqp_store_outbox_acked(rt->store, ids.v[i], now)) > 0)
			newly++;
	free(ids.v);
	if (rc < 0)
		return rc;
	atomic_fetch_sub(&rt->outbox_depth, newly);
	if (now < rt->next_outbox_purge_ms)
		return MQP_OK;
	rt->next_outbox_purge_ms = now + 1000;
	rc = mqp_store_outbox_purge(rt->store, now - rt->opts.republish_window_s * 1000LL);
	return rc < 0 ? rc : MQP_OK;
}

/* What runtime__deadletter_row needs besides the row. */
struct runtime__refused_row {
	struct runtime *rt;
	int reason;
	int64_t now_ms;
};

/* mqp_store_outbox_take callback: keeps a refused output as a dead letter,
 * under the topic it was published on, with its payload. No dead-letter
 * event is published for it: that too could be refused, and it would carry
 * a reply where other readers see it. */
static int runtime__deadletter_row(void *arg, const struct mqp_outbox_row *row)
{
	const struct runtime__refused_row *r = arg;
	const char *what = MQTTReasonCode_toString((enum MQTTReasonCodes)r->reason);
	char reason[200], qt[300];
	int n = snprintf(reason, sizeof(reason), "publish refused by the broker: %d %s", r->reason,
			 what ? what : "unknown reason code");
	size_t at = (size_t)n - (what ? strlen(what) : 0);
	if (n > 0 && at < sizeof(reason) && reason[at] >= 'A' && reason[at] <= 'Z')
		reason[at] = (char)(reason[at] - 'A' + 'a'); /* "135 not authorized" */
	mqp_debug("refused_deadlettered", "id=%lld topic=%s", (long long)row->id,
		  mqp_log_quote(qt, sizeof(qt), row->topic));
	int rc = runtime__keep_deadletter(r->rt, row->topic, reason, row->payload, row->len,
					  r->now_ms);
	return rc < 0 ? rc : 1;
}

/* Moves the outputs the broker refused for good from the outbox to the
 * dead-letter table (inside the open transaction), and counts them. Returns
 * 0 or MQP_ERR_DB. */
static int runtime__note_refused(struct runtime *rt)
{
	pthread_mutex_lock(&rt->lock);
	struct runtime__refusals list = rt->refused;
	memset(&rt->refused, 0, sizeof(rt->refused));
	pthread_mutex_unlock(&rt->lock);
	int rc = MQP_OK;
	for (size_t i = 0; i < list.n && rc >= 0; i++) {
		struct runtime__refused_row r = {rt, list.v[i].reason, mqp_now_ms()};
		if ((rc = mqp_store_outbox_take(rt->store, list.v[i].id, runtime__deadletter_row, &r)) > 0) {
			atomic_fetch_sub(&rt->outbox_depth, 1);
			mqp_metrics_refused(rt->metrics);
		}
	}
	free(list.v);
	return rc < 0 ? rc : MQP_OK;
}

/* mqp_store_outbox_acked_since callback: sends a row again and counts it. */
static int runtime__republish_row(void *ctx, const struct mqp_outbox_row *row)
{
	struct runtime *rt = ctx;
	rt->republished++;
	return runtime__send_row(rt, row);
}

/* After a reconnect: the broker may have crashed and lost what it accepted
 * since its last snapshot (mosquitto autosaves every few seconds), so the
 * outputs acknowledged within --republish-window go out again. Consumers
 * are idempotent; a repeat costs nothing. Returns 0 or MQP_ERR_DB. */
static int runtime__republish(struct runtime *rt)
{
	if (rt->opts.republish_window_s <= 0)
		return MQP_OK;
	rt->republished = 0;
	int rc = mqp_store_outbox_acked_since(rt->store,
					      mqp_now_ms() - rt->opts.republish_window_s * 1000LL,
					      runtime__republish_row, rt);
	mqp_info("outbox_republished", "rows=%ld window_s=%d", rt->republished,
		 rt->opts.republish_window_s);
	return rc < 0 ? rc : MQP_OK;
}

/* Sends again the outbox rows whose send failed (call while online).
 * Returns 0, or MQP_ERR_DB: then, as for any store failure, the agent stops
 * and the next start publishes the whole outbox again. */
static int runtime__retry_failed(struct runtime *rt)
{
	struct runtime__ids ids;
	int rc = MQP_OK;
	runtime__ids_take(rt, &rt->failed, &ids);
	for (size_t i = 0; i < ids.n && rc >= 0; i++)
		rc = mqp_store_outbox_get(rt->store, ids.v[i], runtime__send_row, rt);
	free(ids.v);
	return rc < 0 ? rc : MQP_OK;
}

/* Runs the agent's tick (inside the open transaction) and notes when it wants
 * to run again. */
static int runtime__tick(struct runtime *rt)
{
	struct mqp_ctx ctx = {rt, NULL, ""};
	int64_t next = 0;
	int rc = rt->agent->tick(rt->agent->state, &ctx, mqp_now_ms(), &next);
	rt->next_tick_ms = next;
	return rc;
}

/* At start, then once a minute (or every quarter of a shorter age, at most
 * once a second), inside the open transaction: drops the dead letters older
 * than --deadletter-max-age. Returns 0 or MQP_ERR_DB. */
static int runtime__expire_deadletters(struct runtime *rt)
{
	int64_t now = mqp_now_ms();
	if (now < rt->next_expire_ms)
		return MQP_OK;
	int64_t every = rt->opts.deadletter_max_age_ms / 4;
	every = every > RUNTIME__EXPIRE_EVERY_MS ? RUNTIME__EXPIRE_EVERY_MS
		: every < RUNTIME__EXPIRE_MIN_MS ? RUNTIME__EXPIRE_MIN_MS : every;
	rt->next_expire_ms = now + every;
	int n = mqp_store_deadletter_expire(rt->store, now - rt->opts.deadletter_max_age_ms);
	if (n > 0) {
		mqp_metrics_deadletters_dropped(rt->metrics, (uint64_t)n);
		mqp_info("deadletters_expired", "count=%d max_age_s=%lld", n,
			 (long long)(rt->opts.deadletter_max_age_ms / 1000));
	}
	return n < 0 ? n : MQP_OK;
}

/* One applier step: a transaction that deletes acked outputs and expired
 * dead letters, applies up to a batch of inbox records and runs the agent's
 * tick. Returns records applied, or a negative error after which nothing may
 * be committed. */
static int runtime__apply_batch(struct runtime *rt)
{
	int rc = mqp_store_begin(rt->store);
	if (rc)
		return rc;
	rt->n_batch = 0;
	rc = runtime__expire_deadletters(rt);
	if (!rc)
		rc = runtime__note_acked(rt);
	if (!rc)
		rc = runtime__note_refused(rt);
	int n = rc ? rc : mqp_inbox_read(rt->inbox, RUNTIME__BATCH, runtime__apply, rt);
	if (n > 0)
		rc = mqp_store_meta_set(rt->store, "inbox_seq", (int64_t)mqp_inbox_last_seq(rt->inbox));
	if (n >= 0 && !rc && rt->agent->tick)
		rc = runtime__tick(rt);
	if (n < 0 || rc || (rc = mqp_store_commit(rt->store))) {
		mqp_store_rollback(rt->store);
		runtime__outputs_truncate(rt, 0);
		return n < 0 ? n : rc;
	}
	if (n > 0 && (rc = mqp_inbox_applied(rt->inbox))) /* only a failed shrink: harmless */
		mqp_warn("inbox_shrink_failed", "msg=\"%s\"", strerror(errno));
	runtime__outputs_flush(rt);
	int64_t now = mqp_now_us();
	for (size_t i = 0; i < rt->n_batch; i++) /* replays from before this start are not timed */
		if (rt->batch_received_us[i] >= rt->start_us)
			mqp_metrics_handled(rt->metrics, (uint64_t)(now - rt->batch_received_us[i]));
	return n;
}

/* Passes rc through, unless it is an error of the applier's: then the store
 * failed, so stop without acknowledging more. What was acknowledged is in the
 * inbox, and unacknowledged outputs in the outbox; both resume at the next start. */
static int runtime__check(int rc)
{
	if (rc < 0) {
		mqp_error("applier_failed", "msg=\"%s\" action=exit", mqp_strerror(rc));
		_exit(RUNTIME__EX_SOFTWARE);
	}
	return rc;
}

static void *runtime__applier_main(void *arg)
{
	struct runtime *rt = arg;
	rt->next_tick_ms = rt->agent->tick ? 1 : 0; /* a first tick at start resumes due work */
	for (;;) {
		atomic_store(&rt->heartbeat_ms, runtime__mono_ms());
		int stopping = atomic_load(&rt->applier_stop);
		int wait_ms = atomic_load(&rt->nodelay_on) ? RUNTIME__IDLE_WAIT_MS : RUNTIME__BURST_CHECK_MS;
		if (rt->next_tick_ms) {
			int64_t until = rt->next_tick_ms - mqp_now_ms();
			wait_ms = until <= 0 ? 0 : until < wait_ms ? (int)until : wait_ms;
		}
		int ready = mqp_inbox_wait(rt->inbox, stopping ? 0 : wait_ms);
		pthread_mutex_lock(&rt->lock);
		int acks = rt->acked.n > 0 || rt->refused.n > 0, failures = rt->failed.n > 0;
		pthread_mutex_unlock(&rt->lock);
		if (failures && atomic_load(&rt->online))
			runtime__check(runtime__retry_failed(rt));
		if (atomic_load(&rt->online) && atomic_exchange(&rt->republish_due, 0))
			runtime__check(runtime__republish(rt));
		int64_t now = mqp_now_ms();
		int tick_due = (rt->next_tick_ms && now >= rt->next_tick_ms) || now >= rt->next_expire_ms;
		if (ready || acks || tick_due) {
			int n = runtime__check(runtime__apply_batch(rt));
			if (n > 0) {
				runtime__burst_check(rt);
				/* In a stream, a transaction and a wake-up per handful of
				 * records cost more than the records: after a small batch
				 * while more keep coming, let them gather briefly. */
				if (n < RUNTIME__GATHER_BELOW && mqp_inbox_backlog(rt->inbox) > 0)
					usleep(RUNTIME__GATHER_US);
				continue;
			}
		}
		if (!ready)
			runtime__burst_check(rt);
		if (stopping && !ready)
			break;
	}
	return NULL;
}

/* ---- MQTT ---------------------------------------------------------------- */

static int runtime__on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct runtime *rt = context;
	int64_t now = mqp_now_us();
	if ((++rt->arrivals & 7) == 0 && atomic_load(&rt->nodelay_on) &&
	    runtime__waiting_bytes(rt) > RUNTIME__BACKLOG_BYTES)
		runtime__nodelay(rt, 0);
	atomic_store(&rt->last_arrival_us, now);
	/* topic_len is 0 unless the topic holds NULs (then it is the real length). */
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	/* An MQTT 5 request: keep where and with what the answer must go. */
	struct mqp_inbox_meta meta = {0};
	MQTTProperty *rtp = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
	/* A response topic with wildcards could never be published to: the
	 * answer would wait in the outbox for ever. Such a request is answered
	 * on the fallback topic instead (MQTT 5 forbids them anyway). */
	if (rtp && rtp->value.data.len > 0 &&
	    !memchr(rtp->value.data.data, '+', (size_t)rtp->value.data.len) &&
	    !memchr(rtp->value.data.data, '#', (size_t)rtp->value.data.len)) {
		MQTTProperty *cdp = MQTTProperties_getProperty(&m->properties,
							       MQTTPROPERTY_CODE_CORRELATION_DATA);
		meta.response_topic = rtp->value.data.data;
		meta.response_topic_len = (size_t)rtp->value.data.len;
		if (cdp) {
			meta.correlation = cdp->value.data.data;
			meta.correlation_len = (size_t)cdp->value.data.len;
		}
	}
	/* Over the limit, only the start is kept, for the dead letter: the
	 * applier never holds such a payload whole. */
	size_t keep = (size_t)m->payloadlen;
	if (m->payloadlen > rt->opts.max_payload) {
		meta.cut_from = (uint64_t)m->payloadlen;
		keep = RUNTIME__CUT_KEEP;
	}
	int rc = mqp_inbox_append(rt->inbox, topic, tlen, m->payload, keep, m->qos, now,
				  meta.response_topic || meta.cut_from ? &meta : NULL);
	if (rc) {
		/* Not stored, so not acknowledged: Paho keeps it and offers it again. */
		char qt[300];
		mqp_error("inbox_append_failed", "topic=%s msg=\"%s\"", mqp_log_quote(qt, sizeof(qt), topic),
			  rc == MQP_ERR_IO ? strerror(errno) : mqp_strerror(rc));
		mqp_metrics_error(rt->metrics);
		return 0;
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void runtime__on_connection_lost(void *context, char *cause)
{
	struct runtime *rt = context;
	atomic_store(&rt->online, 0);
	atomic_store(&rt->broker_fd, -1); /* Paho closes it; the number may be reused */
	char qc[300];
	mqp_warn("connection_lost", "broker=%s cause=%s action=reconnect", rt->opts.broker,
		 mqp_log_quote(qc, sizeof(qc), cause ? cause : "unknown"));
}

static void runtime__on_subscribed(void *context, MQTTAsync_successData5 *response)
{
	struct runtime *rt = context;
	/* Paho fills alt.sub only for several filters; for one, the union holds
	 * whatever was there and reasonCode is the answer. */
	int several = rt->n_subs > 1 && response && response->alt.sub.reasonCodes;
	for (int i = 0; several && i < response->alt.sub.reasonCodeCount && i < rt->n_subs; i++) {
		if (response->alt.sub.reasonCodes[i] > MQTTREASONCODE_GRANTED_QOS_2)
			mqp_error("subscribe_refused", "filter=%s reason=%d", rt->subs[i],
				  response->alt.sub.reasonCodes[i]);
	}
	if (response && !several && response->reasonCode > MQTTREASONCODE_GRANTED_QOS_2)
		mqp_error("subscribe_refused", "filter=%s reason=%d", rt->subs[0],
			  response->reasonCode);
	runtime__send(rt, RUNTIME__ID_STATUS, rt->status_topic, rt->online_payload,
		      strlen(rt->online_payload), 1, 1, NULL, 0);
	atomic_store(&rt->online, 1);
	mqp_info("online", "broker=%s client_id=%s subscriptions=%d", rt->opts.broker,
		 rt->opts.client_id, rt->n_subs);
	if (!atomic_exchange(&rt->ever_online, 1))
		mqp_notify("READY=1\nSTATUS=online");
}

static void runtime__on_subscribe_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct runtime *rt = context;
	mqp_error("subscribe_failed", "code=%d msg=\"%s\" action=retry", response ? response->code : 0,
		  response && response->message ? response->message : "");
	/* The main loop subscribes again (a disconnect here would also end
	 * Paho's automatic reconnection). */
	atomic_store(&rt->subscribe_failed, 1);
}

/* Subscribes to every filter at QoS 1; on_subscribed then says online. */
static void runtime__subscribe(struct runtime *rt)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess5 = runtime__on_subscribed;
	ro.onFailure5 = runtime__on_subscribe_failed;
	ro.context = rt;
	ro.subscribeOptions = rt->subs_options[0]; /* Paho reads this for one filter, the list for more */
	ro.subscribeOptionsList = rt->subs_options;
	ro.subscribeOptionsCount = rt->n_subs;
	int rc = MQTTAsync_subscribeMany(rt->client, rt->n_subs, rt->subs, rt->subs_qos, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		mqp_error("subscribe_failed", "code=%d action=retry", rc);
		atomic_store(&rt->subscribe_failed, 1);
	}
}

/* Paho calls this after every successful connect, first or automatic. */
static void runtime__on_connected(void *context, char *cause)
{
	struct runtime *rt = context;
	/* Paho never sets TCP_NODELAY: without it each small publish waits on
	 * Nagle and delayed ACK (~40 ms a hop). Paho reads a packet with three
	 * recv() calls after two poll() calls: the read buffer saves most (rxbuf.h). */
	int fd, buffer_rc;
	int n = mqp_net_after_connect(rt->opts.broker, &fd, &buffer_rc);
	atomic_store(&rt->nodelay_on, 1);
	atomic_store(&rt->broker_fd, fd);
	if (buffer_rc) /* Paho's reads stay unbuffered: slower, still correct */
		mqp_warn("read_buffer_not_set", "msg=\"%s\"", mqp_strerror(buffer_rc));
	if (atomic_fetch_add(&rt->connects, 1) > 0) /* a reconnect, not the first connect */
		atomic_store(&rt->republish_due, 1);
	if (n <= 0)
		mqp_warn("nodelay_not_set", "broker=%s result=%d", rt->opts.broker, n);
	mqp_info("connected", "broker=%s cause=\"%s\" nodelay_sockets=%d", rt->opts.broker,
		 cause ? cause : "", n);
	/* mosquitto 2.0.11 forgets shared subscriptions across its restarts, so
	 * subscribe on every connect even when the session is present. */
	runtime__subscribe(rt);
}

/* Paho calls this when a connect, first or automatic, succeeds. A broker
 * that announces a small Receive Maximum (mosquitto's default
 * max_inflight_messages is 20) slows every burst of outputs to that many a
 * second (net.h): said once per connect, as a warning naming the fix. */
static void runtime__on_connect_ok(void *context, MQTTAsync_successData5 *response)
{
	(void)context;
	int receive_max = mqp_net_receive_maximum(response ? &response->properties : NULL);
	mqp_debug("connect_ok", "session_present=%d receive_maximum=%d",
		  response ? response->alt.connect.sessionPresent : -1, receive_max);
	if (receive_max < RUNTIME__MIN_RECEIVE_MAX)
		mqp_warn("broker_receive_maximum_low",
			 "receive_maximum=%d effect=\"bursts of outputs are sent at %d a second\" "
			 "fix=\"max_inflight_messages 0 in the broker's mosquitto.conf\"",
			 receive_max, receive_max);
}

static void runtime__on_connect_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct runtime *rt = context;
	mqp_debug("connect_failed", "code=%d msg=\"%s\"", response ? response->code : 0,
		  response && response->message ? response->message : "");
	atomic_store(&rt->connect_failed, 1);
}

static void runtime__on_disconnected(void *context, MQTTAsync_successData5 *response)
{
	(void)response;
	atomic_store(&((struct runtime *)context)->disconnected, 1);
}

static void runtime__on_disconnect_failed(void *context, MQTTAsync_failureData5 *response)
{
	(void)response;
	atomic_store(&((struct runtime *)context)->disconnected, 1);
}

/* Builds the status payload for state. Returns a malloc'ed string or NULL. */
static char *runtime__status_payload(const struct runtime *rt, const char *state)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	if (o && cJSON_AddStringToObject(o, "agent", rt->agent->name) &&
	    cJSON_AddStringToObject(o, "state", state) &&
	    mqp_json_add_uint(o, "pid", (uint64_t)getpid()) &&
	    cJSON_AddStringToObject(o, "version", MQPIPE_VERSION))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* Fills the connect options once; Paho reuses them for automatic reconnects. */
static int runtime__connect_options(struct runtime *rt)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_willOptions wo = MQTTAsync_willOptions_initializer;
	rt->conn = co;
	rt->will = wo;
	rt->conn_props = (MQTTProperties)MQTTProperties_initializer;
	/* A persistent session that never expires: events published while the
	 * agent is down wait for it. */
	MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
			       .value.integer4 = 0xFFFFFFFFU};
	if (MQTTProperties_add(&rt->conn_props, &expiry))
		return MQP_ERR_NOMEM;
	rt->conn.cleanstart = 0;
	rt->conn.keepAliveInterval = 30;
	rt->conn.connectTimeout = 10;
	rt->conn.automaticReconnect = 1;
	rt->conn.minRetryInterval = 1;
	rt->conn.maxRetryInterval = 30;
	rt->conn.maxInflight = 65535; /* a full window wakes Paho's sender only once a second */
	rt->conn.connectProperties = &rt->conn_props;
	rt->will.topicName = rt->status_topic;
	rt->will.message = rt->offline_payload;
	rt->will.retained = 1;
	rt->will.qos = 1;
	rt->conn.will = &rt->will;
	if (rt->opts.has_username)
		rt->conn.username = rt->opts.username;
	if (rt->opts.has_password)
		rt->conn.password = rt->opts.password;
	if (mqp_net_uri_tls(rt->opts.broker)) {
		MQTTAsync_SSLOptions so = MQTTAsync_SSLOptions_initializer;
		rt->ssl = so;
		rt->ssl.trustStore = rt->opts.cafile[0] ? rt->opts.cafile : NULL;
		rt->ssl.keyStore = rt->opts.cert[0] ? rt->opts.cert : NULL;
		rt->ssl.privateKey = rt->opts.key[0] ? rt->opts.key : NULL;
		rt->conn.ssl = &rt->ssl;
	}
	rt->conn.onSuccess5 = runtime__on_connect_ok; /* the connected callback does the work */
	rt->conn.onFailure5 = runtime__on_connect_failed;
	rt->conn.context = rt;
	return MQP_OK;
}

static int runtime__connect(struct runtime *rt)
{
	int rc = MQTTAsync_connect(rt->client, &rt->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		atomic_store(&rt->connect_failed, 1);
		mqp_debug("connect_refused", "code=%d", rc);
	}
	return rc;
}

/* ---- setup and the main loop --------------------------------------------- */

static int runtime__subscriptions(struct runtime *rt)
{
	const char *const *s = rt->agent->subscriptions;
	while (s[rt->n_subs])
		rt->n_subs++;
	rt->subs = calloc((size_t)rt->n_subs + 1, sizeof(char *));
	rt->subs_qos = calloc((size_t)rt->n_subs + 1, sizeof(int));
	rt->subs_options = calloc((size_t)rt->n_subs + 1, sizeof(MQTTSubscribe_options));
	if (!rt->subs || !rt->subs_qos || !rt->subs_options)
		return MQP_ERR_NOMEM;
	for (int i = 0; i < rt->n_subs; i++) {
		char full[2100];
		/* A shared subscription keeps $share/<group>/ in front of the prefix. */
		if (strncmp(s[i], "$share/", 7) == 0) {
			const char *slash = strchr(s[i] + 7, '/');
			if (!slash)
				return MQP_ERR_INVAL;
			char rest[1024];
			if (mqp_options_topic(&rt->opts, slash + 1, rest, sizeof(rest)))
				return MQP_ERR_INVAL;
			int n = snprintf(full, sizeof(full), "%.*s%s", (int)(slash + 1 - s[i]), s[i],
					 rest);
			if (n < 0 || (size_t)n >= sizeof(full))
				return MQP_ERR_INVAL;
		} else if (mqp_options_topic(&rt->opts, s[i], full, sizeof(full))) {
			return MQP_ERR_INVAL;
		}
		if (!(rt->subs[i] = strdup(full)))
			return MQP_ERR_NOMEM;
		rt->subs_qos[i] = 1;
		/* Inputs are events, never state: a retained one is applied when it
		 * is published, and not handed over again at every subscribe (each
		 * start), where a forgotten repeat would be applied anew (README
		 * "Input rules"). */
		rt->subs_options[i] = (MQTTSubscribe_options)MQTTSubscribe_options_initializer;
		rt->subs_options[i].retainHandling = 2;
	}
	return MQP_OK;
}

/* Publishes the retained metrics report. */
static void runtime__publish_metrics(struct runtime *rt)
{
	double uptime = (double)(mqp_now_us() - rt->start_us) / 1e6;
	cJSON *report = mqp_metrics_report(rt->metrics, rt->agent->name, rt->opts.client_id,
					   atomic_load(&rt->outbox_depth), uptime);
	char *text = report ? cJSON_PrintUnformatted(report) : NULL;
	if (text)
		runtime__send(rt, RUNTIME__ID_METRICS, rt->metrics_topic, text, strlen(text), 1, 1, NULL, 0);
	else
		mqp_error("metrics_failed", "msg=\"out of memory\"");
	free(text);
	cJSON_Delete(report);
}

/* Waits up to ms for cond() to hold, polling every 5 ms. */
static int runtime__wait_for(int (*cond)(struct runtime *), struct runtime *rt, int ms)
{
	int64_t until = runtime__mono_ms() + ms;
	while (!cond(rt)) {
		if (runtime__mono_ms() >= until)
			return 0;
		nanosleep(&(struct timespec){0, 5000000L}, NULL);
	}
	return 1;
}

static int runtime__caught_up(struct runtime *rt)
{
	return mqp_inbox_backlog(rt->inbox) == 0 && atomic_load(&rt->inflight) == 0;
}
static int runtime__offline_acked(struct runtime *rt) { return atomic_load(&rt->offline_acked); }
static int runtime__is_disconnected(struct runtime *rt) { return atomic_load(&rt->disconnected); }

/* The clean stop: finish what is in hand, say offline, disconnect. */
static void runtime__shutdown(struct runtime *rt)
{
	mqp_notify("STOPPING=1");
	mqp_info("stopping", "backlog_bytes=%llu inflight=%ld",
		 (unsigned long long)mqp_inbox_backlog(rt->inbox), atomic_load(&rt->inflight));
	if (atomic_load(&rt->online)) {
		runtime__wait_for(runtime__caught_up, rt, 5000);
		runtime__send(rt, RUNTIME__ID_OFFLINE, rt->status_topic, rt->offline_payload,
			      strlen(rt->offline_payload), 1, 1, NULL, 0);
		runtime__wait_for(runtime__offline_acked, rt, 2000);
	}
	atomic_store(&rt->broker_fd, -1); /* the applier must not touch it once closed */
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
	d.timeout = 2000;
	d.onSuccess5 = runtime__on_disconnected;
	d.onFailure5 = runtime__on_disconnect_failed;
	d.context = rt;
	if (MQTTAsync_disconnect(rt->client, &d) == MQTTASYNC_SUCCESS)
		runtime__wait_for(runtime__is_disconnected, rt, 3000);
	/* No more messages arrive: let the applier commit the rest and stop. */
	atomic_store(&rt->applier_stop, 1);
	mqp_inbox_wake(rt->inbox);
	pthread_join(rt->applier, NULL);
	mqp_info("stopped", "outbox_depth=%lld", (long long)atomic_load(&rt->outbox_depth));
}

static void runtime__free(struct runtime *rt)
{
	if (rt->client)
		MQTTAsync_destroy(&rt->client);
	MQTTProperties_free(&rt->conn_props);
	if (rt->agent && rt->agent->fini)
		rt->agent->fini(rt->agent->state);
	mqp_inbox_close(rt->inbox);
	mqp_store_close(rt->store);
	/* Last, after SQLite closed the database: closing the lock's descriptor of
	 * the database file earlier would drop SQLite's own POSIX locks on it. */
	mqp_store_unlock(&rt->state_lock);
	mqp_metrics_free(rt->metrics);
	for (int i = 0; rt->subs && i < rt->n_subs; i++)
		free(rt->subs[i]);
	free(rt->subs);
	free(rt->subs_qos);
	free(rt->subs_options);
	free(rt->online_payload);
	free(rt->offline_payload);
	runtime__outputs_truncate(rt, 0);
	free(rt->outputs);
	free(rt->batch_received_us);
	free(rt->acked.v);
	free(rt->failed.v);
	free(rt->refused.v);
	pthread_mutex_destroy(&rt->lock);
}

/* Opens everything that does not need the broker. Returns 0 or logs and fails. */
static int runtime__open(struct runtime *rt)
{
	int rc;
	char inbox_path[1100];
	int64_t applied = 0;
	rt->start_us = mqp_now_us();
	atomic_store(&rt->broker_fd, -1);
	pthread_mutex_init(&rt->lock, NULL);
	rt->prefix_len = rt->opts.prefix[0] ? strlen(rt->opts.prefix) + 1 : 0;
	if ((rc = mqp_metrics_new(&rt->metrics)))
		return rc;
	if (!(rt->batch_received_us = calloc(RUNTIME__BATCH, sizeof(int64_t))))
		return MQP_ERR_NOMEM;
	/* The state's directory must exist (only the default ./var is made), and
	 * the lock is taken before the database or the inbox is opened, so a
	 * second agent on the same files touches nothing. */
	if ((rc = mqp_store_check_dir(rt->opts.db_path, rt->opts.db_default_var)) ||
	    (rc = mqp_store_lock(rt->opts.db_path, RUNTIME__LOCK_WAIT_MS, &rt->state_lock)))
		return rc;
	if ((rc = mqp_store_open(&rt->store, rt->opts.db_path, rt->opts.sync_full, rt->agent->name,
				 rt->agent->migrations, rt->agent->n_migrations)))
		return rc;
	mqp_store_deadletter_bound(rt->store, rt->opts.deadletter_max_bytes);
	if (rt->agent->init && (rc = rt->agent->init(rt->agent->state, rt->store))) {
		mqp_error("agent_init_failed", "msg=\"%s\"", mqp_strerror(rc));
		return rc;
	}
	if ((rc = mqp_store_meta_get(rt->store, "inbox_seq", &applied)))
		return rc;
	snprintf(inbox_path, sizeof(inbox_path), "%s.inbox", rt->opts.db_path);
	if ((rc = mqp_inbox_open(&rt->inbox, inbox_path, (uint64_t)applied, rt->opts.sync_full)))
		return rc;
	int64_t depth = mqp_store_outbox_depth(rt->store);
	atomic_store(&rt->outbox_depth, depth > 0 ? depth : 0);
	char rel[200];
	snprintf(rel, sizeof(rel), "mqpipe/status/%s", rt->opts.client_id);
	if ((rc = mqp_options_topic(&rt->opts, rel, rt->status_topic, sizeof(rt->status_topic))))
		return rc;
	snprintf(rel, sizeof(rel), "mqpipe/metrics/%s", rt->opts.client_id);
	if ((rc = mqp_options_topic(&rt->opts, rel, rt->metrics_topic, sizeof(rt->metrics_topic))))
		return rc;
	/* Replies go only under the reply prefix, which takes the --prefix like
	 * every topic the agent publishes (README "Ingestion"). */
	if (rt->agent->reply_prefix && rt->agent->reply_prefix[0] &&
	    (rc = mqp_options_topic(&rt->opts, rt->agent->reply_prefix, rt->reply_prefix,
				    sizeof(rt->reply_prefix))))
		return rc;
	rt->online_payload = runtime__status_payload(rt, "online");
	rt->offline_payload = runtime__status_payload(rt, "offline");
	if (!rt->online_payload || !rt->offline_payload)
		return MQP_ERR_NOMEM;
	if ((rc = runtime__subscriptions(rt)))
		return rc;

	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
	/* Outputs produced while the broker is away wait in Paho (they are in the
	 * outbox too); the default cap of 100 would refuse sends even when connected. */
	cro.sendWhileDisconnected = 1;
	cro.allowDisconnectedSendAtAnyTime = 1;
	cro.maxBufferedMessages = 1 << 20;
	cro.deleteOldestMessages = 0;
	if (MQTTAsync_createWithOptions(&rt->client, rt->opts.broker, rt->opts.client_id,
					MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setCallbacks(rt->client, rt, runtime__on_connection_lost, runtime__on_message,
				   NULL) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setConnected(rt->client, rt, runtime__on_connected) != MQTTASYNC_SUCCESS) {
		mqp_error("mqtt_create_failed", "broker=%s", rt->opts.broker);
		return MQP_ERR_MQTT;
	}
	mqp_net_paho_quiet();
	return runtime__connect_options(rt);
}

int mqp_agent_main(const struct mqp_agent *agent, int argc, char **argv)
{
	struct runtime *rt = &runtime__rt;
	memset(rt, 0, sizeof(*rt));
	rt->state_lock = (struct mqp_state_lock){-1, -1};
	rt->agent = agent;
	rt->opts.instances_per_host = agent->instances_per_host;
	rt->opts.max_payload_default = agent->max_payload;
	switch (mqp_options_parse(&rt->opts, agent->name, argc, argv, agent->options,
				  agent->n_options, agent->options_ctx, stdout, stderr)) {
	case MQP_PARSE_EXIT_OK: return 0;
	case MQP_PARSE_USAGE: return MQP_EX_USAGE;
	case MQP_PARSE_RUN: break;
	}
	if (!rt->opts.max_payload) /* no --max-payload: the agent's own default, else the common one */
		rt->opts.max_payload = agent->max_payload ? agent->max_payload : MQP_MAX_PAYLOAD_DEFAULT;
	mqp_log_init(rt->opts.log_level, rt->opts.log_format, agent->name);

	/* Signals are taken synchronously by the main loop; every thread started
	 * from here on inherits the blocked mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = runtime__open(rt);
	if (rc) {
		/* README "Running it": 75 another agent holds the state, 73 the
		 * state cannot be created or opened, 70 anything else. */
		int code = rc == MQP_ERR_BUSY ? MQP_EX_TEMPFAIL
			   : rc == MQP_ERR_IO ? MQP_EX_CANTCREAT : MQP_EX_SOFTWARE;
		mqp_error("start_failed", "msg=\"%s\" exit=%d",
			  code == MQP_EX_TEMPFAIL	 ? "the state is in use by another agent"
			  : code == MQP_EX_CANTCREAT ? "the state cannot be created or opened"
						     : mqp_strerror(rc),
			  code);
		runtime__free(rt);
		return code;
	}
	/* The secure profile replaces a client's id by its user name: the session
	 * would not be this one's, and the status topic would be refused. */
	if (rt->opts.has_username && strcmp(rt->opts.client_id, rt->opts.username) != 0)
		mqp_warn("client_id_not_username",
			 "client_id=%s username=%s effect=\"a broker with use_username_as_clientid "
			 "(the secure profile) renames the session to %s and refuses "
			 "mqpipe/status/%s\" fix=\"leave -i out, or give the user name\"",
			 rt->opts.client_id, rt->opts.username, rt->opts.username,
			 rt->opts.client_id);
	mqp_info("starting", "version=%s client_id=%s broker=%s db=%s prefix=\"%s\" pid=%d",
		 MQPIPE_VERSION, rt->opts.client_id, rt->opts.broker, rt->opts.db_path,
		 rt->opts.prefix, (int)getpid());
	/* Outputs left in the outbox by the last run: published again (Paho holds
	 * them until the first connect). */
	int64_t leftover = atomic_load(&rt->outbox_depth);
	if (leftover > 0) {
		mqp_info("outbox_replay", "rows=%lld", (long long)leftover);
		mqp_store_outbox_each(rt->store, runtime__send_row, rt);
	}
	if (pthread_create(&rt->applier, NULL, runtime__applier_main, rt)) {
		mqp_error("start_failed", "msg=\"cannot start the applier thread\" exit=%d",
			  MQP_EX_SOFTWARE);
		runtime__free(rt);
		return MQP_EX_SOFTWARE;
	}
	runtime__connect(rt);

	uint64_t watchdog_us = mqp_notify_watchdog_usec();
	int64_t now = runtime__mono_ms();
	int64_t next_metrics = now + rt->opts.metrics_interval_s * 1000LL;
	int64_t next_watchdog = now, next_connect = 0, next_subscribe = 0;
	int backoff_s = 1, stop_signal = 0;
	while (!stop_signal) {
		struct timespec tick = {0, 100000000L};
		int sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			stop_signal = sig;
			break;
		}
		now = runtime__mono_ms();
		if (atomic_exchange(&rt->connect_failed, 0)) {
			mqp_warn("broker_unreachable", "broker=%s retry_in_s=%d", rt->opts.broker,
				 backoff_s);
			next_connect = now + backoff_s * 1000LL;
			backoff_s = backoff_s < 30 ? backoff_s * 2 : 30;
		}
		if (next_connect && now >= next_connect) {
			next_connect = 0;
			runtime__connect(rt);
		}
		if (atomic_load(&rt->ever_online))
			backoff_s = 1;
		if (!next_subscribe && atomic_exchange(&rt->subscribe_failed, 0))
			next_subscribe = now + 2000;
		if (next_subscribe && now >= next_subscribe) {
			next_subscribe = 0;
			if (MQTTAsync_isConnected(rt->client))
				runtime__subscribe(rt);
		}
		if (now >= next_metrics) {
			next_metrics = now + rt->opts.metrics_interval_s * 1000LL;
			if (atomic_load(&rt->online))
				runtime__publish_metrics(rt);
		}
		/* Pet the watchdog only while the applier keeps coming round. */
		if (watchdog_us && now >= next_watchdog) {
			next_watchdog = now + (int64_t)(watchdog_us / 2000);
			if (now - atomic_load(&rt->heartbeat_ms) < (int64_t)(watchdog_us / 1000))
				mqp_notify("WATCHDOG=1");
		}
	}
	mqp_info("signal", "signal=%s", stop_signal == SIGTERM ? "SIGTERM" : "SIGINT");
	runtime__shutdown(rt);
	runtime__free(rt);
	return 0;
}

/* ---- for handlers -------------------------------------------------------- */

int mqp_deadletter(struct mqp_ctx *ctx, const char *reason)
{
	/* Inside the handler's savepoint: it stands or falls with the handler's
	 * other effects. */
	return ctx->msg ? runtime__deadletter(ctx, reason) : MQP_ERR_INVAL;
}
