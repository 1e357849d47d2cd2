# The independent calculation for t_alerter: reads "topic payload" lines in
# publishing order and prints, for each point that alerts under the seed's
# rule, "metric timestamp value samples average" — straight from the
# definition: the accepted points of the metric with timestamps in
# [t-3600, t), at least one, value > 3 x their mean. A point more than 3600 s
# before its metric's newest is refused; the same (metric, timestamp, value)
# again is a repeat. No running sums: every window is summed afresh.
{
	metric = $1; sub(/^metrics\//, "", metric)
	v = $2; sub(/.*"value":/, "", v); sub(/,.*/, "", v); v += 0
	ts = $2; sub(/.*"timestamp":/, "", ts); sub(/}.*/, "", ts); ts += 0
	if ((metric in newest) && ts < newest[metric] - 3600) next
	key = metric SUBSEP ts SUBSEP v
	if (key in seen) next
	seen[key] = 1
	s = 0; c = 0
	for (k = 1; k <= np[metric]; k++) {
		pt = pts[metric, k]; pv = vals[metric, k]
		if (pt >= ts - 3600 && pt < ts) { s += pv; c++ }
	}
	if (c >= 1 && v > 3 * (s / c)) printf "%s %d %d %d %.6f\n", metric, ts, v, c, s / c
	np[metric]++; pts[metric, np[metric]] = ts; vals[metric, np[metric]] = v
	if (!(metric in newest) || ts > newest[metric]) newest[metric] = ts
}
