# Writes "topic payload" lines of metric points for t_alerter: several
# metrics over a few hours, with spikes, dips below zero, exact 3x values,
# points on the one-hour boundary, long gaps, points out of order (some
# within a window of their metric's newest, some beyond), repeats (QoS 1
# redeliveries) and bare numbers with no timestamp are left out (their time
# is the arrival's). Deterministic: srand(seed).
BEGIN {
	srand(seed ? seed : 42)
	n = n ? n : 1500
	metrics = 6
	for (m = 0; m < metrics; m++) t[m] = 1700000000 + m * 17
	for (i = 0; i < n; i++) {
		m = int(rand() * metrics)
		r = rand()
		if (r < 0.03) t[m] += 3600 + int(rand() * 7200)      # a long gap
		else if (r < 0.06) t[m] += 3600                    # exactly one hour on
		else t[m] += int(rand() * 240)                      # 0..4 minutes, same second too
		ts = t[m]
		if (rand() < 0.06) ts = t[m] - int(rand() * 3600)   # out of order, within a window
		if (rand() < 0.02) ts = t[m] - 3601 - int(rand() * 3600) # beyond: a dead letter
		v = 50 + int(rand() * 100)
		r = rand()
		if (r < 0.05) v = v * 5                             # a spike
		else if (r < 0.07) v = -v                           # below zero
		else if (r < 0.09) v = 300                          # around 3x of ~100
		line = sprintf("metrics/m%d {\"value\":%d,\"timestamp\":%d}", m, v, ts)
		print line
		if (rand() < 0.03) print line                       # a redelivery
	}
}
