/* Base64: see mqpipe/base64.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqpipe/base64.h"
#include "mqpipe/error.h"

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
static int base64__digit(int c)
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
		int a = base64__digit(text[i]), b = base64__digit(text[i + 1]);
		int pad2 = text[i + 2] == '=', pad3 = text[i + 3] == '=';
		int c = pad2 ? 0 : base64__digit(text[i + 2]), d = pad3 ? 0 : base64__digit(text[i + 3]);
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
