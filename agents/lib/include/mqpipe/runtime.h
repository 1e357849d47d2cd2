/* The agent runtime: everything an mqpipe agent shares.
 *
 * An agent supplies a struct mqp_agent (its name, subscriptions, schema and a
 * handler) and calls mqp_agent_main from main(). The runtime then:
 *  - parses the common flags (exit 64 on a usage error);
 *  - opens the SQLite store and the durable inbox, replaying its unapplied tail;
 *  - connects to the broker with an MQTT 5 persistent session (clean start 0,
 *    session never expiring unless the agent sets session_expiry_ms), retrying with backoff, reconnecting automatically,
 *    re-subscribing at QoS 1 on every connect and setting TCP_NODELAY;
 *  - appends each message to the inbox before it is acknowledged, and applies
 *    inbox records on one applier thread in batched transactions, calling the
 *    handler for each inside its own savepoint;
 *  - publishes outputs from the outbox after the commit that wrote them, and
 *    deletes them once the broker acknowledged them;
 *  - publishes retained status (with a last will) and periodic metrics, talks
 *    to systemd, and stops cleanly on SIGTERM/SIGINT.
 * One runtime per process. */
#ifndef MQPIPE_RUNTIME_H
#define MQPIPE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "mqpipe/error.h"
#include "mqpipe/json.h"
#include "mqpipe/log.h"
#include "mqpipe/options.h"
#include "mqpipe/store.h"

/* What the handler sees of one message. topic has the --prefix removed. */
struct mqp_message {
	const char *topic;
	const void *payload;
	size_t len;
	int64_t received_ms; /* arrival, Unix ms */
	/* An MQTT 5 request's response topic (as sent, no prefix removed) and
	 * correlation data; NULL when the message had none. */
	const char *response_topic;
	const void *correlation;
	size_t correlation_len;
};

/* The handler's view of the runtime while it handles one message. */
struct mqp_ctx;

struct mqp_agent {
	const char *name;                  /* "counter": default client id mqpipe-<name> */
	const char *const *subscriptions;  /* NULL-terminated topic filters, before prefix */
	/* It owns one shard (README "Scaling out"): it takes --shard, and with
	 * --shards above 1 each of its subscriptions T becomes shard/<K>/T (the
	 * handler still sees T) and its default client id and store name the
	 * shard. */
	int sharded;
	/* It only makes sense with --shards above 1 (the router): with 1, a
	 * usage error. */
	int needs_shards;
	/* Its inputs are open streams, from publishers that do not wait on
	 * its answers (the router, the counter): its receive thread may pause
	 * 0.5 ms in a stream to take more packets a wake-up (mqp_rxbuf_coalesce).
	 * Not for request/response agents, whose requesters wait on each pause. */
	int coalesce_reads;
	/* Filters subscribed as they are even when sharded (outputs of other
	 * agents that an agent also reads: the alerter's rule topics); may be NULL. */
	const char *const *plain_subscriptions;
	const struct mqp_migration *migrations;
	size_t n_migrations;
	const struct mqp_extra_option *options; /* agent-specific flags, may be NULL */
	size_t n_options;
	void *options_ctx;                 /* passed to the options' handlers */
	long max_payload;                  /* default --max-payload; 0: MQP_MAX_PAYLOAD_DEFAULT */
	/* Run as many instances per broker (the workers): the default client
	 * id is mqpipe-<name>-<hostname> and the default store is named after
	 * the client id, so instances on one host need only -i. */
	int instances_per_host;
	/* Optional: the agent's MQTT 5 session expiry interval in ms, read once
	 * the flags are parsed (an agent flag may set it), rounded down to
	 * whole seconds. NULL: the session never expires (every stateful agent:
	 * what arrives while it is down waits for it). The workers' is short, so
	 * the broker drops a lost worker's session and the cases queued in it
	 * (README "Case deadlines"). */
	const int64_t *session_expiry_ms;
	/* Where mqp_reply may answer: response topics must start with this
	 * (before the --prefix, e.g. "replies/"; read once the flags are
	 * parsed). NULL or "": any response topic. */
	const char *reply_prefix;
	/* Optional: renders the answer to a request the runtime refuses for the
	 * agent before or after its handler: field "body" for a payload over
	 * --max-payload, "response_topic" for a response topic off reply_prefix;
	 * message says why. Returns text the runtime frees with free(), or NULL
	 * when out of memory. Without it such a request is only dead-lettered. */
	char *(*refusal)(const char *field, const char *message);
	/* Called once the store is open, before any message: prepare statements.
	 * Returns 0 or a negative error (the agent then exits 1). */
	int (*init)(void *state, struct mqp_store *store);
	void (*fini)(void *state);
	/* Handles one message inside its own savepoint of the batch transaction.
	 * Effects go through the store and mqp_emit. Returns 0 when handled;
	 * MQP_ERR_INPUT with a reason in *why to refuse the message (its effects are
	 * rolled back and it is dead-lettered); MQP_ERR_DB when the store failed
	 * (the agent stops without acknowledging more: the inbox keeps the message
	 * for the next start); any other negative error rolls the message back and
	 * dead-letters it with "internal error". */
	int (*handle)(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
		      struct mqp_reason *why);
	/* Optional: work that is due rather than caused by one message (timers,
	 * paced output). Called on the applier thread inside a transaction: once
	 * at start, after every batch of messages and acknowledgements, and when
	 * the time it asked for has come. Effects go through the store and
	 * mqp_emit. Sets *next_ms to the Unix ms at which to be called again, or 0
	 * for "after the next batch". Returns 0, or a negative error that stops
	 * the agent (nothing of the transaction is kept). */
	int (*tick)(void *state, struct mqp_ctx *ctx, int64_t now_ms, int64_t *next_ms);
	void *state;
};

/* Runs the agent until SIGTERM/SIGINT. Returns the process exit status. */
int mqp_agent_main(const struct mqp_agent *agent, int argc, char **argv);

/* Queues an output event in the outbox, in the current transaction; it is
 * published (QoS 1, with the --prefix) once that transaction commits. obj stays
 * the caller's. Returns 0 or a negative error. */
int mqp_emit(struct mqp_ctx *ctx, const char *topic, const cJSON *obj);

/* mqp_emit for a payload already rendered as text (len bytes, kept by the
 * caller). Returns 0 or a negative error. */
int mqp_emit_raw(struct mqp_ctx *ctx, const char *topic, const char *payload, size_t len);

/* Answers the message being handled: on its MQTT 5 response topic with its
 * correlation data when it has one, else on fallback_topic (with the
 * --prefix). Through the outbox like any output; fallback_topic also names
 * the reply in the metrics. payload stays the caller's. A response topic
 * holding wildcards counts as none (the request is answered on the
 * fallback). A response topic not under the agent's reply_prefix (with the
 * --prefix) is refused, README "Ingestion": mqp_reply returns 0 and sends
 * nothing, and once the handler returns, the runtime rolls the message's
 * effects back and answers on fallback_topic instead, {"status":400,
 * "errors":[{"field":"response_topic","message":…}]} naming the topic.
 * Returns 0 or a negative error. */
int mqp_reply(struct mqp_ctx *ctx, const char *fallback_topic, const char *payload, size_t len);

/* Outputs published and not yet acknowledged by the broker, plus those queued
 * in the current transaction: what a paced producer keeps under a window. */
int64_t mqp_ctx_unacked(struct mqp_ctx *ctx);

/* Writes into buf[size] the topic on which input `topic` for key goes to
 * the agent instance that owns key (README "Scaling out"): shard/<k>/topic
 * with k = mqp_shard_of(key) when --shards is above 1, else topic itself.
 * For outputs other agents read as inputs (job.accepted, compute.done,
 * aggregate.trigger). Returns 0, or MQP_ERR_INVAL when it does not fit. */
int mqp_ctx_shard_topic(struct mqp_ctx *ctx, const char *topic, const char *key, char *buf,
			size_t size);

/* Whether this instance owns key: 0 with a reason in why naming the field
 * (`what`) and both shards, returning MQP_ERR_INPUT, when key belongs to
 * another shard (its publisher sharded it wrongly); 0 for every key with
 * --shards 1 or in an agent that owns no shard. */
int mqp_ctx_check_owner(struct mqp_ctx *ctx, const char *what, const char *key,
			struct mqp_reason *why);

/* True when key belongs to this instance's shard (always with --shards 1). */
int mqp_ctx_owns(struct mqp_ctx *ctx, const char *key);

/* The agent's MQTT client id (-i), e.g. for a worker to sign its outputs. */
const char *mqp_ctx_client_id(struct mqp_ctx *ctx);

/* Dead-letters the message being handled (stored, and published on
 * deadletter/<topic>, counted in the metrics) while the handler's other
 * effects stay: for a handler that refuses a message but still answers it,
 * and then returns 0. Returns 0 or a negative error. */
int mqp_deadletter(struct mqp_ctx *ctx, const char *reason);

/* Builds the dead-letter event published on deadletter/<topic>:
 * {"agent","topic","reason","payload"|"payload_b64","received_at"}, with the
 * payload as text when it is UTF-8 without control bytes other than tab, LF
 * and CR, else base64 (4/3 its size, where \u00XX escapes would be 6).
 * Returns a new object, or NULL when out of memory. */
cJSON *mqp_deadletter_event(const char *agent, const char *topic, const char *reason,
			    const void *payload, size_t len, int64_t received_ms);

/* Current time, Unix ms / µs. */
int64_t mqp_now_ms(void);
int64_t mqp_now_us(void);

#endif
