/* sd_notify(3) without libsystemd: the protocol is one datagram to the
 * AF_UNIX socket named by $NOTIFY_SOCKET, and README "Architecture" keeps the
 * agents' libraries to the few it lists. */
#ifndef MQPIPE_NOTIFY_H
#define MQPIPE_NOTIFY_H

#include <stdint.h>

/* Sends state (e.g. "READY=1") when $NOTIFY_SOCKET is set. Returns 1 if sent,
 * 0 when not under systemd, or a negative error. */
int mqp_notify(const char *state);

/* The watchdog period systemd asked for ($WATCHDOG_USEC, honouring
 * $WATCHDOG_PID), in microseconds; 0 when there is none. */
uint64_t mqp_notify_watchdog_usec(void);

#endif
