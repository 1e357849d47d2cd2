/* The ingest agent's rules: see ingest_logic.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqpipe/error.h"
#include "mqpipe/utf8.h"
#include "ingest_logic.h"

/* The seed's pattern, anchored (README "Ingestion"). */
#define VALIDATE__EMAIL "^[A-Za-z][A-Za-z0-9]*@[A-Za-z0-9]+\\.com$"

int ingest_error(struct ingest_errors *errs, const char *field, const char *fmt, ...)
{
	if (errs->n < INGEST_ERRORS_MAX) {
		snprintf(errs->e[errs->n].field, sizeof(errs->e[0].field), "%s", field);
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errs->e[errs->n].message, sizeof(errs->e[0].message), fmt, ap);
		va_end(ap);
		errs->n++;
	}
	return MQP_ERR_INPUT;
}

int ingest_rules_init(struct ingest_rules *rules)
{
	return regcomp(&rules->email, VALIDATE__EMAIL, REG_EXTENDED | REG_NOSUB) ? MQP_ERR_INVAL
										  : MQP_OK;
}

void ingest_rules_free(struct ingest_rules *rules)
{
	regfree(&rules->email);
}

static int validate__hex(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
					    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes in[0..n) into out (at least n + 1 bytes), `+` as a space.
 * Returns the decoded length, or -1 for a malformed escape, -2 for a NUL. */
static long validate__unescape(const char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '+') {
			out[o++] = ' ';
		} else if (in[i] == '%') {
			int hi = i + 2 < n ? validate__hex((unsigned char)in[i + 1]) : -1;
			int lo = i + 2 < n ? validate__hex((unsigned char)in[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			if (hi == 0 && lo == 0)
				return -2;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
	return (long)o;
}

int ingest_query_decode(const char *text, size_t len, cJSON **out, struct ingest_errors *errs)
{
	*out = NULL;
	if (len > INGEST_INPUT_MAX)
		return ingest_error(errs, "body", "longer than %d bytes", INGEST_INPUT_MAX);
	if (memchr(text, '\0', len))
		return ingest_error(errs, "body", "contains a NUL byte");
	cJSON *obj = cJSON_CreateObject();
	char *key = malloc(len + 1), *value = malloc(len + 1);
	int rc = obj && key && value ? MQP_OK : MQP_ERR_NOMEM;
	size_t pos = 0;
	while (rc != MQP_ERR_NOMEM && pos < len) {
		size_t end = pos;
		while (end < len && text[end] != '&')
			end++;
		const char *pair = text + pos, *eq = memchr(pair, '=', end - pos);
		size_t klen = eq ? (size_t)(eq - pair) : end - pos;
		size_t vlen = eq ? end - pos - klen - 1 : 0;
		pos = end + 1;
		if (klen == 0 && vlen == 0)
			continue; /* "a=1&&b=2", a trailing "&" */
		long k = validate__unescape(pair, klen, key);
		if (k < 0) {
			rc = ingest_error(errs, "query", "a key has a %s", k == -1 ? "malformed percent-escape" : "NUL");
			continue;
		}
		if (!mqp_utf8_valid(key, (size_t)k)) {
			rc = ingest_error(errs, "query", "a key is not valid UTF-8");
			continue;
		}
		long v = validate__unescape(eq ? eq + 1 : "", vlen, value);
		if (v == -1)
			rc = ingest_error(errs, key, "malformed percent-escape (want %%XX, X a hex digit)");
		else if (v == -2)
			rc = ingest_error(errs, key, "contains a NUL");
		else if (!mqp_utf8_valid(value, (size_t)v))
			rc = ingest_error(errs, key, "is not valid UTF-8");
		else if (cJSON_GetObjectItemCaseSensitive(obj, key))
			rc = ingest_error(errs, key, "is given more than once");
		else if (!cJSON_AddStringToObject(obj, key, value))
			rc = MQP_ERR_NOMEM;
	}
	free(key);
	free(value);
	if (rc) {
		cJSON_Delete(obj);
		return rc;
	}
	*out = obj;
	return MQP_OK;
}

/* Whether s (valid UTF-8) holds a control character: C0, DEL or C1. */
static int validate__has_control(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return 1;
		if (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
			return 1; /* U+0080..U+009F */
	}
	return 0;
}

/* Reads a string member into out (max bytes); notes why it is not one. */
static const char *validate__string(const cJSON *obj, const char *name, size_t max,
				    struct ingest_errors *errs)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!item) {
		ingest_error(errs, name, "is required");
		return NULL;
	}
	if (!cJSON_IsString(item) || !item->valuestring) {
		ingest_error(errs, name, "must be a string");
		return NULL;
	}
	size_t n = strlen(item->valuestring);
	if (n == 0 || n > max) {
		ingest_error(errs, name, "must be 1 to %zu bytes, not %zu", max, n);
		return NULL;
	}
	if (!mqp_utf8_valid(item->valuestring, n)) {
		ingest_error(errs, name, "is not valid UTF-8");
		return NULL;
	}
	return item->valuestring;
}

/* Checks the three fields of obj into *user. */
static void validate__fields(const struct ingest_rules *rules, const cJSON *obj,
			     struct ingest_user *user, struct ingest_errors *errs)
{
	const char *name = validate__string(obj, "user_name", INGEST_NAME_MAX, errs);
	if (name && validate__has_control((const unsigned char *)name, strlen(name)))
		ingest_error(errs, "user_name", "must not contain control characters");
	else if (name)
		strcpy(user->user_name, name); /* bounded above */

	const char *email = validate__string(obj, "email", INGEST_EMAIL_MAX, errs);
	if (email && regexec(&rules->email, email, 0, NULL, 0) != 0)
		ingest_error(errs, "email", "must look like name@domain.com (a letter first, then "
					    "letters or digits; the domain letters or digits)");
	else if (email)
		strcpy(user->email, email);

	const cJSON *pin = cJSON_GetObjectItemCaseSensitive(obj, "pincode");
	char digits[32] = "";
	if (!pin) {
		ingest_error(errs, "pincode", "is required");
		return;
	}
	if (cJSON_IsNumber(pin)) {
		double d = pin->valuedouble;
		if (!(d >= 0 && d < 1e7) || d != (double)(int64_t)d) {
			ingest_error(errs, "pincode", "must be 4 to 6 digits");
			return;
		}
		snprintf(digits, sizeof(digits), "%" PRId64, (int64_t)d);
	} else if (cJSON_IsString(pin) && pin->valuestring && strlen(pin->valuestring) < sizeof(digits)) {
		strcpy(digits, pin->valuestring);
	} else {
		ingest_error(errs, "pincode", cJSON_IsString(pin) ? "must be 4 to 6 digits"
								  : "must be a string or a number");
		return;
	}
	size_t n = strlen(digits);
	if (n < 4 || n > 6 || strspn(digits, "0123456789") != n) {
		ingest_error(errs, "pincode", "must be 4 to 6 digits");
		return;
	}
	strcpy(user->pincode, digits);
}

int ingest_parse(const struct ingest_rules *rules, const void *payload, size_t len,
		 struct ingest_user *user, char *request_id, struct ingest_errors *errs)
{
	memset(user, 0, sizeof(*user));
	request_id[0] = '\0';
	errs->n = 0;
	const char *text = payload;
	size_t lead = 0;
	while (lead < len && (text[lead] == ' ' || text[lead] == '\t' || text[lead] == '\n' ||
			      text[lead] == '\r'))
		lead++;
	cJSON *obj = NULL;
	int rc;
	if (lead < len && text[lead] == '{') {
		if (len > INGEST_INPUT_MAX)
			return ingest_error(errs, "body", "longer than %d bytes", INGEST_INPUT_MAX);
		struct mqp_reason why = {""};
		rc = mqp_json_parse_object(payload, len, &obj, &why);
		if (rc == MQP_ERR_INPUT)
			return ingest_error(errs, "body", "%s", why.text);
	} else {
		rc = ingest_query_decode(text, len, &obj, errs);
	}
	if (rc)
		return rc;
	validate__fields(rules, obj, user, errs);
	if (cJSON_GetObjectItemCaseSensitive(obj, "request_id")) {
		const char *id = validate__string(obj, "request_id", MQP_STR_MAX, errs);
		if (id)
			strcpy(request_id, id);
	}
	cJSON_Delete(obj);
	return errs->n ? MQP_ERR_INPUT : MQP_OK;
}

/* Adds the record's fields to o. */
static int validate__add_user(cJSON *o, const struct ingest_user *user, int64_t created_ms)
{
	return cJSON_AddStringToObject(o, "user_name", user->user_name) &&
	       cJSON_AddStringToObject(o, "email", user->email) &&
	       cJSON_AddStringToObject(o, "pincode", user->pincode) &&
	       mqp_json_add_uint(o, "created_at", (uint64_t)created_ms);
}

char *ingest_reply_ok(int64_t id, const struct ingest_user *user, int64_t created_ms)
{
	cJSON *o = cJSON_CreateObject(), *u = cJSON_CreateObject();
	char *text = NULL;
	if (o && u && mqp_json_add_uint(o, "status", 200) && mqp_json_add_uint(o, "id", (uint64_t)id) &&
	    validate__add_user(u, user, created_ms) && cJSON_AddItemToObject(o, "user", u)) {
		u = NULL;
		text = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(u);
	cJSON_Delete(o);
	return text;
}

/* Renders {"status":400,"errors":[…]} from n (field, message) pairs. */
static char *validate__reply_400(int n, const char *const *fields, const char *const *messages)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *list = o && mqp_json_add_uint(o, "status", 400) ? cJSON_AddArrayToObject(o, "errors")
							      : NULL;
	int ok = list != NULL;
	for (int i = 0; ok && i < n; i++) {
		cJSON *e = cJSON_CreateObject();
		ok = e && cJSON_AddItemToArray(list, e) &&
		     cJSON_AddStringToObject(e, "field", fields[i]) &&
		     cJSON_AddStringToObject(e, "message", messages[i]);
	}
	char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return text;
}

char *ingest_reply_errors(const struct ingest_errors *errs)
{
	const char *fields[INGEST_ERRORS_MAX], *messages[INGEST_ERRORS_MAX];
	for (int i = 0; i < errs->n; i++) {
		fields[i] = errs->e[i].field;
		messages[i] = errs->e[i].message;
	}
	return validate__reply_400(errs->n, fields, messages);
}

char *ingest_reply_error(const char *field, const char *message)
{
	return validate__reply_400(1, &field, &message);
}

void ingest_cursor(int64_t id, char *out)
{
	snprintf(out, 24, "c%" PRIx64, (uint64_t)id);
}

/* Reads a cursor made by ingest_cursor. Returns 0 or -1. */
static int validate__cursor(const char *s, int64_t *id)
{
	size_t n = strlen(s);
	if (n < 2 || n > 17 || s[0] != 'c' || strspn(s + 1, "0123456789abcdef") != n - 1)
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s + 1, NULL, 16);
	if (errno || v > (unsigned long long)INT64_MAX)
		return -1;
	*id = (int64_t)v;
	return 0;
}

int ingest_parse_list(const void *payload, size_t len, int64_t *limit, int64_t *after_id,
		      struct ingest_errors *errs)
{
	*limit = INGEST_LIST_DEFAULT;
	*after_id = 0;
	errs->n = 0;
	size_t lead = 0;
	const char *text = payload;
	while (lead < len && (text[lead] == ' ' || text[lead] == '\n' || text[lead] == '\r' ||
			      text[lead] == '\t'))
		lead++;
	if (lead == len)
		return MQP_OK; /* an empty request: the first page */
	cJSON *obj;
	struct mqp_reason why = {""};
	int rc = len > INGEST_INPUT_MAX ? ingest_error(errs, "body", "longer than %d bytes", INGEST_INPUT_MAX)
					: mqp_json_parse_object(payload, len, &obj, &why);
	if (rc == MQP_ERR_INPUT && why.text[0])
		return ingest_error(errs, "body", "%s", why.text);
	if (rc)
		return rc;
	if (cJSON_GetObjectItemCaseSensitive(obj, "limit")) {
		uint64_t v;
		if (mqp_json_uint(obj, "limit", INGEST_LIST_MAX, &v, &why) || v == 0)
			ingest_error(errs, "limit", "must be a whole number from 1 to %d", INGEST_LIST_MAX);
		else
			*limit = (int64_t)v;
	}
	const cJSON *after = cJSON_GetObjectItemCaseSensitive(obj, "after");
	if (after && !cJSON_IsNull(after) &&
	    (!cJSON_IsString(after) || validate__cursor(after->valuestring, after_id)))
		ingest_error(errs, "after", "must be a cursor from an earlier reply's \"next\"");
	cJSON_Delete(obj);
	return errs->n ? MQP_ERR_INPUT : MQP_OK;
}
