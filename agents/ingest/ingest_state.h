/* The ingest agent's SQLite state: the records and the remembered answers
 * (README "Ingestion"), one function per query. */
#ifndef MQPIPE_INGEST_STATE_H
#define MQPIPE_INGEST_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "ingest_logic.h"
#include "mqpipe/store.h"

/* The ingest agent's tables, for struct mqp_agent. */
extern const struct mqp_migration ingest_state_migrations[];
extern const size_t ingest_state_n_migrations;

struct ingest_state;

/* Prepares the queries on store (which must outlive the state). Returns 0
 * with *out (free with ingest_state_close), or MQP_ERR_NOMEM/MQP_ERR_DB with
 * *out NULL. */
int ingest_state_open(struct mqp_store *store, struct ingest_state **out);

/* Finalizes the queries and frees s; NULL is a no-op. */
void ingest_state_close(struct ingest_state *s);

/* Looks the request key up: *reply is its first answer (free()) or NULL.
 * Returns 0, MQP_ERR_NOMEM or MQP_ERR_DB. */
int ingest_state_remembered(struct ingest_state *s, const unsigned char *key, size_t klen,
			    char **reply);

/* Remembers the answer to the request key, made at created_ms. Returns 0 or
 * MQP_ERR_DB. */
int ingest_state_remember(struct ingest_state *s, const unsigned char *key, size_t klen,
			  const char *reply, int64_t created_ms);

/* Stores a valid record made at created_ms; *id receives its id. Returns 0
 * or MQP_ERR_DB. */
int ingest_state_add_user(struct ingest_state *s, const struct ingest_user *u, int64_t created_ms,
			  int64_t *id);

/* Calls fn(arg, id, user_name, email, pincode, created_ms) for up to limit
 * records with ids above after, in id order, stopping at the first that
 * fails; *more says whether records follow the last one passed. Returns 0,
 * what fn returned, or MQP_ERR_DB. */
int ingest_state_each_user(struct ingest_state *s, int64_t after, int64_t limit,
			   int (*fn)(void *arg, int64_t id, const char *user_name,
				     const char *email, const char *pincode, int64_t created_ms),
			   void *arg, int *more);

/* Forgets up to batch answers made before before_ms. Returns how many, or
 * MQP_ERR_DB. */
int ingest_state_purge(struct ingest_state *s, int64_t before_ms, int batch);

#endif
