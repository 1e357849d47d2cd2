/* Socket tuning Paho does not do itself. */
#ifndef MQPIPE_NET_H
#define MQPIPE_NET_H

/* Sets TCP_NODELAY on every TCP socket of this process whose peer is the
 * broker named by uri (tcp://, ssl://, ws://, wss://, mqtt://, mqtts://). Paho
 * never sets it and exposes no descriptor, so this walks /proc/self/fd and
 * matches getpeername() against the broker's resolved addresses.
 * Returns the number of sockets set (0 if none matched), or a negative error. */
int mqp_net_nodelay_to(const char *uri);

/* Splits a broker URI into host and port (default 1883, 8883 for ssl, 80/443
 * for ws/wss). Returns 0 or MQP_ERR_INVAL. */
int mqp_net_parse_uri(const char *uri, char *host, unsigned long host_size, int *port);

#endif
