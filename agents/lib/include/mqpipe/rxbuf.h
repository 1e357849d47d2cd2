/* Buffered reads under Paho's broker socket.
 *
 * Paho reads every MQTT packet with three recv() calls (the type byte, the
 * length, the rest), each packet after two poll() calls (POLLOUT without
 * waiting, then POLLIN), and offers no buffering of its own: at a stream of
 * small messages its receive thread makes five system calls a packet before
 * the PUBACK's writev(). Paho exposes neither its socket nor a read hook, so
 * this module interposes the C library's recv(), poll(), writev() and
 * close() (an executable's definitions come before a shared library's) and,
 * for one attached descriptor only:
 * - serves recv() from a buffer it fills with one large read;
 * - answers poll() for POLLIN at once while that buffer holds bytes, and for
 *   POLLOUT at once while the last writev() took every byte.
 * - optionally (mqp_rxbuf_coalesce), in a stream, lets a poll() for POLLIN
 *   that would wait sleep a little first, so the receive thread wakes once
 *   for the packets of that time instead of once or twice a packet (on
 *   these virtual machines a wake-up costs as much as a packet's handling).
 * Every other descriptor, and every recv() with flags, goes straight to the
 * C library. Bytes in the buffer were not acknowledged yet: holding them is
 * as safe as leaving them in the kernel's socket buffer.
 *
 * Only plain TCP and websockets connections read through recv() and write
 * through writev(); over TLS OpenSSL does both, so TLS connections must not
 * be attached (the POLLOUT answer relies on seeing every write). */
#ifndef MQPIPE_RXBUF_H
#define MQPIPE_RXBUF_H

#include <stddef.h>

/* Routes reads of fd through the buffer, from the next recv() on: the
 * buffer starts empty and fills from where the stream is, so any moment
 * will do. One descriptor at a time: attaching another drops the first's
 * held bytes. Returns 0, MQP_ERR_INVAL for a negative fd (or when the C
 * library's functions cannot be found), or MQP_ERR_NOMEM; on error nothing
 * changes. */
int mqp_rxbuf_attach(int fd);

/* Stops buffering fd and drops what the buffer holds (the connection is
 * going). close() of the attached descriptor does this by itself. No-op when
 * fd is not attached. */
void mqp_rxbuf_detach(int fd);

/* Bytes of fd read from the kernel and not yet handed out: add them to
 * FIONREAD's count for what waits to be read. 0 when fd is not attached. */
size_t mqp_rxbuf_held(int fd);

/* Turns coalesced wake-ups on (on != 0) or off, for the whole process and
 * whatever descriptor is attached: while a stream is on (a read found bytes
 * less than a millisecond ago), a poll() for POLLIN that would wait first
 * sleeps 0.5 ms, unless 16 KB already wait. A stream's packets so wait up
 * to 0.5 ms more; a lone message never does. Off by default: a peer that
 * waits on each answer (a request/response window) would wait on each
 * pause too. */
void mqp_rxbuf_coalesce(int on);

#endif
