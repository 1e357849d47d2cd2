/* Buffered reads under Paho's broker socket: see mqpipe/rxbuf.h for the why.
 *
 * Hand-written because no library can sit under Paho's reads: the only seam
 * Paho leaves is the C library's symbols. */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/rxbuf.h"

#define RXBUF__SIZE (64 * 1024) /* a read takes up to this: hundreds of small packets */

typedef ssize_t (*rxbuf__recv_fn)(int, void *, size_t, int);
typedef int (*rxbuf__poll_fn)(struct pollfd *, nfds_t, int);
typedef int (*rxbuf__close_fn)(int);
typedef ssize_t (*rxbuf__writev_fn)(int, const struct iovec *, int);

static struct {
	pthread_mutex_t lock;  /* guards data, start and end */
	atomic_int fd;         /* the attached descriptor, -1 if none; written under lock */
	atomic_int write_full; /* its last writev() did not take every byte */
	unsigned char *data;   /* RXBUF__SIZE bytes once first attached; kept */
	size_t start, end;     /* held bytes are data[start..end) */
} rxbuf = {PTHREAD_MUTEX_INITIALIZER, -1, 0, NULL, 0, 0};

/* The definitions these interpose on: the next in the lookup order, which
 * is the C library's or a sanitizer's interceptor in front of it. Each is
 * looked up once; racing threads find the same address. */
static _Atomic(void *) rxbuf__next_recv, rxbuf__next_poll, rxbuf__next_close, rxbuf__next_writev;

static void *rxbuf__next(_Atomic(void *) *slot, const char *name)
{
	void *f = atomic_load_explicit(slot, memory_order_relaxed);
	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		atomic_store(slot, f);
	}
	return f;
}

static ssize_t rxbuf__real_recv(int fd, void *buf, size_t len, int flags)
{
	rxbuf__recv_fn f = (rxbuf__recv_fn)rxbuf__next(&rxbuf__next_recv, "recv");
	return f ? f(fd, buf, len, flags) : (errno = ENOSYS, -1);
}

static int rxbuf__real_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	rxbuf__poll_fn f = (rxbuf__poll_fn)rxbuf__next(&rxbuf__next_poll, "poll");
	return f ? f(fds, nfds, timeout) : (errno = ENOSYS, -1);
}

static ssize_t rxbuf__real_writev(int fd, const struct iovec *iov, int iovcnt)
{
	rxbuf__writev_fn f = (rxbuf__writev_fn)rxbuf__next(&rxbuf__next_writev, "writev");
	return f ? f(fd, iov, iovcnt) : (errno = ENOSYS, -1);
}

static int rxbuf__real_close(int fd)
{
	rxbuf__close_fn f = (rxbuf__close_fn)rxbuf__next(&rxbuf__next_close, "close");
	return f ? f(fd) : (errno = ENOSYS, -1);
}

int mqp_rxbuf_attach(int fd)
{
	/* Looked up now, not first on a hot path; all must exist. */
	if (fd < 0 || !rxbuf__next(&rxbuf__next_recv, "recv") ||
	    !rxbuf__next(&rxbuf__next_poll, "poll") || !rxbuf__next(&rxbuf__next_close, "close") ||
	    !rxbuf__next(&rxbuf__next_writev, "writev"))
		return MQP_ERR_INVAL;
	pthread_mutex_lock(&rxbuf.lock);
	if (!rxbuf.data && !(rxbuf.data = malloc(RXBUF__SIZE))) {
		pthread_mutex_unlock(&rxbuf.lock);
		return MQP_ERR_NOMEM;
	}
	rxbuf.start = rxbuf.end = 0;
	atomic_store(&rxbuf.write_full, 0);
	atomic_store(&rxbuf.fd, fd);
	pthread_mutex_unlock(&rxbuf.lock);
	return MQP_OK;
}

void mqp_rxbuf_detach(int fd)
{
	if (fd < 0 || atomic_load(&rxbuf.fd) != fd)
		return;
	pthread_mutex_lock(&rxbuf.lock);
	if (atomic_load(&rxbuf.fd) == fd) {
		atomic_store(&rxbuf.fd, -1);
		rxbuf.start = rxbuf.end = 0;
	}
	pthread_mutex_unlock(&rxbuf.lock);
}

size_t mqp_rxbuf_held(int fd)
{
	if (fd < 0 || atomic_load(&rxbuf.fd) != fd)
		return 0;
	pthread_mutex_lock(&rxbuf.lock);
	size_t n = atomic_load(&rxbuf.fd) == fd ? rxbuf.end - rxbuf.start : 0;
	pthread_mutex_unlock(&rxbuf.lock);
	return n;
}

static int64_t rxbuf__now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Coalesced wake-ups (rxbuf.h): a stream is a read that found bytes less
 * than RXBUF__STREAM_GAP_US ago. 0.5 ms gave the router a third less CPU
 * per event (README "Shards") while adding at most that to a stream's
 * latency; 1 ms saved little more. */
#define RXBUF__COALESCE_US 500
#define RXBUF__STREAM_GAP_US (2 * RXBUF__COALESCE_US)
#define RXBUF__COALESCE_ENOUGH (RXBUF__SIZE / 4) /* bytes waiting: no pause */

static atomic_int rxbuf__coalescing;
static _Atomic int64_t rxbuf__last_data_us; /* when a read last found bytes (monotonic µs) */

void mqp_rxbuf_coalesce(int on)
{
	atomic_store(&rxbuf__coalescing, on != 0);
}

/* Before a poll() for POLLIN of the attached fd alone that would wait
 * (timeout not 0, nothing held): sleeps RXBUF__COALESCE_US when coalescing,
 * a stream is on and fewer than RXBUF__COALESCE_ENOUGH bytes wait. Paho
 * holds none of its locks around that poll(). */
static void rxbuf__coalesce(int fd, nfds_t nfds, int timeout)
{
	if (!atomic_load_explicit(&rxbuf__coalescing, memory_order_relaxed) || nfds != 1 ||
	    timeout == 0 || rxbuf__now_us() - atomic_load(&rxbuf__last_data_us) > RXBUF__STREAM_GAP_US)
		return;
	int waiting = 0;
	if (ioctl(fd, FIONREAD, &waiting) == 0 && waiting >= RXBUF__COALESCE_ENOUGH)
		return;
	struct timespec pause = {0, RXBUF__COALESCE_US * 1000L};
	nanosleep(&pause, NULL);
}

static int rxbuf__attached(int fd)
{
	return fd >= 0 && fd == atomic_load_explicit(&rxbuf.fd, memory_order_relaxed);
}

/* recv() as the C library's, except for the attached descriptor without
 * flags: then up to len held bytes, after one read of up to RXBUF__SIZE when
 * none are held. Returns fewer than len when fewer are held, as a stream
 * socket may; 0 and -1/errno come from the read that found them. */
ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	if (!rxbuf__attached(fd) || flags || !buf || len == 0)
		return rxbuf__real_recv(fd, buf, len, flags);
	pthread_mutex_lock(&rxbuf.lock);
	if (atomic_load(&rxbuf.fd) != fd) {
		pthread_mutex_unlock(&rxbuf.lock);
		return rxbuf__real_recv(fd, buf, len, flags);
	}
	if (rxbuf.start == rxbuf.end) {
		/* A packet as large as the buffer goes straight to its place. */
		int direct = len >= RXBUF__SIZE;
		ssize_t n = rxbuf__real_recv(fd, direct ? buf : rxbuf.data, direct ? len : RXBUF__SIZE, 0);
		if (n <= 0 || direct) {
			int saved = errno;
			pthread_mutex_unlock(&rxbuf.lock);
			errno = saved;
			return n;
		}
		rxbuf.start = 0;
		rxbuf.end = (size_t)n;
		atomic_store(&rxbuf__last_data_us, rxbuf__now_us());
	}
	size_t take = rxbuf.end - rxbuf.start < len ? rxbuf.end - rxbuf.start : len;
	memcpy(buf, rxbuf.data + rxbuf.start, take);
	rxbuf.start += take;
	pthread_mutex_unlock(&rxbuf.lock);
	return (ssize_t)take;
}

/* poll() as the C library's, except for the attached descriptor asked about
 * alone, as Paho asks before every packet (a poll() for POLLOUT that does not
 * wait, then one for POLLIN):
 * - POLLIN while bytes are held: readable, without a system call;
 * - POLLOUT while its last writev() took every byte: writable, without a
 *   system call. Were the socket full after all, the next writev() says so
 *   and Paho keeps the rest as a pending write, as it does for any socket;
 *   from then on the kernel is asked until a writev() goes through whole.
 * With more descriptors, held bytes still make it readable, and a poll()
 * that does not wait answers for the rest, so none is starved. A POLLIN
 * poll() that would wait may first sleep a little in a stream (see
 * rxbuf__coalesce). */
#if defined(__GNUC__) && !defined(__clang__)
/* glibc declares poll()'s fds write-only (an access attribute), but poll()
 * reads them: GCC would warn that the caller's fds are read uninitialized. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	int fd = atomic_load_explicit(&rxbuf.fd, memory_order_relaxed);
	if (fd < 0 || !fds)
		return rxbuf__real_poll(fds, nfds, timeout);
	if (nfds == 1 && fds[0].fd == fd && fds[0].events == POLLOUT &&
	    !atomic_load(&rxbuf.write_full)) {
		fds[0].revents = POLLOUT;
		return 1;
	}
	nfds_t at = nfds;
	for (nfds_t i = 0; i < nfds; i++)
		if (fds[i].fd == fd && (fds[i].events & POLLIN)) {
			at = i;
			break;
		}
	if (at == nfds)
		return rxbuf__real_poll(fds, nfds, timeout);
	if (mqp_rxbuf_held(fd) == 0) {
		rxbuf__coalesce(fd, nfds, timeout);
		if (mqp_rxbuf_held(fd) == 0)
			return rxbuf__real_poll(fds, nfds, timeout);
	}
	int ready = 0;
	if (nfds == 1 && fds[0].events == POLLIN)
		fds[0].revents = 0;
	else if ((ready = rxbuf__real_poll(fds, nfds, 0)) < 0)
		return ready;
	if (!fds[at].revents)
		ready++;
	fds[at].revents |= POLLIN;
	return ready;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* writev() as the C library's; for the attached descriptor it also notes
 * whether every byte was taken, which poll() relies on (above). */
ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t n = rxbuf__real_writev(fd, iov, iovcnt);
	if (rxbuf__attached(fd)) {
		int saved = errno;
		size_t total = 0;
		for (int i = 0; i < iovcnt; i++)
			total += iov[i].iov_len;
		atomic_store(&rxbuf.write_full, n < 0 ? 1 : (size_t)n < total);
		errno = saved;
	}
	return n;
}

/* close() as the C library's; closing the attached descriptor detaches it
 * first, so its number's next owner never reads the old connection's bytes. */
int close(int fd)
{
	mqp_rxbuf_detach(fd);
	return rxbuf__real_close(fd);
}
