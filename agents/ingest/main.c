/* mqpipe-ingest: see ingest.c. */
#include <stdio.h>

#include "ingest.h"

int main(int argc, char **argv)
{
	struct mqp_agent agent;
	if (ingest_agent(&agent)) {
		fputs("mqpipe-ingest: out of memory\n", stderr);
		return 1;
	}
	return mqp_agent_main(&agent, argc, argv);
}
