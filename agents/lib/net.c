/* TCP_NODELAY on the broker connection: see mqpipe/net.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/net.h"
#include "mqpipe/rxbuf.h"

int mqp_net_parse_uri(const char *uri, char *host, unsigned long host_size, int *port)
{
	static const struct { const char *scheme; int port; } schemes[] = {
		{"tcp://", 1883}, {"mqtt://", 1883}, {"ssl://", 8883},
		{"mqtts://", 8883}, {"ws://", 80}, {"wss://", 443},
	};
	const char *rest = NULL;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].scheme);
		if (strncmp(uri, schemes[i].scheme, n) == 0) {
			rest = uri + n;
			*port = schemes[i].port;
			break;
		}
	}
	if (!rest || !*rest)
		return MQP_ERR_INVAL;
	const char *host_start = rest, *host_end;
	const char *after;
	if (*rest == '[') { /* [v6]:port */
		host_start = rest + 1;
		host_end = strchr(host_start, ']');
		if (!host_end)
			return MQP_ERR_INVAL;
		after = host_end + 1;
	} else {
		host_end = rest + strcspn(rest, ":/");
		after = host_end;
	}
	size_t hlen = (size_t)(host_end - host_start);
	if (hlen == 0 || hlen >= host_size)
		return MQP_ERR_INVAL;
	memcpy(host, host_start, hlen);
	host[hlen] = '\0';
	if (*after == ':') {
		char *end;
		long p = strtol(after + 1, &end, 10);
		if (end == after + 1 || p <= 0 || p > 65535 || (*end && *end != '/'))
			return MQP_ERR_INVAL;
		*port = (int)p;
	}
	return MQP_OK;
}

int mqp_net_uri_tls(const char *uri)
{
	return strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0 ||
	       strncmp(uri, "wss://", 6) == 0;
}

void mqp_net_paho_quiet(void)
{
	const char *trace = getenv("MQTT_C_CLIENT_TRACE");
	if (!trace || !*trace)
		MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
}

/* Whether two socket addresses are the same host and port. */
static int net__same_peer(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

int mqp_net_pending(int fd)
{
	int n = 0;
	return fd >= 0 && ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

int mqp_net_set_nodelay(int fd, int nodelay)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof(nodelay)) ? MQP_ERR_IO
										   : MQP_OK;
}

int mqp_net_nodelay_to(const char *uri, int *found)
{
	if (found)
		*found = -1;
	char host[256], service[8];
	int port;
	if (mqp_net_parse_uri(uri, host, sizeof(host), &port))
		return MQP_ERR_INVAL;
	snprintf(service, sizeof(service), "%d", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *addrs = NULL;
	if (getaddrinfo(host, service, &hints, &addrs) != 0)
		return MQP_ERR_INVAL;

	DIR *dir = opendir("/proc/self/fd");
	if (!dir) {
		freeaddrinfo(addrs);
		return MQP_ERR_IO;
	}
	int set = 0;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		int fd = atoi(de->d_name);
		struct stat st;
		if (de->d_name[0] == '.' || fd == dirfd(dir) || fstat(fd, &st) || !S_ISSOCK(st.st_mode))
			continue;
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int type = 0;
		socklen_t tlen = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) || type != SOCK_STREAM ||
		    getpeername(fd, (struct sockaddr *)&peer, &plen))
			continue;
		for (struct addrinfo *ai = addrs; ai; ai = ai->ai_next) {
			if (!net__same_peer((struct sockaddr *)&peer, ai->ai_addr))
				continue;
			if (mqp_net_set_nodelay(fd, 1) == 0) {
				set++;
				if (found)
					*found = fd;
			}
			break;
		}
	}
	closedir(dir);
	freeaddrinfo(addrs);
	return set;
}

int mqp_net_after_connect(const char *uri, int *fd, int *buffer_rc)
{
	int n = mqp_net_nodelay_to(uri, fd);
	*buffer_rc = *fd >= 0 && !mqp_net_uri_tls(uri) ? mqp_rxbuf_attach(*fd) : MQP_OK;
	return n;
}

int mqp_net_after_connect_any(const char *uris, int *fd, int *buffer_rc)
{
	char one[512];
	int n = 0;
	*fd = -1;
	*buffer_rc = MQP_OK;
	for (const char *p = uris; *p;) {
		size_t len = strcspn(p, ",");
		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		if ((n = mqp_net_after_connect(one, fd, buffer_rc)) > 0 || !p[len])
			return n;
		p += len + 1;
	}
	return n;
}

int mqp_net_receive_maximum(MQTTProperties *props)
{
	if (!props || !MQTTProperties_hasProperty(props, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
		return 65535;
	int v = MQTTProperties_getNumericValue(props, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
	return v > 0 ? v : 65535;
}
