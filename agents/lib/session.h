/* The broker session (internal): the Paho MQTTAsync client of one agent.
 *
 * An MQTT 5 persistent session (clean start 0, never expiring unless the
 * agent asks for an expiry: struct mqp_agent) with the
 * retained status topic as its last will; automatic reconnects, and a
 * subscribe at QoS 1 on every connect (retain handling 2: README "Input
 * rules"). Each arriving message is appended to the inbox before Paho
 * acknowledges it; publish outcomes of outbox rows go to the outbox.
 * Adaptive Nagle: TCP_NODELAY is let off while a backlog arrives, and on
 * again once it is applied (session_ops.h "bursting"/"applied"). The
 * lifecycle drives connects and retries; the rest use session_ops. */
#ifndef MQPIPE_LIB_SESSION_H
#define MQPIPE_LIB_SESSION_H

#include "mqpipe/inbox.h"
#include "mqpipe/metrics.h"
#include "mqpipe/options.h"
#include "outbox.h"
#include "session_ops.h"

struct session;

/* What the session works with; all of it stays the caller's and must
 * outlive the session. subscriptions: NULL-terminated filters before the
 * --prefix (a $share/<group>/ head stays in front of it). */
struct session_parts {
	const char *agent_name;
	const char *const *subscriptions;
	const struct mqp_options *opts;
	struct mqp_inbox *inbox;
	struct mqp_metrics *metrics;
	struct outbox *outbox; /* may be set later with session__set_outbox */
	/* The session expiry interval, s; 0: never expires. */
	int64_t session_expiry_s;
};

/* Creates the client (no connection yet): topics, status payloads and
 * connect options. Returns 0, MQP_ERR_NOMEM, MQP_ERR_INVAL (a topic does not
 * fit) or MQP_ERR_MQTT (logged). */
int session__new(struct session **out, const struct session_parts *parts);

/* Destroys the client. NULL is fine. */
void session__free(struct session *s);

/* The outbox that publish outcomes go to (set before the first publish). */
void session__set_outbox(struct session *s, struct outbox *ob);

/* The seam for the outbox, the applier and the clean stop. */
const struct session_ops *session__ops(struct session *s);

/* Starts a connect; the outcome comes through session__take_connect_failed
 * or online. Returns 0 or MQP_ERR_MQTT (also flagged as a failed connect). */
int session__connect(struct session *s);

/* True once after each failed connect / failed subscribe (clears it). */
int session__take_connect_failed(struct session *s);
int session__take_subscribe_failed(struct session *s);

/* Subscribes again when connected (after a failed subscribe). */
void session__resubscribe(struct session *s);

/* True once the broker said another connection took this client id over
 * (MQTT 5 DISCONNECT 142, session taken over): another process runs this
 * agent (or shard) with the same client id. Stays true. */
int session__taken_over(struct session *s);

/* True while connected and subscribed; true once it ever was. */
int session__online(struct session *s);
int session__ever_online(struct session *s);

/* The filter sub subscribes to under the options' --prefix, into out (size
 * bytes): prefix/sub, or for a shared subscription $share/<group>/prefix/rest.
 * Returns 0, or MQP_ERR_INVAL when it is malformed or does not fit. */
int session__filter(const struct mqp_options *opts, const char *sub, char *out, size_t size);

/* Publishes the retained metrics report text (not an outbox row). */
void session__publish_metrics(struct session *s, const char *text);

#endif
