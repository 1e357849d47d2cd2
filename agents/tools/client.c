/* The tools' MQTT client: see client.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "mqpipe/error.h"
#include "mqpipe/net.h"

/* One publish awaiting its acknowledgement: the tool's own copy, the
 * context of its Paho callbacks, so a publish Paho gives back after a
 * dropped connection can be sent again (see client__on_send_failed). */
struct client__pending {
	struct tool_client *c;
	struct client__pending *prev, *next; /* c->live: every pending publish */
	struct client__pending *again;       /* c->resend: those to send again */
	MQTTAsync_message m;                  /* payload and properties owned */
	int attempts;
	char topic[];
};

struct tool_client {
	MQTTAsync client;
	const struct mqp_options *opts;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int connected, subscribed, closed;
	int session_s;       /* >0: the broker keeps the session this long after a disconnect */
	char *const *filters; /* subscribed: taken again at every reconnect */
	int n_filters;
	long sent, acked, failed, resent;
	struct client__pending *live;   /* every publish not yet acknowledged or refused */
	struct client__pending *resend; /* given back by Paho: sent again by the publisher */
	long wake_below; /* >0: a publisher sleeps until fewer than this await acks */
	long receive_max; /* the broker's Receive Maximum: the window never exceeds it */
	MQTTAsync_SSLOptions ssl;
};

static void client__deadline(struct timespec *t, int secs)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_sec += secs;
}

/* Sets *flag (connected, subscribed) and wakes whoever waits for it. */
static void client__signal(struct tool_client *c, int *flag)
{
	pthread_mutex_lock(&c->lock);
	*flag = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Subscribes at QoS 1 to c's filters without waiting for the SUBACK; done, if not
 * NULL, is called on it. Returns 0 or -1. */
static int client__subscribe(struct tool_client *c, MQTTAsync_onSuccess5 *done)
{
	int qos[64];
	/* Retained messages only for a subscription the broker did not have:
	 * a kept session resumed must not deliver them twice. */
	MQTTSubscribe_options so[64];
	for (int i = 0; i < c->n_filters && i < 64; i++) {
		qos[i] = 1;
		so[i] = (MQTTSubscribe_options)MQTTSubscribe_options_initializer;
		so[i].retainHandling = 1;
	}
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess5 = done;
	ro.context = c;
	ro.subscribeOptions = so[0]; /* Paho reads this for one filter, the list for more */
	ro.subscribeOptionsList = so;
	ro.subscribeOptionsCount = c->n_filters;
	return MQTTAsync_subscribeMany(c->client, c->n_filters, c->filters, qos, &ro) ==
			       MQTTASYNC_SUCCESS
		       ? 0
		       : -1;
}

/* Every connect, the first and each automatic reconnect. A broker that
 * restarted from an older snapshot may have lost the subscriptions, so a
 * subscriber takes them again (the broker treats a repeat as a no-op). */
static void client__on_connected(void *ctx, char *cause)
{
	(void)cause;
	struct tool_client *c = ctx;
	int fd, buffer_rc; /* TCP_NODELAY (~40 ms a hop without) and the read buffer */
	mqp_net_after_connect(c->opts->broker, &fd, &buffer_rc);
	if (buffer_rc)
		fprintf(stderr, "%s: reading unbuffered: %s\n", c->opts->agent, mqp_strerror(buffer_rc));
	pthread_mutex_lock(&c->lock);
	int resubscribe = c->subscribed;
	pthread_mutex_unlock(&c->lock);
	if (resubscribe && client__subscribe(c, NULL))
		fprintf(stderr, "%s: cannot subscribe again after a reconnect\n", c->opts->agent);
	client__signal(c, &c->connected);
}

/* Notes the broker's Receive Maximum from its CONNACK (see tool_publish). */
static void client__on_connect_ok(void *ctx, MQTTAsync_successData5 *r)
{
	struct tool_client *c = ctx;
	pthread_mutex_lock(&c->lock);
	c->receive_max = mqp_net_receive_maximum(r ? &r->properties : NULL);
	pthread_mutex_unlock(&c->lock);
}

/* A publish is sent at most this many times before it counts as refused:
 * each attempt waits for a reconnect, so this is minutes of a broker that
 * takes connections and drops them at once. */
#define CLIENT__MAX_ATTEMPTS 20

/* Copies topic and m (payload and properties) into a new pending publish,
 * linked into c->live. Returns it, or NULL when out of memory. Call with
 * c->lock held. */
static struct client__pending *client__pending_new(struct tool_client *c, const char *topic,
						   const MQTTAsync_message *m)
{
	size_t tlen = strlen(topic) + 1;
	struct client__pending *p = malloc(sizeof(*p) + tlen);
	if (!p)
		return NULL;
	*p = (struct client__pending){.c = c, .next = c->live, .m = *m};
	memcpy(p->topic, topic, tlen);
	p->m.payload = NULL;
	if (m->payloadlen > 0 && !(p->m.payload = malloc((size_t)m->payloadlen))) {
		free(p);
		return NULL;
	}
	if (m->payloadlen > 0)
		memcpy(p->m.payload, m->payload, (size_t)m->payloadlen);
	p->m.properties = MQTTProperties_copy(&m->properties);
	if (c->live)
		c->live->prev = p;
	c->live = p;
	return p;
}

/* Unlinks p from c->live and frees it. Call with c->lock held. */
static void client__pending_free(struct client__pending *p)
{
	struct tool_client *c = p->c;
	if (p->prev)
		p->prev->next = p->next;
	else
		c->live = p->next;
	if (p->next)
		p->next->prev = p->prev;
	MQTTProperties_free(&p->m.properties);
	free(p->m.payload);
	free(p);
}

/* Counts p as refused for good and frees it. Call with c->lock held. */
static void client__give_up(struct client__pending *p)
{
	p->c->failed++;
	client__pending_free(p);
}

/* Counts an acknowledgement. The publisher is woken only once its window
 * has half drained, not at every ack: one futex wake per ack cost a third of
 * the replay rate. */
static void client__on_sent(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	struct client__pending *p = ctx;
	struct tool_client *c = p->c;
	pthread_mutex_lock(&c->lock);
	c->acked++;
	client__pending_free(p);
	if (c->wake_below == 0 || c->sent - c->acked - c->failed < c->wake_below)
		pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* A PUBACK with a reason code of 0x80 or more is the broker's refusal, for
 * good. Any other failure is Paho giving the publish back: the connection
 * dropped while it was written (MQTTASYNC_FAILURE; the kept session may or
 * may not send it again), or the broker came back without the session
 * (MQTTASYNC_OPERATION_INCOMPLETE; the publish is gone). Either way it goes
 * on the resend list, which the publisher sends again: a copy may arrive
 * twice, none is lost (QoS 1 is at least once). */
static void client__on_send_failed(void *ctx, MQTTAsync_failureData5 *r)
{
	struct client__pending *p = ctx;
	struct tool_client *c = p->c;
	int refused = r && r->code == MQTTASYNC_SUCCESS && r->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR;
	pthread_mutex_lock(&c->lock);
	if (refused || p->attempts >= CLIENT__MAX_ATTEMPTS) {
		if (refused)
			fprintf(stderr, "publish to %s refused by the broker: %s (0x%02x)\n", p->topic,
				MQTTReasonCode_toString(r->reasonCode), (unsigned)r->reasonCode);
		else
			fprintf(stderr, "publish to %s failed %d times (last code %d), given up\n",
				p->topic, p->attempts, r ? r->code : 0);
		client__give_up(p);
	} else {
		p->again = c->resend;
		c->resend = p;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Hands p to Paho, retrying for ten seconds while it refuses (not
 * connected). Returns 0, or -1 after counting p as refused and freeing it.
 * Call without c->lock. */
static int client__send(struct tool_client *c, struct client__pending *p)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess5 = client__on_sent;
	ro.onFailure5 = client__on_send_failed;
	ro.context = p;
	p->attempts++;
	int rc;
	for (int tries = 0; (rc = MQTTAsync_sendMessage(c->client, p->topic, &p->m, &ro)) != MQTTASYNC_SUCCESS;
	     tries++) {
		if (tries > 10000) { /* ten seconds of refusals: the broker is gone */
			fprintf(stderr, "publish to %s refused: code %d\n", p->topic, rc);
			pthread_mutex_lock(&c->lock);
			client__give_up(p);
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->lock);
			return -1;
		}
		usleep(1000);
	}
	return 0;
}

/* Sends again, on the caller's thread, every publish Paho gave back. Call
 * with c->lock held; it is dropped while sending and held on return.
 * Returns 0, or -1 if one could not be handed to Paho. */
static int client__resend_locked(struct tool_client *c)
{
	while (c->resend) {
		struct client__pending *p = c->resend;
		c->resend = p->again;
		p->again = NULL;
		c->resent++;
		pthread_mutex_unlock(&c->lock);
		int rc = client__send(c, p);
		pthread_mutex_lock(&c->lock);
		if (rc)
			return -1;
	}
	return 0;
}

static void client__on_subscribed(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	struct tool_client *c = ctx;
	client__signal(c, &c->subscribed);
}

/* The client id: -i's, else name-PID. */
static void client__id(const struct mqp_options *opts, const char *name, char *id, size_t size)
{
	if (opts->has_client_id)
		snprintf(id, size, "%s", opts->client_id);
	else
		snprintf(id, size, "%s-%d", name, (int)getpid());
}

/* The credentials and TLS of the common flags into co (c->ssl holds the
 * TLS options). On the secure profile the broker makes the user name the
 * client id, so another -i is warned about. */
static void client__credentials(struct tool_client *c, const char *name, const char *id,
				MQTTAsync_connectOptions *co)
{
	const struct mqp_options *opts = c->opts;
	if (opts->has_username)
		co->username = opts->username;
	if (opts->has_username && opts->has_client_id && strcmp(id, opts->username) != 0)
		fprintf(stderr,
			"%s: warning: client id %s is not the user name %s; a broker with "
			"use_username_as_clientid (the secure profile) names the session %s\n",
			name, id, opts->username, opts->username);
	if (opts->has_password)
		co->password = opts->password;
	if (mqp_net_uri_tls(opts->broker)) {
		MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
		c->ssl = ssl;
		c->ssl.trustStore = opts->cafile[0] ? opts->cafile : NULL;
		c->ssl.keyStore = opts->cert[0] ? opts->cert : NULL;
		c->ssl.privateKey = opts->key[0] ? opts->key : NULL;
		co->ssl = &c->ssl;
	}
}

/* Starts connecting c (created) as id. Returns Paho's code. */
static int client__start(struct tool_client *c, const char *name, const char *id)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
	/* A kept session makes Paho send again, with DUP, the publishes a broker
	 * restart cut off, and has the broker queue a subscriber's messages
	 * while it is away. */
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
			       .value.integer4 = (unsigned)c->session_s};
	co.cleanstart = c->session_s > 0 ? 0 : 1;
	if (c->session_s > 0 && MQTTProperties_add(&props, &expiry) == 0)
		co.connectProperties = &props;
	co.maxInflight = 65535;
	co.automaticReconnect = 1;
	co.connectTimeout = 5;
	co.onSuccess5 = client__on_connect_ok;
	co.context = c;
	client__credentials(c, name, id, &co);
	int rc = MQTTAsync_connect(c->client, &co);
	MQTTProperties_free(&props); /* Paho keeps its own copy for reconnects */
	return rc;
}

struct tool_client *tool_connect(const struct mqp_options *opts, const char *name,
				 MQTTAsync_messageArrived *arrived, void *ctx, int timeout_s,
				 int session_s)
{
	struct tool_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->opts = opts;
	c->receive_max = 65535;
	c->session_s = session_s;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	char id[160];
	client__id(opts, name, id, sizeof(id));
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
	cro.maxBufferedMessages = 1 << 20;
	if (MQTTAsync_createWithOptions(&c->client, opts->broker, id, MQTTCLIENT_PERSISTENCE_NONE,
					NULL, &cro) != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "%s: cannot use broker '%s'\n", name, opts->broker);
		free(c);
		return NULL;
	}
	mqp_net_paho_quiet();
	MQTTAsync_setCallbacks(c->client, ctx, NULL, arrived, NULL);
	MQTTAsync_setConnected(c->client, c, client__on_connected);
	if (client__start(c, name, id) != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "%s: cannot connect to %s\n", name, opts->broker);
		tool_close(c, 0);
		return NULL;
	}
	struct timespec until;
	client__deadline(&until, timeout_s);
	pthread_mutex_lock(&c->lock);
	while (!c->connected && pthread_cond_timedwait(&c->cond, &c->lock, &until) == 0)
		;
	int up = c->connected;
	pthread_mutex_unlock(&c->lock);
	if (!up) {
		fprintf(stderr, "%s: no connection to %s within %d s\n", name, opts->broker, timeout_s);
		tool_close(c, 0);
		return NULL;
	}
	return c;
}

MQTTAsync tool_handle(struct tool_client *c)
{
	return c->client;
}

int tool_subscribe(struct tool_client *c, char *const *filters, int n)
{
	if (n < 1 || n > 64)
		return -1;
	c->filters = filters;
	c->n_filters = n;
	if (client__subscribe(c, client__on_subscribed))
		return -1;
	struct timespec until;
	client__deadline(&until, 10);
	pthread_mutex_lock(&c->lock);
	while (!c->subscribed && pthread_cond_timedwait(&c->cond, &c->lock, &until) == 0)
		;
	int ok = c->subscribed;
	pthread_mutex_unlock(&c->lock);
	return ok ? 0 : -1;
}

int tool_publish(struct tool_client *c, const char *topic, MQTTAsync_message *m, long window)
{
	pthread_mutex_lock(&c->lock);
	if (window > c->receive_max) /* past it Paho waits a second per publish */
		window = c->receive_max;
	for (;;) {
		if (c->resend && client__resend_locked(c)) {
			pthread_mutex_unlock(&c->lock);
			return -1;
		}
		if (c->sent - c->acked - c->failed < (c->wake_below ? c->wake_below : window))
			break;
		c->wake_below = window / 2 > 0 ? window / 2 : 1;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	c->wake_below = 0;
	struct client__pending *p = client__pending_new(c, topic, m);
	if (p)
		c->sent++;
	pthread_mutex_unlock(&c->lock);
	if (!p) {
		fprintf(stderr, "publish to %s: out of memory\n", topic);
		return -1;
	}
	return client__send(c, p);
}

long tool_drain(struct tool_client *c, int timeout_s)
{
	struct timespec until;
	client__deadline(&until, timeout_s);
	pthread_mutex_lock(&c->lock);
	while (c->sent - c->acked - c->failed > 0) {
		if (c->resend) {
			client__resend_locked(c); /* a failure is counted, and printed */
			continue;
		}
		if (pthread_cond_timedwait(&c->cond, &c->lock, &until) != 0)
			break;
	}
	long left = c->sent - c->acked - c->failed;
	pthread_mutex_unlock(&c->lock);
	return left;
}

long tool_acked(struct tool_client *c)
{
	pthread_mutex_lock(&c->lock);
	long n = c->acked;
	pthread_mutex_unlock(&c->lock);
	return n;
}

long tool_resent(struct tool_client *c)
{
	pthread_mutex_lock(&c->lock);
	long n = c->resent;
	pthread_mutex_unlock(&c->lock);
	return n;
}

long tool_failed(struct tool_client *c)
{
	pthread_mutex_lock(&c->lock);
	long n = c->failed;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* Disconnect done or failed: Paho has written everything queued before it. */
static void client__on_closed(void *context, MQTTAsync_successData5 *r)
{
	(void)r;
	struct tool_client *c = context;
	client__signal(c, &c->closed);
}

static void client__on_close_failed(void *context, MQTTAsync_failureData5 *r)
{
	(void)r;
	struct tool_client *c = context;
	client__signal(c, &c->closed);
}

void tool_close(struct tool_client *c, int keep_session)
{
	if (!c)
		return;
	MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer5;
	/* Waiting for the DISCONNECT to be written, not a fixed pause: Paho
	 * writes it after every publish queued before it, so a QoS 0 publish
	 * counted as sent reaches the broker even on a busy machine (a 50 ms
	 * sleep before destroy once lost the last one of a replay). */
	dc.onSuccess5 = client__on_closed;
	dc.onFailure5 = client__on_close_failed;
	dc.context = c;
	/* A session kept only to ride out broker restarts ends with the tool. */
	MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
			       .value.integer4 = 0};
	if (c->session_s > 0 && !keep_session)
		MQTTProperties_add(&dc.properties, &expiry);
	if (MQTTAsync_isConnected(c->client) && MQTTAsync_disconnect(c->client, &dc) == MQTTASYNC_SUCCESS) {
		struct timespec until;
		client__deadline(&until, 5);
		pthread_mutex_lock(&c->lock);
		while (!c->closed && pthread_cond_timedwait(&c->cond, &c->lock, &until) == 0)
			;
		pthread_mutex_unlock(&c->lock);
	}
	MQTTProperties_free(&dc.properties);
	MQTTAsync_destroy(&c->client);
	/* Paho calls nothing back once destroyed: what is left is the tool's. */
	while (c->live)
		client__pending_free(c->live);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}
