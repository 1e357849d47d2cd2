/* The tools' MQTT client: see client.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "mqpipe/net.h"

struct tool_client {
	MQTTAsync client;
	const struct mqp_options *opts;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int connected, subscribed;
	int session_s;       /* >0: the broker keeps the session this long after a disconnect */
	char *const *filters; /* subscribed: taken again at every reconnect */
	int n_filters;
	long sent, acked, failed;
	long wake_below; /* >0: a publisher sleeps until fewer than this await acks */
	long receive_max; /* the broker's Receive Maximum: the window never exceeds it */
	MQTTAsync_SSLOptions ssl;
};

static void client__deadline(struct timespec *t, int secs)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_sec += secs;
}

static void client__signal(struct tool_client *c, int *flag, long *count)
{
	pthread_mutex_lock(&c->lock);
	if (flag)
		*flag = 1;
	if (count)
		(*count)++;
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
	mqp_net_nodelay_to(c->opts->broker, NULL); /* Paho never sets it: ~40 ms a hop without */
	pthread_mutex_lock(&c->lock);
	int resubscribe = c->subscribed;
	pthread_mutex_unlock(&c->lock);
	if (resubscribe && client__subscribe(c, NULL))
		fprintf(stderr, "%s: cannot subscribe again after a reconnect\n", c->opts->agent);
	client__signal(c, &c->connected, NULL);
}

/* Notes the broker's Receive Maximum from its CONNACK (see tool_publish). */
static void client__on_connect_ok(void *ctx, MQTTAsync_successData5 *r)
{
	struct tool_client *c = ctx;
	pthread_mutex_lock(&c->lock);
	c->receive_max = mqp_net_receive_maximum(r ? &r->properties : NULL);
	pthread_mutex_unlock(&c->lock);
}

/* Counts an acknowledgement. The publisher is woken only once its window
 * has half drained, not at every ack: one futex wake per ack cost a third of
 * the replay rate. */
static void client__on_sent(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	struct tool_client *c = ctx;
	pthread_mutex_lock(&c->lock);
	c->acked++;
	if (c->wake_below == 0 || c->sent - c->acked - c->failed < c->wake_below)
		pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void client__on_send_failed(void *ctx, MQTTAsync_failureData5 *r)
{
	struct tool_client *c = ctx;
	fprintf(stderr, "publish failed: code %d\n", r ? r->code : 0);
	client__signal(c, NULL, &c->failed);
}

static void client__on_subscribed(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	struct tool_client *c = ctx;
	client__signal(c, &c->subscribed, NULL);
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
	if (opts->has_client_id)
		snprintf(id, sizeof(id), "%s", opts->client_id);
	else
		snprintf(id, sizeof(id), "%s-%d", name, (int)getpid());
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
	cro.maxBufferedMessages = 1 << 20;
	if (MQTTAsync_createWithOptions(&c->client, opts->broker, id, MQTTCLIENT_PERSISTENCE_NONE,
					NULL, &cro) != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "%s: cannot use broker '%s'\n", name, opts->broker);
		free(c);
		return NULL;
	}
	MQTTAsync_setCallbacks(c->client, ctx, NULL, arrived, NULL);
	MQTTAsync_setConnected(c->client, c, client__on_connected);
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
	/* A kept session makes Paho send again, with DUP, the publishes a broker
	 * restart cut off, and has the broker queue a subscriber's messages
	 * while it is away. */
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
			       .value.integer4 = (unsigned)session_s};
	co.cleanstart = session_s > 0 ? 0 : 1;
	if (session_s > 0 && MQTTProperties_add(&props, &expiry) == 0)
		co.connectProperties = &props;
	co.maxInflight = 65535;
	co.automaticReconnect = 1;
	co.connectTimeout = 5;
	co.onSuccess5 = client__on_connect_ok;
	co.context = c;
	if (opts->has_username)
		co.username = opts->username;
	if (opts->has_password)
		co.password = opts->password;
	if (strncmp(opts->broker, "ssl://", 6) == 0 || strncmp(opts->broker, "mqtts://", 8) == 0 ||
	    strncmp(opts->broker, "wss://", 6) == 0) {
		MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
		c->ssl = ssl;
		c->ssl.trustStore = opts->cafile[0] ? opts->cafile : NULL;
		c->ssl.keyStore = opts->cert[0] ? opts->cert : NULL;
		c->ssl.privateKey = opts->key[0] ? opts->key : NULL;
		co.ssl = &c->ssl;
	}
	int rc = MQTTAsync_connect(c->client, &co);
	MQTTProperties_free(&props); /* Paho keeps its own copy for reconnects */
	if (rc != MQTTASYNC_SUCCESS) {
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
	if (c->sent - c->acked - c->failed >= window) {
		c->wake_below = window / 2 > 0 ? window / 2 : 1;
		while (c->sent - c->acked - c->failed >= c->wake_below)
			pthread_cond_wait(&c->cond, &c->lock);
		c->wake_below = 0;
	}
	c->sent++;
	pthread_mutex_unlock(&c->lock);
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess5 = client__on_sent;
	ro.onFailure5 = client__on_send_failed;
	ro.context = c;
	int rc;
	for (int tries = 0; (rc = MQTTAsync_sendMessage(c->client, topic, m, &ro)) != MQTTASYNC_SUCCESS;
	     tries++) {
		if (tries > 10000) { /* ten seconds of refusals: the broker is gone */
			fprintf(stderr, "publish to %s refused: code %d\n", topic, rc);
			client__signal(c, NULL, &c->failed);
			return -1;
		}
		usleep(1000);
	}
	return 0;
}

long tool_drain(struct tool_client *c, int timeout_s)
{
	struct timespec until;
	client__deadline(&until, timeout_s);
	pthread_mutex_lock(&c->lock);
	while (c->sent - c->acked - c->failed > 0 &&
	       pthread_cond_timedwait(&c->cond, &c->lock, &until) == 0)
		;
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

long tool_failed(struct tool_client *c)
{
	pthread_mutex_lock(&c->lock);
	long n = c->failed;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void tool_close(struct tool_client *c, int keep_session)
{
	if (!c)
		return;
	MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer5;
	/* A session kept only to ride out broker restarts ends with the tool. */
	MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
			       .value.integer4 = 0};
	if (c->session_s > 0 && !keep_session)
		MQTTProperties_add(&dc.properties, &expiry);
	if (MQTTAsync_isConnected(c->client))
		MQTTAsync_disconnect(c->client, &dc);
	MQTTProperties_free(&dc.properties);
	usleep(50000);
	MQTTAsync_destroy(&c->client);
	free(c);
}
