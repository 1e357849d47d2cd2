/* The rules of fan-out/fan-in jobs (README "Fan-out" and "Fan-in") that
 * several agents share, as pure functions: case ids; for the counter,
 * job.accepted and compute.done, when a job is complete, aggregate.trigger.
 * No SQLite, no MQTT. */
#ifndef MQPIPE_JOBS_LOGIC_H
#define MQPIPE_JOBS_LOGIC_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "mqpipe/json.h"

#define JOBS_ID_MAX MQP_STR_MAX
#define JOBS_CASES_MAX 100000 /* README "Fan-out": up to 100 000 cases per job */

/* The six dashboard sources (README "Aggregator"), in the order their
 * cases are sent, with the seed's latency ranges (uniform, ms). */
#define JOBS_SOURCES 6
struct jobs_source {
	const char *name;
	unsigned min_ms, max_ms;
};
extern const struct jobs_source jobs_sources[JOBS_SOURCES];

/* The index of the source called name, or -1. */
int jobs_source_find(const char *name);

/* job.accepted: {"requestId": str, "target": uint, "kind": str, "acceptedAt": uint} */
struct jobs_accepted {
	char request_id[JOBS_ID_MAX + 1];
	uint64_t target;
	char kind[JOBS_ID_MAX + 1];
	uint64_t accepted_at;
	/* A dashboard's parameters; "" when absent (a job). */
	char dashboard_type[JOBS_ID_MAX + 1];
	char time_range[JOBS_ID_MAX + 1];
};

/* compute.done: {"requestId": str, "caseId": str|uint, ...}. The counter needs
 * only these two; case_id is the caseId's JSON text ("\"a\"" or "7"), so the
 * string "7" and the number 7 stay different cases. */
struct jobs_done {
	char request_id[JOBS_ID_MAX + 1];
	char case_id[2 * JOBS_ID_MAX + 3];
};

int jobs_parse_accepted(const void *payload, size_t len, struct jobs_accepted *out,
			struct mqp_reason *why);
int jobs_parse_done(const void *payload, size_t len, struct jobs_done *out, struct mqp_reason *why);
/* jobs_parse_done on an object already parsed (root stays the caller's), for
 * the aggregator, which reads more of compute.done. */
int jobs_parse_done_root(const cJSON *root, struct jobs_done *out, struct mqp_reason *why);


/* Reads a caseId (a string of 1..256 bytes or a whole number up to 2^53-1)
 * from item as its JSON text into out[2 * JOBS_ID_MAX + 3]. Returns 0 or
 * MQP_ERR_INPUT. Shared with the dispatcher and aggregator. */
int jobs_case_id(const cJSON *item, char *out, struct mqp_reason *why);

/* The longest simulated work a case may ask for (its "workMs"), README
 * "Workers": an hour; longer is surely a mistake. */
#define JOBS_WORK_MS_MAX 3600000u

/* What a worker reads of one case object. */
struct jobs_case {
	int source;      /* jobs_sources index, -1 for a job case */
	int64_t work_ms; /* its "workMs", -1 when absent */
	char dashboard_type[JOBS_ID_MAX + 1], time_range[JOBS_ID_MAX + 1]; /* "" when absent */
};

/* Validates one case object as a worker will read it: workMs, when present,
 * a whole number from 0 to JOBS_WORK_MS_MAX; source, when present, one of
 * the six sources; dashboard_type and time_range, when present, strings of
 * 1..JOBS_ID_MAX bytes. The dispatcher refuses a job with a case this
 * refuses and the worker reads its cases with it, so a job the dispatcher
 * accepts can finish. Returns 0, or MQP_ERR_INPUT with a reason naming the
 * field. */
int jobs_parse_case(const cJSON *c, struct jobs_case *out, struct mqp_reason *why);

/* Copies the optional string member name (1..JOBS_ID_MAX bytes) into
 * out[JOBS_ID_MAX + 1]; out is "" when it is absent. Returns 0 or
 * MQP_ERR_INPUT. */
int jobs_optional_id(const cJSON *root, const char *name, char *out, struct mqp_reason *why);

/* What the counter knows of a job. */
struct jobs_state {
	bool accepted;      /* job.accepted seen: target is known */
	uint64_t target;
	uint64_t completed; /* distinct cases done */
	bool triggered;     /* aggregate.trigger already decided */
};

/* Whether this state calls for the job's one aggregate.trigger now. */
bool jobs_should_trigger(const struct jobs_state *s);

/* {"requestId","target","completed"}; a new object or NULL when out of memory. */
cJSON *jobs_trigger_event(const char *request_id, uint64_t target, uint64_t completed);

#endif
