/* The alerter agent: its definition apart from main() (see counter_agent.h). */
#ifndef MQPIPE_ALERTER_AGENT_H
#define MQPIPE_ALERTER_AGENT_H

#include "mqpipe/runtime.h"

/* Fills *agent with the alerter's definition. Returns 0 or MQP_ERR_NOMEM. */
int alerter_agent(struct mqp_agent *agent);

#endif
