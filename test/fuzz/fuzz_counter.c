/* libFuzzer target: every payload the counter decodes (recv_message,
 * weekly_diagnostic, job.accepted, compute.done). Each parser must return 0
 * or an error with a reason, never crash or read out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "../../agents/counter/counter_logic.h"
#include "../../agents/jobs/jobs_logic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mqp_reason why;
	struct sr_recv r;
	struct sr_diag d;
	struct jobs_accepted a;
	struct jobs_done done;
	sr_parse_recv(data, size, &r, &why);
	sr_parse_diag(data, size, &d, &why);
	jobs_parse_accepted(data, size, &a, &why);
	jobs_parse_done(data, size, &done, &why);
	return 0;
}
