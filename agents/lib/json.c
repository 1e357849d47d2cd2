/* JSON decoding and validation: see mqpipe/json.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqpipe/error.h"
#include "mqpipe/json.h"

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

/* Whether a JSON text escapes a NUL (\u0000) in a string: cJSON would cut
 * the string there without a word, so "a\u0000b" would read as "a". */
static int json__escaped_nul(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
			return 1;
		i++; /* skip the escaped character, so "\\\\u0000" is not one */
	}
	return 0;
}

int mqp_json_parse_object(const void *buf, size_t len, cJSON **out, struct mqp_reason *why)
{
	*out = NULL;
	if (len == 0)
		return mqp_reason_set(why, "empty payload: expected a JSON object");
	if (!mqp_utf8_valid(buf, len))
		return mqp_reason_set(why, "payload is not valid UTF-8");
	if (json__escaped_nul(buf, len))
		return mqp_reason_set(why, "a string holds \\u0000 (NUL)");
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

/* Base64 (RFC 4648) by hand: cJSON has none and a dozen lines beat linking
 * OpenSSL's BIO chain for it. */
char *mqp_base64_encode(const void *data, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*o++ = tab[(v >> 18) & 63];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* The value of a base64 digit, or -1. */
static int json__b64(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
		: c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
}

int mqp_base64_decode(const char *text, unsigned char **out, size_t *len)
{
	size_t n = strlen(text);
	*out = NULL;
	if (n % 4)
		return MQP_ERR_INPUT;
	unsigned char *buf = malloc(n / 4 * 3 + 1);
	if (!buf)
		return MQP_ERR_NOMEM;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int a = json__b64(text[i]), b = json__b64(text[i + 1]);
		int pad2 = text[i + 2] == '=', pad3 = text[i + 3] == '=';
		int c = pad2 ? 0 : json__b64(text[i + 2]), d = pad3 ? 0 : json__b64(text[i + 3]);
		if (a < 0 || b < 0 || c < 0 || d < 0 || (pad2 && !pad3) || ((pad2 || pad3) && i + 4 != n)) {
			free(buf);
			return MQP_ERR_INPUT;
		}
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		buf[o++] = (unsigned char)(v >> 16);
		if (!pad2)
			buf[o++] = (unsigned char)(v >> 8);
		if (!pad3)
			buf[o++] = (unsigned char)v;
	}
	*out = buf;
	*len = o;
	return MQP_OK;
}
