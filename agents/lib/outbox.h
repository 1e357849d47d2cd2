/* The outbox (internal): outputs staged in the applier's open transaction,
 * published once it commits, and the broker's answers about them.
 *
 * Every output is a row of the store's outbox table from the transaction that
 * caused it until the broker acknowledged it and the republish window has
 * passed (README "Delivery guarantees"). The applier thread stages, flushes,
 * notes and retries; the session's threads report outcomes with
 * outbox__acked/failed/refused, which only queue them under a lock. Sends go
 * through the session seam (session_ops.h). */
#ifndef MQPIPE_LIB_OUTBOX_H
#define MQPIPE_LIB_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "deadletter.h"
#include "mqpipe/metrics.h"
#include "mqpipe/store.h"
#include "session_ops.h"

struct outbox;

/* Creates the outbox over an open store (counting the rows left by the last
 * run). republish_window_s: --republish-window. Returns 0 or MQP_ERR_NOMEM. */
int outbox__new(struct outbox **out, struct mqp_store *store, struct mqp_metrics *metrics,
		struct deadletters *deadletters, const struct session_ops *session,
		int republish_window_s);

/* Frees the outbox and what it holds; the store keeps the rows. NULL is fine. */
void outbox__free(struct outbox *ob);

/* One output for outbox__stage. topic is the full topic published on (with
 * the --prefix, or a reply's response topic as it came); label, when not
 * NULL, names it in the metrics (a reply's fallback topic), else topic from
 * offset rel (the topic without the prefix). correlation may be NULL. */
struct outbox_output {
	const char *topic;
	size_t rel;
	const char *label;
	const void *correlation;
	size_t correlation_len;
};

/* Writes an output to the outbox table in the open transaction and keeps it
 * to publish after the commit. payload (len bytes, NUL-terminated) becomes
 * the outbox's, and is freed on failure. Returns 0, MQP_ERR_NOMEM or
 * MQP_ERR_DB. */
int outbox__stage(struct outbox *ob, const struct outbox_output *o, char *payload, size_t len);

/* How many outputs are staged, and forgetting those after the first keep
 * (their savepoint or transaction was rolled back). */
size_t outbox__staged(const struct outbox *ob);
void outbox__unstage(struct outbox *ob, size_t keep);

/* After the commit: publishes the staged outputs and forgets them. */
void outbox__flush(struct outbox *ob);

/* Publishes every row of the outbox table (at start: what the last run left). */
void outbox__send_all(struct outbox *ob);

/* Outcomes of publishing row id, from the session's threads: acknowledged;
 * failed (to be sent again while online); refused for good with MQTT reason
 * code reason, whose name is reason_text (static, may be NULL). */
void outbox__acked(struct outbox *ob, int64_t id);
void outbox__failed(struct outbox *ob, int64_t id);
void outbox__refused(struct outbox *ob, int64_t id, int reason, const char *reason_text);

/* True when acknowledgements or refusals wait for outbox__note; failures
 * wait for outbox__retry. Any thread. */
int outbox__has_outcomes(struct outbox *ob);
int outbox__has_failures(struct outbox *ob);

/* Inside the open transaction: marks acknowledged rows (a row acknowledged
 * again, after a republish, counts once), about once a second deletes those
 * acknowledged before the republish window, and moves refused rows to the
 * dead letters. Returns 0 or MQP_ERR_DB. */
int outbox__note(struct outbox *ob, int64_t now_ms);

/* Sends again the rows whose send failed (call while online). Returns 0 or
 * MQP_ERR_DB. */
int outbox__retry(struct outbox *ob);

/* After a reconnect: the broker may have lost what it accepted since its
 * last snapshot, so the rows acknowledged within the republish window go out
 * again. Returns 0 or MQP_ERR_DB. */
int outbox__republish(struct outbox *ob, int64_t now_ms);

/* outbox__republish for the rows whose topic (with the --prefix) starts
 * with `under`: a republish request for one shard (README "Scaling out").
 * Returns 0 or MQP_ERR_DB. */
int outbox__republish_under(struct outbox *ob, int64_t now_ms, const char *under);

/* Rows published and not yet acknowledged (the metrics' outbox_depth), and
 * rows sent and awaiting an outcome (in flight). Any thread. */
int64_t outbox__depth(struct outbox *ob);
long outbox__inflight(struct outbox *ob);

#endif
