/* The outbox: see outbox.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqpipe/error.h"
#include "mqpipe/log.h"
#include "outbox.h"

/* Paho scans every message in flight and every queued send, message by
 * message, for a free packet id at each MQTTAsync_sendMessage: a burst of
 * thousands of outputs costs O(n) per send (the router's CPU went mostly
 * there; README "Performance", "Shards"). While online, a flush keeps at
 * most OUTBOX__WINDOW outputs in flight, resuming once acknowledgements
 * bring them down to OUTBOX__RESUME; it waits at most OUTBOX__WAIT_MS per
 * flush, then sends the rest at once (a broker slow to acknowledge never
 * stalls the applier). Every row is durable before it is sent either way. */
#define OUTBOX__WINDOW 256
#define OUTBOX__RESUME 128
#define OUTBOX__WAIT_MS 2000

/* An output written to the outbox in the open transaction, sent after commit. */
struct outbox__staged {
	int64_t id;
	char *topic;
	char *payload;
	size_t len;
	size_t rel;
	char *label;
	void *correlation;
	size_t correlation_len;
};

/* An outcome the session reported for row id: acknowledged, failed, or
 * refused for good with MQTT reason code reason (named text, static). */
struct outbox__outcome {
	int64_t id;
	int reason;
	const char *text;
};

/* A growable list of outcomes, filled by the session's threads under the
 * outbox's lock and taken whole by the applier. */
struct outbox__outcomes {
	struct outbox__outcome *v;
	size_t n, cap;
};

struct outbox {
	struct mqp_store *store;
	struct mqp_metrics *metrics;
	struct deadletters *deadletters;
	const struct session_ops *session;
	int republish_window_s;
	/* Applier thread only. */
	struct outbox__staged *staged;
	size_t n_staged, cap_staged;
	int64_t next_purge_ms;
	long republished; /* rows sent by the last outbox__republish */
	/* Shared with the session's threads. */
	pthread_mutex_t lock;
	pthread_cond_t window; /* signalled when the in-flight count falls to OUTBOX__RESUME */
	int waiting;           /* under lock: the applier waits on window */
	struct outbox__outcomes acked, failed, refused;
	atomic_llong depth;
	atomic_long inflight;
};

int outbox__new(struct outbox **out, struct mqp_store *store, struct mqp_metrics *metrics,
		struct deadletters *deadletters, const struct session_ops *session,
		int republish_window_s)
{
	struct outbox *ob = calloc(1, sizeof(*ob));
	if (!ob)
		return MQP_ERR_NOMEM;
	ob->store = store;
	ob->metrics = metrics;
	ob->deadletters = deadletters;
	ob->session = session;
	ob->republish_window_s = republish_window_s;
	pthread_mutex_init(&ob->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ob->window, &ca);
	pthread_condattr_destroy(&ca);
	int64_t depth = mqp_store_outbox_depth(store);
	atomic_store(&ob->depth, depth > 0 ? depth : 0);
	*out = ob;
	return MQP_OK;
}

void outbox__free(struct outbox *ob)
{
	if (!ob)
		return;
	outbox__unstage(ob, 0);
	free(ob->staged);
	free(ob->acked.v);
	free(ob->failed.v);
	free(ob->refused.v);
	pthread_mutex_destroy(&ob->lock);
	pthread_cond_destroy(&ob->window);
	free(ob);
}

/* Appends an outcome to list; call under ob->lock. Returns 0 or MQP_ERR_NOMEM. */
static int outbox__push(struct outbox__outcomes *list, struct outbox__outcome o)
{
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 256;
		struct outbox__outcome *v = realloc(list->v, cap * sizeof(*v));
		if (!v)
			return MQP_ERR_NOMEM;
		list->v = v;
		list->cap = cap;
	}
	list->v[list->n++] = o;
	return MQP_OK;
}

/* Moves the shared list into *out, leaving it empty. */
static void outbox__take(struct outbox *ob, struct outbox__outcomes *shared,
			 struct outbox__outcomes *out)
{
	pthread_mutex_lock(&ob->lock);
	*out = *shared;
	memset(shared, 0, sizeof(*shared));
	pthread_mutex_unlock(&ob->lock);
}

/* Queues an outcome on list under the lock; a row lost here for want of
 * memory stays in the outbox table and goes out again at the next start
 * (what names the loss in the log). */
static void outbox__queue(struct outbox *ob, struct outbox__outcomes *list,
			  struct outbox__outcome o, const char *what)
{
	pthread_mutex_lock(&ob->lock);
	int rc = outbox__push(list, o);
	pthread_mutex_unlock(&ob->lock);
	if (rc)
		mqp_error(what, "id=%lld msg=\"out of memory\"", (long long)o.id);
}

/* Publishes one row through the session; a send the client refuses at once
 * is queued for retry. */
static void outbox__send(struct outbox *ob, int64_t id, const char *topic, const void *payload,
			 size_t len, int qos, int retain, const void *correlation, size_t correlation_len)
{
	atomic_fetch_add(&ob->inflight, 1);
	if (ob->session->publish(ob->session->impl, id, topic, payload, len, qos, retain, correlation,
				 correlation_len) == MQP_OK)
		return;
	atomic_fetch_sub(&ob->inflight, 1);
	outbox__queue(ob, &ob->failed, (struct outbox__outcome){id, 0, NULL}, "retry_lost");
}

/* mqp_store_outbox_* callback: sends a stored row. */
static int outbox__send_row(void *ctx, const struct mqp_outbox_row *row)
{
	outbox__send(ctx, row->id, row->topic, row->payload, row->len, row->qos, row->retain,
		     row->correlation, row->correlation_len);
	return 0;
}

int outbox__stage(struct outbox *ob, const struct outbox_output *o, char *payload, size_t len)
{
	if (ob->n_staged == ob->cap_staged) {
		size_t cap = ob->cap_staged ? ob->cap_staged * 2 : 64;
		struct outbox__staged *v = realloc(ob->staged, cap * sizeof(*v));
		if (!v) {
			free(payload);
			return MQP_ERR_NOMEM;
		}
		ob->staged = v;
		ob->cap_staged = cap;
	}
	struct outbox__staged *s = &ob->staged[ob->n_staged];
	memset(s, 0, sizeof(*s));
	s->payload = payload;
	s->len = len;
	s->rel = o->rel;
	s->correlation_len = o->correlation_len;
	s->topic = strdup(o->topic);
	s->label = o->label ? strdup(o->label) : NULL;
	if (o->correlation && (s->correlation = malloc(o->correlation_len ? o->correlation_len : 1)))
		memcpy(s->correlation, o->correlation, o->correlation_len);
	int rc = !s->topic || (o->label && !s->label) || (o->correlation && !s->correlation)
			 ? MQP_ERR_NOMEM
			 : mqp_store_outbox_add(ob->store, s->topic, s->payload, s->len, 1, 0,
						s->correlation, s->correlation_len, &s->id);
	if (rc) {
		free(s->topic);
		free(s->payload);
		free(s->label);
		free(s->correlation);
		return rc;
	}
	ob->n_staged++;
	return MQP_OK;
}

size_t outbox__staged(const struct outbox *ob)
{
	return ob->n_staged;
}

void outbox__unstage(struct outbox *ob, size_t keep)
{
	for (size_t i = keep; i < ob->n_staged; i++) {
		free(ob->staged[i].topic);
		free(ob->staged[i].payload);
		free(ob->staged[i].label);
		free(ob->staged[i].correlation);
	}
	if (keep < ob->n_staged)
		ob->n_staged = keep;
}

/* Waits, while online and before *deadline (CLOCK_MONOTONIC), until fewer
 * than OUTBOX__WINDOW outputs are in flight (see OUTBOX__WINDOW). */
static void outbox__await_window(struct outbox *ob, const struct timespec *deadline)
{
	if (atomic_load(&ob->inflight) < OUTBOX__WINDOW || !ob->session->online(ob->session->impl))
		return;
	pthread_mutex_lock(&ob->lock);
	ob->waiting = 1;
	while (atomic_load(&ob->inflight) > OUTBOX__RESUME &&
	       pthread_cond_timedwait(&ob->window, &ob->lock, deadline) == 0)
		;
	ob->waiting = 0;
	pthread_mutex_unlock(&ob->lock);
}

/* Wakes a flush waiting for the window; called after a decrement of inflight. */
static void outbox__window_moved(struct outbox *ob)
{
	if (atomic_load(&ob->inflight) > OUTBOX__RESUME)
		return;
	pthread_mutex_lock(&ob->lock);
	if (ob->waiting)
		pthread_cond_signal(&ob->window);
	pthread_mutex_unlock(&ob->lock);
}

void outbox__flush(struct outbox *ob)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += OUTBOX__WAIT_MS / 1000;
	for (size_t i = 0; i < ob->n_staged; i++) {
		struct outbox__staged *s = &ob->staged[i];
		outbox__await_window(ob, &deadline);
		atomic_fetch_add(&ob->depth, 1);
		mqp_metrics_out(ob->metrics, s->label ? s->label : s->topic + s->rel);
		outbox__send(ob, s->id, s->topic, s->payload, s->len, 1, 0, s->correlation,
			     s->correlation_len);
	}
	outbox__unstage(ob, 0);
}

void outbox__send_all(struct outbox *ob)
{
	mqp_store_outbox_each(ob->store, outbox__send_row, ob);
}

void outbox__acked(struct outbox *ob, int64_t id)
{
	outbox__queue(ob, &ob->acked, (struct outbox__outcome){id, 0, NULL}, "ack_lost");
	atomic_fetch_sub(&ob->inflight, 1);
	outbox__window_moved(ob);
}

void outbox__failed(struct outbox *ob, int64_t id)
{
	outbox__queue(ob, &ob->failed, (struct outbox__outcome){id, 0, NULL}, "retry_lost");
	atomic_fetch_sub(&ob->inflight, 1);
	outbox__window_moved(ob);
}

void outbox__refused(struct outbox *ob, int64_t id, int reason, const char *reason_text)
{
	outbox__queue(ob, &ob->refused, (struct outbox__outcome){id, reason, reason_text},
		      "refusal_lost");
	atomic_fetch_sub(&ob->inflight, 1);
	outbox__window_moved(ob);
}

int outbox__has_outcomes(struct outbox *ob)
{
	pthread_mutex_lock(&ob->lock);
	int any = ob->acked.n > 0 || ob->refused.n > 0;
	pthread_mutex_unlock(&ob->lock);
	return any;
}

int outbox__has_failures(struct outbox *ob)
{
	pthread_mutex_lock(&ob->lock);
	int any = ob->failed.n > 0;
	pthread_mutex_unlock(&ob->lock);
	return any;
}

/* Marks the acknowledged rows, and about once a second forgets those
 * acknowledged before the republish window. */
static int outbox__note_acked(struct outbox *ob, int64_t now)
{
	struct outbox__outcomes ids;
	outbox__take(ob, &ob->acked, &ids);
	long long newly = 0;
	int rc = MQP_OK;
	for (size_t i = 0; i < ids.n && rc >= 0; i++)
		if ((rc = mqp_store_outbox_acked(ob->store, ids.v[i].id, now)) > 0)
			newly++;
	free(ids.v);
	if (rc < 0)
		return rc;
	atomic_fetch_sub(&ob->depth, newly);
	if (now < ob->next_purge_ms)
		return MQP_OK;
	ob->next_purge_ms = now + 1000;
	rc = mqp_store_outbox_purge(ob->store, now - ob->republish_window_s * 1000LL);
	return rc < 0 ? rc : MQP_OK;
}

/* What outbox__deadletter_row needs besides the row. */
struct outbox__refused_row {
	struct outbox *ob;
	const struct outbox__outcome *refusal;
	int64_t now_ms;
};

/* mqp_store_outbox_take callback: keeps a refused output as a dead letter,
 * under the topic it was published on, with its payload. No dead-letter
 * event is published for it: that too could be refused, and it would carry
 * a reply where other readers see it. */
static int outbox__deadletter_row(void *arg, const struct mqp_outbox_row *row)
{
	const struct outbox__refused_row *r = arg;
	const char *what = r->refusal->text;
	char reason[200], qt[300];
	int n = snprintf(reason, sizeof(reason), "publish refused by the broker: %d %s",
			 r->refusal->reason, what ? what : "unknown reason code");
	size_t at = (size_t)n - (what ? strlen(what) : 0);
	if (n > 0 && at < sizeof(reason) && reason[at] >= 'A' && reason[at] <= 'Z')
		reason[at] = (char)(reason[at] - 'A' + 'a'); /* "135 not authorized" */
	mqp_debug("refused_deadlettered", "id=%lld topic=%s", (long long)row->id,
		  mqp_log_quote(qt, sizeof(qt), row->topic));
	int rc = deadletter__keep(r->ob->deadletters, row->topic, reason, row->payload, row->len,
				  r->now_ms);
	return rc < 0 ? rc : 1;
}

/* Moves the rows the broker refused for good to the dead letters, and
 * counts them. */
static int outbox__note_refused(struct outbox *ob, int64_t now)
{
	struct outbox__outcomes list;
	outbox__take(ob, &ob->refused, &list);
	int rc = MQP_OK;
	for (size_t i = 0; i < list.n && rc >= 0; i++) {
		struct outbox__refused_row r = {ob, &list.v[i], now};
		if ((rc = mqp_store_outbox_take(ob->store, list.v[i].id, outbox__deadletter_row, &r)) > 0) {
			atomic_fetch_sub(&ob->depth, 1);
			mqp_metrics_refused(ob->metrics);
		}
	}
	free(list.v);
	return rc < 0 ? rc : MQP_OK;
}

int outbox__note(struct outbox *ob, int64_t now_ms)
{
	int rc = outbox__note_acked(ob, now_ms);
	return rc ? rc : outbox__note_refused(ob, now_ms);
}

int outbox__retry(struct outbox *ob)
{
	struct outbox__outcomes ids;
	int rc = MQP_OK;
	outbox__take(ob, &ob->failed, &ids);
	for (size_t i = 0; i < ids.n && rc >= 0; i++)
		rc = mqp_store_outbox_get(ob->store, ids.v[i].id, outbox__send_row, ob);
	free(ids.v);
	return rc < 0 ? rc : MQP_OK;
}

/* mqp_store_outbox_acked_since callback: sends a row again and counts it. */
static int outbox__republish_row(void *ctx, const struct mqp_outbox_row *row)
{
	struct outbox *ob = ctx;
	ob->republished++;
	return outbox__send_row(ob, row);
}

int outbox__republish(struct outbox *ob, int64_t now_ms)
{
	if (ob->republish_window_s <= 0)
		return MQP_OK;
	ob->republished = 0;
	int rc = mqp_store_outbox_acked_since(ob->store, now_ms - ob->republish_window_s * 1000LL,
					      outbox__republish_row, ob);
	mqp_info("outbox_republished", "rows=%ld window_s=%d", ob->republished,
		 ob->republish_window_s);
	return rc < 0 ? rc : MQP_OK;
}

/* outbox__republish_under's filter: rows whose topic starts with `under`. */
struct outbox__under {
	struct outbox *ob;
	const char *under;
	size_t n;
};

static int outbox__republish_under_row(void *ctx, const struct mqp_outbox_row *row)
{
	struct outbox__under *u = ctx;
	return strncmp(row->topic, u->under, u->n) == 0 ? outbox__republish_row(u->ob, row) : MQP_OK;
}

int outbox__republish_under(struct outbox *ob, int64_t now_ms, const char *under)
{
	struct outbox__under u = {ob, under, strlen(under)};
	if (ob->republish_window_s <= 0)
		return MQP_OK;
	ob->republished = 0;
	int rc = mqp_store_outbox_acked_since(ob->store, now_ms - ob->republish_window_s * 1000LL,
					      outbox__republish_under_row, &u);
	mqp_info("outbox_republished", "rows=%ld window_s=%d under=%s", ob->republished,
		 ob->republish_window_s, under);
	return rc < 0 ? rc : MQP_OK;
}

int64_t outbox__depth(struct outbox *ob)
{
	return atomic_load(&ob->depth);
}

long outbox__inflight(struct outbox *ob)
{
	return atomic_load(&ob->inflight);
}
