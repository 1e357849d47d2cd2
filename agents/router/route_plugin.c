/* mqpipe_route, a mosquitto plugin (README "Routing inside mosquitto"): the
 * router's rule (router_logic.h) run inside the broker. Each input a
 * publisher sends on a plain input topic is queued again, by the broker
 * itself, on its shard's topic, shard/<k>/<topic>; an input with no key is
 * queued as a dead letter on deadletter/<topic> instead, as mqpipe-router
 * would publish it. The original goes on to its plain topic unchanged.
 *
 * Why a plugin: mqpipe-router takes every event from its broker and gives it
 * back, two broker passes and four MQTT packets an event, which cost it and
 * its broker more CPU than the counter (README "Shards"). Here an event costs
 * its broker one parse and one more delivery, and nothing else runs.
 *
 * What it keeps: nothing. The copy is queued in the broker's memory during
 * the publisher's PUBLISH, as safe as the original: both are in the broker's
 * memory until its next autosave (README "Guarantees"). Copies leave in the
 * order the inputs came, so each publisher's order is kept.
 *
 * Options (mosquitto.conf, after "plugin .../mqpipe_route.so"):
 *   plugin_opt_shards S    2 to MQP_SHARDS_MAX, required
 *   plugin_opt_prefix P    the agents' --prefix, if any
 * Built only where mosquitto's plugin headers are (mosquitto-dev). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "mqpipe/error.h"
#include "mqpipe/runtime.h"
#include "mqpipe/shard.h"
#include "router_logic.h"

#define ROUTE_PLUGIN__TOPIC_MAX 1024

struct route_plugin {
	mosquitto_plugin_id_t *id;
	uint32_t shards;
	char prefix[256]; /* "P/" or "" */
	size_t prefix_len;
};

static struct route_plugin route_plugin__one; /* a broker loads a plugin once */

/* The plugin API version this plugin speaks: 5, mosquitto 2.0's. */
int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

/* Queues a dead letter for the input on topic (with the prefix) that has no
 * shard key: the event mqpipe-router would publish, on P/deadletter/<topic
 * without P>. Logs, once, when it cannot. */
static void route_plugin__deadletter(const struct route_plugin *rp, const char *topic,
				     const char *bare, const char *reason, const void *payload,
				     size_t len)
{
	mosquitto_log_printf(MOSQ_LOG_WARNING, "mqpipe_route: dead letter for %s: %s", topic, reason);
	cJSON *ev = mqp_deadletter_event("router", bare, reason, payload, len, mqp_now_ms());
	char *text = ev ? cJSON_PrintUnformatted(ev) : NULL;
	cJSON_Delete(ev);
	char out[ROUTE_PLUGIN__TOPIC_MAX];
	int n = snprintf(out, sizeof(out), "%sdeadletter/%s", rp->prefix, bare);
	if (!text || n < 0 || (size_t)n >= sizeof(out) ||
	    mosquitto_broker_publish_copy(NULL, out, (int)strlen(text), text, 1, false, NULL) !=
		    MOSQ_ERR_SUCCESS)
		mosquitto_log_printf(MOSQ_LOG_ERR, "mqpipe_route: could not queue the dead letter for %s",
				     topic);
	free(text);
}

/* MOSQ_EVT_MESSAGE: every PUBLISH the broker accepted (its ACL already
 * checked on the plain topic). An input on a routed topic is queued again
 * on its shard's topic; anything else passes untouched. Always returns
 * MOSQ_ERR_SUCCESS: the original is never refused. */
static int route_plugin__on_message(int event, void *event_data, void *userdata)
{
	(void)event;
	const struct route_plugin *rp = userdata;
	const struct mosquitto_evt_message *m = event_data;
	if (!m->topic || strncmp(m->topic, rp->prefix, rp->prefix_len) != 0)
		return MOSQ_ERR_SUCCESS;
	const char *bare = m->topic + rp->prefix_len;
	const void *payload = m->payload ? m->payload : ""; /* mosquitto's, NULL when empty */
	int routed = strncmp(bare, "metrics/", 8) == 0;
	for (size_t i = 0; route_topics[i] && !routed; i++)
		routed = strcmp(bare, route_topics[i]) == 0;
	if (!routed)
		return MOSQ_ERR_SUCCESS;
	char key[ROUTE_KEY_MAX + 1], shard_topic[ROUTE_PLUGIN__TOPIC_MAX], out[ROUTE_PLUGIN__TOPIC_MAX];
	struct mqp_reason why = {0};
	if (route_key(bare, payload, m->payloadlen, key, &why)) {
		route_plugin__deadletter(rp, m->topic, bare, why.text, payload, m->payloadlen);
		return MOSQ_ERR_SUCCESS;
	}
	uint32_t k = mqp_shard_of(key, strlen(key), rp->shards);
	int n = -1;
	if (mqp_shard_topic(rp->shards, k, bare, shard_topic, sizeof(shard_topic)) == MQP_OK)
		n = snprintf(out, sizeof(out), "%s%s", rp->prefix, shard_topic);
	if (n < 0 || (size_t)n >= sizeof(out)) {
		route_plugin__deadletter(rp, m->topic, bare, "topic too long to route", payload,
					 m->payloadlen);
		return MOSQ_ERR_SUCCESS;
	}
	if (mosquitto_broker_publish_copy(NULL, out, (int)m->payloadlen, payload, 1, false, NULL) !=
	    MOSQ_ERR_SUCCESS)
		mosquitto_log_printf(MOSQ_LOG_ERR, "mqpipe_route: out of memory routing %s", m->topic);
	return MOSQ_ERR_SUCCESS;
}

/* Reads plugin_opt_shards and plugin_opt_prefix into rp. Returns 0, or
 * MOSQ_ERR_INVAL after logging which option is wrong. */
static int route_plugin__options(struct route_plugin *rp, const struct mosquitto_opt *opts, int n)
{
	rp->shards = 0;
	rp->prefix[0] = '\0';
	rp->prefix_len = 0;
	for (int i = 0; i < n; i++) {
		if (strcmp(opts[i].key, "shards") == 0) {
			char *end = NULL;
			long s = strtol(opts[i].value, &end, 10);
			if (!end || *end || s < 2 || s > MQP_SHARDS_MAX) {
				mosquitto_log_printf(MOSQ_LOG_ERR,
						     "mqpipe_route: plugin_opt_shards '%s': a number of "
						     "shards, 2 to %d",
						     opts[i].value, MQP_SHARDS_MAX);
				return MOSQ_ERR_INVAL;
			}
			rp->shards = (uint32_t)s;
		} else if (strcmp(opts[i].key, "prefix") == 0) {
			size_t len = strlen(opts[i].value);
			if (len == 0 || len + 2 > sizeof(rp->prefix) || strpbrk(opts[i].value, "+#")) {
				mosquitto_log_printf(MOSQ_LOG_ERR,
						     "mqpipe_route: plugin_opt_prefix '%s': a topic "
						     "prefix of 1 to %zu bytes, no wildcards",
						     opts[i].value, sizeof(rp->prefix) - 2);
				return MOSQ_ERR_INVAL;
			}
			snprintf(rp->prefix, sizeof(rp->prefix), "%s/", opts[i].value);
			rp->prefix_len = len + 1;
		} else {
			mosquitto_log_printf(MOSQ_LOG_ERR,
					     "mqpipe_route: unknown option plugin_opt_%s (it takes "
					     "shards and prefix)",
					     opts[i].key);
			return MOSQ_ERR_INVAL;
		}
	}
	if (rp->shards == 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "mqpipe_route: plugin_opt_shards S is required");
		return MOSQ_ERR_INVAL;
	}
	return MOSQ_ERR_SUCCESS;
}

/* Reads the options and registers the message callback. Returns
 * MOSQ_ERR_SUCCESS, or an error (the broker then refuses to start). */
int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
			  struct mosquitto_opt *options, int option_count)
{
	struct route_plugin *rp = &route_plugin__one;
	int rc = route_plugin__options(rp, options, option_count);
	if (rc)
		return rc;
	rp->id = identifier;
	*userdata = rp;
	rc = mosquitto_callback_register(identifier, MOSQ_EVT_MESSAGE, route_plugin__on_message, NULL, rp);
	if (rc == MOSQ_ERR_SUCCESS)
		mosquitto_log_printf(MOSQ_LOG_INFO, "mqpipe_route: routing %s<input> to %sshard/<k>/<input>, %u shards",
				     rp->prefix, rp->prefix, (unsigned)rp->shards);
	return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	struct route_plugin *rp = userdata;
	if (rp && rp->id)
		mosquitto_callback_unregister(rp->id, MOSQ_EVT_MESSAGE, route_plugin__on_message, NULL);
	return MOSQ_ERR_SUCCESS;
}
