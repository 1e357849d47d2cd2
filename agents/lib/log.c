/* Logging: see mqpipe/log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/log.h"

static enum mqp_log_level log__level = MQP_LOG_INFO;
static enum mqp_log_format log__format = MQP_LOG_KV;
static const char *log__agent = "mqpipe";
static int log__journal;

static const char *const log__names[] = {"error", "warn", "info", "debug"};
static const int log__priorities[] = {3, 4, 6, 7}; /* sd-daemon.h LOG_ERR..LOG_DEBUG */

void mqp_log_init(enum mqp_log_level level, enum mqp_log_format format, const char *agent)
{
	log__level = level;
	log__format = format;
	log__agent = agent;
	/* systemd sets JOURNAL_STREAM when stderr goes to the journal. */
	log__journal = getenv("JOURNAL_STREAM") != NULL;
}

int mqp_log_level_parse(const char *text, enum mqp_log_level *out)
{
	for (size_t i = 0; i < sizeof(log__names) / sizeof(log__names[0]); i++) {
		if (strcmp(text, log__names[i]) == 0) {
			*out = (enum mqp_log_level)i;
			return MQP_OK;
		}
	}
	return MQP_ERR_INVAL;
}

const char *mqp_log_quote(char *buf, size_t size, const char *text)
{
	size_t pos = 0;
	int plain = *text != '\0';
	for (const char *p = text; *p && plain; p++)
		plain = (unsigned char)*p > ' ' && *p != '"' && *p != '\\' && *p != '=';
	if (plain) {
		snprintf(buf, size, "%s", text);
		return buf;
	}
	buf[pos++] = '"';
	for (const unsigned char *p = (const unsigned char *)text; *p && pos + 6 < size; p++) {
		if (*p == '"' || *p == '\\') {
			buf[pos++] = '\\';
			buf[pos++] = (char)*p;
		} else if (*p < 0x20) {
			pos += (size_t)snprintf(buf + pos, size - pos, "\\x%02x", *p);
		} else {
			buf[pos++] = (char)*p;
		}
	}
	buf[pos++] = '"';
	buf[pos] = '\0';
	return buf;
}

/* snprintf at buf+*pos that never moves *pos past the last byte. */
static void log__append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void log__append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
	if (*pos >= size - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *pos, size - *pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos = (*pos + (size_t)n < size - 1) ? *pos + (size_t)n : size - 1;
}

/* Appends text to buf at *pos as the inside of a JSON string. */
static void log__json_escape(char *buf, size_t size, size_t *pos, const char *text, size_t len)
{
	for (size_t i = 0; i < len && *pos + 7 < size; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '"' || c == '\\') {
			buf[(*pos)++] = '\\';
			buf[(*pos)++] = (char)c;
		} else if (c < 0x20) {
			log__append(buf, size, pos, "\\u%04x", c);
		} else {
			buf[(*pos)++] = (char)c;
		}
	}
}

/* Rewrites `k=v k2="v 2"` pairs as `,"k":"v","k2":"v 2"`. A quoted value may
 * hold \" escapes; anything that is not a pair is kept under "msg". */
static void log__kv_to_json(char *buf, size_t size, size_t *pos, const char *kv)
{
	const char *p = kv;
	while (*p) {
		while (*p == ' ')
			p++;
		const char *eq = strchr(p, '=');
		const char *sp = strchr(p, ' ');
		if (!*p)
			break;
		if (!eq || (sp && sp < eq)) { /* not a pair: keep the rest as text */
			log__append(buf, size, pos, ",\"msg\":\"");
			log__json_escape(buf, size, pos, p, strlen(p));
			log__append(buf, size, pos, "\"");
			return;
		}
		log__append(buf, size, pos, ",\"");
		log__json_escape(buf, size, pos, p, (size_t)(eq - p));
		log__append(buf, size, pos, "\":\"");
		const char *v = eq + 1;
		if (*v == '"') {
			v++;
			const char *start = v;
			while (*v && !(*v == '"' && v[-1] != '\\'))
				v++;
			log__json_escape(buf, size, pos, start, (size_t)(v - start));
			if (*v)
				v++;
		} else {
			const char *start = v;
			while (*v && *v != ' ')
				v++;
			log__json_escape(buf, size, pos, start, (size_t)(v - start));
		}
		log__append(buf, size, pos, "\"");
		p = v;
	}
}

void mqp_log(enum mqp_log_level level, const char *event, const char *fmt, ...)
{
	if (level > log__level)
		return;
	char kv[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(kv, sizeof(kv), fmt, ap);
	va_end(ap);

	char ts[96]; /* wide enough for any int the compiler can imagine */
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (long)((now.tv_nsec / 1000000L) % 1000));

	char line[2048];
	size_t pos = 0;
	if (log__journal)
		log__append(line, sizeof(line), &pos, "<%d>", log__priorities[level]);
	if (log__format == MQP_LOG_JSON) {
		log__append(line, sizeof(line), &pos,
					"{\"ts\":\"%s\",\"level\":\"%s\",\"agent\":\"%s\",\"event\":\"%s\"",
					ts, log__names[level], log__agent, event);
		log__kv_to_json(line, sizeof(line), &pos, kv);
		log__append(line, sizeof(line), &pos, "}\n");
	} else {
		log__append(line, sizeof(line), &pos,
					"ts=%s level=%s agent=%s event=%s%s%s\n", ts, log__names[level],
					log__agent, event, kv[0] ? " " : "", kv);
	}
	if (pos == sizeof(line) - 1) /* truncated: keep the line ending */
		line[pos - 1] = '\n';
	ssize_t unused = write(STDERR_FILENO, line, pos);
	(void)unused; /* nowhere left to report a failed write to stderr */
}
