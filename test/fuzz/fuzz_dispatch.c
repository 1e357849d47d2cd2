/* libFuzzer target: the dispatcher's job.submit and dashboard.request
 * decoders; an accepted job is freed again (leaks are findings too). */
#include <stddef.h>
#include <stdint.h>

#include "../../agents/dispatcher/dispatcher_logic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mqp_reason why;
	struct dispatch_job job;
	if (dispatch_parse_submit(data, size, &job, &why) == 0)
		dispatch_job_free(&job);
	if (dispatch_parse_dashboard(data, size, &job, &why) == 0)
		dispatch_job_free(&job);
	return 0;
}
