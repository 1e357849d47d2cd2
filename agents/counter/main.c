/* mqpipe-counter: see counter_agent.c. */
#include <stdio.h>

#include "counter_agent.h"

int main(int argc, char **argv)
{
	struct mqp_agent agent;
	if (counter_agent(&agent)) {
		fputs("mqpipe-counter: out of memory\n", stderr);
		return 1;
	}
	return mqp_agent_main(&agent, argc, argv);
}
