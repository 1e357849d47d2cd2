/* The aggregator's SQLite state: each request's checkpointed inputs and its
 * row (what is known of it and when its result is due, README "Fan-in"),
 * one function per query. */
#ifndef MQPIPE_AGGREGATOR_STATE_H
#define MQPIPE_AGGREGATOR_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "aggregator_logic.h"
#include "mqpipe/store.h"

/* The aggregator's tables, for struct mqp_agent. */
extern const struct mqp_migration aggregator_state_migrations[];
extern const size_t aggregator_state_n_migrations;

/* One request's row of agg_job. */
struct aggregator_job {
	char request_id[JOBS_ID_MAX + 1];
	char kind[JOBS_ID_MAX + 1];           /* "" until job.accepted */
	char dashboard_type[JOBS_ID_MAX + 1], time_range[JOBS_ID_MAX + 1];
	struct fanin_job state;
	bool done;
};

struct aggregator_state;

/* Prepares the queries on store (which must outlive the state). Returns 0
 * with *out (free with aggregator_state_close), or MQP_ERR_NOMEM/MQP_ERR_DB
 * with *out NULL. */
int aggregator_state_open(struct mqp_store *store, struct aggregator_state **out);

/* Finalizes the queries and frees s; NULL is a no-op. */
void aggregator_state_close(struct aggregator_state *s);

/* Loads the request's row into *j, or a fresh one (all zero but its
 * request_id). Returns 0 or MQP_ERR_DB. */
int aggregator_state_get(struct aggregator_state *s, const char *request_id,
			 struct aggregator_job *j);

/* Stores *j (not done) due at due_ms (-1: not known yet). Returns 0 or MQP_ERR_DB. */
int aggregator_state_put(struct aggregator_state *s, const struct aggregator_job *j,
			 int64_t due_ms);

/* Checkpoints an input that arrived at arrived_ms. Returns 1, 0 when it was
 * checkpointed already (a duplicate), or MQP_ERR_DB. */
int aggregator_state_add_input(struct aggregator_state *s, const struct fanin_input *in,
			       int64_t arrived_ms);

/* Calls fn(arg, case_id, processing_ms, result) for the request's inputs in
 * submission order (those without an index by arrival), stopping at the first
 * that fails. Returns 0, what fn returned, or MQP_ERR_DB. */
int aggregator_state_each_input(struct aggregator_state *s, const char *request_id,
				int (*fn)(void *arg, const char *case_id, uint64_t processing_ms,
					  const char *result),
				void *arg);

/* Marks the request done at now_ms and drops its inputs. Returns 0 or MQP_ERR_DB. */
int aggregator_state_mark_done(struct aggregator_state *s, const char *request_id,
			       int64_t now_ms);

/* Forgets up to batch requests done before before_ms. Returns how many, or
 * MQP_ERR_DB. */
int aggregator_state_purge(struct aggregator_state *s, int64_t before_ms, int batch);

/* Reads up to batch requests never accepted whose first input or trigger
 * came before before_ms: ids[batch] and the inputs each holds; *n says how
 * many. Returns 0 or MQP_ERR_DB. */
int aggregator_state_orphans(struct aggregator_state *s, int64_t before_ms, int batch,
			     char (*ids)[JOBS_ID_MAX + 1], int64_t *inputs, int *n);

/* Forgets a request and its inputs. Returns 0 or MQP_ERR_DB. */
int aggregator_state_forget(struct aggregator_state *s, const char *request_id);

/* Reads the request whose result is due first, if one is due at now_ms, into
 * request_id[JOBS_ID_MAX + 1]. Returns 1, 0 when none is due, or MQP_ERR_DB. */
int aggregator_state_first_due(struct aggregator_state *s, int64_t now_ms, char *request_id);

/* Reads the soonest due time of a result into *due_ms, 0 when none is
 * known. Returns 0 or MQP_ERR_DB. */
int aggregator_state_next_due(struct aggregator_state *s, int64_t *due_ms);

#endif
