/* libFuzzer target: the ingest agent's decoders — the URL query string,
 * a whole user.ingest payload (JSON or query) with its validation, and
 * user.list. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../agents/ingest/ingest_logic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ingest_rules rules;
	static int ready;
	if (!ready && ingest_rules_init(&rules) == 0)
		ready = 1;
	struct ingest_errors errs = {0};
	cJSON *obj = NULL;
	if (ingest_query_decode((const char *)data, size, &obj, &errs) == 0)
		cJSON_Delete(obj);
	if (ready) {
		struct ingest_user user;
		char request_id[MQP_STR_MAX + 1];
		struct ingest_errors e2 = {0};
		ingest_parse(&rules, data, size, &user, request_id, &e2);
	}
	int64_t limit, after;
	struct ingest_errors e3 = {0};
	ingest_parse_list(data, size, &limit, &after, &e3);
	return 0;
}
