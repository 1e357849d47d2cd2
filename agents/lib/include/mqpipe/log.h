/* One line per event on stderr, as key=value pairs or as a JSON object.
 *
 * Lines are built in a buffer and written with a single write(2), so lines from
 * several threads never interleave. Under systemd (JOURNAL_STREAM set) each line
 * starts with the sd-daemon "<N>" priority prefix. */
#ifndef MQPIPE_LOG_H
#define MQPIPE_LOG_H

#include <stddef.h>

enum mqp_log_level { MQP_LOG_ERROR = 0, MQP_LOG_WARN, MQP_LOG_INFO, MQP_LOG_DEBUG };
enum mqp_log_format { MQP_LOG_KV = 0, MQP_LOG_JSON };

/* Sets the threshold, the format and the agent name stamped on each line.
 * Not thread-safe: call once before starting threads. */
void mqp_log_init(enum mqp_log_level level, enum mqp_log_format format, const char *agent);

/* Parses "error", "warn", "info", "debug". Returns 0, or MQP_ERR_INVAL. */
int mqp_log_level_parse(const char *text, enum mqp_log_level *out);

/* Logs one event. fmt (printf-style) yields the rest of the line as
 * `key=value key="quoted value"` pairs; in JSON format those pairs become fields. */
void mqp_log(enum mqp_log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Formats text as a log value: as it is when it is a plain token, else in
 * double quotes with \" and \\ escaped and control bytes as \xNN. Returns buf. */
const char *mqp_log_quote(char *buf, size_t size, const char *text);

#define mqp_error(ev, ...) mqp_log(MQP_LOG_ERROR, ev, __VA_ARGS__)
#define mqp_warn(ev, ...) mqp_log(MQP_LOG_WARN, ev, __VA_ARGS__)
#define mqp_info(ev, ...) mqp_log(MQP_LOG_INFO, ev, __VA_ARGS__)
#define mqp_debug(ev, ...) mqp_log(MQP_LOG_DEBUG, ev, __VA_ARGS__)

#endif
