/* The router agent (README "Scaling out"): the plain input topics in, each
 * event out again unchanged on its shard's topic, shard/<k>/<topic>, for
 * publishers that cannot shard (mosquitto_pub, existing devices). It keeps
 * no state of its own: the runtime's inbox and outbox are what make it lose
 * nothing and double nothing (an input is acknowledged once it is in the
 * inbox, and its copy leaves through the outbox in the transaction that
 * applies it). One router per ingress broker keeps each publisher's order. */
#include "router_agent.h"
#include "router_logic.h"

static int router__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			  struct mqp_reason *why)
{
	(void)state;
	char key[ROUTE_KEY_MAX + 1], topic[1024];
	int rc = route_key(msg->topic, msg->payload, msg->len, key, why);
	if (rc)
		return rc;
	if ((rc = mqp_ctx_shard_topic(ctx, msg->topic, key, topic, sizeof(topic))))
		return mqp_reason_set(why, "topic '%s' is too long to route", msg->topic);
	return mqp_emit_raw(ctx, topic, msg->payload, msg->len);
}

int router_agent(struct mqp_agent *agent)
{
	*agent = (struct mqp_agent){
		.name = "router",
		.subscriptions = route_topics,
		.handle = router__handle,
		.needs_shards = 1,
		.coalesce_reads = 1,
		/* A job.submit of 100 000 cases is several MB (README "Fan-out"). */
		.max_payload = 16L << 20,
	};
	return MQP_OK;
}
