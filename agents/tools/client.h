/* The MQTT client the tools share (record, replay, load): an MQTT 5 connection
 * from the common flags (broker, credentials, TLS, client id), TCP_NODELAY,
 * subscriptions taken again at every reconnect, and a blocking wait for the
 * connection and for every acknowledgement. Agents use the runtime instead. */
#ifndef MQPIPE_CLIENT_H
#define MQPIPE_CLIENT_H

#include <MQTTAsync.h>
#include "mqpipe/options.h"

struct tool_client;

/* Connects (retrying for up to timeout_s) with arrived as the message
 * callback (NULL for none; same contract as Paho's, ctx passed through).
 * The client id is -i's, else name-PID. session_s 0 asks for a clean
 * session; more keeps it that many seconds past a disconnect (MQTT 5
 * Session Expiry), so publishes a broker restart cut off are sent again and
 * a subscriber's messages wait for it. Returns a client or NULL after
 * printing why. */
struct tool_client *tool_connect(const struct mqp_options *opts, const char *name,
				 MQTTAsync_messageArrived *arrived, void *ctx, int timeout_s,
				 int session_s);

MQTTAsync tool_handle(struct tool_client *c);

/* Subscribes at QoS 1 and waits for the SUBACK; the filters (1 to 64,
 * which must outlive c) are subscribed again after every reconnect.
 * Returns 0 or -1. */
int tool_subscribe(struct tool_client *c, char *const *filters, int n);

/* Publishes a copy of m; acknowledgements are counted. Blocks while window
 * messages (or the broker's Receive Maximum, if smaller) await theirs, until
 * half of them are acknowledged. A publish Paho gives back after a dropped
 * connection is sent again from here or tool_drain (at least once: it may
 * arrive twice); only the broker's refusal, or twenty attempts, counts it
 * as refused. Returns 0 or -1 (printed). */
int tool_publish(struct tool_client *c, const char *topic, MQTTAsync_message *m, long window);

/* Waits until every publish is acknowledged or refused (at most
 * timeout_s), sending again those given back meanwhile. Returns the number
 * still unacknowledged. */
long tool_drain(struct tool_client *c, int timeout_s);

/* Publishes acknowledged, refused, and sent again after a drop, so far. */
long tool_acked(struct tool_client *c);
long tool_failed(struct tool_client *c);
long tool_resent(struct tool_client *c);

/* Disconnects and frees c. A kept session (session_s > 0) ends with it
 * unless keep_session. */
void tool_close(struct tool_client *c, int keep_session);

#endif
