/* The durable inbox: see mqpipe/inbox.h for the why and the record format. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/inbox.h"
#include "mqpipe/log.h"

#define INBOX__MAGIC 0x4249514DU   /* "MQIB" little-endian */
#define INBOX__HEAD 8              /* magic + body length */
#define INBOX__BODY_FIXED 20       /* seq + received_us + topic_len + qos + flags */
#define INBOX__FLAG_REPLY_TO 1     /* a response topic and correlation data follow the topic */
#define INBOX__FLAG_CUT 2          /* then the payload's original length (u64): it was cut */
#define INBOX__TAIL 4              /* checksum */
#define INBOX__CHUNK (256 * 1024)  /* bytes the consumer reads at a time */
#define INBOX__SHRINK_ABOVE (64U * 1024 * 1024) /* truncate a wrapped file past this */
#define INBOX__MAX_BODY (300U * 1024 * 1024) /* over MQTT's 256 MB payload limit */

struct mqp_inbox {
	int fd;
	int sync_full;
	char path[1024];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Guarded by lock. */
	uint64_t write_end;   /* bytes in the file */
	uint64_t next_seq;
	int wake;
	unsigned char *wbuf;
	size_t wcap;
	uint64_t read_pos;    /* offset of the next record to hand out; consumer writes it */
	/* Consumer thread only. */
	uint64_t applied_seq; /* records up to here are in SQLite */
	uint64_t last_seq;    /* last record handed out */
	unsigned char *rbuf;
	size_t rcap;
};

/* FNV-1a: a cheap check that a record is whole and ours, not a cryptographic one. */
static uint32_t inbox__fnv1a(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261U;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619U;
	}
	return h;
}

static void inbox__put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void inbox__put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t inbox__get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t inbox__get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Grows *buf to at least need bytes. Returns 0 or MQP_ERR_NOMEM. */
static int inbox__reserve(unsigned char **buf, size_t *cap, size_t need)
{
	if (*cap >= need)
		return MQP_OK;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	unsigned char *p = realloc(*buf, n);
	if (!p)
		return MQP_ERR_NOMEM;
	*buf = p;
	*cap = n;
	return MQP_OK;
}

/* Decodes the record at p[0..avail). Returns its total size, 0 when more bytes
 * are needed (*need says how many in all), or -1 when the bytes are not a record. */
static long inbox__decode(const unsigned char *p, size_t avail, struct mqp_inbox_record *rec,
			  size_t *need)
{
	if (avail < INBOX__HEAD) {
		*need = INBOX__HEAD;
		return 0;
	}
	uint32_t body = inbox__get32(p + 4);
	if (inbox__get32(p) != INBOX__MAGIC || body < INBOX__BODY_FIXED || body > INBOX__MAX_BODY)
		return -1;
	size_t total = INBOX__HEAD + (size_t)body + INBOX__TAIL;
	if (avail < total) {
		*need = total;
		return 0;
	}
	const unsigned char *b = p + INBOX__HEAD;
	if (inbox__fnv1a(b, body) != inbox__get32(b + body))
		return -1;
	uint16_t tlen;
	memcpy(&tlen, b + 16, 2);
	if ((size_t)tlen + INBOX__BODY_FIXED > body)
		return -1;
	rec->seq = inbox__get64(b);
	rec->received_us = (int64_t)inbox__get64(b + 8);
	rec->qos = b[18];
	rec->topic = (const char *)b + INBOX__BODY_FIXED;
	rec->topic_len = tlen;
	size_t at = INBOX__BODY_FIXED + tlen; /* what follows the topic */
	rec->response_topic = NULL;
	rec->correlation = NULL;
	rec->response_topic_len = rec->correlation_len = 0;
	if (b[19] & INBOX__FLAG_REPLY_TO) {
		uint16_t n;
		if (at + 2 > body)
			return -1;
		memcpy(&n, b + at, 2);
		if (at + 2 + n + 2 > body)
			return -1;
		rec->response_topic = (const char *)b + at + 2;
		rec->response_topic_len = n;
		at += 2 + (size_t)n;
		memcpy(&n, b + at, 2);
		if (at + 2 + n > body)
			return -1;
		rec->correlation = n ? b + at + 2 : NULL;
		rec->correlation_len = n;
		at += 2 + (size_t)n;
	}
	rec->cut_from = 0;
	if (b[19] & INBOX__FLAG_CUT) {
		if (at + 8 > body)
			return -1;
		rec->cut_from = inbox__get64(b + at);
		at += 8;
	}
	rec->payload = b + at;
	rec->payload_len = body - at;
	return (long)total;
}

/* Reads bytes [off, off+len) of the file into the consumer buffer. */
static int inbox__pread(struct mqp_inbox *inbox, uint64_t off, size_t len)
{
	if (inbox__reserve(&inbox->rbuf, &inbox->rcap, len))
		return MQP_ERR_NOMEM;
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(inbox->fd, inbox->rbuf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return MQP_ERR_IO;
		done += (size_t)n;
	}
	return MQP_OK;
}

/* Walks the whole file at open: finds the last good record, the highest seq,
 * and the first record not yet applied; cuts off a torn tail. */
static int inbox__scan(struct mqp_inbox *inbox, uint64_t size)
{
	uint64_t off = 0, first_unapplied = UINT64_MAX, max_seq = 0;
	int rc;
	while (off < size) {
		size_t want = size - off < INBOX__CHUNK ? (size_t)(size - off) : INBOX__CHUNK;
		if ((rc = inbox__pread(inbox, off, want)))
			return rc;
		size_t pos = 0;
		for (;;) {
			struct mqp_inbox_record rec;
			size_t need = 0;
			long n = inbox__decode(inbox->rbuf + pos, want - pos, &rec, &need);
			if (n > 0 && rec.seq <= max_seq)
				n = -1; /* an older record: what lies here was written before a wrap */
			if (n > 0) {
				max_seq = rec.seq;
				if (rec.seq > inbox->applied_seq && first_unapplied == UINT64_MAX)
					first_unapplied = off + pos;
				pos += (size_t)n;
				continue;
			}
			if (n < 0) {
				off += pos; /* keep the whole records before the bad bytes */
				goto torn;
			}
			if (pos > 0)
				break; /* read on from the record that did not fit */
			if (off + need > size)
				goto torn; /* the process died inside write() */
			if ((rc = inbox__pread(inbox, off, need))) /* a record larger than a chunk */
				return rc;
			want = need;
		}
		off += pos;
	}
torn:
	/* Bytes past `off` are a record cut short by a crash (never acknowledged,
	 * so the broker sends it again) or records from before a wrap (applied):
	 * the next append overwrites them. */
	inbox->write_end = off;
	inbox->next_seq = (max_seq > inbox->applied_seq ? max_seq : inbox->applied_seq) + 1;
	inbox->read_pos = first_unapplied == UINT64_MAX ? off : first_unapplied;
	if (inbox->read_pos == off) /* everything applied: wrap */
		inbox->write_end = inbox->read_pos = 0;
	return MQP_OK;
}

int mqp_inbox_open(struct mqp_inbox **out, const char *path, uint64_t applied_seq, int sync_full)
{
	*out = NULL;
	struct mqp_inbox *inbox = calloc(1, sizeof(*inbox));
	if (!inbox)
		return MQP_ERR_NOMEM;
	snprintf(inbox->path, sizeof(inbox->path), "%s", path);
	inbox->sync_full = sync_full;
	inbox->applied_seq = applied_seq;
	inbox->last_seq = applied_seq;
	pthread_mutex_init(&inbox->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&inbox->cond, &ca);
	pthread_condattr_destroy(&ca);
	inbox->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	struct stat st;
	int rc = MQP_ERR_IO;
	if (inbox->fd >= 0 && fstat(inbox->fd, &st) == 0)
		rc = inbox__scan(inbox, (uint64_t)st.st_size);
	if (rc) {
		mqp_error("inbox_open_failed", "path=%s msg=\"%s\"", path,
			  rc == MQP_ERR_IO ? strerror(errno) : mqp_strerror(rc));
		mqp_inbox_close(inbox);
		return rc;
	}
	*out = inbox;
	return MQP_OK;
}

void mqp_inbox_close(struct mqp_inbox *inbox)
{
	if (!inbox)
		return;
	if (inbox->fd >= 0)
		close(inbox->fd);
	pthread_mutex_destroy(&inbox->lock);
	pthread_cond_destroy(&inbox->cond);
	free(inbox->wbuf);
	free(inbox->rbuf);
	free(inbox);
}

int mqp_inbox_append(struct mqp_inbox *inbox, const char *topic, size_t tlen,
		     const void *payload, size_t len, int qos, int64_t received_us,
		     const struct mqp_inbox_meta *meta)
{
	const struct mqp_inbox_meta *reply_to = meta && meta->response_topic ? meta : NULL;
	int cut = meta && meta->cut_from > 0;
	size_t props = (reply_to ? 4 + reply_to->response_topic_len + reply_to->correlation_len : 0) +
		       (cut ? 8 : 0);
	if (tlen > UINT16_MAX || (reply_to && (reply_to->response_topic_len > UINT16_MAX ||
					       reply_to->correlation_len > UINT16_MAX)) ||
	    len > INBOX__MAX_BODY - INBOX__BODY_FIXED - tlen - props)
		return MQP_ERR_INVAL;
	uint32_t body = (uint32_t)(INBOX__BODY_FIXED + tlen + props + len);
	size_t total = INBOX__HEAD + body + INBOX__TAIL;
	int rc = MQP_OK;
	pthread_mutex_lock(&inbox->lock);
	if (inbox__reserve(&inbox->wbuf, &inbox->wcap, total)) {
		pthread_mutex_unlock(&inbox->lock);
		return MQP_ERR_NOMEM;
	}
	unsigned char *p = inbox->wbuf, *b = p + INBOX__HEAD;
	uint16_t t16 = (uint16_t)tlen;
	inbox__put32(p, INBOX__MAGIC);
	inbox__put32(p + 4, body);
	inbox__put64(b, inbox->next_seq);
	inbox__put64(b + 8, (uint64_t)received_us);
	memcpy(b + 16, &t16, 2);
	b[18] = (unsigned char)qos;
	b[19] = (unsigned char)((reply_to ? INBOX__FLAG_REPLY_TO : 0) | (cut ? INBOX__FLAG_CUT : 0));
	memcpy(b + INBOX__BODY_FIXED, topic, tlen);
	unsigned char *at = b + INBOX__BODY_FIXED + tlen;
	if (reply_to) {
		uint16_t n = (uint16_t)reply_to->response_topic_len;
		memcpy(at, &n, 2);
		memcpy(at + 2, reply_to->response_topic, n);
		at += 2 + n;
		n = (uint16_t)reply_to->correlation_len;
		memcpy(at, &n, 2);
		if (n)
			memcpy(at + 2, reply_to->correlation, n);
		at += 2 + n;
	}
	if (cut) {
		inbox__put64(at, meta->cut_from);
		at += 8;
	}
	if (len)
		memcpy(at, payload, len);
	inbox__put32(b + body, inbox__fnv1a(b, body));

	size_t done = 0;
	while (done < total) { /* a short write only happens on ENOSPC or a signal */
		ssize_t n = pwrite(inbox->fd, p + done, total - done, (off_t)(inbox->write_end + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = MQP_ERR_IO;
			break;
		}
		done += (size_t)n;
	}
	if (!rc && inbox->sync_full && fdatasync(inbox->fd))
		rc = MQP_ERR_IO;
	if (!rc) {
		inbox->write_end += total;
		inbox->next_seq++;
		pthread_cond_signal(&inbox->cond);
	}
	pthread_mutex_unlock(&inbox->lock);
	return rc;
}

int mqp_inbox_wait(struct mqp_inbox *inbox, int timeout_ms)
{
	pthread_mutex_lock(&inbox->lock);
	if (inbox->read_pos >= inbox->write_end && !inbox->wake && timeout_ms > 0) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (inbox->read_pos >= inbox->write_end && !inbox->wake &&
		       pthread_cond_timedwait(&inbox->cond, &inbox->lock, &until) == 0)
			;
	}
	inbox->wake = 0;
	int ready = inbox->read_pos < inbox->write_end;
	pthread_mutex_unlock(&inbox->lock);
	return ready;
}

int mqp_inbox_read(struct mqp_inbox *inbox, size_t max_records,
		   int (*fn)(void *ctx, const struct mqp_inbox_record *rec), void *ctx)
{
	pthread_mutex_lock(&inbox->lock);
	uint64_t end = inbox->write_end;
	pthread_mutex_unlock(&inbox->lock);

	int passed = 0;
	while (inbox->read_pos < end && (size_t)passed < max_records) {
		uint64_t avail = end - inbox->read_pos;
		size_t want = avail < INBOX__CHUNK ? (size_t)avail : INBOX__CHUNK;
		int rc = inbox__pread(inbox, inbox->read_pos, want);
		if (rc)
			return rc;
		size_t pos = 0;
		while (pos < want && (size_t)passed < max_records) {
			struct mqp_inbox_record rec;
			size_t need = 0;
			long n = inbox__decode(inbox->rbuf + pos, want - pos, &rec, &need);
			if (n < 0) {
				mqp_error("inbox_corrupt", "path=%s offset=%llu", inbox->path,
					  (unsigned long long)(inbox->read_pos + pos));
				return MQP_ERR_CORRUPT;
			}
			if (n == 0) {
				if (pos > 0)
					break; /* the rest comes with the next read */
				if (need > avail)
					return MQP_ERR_CORRUPT; /* cannot happen: writes are whole */
				if ((rc = inbox__pread(inbox, inbox->read_pos, need)))
					return rc;
				want = need;
				continue;
			}
			pos += (size_t)n;
			if (rec.seq <= inbox->applied_seq)
				continue; /* applied before a restart */
			inbox->last_seq = rec.seq;
			if ((rc = fn(ctx, &rec)) < 0)
				return rc;
			passed++;
		}
		pthread_mutex_lock(&inbox->lock);
		inbox->read_pos += pos;
		pthread_mutex_unlock(&inbox->lock);
	}
	return passed;
}

int mqp_inbox_applied(struct mqp_inbox *inbox)
{
	int rc = MQP_OK;
	inbox->applied_seq = inbox->last_seq;
	pthread_mutex_lock(&inbox->lock);
	if (inbox->read_pos == inbox->write_end && inbox->write_end > 0) {
		/* Caught up: everything in the file is in SQLite, so the next record
		 * goes to offset 0 again. Overwriting cached pages is much cheaper
		 * for the receive thread than growing the file; a file that grew
		 * large during a long backlog is given back. */
		if (inbox->write_end > INBOX__SHRINK_ABOVE && ftruncate(inbox->fd, 0))
			rc = MQP_ERR_IO;
		inbox->write_end = inbox->read_pos = 0;
	}
	pthread_mutex_unlock(&inbox->lock);
	return rc;
}

uint64_t mqp_inbox_last_seq(const struct mqp_inbox *inbox)
{
	return inbox->last_seq;
}

uint64_t mqp_inbox_backlog(struct mqp_inbox *inbox)
{
	pthread_mutex_lock(&inbox->lock);
	uint64_t n = inbox->write_end - inbox->read_pos;
	pthread_mutex_unlock(&inbox->lock);
	return n;
}

void mqp_inbox_wake(struct mqp_inbox *inbox)
{
	pthread_mutex_lock(&inbox->lock);
	inbox->wake = 1;
	pthread_cond_signal(&inbox->cond);
	pthread_mutex_unlock(&inbox->lock);
}
