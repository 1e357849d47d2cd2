/* The aggregator's rules (README "Aggregator")
 * as pure functions: read its inputs, decide when a request's result goes
 * out in each fan-in mode and how many inputs were merged early, and render
 * job.summary and dashboard.ready. No SQLite, no MQTT, no clock: times are
 * passed in (Unix ms). */
#ifndef MQPIPE_AGGREGATOR_LOGIC_H
#define MQPIPE_AGGREGATOR_LOGIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobs_logic.h"
#include "mqpipe/json.h"

/* classic: start-up begins when aggregate.trigger arrives, then all inputs
 *          are merged;
 * eager:   start-up begins at the first input, then the store is polled every
 *          poll_ms until all inputs are there;
 * future:  start-up begins at the first input, each input is merged the
 *          moment it is available, the result goes out as the last lands. */
enum fanin_mode { FANIN_CLASSIC, FANIN_EAGER, FANIN_FUTURE };

/* Parses "classic", "eager" or "future". Returns 0 or MQP_ERR_INVAL. */
int fanin_mode_parse(const char *text, enum fanin_mode *out);
const char *fanin_mode_name(enum fanin_mode mode);

struct fanin_timing {
	enum fanin_mode mode;
	int64_t setup_ms; /* the per-request start-up cost */
	int64_t poll_ms;  /* eager: the store's polling period */
};

/* What the aggregator knows of one request. Times are Unix ms, 0 = not yet. */
struct fanin_job {
	bool accepted;      /* job.accepted seen: target is known */
	uint64_t target;
	int64_t accepted_ms; /* the request's acceptance: e2e starts here */
	uint64_t inputs;    /* distinct inputs checkpointed */
	int64_t first_ms, last_ms; /* arrival of the first and the latest input */
	int64_t trigger_ms; /* aggregate.trigger arrived */
};

/* Whether every input is there. */
bool fanin_complete(const struct fanin_job *j);

/* When the result goes out: a Unix ms, or -1 while it cannot be known yet
 * (inputs missing, classic without its trigger). A request of zero cases
 * goes out at its acceptance. In classic the trigger's start-up must also
 * find every input checkpointed (the counter may be ahead of this agent). */
int64_t fanin_due(const struct fanin_timing *t, const struct fanin_job *j);

/* How many inputs were merged before the last one arrived: in future mode,
 * all but the last when the start-up was over by then; classic and eager
 * merge everything at once, so 0. */
uint64_t fanin_pre_resolved(const struct fanin_timing *t, const struct fanin_job *j);

/* compute.done as the aggregator checkpoints it. */
struct fanin_input {
	struct jobs_done ids;
	int64_t index;          /* place in the submission, -1 when absent */
	uint64_t processing_ms;
	char *result;           /* the result's JSON text, malloc'd */
	char worker[JOBS_ID_MAX + 1]; /* "" when absent */
};

/* Validates compute.done: requestId and caseId (jobs_parse_done_root),
 * processingMs a whole number, result present (any JSON), index and worker
 * optional. Returns 0 (free with fanin_input_free), MQP_ERR_INPUT with a
 * reason, or MQP_ERR_NOMEM. */
int fanin_parse_input(const void *payload, size_t len, struct fanin_input *out,
		      struct mqp_reason *why);
void fanin_input_free(struct fanin_input *in);

/* Validates aggregate.trigger {"requestId","target","completed"} and copies
 * its requestId into request_id[JOBS_ID_MAX + 1]. */
int fanin_parse_trigger(const void *payload, size_t len, char *request_id,
			struct mqp_reason *why);

/* A growing text buffer for the summary, which may hold 100 000 results:
 * rendered from the checkpointed JSON fragments as they are read, rather
 * than re-parsed into a cJSON tree of the whole. */
struct fanin_text {
	char *s;
	size_t len, cap;
	int failed; /* out of memory at some point: the text is unusable */
};

/* Appends n bytes (or a whole string with fanin_text_puts). */
void fanin_text_put(struct fanin_text *t, const char *s, size_t n);
void fanin_text_puts(struct fanin_text *t, const char *s);
void fanin_text_free(struct fanin_text *t);

/* job.summary: {"requestId","cases","results":[…],"mode","preResolved","e2eMs"}.
 * begin writes up to "results":[ ; add one result (case_id and result are
 * JSON texts); end closes it. */
void fanin_summary_begin(struct fanin_text *t, const char *request_id, uint64_t cases);
void fanin_summary_add(struct fanin_text *t, const char *case_id, uint64_t processing_ms,
		       const char *result);
void fanin_summary_end(struct fanin_text *t, enum fanin_mode mode, uint64_t pre_resolved,
		       int64_t e2e_ms);

/* dashboard.ready {"request_id","dashboard_type","time_range","sources":{…},
 * "mode","pre_resolved","total_inputs","e2e_ms"}: sources maps each input's
 * caseId (a source name) to its result. case_ids and results are JSON texts.
 * Returns a new string, or NULL when out of memory or a text is not JSON. */
char *fanin_dashboard(const char *request_id, const char *dashboard_type, const char *time_range,
		      const char *const *case_ids, const char *const *results, size_t n,
		      enum fanin_mode mode, uint64_t pre_resolved, int64_t e2e_ms);

#endif
