/* The dispatcher agent: its definition apart from main() (see counter_agent.h). */
#ifndef MQPIPE_DISPATCHER_AGENT_H
#define MQPIPE_DISPATCHER_AGENT_H

#include "mqpipe/runtime.h"

/* Fills *agent with the dispatcher's definition. Returns 0 or MQP_ERR_NOMEM. */
int dispatcher_agent(struct mqp_agent *agent);

#endif
