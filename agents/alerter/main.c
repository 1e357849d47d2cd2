/* mqpipe-alerter: see alerter_agent.c. */
#include <stdio.h>

#include "alerter_agent.h"

int main(int argc, char **argv)
{
	struct mqp_agent agent;
	if (alerter_agent(&agent)) {
		fputs("mqpipe-alerter: out of memory\n", stderr);
		return 1;
	}
	return mqp_agent_main(&agent, argc, argv);
}
