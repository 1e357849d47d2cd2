# The success-rate rules computed independently of the C code, from the
# published payloads (recv lines first, then diagnostics in publish order):
#   awk -f expect_rates.awk RECV_FILE DIAG_FILE
# prints "module timestamp received attempts rate" per new diagnostic, rate
# with 6 decimals or "null". Payloads are the generator's simple JSON.
function field(line, name,   re, s) {
	re = "\"" name "\":(\"[^\"]*\"|[0-9]+)"
	if (!match(line, re)) return ""
	s = substr(line, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
	gsub(/"/, "", s)
	return s
}
function module_of(line,   m) {
	m = field(line, "moduleId")
	return m != "" ? m : field(line, "moduleid")
}
FNR == NR { msg[module_of($0), field($0, "timestamp") + 0] = 1; next }
{
	m = module_of($0); ts = field($0, "timestamp") + 0; a = field($0, "attempts") + 0
	if ((m, ts) in seen) next
	seen[m, ts] = 1
	# Earlier stored diagnostics of m, newest first: find the last reset.
	n = 0
	for (k in dts) { split(k, kk, SUBSEP); if (kk[1] == m && kk[2] + 0 < ts) { n++; e[n] = kk[2] + 0 } }
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (e[j] > e[i]) { x = e[i]; e[i] = e[j]; e[j] = x }
	later = a; lower = -1
	for (i = 1; i <= n; i++) {
		if (later < dts[m, e[i]]) { lower = e[i]; break }
		later = dts[m, e[i]]
	}
	dts[m, ts] = a
	r = 0
	for (k in msg) { split(k, kk, SUBSEP); if (kk[1] == m && kk[2] + 0 > lower && kk[2] + 0 <= ts) r++ }
	if (a == 0) rate = "null"
	else { rate = 100 * r / a; if (rate > 100) rate = 100; rate = sprintf("%.6f", rate) }
	print m, ts, r, a, rate
}
