/* Metrics counters and the handling-time histogram (mqpipe/metrics.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "mqpipe/metrics.h"

Test(histogram, a_bucket_bounds_its_values_within_an_eighth)
{
	for (uint64_t v = 0; v < (1ULL << 31); v = v * 5 / 4 + 1) {
		unsigned b = mqp_metrics_bucket(v);
		uint64_t upper = mqp_metrics_bucket_upper(b);
		cr_assert_geq(upper, v, "v=%llu", (unsigned long long)v);
		cr_assert_leq((double)upper, (double)v * 1.125 + 1, "v=%llu", (unsigned long long)v);
		if (b > 0)
			cr_assert_lt(mqp_metrics_bucket_upper(b - 1), v);
	}
}

Test(histogram, huge_values_land_in_the_last_bucket)
{
	cr_assert_eq(mqp_metrics_bucket(UINT64_MAX), MQP_METRICS_BUCKETS - 1);
}

Test(histogram, quantiles_come_from_the_cumulative_counts)
{
	uint64_t buckets[MQP_METRICS_BUCKETS] = {0};
	for (uint64_t v = 1; v <= 100; v++)
		buckets[mqp_metrics_bucket(v)]++;
	uint64_t p50 = mqp_metrics_quantile(buckets, 100, 0.5);
	uint64_t p99 = mqp_metrics_quantile(buckets, 100, 0.99);
	cr_assert(p50 >= 50 && p50 <= 57, "p50=%llu", (unsigned long long)p50);
	cr_assert(p99 >= 99 && p99 <= 112, "p99=%llu", (unsigned long long)p99);
	cr_assert_eq(mqp_metrics_quantile(buckets, 0, 0.5), 0);
}

Test(report, counts_per_topic_and_resets_times_each_interval)
{
	struct mqp_metrics *m;
	cr_assert_eq(mqp_metrics_new(&m), 0);
	mqp_metrics_in(m, "recv_message", 12);
	mqp_metrics_in(m, "recv_message", 12);
	mqp_metrics_out(m, "success_rate");
	mqp_metrics_deadletter(m);
	mqp_metrics_handled(m, 100);
	cJSON *r = mqp_metrics_report(m, "counter", "c1", 3, 1.5);
	char *s = cJSON_PrintUnformatted(r);
	cr_assert(strstr(s, "\"in\":{\"recv_message\":2}"), "%s", s);
	cr_assert(strstr(s, "\"out\":{\"success_rate\":1}"), "%s", s);
	cr_assert(strstr(s, "\"deadletters\":1"), "%s", s);
	cr_assert(strstr(s, "\"outbox_depth\":3"), "%s", s);
	cr_assert(strstr(s, "\"max\":100"), "%s", s);
	cr_assert(strstr(s, "\"rss_bytes\":"), "%s", s);
	free(s);
	cJSON_Delete(r);
	r = mqp_metrics_report(m, "counter", "c1", 0, 2);
	s = cJSON_PrintUnformatted(r);
	cr_assert(strstr(s, "\"handling_us\":{\"count\":0"), "%s", s);
	cr_assert(strstr(s, "\"messages_in\":2"), "totals persist: %s", s);
	free(s);
	cJSON_Delete(r);
	mqp_metrics_free(m);
}

Test(report, rates_cover_the_interval_since_the_last_report)
{
	struct mqp_metrics *m;
	cr_assert_eq(mqp_metrics_new(&m), 0);
	for (int i = 0; i < 30; i++)
		mqp_metrics_in(m, "recv_message", 12);
	mqp_metrics_out(m, "success_rate");
	cJSON *r = mqp_metrics_report(m, "counter", "c1", 0, 10);
	cr_assert_float_eq(cJSON_GetObjectItem(r, "in_per_s")->valuedouble, 3.0, 1e-9);
	cr_assert_float_eq(cJSON_GetObjectItem(r, "out_per_s")->valuedouble, 0.1, 1e-9);
	cJSON_Delete(r);
	for (int i = 0; i < 5; i++)
		mqp_metrics_in(m, "recv_message", 12);
	r = mqp_metrics_report(m, "counter", "c1", 0, 12);
	cr_assert_float_eq(cJSON_GetObjectItem(r, "in_per_s")->valuedouble, 2.5, 1e-9, "5 in 2 s");
	cr_assert_float_eq(cJSON_GetObjectItem(r, "out_per_s")->valuedouble, 0.0, 1e-9);
	cJSON_Delete(r);
	mqp_metrics_free(m);
}

Test(report, topics_past_the_table_are_summed_as_other)
{
	struct mqp_metrics *m;
	mqp_metrics_new(&m);
	char t[16];
	for (int i = 0; i < 70; i++) {
		int n = snprintf(t, sizeof(t), "t%d", i);
		mqp_metrics_in(m, t, (size_t)n);
	}
	cJSON *r = mqp_metrics_report(m, "a", "b", 0, 0);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "in")), 65);
	char *s = cJSON_PrintUnformatted(r);
	cr_assert(strstr(s, "\"other\":6"), "%s", s);
	free(s);
	cJSON_Delete(r);
	mqp_metrics_free(m);
}
