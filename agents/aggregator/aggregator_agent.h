/* The aggregator agent: its definition apart from main() (see counter_agent.h). */
#ifndef MQPIPE_AGGREGATOR_AGENT_H
#define MQPIPE_AGGREGATOR_AGENT_H

#include "mqpipe/runtime.h"

/* Fills *agent with the aggregator's definition. Returns 0 or MQP_ERR_NOMEM. */
int aggregator_agent(struct mqp_agent *agent);

#endif
