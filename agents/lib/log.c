/* Logging: see mqpipe/log.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* Formats the one printf conversion at *f (just past its '%') with its
 * argument from *ap, appending it to out[*n..size); *f moves past it. The
 * conversions are those the format attribute of mqp_log lets through; %n is
 * refused (prints nothing). The spec is rebuilt from the format, so the
 * literal-format warning does not apply. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void log__convert(char *out, size_t size, size_t *n, const char **f, va_list *ap)
{
	char spec[48] = "%";
	size_t k = 1;
	const char *p = *f;
	while (*p && strchr("-+ #0", *p) && k < 8)
		spec[k++] = *p++;
	for (int part = 0; part < 2; part++) { /* the width, then the precision */
		if (part == 1) {
			if (*p != '.')
				break;
			spec[k++] = *p++;
		}
		if (*p == '*') {
			k += (size_t)snprintf(spec + k, sizeof(spec) - k, "%d", va_arg(*ap, int));
			p++;
		} else {
			while (*p >= '0' && *p <= '9' && k < 32)
				spec[k++] = *p++;
		}
	}
	const char *len = p;
	while (*p && strchr("hlzjtL", *p) && p - len < 2)
		spec[k++] = *p++;
	size_t nlen = (size_t)(p - len);
	char conv = *p ? *p++ : '\0';
	spec[k++] = conv;
	spec[k] = '\0';
	*f = p;

	char *at = out + *n;
	size_t room = size - *n;
	int w = 0;
	int ll = nlen == 2 && len[0] == 'l', l = nlen == 1 && len[0] == 'l';
	char one = nlen == 1 ? len[0] : '\0';
	switch (conv) {
	case 'd': case 'i':
		w = ll ? snprintf(at, room, spec, va_arg(*ap, long long))
		    : l ? snprintf(at, room, spec, va_arg(*ap, long))
		    : one == 'z' ? snprintf(at, room, spec, va_arg(*ap, ssize_t))
		    : one == 'j' ? snprintf(at, room, spec, va_arg(*ap, intmax_t))
		    : one == 't' ? snprintf(at, room, spec, va_arg(*ap, ptrdiff_t))
				 : snprintf(at, room, spec, va_arg(*ap, int));
		break;
	case 'u': case 'o': case 'x': case 'X':
		w = ll ? snprintf(at, room, spec, va_arg(*ap, unsigned long long))
		    : l ? snprintf(at, room, spec, va_arg(*ap, unsigned long))
		    : one == 'z' ? snprintf(at, room, spec, va_arg(*ap, size_t))
		    : one == 'j' ? snprintf(at, room, spec, va_arg(*ap, uintmax_t))
		    : one == 't' ? snprintf(at, room, spec, va_arg(*ap, ptrdiff_t))
				 : snprintf(at, room, spec, va_arg(*ap, unsigned));
		break;
	case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': case 'a': case 'A':
		w = one == 'L' ? snprintf(at, room, spec, va_arg(*ap, long double))
			       : snprintf(at, room, spec, va_arg(*ap, double));
		break;
	case 'c':
		w = snprintf(at, room, spec, va_arg(*ap, int));
		break;
	case 's':
		w = snprintf(at, room, spec, va_arg(*ap, const char *));
		break;
	case 'p':
		w = snprintf(at, room, spec, va_arg(*ap, void *));
		break;
	case 'n':
		(void)va_arg(*ap, void *);
		break;
	default: /* "%%", or a stray '%' at the end */
		w = snprintf(at, room, "%s", conv == '%' ? "%" : "");
		break;
	}
	if (w > 0)
		*n = *n + (size_t)w < size - 1 ? *n + (size_t)w : size - 1;
}
#pragma GCC diagnostic pop

/* Formats fmt from *f up to (not including) the first of stop outside a
 * conversion, or its end, appending to out[*n..size) with the conversions'
 * arguments from *ap; *f moves there. With quoted set, a backslash keeps the
 * character after it (a \" inside a quoted value). */
static void log__render(char *out, size_t size, size_t *n, const char **f, va_list *ap,
			const char *stop, int quoted)
{
	const char *p = *f;
	while (*p && !strchr(stop, *p)) {
		if (*p == '%') {
			p++;
			log__convert(out, size, n, &p, ap);
			continue;
		}
		int two = quoted && *p == '\\' && p[1];
		for (int i = 0; i <= two; i++, p++)
			if (*n < size - 1)
				out[(*n)++] = *p;
	}
	out[*n] = '\0';
	*f = p;
}

/* Appends the `k=v k2="v 2"` pairs of fmt as `,"k":"v","k2":"v 2"`, each
 * value formatted from its own conversions (*ap), so no value is parsed back
 * out of the formatted line. A value mqp_log_quote wrapped in double quotes
 * (or a JSON string, as a case id is) is the text inside them, its escapes
 * as they are. Text that is not a pair is kept, formatted, under "msg". */
static void log__json_fields(char *buf, size_t size, size_t *pos, const char *fmt, va_list *ap)
{
	char text[1536];
	const char *f = fmt;
	for (;;) {
		while (*f == ' ')
			f++;
		if (!*f)
			return;
		size_t n = 0;
		log__render(text, sizeof(text), &n, &f, ap, "= ", 0);
		if (*f != '=') { /* not a pair: keep the rest as text */
			log__render(text, sizeof(text), &n, &f, ap, "", 0);
			const char *t = text + strspn(text, " ");
			if (!*t) /* a conversion that printed nothing */
				return;
			log__append(buf, size, pos, ",\"msg\":\"");
			log__json_escape(buf, size, pos, t, strlen(t));
			log__append(buf, size, pos, "\"");
			return;
		}
		log__append(buf, size, pos, ",\"");
		log__json_escape(buf, size, pos, text, n);
		log__append(buf, size, pos, "\":\"");
		f++;
		n = 0;
		const char *v = text;
		if (*f == '"') { /* quoted in the format: the whole value */
			f++;
			log__render(text, sizeof(text), &n, &f, ap, "\"", 1);
			if (*f)
				f++;
		} else {
			log__render(text, sizeof(text), &n, &f, ap, " ", 0);
			if (*text == '"') { /* quoted by the caller: what is inside */
				const char *end = ++v;
				while (*end && !(*end == '"' && end[-1] != '\\'))
					end++;
				n = (size_t)(end - v);
			}
		}
		log__json_escape(buf, size, pos, v, n);
		log__append(buf, size, pos, "\"");
	}
}

void mqp_log(enum mqp_log_level level, const char *event, const char *fmt, ...)
{
	if (level > log__level)
		return;
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
		va_list ap;
		va_start(ap, fmt);
		log__json_fields(line, sizeof(line), &pos, fmt, &ap);
		va_end(ap);
		log__append(line, sizeof(line), &pos, "}\n");
	} else {
		char kv[1536];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(kv, sizeof(kv), fmt, ap);
		va_end(ap);
		log__append(line, sizeof(line), &pos,
					"ts=%s level=%s agent=%s event=%s%s%s\n", ts, log__names[level],
					log__agent, event, kv[0] ? " " : "", kv);
	}
	if (pos == sizeof(line) - 1) /* truncated: keep the line ending */
		line[pos - 1] = '\n';
	ssize_t unused = write(STDERR_FILENO, line, pos);
	(void)unused; /* nowhere left to report a failed write to stderr */
}
