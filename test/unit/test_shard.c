/* Shards (mqpipe/shard.h): the documented hash, and the topic level. */
#include <criterion/criterion.h>
#include <string.h>
#include <zlib.h>

#include "mqpipe/error.h"
#include "mqpipe/shard.h"

Test(shard, is_the_crc32_of_the_keys_bytes_modulo_the_shards)
{
	/* CRC-32's check value (the IEEE polynomial): crc32("123456789") = 0xCBF43926. */
	cr_assert_eq(mqp_shard_of("123456789", 9, 1000), 0xCBF43926u % 1000);
	cr_assert_eq(mqp_shard_of("123456789", 9, 7), 0xCBF43926u % 7);
	/* What Python's zlib.crc32(b"m-2") % 4 gives, as publishers compute it. */
	cr_assert_eq(mqp_shard_of("m-2", 3, 4), 2);
}

Test(shard, of_utf8_keys_hashes_their_bytes)
{
	const char *key = "m\xc3\xa9tro"; /* "métro" */
	uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)key, (uInt)strlen(key));
	cr_assert_eq(mqp_shard_of(key, strlen(key), 16), crc % 16);
}

Test(shard, one_shard_holds_every_key)
{
	cr_assert_eq(mqp_shard_of("anything", 8, 1), 0);
	cr_assert_eq(mqp_shard_of("anything", 8, 0), 0);
}

Test(shard, topic_carries_the_shard_only_with_several)
{
	char buf[64];
	cr_assert_eq(mqp_shard_topic(4, 3, "recv_message", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "shard/3/recv_message");
	cr_assert_eq(mqp_shard_topic(1, 0, "recv_message", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "recv_message");
	cr_assert_eq(mqp_shard_topic(4, 3, "recv_message", buf, 10), MQP_ERR_INVAL);
}

Test(shard, level_is_read_back_only_when_well_formed_and_below_the_shards)
{
	uint32_t k = 99;
	const char *t = "shard/12/compute.done";
	cr_assert_eq(mqp_shard_level(t, strlen(t), 16, &k), strlen("shard/12/"));
	cr_assert_eq(k, 12);
	const char *bad[] = {"shard/12/x", "shard/012/x", "shard//x", "shard/1", "shard/x/y",
			     "shards/1/x", "recv_message"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(mqp_shard_level(bad[i], strlen(bad[i]), i == 0 ? 12 : 16, &k), 0, "%s",
			     bad[i]);
	cr_assert_eq(mqp_shard_level(t, strlen(t), 1, &k), 0, "no shard topics with one shard");
}

Test(shard, a_connect_without_a_session_or_without_the_flag_counts_as_lost)
{
	cr_assert_eq(mqp_shard_session_lost(1, 1), 0, "the broker kept it");
	cr_assert_eq(mqp_shard_session_lost(1, 0), 1, "the broker had none");
	/* Paho's automatic reconnect reports no sessionPresent: maybe another node. */
	cr_assert_eq(mqp_shard_session_lost(0, 0), 1);
	cr_assert_eq(mqp_shard_session_lost(0, 1), 1);
}

Test(shard, an_owner_asks_at_most_once_a_second)
{
	cr_assert_eq(mqp_shard_ask_at(0, 5000), 5000, "never asked: now");
	cr_assert_eq(mqp_shard_ask_at(4500, 5000), 4500 + MQP_REPUBLISH_ASK_EVERY_MS);
	cr_assert_eq(mqp_shard_ask_at(4000, 5000), 5000, "a second ago: now");
	cr_assert_eq(mqp_shard_ask_at(1000, 9000), 9000);
}
