/* The counter agent: its definition (handlers, subscriptions, and the schema
 * from counter_state.h), apart from main() so tests can drive it against a
 * real store without a broker. */
#ifndef MQPIPE_COUNTER_AGENT_H
#define MQPIPE_COUNTER_AGENT_H

#include "mqpipe/runtime.h"

struct counter;

/* Fills *agent with the counter's definition; state is allocated here and
 * freed by agent->fini. Returns 0 or MQP_ERR_NOMEM. */
int counter_agent(struct mqp_agent *agent);

#endif
