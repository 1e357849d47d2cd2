/* The ingest agent: its definition apart from main() (see counter_agent.h). */
#ifndef MQPIPE_INGEST_AGENT_H
#define MQPIPE_INGEST_AGENT_H

#include "mqpipe/runtime.h"

/* Fills *agent with the ingest's definition. Returns 0 or MQP_ERR_NOMEM. */
int ingest_agent(struct mqp_agent *agent);

#endif
