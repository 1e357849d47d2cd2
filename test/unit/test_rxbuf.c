/* The read buffer under Paho's broker socket (mqpipe/rxbuf.h): this test
 * binary links it, so its recv(), poll(), writev() and close() are the ones
 * under test. A socket pair stands in for the broker connection: "peer" is
 * the broker's end, "ours" the one Paho would read. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/rxbuf.h"

static int ours = -1, peer = -1;

static void pair_open(void)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ours = sv[0];
	peer = sv[1];
	/* Paho's sockets are non-blocking. */
	cr_assert_eq(fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK), 0);
}

static void pair_close(void)
{
	if (ours >= 0)
		close(ours);
	if (peer >= 0)
		close(peer);
	ours = peer = -1;
}

TestSuite(rxbuf, .init = pair_open, .fini = pair_close);

static void send_all(int fd, const char *s)
{
	cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Bytes the kernel still holds for fd. */
static int in_kernel(int fd)
{
	int n = -1;
	cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

/* Attaches ours, has the peer send s, and reads its first byte as Paho
 * reads a packet's type: from then on the rest of s is held. */
static void hold_after_one_byte(const char *s)
{
	cr_assert_eq(mqp_rxbuf_attach(ours), MQP_OK);
	send_all(peer, s);
	char c = 0;
	cr_assert_eq(recv(ours, &c, 1, 0), 1);
	cr_assert_eq(c, s[0]);
}

Test(rxbuf, serves_small_reads_from_one_read_of_the_socket)
{
	cr_assert_eq(mqp_rxbuf_attach(ours), MQP_OK);
	send_all(peer, "abcdef");
	send_all(peer, "ghi");
	char c = 0, buf[16] = {0};
	cr_assert_eq(recv(ours, &c, 1, 0), 1); /* Paho's first read: the packet type byte */
	cr_assert_eq(c, 'a');
	cr_assert_eq(in_kernel(ours), 0, "one read took everything the socket had");
	cr_assert_eq(mqp_rxbuf_held(ours), 8);
	cr_assert_eq(recv(ours, buf, 3, 0), 3);
	cr_assert_str_eq(buf, "bcd");
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(recv(ours, buf, sizeof(buf), 0), 5, "fewer than asked: only what is held");
	cr_assert_str_eq(buf, "efghi");
	cr_assert_eq(mqp_rxbuf_held(ours), 0);
}

Test(rxbuf, says_readable_while_bytes_are_held_though_the_socket_is_empty)
{
	hold_after_one_byte("xyz");
	cr_assert_eq(in_kernel(ours), 0);
	struct pollfd p = {.fd = ours, .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 0), 1);
	cr_assert_eq(p.revents, POLLIN);
	char rest[2];
	cr_assert_eq(recv(ours, rest, 2, 0), 2);
	p.revents = 0;
	cr_assert_eq(poll(&p, 1, 0), 0, "empty buffer, empty socket: the kernel answers");
	cr_assert_eq(recv(ours, rest, 1, 0), -1);
	cr_assert_eq(errno, EAGAIN, "the socket's own error, untouched");
}

Test(rxbuf, a_held_descriptor_among_others_is_readable_and_the_others_are_asked)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	hold_after_one_byte("ab");
	send_all(sv[1], "q");
	struct pollfd p[2] = {{.fd = sv[0], .events = POLLIN}, {.fd = ours, .events = POLLIN}};
	cr_assert_eq(poll(p, 2, 0), 2);
	cr_assert(p[0].revents & POLLIN, "the other descriptor's bytes are seen too");
	cr_assert(p[1].revents & POLLIN);
	close(sv[0]);
	close(sv[1]);
}

Test(rxbuf, leaves_unattached_descriptors_and_flagged_reads_to_the_kernel)
{
	send_all(peer, "xy");
	char c = 0;
	cr_assert_eq(recv(ours, &c, 1, 0), 1, "not attached: an ordinary read");
	cr_assert_eq(in_kernel(ours), 1);
	cr_assert_eq(mqp_rxbuf_attach(ours), MQP_OK);
	cr_assert_eq(recv(ours, &c, 1, MSG_PEEK), 1);
	cr_assert_eq(c, 'y');
	cr_assert_eq(mqp_rxbuf_held(ours), 0, "a read with flags is the kernel's");
	cr_assert_eq(in_kernel(ours), 1);
}

Test(rxbuf, reports_the_end_of_the_stream_after_the_held_bytes)
{
	cr_assert_eq(mqp_rxbuf_attach(ours), MQP_OK);
	send_all(peer, "last");
	close(peer);
	peer = -1;
	char buf[8] = {0};
	cr_assert_eq(recv(ours, buf, 2, 0), 2);
	cr_assert_eq(recv(ours, buf + 2, 8, 0), 2);
	cr_assert_str_eq(buf, "last");
	cr_assert_eq(recv(ours, buf, 8, 0), 0, "then the peer's close, as recv() reports it");
}

Test(rxbuf, hands_a_read_as_large_as_the_buffer_straight_to_the_caller)
{
	cr_assert_eq(mqp_rxbuf_attach(ours), MQP_OK);
	static char big[80 * 1024], got[80 * 1024];
	memset(big, 'b', sizeof(big));
	big[0] = 'B';
	cr_assert_eq(fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK), 0);
	ssize_t sent = write(peer, big, sizeof(big));
	cr_assert_gt(sent, 0);
	ssize_t n = recv(ours, got, sizeof(got), 0);
	cr_assert_gt(n, 0);
	cr_assert_eq(mqp_rxbuf_held(ours), 0, "nothing went through the buffer");
	cr_assert_eq(memcmp(big, got, (size_t)n), 0);
}

Test(rxbuf, close_drops_held_bytes_so_the_number_s_next_owner_reads_its_own)
{
	hold_after_one_byte("old bytes");
	cr_assert_gt(mqp_rxbuf_held(ours), 0);
	int number = ours;
	close(ours);
	ours = -1;
	close(peer);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ours = sv[0];
	peer = sv[1];
	cr_assert(ours == number || peer == number, "the number is reused");
	int reused = ours == number ? ours : peer, other = reused == ours ? peer : ours;
	cr_assert_eq(mqp_rxbuf_held(reused), 0);
	send_all(other, "new");
	char buf[8] = {0};
	cr_assert_eq(recv(reused, buf, sizeof(buf), 0), 3);
	cr_assert_str_eq(buf, "new");
}

Test(rxbuf, says_writable_until_a_write_falls_short_then_asks_the_kernel)
{
	cr_assert_eq(mqp_rxbuf_attach(ours), MQP_OK);
	struct pollfd p = {.fd = ours, .events = POLLOUT};
	cr_assert_eq(poll(&p, 1, 0), 1);
	cr_assert_eq(p.revents, POLLOUT);
	/* Fill the socket until writev() cannot take everything. */
	static char chunk[16 * 1024];
	struct iovec iov = {chunk, sizeof(chunk)};
	ssize_t n;
	while ((n = writev(ours, &iov, 1)) == (ssize_t)sizeof(chunk))
		;
	p.revents = 0;
	cr_assert_eq(poll(&p, 1, 0), 0, "full: the kernel's answer, not writable");
	/* The peer reads it all; a whole write makes it writable without asking. */
	cr_assert_eq(fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK), 0);
	static char sink[64 * 1024];
	while (read(peer, sink, sizeof(sink)) > 0)
		;
	struct iovec one = {chunk, 1};
	cr_assert_eq(writev(ours, &one, 1), 1);
	p.revents = 0;
	cr_assert_eq(poll(&p, 1, 0), 1);
	cr_assert_eq(p.revents, POLLOUT);
}

Test(rxbuf, attaching_a_negative_descriptor_is_refused)
{
	cr_assert_eq(mqp_rxbuf_attach(-1), MQP_ERR_INVAL);
	cr_assert_eq(mqp_rxbuf_held(-1), 0);
	mqp_rxbuf_detach(-1); /* a no-op */
}
