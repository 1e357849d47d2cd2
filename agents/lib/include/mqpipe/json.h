/* Decoding and validating JSON payloads with cJSON.
 *
 * Every function that can refuse input fills a struct mqp_reason with one
 * sentence naming the field and the rule it broke; that sentence becomes the
 * dead letter's "reason". */
#ifndef MQPIPE_JSON_H
#define MQPIPE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define MQP_UINT_MAX_EXACT 9007199254740991ULL /* 2^53 - 1, exact in a double */
#define MQP_STR_MAX 256                        /* default bound on string fields */

struct mqp_reason {
	char text[256];
};

/* Formats a reason (printf-style). Always returns MQP_ERR_INPUT, so a
 * validator can `return mqp_reason_set(why, ...)`. */
int mqp_reason_set(struct mqp_reason *why, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The checks RFC 8259 makes and cJSON does not, on the raw text: no byte
 * below 0x20 inside a string, none but tab, LF and CR between tokens, and no
 * \u0000 anywhere (cJSON would cut the string there). Returns 0, or
 * MQP_ERR_INPUT with a reason naming the field ("field 'requests[2].caseId'
 * holds a raw control character (byte 0x00) at byte 41"). */
int mqp_json_check_text(const void *buf, size_t len, struct mqp_reason *why);

/* Checks that buf is UTF-8 and strict JSON text (mqp_json_check_text) and
 * parses it as one JSON value with nothing but white space after it. On
 * success returns 0 and *out owns the tree (free with cJSON_Delete). On
 * failure returns MQP_ERR_INPUT with a reason, or MQP_ERR_NOMEM. */
int mqp_json_parse(const void *buf, size_t len, cJSON **out, struct mqp_reason *why);

/* mqp_json_parse, and the value must be an object. */
int mqp_json_parse_object(const void *buf, size_t len, cJSON **out, struct mqp_reason *why);

/* Reads the string member `name` of obj: present, a string, 1..max_bytes bytes
 * and without NUL. *out points into obj (valid while obj lives). Returns 0 or
 * MQP_ERR_INPUT. */
int mqp_json_string(const cJSON *obj, const char *name, size_t max_bytes, const char **out,
		    struct mqp_reason *why);

/* Like mqp_json_string but for a field spelled either way (e.g. moduleId and
 * moduleid): exactly one spelling, or both with the same value, must be there. */
int mqp_json_string_alias(const cJSON *obj, const char *name, const char *alias, size_t max_bytes,
			  const char **out, struct mqp_reason *why);

/* Reads the number member `name` of obj as a whole number in [0, max]; max may
 * be at most MQP_UINT_MAX_EXACT. Larger or fractional values are rejected, never
 * rounded. Returns 0 or MQP_ERR_INPUT. */
int mqp_json_uint(const cJSON *obj, const char *name, uint64_t max, uint64_t *out,
		  struct mqp_reason *why);

/* Adds an integer member that prints exactly, as a cJSON raw item (read it
 * back by printing, not through valuedouble). Returns the new item, or NULL
 * when out of memory. */
cJSON *mqp_json_add_uint(cJSON *obj, const char *name, uint64_t value);

#endif
