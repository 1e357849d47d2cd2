/* The alerter's SQLite state: see alerter_state.h. */
#include <stdlib.h>
#include <string.h>

#include "alerter_state.h"
#include "mqpipe/error.h"

const struct mqp_migration alerter_state_migrations[] = {
	{"CREATE TABLE series(rule TEXT NOT NULL, series TEXT NOT NULL, newest INTEGER NOT NULL,"
	 " horizon INTEGER NOT NULL, sum REAL NOT NULL, comp REAL NOT NULL, count INTEGER NOT NULL,"
	 " same_sum REAL NOT NULL, same_comp REAL NOT NULL, same_count INTEGER NOT NULL,"
	 " last_alert INTEGER, PRIMARY KEY(rule, series)) WITHOUT ROWID;"
	 "CREATE TABLE point(rule TEXT NOT NULL, series TEXT NOT NULL, ts INTEGER NOT NULL,"
	 " value REAL NOT NULL, PRIMARY KEY(rule, series, ts, value)) WITHOUT ROWID;"},
	/* When each point arrived: a repeat is recognised for ALERTER__REPEAT_MS
	 * (alerter_agent.c) after it, however old its timestamp (points from
	 * before: 0). */
	{"ALTER TABLE point ADD COLUMN arrived_ms INTEGER NOT NULL DEFAULT 0;"},
};
const size_t alerter_state_n_migrations =
	sizeof(alerter_state_migrations) / sizeof(alerter_state_migrations[0]);

enum alerter_state__stmt {
	AS_GET,
	AS_PUT,
	AS_POINT_ADD,
	AS_POINT_SEEN,
	AS_RANGE,
	AS_PURGE,
	AS__COUNT
};

static const char *const alerter_state__sql[AS__COUNT] = {
	[AS_GET] = "SELECT newest, horizon, sum, comp, count, same_sum, same_comp, same_count,"
		   " last_alert FROM series WHERE rule = ?1 AND series = ?2",
	[AS_PUT] = "INSERT OR REPLACE INTO series(rule, series, newest, horizon, sum, comp, count,"
		   " same_sum, same_comp, same_count, last_alert)"
		   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[AS_POINT_ADD] = "INSERT OR IGNORE INTO point(rule, series, ts, value, arrived_ms)"
			 " VALUES (?1, ?2, ?3, ?4, ?5)",
	[AS_POINT_SEEN] = "SELECT 1 FROM point WHERE rule = ?1 AND series = ?2 AND ts = ?3 AND value = ?4",
	[AS_RANGE] = "SELECT value FROM point WHERE rule = ?1 AND series = ?2 AND ts >= ?3 AND ts < ?4",
	[AS_PURGE] = "DELETE FROM point WHERE rule = ?1 AND series = ?2 AND ts < ?3 AND arrived_ms < ?4",
};

struct alerter_state {
	struct mqp_queries q; /* first: the block mqp_queries_new allocates */
};

int alerter_state_open(struct mqp_store *store, struct alerter_state **out)
{
	int rc;
	*out = mqp_queries_new(store, alerter_state__sql, AS__COUNT, sizeof(**out), &rc);
	return rc;
}

void alerter_state_close(struct alerter_state *s)
{
	mqp_queries_free(s ? &s->q : NULL);
}

/* Binds the series' key (?1 rule, ?2 series) and returns the statement. */
static sqlite3_stmt *alerter_state__key(struct alerter_state *s, enum alerter_state__stmt which,
					const struct alert_rule *r, const struct alert_point *p)
{
	sqlite3_stmt *st = s->q.stmt[which];
	sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, p->series, -1, SQLITE_STATIC);
	return st;
}

int alerter_state_get(struct alerter_state *s, const struct alert_rule *r,
		      const struct alert_point *p, struct alerter_series *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = alerter_state__key(s, AS_GET, r, p);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		out->exists = true;
		out->newest = sqlite3_column_int64(st, 0);
		out->horizon = sqlite3_column_int64(st, 1);
		out->sum = (struct win_sum){sqlite3_column_double(st, 2), sqlite3_column_double(st, 3),
					    sqlite3_column_int64(st, 4)};
		out->same = (struct win_sum){sqlite3_column_double(st, 5), sqlite3_column_double(st, 6),
					     sqlite3_column_int64(st, 7)};
		out->alerted = sqlite3_column_type(st, 8) != SQLITE_NULL;
		out->last_alert = sqlite3_column_int64(st, 8);
	}
	sqlite3_reset(st);
	return step == SQLITE_ROW || step == SQLITE_DONE
		       ? MQP_OK
		       : mqp_queries_fail(&s->q, AS_GET);
}

int alerter_state_put(struct alerter_state *s, const struct alert_rule *r,
		      const struct alert_point *p, const struct alerter_series *series)
{
	sqlite3_stmt *st = alerter_state__key(s, AS_PUT, r, p);
	sqlite3_bind_int64(st, 3, series->newest);
	sqlite3_bind_int64(st, 4, series->horizon);
	sqlite3_bind_double(st, 5, series->sum.sum);
	sqlite3_bind_double(st, 6, series->sum.comp);
	sqlite3_bind_int64(st, 7, series->sum.count);
	sqlite3_bind_double(st, 8, series->same.sum);
	sqlite3_bind_double(st, 9, series->same.comp);
	sqlite3_bind_int64(st, 10, series->same.count);
	if (series->alerted)
		sqlite3_bind_int64(st, 11, series->last_alert);
	else
		sqlite3_bind_null(st, 11);
	int rc = mqp_store_exec(s->q.store, st);
	return rc < 0 ? rc : MQP_OK;
}

int alerter_state_seen(struct alerter_state *s, const struct alert_rule *r,
		       const struct alert_point *p)
{
	sqlite3_stmt *st = alerter_state__key(s, AS_POINT_SEEN, r, p);
	sqlite3_bind_int64(st, 3, p->ts);
	sqlite3_bind_double(st, 4, p->value);
	int step = sqlite3_step(st);
	sqlite3_reset(st);
	if (step == SQLITE_ROW || step == SQLITE_DONE)
		return step == SQLITE_ROW;
	return mqp_queries_fail(&s->q, AS_POINT_SEEN);
}

int alerter_state_add_point(struct alerter_state *s, const struct alert_rule *r,
			    const struct alert_point *p, int64_t arrived_ms)
{
	sqlite3_stmt *st = alerter_state__key(s, AS_POINT_ADD, r, p);
	sqlite3_bind_int64(st, 3, p->ts);
	sqlite3_bind_double(st, 4, p->value);
	sqlite3_bind_int64(st, 5, arrived_ms);
	return mqp_store_exec(s->q.store, st);
}

int alerter_state_range(struct alerter_state *s, const struct alert_rule *r,
			const struct alert_point *p, int64_t from, int64_t to, bool remove,
			struct win_sum *w)
{
	sqlite3_stmt *st = alerter_state__key(s, AS_RANGE, r, p);
	sqlite3_bind_int64(st, 3, from);
	sqlite3_bind_int64(st, 4, to);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (remove)
			win_remove(w, sqlite3_column_double(st, 0));
		else
			win_add(w, sqlite3_column_double(st, 0));
	}
	sqlite3_reset(st);
	return step == SQLITE_DONE ? MQP_OK : mqp_queries_fail(&s->q, AS_RANGE);
}

int alerter_state_purge(struct alerter_state *s, const struct alert_rule *r,
			const struct alert_point *p, int64_t before_ts, int64_t arrived_before_ms)
{
	sqlite3_stmt *st = alerter_state__key(s, AS_PURGE, r, p);
	sqlite3_bind_int64(st, 3, before_ts);
	sqlite3_bind_int64(st, 4, arrived_before_ms);
	int rc = mqp_store_exec(s->q.store, st);
	return rc < 0 ? rc : MQP_OK;
}
