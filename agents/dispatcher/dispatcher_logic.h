/* The dispatcher's rules (README "Fan-out"),
 * as pure functions: validate job.submit and dashboard.request, turn them
 * into a job of cases with each compute.request payload rendered, and build
 * job.accepted. No SQLite, no MQTT. */
#ifndef MQPIPE_DISPATCHER_LOGIC_H
#define MQPIPE_DISPATCHER_LOGIC_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "jobs_logic.h"
#include "mqpipe/json.h"

struct dispatch_job {
	char request_id[JOBS_ID_MAX + 1];
	const char *kind;   /* "job" or "dashboard" */
	/* A dashboard's parameters, "" for a job: job.accepted carries them to
	 * the aggregator, which renders dashboard.ready. */
	char dashboard_type[JOBS_ID_MAX + 1];
	char time_range[JOBS_ID_MAX + 1];
	uint64_t digest;    /* of the request's content: a resubmit must match it */
	size_t n_cases;
	char **requests;    /* n_cases compute.request payloads, in submission order */
};

/* Validates job.submit {"requestId", "requests":[{"caseId",…}…], "length"?}:
 * requestId 1-256 bytes; at most JOBS_CASES_MAX requests, each an object with
 * a caseId (string or whole number), all different, and what a worker reads
 * of it valid (jobs_parse_case: workMs 0..JOBS_WORK_MS_MAX, source...);
 * length, when present (a
 * whole number or a string of digits), equal to the number of requests.
 * On success fills *out (free with dispatch_job_free). Returns 0,
 * MQP_ERR_INPUT with a reason, or MQP_ERR_NOMEM. */
int dispatch_parse_submit(const void *payload, size_t len, struct dispatch_job *out,
			  struct mqp_reason *why);

/* Validates dashboard.request {"request_id", "dashboard_type"? = "executive",
 * "time_range"? = "24h"} and expands it into a job of one case per source:
 * {"caseId":<source>,"source":<source>,"dashboard_type","time_range"}. */
int dispatch_parse_dashboard(const void *payload, size_t len, struct dispatch_job *out,
			     struct mqp_reason *why);

void dispatch_job_free(struct dispatch_job *job);

/* {"requestId","target","kind","acceptedAt"}, plus "dashboard_type" and
 * "time_range" for a dashboard; NULL when out of memory. */
cJSON *dispatch_accepted_event(const struct dispatch_job *job, uint64_t accepted_at_ms);

/* ---- case deadlines (README "Case deadlines") ---------------------------- */

/* A case's deadline is --case-timeout after it was sent, or this many times
 * its work estimate when that is longer. */
#define DISPATCH_ESTIMATE_FACTOR 2

/* What the dispatcher keeps of a case it sent, read from its rendered
 * compute.request. */
struct dispatch_sent {
	char request_id[JOBS_ID_MAX + 1];
	char case_id[2 * JOBS_ID_MAX + 3]; /* the caseId's JSON text, as jobs_parse_done */
	int64_t index;                     /* its place in the submission */
	int64_t estimate_ms;               /* its workMs, a source's slowest latency, or 0 */
};

/* Reads a compute.request the dispatcher rendered (dispatch_parse_submit or
 * _dashboard): requestId, caseId, index and the work estimate of its case.
 * Returns 0 with *out, MQP_ERR_INPUT (not such a request) or MQP_ERR_NOMEM. */
int dispatch_read_sent(const char *request, size_t len, struct dispatch_sent *out);

/* How long a case may take, from a send to its compute.done: timeout_ms,
 * or DISPATCH_ESTIMATE_FACTOR times estimate_ms when that is longer. */
int64_t dispatch_case_span_ms(int64_t timeout_ms, int64_t estimate_ms);

/* What to do when a case's deadline passes without its compute.done. */
enum dispatch_expiry {
	DISPATCH_RESEND, /* send it again: attempts_made + 1 */
	DISPATCH_FAIL,   /* the last attempt's deadline: it failed */
};

/* attempts_made: how many times the case was sent (1 after the first
 * send); max_attempts: --case-attempts (at least 1). */
enum dispatch_expiry dispatch_on_deadline(int64_t attempts_made, int64_t max_attempts);

/* The compute.done the dispatcher publishes for a case no worker finished:
 * {"requestId","caseId","index","processingMs":0,"result":{"status":"failed",
 * "error":"no worker finished the case within N attempts"},"worker":by}.
 * case_id is the caseId's JSON text. Returns a new object, or NULL when out
 * of memory or case_id is not JSON. */
cJSON *dispatch_failed_done(const char *request_id, const char *case_id, int64_t index,
			    int64_t attempts, const char *by);

#endif
