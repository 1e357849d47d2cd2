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

#endif
