/* The worker's rules (README "Workers") as
 * pure functions: read a compute.request, decide how long its simulated work
 * takes, make its result (mock data of its kind for a dashboard source) and
 * build compute.done. Randomness comes from a caller-owned generator state, so
 * the tests can replay it. No SQLite, no MQTT, no clock. */
#ifndef MQPIPE_WORKER_LOGIC_H
#define MQPIPE_WORKER_LOGIC_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "jobs_logic.h"
#include "mqpipe/json.h"

#define WORK_MS_MAX JOBS_WORK_MS_MAX /* an hour: longer simulated work is surely a mistake */

/* How long work takes: --work-ms for job cases, the sources' ranges scaled by
 * --latency-scale for dashboard cases. */
struct work_profile {
	unsigned work_min_ms, work_max_ms;
	unsigned source_min_ms[JOBS_SOURCES], source_max_ms[JOBS_SOURCES];
	double latency_scale;
};

/* The defaults: --work-ms 0, the seed's source ranges, scale 1. */
void work_profile_default(struct work_profile *p);

/* Parses "MIN" or "MIN-MAX" (whole ms, MIN <= MAX <= WORK_MS_MAX). Returns 0
 * or MQP_ERR_INVAL. */
int work_parse_range(const char *text, unsigned *min_ms, unsigned *max_ms);

/* Applies a profile file's text: a JSON object mapping source names to
 * [min_ms, max_ms] (sources left out keep their range). Returns 0, or
 * MQP_ERR_INVAL with a one-line reason naming the bad entry in err. */
int work_profile_load(struct work_profile *p, const char *text, size_t len, char *err,
		      size_t errlen);

/* One compute.request, as the worker needs it. */
struct work_case {
	char request_id[JOBS_ID_MAX + 1];
	char case_id[2 * JOBS_ID_MAX + 3]; /* its JSON text, see jobs_case_id */
	int64_t index;                     /* place in the submission, -1 when absent */
	int source;                        /* jobs_sources index, -1 for a job case */
	int64_t work_ms;                   /* the case's own "workMs", -1 when absent */
	char dashboard_type[JOBS_ID_MAX + 1], time_range[JOBS_ID_MAX + 1];
};

/* Validates compute.request {"requestId", "caseId", "index"?, "case": {…}}:
 * the case under jobs_parse_case (workMs, source...). Returns 0, MQP_ERR_INPUT
 * with a reason, or MQP_ERR_NOMEM. On MQP_ERR_INPUT out->request_id is ""
 * unless requestId and caseId (and index, if valid) were read: then the case
 * can still be answered, as failed (work_failed_result). */
int work_parse_request(const void *payload, size_t len, struct work_case *out,
		       struct mqp_reason *why);

/* A uniform draw in [lo, hi] from the xorshift state *rng (never 0). */
unsigned work_uniform(uint64_t *rng, unsigned lo, unsigned hi);

/* How long the case's work takes, in ms: its workMs, else its source's range
 * scaled, else --work-ms. */
unsigned work_duration(const struct work_profile *p, const struct work_case *c, uint64_t *rng);

/* The case's result: mock data of its source's kind for a dashboard case,
 * {"status":"success"} for a job case. A new object, or NULL when out of
 * memory. */
cJSON *work_result(const struct work_case *c, uint64_t *rng);

/* The result of a case the worker refuses: {"status":"failed","error":reason}.
 * A new object, or NULL when out of memory. */
cJSON *work_failed_result(const char *reason);

/* compute.done {"requestId","caseId","index"?,"processingMs","result","worker"},
 * rendered; result stays the caller's. A new string (free()), or NULL when
 * out of memory. */
char *work_done_payload(const struct work_case *c, uint64_t processing_ms, const cJSON *result,
			const char *worker);

#endif
