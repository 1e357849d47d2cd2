/* The ingest agent's SQLite state: see ingest_state.h. */
#include <stdlib.h>
#include <string.h>

#include "ingest_state.h"
#include "mqpipe/error.h"

const struct mqp_migration ingest_state_migrations[] = {
	{"CREATE TABLE user(id INTEGER PRIMARY KEY AUTOINCREMENT, user_name TEXT NOT NULL,"
	 " email TEXT NOT NULL, pincode TEXT NOT NULL, created_ms INTEGER NOT NULL);"
	 "CREATE TABLE request(key BLOB PRIMARY KEY, reply TEXT NOT NULL,"
	 " created_ms INTEGER NOT NULL) WITHOUT ROWID;"},
	/* --retain-requests forgets old answers by age. */
	{"CREATE INDEX request_created ON request(created_ms);"},
};
const size_t ingest_state_n_migrations =
	sizeof(ingest_state_migrations) / sizeof(ingest_state_migrations[0]);

enum ingest_state__stmt {
	IS_REQUEST_GET,
	IS_REQUEST_ADD,
	IS_USER_ADD,
	IS_LIST,
	IS_REQUEST_PURGE,
	IS__COUNT
};

static const char *const ingest_state__sql[IS__COUNT] = {
	[IS_REQUEST_GET] = "SELECT reply FROM request WHERE key = ?1",
	[IS_REQUEST_ADD] = "INSERT INTO request(key, reply, created_ms) VALUES (?1, ?2, ?3)",
	[IS_USER_ADD] = "INSERT INTO user(user_name, email, pincode, created_ms) VALUES (?1, ?2, ?3, ?4)",
	[IS_LIST] = ("SELECT id, user_name, email, pincode, created_ms FROM user WHERE id > ?1"
		     " ORDER BY id LIMIT ?2"),
	[IS_REQUEST_PURGE] = ("DELETE FROM request WHERE key IN (SELECT key FROM request"
			      " WHERE created_ms < ?1 LIMIT ?2)"),
};

struct ingest_state {
	struct mqp_queries q; /* first: the block mqp_queries_new allocates */
};

int ingest_state_open(struct mqp_store *store, struct ingest_state **out)
{
	int rc;
	*out = mqp_queries_new(store, ingest_state__sql, IS__COUNT, sizeof(**out), &rc);
	return rc;
}

void ingest_state_close(struct ingest_state *s)
{
	mqp_queries_free(s ? &s->q : NULL);
}

int ingest_state_remembered(struct ingest_state *s, const unsigned char *key, size_t klen,
			    char **reply)
{
	*reply = NULL;
	sqlite3_stmt *st = s->q.stmt[IS_REQUEST_GET];
	sqlite3_bind_blob(st, 1, key, (int)klen, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW && !(*reply = strdup((const char *)sqlite3_column_text(st, 0)))) {
		sqlite3_reset(st);
		return MQP_ERR_NOMEM;
	}
	sqlite3_reset(st);
	return step == SQLITE_ROW || step == SQLITE_DONE
		       ? MQP_OK
		       : mqp_queries_fail(&s->q, IS_REQUEST_GET);
}

int ingest_state_remember(struct ingest_state *s, const unsigned char *key, size_t klen,
			  const char *reply, int64_t created_ms)
{
	sqlite3_stmt *st = s->q.stmt[IS_REQUEST_ADD];
	sqlite3_bind_blob(st, 1, key, (int)klen, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, reply, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, created_ms);
	int rc = mqp_store_exec(s->q.store, st);
	return rc < 0 ? rc : MQP_OK;
}

int ingest_state_add_user(struct ingest_state *s, const struct ingest_user *u, int64_t created_ms,
			  int64_t *id)
{
	sqlite3_stmt *st = s->q.stmt[IS_USER_ADD];
	sqlite3_bind_text(st, 1, u->user_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->email, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, u->pincode, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, created_ms);
	int rc = mqp_store_exec(s->q.store, st);
	if (rc < 0)
		return rc;
	*id = sqlite3_last_insert_rowid(mqp_store_db(s->q.store));
	return MQP_OK;
}

int ingest_state_each_user(struct ingest_state *s, int64_t after, int64_t limit,
			   int (*fn)(void *arg, int64_t id, const char *user_name,
				     const char *email, const char *pincode, int64_t created_ms),
			   void *arg, int *more)
{
	sqlite3_stmt *st = s->q.stmt[IS_LIST];
	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int64(st, 2, limit + 1); /* one more tells whether there is a next page */
	int step, rc = MQP_OK;
	int64_t n = 0;
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
		rc = fn(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
			(const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3),
			sqlite3_column_int64(st, 4));
		n++;
	}
	*more = !rc && step == SQLITE_ROW;
	sqlite3_reset(st);
	if (rc)
		return rc;
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return mqp_queries_fail(&s->q, IS_LIST);
	return MQP_OK;
}

int ingest_state_purge(struct ingest_state *s, int64_t before_ms, int batch)
{
	sqlite3_stmt *st = s->q.stmt[IS_REQUEST_PURGE];
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, batch);
	return mqp_store_exec(s->q.store, st);
}
