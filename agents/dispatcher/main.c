/* mqpipe-dispatcher: see dispatcher_agent.c. */
#include <stdio.h>

#include "dispatcher_agent.h"

int main(int argc, char **argv)
{
	struct mqp_agent agent;
	if (dispatcher_agent(&agent)) {
		fputs("mqpipe-dispatcher: out of memory\n", stderr);
		return 1;
	}
	return mqp_agent_main(&agent, argc, argv);
}
