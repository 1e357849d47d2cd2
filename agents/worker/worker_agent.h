/* The worker agent: its definition apart from main() (see counter_agent.h). */
#ifndef MQPIPE_WORKER_AGENT_H
#define MQPIPE_WORKER_AGENT_H

#include "mqpipe/runtime.h"

/* Fills *agent with the worker's definition. Returns 0 or MQP_ERR_NOMEM. */
int worker_agent(struct mqp_agent *agent);

#endif
