/* UTF-8 validation (RFC 3629), below the JSON layer: json.c checks payloads
 * and string fields with it, the runtime and the tools pick a payload's
 * representation by it. */
#ifndef MQPIPE_UTF8_H
#define MQPIPE_UTF8_H

#include <stddef.h>

/* Whether buf[0..len) is well-formed UTF-8 (no overlongs, surrogates, or code
 * points past U+10FFFF): 1 if it is, 0 if not. */
int mqp_utf8_valid(const void *buf, size_t len);

#endif
