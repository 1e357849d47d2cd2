/* mqpipe-worker: see worker_agent.c. */
#include <stdio.h>

#include "worker_agent.h"

int main(int argc, char **argv)
{
	struct mqp_agent agent;
	if (worker_agent(&agent)) {
		fputs("mqpipe-worker: out of memory\n", stderr);
		return 1;
	}
	return mqp_agent_main(&agent, argc, argv);
}
