/* Socket tuning Paho does not do itself. */
#ifndef MQPIPE_NET_H
#define MQPIPE_NET_H

#include <MQTTAsync.h>
#include <MQTTProperties.h>

/* Sets TCP_NODELAY on every TCP socket of this process whose peer is the
 * broker named by uri (tcp://, ssl://, ws://, wss://, mqtt://, mqtts://). Paho
 * never sets it and exposes no descriptor, so this walks /proc/self/fd and
 * matches getpeername() against the broker's resolved addresses. When fd is
 * not NULL it receives the last matching descriptor (-1 if none).
 * Returns the number of sockets set (0 if none matched), or a negative error. */
int mqp_net_nodelay_to(const char *uri, int *fd);

/* What every Paho client here does after each successful connect: sets
 * TCP_NODELAY on its broker socket (mqp_net_nodelay_to) and, unless the
 * connection is TLS (OpenSSL reads and writes there), puts the read buffer
 * of rxbuf.h under it. Returns what mqp_net_nodelay_to returns and sets *fd
 * as it does; *buffer_rc receives mqp_rxbuf_attach's result, 0 when nothing
 * was to be attached. */
int mqp_net_after_connect(const char *uri, int *fd, int *buffer_rc);

/* mqp_net_after_connect for -b's comma-separated list: the first URI whose
 * socket is found is the one connected. */
int mqp_net_after_connect_any(const char *uris, int *fd, int *buffer_rc);

/* Whether uri names a TLS connection (ssl://, mqtts://, wss://). */
int mqp_net_uri_tls(const char *uri);

/* Paho's default trace level, MQTTASYNC_TRACE_MINIMUM, has it format a line
 * for every packet sent or received into an in-memory trace nobody reads
 * unless MQTT_C_CLIENT_TRACE is set: measured, 0.25 of the 1.45 s of CPU a
 * bare consumer spends on 100 000 messages. This lowers the level to errors, unless
 * MQTT_C_CLIENT_TRACE is set (someone debugging wants Paho's trace). Call it
 * after creating the client (creating reads the environment's level). */
void mqp_net_paho_quiet(void);

/* Bytes received on fd and not yet read (FIONREAD), or -1 on error. */
int mqp_net_pending(int fd);

/* Turns Nagle's algorithm off (nodelay 1) or on (0) for fd. Returns 0 or
 * MQP_ERR_IO. Setting nodelay also sends whatever Nagle was holding back. */
int mqp_net_set_nodelay(int fd, int nodelay);

/* Splits a broker URI into host and port (default 1883, 8883 for ssl, 80/443
 * for ws/wss). Returns 0 or MQP_ERR_INVAL. */
int mqp_net_parse_uri(const char *uri, char *host, unsigned long host_size, int *port);

/* The Receive Maximum a broker announced in its CONNACK properties (Paho's
 * MQTTAsync_successData5.properties; NULL allowed), or 65535 when it sent
 * none (MQTT 5, 3.2.2.3.3). Paho caps its window of unacknowledged publishes
 * at this value whatever maxInflight says, and once the window is full it
 * sends the next publish only after a one-second wait: against mosquitto's
 * default max_inflight_messages 20 a publisher that queues more than 20
 * crawls at 20 messages a second. */
int mqp_net_receive_maximum(MQTTProperties *props);

#endif
