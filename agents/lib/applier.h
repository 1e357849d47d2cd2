/* The applier (internal): one thread that moves inbox records into SQLite.
 *
 * Each step is one transaction: acknowledgements and refusals noted, expired
 * dead letters dropped, up to a batch of records applied (each inside its
 * own savepoint, by the agent's handler), the agent's tick run, the inbox
 * position stored; after the commit, the outputs go out (outbox.h). A
 * handler's refusal, a payload over --max-payload and a reply off the reply
 * prefix end as dead letters or as the agent's refusal answer (README
 * "Input rules", "Ingestion"). A store failure stops the applier: nothing
 * more is committed, and the agent exits (lifecycle). */
#ifndef MQPIPE_LIB_APPLIER_H
#define MQPIPE_LIB_APPLIER_H

#include <stdint.h>

#include "deadletter.h"
#include "mqpipe/inbox.h"
#include "mqpipe/metrics.h"
#include "mqpipe/runtime.h"
#include "outbox.h"
#include "session_ops.h"

/* What the applier works with; all of it stays the caller's and must
 * outlive the applier. reply_prefix: where replies may go, with the
 * --prefix ("" = anywhere). */
struct applier_parts {
	const struct mqp_agent *agent;
	const struct mqp_options *opts;
	const char *reply_prefix;
	struct mqp_store *store;
	struct mqp_inbox *inbox;
	struct mqp_metrics *metrics;
	struct outbox *outbox;
	struct deadletters *deadletters;
	const struct session_ops *session;
	int64_t start_us; /* records received before it are not timed in the metrics */
};

struct applier;

/* Creates an applier (no thread yet). Returns 0 or MQP_ERR_NOMEM. */
int applier__new(struct applier **out, const struct applier_parts *parts);

/* Frees it (after applier__stop, or when never started). NULL is fine. */
void applier__free(struct applier *a);

/* One step, on the caller's thread: one transaction as above. Returns the
 * number of records applied, or a negative error after which nothing was
 * committed (the transaction and its outputs are dropped). */
int applier__step(struct applier *a);

/* One round of the applier's loop: waits up to its idle time for records,
 * retries failed sends and republishes after a reconnect while online, runs
 * a step when records, outcomes or the tick are due. stopping: do not wait,
 * finish what is there. Returns 1 when there may be more to do, 0 when
 * stopping found nothing left, or a negative error (as applier__step). */
int applier__turn(struct applier *a, int stopping);

/* Starts the applier thread, which runs applier__turn until applier__stop
 * or an error. Returns 0 or MQP_ERR_NOMEM. */
int applier__start(struct applier *a);

/* Asks the thread to apply what is left and stop, and joins it. Returns 0,
 * or the error that stopped it earlier. */
int applier__stop(struct applier *a);

/* True while a step is in hand: records taken from the inbox whose
 * outputs are not yet sent (and so not yet counted in flight). Any thread;
 * the clean stop waits for it with the inbox's backlog and the outbox's
 * outputs in flight. */
int applier__busy(struct applier *a);

/* The error that stopped the thread (0 while it runs), and the monotonic ms
 * of its last round (for the systemd watchdog). Any thread. */
int applier__failed(struct applier *a);
int64_t applier__heartbeat_ms(struct applier *a);

#endif
