/* Shards: see mqpipe/shard.h. */
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "mqpipe/error.h"
#include "mqpipe/shard.h"

uint32_t mqp_shard_of(const void *key, size_t len, uint32_t shards)
{
	if (shards <= 1)
		return 0;
	/* zlib takes a uInt length: keys are at most a few hundred bytes (README
	 * "Input rules"), but a longer one is hashed in pieces all the same. */
	uLong crc = crc32(0L, Z_NULL, 0);
	const Bytef *p = key;
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)(crc % shards);
}

int mqp_shard_topic(uint32_t shards, uint32_t shard, const char *topic, char *buf, size_t size)
{
	int n = shards > 1 ? snprintf(buf, size, MQP_SHARD_LEVEL "/%u/%s", (unsigned)shard, topic)
			   : snprintf(buf, size, "%s", topic);
	return n < 0 || (size_t)n >= size ? MQP_ERR_INVAL : MQP_OK;
}

size_t mqp_shard_level(const char *topic, size_t len, uint32_t shards, uint32_t *shard)
{
	const size_t lead = sizeof(MQP_SHARD_LEVEL); /* "shard/" */
	if (shards <= 1 || len <= lead || memcmp(topic, MQP_SHARD_LEVEL "/", lead) != 0)
		return 0;
	uint32_t k = 0;
	size_t i = lead;
	/* Decimal without leading zeros, as mqp_shard_topic writes it. */
	if (topic[i] == '0' && i + 1 < len && topic[i + 1] != '/')
		return 0;
	for (; i < len && topic[i] >= '0' && topic[i] <= '9' && i - lead < 5; i++)
		k = k * 10 + (uint32_t)(topic[i] - '0');
	if (i == lead || i >= len || topic[i] != '/' || k >= shards)
		return 0;
	*shard = k;
	return i + 1;
}

int mqp_shard_session_lost(int flag_known, int session_present)
{
	return !flag_known || !session_present;
}

int64_t mqp_shard_ask_at(int64_t last_ask_ms, int64_t now_ms)
{
	if (last_ask_ms <= 0)
		return now_ms;
	int64_t at = last_ask_ms + MQP_REPUBLISH_ASK_EVERY_MS;
	return at > now_ms ? at : now_ms;
}
