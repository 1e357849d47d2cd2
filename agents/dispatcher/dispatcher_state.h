/* The dispatcher's SQLite state: accepted jobs with their rendered cases and
 * the fan-out cursor (README "Fan-out"), one function per query. */
#ifndef MQPIPE_DISPATCHER_STATE_H
#define MQPIPE_DISPATCHER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "dispatcher_logic.h"
#include "mqpipe/store.h"

/* The dispatcher's tables, for struct mqp_agent. */
extern const struct mqp_migration dispatcher_state_migrations[];
extern const size_t dispatcher_state_n_migrations;

struct dispatcher_state;

/* Prepares the queries on store (which must outlive the state). Returns 0
 * with *out (free with dispatcher_state_close), or MQP_ERR_NOMEM/MQP_ERR_DB
 * with *out NULL. */
int dispatcher_state_open(struct mqp_store *store, struct dispatcher_state **out);

/* Finalizes the queries and frees s; NULL is a no-op. */
void dispatcher_state_close(struct dispatcher_state *s);

/* Reads the content digest of the job accepted as request_id. Returns 1
 * with *digest, 0 when no such job was accepted, or MQP_ERR_DB. */
int dispatcher_state_digest(struct dispatcher_state *s, const char *request_id, uint64_t *digest);

/* Stores an accepted job (at accepted_ms) with each case's rendered
 * compute.request. Returns 0 or MQP_ERR_DB. */
int dispatcher_state_add_job(struct dispatcher_state *s, const struct dispatch_job *job,
			     int64_t accepted_ms);

/* Reads the oldest job with cases not yet sent: its request_id (into
 * request_id[JOBS_ID_MAX + 1]), how many are sent and how many it has.
 * Returns 1, 0 when every job is sent, or MQP_ERR_DB. */
int dispatcher_state_next_unsent(struct dispatcher_state *s, char *request_id, int64_t *sent,
				 int64_t *cases);

/* Calls fn(arg, request, len) with the rendered compute.requests of the job's
 * cases from index from on, at most limit of them, in order, stopping at the
 * first that fails. *n counts those passed to fn. Returns 0, what fn
 * returned, or MQP_ERR_DB. */
int dispatcher_state_each_case(struct dispatcher_state *s, const char *request_id, int64_t from,
			       int64_t limit, int (*fn)(void *arg, const char *request, size_t len),
			       void *arg, int64_t *n);

/* Moves the job's cursor: sent cases are in the outbox. When sent reaches
 * the job's cases, now_ms is its done time, from which --retain-jobs counts.
 * Returns 0 or MQP_ERR_DB. */
int dispatcher_state_mark_sent(struct dispatcher_state *s, const char *request_id, int64_t sent,
			       int64_t now_ms);

/* Forgets the job's rendered cases once all are sent (the outbox is their
 * durable copy then). Returns 0 or MQP_ERR_DB. */
int dispatcher_state_drop_cases(struct dispatcher_state *s, const char *request_id);

/* Forgets at most batch jobs sent completely before before_ms, oldest first
 * (their cases are gone already). Returns how many it forgot, or MQP_ERR_DB. */
int dispatcher_state_purge(struct dispatcher_state *s, int64_t before_ms, int batch);

/* ---- sent cases (README "Case deadlines") ------------------------------- */

/* Remembers a case just put in the outbox (its first attempt), with its
 * rendered request (len bytes) for a resend, until its compute.done.
 * Returns 0 or MQP_ERR_DB. */
int dispatcher_state_add_sent(struct dispatcher_state *s, const struct dispatch_sent *c,
			      int64_t span_ms, int64_t deadline_ms, const char *request, size_t len);

/* Forgets the case (request_id, case_id is the caseId's JSON text) at its
 * first compute.done. Returns 1 when it was waiting for it, 0 when not
 * (done before, or never sent by this dispatcher), or MQP_ERR_DB. */
int dispatcher_state_case_done(struct dispatcher_state *s, const char *request_id,
			       const char *case_id);

/* A sent case whose deadline passed. */
struct dispatcher_due {
	struct dispatch_sent c; /* estimate_ms unused */
	int64_t attempt;        /* times sent */
	int64_t span_ms;
	char *request;          /* its compute.request, len bytes, NUL-terminated */
	size_t len;
};

/* Reads at most limit cases whose deadline is at or before now_ms, earliest
 * first. Returns 0 with *out (*n of them; free with
 * dispatcher_state_free_due), MQP_ERR_NOMEM or MQP_ERR_DB with *out NULL. */
int dispatcher_state_due(struct dispatcher_state *s, int64_t now_ms, int limit,
			 struct dispatcher_due **out, size_t *n);

/* Frees what dispatcher_state_due returned; NULL is a no-op. */
void dispatcher_state_free_due(struct dispatcher_due *due, size_t n);

/* Counts one more attempt of the case, due again at deadline_ms. Returns 0
 * or MQP_ERR_DB. */
int dispatcher_state_retry(struct dispatcher_state *s, const char *request_id, const char *case_id,
			   int64_t deadline_ms);

/* Reads the earliest deadline of any sent case. Returns 1 with
 * *deadline_ms, 0 when no case waits, or MQP_ERR_DB. */
int dispatcher_state_next_deadline(struct dispatcher_state *s, int64_t *deadline_ms);

#endif
