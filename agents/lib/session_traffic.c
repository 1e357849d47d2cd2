/* The session's traffic: publishing, receiving, adaptive Nagle (see
 * session.h and session_internal.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqpipe/net.h"
#include "mqpipe/rxbuf.h"
#include "mqpipe/runtime.h"
#include "session_internal.h"

#define SESSION__CUT_KEEP 256 /* bytes of an over-long payload kept for its dead letter */
#define SESSION__PUBACK 4     /* MQTT control packet type (Paho keeps its enum private) */

/* TCP_NODELAY makes every PUBACK its own segment through the whole TCP path,
 * which caps how fast a queued backlog drains; Nagle coalesces them. So when
 * the broker has a backlog for us (more than SESSION__BACKLOG_BYTES already
 * waiting in the socket, checked every 8th message) Nagle is let on; once the
 * applier has caught up and arrivals have paused for SESSION__BURST_GAP_US it
 * turns TCP_NODELAY back on, which also sends what Nagle held. Live traffic
 * and lone messages, and the outputs they cause, never wait on Nagle. */
#define SESSION__BACKLOG_BYTES 4096
#define SESSION__BURST_GAP_US 200

struct session *session__one;

/* ---- publishing ---------------------------------------------------------- */

static void session__on_sent(void *context, MQTTAsync_successData5 *response)
{
	(void)response;
	struct session *s = session__one;
	int64_t id = (int64_t)(intptr_t)context;
	if (id == SESSION__ID_OFFLINE)
		atomic_store(&s->offline_acked, 1);
	if (id > 0)
		outbox__acked(s->p.outbox, id);
}

/* True for a PUBACK reason code that sending again cannot change: the
 * broker refused the topic or the payload (MQTT 5, 3.4.2.1), e.g. an ACL's
 * "not authorized". Quota exceeded and unspecified errors may pass later. */
static int session__refused_for_good(const MQTTAsync_failureData5 *r)
{
	return r && r->packet_type == SESSION__PUBACK &&
	       r->reasonCode >= MQTTREASONCODE_IMPLEMENTATION_SPECIFIC_ERROR &&
	       r->reasonCode != MQTTREASONCODE_QUOTA_EXCEEDED;
}

static void session__on_send_failed(void *context, MQTTAsync_failureData5 *response)
{
	struct session *s = session__one;
	int64_t id = (int64_t)(intptr_t)context;
	if (session__refused_for_good(response)) {
		/* Sending again would be refused again, and Paho drops the
		 * connection after each refusal: an outbox row leaves the outbox
		 * as a dead letter (outbox__note), so neither a reconnect nor a
		 * restart sends it again (README "Security"). Logged here, once. */
		mqp_error("publish_refused", "id=%lld reason=%d msg=\"%s\" action=\"%s\"",
			  (long long)id, (int)response->reasonCode,
			  MQTTReasonCode_toString(response->reasonCode),
			  id > 0 ? "dead-lettered" : "dropped");
		if (id > 0)
			outbox__refused(s->p.outbox, id, (int)response->reasonCode,
					MQTTReasonCode_toString(response->reasonCode));
		return;
	}
	mqp_warn("publish_failed", "id=%lld code=%d msg=\"%s\"", (long long)id,
		 response ? response->code : 0,
		 response && response->message ? response->message : "");
	if (id > 0)
		outbox__failed(s->p.outbox, id);
}

/* session_ops.publish: see session_ops.h. */
int session__publish(void *impl, int64_t id, const char *topic, const void *payload,
			    size_t len, int qos, int retain, const void *correlation,
			    size_t correlation_len)
{
	struct session *s = impl;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = qos;
	msg.retained = retain;
	ro.onSuccess5 = session__on_sent;
	ro.onFailure5 = session__on_send_failed;
	ro.context = (void *)(intptr_t)id;
	if (correlation) { /* Paho copies the property list, and sends it */
		MQTTProperty prop = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
		prop.value.data.data = (char *)correlation;
		prop.value.data.len = (int)correlation_len;
		if (MQTTProperties_add(&msg.properties, &prop))
			mqp_warn("correlation_dropped", "topic=%s", topic);
	}
	int rc = MQTTAsync_sendMessage(s->client, topic, &msg, &ro);
	MQTTProperties_free(&msg.properties);
	if (rc == MQTTASYNC_SUCCESS)
		return MQP_OK;
	char qt[300];
	mqp_debug("publish_refused", "topic=%s code=%d", mqp_log_quote(qt, sizeof(qt), topic), rc);
	return MQP_ERR_MQTT;
}

void session__publish_metrics(struct session *s, const char *text)
{
	session__publish(s, SESSION__ID_METRICS, s->metrics_topic, text, strlen(text), 1, 1, NULL, 0);
}

/* ---- adaptive Nagle ------------------------------------------------------ */

/* Bytes from the broker not yet handed to Paho: in the socket, and in the
 * read buffer under it (rxbuf.h). */
static long session__waiting_bytes(struct session *s)
{
	int fd = atomic_load(&s->broker_fd);
	int in_socket = mqp_net_pending(fd);
	return (in_socket > 0 ? in_socket : 0) + (long)mqp_rxbuf_held(fd);
}

static void session__nodelay(struct session *s, int on)
{
	int fd = atomic_load(&s->broker_fd);
	if (fd >= 0 && atomic_exchange(&s->nodelay_on, on) != on)
		mqp_net_set_nodelay(fd, on);
}

/* session_ops.applied: once caught up with a paused stream, nothing
 * (PUBACKs, outputs) may wait on Nagle any longer. */
void session__applied(void *impl)
{
	struct session *s = impl;
	if (!atomic_load(&s->nodelay_on) &&
	    mqp_now_us() - atomic_load(&s->last_arrival_us) >= SESSION__BURST_GAP_US &&
	    mqp_inbox_backlog(s->p.inbox) == 0)
		session__nodelay(s, 1);
}

int session__bursting(void *impl)
{
	return !atomic_load(&((struct session *)impl)->nodelay_on);
}

/* ---- receiving ----------------------------------------------------------- */

/* The inbox meta of an MQTT 5 request: where and with what the answer must
 * go. A response topic with wildcards could never be published to (the
 * answer would wait in the outbox for ever): such a request counts as none
 * and is answered on the fallback topic (MQTT 5 forbids them anyway). */
static void session__request_meta(MQTTAsync_message *m, struct mqp_inbox_meta *meta)
{
	MQTTProperty *rtp = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
	if (!rtp || rtp->value.data.len <= 0 ||
	    memchr(rtp->value.data.data, '+', (size_t)rtp->value.data.len) ||
	    memchr(rtp->value.data.data, '#', (size_t)rtp->value.data.len))
		return;
	MQTTProperty *cdp = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	meta->response_topic = rtp->value.data.data;
	meta->response_topic_len = (size_t)rtp->value.data.len;
	if (cdp) {
		meta->correlation = cdp->value.data.data;
		meta->correlation_len = (size_t)cdp->value.data.len;
	}
}

/* Paho's message callback: appends the message to the inbox; returning 1
 * lets Paho acknowledge it, 0 makes it offer the message again. */
int session__on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct session *s = context;
	int64_t now = mqp_now_us();
	if ((++s->arrivals & 7) == 0 && atomic_load(&s->nodelay_on) &&
	    session__waiting_bytes(s) > SESSION__BACKLOG_BYTES)
		session__nodelay(s, 0);
	atomic_store(&s->last_arrival_us, now);
	/* topic_len is 0 unless the topic holds NULs (then it is the real length). */
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	struct mqp_inbox_meta meta = {0};
	session__request_meta(m, &meta);
	/* Over the limit, only the start is kept, for the dead letter: the
	 * applier never holds such a payload whole. */
	size_t keep = (size_t)m->payloadlen;
	if (m->payloadlen > s->p.opts->max_payload) {
		meta.cut_from = (uint64_t)m->payloadlen;
		keep = SESSION__CUT_KEEP;
	}
	int rc = mqp_inbox_append(s->p.inbox, topic, tlen, m->payload, keep, m->qos, now,
				  meta.response_topic || meta.cut_from ? &meta : NULL);
	if (rc) {
		/* Not stored, so not acknowledged: Paho keeps it and offers it again. */
		char qt[300];
		mqp_error("inbox_append_failed", "topic=%s msg=\"%s\"", mqp_log_quote(qt, sizeof(qt), topic),
			  rc == MQP_ERR_IO ? strerror(errno) : mqp_strerror(rc));
		mqp_metrics_error(s->p.metrics);
		return 0;
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

