/* mqpipe-router: see router_agent.c. */
#include <stdio.h>

#include "router_agent.h"

int main(int argc, char **argv)
{
	struct mqp_agent agent;
	if (router_agent(&agent)) {
		fputs("mqpipe-router: out of memory\n", stderr);
		return 1;
	}
	return mqp_agent_main(&agent, argc, argv);
}
