/* Trace lines: see trace.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "mqpipe/base64.h"
#include "mqpipe/error.h"
#include "mqpipe/json.h"
#include "mqpipe/utf8.h"
#include "trace.h"

void trace_msg_free(struct trace_msg *m)
{
	free(m->topic);
	free(m->payload);
	free(m->response_topic);
	free(m->correlation);
	free(m->content_type);
	for (int i = 0; i < m->user_count; i++) {
		free(m->user_keys[i]);
		free(m->user_values[i]);
	}
	memset(m, 0, sizeof(*m));
}

/* Adds bytes as text when they are UTF-8 without NUL, else as name_b64. */
static int trace__bytes(cJSON *o, const char *name, const char *name_b64, const void *p, size_t n)
{
	if (mqp_utf8_valid(p, n) && !memchr(p, 0, n)) {
		char *text = malloc(n + 1);
		if (!text)
			return 0;
		memcpy(text, p, n);
		text[n] = '\0';
		int ok = cJSON_AddStringToObject(o, name, text) != NULL;
		free(text);
		return ok;
	}
	char *b64 = mqp_base64_encode(p, n);
	int ok = b64 && cJSON_AddStringToObject(o, name_b64, b64);
	free(b64);
	return ok;
}

char *trace_render(const struct trace_msg *m)
{
	cJSON *o = cJSON_CreateObject(), *props = NULL;
	char *text = NULL;
	char t[32];
	snprintf(t, sizeof(t), "%.6f", m->t);
	int ok = o && cJSON_AddRawToObject(o, "t", t) && cJSON_AddStringToObject(o, "topic", m->topic) &&
		 mqp_json_add_uint(o, "qos", (uint64_t)m->qos) &&
		 cJSON_AddBoolToObject(o, "retain", m->retain) &&
		 trace__bytes(o, "payload", "payload_b64", m->payload, m->len);
	if (ok && (m->response_topic || m->correlation || m->content_type || m->user_count)) {
		ok = (props = cJSON_AddObjectToObject(o, "properties")) != NULL;
		if (ok && m->response_topic)
			ok = cJSON_AddStringToObject(props, "response_topic", m->response_topic) != NULL;
		if (ok && m->correlation)
			ok = trace__bytes(props, "correlation_data", "correlation_data_b64", m->correlation,
					  m->correlation_len);
		if (ok && m->content_type)
			ok = cJSON_AddStringToObject(props, "content_type", m->content_type) != NULL;
		cJSON *users = ok && m->user_count ? cJSON_AddArrayToObject(props, "user") : NULL;
		for (int i = 0; ok && i < m->user_count; i++) {
			cJSON *pair = cJSON_CreateArray();
			ok = pair && cJSON_AddItemToArray(users, pair) &&
			     cJSON_AddItemToArray(pair, cJSON_CreateString(m->user_keys[i])) &&
			     cJSON_AddItemToArray(pair, cJSON_CreateString(m->user_values[i]));
		}
	}
	if (ok)
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

enum trace_format trace_detect(const char *line)
{
	while (isspace((unsigned char)*line))
		line++;
	if (*line != '{')
		return TRACE_MQTT_RECORDER;
	cJSON *o = cJSON_Parse(line);
	enum trace_format f = !o ? TRACE_UNKNOWN
			      : cJSON_GetObjectItemCaseSensitive(o, "tst") ? TRACE_MOSQUITTO_SUB
			      : cJSON_GetObjectItemCaseSensitive(o, "t") ? TRACE_MQPIPE
									   : TRACE_UNKNOWN;
	cJSON_Delete(o);
	return f;
}

static char *trace__dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Reads text or name_b64 of o into *p and *n. Returns 0, or -1 with err. */
static int trace__read_bytes(const cJSON *o, const char *name, const char *name_b64,
			     unsigned char **p, size_t *n, int required, char *err, size_t errlen)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, name);
	const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(o, name_b64);
	if (cJSON_IsString(text)) {
		*n = strlen(text->valuestring);
		*p = (unsigned char *)trace__dup(text->valuestring);
		return *p ? 0 : -1;
	}
	if (cJSON_IsString(b64)) {
		if (mqp_base64_decode(b64->valuestring, p, n)) {
			snprintf(err, errlen, "'%s' is not base64", name_b64);
			return -1;
		}
		return 0;
	}
	if (required) {
		snprintf(err, errlen, "no '%s' or '%s'", name, name_b64);
		return -1;
	}
	return 0;
}

/* Reads qos and retain (0/1 or a boolean) from o. */
static int trace__flags(const cJSON *o, struct trace_msg *m, char *err, size_t errlen)
{
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "qos");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "retain");
	m->qos = cJSON_IsNumber(q) ? q->valueint : 0;
	m->retain = cJSON_IsTrue(r) || (cJSON_IsNumber(r) && r->valueint != 0);
	if (m->qos < 0 || m->qos > 2) {
		snprintf(err, errlen, "qos %d is not 0, 1 or 2", m->qos);
		return -1;
	}
	return 0;
}

/* Our own line. */
static int trace__mqpipe(const cJSON *o, struct trace_msg *m, char *err, size_t errlen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "t");
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(o, "topic");
	if (!cJSON_IsNumber(t) || t->valuedouble < 0) {
		snprintf(err, errlen, "'t' must be a number of seconds >= 0");
		return -1;
	}
	if (!cJSON_IsString(topic) || !topic->valuestring[0]) {
		snprintf(err, errlen, "'topic' must be a non-empty string");
		return -1;
	}
	m->t = t->valuedouble;
	m->topic = trace__dup(topic->valuestring);
	if (trace__flags(o, m, err, errlen) ||
	    trace__read_bytes(o, "payload", "payload_b64", &m->payload, &m->len, 1, err, errlen))
		return -1;
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(o, "properties");
	if (!cJSON_IsObject(props))
		return 0;
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(props, "response_topic");
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(props, "content_type");
	m->response_topic = cJSON_IsString(rt) ? trace__dup(rt->valuestring) : NULL;
	m->content_type = cJSON_IsString(ct) ? trace__dup(ct->valuestring) : NULL;
	if (trace__read_bytes(props, "correlation_data", "correlation_data_b64", &m->correlation,
			      &m->correlation_len, 0, err, errlen))
		return -1;
	const cJSON *pair;
	cJSON_ArrayForEach(pair, cJSON_GetObjectItemCaseSensitive(props, "user")) {
		const cJSON *k = cJSON_GetArrayItem(pair, 0), *v = cJSON_GetArrayItem(pair, 1);
		if (m->user_count < 16 && cJSON_IsString(k) && cJSON_IsString(v)) {
			m->user_keys[m->user_count] = trace__dup(k->valuestring);
			m->user_values[m->user_count++] = trace__dup(v->valuestring);
		}
	}
	return 0;
}

/* Seconds since the epoch of "2026-11-21T18:04:13.147312Z+0000", or -1. */
static double trace__iso_time(const char *s)
{
	struct tm tm = {0};
	char frac[16] = "";
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%15[0-9]", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, frac) < 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	char fraction[24];
	snprintf(fraction, sizeof(fraction), "0.%s", frac[0] ? frac : "0");
	return (double)timegm(&tm) + strtod(fraction, NULL);
}

/* mosquitto_sub -F %J / %j: {"tst","topic","qos","retain","payloadlen","payload"}. */
static int trace__mosquitto(const cJSON *o, double *first, struct trace_msg *m, char *err,
			    size_t errlen)
{
	const cJSON *tst = cJSON_GetObjectItemCaseSensitive(o, "tst");
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(o, "topic");
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(o, "payload");
	double at = cJSON_IsString(tst) ? trace__iso_time(tst->valuestring) : -1;
	if (at < 0) {
		snprintf(err, errlen, "'tst' is not a time like 2026-01-01T00:00:00.000000Z");
		return -1;
	}
	if (!cJSON_IsString(topic) || !topic->valuestring[0]) {
		snprintf(err, errlen, "'topic' must be a non-empty string");
		return -1;
	}
	if (*first < 0)
		*first = at;
	m->t = at - *first < 0 ? 0 : at - *first;
	m->topic = trace__dup(topic->valuestring);
	if (trace__flags(o, m, err, errlen))
		return -1;
	/* %j writes the payload as a string; %J writes a JSON payload as JSON. */
	char *text = !payload ? trace__dup("")
		     : cJSON_IsString(payload) ? trace__dup(payload->valuestring)
					       : cJSON_PrintUnformatted(payload);
	if (!text)
		return -1;
	m->payload = (unsigned char *)text;
	m->len = strlen(text);
	return 0;
}

/* Splits one CSV record (RFC 4180 quoting) into at most max fields, in place. */
static int trace__csv(char *line, char **fields, int max)
{
	int n = 0;
	char *p = line;
	while (n < max) {
		char *out = p;
		fields[n++] = p;
		if (*p == '"') {
			char *in = p + 1;
			for (;;) {
				if (!*in)
					return -1; /* an unterminated quote */
				if (*in == '"' && in[1] == '"') {
					*out++ = '"';
					in += 2;
				} else if (*in == '"') {
					in++;
					break;
				} else {
					*out++ = *in++;
				}
			}
			if (*in && *in != ',')
				return -1;
			*out = '\0';
			if (!*in)
				return n;
			p = in + 1;
		} else {
			char *comma = strchr(p, ',');
			if (!comma)
				return n;
			*comma = '\0';
			p = comma + 1;
		}
	}
	return n;
}

/* mqtt-recorder: topic,payload,qos,retain,time_now,time_delta. */
static int trace__recorder(const char *line, double *first, struct trace_msg *m, char *err,
			   size_t errlen)
{
	char *copy = strdup(line), *f[6];
	if (!copy)
		return -1;
	size_t n = strlen(copy);
	while (n && (copy[n - 1] == '\r' || copy[n - 1] == '\n'))
		copy[--n] = '\0';
	int k = trace__csv(copy, f, 6);
	int rc = 0;
	if (k == 6 && strcmp(f[0], "topic") == 0 && strcmp(f[1], "payload") == 0) {
		rc = 1; /* the header */
	} else if (k != 6) {
		snprintf(err, errlen, "expected 6 CSV fields (topic,payload,qos,retain,time_now,time_delta), got %d",
			 k < 0 ? 0 : k);
		rc = -1;
	} else {
		char *end;
		double now = strtod(f[4], &end);
		if (end == f[4] || *end || !f[0][0]) {
			snprintf(err, errlen, "time_now '%s' is not a number, or the topic is empty", f[4]);
			rc = -1;
		} else {
			if (*first < 0)
				*first = now;
			m->t = now - *first < 0 ? 0 : now - *first;
			m->topic = trace__dup(f[0]);
			m->payload = (unsigned char *)trace__dup(f[1]);
			m->len = strlen(f[1]);
			m->qos = atoi(f[2]);
			m->retain = strcmp(f[3], "True") == 0 || strcmp(f[3], "true") == 0 ||
				    strcmp(f[3], "1") == 0;
			if (m->qos < 0 || m->qos > 2) {
				snprintf(err, errlen, "qos '%s' is not 0, 1 or 2", f[2]);
				rc = -1;
			}
		}
	}
	free(copy);
	return rc;
}

int trace_parse(enum trace_format f, const char *line, double *first_time, struct trace_msg *m,
		char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	const char *p = line;
	while (isspace((unsigned char)*p))
		p++;
	if (!*p)
		return 1;
	int rc;
	if (f == TRACE_MQTT_RECORDER) {
		rc = trace__recorder(line, first_time, m, err, errlen);
	} else {
		cJSON *o = cJSON_Parse(line);
		if (!cJSON_IsObject(o)) {
			snprintf(err, errlen, "not a JSON object");
			rc = -1;
		} else {
			rc = f == TRACE_MOSQUITTO_SUB ? trace__mosquitto(o, first_time, m, err, errlen)
						      : trace__mqpipe(o, m, err, errlen);
		}
		cJSON_Delete(o);
	}
	if (rc)
		trace_msg_free(m);
	return rc;
}
