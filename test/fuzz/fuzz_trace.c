/* libFuzzer target: the trace line reader in all three formats (mqpipe
 * JSON Lines, mosquitto_sub -F %J, mqtt-recorder CSV), and rendering back
 * whatever was read. The input is one line: it is cut at the first newline
 * and NUL-terminated, as getline would hand it over. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agents/tools/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	enum trace_format formats[] = {trace_detect(line), TRACE_MQPIPE, TRACE_MOSQUITTO_SUB,
				       TRACE_MQTT_RECORDER};
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (formats[i] == TRACE_UNKNOWN)
			continue;
		struct trace_msg m;
		double first = -1;
		char err[300];
		if (trace_parse(formats[i], line, &first, &m, err, sizeof(err)) == 0) {
			free(trace_render(&m));
			trace_msg_free(&m);
		}
	}
	free(line);
	return 0;
}
