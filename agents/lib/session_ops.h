/* The seam between the broker session and the parts that use it (internal).
 *
 * The outbox, the applier and the clean stop call the session only through
 * these few operations, so unit tests drive them with a fake session
 * (test/unit/test_applier.c) and no broker. session.c fills them for Paho. */
#ifndef MQPIPE_LIB_SESSION_OPS_H
#define MQPIPE_LIB_SESSION_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Ids of messages that are not outbox rows (outbox rows have ids > 0). */
#define SESSION__ID_STATUS (-1)
#define SESSION__ID_OFFLINE (-2)
#define SESSION__ID_METRICS (-3)

struct session_ops {
	/* Publishes len bytes of payload on topic (QoS qos, retained when
	 * retain), with MQTT 5 correlation data when correlation is not NULL.
	 * For id > 0 (an outbox row) the outcome comes back later, on another
	 * thread, as exactly one of outbox__acked, outbox__failed or
	 * outbox__refused, unless this returns an error. Returns 0, or
	 * MQP_ERR_MQTT when the client refused the send at once. */
	int (*publish)(void *impl, int64_t id, const char *topic, const void *payload, size_t len,
		       int qos, int retain, const void *correlation, size_t correlation_len);
	/* True while connected and subscribed. */
	int (*online)(void *impl);
	/* True once after each reconnect (not the first connect): the outputs
	 * of the republish window are due again. */
	int (*reconnected)(void *impl);
	/* True while a backlog is arriving (acknowledgements are left to Nagle):
	 * the applier then looks for the burst's end every millisecond. */
	int (*bursting)(void *impl);
	/* The applier finished a pass: a burst that has paused and been applied
	 * must not leave acknowledgements or outputs waiting on Nagle. */
	void (*applied)(void *impl);
	/* The clean stop: publishes the retained offline status and waits up to
	 * wait_ms for its acknowledgement (nothing when offline). */
	void (*say_offline)(void *impl, int wait_ms);
	/* Disconnects, waiting up to wait_ms; no message arrives afterwards. */
	void (*disconnect)(void *impl, int wait_ms);
	/* True once after a connect that found the broker without this
	 * client's session (sessionPresent 0), once it subscribed again: what
	 * the broker held for it may be gone (README "Scaling out"). May be
	 * NULL (never). */
	int (*session_lost)(void *impl);
	void *impl;
};

#endif
