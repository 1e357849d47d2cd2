/* The ingest agent's rules (README "Ingestion") as pure functions:
 * decode a user.ingest request (a JSON object or a URL query string),
 * validate it with every failing field named, render the 200 and 400
 * replies, and read user.list requests and their opaque cursors. No SQLite,
 * no MQTT. */
#ifndef MQPIPE_INGEST_LOGIC_H
#define MQPIPE_INGEST_LOGIC_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "mqpipe/json.h"

#define INGEST_INPUT_MAX 4096   /* bytes of a request, JSON or query string */
#define INGEST_NAME_MAX 128     /* user_name, bytes */
#define INGEST_EMAIL_MAX 254    /* RFC 5321's practical limit */
#define INGEST_LIST_MAX 1000    /* user.list limit at most */
#define INGEST_LIST_DEFAULT 100
#define INGEST_ERRORS_MAX 8

/* Every field that failed, in the order checked. */
struct ingest_errors {
	int n;
	struct {
		char field[48];
		char message[160];
	} e[INGEST_ERRORS_MAX];
};

/* Adds one error (ignored beyond INGEST_ERRORS_MAX). Returns MQP_ERR_INPUT. */
int ingest_error(struct ingest_errors *errs, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A valid record. */
struct ingest_user {
	char user_name[INGEST_NAME_MAX + 1];
	char email[INGEST_EMAIL_MAX + 1];
	char pincode[7];
};

/* The compiled email pattern; one per agent. */
struct ingest_rules {
	regex_t email;
};

/* Compiles the rules. Returns 0 or MQP_ERR_INVAL (cannot happen with the
 * built-in pattern, but regcomp can fail for want of memory). */
int ingest_rules_init(struct ingest_rules *rules);
void ingest_rules_free(struct ingest_rules *rules);

/* Decodes a URL query string (`a=1&b=x+y%21`) into a new object of string
 * members: keys and values percent-decoded, `+` a space, a key without `=`
 * an empty value, empty pairs skipped. A malformed escape, a NUL, invalid
 * UTF-8 or a repeated key is an error naming the key. Returns 0 with *out
 * (cJSON_Delete it), MQP_ERR_INPUT with errs filled, or MQP_ERR_NOMEM. */
int ingest_query_decode(const char *text, size_t len, cJSON **out, struct ingest_errors *errs);

/* Parses a user.ingest payload: a JSON object when its first non-blank byte
 * is `{`, else a query string. Validates user_name (1-128 bytes of UTF-8
 * without control characters), email (^[A-Za-z][A-Za-z0-9]*@[A-Za-z0-9]+\.com$)
 * and pincode (4-6 ASCII digits; a JSON number is read as its digits), and
 * reads the optional request_id (1-256 bytes) into request_id[MQP_STR_MAX + 1]
 * ("" when absent). Returns 0 with *user filled, MQP_ERR_INPUT with every
 * failing field in errs, or MQP_ERR_NOMEM. */
int ingest_parse(const struct ingest_rules *rules, const void *payload, size_t len,
		 struct ingest_user *user, char *request_id, struct ingest_errors *errs);

/* {"status":200,"id":…,"user":{"user_name","email","pincode","created_at"}} */
char *ingest_reply_ok(int64_t id, const struct ingest_user *user, int64_t created_ms);
/* {"status":400,"errors":[{"field","message"}…]} */
char *ingest_reply_errors(const struct ingest_errors *errs);

/* The same with one error of any length (the runtime's refusals: a body over
 * --max-payload, a response topic off --reply-prefix). NULL: no memory. */
char *ingest_reply_error(const char *field, const char *message);

/* A user.list request: {"limit"?: 1-1000 = 100, "after"?: cursor}; an empty
 * payload asks for the first page. Returns 0 with *limit and *after_id (0 =
 * from the start), MQP_ERR_INPUT with errs, or MQP_ERR_NOMEM. */
int ingest_parse_list(const void *payload, size_t len, int64_t *limit, int64_t *after_id,
		      struct ingest_errors *errs);

/* The opaque cursor after row id: writes it into out[24]. */
void ingest_cursor(int64_t id, char *out);

#endif
