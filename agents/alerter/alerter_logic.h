/* The alerter's rules (README "Alerts") as pure functions: rules and their
 * file, matching topics, reading a point, the window's running mean, the
 * decision, and the alert event. No SQLite, no MQTT, no clock. */
#ifndef MQPIPE_ALERTER_LOGIC_H
#define MQPIPE_ALERTER_LOGIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "mqpipe/json.h"

#define ALERT_VALUE_MAX 1e300 /* |value| at most: a window's sum cannot overflow */
#define ALERT_FIELD_MAX 64
#define ALERT_SERIES_MAX 512      /* a series name is at most 511 bytes */
#define ALERT_FUTURE_MAX_S 86400  /* a point's time at most a day past its arrival */
#define ALERT_RULES_MAX 64

enum alert_direction { ALERT_ABOVE, ALERT_BELOW };

/* One rule: which points it watches and when one alerts. */
struct alert_rule {
	char name[ALERT_FIELD_MAX];          /* unique: names the rule's state */
	char filter[256];                    /* MQTT topic filter */
	char value_field[ALERT_FIELD_MAX];   /* where the number is ("value") */
	char key_field[ALERT_FIELD_MAX];     /* "" or the field that separates series */
	char time_field[ALERT_FIELD_MAX];    /* where the event time is, Unix s ("timestamp") */
	double factor;                       /* 3 */
	int64_t window_s;                    /* 3600 */
	int64_t min_samples;                 /* 1 */
	enum alert_direction direction;      /* above */
	int64_t cooldown_s;                  /* 0: every point that qualifies alerts */
};

/* The seed's rule: metrics/#, above 3 x the mean of the previous hour. */
void alert_rule_default(struct alert_rule *rule);

/* Parses a rules file: JSON Lines, one rule object per line, blank lines and
 * lines starting with '#' ignored; fields name (required, unique), topic
 * (required), value, key, timestamp, factor (> 0), window_s (1..31 days),
 * min_samples (>= 1), direction ("above"|"below"), cooldown_s. Appends to
 * rules[*n] (at most ALERT_RULES_MAX in all). Returns 0, or MQP_ERR_INVAL with
 * "line N: why" in err. */
int alert_rules_load(const char *text, size_t len, struct alert_rule *rules, size_t *n, char *err,
		     size_t errlen);

/* Whether topic matches the MQTT filter (+ one level, # the rest). */
bool alert_topic_matches(const char *filter, const char *topic);

/* A point as a rule reads it. */
struct alert_point {
	bool none;                        /* the value field is null: not a point */
	double value;
	int64_t ts;                       /* Unix s */
	char series[ALERT_SERIES_MAX];    /* topic without "metrics/", then /key value */
};

/* Reads a point of rule from a payload: a bare JSON number (its time is
 * arrival_s), or an object with the rule's value field (a finite number,
 * |v| <= 1e300) and optional time field (a whole number up to 2^53-1 and at
 * most ALERT_FUTURE_MAX_S past arrival_s). The series is the topic (without
 * "metrics/"), with a key field "/" and its value (a string that can be a
 * topic level: no '/', '+', '#' or control character; or a whole number's
 * digits); at most ALERT_SERIES_MAX - 1 bytes, never cut or rewritten. A null
 * value (a success_rate of no attempts) is no point: out->none is set.
 * Returns 0, or MQP_ERR_INPUT with a reason. */
int alert_point_parse(const struct alert_rule *rule, const char *topic, const void *payload,
		      size_t len, int64_t arrival_s, struct alert_point *out, struct mqp_reason *why);

/* A window's sum and count, kept exactly enough to add and remove values of
 * any size without drift: Neumaier's compensated summation (1e300 + 1 -
 * 1e300 is 1, not 0). */
struct win_sum {
	double sum, comp;
	int64_t count;
};

void win_add(struct win_sum *w, double v);
void win_remove(struct win_sum *w, double v);
/* The mean, or 0 for an empty window. */
double win_mean(const struct win_sum *w);

/* Whether value alerts against a window (points with timestamps in
 * [t - window_s, t)): it holds at least min_samples points and value is
 * above (below) factor x their mean. */
bool alert_decide(const struct alert_rule *rule, const struct win_sum *window, double value);

/* alerts/<series>: {"metric","value","average","ratio","factor","window_s",
 * "samples","timestamp","rule","direction"}. ratio is value / average, null
 * when the average is 0. Returns a new object or NULL. */
cJSON *alert_event(const struct alert_rule *rule, const struct alert_point *p,
		   const struct win_sum *window);

#endif
