/* The counter's SQLite state: its schema and one function per query, so the
 * handlers in counter_agent.c read as the rules (README "The success rate",
 * "Fan-in"). Each function steps its prepared statement and resets it. */
#ifndef MQPIPE_COUNTER_STATE_H
#define MQPIPE_COUNTER_STATE_H

#include <stdint.h>

#include "counter_logic.h"
#include "jobs_logic.h"
#include "mqpipe/store.h"

/* The counter's tables, for struct mqp_agent. */
extern const struct mqp_migration counter_state_migrations[];
extern const size_t counter_state_n_migrations;

struct counter_state;

/* Prepares the queries on store (which must outlive the state). Returns 0
 * with *out (free with counter_state_close), or MQP_ERR_NOMEM/MQP_ERR_DB with
 * *out NULL. */
int counter_state_open(struct mqp_store *store, struct counter_state **out);

/* Finalizes the queries and frees s; NULL is a no-op. */
void counter_state_close(struct counter_state *s);

/* Stores a recv_message. Returns 1, 0 when it was stored already, or MQP_ERR_DB. */
int counter_state_add_recv(struct counter_state *s, const struct sr_recv *r);

/* Counts the module's messages in the diagnostic's window (see
 * sr_window_step): those folded into earlier diagnostics' counts plus those
 * still stored one by one. Returns the count, or MQP_ERR_DB. */
int64_t counter_state_received(struct counter_state *s, const struct sr_diag *d);

/* Reads into *out the module's first diagnostic at or after timestamp, the
 * one whose interval an event at timestamp falls in. Returns 0 or MQP_ERR_DB. */
int counter_state_cover(struct counter_state *s, const char *module, uint64_t timestamp,
			struct sr_cover *out);

/* Stores a diagnostic that arrived at applied_ms with the count it was
 * published with; its interval is open. Returns 1, 0 when it was stored
 * already (a repeat), or MQP_ERR_DB. */
int counter_state_add_diag(struct counter_state *s, const struct sr_diag *d, int64_t received,
			   int64_t applied_ms);

/* Seals up to batch open diagnostics applied at or before applied_before_ms,
 * oldest first: from now on their intervals take no message, and their
 * stored messages wait for counter_state_fold. Returns how many were sealed,
 * or MQP_ERR_DB. */
int counter_state_seal(struct counter_state *s, int64_t applied_before_ms, int batch);

/* Moves about budget stored messages of sealed intervals into their
 * diagnostics' counts (README "Sealed windows"); a window's count is the same
 * before, during and after. Returns 1 when some remain pending, 0 when none
 * do, or MQP_ERR_DB. */
int counter_state_fold(struct counter_state *s, int budget);

/* Makes sure the job has a row (first seen at now_ms) and reads what the
 * counter knows of it into *out. Returns 0 or MQP_ERR_DB. */
int counter_state_job(struct counter_state *s, const char *request_id, int64_t now_ms,
		      struct jobs_state *out);

/* Records job.accepted on a job not accepted yet. Returns 0 or MQP_ERR_DB. */
int counter_state_accept(struct counter_state *s, const struct jobs_accepted *a);

/* Records that case_id of the job is done and counts it. Returns 1, 0 when
 * the case was counted already, or MQP_ERR_DB. */
int counter_state_add_case(struct counter_state *s, const char *request_id, const char *case_id);

/* Marks the job's aggregate.trigger as sent at now_ms. Returns 0 or MQP_ERR_DB. */
int counter_state_mark_triggered(struct counter_state *s, const char *request_id, int64_t now_ms);

/* Forgets up to batch jobs (with their cases) triggered before before_ms,
 * oldest first. Returns 0 or MQP_ERR_DB. */
int counter_state_purge(struct counter_state *s, int64_t before_ms, int batch);

#endif
