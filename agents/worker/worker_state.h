/* The worker's SQLite state: its queue of cases, each waiting for a slot or
 * running until its due time (README "Workers"), one function per query. */
#ifndef MQPIPE_WORKER_STATE_H
#define MQPIPE_WORKER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "mqpipe/store.h"
#include "worker_logic.h"

/* The worker's tables, for struct mqp_agent. */
extern const struct mqp_migration worker_state_migrations[];
extern const size_t worker_state_n_migrations;

struct worker_state;

/* Prepares the queries on store (which must outlive the state). Returns 0
 * with *out (free with worker_state_close), or MQP_ERR_NOMEM/MQP_ERR_DB with
 * *out NULL. */
int worker_state_open(struct mqp_store *store, struct worker_state **out);

/* Finalizes the queries and frees s; NULL is a no-op. */
void worker_state_close(struct worker_state *s);

/* Counts the cases running and those waiting. Returns 0 or MQP_ERR_DB. */
int worker_state_counts(struct worker_state *s, int64_t *running, int64_t *queued);

/* Queues case c, its request payload request[0..len) and its work_ms.
 * Returns 1, 0 when the case is queued or running already (a redelivery),
 * or MQP_ERR_DB. */
int worker_state_add(struct worker_state *s, const struct work_case *c, const void *request,
		     size_t len, unsigned work_ms);

/* Reads the sequence numbers of up to limit waiting cases, oldest first, into
 * seqs[limit]; *n says how many. Returns 0 or MQP_ERR_DB. */
int worker_state_queued(struct worker_state *s, int64_t limit, int64_t *seqs, int *n);

/* Starts case seq at now_ms: it is due work_ms later. Returns 0 or MQP_ERR_DB. */
int worker_state_start(struct worker_state *s, int64_t seq, int64_t now_ms);

/* A running case that is due, read out before it is deleted. */
struct worker_state_due {
	int64_t seq, started_ms;
	char *request; /* its payload, owned (worker_state_due_free) */
	size_t len;
};

/* Reads up to limit running cases due at now_ms, soonest first, into
 * due[limit]; *n says how many (free them with worker_state_due_free, on
 * error too). Returns 0, MQP_ERR_NOMEM or MQP_ERR_DB. */
int worker_state_due(struct worker_state *s, int64_t now_ms, int limit,
		     struct worker_state_due *due, int *n);

/* Frees the payloads of due[0..n). */
void worker_state_due_free(struct worker_state_due *due, int n);

/* Deletes finished case seq. Returns 0 or MQP_ERR_DB. */
int worker_state_done(struct worker_state *s, int64_t seq);

/* Reads the soonest due time of a running case into *due_ms, 0 when none
 * runs. Returns 0 or MQP_ERR_DB. */
int worker_state_next_due(struct worker_state *s, int64_t *due_ms);

#endif
