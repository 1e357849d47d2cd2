/* The agent's lifecycle (internal): mqp_agent_main (mqpipe/runtime.h) opens
 * the state, starts the applier and the session, runs the main loop (signals,
 * connect and subscribe retries, metrics, the systemd watchdog) and stops
 * cleanly. The clean stop is here for unit tests to drive with a fake
 * session. */
#ifndef MQPIPE_LIB_LIFECYCLE_H
#define MQPIPE_LIB_LIFECYCLE_H

#include "applier.h"
#include "mqpipe/inbox.h"
#include "outbox.h"
#include "session_ops.h"

#define LIFECYCLE__DRAIN_MS 5000   /* the clean stop waits this long for the backlog... */
#define LIFECYCLE__OFFLINE_MS 2000 /* ...this long for "offline" to be acknowledged... */
#define LIFECYCLE__DISCONNECT_MS 3000 /* ...and this long for the disconnect */

/* The clean stop, in this order: while online, wait until the inbox is
 * applied and every output acknowledged; say offline; disconnect (no more
 * messages arrive); then let the applier commit what is left and join it.
 * Returns 0, or the error that had stopped the applier. */
int lifecycle__shutdown(const struct session_ops *session, struct applier *applier,
			struct outbox *outbox, struct mqp_inbox *inbox);

#endif
