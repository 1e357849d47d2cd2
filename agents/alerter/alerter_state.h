/* The alerter's SQLite state: each series' running window and its recent
 * points (README "Alerts"), one function per query. A series is named by its
 * rule (r->name) and its key (p->series). */
#ifndef MQPIPE_ALERTER_STATE_H
#define MQPIPE_ALERTER_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "alerter_logic.h"
#include "mqpipe/store.h"

/* The alerter's tables, for struct mqp_agent. */
extern const struct mqp_migration alerter_state_migrations[];
extern const size_t alerter_state_n_migrations;

/* A series' state, as in the series table. */
struct alerter_series {
	bool exists;
	int64_t newest, horizon; /* the sum holds the points with ts >= horizon */
	struct win_sum sum;      /* every point from horizon on */
	struct win_sum same;     /* the points at newest */
	bool alerted;
	int64_t last_alert;
};

struct alerter_state;

/* Prepares the queries on store (which must outlive the state). Returns 0
 * with *out (free with alerter_state_close), or MQP_ERR_NOMEM/MQP_ERR_DB
 * with *out NULL. */
int alerter_state_open(struct mqp_store *store, struct alerter_state **out);

/* Finalizes the queries and frees s; NULL is a no-op. */
void alerter_state_close(struct alerter_state *s);

/* Reads the series of point p under rule r into *out (exists false for a
 * new one). Returns 0 or MQP_ERR_DB. */
int alerter_state_get(struct alerter_state *s, const struct alert_rule *r,
		      const struct alert_point *p, struct alerter_series *out);

/* Stores the series of point p under rule r. Returns 0 or MQP_ERR_DB. */
int alerter_state_put(struct alerter_state *s, const struct alert_rule *r,
		      const struct alert_point *p, const struct alerter_series *series);

/* Whether point p of rule r is stored already. Returns 1, 0, or MQP_ERR_DB. */
int alerter_state_seen(struct alerter_state *s, const struct alert_rule *r,
		       const struct alert_point *p);

/* Stores point p of rule r, arrived at arrived_ms. Returns 1, 0 when it is
 * stored already (a repeat), or MQP_ERR_DB. */
int alerter_state_add_point(struct alerter_state *s, const struct alert_rule *r,
			    const struct alert_point *p, int64_t arrived_ms);

/* Calls win_add (or, with remove, win_remove) on w for each stored point of
 * p's series with a timestamp in [from, to). Returns 0 or MQP_ERR_DB. */
int alerter_state_range(struct alerter_state *s, const struct alert_rule *r,
			const struct alert_point *p, int64_t from, int64_t to, bool remove,
			struct win_sum *w);

/* Forgets the points of p's series with timestamps before before_ts that
 * arrived before arrived_before_ms. Returns 0 or MQP_ERR_DB. */
int alerter_state_purge(struct alerter_state *s, const struct alert_rule *r,
			const struct alert_point *p, int64_t before_ts, int64_t arrived_before_ms);

#endif
