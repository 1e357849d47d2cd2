/* The alerter's rules: see alerter_logic.h. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mqpipe/error.h"
#include "alerter_logic.h"

void alert_rule_default(struct alert_rule *rule)
{
	memset(rule, 0, sizeof(*rule));
	strcpy(rule->name, "spike");
	strcpy(rule->filter, "metrics/#");
	strcpy(rule->value_field, "value");
	strcpy(rule->time_field, "timestamp");
	rule->factor = 3;
	rule->window_s = 3600;
	rule->min_samples = 1;
	rule->direction = ALERT_ABOVE;
}

/* Copies an optional string member (1..size-1 bytes) into out. */
static int window__text(const cJSON *o, const char *name, char *out, size_t size, char *err,
			size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v)
		return MQP_OK;
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= size) {
		snprintf(err, errlen, "'%s' must be a string of 1 to %zu bytes", name, size - 1);
		return MQP_ERR_INVAL;
	}
	strcpy(out, v->valuestring);
	return MQP_OK;
}

/* Reads an optional number member within [lo, hi] (whole when integral). */
static int window__number(const cJSON *o, const char *name, double lo, double hi, int integral,
			  double *out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v)
		return MQP_OK;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
	    (integral && v->valuedouble != floor(v->valuedouble))) {
		snprintf(err, errlen, "'%s' must be a %s from %g to %g", name,
			 integral ? "whole number" : "number", lo, hi);
		return MQP_ERR_INVAL;
	}
	*out = v->valuedouble;
	return MQP_OK;
}

/* Whether a topic filter is well formed: '#' only last and alone in its
 * level, '+' alone in its level. */
static bool window__filter_ok(const char *f)
{
	for (const char *p = f; *p; p++) {
		bool starts = p == f || p[-1] == '/';
		bool ends = !p[1] || p[1] == '/';
		if ((*p == '+' && !(starts && ends)) || (*p == '#' && !(starts && !p[1])))
			return false;
	}
	return *f != '\0';
}

/* Parses one rule object; err gets the reason. */
static int window__rule(const char *line, size_t len, struct alert_rule *r, char *err,
			size_t errlen)
{
	cJSON *o;
	struct mqp_reason jw = {""};
	if (mqp_json_parse_object(line, len, &o, &jw)) { /* the same text rules as payloads */
		snprintf(err, errlen, "not a JSON object (%s)", jw.text);
		return MQP_ERR_INVAL;
	}
	alert_rule_default(r);
	r->name[0] = r->filter[0] = '\0';
	double factor = r->factor, window = (double)r->window_s, min = (double)r->min_samples,
	       cooldown = 0;
	char direction[16] = "above";
	int rc = window__text(o, "name", r->name, sizeof(r->name), err, errlen);
	if (!rc)
		rc = window__text(o, "topic", r->filter, sizeof(r->filter), err, errlen);
	if (!rc)
		rc = window__text(o, "value", r->value_field, sizeof(r->value_field), err, errlen);
	if (!rc)
		rc = window__text(o, "key", r->key_field, sizeof(r->key_field), err, errlen);
	if (!rc)
		rc = window__text(o, "timestamp", r->time_field, sizeof(r->time_field), err, errlen);
	if (!rc)
		rc = window__text(o, "direction", direction, sizeof(direction), err, errlen);
	if (!rc)
		rc = window__number(o, "factor", 1e-9, 1e9, 0, &factor, err, errlen);
	if (!rc)
		rc = window__number(o, "window_s", 1, 31 * 86400, 1, &window, err, errlen);
	if (!rc)
		rc = window__number(o, "min_samples", 1, 1e9, 1, &min, err, errlen);
	if (!rc)
		rc = window__number(o, "cooldown_s", 0, 31 * 86400, 1, &cooldown, err, errlen);
	const cJSON *item, *fields = rc ? NULL : o;
	cJSON_ArrayForEach(item, fields) {
		static const char *const known[] = {"name", "topic", "value", "key", "timestamp",
						    "direction", "factor", "window_s", "min_samples",
						    "cooldown_s"};
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || strcmp(item->string, known[i]) == 0;
		if (!ok) { /* a typo would otherwise silently keep a default */
			snprintf(err, errlen, "unknown field '%s'", item->string);
			rc = MQP_ERR_INVAL;
			break;
		}
	}
	cJSON_Delete(o);
	if (rc)
		return rc;
	if (!r->name[0] || !r->filter[0]) {
		snprintf(err, errlen, "'name' and 'topic' are required");
		return MQP_ERR_INVAL;
	}
	if (!window__filter_ok(r->filter)) {
		snprintf(err, errlen, "'topic' is not a valid MQTT topic filter: '%s'", r->filter);
		return MQP_ERR_INVAL;
	}
	if (strcmp(direction, "above") && strcmp(direction, "below")) {
		snprintf(err, errlen, "'direction' must be \"above\" or \"below\"");
		return MQP_ERR_INVAL;
	}
	r->direction = direction[0] == 'a' ? ALERT_ABOVE : ALERT_BELOW;
	r->factor = factor;
	r->window_s = (int64_t)window;
	r->min_samples = (int64_t)min;
	r->cooldown_s = (int64_t)cooldown;
	return MQP_OK;
}

int alert_rules_load(const char *text, size_t len, struct alert_rule *rules, size_t *n, char *err,
		     size_t errlen)
{
	size_t pos = 0;
	for (int lineno = 1; pos < len; lineno++) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		char line[4096];
		size_t ll = end - pos;
		const char *start = text + pos;
		pos = end + 1;
		while (ll && (*start == ' ' || *start == '\t'))
			start++, ll--;
		while (ll && (start[ll - 1] == '\r' || start[ll - 1] == ' ' || start[ll - 1] == '\t'))
			ll--;
		if (ll == 0 || *start == '#')
			continue;
		char why[300] = "";
		if (ll >= sizeof(line)) {
			snprintf(err, errlen, "line %d: longer than %zu bytes", lineno, sizeof(line) - 1);
			return MQP_ERR_INVAL;
		}
		memcpy(line, start, ll);
		line[ll] = '\0';
		if (*n >= ALERT_RULES_MAX) {
			snprintf(err, errlen, "line %d: more than %d rules", lineno, ALERT_RULES_MAX);
			return MQP_ERR_INVAL;
		}
		if (window__rule(line, ll, &rules[*n], why, sizeof(why))) {
			snprintf(err, errlen, "line %d: %s", lineno, why);
			return MQP_ERR_INVAL;
		}
		for (size_t i = 0; i < *n; i++)
			if (strcmp(rules[i].name, rules[*n].name) == 0) {
				snprintf(err, errlen, "line %d: a rule named '%s' exists already", lineno,
					 rules[i].name);
				return MQP_ERR_INVAL;
			}
		(*n)++;
	}
	return MQP_OK;
}

bool alert_topic_matches(const char *filter, const char *topic)
{
	/* Hand-written: neither Paho nor cJSON offers it, and libmosquitto's
	 * mosquitto_topic_matches_sub would be a whole client library for a loop. */
	const char *f = filter, *t = topic;
	for (;;) {
		if (f[0] == '#')
			return true;
		size_t fl = strcspn(f, "/"), tl = strcspn(t, "/");
		if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
			return false;
		f += fl;
		t += tl;
		if (!*f)
			return !*t;
		if (!*t) /* the filter goes on: only "/#" also matches the parent */
			return strcmp(f, "/#") == 0;
		f++;
		t++;
	}
}

/* Appends n bytes of s to the series name. A series is never cut or
 * rewritten (two names would become one): too long is refused. */
static int window__series_put(char *series, const char *s, size_t n, struct mqp_reason *why)
{
	size_t have = strlen(series);
	if (have + n >= ALERT_SERIES_MAX)
		return mqp_reason_set(why, "the series name would be %zu bytes, more than %d",
				      have + n, ALERT_SERIES_MAX - 1);
	memcpy(series + have, s, n);
	series[have + n] = '\0';
	return MQP_OK;
}

/* Whether s (UTF-8) can be one level of a topic an alert is published on:
 * no '/', no wildcard, no control character (C0, DEL, C1: MQTT 5 4.7.3 says
 * topics should not hold them, and mosquitto refuses them). */
static bool window__level_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p == '/' || *p == '+' || *p == '#' || *p < 0x20 || *p == 0x7f ||
		    (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F))
			return false;
	return true;
}

/* Checks and reads a finite number within the value limit. */
static int window__value(const cJSON *v, const char *name, double *out, struct mqp_reason *why)
{
	if (!v)
		return mqp_reason_set(why, "missing field '%s'", name);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return mqp_reason_set(why, "field '%s' must be a number", name);
	if (fabs(v->valuedouble) > ALERT_VALUE_MAX)
		return mqp_reason_set(why, "field '%s' is beyond +-1e300", name);
	*out = v->valuedouble;
	return MQP_OK;
}

int alert_point_parse(const struct alert_rule *rule, const char *topic, const void *payload,
		      size_t len, int64_t arrival_s, struct alert_point *out, struct mqp_reason *why)
{
	out->series[0] = '\0';
	out->none = false;
	const char *name = strncmp(topic, "metrics/", 8) == 0 ? topic + 8 : topic;
	int rc = window__series_put(out->series, name, strlen(name), why);
	if (rc)
		return rc;
	out->ts = arrival_s;
	/* One parse per point, under the shared text rules: an object goes on to
	 * its fields, anything else must be a bare number. */
	cJSON *root;
	if ((rc = mqp_json_parse(payload, len, &root, why)))
		return rc;
	if (!cJSON_IsObject(root)) {
		if (!cJSON_IsNumber(root))
			rc = mqp_reason_set(why, "payload must be a number or a JSON object");
		else if (!(rc = window__value(root, "value", &out->value, why)) && rule->key_field[0])
			rc = mqp_reason_set(why, "a bare number has no field '%s' to tell series apart",
					    rule->key_field);
		cJSON_Delete(root);
		return rc;
	}
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(root, rule->value_field);
	if (cJSON_IsNull(value)) {
		out->none = true;
		cJSON_Delete(root);
		return MQP_OK;
	}
	rc = window__value(value, rule->value_field, &out->value, why);
	if (!rc && cJSON_GetObjectItemCaseSensitive(root, rule->time_field)) {
		/* The README's integer rule, then a bound ahead of the clock: one
		 * point stamped far ahead (milliseconds by mistake) would make every
		 * real point of its series "too old" from then on. */
		uint64_t ts;
		if (!(rc = mqp_json_uint(root, rule->time_field, MQP_UINT_MAX_EXACT, &ts, why))) {
			if (ts > (uint64_t)(arrival_s > 0 ? arrival_s : 0) + ALERT_FUTURE_MAX_S)
				rc = mqp_reason_set(why, "field '%s' (%llu) is more than %d s ahead of the "
							 "alerter's clock (%lld)", rule->time_field,
						    (unsigned long long)ts, ALERT_FUTURE_MAX_S,
						    (long long)arrival_s);
			else
				out->ts = (int64_t)ts;
		}
	}
	if (!rc && rule->key_field[0]) {
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, rule->key_field);
		char num[32];
		if (cJSON_IsString(k) && k->valuestring[0] && strlen(k->valuestring) <= MQP_STR_MAX &&
		    window__level_ok(k->valuestring)) {
			if (!(rc = window__series_put(out->series, "/", 1, why)))
				rc = window__series_put(out->series, k->valuestring,
							strlen(k->valuestring), why);
		} else if (cJSON_IsNumber(k) && k->valuedouble >= 0 && k->valuedouble == floor(k->valuedouble) &&
			   k->valuedouble <= (double)MQP_UINT_MAX_EXACT) {
			snprintf(num, sizeof(num), "/%" PRIu64, (uint64_t)k->valuedouble);
			rc = window__series_put(out->series, num, strlen(num), why);
		} else {
			rc = mqp_reason_set(why, "field '%s' must be a whole number or a string of 1 to %d "
						 "bytes that can be a topic level (no '/', '+', '#' or "
						 "control character)", rule->key_field, MQP_STR_MAX);
		}
	}
	cJSON_Delete(root);
	return rc;
}

/* Neumaier: the low-order part lost by each addition goes into comp. */
void win_add(struct win_sum *w, double v)
{
	double t = w->sum + v;
	if (fabs(w->sum) >= fabs(v))
		w->comp += (w->sum - t) + v;
	else
		w->comp += (v - t) + w->sum;
	w->sum = t;
	w->count++;
}

void win_remove(struct win_sum *w, double v)
{
	int64_t count = w->count - 1;
	win_add(w, -v);
	w->count = count;
	if (w->count <= 0) /* empty: exactly zero, whatever rounding was left */
		*w = (struct win_sum){0, 0, 0};
}

double win_mean(const struct win_sum *w)
{
	return w->count > 0 ? (w->sum + w->comp) / (double)w->count : 0;
}

bool alert_decide(const struct alert_rule *rule, const struct win_sum *window, double value)
{
	if (window->count < rule->min_samples || window->count == 0)
		return false;
	double threshold = rule->factor * win_mean(window);
	return rule->direction == ALERT_ABOVE ? value > threshold : value < threshold;
}

cJSON *alert_event(const struct alert_rule *rule, const struct alert_point *p,
		   const struct win_sum *window)
{
	double mean = win_mean(window);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	int ok = cJSON_AddStringToObject(o, "metric", p->series) &&
		 cJSON_AddNumberToObject(o, "value", p->value) &&
		 cJSON_AddNumberToObject(o, "average", mean) &&
		 (mean != 0 ? cJSON_AddNumberToObject(o, "ratio", p->value / mean) != NULL
			    : cJSON_AddNullToObject(o, "ratio") != NULL) &&
		 cJSON_AddNumberToObject(o, "factor", rule->factor) &&
		 mqp_json_add_uint(o, "window_s", (uint64_t)rule->window_s) &&
		 mqp_json_add_uint(o, "samples", (uint64_t)window->count) &&
		 mqp_json_add_uint(o, "timestamp", (uint64_t)p->ts) &&
		 cJSON_AddStringToObject(o, "rule", rule->name) &&
		 cJSON_AddStringToObject(o, "direction",
					 rule->direction == ALERT_ABOVE ? "above" : "below");
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
