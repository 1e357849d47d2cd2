/* Broker URIs and TCP_NODELAY on the broker connection (mqpipe/net.h). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mqpipe/net.h"

Test(uri, splits_host_and_port_with_scheme_defaults)
{
	char host[64];
	int port;
	cr_assert_eq(mqp_net_parse_uri("tcp://127.0.0.1:1999", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 1999);
	cr_assert_eq(mqp_net_parse_uri("ssl://broker.example", host, sizeof(host), &port), 0);
	cr_assert_eq(port, 8883);
	cr_assert_eq(mqp_net_parse_uri("ws://h:9001/mqtt", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "h");
	cr_assert_eq(port, 9001);
	cr_assert_eq(mqp_net_parse_uri("tcp://[::1]:1883", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "::1");
}

Test(uri, refuses_malformed_uris)
{
	char host[64];
	int port;
	cr_assert_neq(mqp_net_parse_uri("127.0.0.1:1883", host, sizeof(host), &port), 0);
	cr_assert_neq(mqp_net_parse_uri("tcp://", host, sizeof(host), &port), 0);
	cr_assert_neq(mqp_net_parse_uri("tcp://h:0", host, sizeof(host), &port), 0);
	cr_assert_neq(mqp_net_parse_uri("tcp://h:70000", host, sizeof(host), &port), 0);
	cr_assert_neq(mqp_net_parse_uri("tcp://h:12x", host, sizeof(host), &port), 0);
}

static int nodelay(int fd)
{
	int v = -1;
	socklen_t len = sizeof(v);
	cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
	return v;
}

Test(nodelay, is_set_on_the_socket_connected_to_the_broker_and_no_other)
{
	/* A listener stands in for the broker; a second one for an unrelated peer. */
	int lb = socket(AF_INET, SOCK_STREAM, 0), lo = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in b = a;
	socklen_t len = sizeof(a);
	cr_assert_eq(bind(lb, (void *)&a, sizeof(a)), 0);
	cr_assert_eq(bind(lo, (void *)&b, sizeof(b)), 0);
	listen(lb, 1);
	listen(lo, 1);
	getsockname(lb, (void *)&a, &len);
	len = sizeof(b);
	getsockname(lo, (void *)&b, &len);
	int to_broker = socket(AF_INET, SOCK_STREAM, 0), to_other = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(to_broker, (void *)&a, sizeof(a)), 0);
	cr_assert_eq(connect(to_other, (void *)&b, sizeof(b)), 0);
	cr_assert_eq(nodelay(to_broker), 0, "Nagle is on by default");

	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", ntohs(a.sin_port));
	int fd = -1;
	cr_assert_eq(mqp_net_nodelay_to(uri, &fd), 1);
	cr_assert_eq(fd, to_broker);
	cr_assert_neq(nodelay(to_broker), 0);
	cr_assert_eq(nodelay(to_other), 0);
	cr_assert_eq(mqp_net_set_nodelay(to_broker, 0), 0);
	cr_assert_eq(nodelay(to_broker), 0);
	close(to_broker);
	close(to_other);
	close(lb);
	close(lo);
}

Test(nodelay, finds_nothing_when_not_connected)
{
	int fd = 5;
	cr_assert_eq(mqp_net_nodelay_to("tcp://127.0.0.1:9", &fd), 0);
	cr_assert_eq(fd, -1);
}

Test(pending, counts_bytes_waiting_to_be_read)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(mqp_net_pending(sv[1]), 0);
	cr_assert_eq(write(sv[0], "hello", 5), 5);
	cr_assert_eq(mqp_net_pending(sv[1]), 5);
	cr_assert_eq(mqp_net_pending(-1), -1);
	close(sv[0]);
	close(sv[1]);
}
