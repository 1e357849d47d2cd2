/* Shards: which instance owns a key (README "Scaling out").
 *
 * A deployment has a fixed number S of shards. A key's shard is the CRC-32
 * of its UTF-8 bytes (zlib's crc32(), the IEEE polynomial of Ethernet and
 * PNG, which every language's standard library has: Python's zlib.crc32,
 * Go's hash/crc32, Java's java.util.zip.CRC32) modulo S, so a publisher
 * can shard its own events. With S > 1 an input T of a sharded agent's
 * shard K travels on shard/<K>/<T>. */
#ifndef MQPIPE_SHARD_H
#define MQPIPE_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define MQP_SHARDS_MAX 1024
#define MQP_SHARD_LEVEL "shard" /* the topic level in front of a shard's inputs */
/* mqpipe/republish/<K>: an owner of shard K that found its session gone asks
 * every producer to publish again its recent outputs for shard K. */
#define MQP_REPUBLISH_TOPIC "mqpipe/republish"
#define MQP_REPUBLISH_ASK_EVERY_MS 1000 /* an owner asks at most this often */

/* The shard, 0..shards-1, of the len bytes at key. shards 0 counts as 1. */
uint32_t mqp_shard_of(const void *key, size_t len, uint32_t shards);

/* Writes the topic of input `topic` for `shard` into buf[size]:
 * shard/<shard>/<topic> when shards > 1, else topic unchanged. Returns 0,
 * or MQP_ERR_INVAL when it does not fit. */
int mqp_shard_topic(uint32_t shards, uint32_t shard, const char *topic, char *buf, size_t size);

/* When topic starts with shard/<K>/ for a K below shards (shards > 1), sets
 * *shard to K and returns the length of that level and its slash; else
 * returns 0. */
size_t mqp_shard_level(const char *topic, size_t len, uint32_t shards, uint32_t *shard);

/* Whether a connect may have lost the owner's session, so that it asks for a
 * republish (README "Scaling out"): when the broker said it had none
 * (flag_known and !session_present), and when it cannot have said: Paho
 * 1.3 hands the CONNACK's sessionPresent to the first connect's onSuccess5
 * only, and an automatic reconnect (flag_known 0), which may have failed
 * over to a node that never had the session, is taken as lost. Returns 1 or 0. */
int mqp_shard_session_lost(int flag_known, int session_present);

/* When (Unix ms) an owner that last asked at last_ask_ms (0: never) may ask
 * again, at now_ms or later: at most once per MQP_REPUBLISH_ASK_EVERY_MS, so
 * a connection that flaps cannot flood the producers. */
int64_t mqp_shard_ask_at(int64_t last_ask_ms, int64_t now_ms);

#endif
