/* mqpipe-shard: prints the shard of each KEY (README "Scaling out"), or
 * with --topic the topic its input goes to, one line per key. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "mqpipe/options.h"
#include "mqpipe/shard.h"

static void shard__usage(FILE *out)
{
	fprintf(out,
		"Usage: mqpipe-shard --shards S [--topic T] KEY...\n"
		"Prints the shard of each KEY (a moduleId, a requestId, a metric's name):\n"
		"the CRC-32 of its UTF-8 bytes modulo S (README \"Scaling out\").\n\n"
		"  --shards S   the deployment's number of shards, 1 to %d\n"
		"  --topic T    print the topic an input T for the key goes to instead\n"
		"               (shard/K/T, or T when S is 1)\n"
		"  -h, --help   this help\n"
		"  -V, --version\n",
		MQP_SHARDS_MAX);
}

/* A usage error: one line, then exit 64. */
static int shard__bad(const char *msg, const char *arg)
{
	fprintf(stderr, "mqpipe-shard: %s%s%s (see --help)\n", msg, arg ? " " : "", arg ? arg : "");
	return MQP_EX_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"shards", required_argument, NULL, 's'},
						 {"topic", required_argument, NULL, 't'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {0}};
	long shards = 0;
	const char *topic = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (mqp_parse_long(optarg, 1, MQP_SHARDS_MAX, &shards))
				return shard__bad("--shards: a whole number from 1 to 1024, not", optarg);
			break;
		case 't': topic = optarg; break;
		case 'h': shard__usage(stdout); return 0;
		case 'V': printf("mqpipe-shard %s\n", MQPIPE_VERSION); return 0;
		case ':': return shard__bad("option needs an argument:", argv[optind - 1]);
		default: return shard__bad("unknown option", argv[optind - 1]);
		}
	}
	if (!shards)
		return shard__bad("--shards S is needed", NULL);
	if (optind == argc)
		return shard__bad("no KEY given", NULL);
	for (int i = optind; i < argc; i++) {
		uint32_t k = mqp_shard_of(argv[i], strlen(argv[i]), (uint32_t)shards);
		char full[2048];
		if (!topic)
			printf("%u\n", (unsigned)k);
		else if (mqp_shard_topic((uint32_t)shards, k, topic, full, sizeof(full)) == 0)
			printf("%s\n", full);
		else
			return shard__bad("--topic: too long:", topic);
	}
	return 0;
}
