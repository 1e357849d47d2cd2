/* libFuzzer target: the alerter's metric point decoder (the seed's rule and
 * a keyed rule) and its rules file reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agents/alerter/alerter_logic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mqp_reason why;
	struct alert_point p;
	struct alert_rule rule;
	alert_rule_default(&rule);
	alert_point_parse(&rule, "metrics/fuzz/x", data, size, 1700000000, &p, &why);
	static const char keyed[] = "{\"name\":\"k\",\"topic\":\"success_rate\",\"value\":\"success_rate\","
				    "\"key\":\"moduleid\",\"timestamp\":\"timestamp\"}";
	struct alert_rule rules[ALERT_RULES_MAX];
	size_t n = 0;
	char err[256];
	if (alert_rules_load(keyed, sizeof(keyed) - 1, rules, &n, err, sizeof(err)) == 0 && n == 1)
		alert_point_parse(&rules[0], "success_rate", data, size, 1700000000, &p, &why);
	n = 0;
	alert_rules_load((const char *)data, size, rules, &n, err, sizeof(err));
	return 0;
}
