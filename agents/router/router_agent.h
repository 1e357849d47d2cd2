/* The router agent: its definition, apart from main() so tests can drive it
 * against a real store without a broker. */
#ifndef MQPIPE_ROUTER_AGENT_H
#define MQPIPE_ROUTER_AGENT_H

#include "mqpipe/runtime.h"

/* Fills *agent with the router's definition. Returns 0. */
int router_agent(struct mqp_agent *agent);

#endif
