/* The session's state, shared by its two files (internal to session*.c):
 * session.c connects and subscribes, session_traffic.c publishes and
 * receives. Nothing else includes this. */
#ifndef MQPIPE_LIB_SESSION_INTERNAL_H
#define MQPIPE_LIB_SESSION_INTERNAL_H

#include <stdatomic.h>

#include <MQTTAsync.h>

#include "session.h"

struct session {
	struct session_parts p;
	struct session_ops ops;
	MQTTAsync client;
	char status_topic[300], metrics_topic[300];
	char *online_payload, *offline_payload;
	char **subs;
	int *subs_qos;
	MQTTSubscribe_options *subs_options;
	int n_subs;
	/* Connection (callbacks set, the lifecycle reads). */
	MQTTAsync_connectOptions conn;
	MQTTAsync_willOptions will;
	MQTTProperties conn_props;
	MQTTAsync_SSLOptions ssl;
	atomic_int connect_failed, subscribe_failed, online, ever_online, offline_acked, disconnected;
	atomic_int connects;      /* successful connects so far */
	atomic_int republish_due; /* reconnected: the republish window is due again */
	/* The last connect found no session (sessionPresent 0): once subscribed,
	 * a sharded agent asks for a republish (README "Scaling out"). */
	atomic_int session_absent, ask_republish_due;
	/* The broker disconnected us because another connection took this
	 * client id (MQTT 5 reason 142): the lifecycle stops the agent. */
	atomic_int taken_over;
	/* -b's list, split: Paho's serverURIs, tried in order. */
	char uri_buf[512];
	char *uris[16];
	int n_uris;
	/* Adaptive Nagle: the broker socket, whether TCP_NODELAY is on, and when
	 * the last message arrived. */
	atomic_int broker_fd, nodelay_on;
	atomic_llong last_arrival_us;
	unsigned arrivals; /* receive thread only */
};

/* Paho's send callbacks carry the row id as their context (no allocation
 * per message), so they find the session here: one per process. */
extern struct session *session__one;

/* session_traffic.c: the seam's publish (session_ops.h), the adaptive
 * Nagle pair, and Paho's message callback (appends to the inbox; 1 lets
 * Paho acknowledge, 0 makes it offer the message again). */
int session__publish(void *impl, int64_t id, const char *topic, const void *payload, size_t len,
		     int qos, int retain, const void *correlation, size_t correlation_len);
int session__bursting(void *impl);
void session__applied(void *impl);
int session__on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m);

#endif
