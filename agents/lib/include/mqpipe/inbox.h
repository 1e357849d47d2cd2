/* The durable inbox: an append-only file of received messages.
 *
 * Why: committing SQLite once per message caps an agent well below what the
 * broker delivers. Appending the raw message with one write(2) before the
 * MQTT acknowledgement is as durable as a WAL synchronous=NORMAL commit (the
 * bytes are in the kernel when the PUBACK leaves), and the applier thread then
 * moves records into SQLite in batched transactions, storing the last applied
 * sequence number in the same transaction. At start the unapplied tail is
 * replayed. With sync_full each append is also fdatasync'ed (survives power
 * loss, slower).
 *
 * Record: "MQIB" | u32 body_len | body | u32 FNV-1a(body), where body is
 * u64 seq | i64 received_us | u16 topic_len | u8 qos | u8 flags | topic |
 * [u16 len | response topic | u16 len | correlation data, when flags bit 0] |
 * [u64 original payload length, when flags bit 1: the payload was cut] | payload.
 * Once every record is applied the writer wraps to offset 0 (overwriting
 * cached pages is far cheaper than growing a file), so the records that count
 * are the run from offset 0 whose seq keeps rising and whose checksums hold.
 * What follows them is a torn record (the process died inside write: never
 * acknowledged, so the broker delivers it again) or records from before the
 * wrap (applied); appends overwrite it. */
#ifndef MQPIPE_INBOX_H
#define MQPIPE_INBOX_H

#include <stddef.h>
#include <stdint.h>

struct mqp_inbox;

struct mqp_inbox_record {
	uint64_t seq;
	int64_t received_us;       /* CLOCK_REALTIME at arrival */
	const char *topic;         /* not NUL-terminated */
	size_t topic_len;
	const void *payload;
	size_t payload_len;
	int qos;
	/* MQTT 5 request/response properties; NULL/0 when the message had none. */
	const char *response_topic; /* not NUL-terminated */
	size_t response_topic_len;
	const void *correlation;
	size_t correlation_len;
	/* >0: the message's payload had this many bytes, over the agent's limit,
	 * and only its start was kept (for the dead letter). */
	uint64_t cut_from;
};

/* What a message being appended carries besides topic and payload: the
 * request/response properties (response_topic NULL when none), and cut_from
 * (>0: the payload passed is the start of one that many bytes long). */
struct mqp_inbox_meta {
	const char *response_topic;
	size_t response_topic_len;
	const void *correlation;   /* may be NULL */
	size_t correlation_len;
	uint64_t cut_from;
};

/* Opens or creates the inbox at path, finding the end of its records. Records with
 * seq <= applied_seq are treated as already applied. Returns 0 and *out, or
 * MQP_ERR_IO / MQP_ERR_NOMEM. */
int mqp_inbox_open(struct mqp_inbox **out, const char *path, uint64_t applied_seq, int sync_full);
void mqp_inbox_close(struct mqp_inbox *inbox);

/* Appends one message with a single write(2) (thread-safe; any thread);
 * meta, when not NULL, adds its response topic and correlation data and its
 * cut_from.
 * Returns 0 once the bytes are in the kernel, MQP_ERR_INVAL when it is too
 * large, or MQP_ERR_IO / MQP_ERR_NOMEM. */
int mqp_inbox_append(struct mqp_inbox *inbox, const char *topic, size_t topic_len,
		     const void *payload, size_t len, int qos, int64_t received_us,
		     const struct mqp_inbox_meta *meta);

/* Waits up to timeout_ms for records not yet handed out. Returns 1 when there
 * are some, 0 on timeout or mqp_inbox_wake. Consumer thread only. */
int mqp_inbox_wait(struct mqp_inbox *inbox, int timeout_ms);

/* Calls fn on each of up to max_records records not yet handed out, in order,
 * without waiting (a record's memory is valid only during the call). fn
 * returns 0 to go on, or a negative error to stop the read, which then returns
 * it. Returns the number of records passed, or a negative error. Consumer
 * thread only. */
int mqp_inbox_read(struct mqp_inbox *inbox, size_t max_records,
		   int (*fn)(void *ctx, const struct mqp_inbox_record *rec), void *ctx);

/* Marks everything handed out by mqp_inbox_read as applied (call after the
 * SQLite commit that stored the last seq). When the consumer has caught up
 * with the writer the next append wraps to offset 0. Returns 0 or MQP_ERR_IO. */
int mqp_inbox_applied(struct mqp_inbox *inbox);

/* Sequence number of the last record handed out by mqp_inbox_read. */
uint64_t mqp_inbox_last_seq(const struct mqp_inbox *inbox);

/* Bytes appended but not yet handed to the consumer (thread-safe). */
uint64_t mqp_inbox_backlog(struct mqp_inbox *inbox);

/* Makes a waiting mqp_inbox_read return at once. */
void mqp_inbox_wake(struct mqp_inbox *inbox);

#endif
