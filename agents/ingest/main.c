/* mqpipe-ingest: see ingest_agent.c. */
#include <stdio.h>

#include "ingest_agent.h"

int main(int argc, char **argv)
{
	struct mqp_agent agent;
	if (ingest_agent(&agent)) {
		fputs("mqpipe-ingest: out of memory\n", stderr);
		return 1;
	}
	return mqp_agent_main(&agent, argc, argv);
}
