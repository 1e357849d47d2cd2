/* JSON decoding and validation: see mqpipe/json.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqpipe/error.h"
#include "mqpipe/json.h"
#include "mqpipe/utf8.h"

int mqp_reason_set(struct mqp_reason *why, const char *fmt, ...)
{
	if (why) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why->text, sizeof(why->text), fmt, ap);
		va_end(ap);
	}
	return MQP_ERR_INPUT;
}

/* The strict text check before cJSON. cJSON 1.7.15 has no strict mode: it
 * copies raw control bytes inside strings (a raw NUL then ends valuestring,
 * so "victim<NUL>x" reads as "victim"), skips every byte up to 0x20 as white
 * space, and decodes \u0000 into a NUL that cuts the string the same way.
 * RFC 8259 forbids raw control characters in strings and allows only space,
 * tab, LF and CR between tokens; a NUL can never be read back from cJSON, so
 * \u0000 is refused wherever it is. One pass over the raw text, tracking
 * where it is (the member names and array indices leading there), so the
 * reason names the field. On valid JSON the tracking is exact; on broken
 * JSON it may be off, and cJSON refuses that text anyway. */
#define JSON__PATH_LEVELS 4 /* levels named in a reason; deeper ones show as "..." */

struct json__level {
	int object;        /* '{' (else '[') */
	const char *key;   /* the current member's name, raw (NULL before the first) */
	size_t key_len;
	size_t index;      /* the current element of an array */
};

/* Writes the place described by levels[0..depth) ("requests[3].caseId") into
 * out[size]; "" at the top. Names are cut at a character boundary. */
static void json__path(const struct json__level *lv, size_t depth, char *out, size_t size)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < depth && n + 1 < size; i++) {
		int w;
		if (i >= JSON__PATH_LEVELS) {
			w = snprintf(out + n, size - n, "...");
		} else if (!lv[i].object) {
			w = snprintf(out + n, size - n, "[%zu]", lv[i].index);
		} else if (lv[i].key) {
			size_t k = lv[i].key_len > 32 ? 32 : lv[i].key_len;
			while (k < lv[i].key_len && k > 0 && ((unsigned char)lv[i].key[k] & 0xC0) == 0x80)
				k--; /* never half a UTF-8 character */
			w = snprintf(out + n, size - n, "%s%.*s%s", n ? "." : "", (int)k, lv[i].key,
				     k < lv[i].key_len ? "..." : "");
		} else {
			break;
		}
		if (w < 0 || (size_t)w >= size - n)
			break;
		n += (size_t)w;
		if (i >= JSON__PATH_LEVELS)
			break;
	}
}

/* Refuses a string for holding `what` at s[at]; its closing quote is s[end]
 * (or end is len), lv[0..depth) is where it is (lv may be changed). Returns
 * MQP_ERR_INPUT with the reason. */
static int json__bad_string(const char *s, size_t len, size_t at, size_t end,
			    struct json__level *lv, size_t depth, const char *what,
			    struct mqp_reason *why)
{
	size_t next = end + 1;
	while (next < len && strchr(" \t\r\n", s[next]) && s[next])
		next++;
	int is_key = depth > 0 && depth <= JSON__PATH_LEVELS + 1 && lv[depth - 1].object &&
		     next < len && s[next] == ':';
	if (is_key)
		lv[depth - 1].key = NULL; /* name the object, not its member before this one */
	char path[160];
	json__path(lv, depth, path, sizeof(path));
	if (is_key)
		return path[0] ? mqp_reason_set(why, "a member name in '%s' holds %s at byte %zu", path,
						what, at)
			       : mqp_reason_set(why, "a member name holds %s at byte %zu", what, at);
	return path[0] ? mqp_reason_set(why, "field '%s' holds %s at byte %zu", path, what, at)
		       : mqp_reason_set(why, "a string holds %s at byte %zu", what, at);
}

int mqp_json_check_text(const void *buf, size_t len, struct mqp_reason *why)
{
	const char *s = buf;
	struct json__level lv[JSON__PATH_LEVELS + 1];
	size_t depth = 0; /* may exceed what lv holds: those levels are not named */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		struct json__level *top = depth && depth <= JSON__PATH_LEVELS + 1 ? &lv[depth - 1] : NULL;
		if (c == '"') {
			size_t at = i, j = i + 1, bad_at = 0;
			const char *bad = NULL;
			char what[64];
			for (; j < len && s[j] != '"'; j++) {
				unsigned char b = (unsigned char)s[j];
				if (b == '\\') {
					if (!bad && j + 5 < len && s[j + 1] == 'u' &&
					    memcmp(s + j + 2, "0000", 4) == 0) {
						bad = "\\u0000 (NUL)";
						bad_at = j;
					}
					j++; /* the escaped character, so "\\\\u0000" is not one */
				} else if (b < 0x20 && !bad) {
					snprintf(what, sizeof(what), "a raw control character (byte 0x%02x)", b);
					bad = what;
					bad_at = j;
				}
			}
			if (bad)
				return json__bad_string(s, len, bad_at, j, lv, depth, bad, why);
			size_t next = j + 1;
			while (next < len && strchr(" \t\r\n", s[next]) && s[next])
				next++;
			if (top && top->object && next < len && s[next] == ':') {
				top->key = s + at + 1;
				top->key_len = j - at - 1;
			}
			i = j;
		} else if (c == '{' || c == '[') {
			if (depth < JSON__PATH_LEVELS + 1)
				lv[depth] = (struct json__level){c == '{', NULL, 0, 0};
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth)
				depth--;
		} else if (c == ',' && top) {
			top->index++;
		} else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
			return mqp_reason_set(why, "not JSON: control character 0x%02x at byte %zu", c, i);
		}
	}
	return MQP_OK;
}

int mqp_json_parse(const void *buf, size_t len, cJSON **out, struct mqp_reason *why)
{
	*out = NULL;
	if (len == 0)
		return mqp_reason_set(why, "empty payload: expected a JSON object");
	if (!mqp_utf8_valid(buf, len))
		return mqp_reason_set(why, "payload is not valid UTF-8");
	int rc = mqp_json_check_text(buf, len, why);
	if (rc)
		return rc;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (!root) {
		/* cJSON gives no reason but does point at where it stopped. */
		size_t at = end ? (size_t)(end - (const char *)buf) : 0;
		if (at > len)
			at = len;
		return mqp_reason_set(why, "not JSON: syntax error at byte %zu", at);
	}
	/* Anything but white space after the value is trailing garbage. */
	size_t used = (size_t)(end - (const char *)buf);
	while (used < len && strchr(" \t\r\n", ((const char *)buf)[used]) &&
	       ((const char *)buf)[used] != '\0')
		used++;
	if (used < len) {
		cJSON_Delete(root);
		return mqp_reason_set(why, "not JSON: unexpected data after the value at byte %zu",
				      used);
	}
	*out = root;
	return MQP_OK;
}

int mqp_json_parse_object(const void *buf, size_t len, cJSON **out, struct mqp_reason *why)
{
	*out = NULL;
	cJSON *root;
	int rc = mqp_json_parse(buf, len, &root, why);
	if (rc)
		return rc;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return mqp_reason_set(why, "payload must be a JSON object");
	}
	*out = root;
	return MQP_OK;
}

int mqp_json_string(const cJSON *obj, const char *name, size_t max_bytes, const char **out,
		    struct mqp_reason *why)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!item)
		return mqp_reason_set(why, "missing field '%s'", name);
	if (!cJSON_IsString(item) || !item->valuestring)
		return mqp_reason_set(why, "field '%s' must be a string", name);
	size_t n = strlen(item->valuestring);
	if (n == 0)
		return mqp_reason_set(why, "field '%s' must not be empty", name);
	if (n > max_bytes)
		return mqp_reason_set(why, "field '%s' is longer than %zu bytes", name, max_bytes);
	if (!mqp_utf8_valid(item->valuestring, n))
		return mqp_reason_set(why, "field '%s' is not valid UTF-8", name);
	*out = item->valuestring;
	return MQP_OK;
}

int mqp_json_string_alias(const cJSON *obj, const char *name, const char *alias, size_t max_bytes,
			  const char **out, struct mqp_reason *why)
{
	/* cJSON_HasObjectItem ignores case, which would make the spellings one. */
	int has_name = cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
	int has_alias = cJSON_GetObjectItemCaseSensitive(obj, alias) != NULL;
	if (!has_name && !has_alias)
		return mqp_reason_set(why, "missing field '%s' (or '%s')", name, alias);
	const char *a = NULL, *b = NULL;
	int rc;
	if (has_name && (rc = mqp_json_string(obj, name, max_bytes, &a, why)))
		return rc;
	if (has_alias && (rc = mqp_json_string(obj, alias, max_bytes, &b, why)))
		return rc;
	if (a && b && strcmp(a, b) != 0)
		return mqp_reason_set(why, "fields '%s' and '%s' differ", name, alias);
	*out = a ? a : b;
	return MQP_OK;
}

int mqp_json_uint(const cJSON *obj, const char *name, uint64_t max, uint64_t *out,
		  struct mqp_reason *why)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!item)
		return mqp_reason_set(why, "missing field '%s'", name);
	if (!cJSON_IsNumber(item))
		return mqp_reason_set(why, "field '%s' must be a number", name);
	double v = item->valuedouble;
	/* Values past 2^53-1 may already have been rounded by strtod: any double
	 * >= 2^53 is refused, so no rounded value is ever accepted. */
	if (!isfinite(v) || v < 0 || v != floor(v) || v > (double)max)
		return mqp_reason_set(why,
				      "field '%s' must be a whole number from 0 to %llu",
				      name, (unsigned long long)max);
	*out = (uint64_t)v;
	return MQP_OK;
}

cJSON *mqp_json_add_uint(cJSON *obj, const char *name, uint64_t value)
{
	/* cJSON prints numbers with %1.15g and accepts the result when it is within
	 * a relative epsilon, so 9007199254740991 would come out as
	 * 9.00719925474099e+15. Integers therefore go out as raw decimal text. */
	char text[24];
	snprintf(text, sizeof(text), "%llu", (unsigned long long)value);
	return cJSON_AddRawToObject(obj, name, text);
}
