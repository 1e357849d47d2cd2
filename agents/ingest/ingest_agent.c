/* The ingest agent: user.ingest and user.list requests in, replies out on
 * each request's MQTT 5 response topic with its correlation data (or on
 * user.ingest.result / user.list.result for a request without one). The
 * rules are pure functions in ingest_logic.c, the records and answers in
 * SQLite in ingest_state.c; this file wires them to the requests.
 *
 * Every request is remembered with its answer in the same transaction as
 * the record it stored, by a digest of its response topic and its
 * correlation data, else its request_id, else its payload (ingest__key): a
 * repeat (a redelivery included) gets that first answer again and stores
 * nothing new, across restarts too. Answers go only to response topics under --reply-prefix
 * (the runtime enforces it, see mqp_reply). */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ingest_agent.h"
#include "ingest_logic.h"
#include "ingest_state.h"

static const char *const ingest__subscriptions[] = {"user.ingest", "user.list", NULL};

#define INGEST__RETAIN_DEFAULT_MS (7 * 86400 * 1000LL) /* --retain-requests */
#define INGEST__PURGE_EVERY_MS 1000
#define INGEST__PURGE_BATCH 256
#define INGEST__KEY_RAW_MAX 32 /* ingest__key: longer values are digested */
#define INGEST__KEY_MAX (1 + 32 + 32)

struct ingest {
	struct ingest_state *db;
	struct ingest_rules rules;
	int rules_ready;
	int64_t retain_ms;      /* --retain-requests: how long a repeat gets the first answer */
	int64_t next_purge_ms;
	char reply_prefix[256]; /* --reply-prefix, ending in '/' (or "": any) */
	EVP_MD_CTX *md;         /* ingest__key's digests: one context, reset by each init */
};

static int ingest__init(void *state, struct mqp_store *store)
{
	struct ingest *g = state;
	if (ingest_rules_init(&g->rules))
		return MQP_ERR_NOMEM;
	g->rules_ready = 1;
	if (!(g->md = EVP_MD_CTX_new()))
		return MQP_ERR_NOMEM;
	return ingest_state_open(store, &g->db);
}

static void ingest__fini(void *state)
{
	struct ingest *g = state;
	ingest_state_close(g->db);
	if (g->rules_ready)
		ingest_rules_free(&g->rules);
	EVP_MD_CTX_free(g->md);
	free(g);
}

/* The key a repeat is recognised by (README "Ingestion"): a kind byte, the
 * SHA-256 of the response topic ("" when none), and a value: 'c' with the
 * correlation data, when the request has both; else 'r' with its
 * request_id; else 'h' with the whole payload. The response topic names the
 * requester (on the secure profile only it can read its replies/<user>/), so
 * a broker's redelivery (its PUBACK was lost with a dropped connection) is
 * the same request, while two requesters that happen to send the same
 * correlation data or request_id are two. Without a response topic the
 * correlation data is not used: the fallback topic is everyone's.
 *
 * A value of up to INGEST__KEY_RAW_MAX bytes is kept as it is, a longer one
 * as its SHA-256 with the kind in capitals (so the two never meet): a key is
 * at most 1 + 32 + 32 bytes whatever the request holds, so what
 * --retain-requests keeps is bounded per request, and one requester's keys
 * (its digest, then a counter or a time, as correlation data usually is)
 * sort next to each other, so the B-tree is written where it was last
 * written instead of on a random page (issue 15's bench regression: a key
 * that was all digest made every insert read a page back). Keys of older
 * versions, the raw value alone, simply stop matching and expire with it.
 * md is the agent's one digest context (ingest__init), reset here.
 * Returns the key's length, 0 only when hashing failed (logged; the request
 * is then not remembered). */
static size_t ingest__key(EVP_MD_CTX *md, const struct mqp_message *msg, const char *request_id,
			  unsigned char key[static INGEST__KEY_MAX])
{
	const char *to = msg->response_topic ? msg->response_topic : "";
	const void *value = msg->payload;
	size_t n = msg->len;
	key[0] = 'h';
	if (msg->response_topic && msg->correlation) {
		key[0] = 'c';
		value = msg->correlation;
		n = msg->correlation_len;
	} else if (request_id[0]) {
		key[0] = 'r';
		value = request_id;
		n = strlen(request_id);
	}
	unsigned len = 0, vlen = 0;
	int raw = n <= INGEST__KEY_RAW_MAX;
	int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(md, to, strlen(to)) && EVP_DigestFinal_ex(md, key + 1, &len);
	if (ok && !raw)
		ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) && EVP_DigestUpdate(md, value, n) &&
		     EVP_DigestFinal_ex(md, key + 1 + len, &vlen);
	if (!ok) {
		mqp_warn("request_digest_failed", "effect=\"a redelivery of this request is stored again\"");
		return 0;
	}
	if (raw) {
		if (n)
			memcpy(key + 1 + len, value, n);
		vlen = (unsigned)n;
	} else {
		key[0] = (unsigned char)(key[0] - 'a' + 'A');
	}
	return 1 + len + vlen;
}

static int ingest__ingest(struct ingest *g, struct mqp_ctx *ctx, const struct mqp_message *msg)
{
	struct ingest_user user;
	struct ingest_errors errs;
	char request_id[MQP_STR_MAX + 1];
	unsigned char key[INGEST__KEY_MAX];
	int rc = ingest_parse(&g->rules, msg->payload, msg->len, &user, request_id, &errs);
	if (rc == MQP_ERR_NOMEM)
		return rc;
	size_t klen = ingest__key(g->md, msg, request_id, key);
	char *reply = NULL;
	if (klen && (rc = ingest_state_remembered(g->db, key, klen, &reply)))
		return rc;
	if (reply) { /* a repeat: the first answer, nothing stored */
		mqp_debug("repeat", "request_id=\"%s\"", request_id);
		rc = mqp_reply(ctx, "user.ingest.result", reply, strlen(reply));
		free(reply);
		return rc;
	}
	int64_t id = 0;
	if (errs.n == 0 && (rc = ingest_state_add_user(g->db, &user, msg->received_ms, &id)))
		return rc;
	reply = errs.n ? ingest_reply_errors(&errs) : ingest_reply_ok(id, &user, msg->received_ms);
	if (!reply)
		return MQP_ERR_NOMEM;
	if (errs.n)
		mqp_debug("refused", "fields=%d first=%s", errs.n, errs.e[0].field);
	if (klen && (rc = ingest_state_remember(g->db, key, klen, reply, msg->received_ms))) {
		free(reply);
		return rc;
	}
	rc = mqp_reply(ctx, "user.ingest.result", reply, strlen(reply));
	free(reply);
	return rc;
}

/* A page of records being rendered (ingest_state_each_user). */
struct ingest__page {
	cJSON *items;
	int64_t last; /* the id of the last record on it */
};

/* Adds one record to the page. Returns 0 or MQP_ERR_NOMEM. */
static int ingest__page_add(void *arg, int64_t id, const char *user_name, const char *email,
			    const char *pincode, int64_t created_ms)
{
	struct ingest__page *p = arg;
	cJSON *it = cJSON_CreateObject();
	p->last = id;
	int ok = it && cJSON_AddItemToArray(p->items, it) &&
		 mqp_json_add_uint(it, "id", (uint64_t)id) &&
		 cJSON_AddStringToObject(it, "user_name", user_name) &&
		 cJSON_AddStringToObject(it, "email", email) &&
		 cJSON_AddStringToObject(it, "pincode", pincode) &&
		 mqp_json_add_uint(it, "created_at", (uint64_t)created_ms);
	return ok ? MQP_OK : MQP_ERR_NOMEM;
}

/* Renders one page of records: {"status":200,"items":[…],"next":cursor|null}. */
static int ingest__list(struct ingest *g, struct mqp_ctx *ctx, const struct mqp_message *msg)
{
	int64_t limit, after;
	struct ingest_errors errs;
	int rc = ingest_parse_list(msg->payload, msg->len, &limit, &after, &errs);
	if (rc == MQP_ERR_NOMEM)
		return rc;
	char *reply = NULL;
	if (rc) {
		reply = ingest_reply_errors(&errs);
	} else {
		cJSON *o = cJSON_CreateObject();
		struct ingest__page page = {
			.items = o && mqp_json_add_uint(o, "status", 200)
					 ? cJSON_AddArrayToObject(o, "items")
					 : NULL,
		};
		int ok = page.items != NULL, more = 0;
		if (ok) {
			rc = ingest_state_each_user(g->db, after, limit, ingest__page_add, &page, &more);
			if (rc && rc != MQP_ERR_NOMEM) {
				cJSON_Delete(o);
				return rc;
			}
			ok = !rc;
		}
		char cursor[24];
		ingest_cursor(page.last, cursor);
		if (ok && !(more ? cJSON_AddStringToObject(o, "next", cursor) : cJSON_AddNullToObject(o, "next")))
			ok = 0;
		reply = ok ? cJSON_PrintUnformatted(o) : NULL;
		cJSON_Delete(o);
	}
	if (!reply)
		return MQP_ERR_NOMEM;
	rc = mqp_reply(ctx, "user.list.result", reply, strlen(reply));
	free(reply);
	return rc;
}

static int ingest__handle(void *state, struct mqp_ctx *ctx, const struct mqp_message *msg,
			  struct mqp_reason *why)
{
	struct ingest *g = state;
	if (strcmp(msg->topic, "user.ingest") == 0)
		return ingest__ingest(g, ctx, msg);
	if (strcmp(msg->topic, "user.list") == 0)
		return ingest__list(g, ctx, msg);
	return mqp_reason_set(why, "topic '%s' is not one the ingest agent reads", msg->topic);
}

/* Forgets remembered answers older than --retain-requests, a batch at a
 * time (again at once while there are more), so the request table stays
 * bounded by what arrives within the retention. */
static int ingest__tick(void *state, struct mqp_ctx *ctx, int64_t now_ms, int64_t *next_ms)
{
	(void)ctx;
	struct ingest *g = state;
	int rc = MQP_OK;
	if (now_ms >= g->next_purge_ms) {
		g->next_purge_ms = now_ms + INGEST__PURGE_EVERY_MS;
		rc = ingest_state_purge(g->db, now_ms - g->retain_ms, INGEST__PURGE_BATCH);
		if (rc == INGEST__PURGE_BATCH)
			g->next_purge_ms = now_ms;
		rc = rc < 0 ? rc : MQP_OK;
	}
	*next_ms = g->next_purge_ms;
	return rc;
}

static int ingest__retain_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	return mqp_duration_arg(arg, &((struct ingest *)ctx)->retain_ms, err, errlen);
}

/* --reply-prefix P: a topic prefix, without wildcards; "replies" and
 * "replies/" are the same, "" allows any response topic. */
static int ingest__reply_prefix_option(void *ctx, const char *arg, char *err, size_t errlen)
{
	struct ingest *g = ctx;
	size_t n = strlen(arg);
	if (strpbrk(arg, "+#")) {
		snprintf(err, errlen, "--reply-prefix: '%s' holds a wildcard (+ or #)", arg);
		return -1;
	}
	if (n + 2 > sizeof(g->reply_prefix)) {
		snprintf(err, errlen, "--reply-prefix: longer than %zu bytes", sizeof(g->reply_prefix) - 2);
		return -1;
	}
	snprintf(g->reply_prefix, sizeof(g->reply_prefix), "%s%s", arg,
		 n && arg[n - 1] != '/' ? "/" : "");
	return 0;
}

static const struct mqp_extra_option ingest__options[] = {
	{"retain-requests", 1, "DURATION",
	 "a repeated request gets the first answer for this long (default 7d)", ingest__retain_option, 0},
	{"reply-prefix", 1, "P",
	 "answer only response topics under P (after -p; default replies/, '' for any)",
	 ingest__reply_prefix_option, 0},
};

int ingest_agent(struct mqp_agent *agent)
{
	struct ingest *g = calloc(1, sizeof(*g));
	if (!g)
		return MQP_ERR_NOMEM;
	g->retain_ms = INGEST__RETAIN_DEFAULT_MS;
	strcpy(g->reply_prefix, "replies/");
	*agent = (struct mqp_agent){
		.name = "ingest",
		.subscriptions = ingest__subscriptions,
		.migrations = ingest_state_migrations,
		.n_migrations = ingest_state_n_migrations,
		.init = ingest__init,
		.fini = ingest__fini,
		.reply_prefix = g->reply_prefix,
		.refusal = ingest_reply_error,
		.options = ingest__options,
		.n_options = MQP_LEN(ingest__options),
		.options_ctx = g,
		.handle = ingest__handle,
		.tick = ingest__tick,
		.state = g,
	};
	return MQP_OK;
}
