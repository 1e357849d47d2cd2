# Generates a module fleet for the success-rate tests:
#   awk -v seed=N -v modules=M -v recv=RECV_FILE -v diag=DIAG_FILE -f gen_modules.awk
# Each module gets 2-6 diagnostic periods; a period has 0-20 received messages
# and some failed attempts; about one period in five starts with a reset
# (attempts restart from 0). ~10% of messages and diagnostics are sent twice,
# some diagnostics are repeated with other attempts (the first one wins), both
# spellings of moduleId are used, and some first diagnostics report fewer
# attempts than messages (the 100 cap) or zero attempts (a null rate).
# Diagnostics of different modules are interleaved; a module's own come in
# timestamp order after their messages.
function emit_recv(m, ts, key) {
	key = (rand() < 0.5) ? "moduleId" : "moduleid"
	line = sprintf("{\"%s\":\"%s\",\"timestamp\":%d}", key, m, ts)
	print line > recv
	if (rand() < 0.1) print line > recv
}
BEGIN {
	srand(seed)
	nd = 0
	for (i = 0; i < modules; i++) {
		m = sprintf("mod-%04d", i)
		t = 1700000000 + int(rand() * 100000)
		attempts = 0
		periods = 2 + int(rand() * 5)
		for (p = 0; p < periods; p++) {
			if (p > 0 && rand() < 0.2) attempts = 0          # reset
			n = int(rand() * 21)
			for (k = 0; k < n; k++) { t += 1 + int(rand() * 50); emit_recv(m, t) }
			attempts += n + int(rand() * 6)
			if (p == 0 && rand() < 0.1) attempts = (n > 3) ? n - 3 : 0   # cap / zero
			if (rand() < 0.2) dt = 0; else dt = 1 + int(rand() * 30)     # tie with a message
			t += dt
			d = sprintf("{\"moduleid\":\"%s\",\"timestamp\":%d,\"attempts\":%d}", m, t, attempts)
			queue[m, p] = d
			if (rand() < 0.1) dup[m, p] = d
			else if (rand() < 0.05) dup[m, p] = sprintf("{\"moduleId\":\"%s\",\"timestamp\":%d,\"attempts\":%d}", m, t, attempts + 7)
			t += 1
		}
		count[m] = periods
		names[i] = m
	}
	# Interleave: round-robin over modules, each in its own order.
	for (p = 0; p < 6; p++)
		for (i = 0; i < modules; i++) {
			m = names[i]
			if (p >= count[m]) continue
			print queue[m, p] > diag
			if ((m, p) in dup) print dup[m, p] > diag
		}
}
