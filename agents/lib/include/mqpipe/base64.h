/* Standard base64 (RFC 4648, with padding), for payloads that are not UTF-8
 * text: dead letters and traces carry them so. */
#ifndef MQPIPE_BASE64_H
#define MQPIPE_BASE64_H

#include <stddef.h>

/* Encodes data[0..n). Returns a new NUL-terminated string (the caller
 * free()s it), or NULL when out of memory. */
char *mqp_base64_encode(const void *data, size_t n);

/* Decodes text. Returns 0 with *out (the caller free()s it) and *len;
 * MQP_ERR_INPUT for text that is not base64, or MQP_ERR_NOMEM; *out is NULL
 * on error. */
int mqp_base64_decode(const char *text, unsigned char **out, size_t *len);

#endif
