/* The alerter agent: points in on its rules' topics (metrics/# by default),
 * alerts/<series> out. The rules are pure functions in alerter_logic.c, each
 * series' window in SQLite in alerter_state.c; this file wires them to the
 * points.
 *
 * A series' window is its points in [t - window_s, t) for the newest point t,
 * kept in SQLite with the running sum and count (series table), so a point in
 * order costs the few evictions it causes, not a scan. A point with the
 * newest timestamp again is judged against the points before that second; a
 * point out of order, but within a window of the newest, is judged by summing
 * its own window (points are kept for two windows for that, and ten minutes
 * after their arrival to know a repeat); one older still is refused as a
 * dead letter, since its window is gone. A repeated point
 * (same series, timestamp and value: a QoS 1 redelivery) changes nothing. */
#include <stdlib.h>
#include <string.h>

#include "alerter_agent.h"
#include "alerter_logic.h"
#include "alerter_state.h"

/* How long after its arrival a point is still recognised as a repeat, even
 * once it is two windows old: a broker restarted from its snapshot delivers
 * again what it had queued at its last autosave (5 s), at the reconnect;
 * ten minutes cover a broker that takes a while to come back. */
#define ALERTER__REPEAT_MS (10 * 60 * 1000)

struct alerter {
	struct alerter_state *db;
	struct alert_rule rules[ALERT_RULES_MAX];
	size_t n_rules;
	/* The rules' filters, once each: those under metrics/ are the alerter's
	 * inputs, sharded with --shards above 1; the others (outputs of other
	 * agents, like success_rate) are read as they are (README "Scaling out"). */
	const char *subscriptions[ALERT_RULES_MAX + 1];
	const char *plain_subscriptions[ALERT_RULES_MAX + 1];
};

static int alerter__init(void *state, struct mqp_store *store)
{
	struct alerter *a = state;
	for (size_t i = 0; i < a->n_rules; i++)
		mqp_info("rule", "name=%s topic=%s value=%s key=%s factor=%g window_s=%lld "
			 "min_samples=%lld direction=%s cooldown_s=%lld",
			 a->rules[i].name, a->rules[i].filter, a->rules[i].value_field,
			 a->rules[i].key_field[0] ? a->rules[i].key_field : "-", a->rules[i].factor,
			 (long long)a->rules[i].window_s, (long long)a->rules[i].min_samples,
			 a->rules[i].direction == ALERT_ABOVE ? "above" : "below",
			 (long long)a->rules[i].cooldown_s);
	return alerter_state_open(store, &a->db);
}

static void alerter__fini(void *state)
{
	struct alerter *a = state;
	alerter_state_close(a->db);
	free(a);
}

/* The difference of two sums (all minus a part of it). */
static struct win_sum alerter__minus(struct win_sum all, struct win_sum part)
{
	int64_t count = all.count - part.count;
	win_add(&all, -part.sum);
	all.comp -= part.comp;
	all.count = count;
	if (count <= 0)
		all = (struct win_sum){0, 0, 0};
	return all;
}

/* Judges one point of rule r, arrived at arrived_ms, and adds it to its
 * series. */
static int alerter__point(struct alerter *a, struct mqp_ctx *ctx, const struct alert_rule *r,
			  const struct alert_point *p, int64_t arrived_ms, struct mqp_reason *why)
{
	struct alerter_series s;
	int rc = alerter_state_get(a->db, r, p, &s);
	if (rc)
		return rc;
	int64_t w = r->window_s;
	if (s.exists && p->ts < s.newest - w) {
		/* A broker restarted from a snapshot older than what we handled
		 * delivers those points again, perhaps past the window by now. The
		 * table keeps two windows of points, and every point for
		 * ALERTER__REPEAT_MS after its arrival: such a repeat is found there
		 * and dropped like any repeat. Anything else is too late to judge. */
		int seen = alerter_state_seen(a->db, r, p);
		if (seen != 0)
			return seen < 0 ? seen : MQP_OK;
		return mqp_reason_set(why, "rule %s: timestamp %lld is more than window_s (%lld) before "
					   "the newest point of %s (%lld): its window is gone",
				      r->name, (long long)p->ts, (long long)w, p->series,
				      (long long)s.newest);
	}
	if ((rc = alerter_state_add_point(a->db, r, p, arrived_ms)) <= 0)
		return rc; /* an error, or the same point again: judged the first time */

	struct win_sum window = {0, 0, 0};
	bool advanced = false;
	if (!s.exists) {
		s = (struct alerter_series){.exists = true, .newest = p->ts, .horizon = p->ts - w};
	} else if (p->ts > s.newest) { /* in order: evict what falls out, the sum is the window */
		if ((rc = alerter_state_range(a->db, r, p, s.horizon, p->ts - w, true, &s.sum)))
			return rc;
		s.horizon = p->ts - w;
		window = s.sum;
		advanced = true;
	} else if (p->ts == s.newest) { /* the points before this second */
		window = alerter__minus(s.sum, s.same);
	} else if ((rc = alerter_state_range(a->db, r, p, p->ts - w, p->ts, false, &window))) {
		return rc; /* out of order: its own window, summed */
	}

	bool cooling = s.alerted && r->cooldown_s > 0 && p->ts >= s.last_alert &&
		       p->ts < s.last_alert + r->cooldown_s;
	if (!cooling && alert_decide(r, &window, p->value)) {
		cJSON *ev = alert_event(r, p, &window);
		char topic[ALERT_SERIES_MAX + 16];
		snprintf(topic, sizeof(topic), "alerts/%s", p->series);
		rc = ev ? mqp_emit(ctx, topic, ev) : MQP_ERR_NOMEM;
		cJSON_Delete(ev);
		if (rc)
			return rc;
		s.alerted = true;
		s.last_alert = p->ts;
		mqp_debug("alert", "rule=%s series=%s value=%g average=%g", r->name, p->series,
			  p->value, win_mean(&window));
	}

	win_add(&s.sum, p->value);
	if (advanced) {
		s.newest = p->ts;
		s.same = (struct win_sum){0, 0, 0};
	}
	if (p->ts == s.newest)
		win_add(&s.same, p->value);
	if (advanced) { /* points older than two windows judge nothing, once no repeat is due */
		rc = alerter_state_purge(a->db, r, p, s.newest - 2 * w, arrived_ms - ALERTER__REPEAT_MS);
		if (rc)
			return rc;
	}
	return alerter_state_put(a->db, r, p, &s);
}

#define ALERTER__INPUTS "metrics/" /* the alerter's own input topics */

/* The shard key of a point's topic (README "Scaling out"): the name after
 * metrics/, or the whole topic of a rule on another agent's output. */
static const char *alerter__shard_key(const char *topic)
{
	size_t n = sizeof(ALERTER__INPUTS) - 1;
	return strncmp(topic, ALERTER__INPUTS, n) == 0 ? topic + n : topic;
}

static int alerter__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			   struct mqp_reason *why)
{
	struct alerter *a = state;
	int matched = 0, rc = MQP_OK;
	const char *key = alerter__shard_key(msg->topic);
	if (key == msg->topic && !mqp_ctx_owns(ctx, key)) {
		/* Another output every instance reads: its owner judges it. */
		mqp_debug("point_of_other_shard", "topic=%s", msg->topic);
		return MQP_OK;
	}
	if ((rc = mqp_ctx_check_owner(ctx, "the metric", key, why)))
		return rc;
	for (size_t i = 0; !rc && i < a->n_rules; i++) {
		const struct alert_rule *r = &a->rules[i];
		if (!alert_topic_matches(r->filter, msg->topic))
			continue;
		matched++;
		struct alert_point p;
		struct mqp_reason inner = {""};
		rc = alert_point_parse(r, msg->topic, msg->payload, msg->len, msg->received_ms / 1000, &p,
				       &inner);
		if (rc == MQP_ERR_INPUT)
			return mqp_reason_set(why, "rule %s: %s", r->name, inner.text);
		if (!rc && !p.none)
			rc = alerter__point(a, ctx, r, &p, msg->received_ms, why);
	}
	if (!rc && !matched)
		return mqp_reason_set(why, "topic '%s' matches no rule", msg->topic);
	return rc;
}

/* --rules FILE: more rules, JSON Lines. */
static int alerter__rules_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	struct alerter *a = ctx;
	static char buf[256 * 1024];
	size_t n;
	if (mqp_read_option_file(arg, buf, sizeof(buf), &n, err, errlen))
		return -1;
	char why[400];
	if (alert_rules_load(buf, n, a->rules, &a->n_rules, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", arg, why);
		return -1;
	}
	size_t k = 0, m = 0;
	for (size_t i = 0; i < a->n_rules; i++) { /* each filter subscribed once */
		const char *f = a->rules[i].filter;
		bool seen = false;
		for (size_t j = 0; j < k; j++)
			seen = seen || strcmp(a->subscriptions[j], f) == 0;
		for (size_t j = 0; j < m; j++)
			seen = seen || strcmp(a->plain_subscriptions[j], f) == 0;
		if (seen)
			continue;
		if (strncmp(f, ALERTER__INPUTS, sizeof(ALERTER__INPUTS) - 1) == 0)
			a->subscriptions[k++] = f;
		else
			a->plain_subscriptions[m++] = f;
	}
	a->subscriptions[k] = NULL;
	a->plain_subscriptions[m] = NULL;
	return 0;
}

static const struct mqp_extra_option alerter__options[] = {
	{"rules", 1, "FILE", "more rules, one JSON object per line (see README)",
	 alerter__rules_option, 0},
};

int alerter_agent(struct mqp_agent *agent)
{
	struct alerter *a = calloc(1, sizeof(*a));
	if (!a)
		return MQP_ERR_NOMEM;
	alert_rule_default(&a->rules[0]);
	a->n_rules = 1;
	a->subscriptions[0] = a->rules[0].filter;
	*agent = (struct mqp_agent){
		.name = "alerter",
		.subscriptions = a->subscriptions, /* filled in as --rules is read */
		.plain_subscriptions = a->plain_subscriptions,
		.sharded = 1,
		.migrations = alerter_state_migrations,
		.n_migrations = alerter_state_n_migrations,
		.options = alerter__options,
		.n_options = MQP_LEN(alerter__options),
		.options_ctx = a,
		.init = alerter__init,
		.fini = alerter__fini,
		.handle = alerter__handle,
		.state = a,
	};
	return MQP_OK;
}
