/* mqpipe-aggregator: see aggregator_agent.c. */
#include <stdio.h>

#include "aggregator_agent.h"

int main(int argc, char **argv)
{
	struct mqp_agent agent;
	if (aggregator_agent(&agent)) {
		fputs("mqpipe-aggregator: out of memory\n", stderr);
		return 1;
	}
	return mqp_agent_main(&agent, argc, argv);
}
