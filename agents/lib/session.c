/* The broker session: connecting and subscribing (see session.h; the
 * traffic is in session_traffic.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "mqpipe/net.h"
#include "mqpipe/notify.h"
#include "mqpipe/runtime.h"
#include "mqpipe/shard.h"
#include "session_internal.h"

#define SESSION__MIN_RECEIVE_MAX 1000 /* below it, warn at connect (net.h) */

/* ---- connecting ---------------------------------------------------------- */

static void session__on_connection_lost(void *context, char *cause)
{
	struct session *s = context;
	atomic_store(&s->online, 0);
	atomic_store(&s->broker_fd, -1); /* Paho closes it; the number may be reused */
	char qc[300];
	mqp_warn("connection_lost", "broker=%s cause=%s action=reconnect", s->p.opts->broker,
		 mqp_log_quote(qc, sizeof(qc), cause ? cause : "unknown"));
}

/* Paho calls this when the broker sends a DISCONNECT (MQTT 5). Reason 142,
 * session taken over: another process connected with this client id, such
 * as a shard started on a second host before it was stopped on the first.
 * Reconnecting would take the session back, and the two would alternate,
 * each applying part of the inputs to its own state, so the lifecycle
 * stops this one instead (README "Moving a shard"). */
static void session__on_server_disconnect(void *context, MQTTProperties *props,
					  enum MQTTReasonCodes reason)
{
	struct session *s = context;
	(void)props;
	atomic_store(&s->online, 0);
	if (reason == MQTTREASONCODE_SESSION_TAKEN_OVER)
		atomic_store(&s->taken_over, 1); /* logged by the lifecycle, which acts on it */
	else
		mqp_warn("broker_disconnected", "broker=%s reason=%d action=reconnect", s->p.opts->broker,
			 (int)reason);
}

int session__taken_over(struct session *s)
{
	return atomic_load(&s->taken_over);
}

static void session__on_subscribed(void *context, MQTTAsync_successData5 *response)
{
	struct session *s = context;
	/* Paho fills alt.sub only for several filters; for one, the union holds
	 * whatever was there and reasonCode is the answer. */
	int several = s->n_subs > 1 && response && response->alt.sub.reasonCodes;
	for (int i = 0; several && i < response->alt.sub.reasonCodeCount && i < s->n_subs; i++) {
		if (response->alt.sub.reasonCodes[i] > MQTTREASONCODE_GRANTED_QOS_2)
			mqp_error("subscribe_refused", "filter=%s reason=%d", s->subs[i],
				  response->alt.sub.reasonCodes[i]);
	}
	if (response && !several && response->reasonCode > MQTTREASONCODE_GRANTED_QOS_2)
		mqp_error("subscribe_refused", "filter=%s reason=%d", s->subs[0],
			  response->reasonCode);
	/* A lost session asks for a republish at once, before the status says
	 * online: waiting for the applier's next input would send the request
	 * after inputs began, and the producers' answer would repeat them
	 * (a repeated bad input is a second dead letter). */
	if (atomic_exchange(&s->session_absent, 0)) {
		atomic_store(&s->ask_republish_due, 1);
		mqp_inbox_wake(s->p.inbox);
	}
	session__publish(s, SESSION__ID_STATUS, s->status_topic, s->online_payload,
		      strlen(s->online_payload), 1, 1, NULL, 0);
	atomic_store(&s->online, 1);
	mqp_info("online", "broker=%s client_id=%s subscriptions=%d", s->p.opts->broker,
		 s->p.opts->client_id, s->n_subs);
	if (!atomic_exchange(&s->ever_online, 1))
		mqp_notify("READY=1\nSTATUS=online");
}

static void session__on_subscribe_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct session *s = context;
	mqp_error("subscribe_failed", "code=%d msg=\"%s\" action=retry", response ? response->code : 0,
		  response && response->message ? response->message : "");
	/* The main loop subscribes again (a disconnect here would also end
	 * Paho's automatic reconnection). */
	atomic_store(&s->subscribe_failed, 1);
}

/* Subscribes to every filter at QoS 1; on_subscribed then says online. */
static void session__subscribe(struct session *s)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess5 = session__on_subscribed;
	ro.onFailure5 = session__on_subscribe_failed;
	ro.context = s;
	ro.subscribeOptions = s->subs_options[0]; /* Paho reads this for one filter, the list for more */
	ro.subscribeOptionsList = s->subs_options;
	ro.subscribeOptionsCount = s->n_subs;
	int rc = MQTTAsync_subscribeMany(s->client, s->n_subs, s->subs, s->subs_qos, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		mqp_error("subscribe_failed", "code=%d action=retry", rc);
		atomic_store(&s->subscribe_failed, 1);
	}
}

/* Paho calls this after every successful connect, first or automatic. */
static void session__on_connected(void *context, char *cause)
{
	struct session *s = context;
	/* Paho never sets TCP_NODELAY: without it each small publish waits on
	 * Nagle and delayed ACK (~40 ms a hop). Paho reads a packet with three
	 * recv() calls after two poll() calls: the read buffer saves most (rxbuf.h). */
	int fd, buffer_rc;
	int n = mqp_net_after_connect_any(s->p.opts->broker, &fd, &buffer_rc);
	atomic_store(&s->nodelay_on, 1);
	atomic_store(&s->broker_fd, fd);
	if (buffer_rc) /* Paho's reads stay unbuffered: slower, still correct */
		mqp_warn("read_buffer_not_set", "msg=\"%s\"", mqp_strerror(buffer_rc));
	if (atomic_fetch_add(&s->connects, 1) > 0) { /* a reconnect, not the first connect */
		atomic_store(&s->republish_due, 1);
		/* Paho gives an automatic reconnect no sessionPresent (only the
		 * first connect's onSuccess5 has it): taken as lost (shard.h). */
		if (mqp_shard_session_lost(0, 0))
			atomic_store(&s->session_absent, 1);
	}
	if (n <= 0)
		mqp_warn("nodelay_not_set", "broker=%s result=%d", s->p.opts->broker, n);
	mqp_info("connected", "broker=%s cause=\"%s\" nodelay_sockets=%d", s->p.opts->broker,
		 cause ? cause : "", n);
	/* mosquitto 2.0.11 forgets shared subscriptions across its restarts, so
	 * subscribe on every connect even when the session is present. */
	session__subscribe(s);
}

/* Paho calls this when a connect, first or automatic, succeeds. A broker
 * that announces a small Receive Maximum (mosquitto's default
 * max_inflight_messages is 20) slows every burst of outputs to that many a
 * second (net.h): said once per connect, as a warning naming the fix. */
static void session__on_connect_ok(void *context, MQTTAsync_successData5 *response)
{
	struct session *s = context;
	if (mqp_shard_session_lost(response != NULL,
				   response ? response->alt.connect.sessionPresent : 0))
		atomic_store(&s->session_absent, 1);
	int receive_max = mqp_net_receive_maximum(response ? &response->properties : NULL);
	mqp_info("connect_ok", "server=%s session_present=%d receive_maximum=%d",
		 response && response->alt.connect.serverURI ? response->alt.connect.serverURI : "",
		 response ? response->alt.connect.sessionPresent : -1, receive_max);
	if (receive_max < SESSION__MIN_RECEIVE_MAX)
		mqp_warn("broker_receive_maximum_low",
			 "receive_maximum=%d effect=\"bursts of outputs are sent at %d a second\" "
			 "fix=\"max_inflight_messages 0 in the broker's mosquitto.conf\"",
			 receive_max, receive_max);
}

static void session__on_connect_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct session *s = context;
	mqp_debug("connect_failed", "code=%d msg=\"%s\"", response ? response->code : 0,
		  response && response->message ? response->message : "");
	atomic_store(&s->connect_failed, 1);
}

static void session__on_disconnected(void *context, MQTTAsync_successData5 *response)
{
	(void)response;
	atomic_store(&((struct session *)context)->disconnected, 1);
}

static void session__on_disconnect_failed(void *context, MQTTAsync_failureData5 *response)
{
	(void)response;
	atomic_store(&((struct session *)context)->disconnected, 1);
}

/* Builds the status payload for state. Returns a malloc'ed string or NULL. */
static char *session__status_payload(const struct session *s, const char *state)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o && cJSON_AddStringToObject(o, "agent", s->p.agent_name) &&
	    cJSON_AddStringToObject(o, "state", state) &&
	    mqp_json_add_uint(o, "pid", (uint64_t)getpid()) &&
	    cJSON_AddStringToObject(o, "version", MQPIPE_VERSION) &&
	    (s->p.opts->shards <= 1 || /* README "Scaling out" */
	     (mqp_json_add_uint(o, "shards", (uint64_t)s->p.opts->shards) &&
	      (s->p.opts->shard < 0 || mqp_json_add_uint(o, "shard", (uint64_t)s->p.opts->shard)))))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* Fills the connect options once; Paho reuses them for automatic reconnects. */
static int session__connect_options(struct session *s)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_willOptions wo = MQTTAsync_willOptions_initializer;
	s->conn = co;
	s->will = wo;
	s->conn_props = (MQTTProperties)MQTTProperties_initializer;
	/* A persistent session that never expires: events published while the
	 * agent is down wait for it. An agent may ask for an expiry instead (the
	 * workers: README "Case deadlines"); 0xFFFFFFFF would mean never. */
	int64_t secs = s->p.session_expiry_s;
	MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
			       .value.integer4 = secs <= 0 || secs >= 0xFFFFFFFFLL
							 ? 0xFFFFFFFFU
							 : (unsigned)secs};
	if (MQTTProperties_add(&s->conn_props, &expiry))
		return MQP_ERR_NOMEM;
	s->conn.cleanstart = 0;
	s->conn.keepAliveInterval = 30;
	s->conn.connectTimeout = 10;
	s->conn.automaticReconnect = 1;
	s->conn.minRetryInterval = 1;
	s->conn.maxRetryInterval = 30;
	s->conn.maxInflight = 65535; /* a full window wakes Paho's sender only once a second */
	s->conn.connectProperties = &s->conn_props;
	s->will.topicName = s->status_topic;
	s->will.message = s->offline_payload;
	s->will.retained = 1;
	s->will.qos = 1;
	s->conn.will = &s->will;
	if (s->p.opts->has_username)
		s->conn.username = s->p.opts->username;
	if (s->p.opts->has_password)
		s->conn.password = s->p.opts->password;
	if (mqp_net_uri_tls(s->p.opts->broker)) {
		MQTTAsync_SSLOptions so = MQTTAsync_SSLOptions_initializer;
		s->ssl = so;
		s->ssl.trustStore = s->p.opts->cafile[0] ? s->p.opts->cafile : NULL;
		s->ssl.keyStore = s->p.opts->cert[0] ? s->p.opts->cert : NULL;
		s->ssl.privateKey = s->p.opts->key[0] ? s->p.opts->key : NULL;
		s->conn.ssl = &s->ssl;
	}
	if (s->n_uris > 1) { /* -b's list: Paho tries them in order at each (re)connect */
		s->conn.serverURIs = s->uris;
		s->conn.serverURIcount = s->n_uris;
	}
	s->conn.onSuccess5 = session__on_connect_ok; /* the connected callback does the work */
	s->conn.onFailure5 = session__on_connect_failed;
	s->conn.context = s;
	return MQP_OK;
}

int session__connect(struct session *s)
{
	int rc = MQTTAsync_connect(s->client, &s->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		atomic_store(&s->connect_failed, 1);
		mqp_debug("connect_refused", "code=%d", rc);
		return MQP_ERR_MQTT;
	}
	return MQP_OK;
}

int session__filter(const struct mqp_options *opts, const char *sub, char *out, size_t size)
{
	if (strncmp(sub, "$share/", 7) != 0)
		return mqp_options_topic(opts, sub, out, size) ? MQP_ERR_INVAL : MQP_OK;
	/* A shared subscription keeps $share/<group>/ in front of the prefix. */
	const char *slash = strchr(sub + 7, '/');
	char rest[1024];
	if (!slash || mqp_options_topic(opts, slash + 1, rest, sizeof(rest)))
		return MQP_ERR_INVAL;
	int n = snprintf(out, size, "%.*s%s", (int)(slash + 1 - sub), sub, rest);
	return n >= 0 && (size_t)n < size ? MQP_OK : MQP_ERR_INVAL;
}

/* The subscriptions' filters with the --prefix, each at QoS 1. Returns 0,
 * MQP_ERR_NOMEM or MQP_ERR_INVAL (a filter does not fit). */
static int session__subscriptions(struct session *s)
{
	const char *const *f = s->p.subscriptions;
	while (f[s->n_subs])
		s->n_subs++;
	s->subs = calloc((size_t)s->n_subs + 1, sizeof(char *));
	s->subs_qos = calloc((size_t)s->n_subs + 1, sizeof(int));
	s->subs_options = calloc((size_t)s->n_subs + 1, sizeof(MQTTSubscribe_options));
	if (!s->subs || !s->subs_qos || !s->subs_options)
		return MQP_ERR_NOMEM;
	for (int i = 0; i < s->n_subs; i++) {
		char full[2100];
		int rc = session__filter(s->p.opts, f[i], full, sizeof(full));
		if (rc)
			return rc;
		if (!(s->subs[i] = strdup(full)))
			return MQP_ERR_NOMEM;
		s->subs_qos[i] = 1;
		/* Inputs are events, never state: a retained one is applied when it
		 * is published, and not handed over again at every subscribe (each
		 * start), where a forgotten repeat would be applied anew (README
		 * "Input rules"). */
		s->subs_options[i] = (MQTTSubscribe_options)MQTTSubscribe_options_initializer;
		s->subs_options[i].retainHandling = 2;
	}
	return MQP_OK;
}

/* ---- the seam and the clean stop ----------------------------------------- */

static int session__ops_online(void *impl)
{
	return atomic_load(&((struct session *)impl)->online);
}

static int session__ops_reconnected(void *impl)
{
	return atomic_exchange(&((struct session *)impl)->republish_due, 0);
}

static int session__ops_session_lost(void *impl)
{
	return atomic_exchange(&((struct session *)impl)->ask_republish_due, 0);
}

static int session__offline_acked(void *arg)
{
	return atomic_load(&((struct session *)arg)->offline_acked);
}

static int session__is_disconnected(void *arg)
{
	return atomic_load(&((struct session *)arg)->disconnected);
}

/* session_ops.say_offline: see session_ops.h. */
static void session__say_offline(void *impl, int wait_ms)
{
	struct session *s = impl;
	if (!atomic_load(&s->online))
		return;
	session__publish(s, SESSION__ID_OFFLINE, s->status_topic, s->offline_payload,
			 strlen(s->offline_payload), 1, 1, NULL, 0);
	clock__wait_for(session__offline_acked, s, wait_ms);
}

/* session_ops.disconnect: see session_ops.h. */
static void session__disconnect(void *impl, int wait_ms)
{
	struct session *s = impl;
	atomic_store(&s->broker_fd, -1); /* the applier must not touch it once closed */
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
	/* Paho's own timeout is a second shorter: its callback comes within the wait. */
	d.timeout = wait_ms > 1000 ? wait_ms - 1000 : wait_ms;
	d.onSuccess5 = session__on_disconnected;
	d.onFailure5 = session__on_disconnect_failed;
	d.context = s;
	if (MQTTAsync_disconnect(s->client, &d) == MQTTASYNC_SUCCESS)
		clock__wait_for(session__is_disconnected, s, wait_ms);
}

/* Splits -b's comma-separated list (checked by the options) into s->uris. */
static void session__split_uris(struct session *s)
{
	snprintf(s->uri_buf, sizeof(s->uri_buf), "%s", s->p.opts->broker);
	char *save = NULL;
	s->n_uris = 0;
	for (char *u = strtok_r(s->uri_buf, ",", &save); u && s->n_uris < (int)MQP_LEN(s->uris);
	     u = strtok_r(NULL, ",", &save))
		s->uris[s->n_uris++] = u;
}

/* Creates the Paho client and sets its callbacks. */
static int session__create_client(struct session *s)
{
	session__split_uris(s);
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
	/* Outputs produced while the broker is away wait in Paho (they are in the
	 * outbox too); the default cap of 100 would refuse sends even when connected. */
	cro.sendWhileDisconnected = 1;
	cro.allowDisconnectedSendAtAnyTime = 1;
	cro.maxBufferedMessages = 1 << 20;
	cro.deleteOldestMessages = 0;
	if (MQTTAsync_createWithOptions(&s->client, s->uris[0], s->p.opts->client_id,
					MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setCallbacks(s->client, s, session__on_connection_lost, session__on_message,
				   NULL) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setConnected(s->client, s, session__on_connected) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setDisconnected(s->client, s, session__on_server_disconnect) !=
		    MQTTASYNC_SUCCESS) {
		mqp_error("mqtt_create_failed", "broker=%s", s->p.opts->broker);
		return MQP_ERR_MQTT;
	}
	mqp_net_paho_quiet();
	return MQP_OK;
}

/* The status and metrics topics, with the --prefix, and the status payloads. */
static int session__status(struct session *s)
{
	char rel[200];
	int rc;
	snprintf(rel, sizeof(rel), "mqpipe/status/%s", s->p.opts->client_id);
	if ((rc = mqp_options_topic(s->p.opts, rel, s->status_topic, sizeof(s->status_topic))))
		return rc;
	snprintf(rel, sizeof(rel), "mqpipe/metrics/%s", s->p.opts->client_id);
	if ((rc = mqp_options_topic(s->p.opts, rel, s->metrics_topic, sizeof(s->metrics_topic))))
		return rc;
	s->online_payload = session__status_payload(s, "online");
	s->offline_payload = session__status_payload(s, "offline");
	return s->online_payload && s->offline_payload ? MQP_OK : MQP_ERR_NOMEM;
}

int session__new(struct session **out, const struct session_parts *parts)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return MQP_ERR_NOMEM;
	s->p = *parts;
	s->ops = (struct session_ops){session__publish, session__ops_online,
				      session__ops_reconnected, session__bursting,
				      session__applied, session__say_offline,
				      session__disconnect, session__ops_session_lost, s};
	atomic_store(&s->broker_fd, -1);
	s->conn_props = (MQTTProperties)MQTTProperties_initializer;
	session__one = s;
	int rc;
	if ((rc = session__status(s)) || (rc = session__subscriptions(s)) ||
	    (rc = session__create_client(s)) || (rc = session__connect_options(s))) {
		session__free(s);
		return rc;
	}
	*out = s;
	return MQP_OK;
}

void session__free(struct session *s)
{
	if (!s)
		return;
	if (s->client)
		MQTTAsync_destroy(&s->client);
	MQTTProperties_free(&s->conn_props);
	for (int i = 0; s->subs && i < s->n_subs; i++)
		free(s->subs[i]);
	free(s->subs);
	free(s->subs_qos);
	free(s->subs_options);
	free(s->online_payload);
	free(s->offline_payload);
	if (session__one == s)
		session__one = NULL;
	free(s);
}

void session__set_outbox(struct session *s, struct outbox *ob)
{
	s->p.outbox = ob;
}

const struct session_ops *session__ops(struct session *s)
{
	return &s->ops;
}

int session__take_connect_failed(struct session *s)
{
	return atomic_exchange(&s->connect_failed, 0);
}

int session__take_subscribe_failed(struct session *s)
{
	return atomic_exchange(&s->subscribe_failed, 0);
}

void session__resubscribe(struct session *s)
{
	if (MQTTAsync_isConnected(s->client))
		session__subscribe(s);
}

int session__online(struct session *s)
{
	return atomic_load(&s->online);
}

int session__ever_online(struct session *s)
{
	return atomic_load(&s->ever_online);
}
