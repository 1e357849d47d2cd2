/* The worker's rules: see worker_logic.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqpipe/error.h"
#include "worker_logic.h"

void work_profile_default(struct work_profile *p)
{
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < JOBS_SOURCES; i++) {
		p->source_min_ms[i] = jobs_sources[i].min_ms;
		p->source_max_ms[i] = jobs_sources[i].max_ms;
	}
	p->latency_scale = 1.0;
}

/* Reads a whole number of ms up to WORK_MS_MAX from text, up to *end. */
static int work__ms(const char *text, char **end, unsigned *out)
{
	if (*text < '0' || *text > '9')
		return MQP_ERR_INVAL;
	errno = 0;
	unsigned long v = strtoul(text, end, 10);
	if (errno || v > WORK_MS_MAX)
		return MQP_ERR_INVAL;
	*out = (unsigned)v;
	return MQP_OK;
}

int work_parse_range(const char *text, unsigned *min_ms, unsigned *max_ms)
{
	char *end;
	unsigned lo, hi;
	if (work__ms(text, &end, &lo))
		return MQP_ERR_INVAL;
	hi = lo;
	if (*end == '-' && work__ms(end + 1, &end, &hi))
		return MQP_ERR_INVAL;
	if (*end || hi < lo)
		return MQP_ERR_INVAL;
	*min_ms = lo;
	*max_ms = hi;
	return MQP_OK;
}

int work_profile_load(struct work_profile *p, const char *text, size_t len, char *err,
		      size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(text, len);
	int rc = MQP_OK;
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "expected a JSON object like {\"sales\": [100, 400]}");
		rc = MQP_ERR_INVAL;
	}
	const cJSON *item, *entries = rc ? NULL : root;
	cJSON_ArrayForEach(item, entries) {
		int s = jobs_source_find(item->string);
		const cJSON *lo = cJSON_GetArrayItem(item, 0), *hi = cJSON_GetArrayItem(item, 1);
		if (s < 0) {
			snprintf(err, errlen, "'%s' is not a source (sales, inventory, marketing, "
				 "external_market, weather, competitor_pricing)", item->string);
			rc = MQP_ERR_INVAL;
		} else if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 ||
			   !cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) || lo->valuedouble < 0 ||
			   hi->valuedouble < lo->valuedouble || hi->valuedouble > WORK_MS_MAX ||
			   lo->valuedouble != (unsigned)lo->valuedouble ||
			   hi->valuedouble != (unsigned)hi->valuedouble) {
			snprintf(err, errlen, "'%s': expected [min_ms, max_ms], whole ms, min <= max <= %u",
				 item->string, WORK_MS_MAX);
			rc = MQP_ERR_INVAL;
		} else {
			p->source_min_ms[s] = (unsigned)lo->valuedouble;
			p->source_max_ms[s] = (unsigned)hi->valuedouble;
		}
		if (rc)
			break;
	}
	cJSON_Delete(root);
	return rc;
}

int work_parse_request(const void *payload, size_t len, struct work_case *out,
		       struct mqp_reason *why)
{
	out->request_id[0] = '\0';
	out->index = -1;
	out->work_ms = -1;
	out->source = -1;
	cJSON *root;
	int rc = mqp_json_parse_object(payload, len, &root, why);
	if (rc)
		return rc;
	struct jobs_done ids;
	if ((rc = jobs_parse_done_root(root, &ids, why))) {
		cJSON_Delete(root);
		return rc;
	}
	/* From here on the ids are good: a refused case can be answered as failed. */
	uint64_t v;
	if (cJSON_GetObjectItemCaseSensitive(root, "index") &&
	    !(rc = mqp_json_uint(root, "index", JOBS_CASES_MAX - 1, &v, why)))
		out->index = (int64_t)v;
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "case");
	struct jobs_case jc;
	struct mqp_reason inner;
	if (!rc && !cJSON_IsObject(c))
		rc = mqp_reason_set(why, "field 'case' must be an object");
	else if (!rc && (rc = jobs_parse_case(c, &jc, &inner)) == MQP_ERR_INPUT)
		rc = mqp_reason_set(why, "case: %s", inner.text);
	if (!rc) {
		out->source = jc.source;
		out->work_ms = jc.work_ms;
		memcpy(out->dashboard_type, jc.dashboard_type, sizeof(out->dashboard_type));
		memcpy(out->time_range, jc.time_range, sizeof(out->time_range));
	}
	memcpy(out->request_id, ids.request_id, sizeof(out->request_id));
	memcpy(out->case_id, ids.case_id, sizeof(out->case_id));
	cJSON_Delete(root);
	return rc;
}

unsigned work_uniform(uint64_t *rng, unsigned lo, unsigned hi)
{
	/* xorshift64*: plenty for simulated latencies and mock figures. */
	uint64_t x = *rng ? *rng : 0x9E3779B97F4A7C15ULL;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*rng = x;
	uint64_t r = x * 0x2545F4914F6CDD1DULL;
	return lo + (unsigned)((r >> 11) % ((uint64_t)hi - lo + 1));
}

unsigned work_duration(const struct work_profile *p, const struct work_case *c, uint64_t *rng)
{
	if (c->work_ms >= 0)
		return (unsigned)c->work_ms;
	if (c->source >= 0) {
		unsigned ms = work_uniform(rng, p->source_min_ms[c->source], p->source_max_ms[c->source]);
		double scaled = ms * p->latency_scale;
		return scaled > WORK_MS_MAX ? WORK_MS_MAX : (unsigned)(scaled + 0.5);
	}
	return work_uniform(rng, p->work_min_ms, p->work_max_ms);
}

/* Mock data. Each builder adds its source's figures to o and returns 0, or
 * MQP_ERR_NOMEM. Amounts are cents-free whole numbers: mock, but plausible. */
static int work__add(cJSON *o, const char *name, double v)
{
	return cJSON_AddNumberToObject(o, name, v) ? MQP_OK : MQP_ERR_NOMEM;
}

/* Adds name: [{key: labels[i], value_name: draw}…] for n labels. */
static int work__list(cJSON *o, const char *name, const char *key, const char *const *labels,
		      int n, const char *value_name, uint64_t *rng, unsigned lo, unsigned hi,
		      double divisor)
{
	cJSON *a = cJSON_AddArrayToObject(o, name);
	for (int i = 0; a && i < n; i++) {
		cJSON *e = cJSON_CreateObject();
		if (!e || !cJSON_AddItemToArray(a, e) || !cJSON_AddStringToObject(e, key, labels[i]) ||
		    work__add(e, value_name, work_uniform(rng, lo, hi) / divisor))
			return MQP_ERR_NOMEM;
	}
	return a ? MQP_OK : MQP_ERR_NOMEM;
}

static int work__sales(cJSON *o, uint64_t *rng)
{
	static const char *const products[] = {"Widget Pro", "Gadget Max", "Sensor Kit"};
	unsigned orders = work_uniform(rng, 800, 5000);
	unsigned revenue = orders * work_uniform(rng, 40, 180);
	return work__add(o, "total_revenue", revenue) || work__add(o, "orders", orders) ||
	       work__add(o, "average_order_value", (double)(revenue / orders)) ||
	       !cJSON_AddStringToObject(o, "currency", "USD") ||
	       work__list(o, "top_products", "name", products, 3, "revenue", rng, 5000, 90000, 1);
}

static int work__inventory(cJSON *o, uint64_t *rng)
{
	static const char *const warehouses[] = {"north", "south", "east"};
	return work__add(o, "total_skus", work_uniform(rng, 2000, 12000)) ||
	       work__add(o, "low_stock_items", work_uniform(rng, 5, 150)) ||
	       work__add(o, "out_of_stock", work_uniform(rng, 0, 40)) ||
	       work__list(o, "warehouses", "name", warehouses, 3, "utilization_pct", rng, 400, 980, 10);
}

static int work__marketing(cJSON *o, uint64_t *rng)
{
	static const char *const campaigns[] = {"spring_launch", "retargeting", "newsletter"};
	unsigned impressions = work_uniform(rng, 50000, 900000);
	unsigned clicks = impressions / work_uniform(rng, 30, 120);
	return work__add(o, "impressions", impressions) || work__add(o, "clicks", clicks) ||
	       work__add(o, "ctr_pct", (double)(clicks * 1000ULL / impressions) / 10) ||
	       work__add(o, "conversions", clicks / work_uniform(rng, 10, 40)) ||
	       work__add(o, "spend", work_uniform(rng, 1000, 25000)) ||
	       work__list(o, "campaigns", "name", campaigns, 3, "roas", rng, 80, 600, 100);
}

static int work__external_market(cJSON *o, uint64_t *rng)
{
	static const char *const indices[] = {"SPX", "NDX", "DJI"};
	static const char *const moods[] = {"bearish", "neutral", "bullish"};
	return work__list(o, "indices", "symbol", indices, 3, "change_pct", rng, 0, 600, 100) ||
	       !cJSON_AddStringToObject(o, "sentiment", moods[work_uniform(rng, 0, 2)]) ||
	       work__add(o, "volatility_index", work_uniform(rng, 100, 450) / 10.0);
}

static int work__weather(cJSON *o, uint64_t *rng)
{
	static const char *const cities[] = {"Chicago", "Dallas", "Seattle"};
	static const char *const skies[] = {"clear", "cloudy", "rain"};
	int rc = work__list(o, "locations", "city", cities, 3, "temp_c", rng, 0, 350, 10);
	cJSON *locs = rc ? NULL : cJSON_GetObjectItemCaseSensitive(o, "locations");
	const cJSON *l;
	cJSON_ArrayForEach(l, locs) {
		/* Snow only where it is cold enough. */
		double temp = cJSON_GetObjectItemCaseSensitive(l, "temp_c")->valuedouble;
		const char *sky = temp < 2 ? "snow" : skies[work_uniform(rng, 0, 2)];
		if (!cJSON_AddStringToObject((cJSON *)l, "conditions", sky))
			return MQP_ERR_NOMEM;
	}
	return rc || work__add(o, "severe_alerts", work_uniform(rng, 0, 2));
}

static int work__competitor_pricing(cJSON *o, uint64_t *rng)
{
	static const char *const rivals[] = {"acme", "globex", "initech"};
	return work__add(o, "products_tracked", work_uniform(rng, 200, 1500)) ||
	       work__add(o, "price_changes_24h", work_uniform(rng, 3, 120)) ||
	       work__list(o, "competitors", "name", rivals, 3, "price_index", rng, 850, 1150, 1000);
}

cJSON *work_result(const struct work_case *c, uint64_t *rng)
{
	static int (*const builders[JOBS_SOURCES])(cJSON *, uint64_t *) = {
		work__sales, work__inventory, work__marketing, work__external_market, work__weather,
		work__competitor_pricing,
	};
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	int rc;
	if (c->source < 0) {
		rc = cJSON_AddStringToObject(o, "status", "success") ? MQP_OK : MQP_ERR_NOMEM;
	} else {
		rc = (cJSON_AddStringToObject(o, "source", jobs_sources[c->source].name) &&
		      cJSON_AddStringToObject(o, "time_range", c->time_range[0] ? c->time_range : "24h"))
			     ? builders[c->source](o, rng)
			     : MQP_ERR_NOMEM;
	}
	if (rc) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *work_failed_result(const char *reason)
{
	cJSON *o = cJSON_CreateObject();
	if (o && (!cJSON_AddStringToObject(o, "status", "failed") ||
		  !cJSON_AddStringToObject(o, "error", reason))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

char *work_done_payload(const struct work_case *c, uint64_t processing_ms, const cJSON *result,
			const char *worker)
{
	/* caseId goes out as the JSON text it came as (string or exact number). */
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o && cJSON_AddStringToObject(o, "requestId", c->request_id) &&
	    cJSON_AddRawToObject(o, "caseId", c->case_id) &&
	    (c->index < 0 || mqp_json_add_uint(o, "index", (uint64_t)c->index)) &&
	    mqp_json_add_uint(o, "processingMs", processing_ms) &&
	    cJSON_AddItemReferenceToObject(o, "result", (cJSON *)result) &&
	    cJSON_AddStringToObject(o, "worker", worker))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}
