/* Trace lines (README "Traces: record and replay") as pure functions: render a received message
 * as one JSON Lines record, and read a line of any format the replay tool
 * accepts — its own, `mosquitto_sub -F %J` (or %j) output, and the CSV of
 * mqtt-recorder. No MQTT, no files. */
#ifndef MQPIPE_TRACE_H
#define MQPIPE_TRACE_H

#include <stddef.h>
#include <stdint.h>

enum trace_format { TRACE_UNKNOWN, TRACE_MQPIPE, TRACE_MOSQUITTO_SUB, TRACE_MQTT_RECORDER };

/* One message of a trace. Strings are owned (trace_msg_free). */
struct trace_msg {
	double t;               /* seconds since the trace's first message */
	char *topic;
	unsigned char *payload;
	size_t len;
	int qos, retain;
	/* MQTT 5 properties, NULL/0 when absent. */
	char *response_topic;
	unsigned char *correlation;
	size_t correlation_len;
	char *content_type;
	int user_count;
	char *user_keys[16], *user_values[16];
};

void trace_msg_free(struct trace_msg *m);

/* Renders m as {"t","topic","qos","retain","payload"|"payload_b64",
 * "properties"?} (payload as text when it is UTF-8 without NUL, else
 * base64), without a newline. Returns a new string or NULL. */
char *trace_render(const struct trace_msg *m);

/* Which format a line is in: a JSON object with "t" (ours) or "tst"
 * (mosquitto_sub), else CSV (mqtt-recorder; its header line too). */
enum trace_format trace_detect(const char *line);

/* Reads one line of format f into *m. first_time is the absolute time of the
 * trace's first timed message (mosquitto_sub and mqtt-recorder give clock
 * times): pass a pointer to a double that starts negative. Returns 0, 1 for a
 * line to skip silently (blank, a CSV header), or -1 with a reason in err. */
int trace_parse(enum trace_format f, const char *line, double *first_time, struct trace_msg *m,
		char *err, size_t errlen);

#endif
