#!/usr/bin/env bash
# Debian's prometheus-mqtt-exporter with monitoring/mqtt-exporter.yaml and
# Debian's prometheus with monitoring/prometheus-scrape.yml, run for real
# against a counter and an aggregator: Prometheus' HTTP API answers the
# counter's message rate and p99 handling time, labelled with its client id
# (README "Monitoring with Prometheus"). The shipped files are changed only in
# their broker address, ports, intervals and paths. PROM_SECURE=1
# (t_prometheus_secure) does it on the secure profile, the exporter with an
# identity of the reader role, configured as the README says.
source "$(dirname "$0")/lib.sh"
for b in prometheus promtool prometheus-mqtt-exporter curl jq; do
	command -v "$b" >/dev/null || fail "$b is missing: scripts/bootstrap installs it"
done
mon=$MQPIPE_ROOT/monitoring
secure=${PROM_SECURE:-0}

if [ "$secure" = 1 ]; then
	T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
	trap it_cleanup EXIT
	SEC=$T/broker
	"$MQPIPE_ROOT/broker-config/secure/setup" "$SEC" --user mqpipe-prometheus:reader >/dev/null || fail "setup"
	broker_start "$SEC" "$MQPIPE_ROOT/broker-config/secure/test.conf.in" || fail "cannot start the secure broker"
	note "secure broker on $BROKER_URI"
	creds() { # creds NAME: an agent's flags for identity mqpipe-NAME
		echo "--cafile $SEC/ca.crt -u mqpipe-$1 --password-file $SEC/mqpipe-$1.password"
	}
	publish() { # publish TOPIC MESSAGE, as the publisher identity
		mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$SEC/ca.crt" -u mqpipe-publisher \
			-P "$(cat "$SEC/mqpipe-publisher.password")" -q 1 -t "$1" -m "$2"
	}
else
	it_setup
	creds() { :; }
	publish() { pub "$@"; }
fi

# shellcheck disable=SC2046
start_counter --metrics-interval 1 $(creds counter)
# shellcheck disable=SC2046
start_agent aggregator mqpipe-aggregator -d "$T/aggregator.db" --metrics-interval 1 $(creds aggregator)

# The exporter: the shipped configuration, on the test broker; on the secure
# profile its user, password and CA as the README says.
exp_port=$(free_port) || fail "no free port"
if [ "$secure" = 1 ]; then
	sed -e "s|^  server: tcp://127.0.0.1:1883$|  server: ssl://127.0.0.1:$BROKER_PORT\\n  user: mqpipe-prometheus|" \
		"$mon/mqtt-exporter.yaml" >"$T/mqtt-exporter.yaml"
	exp_env=(MQTT2PROM_MQTT_PASSWORD="$(cat "$SEC/mqpipe-prometheus.password")" SSL_CERT_FILE="$SEC/ca.crt")
else
	sed -e "s|^  server: tcp://127.0.0.1:1883$|  server: tcp://127.0.0.1:$BROKER_PORT|" \
		"$mon/mqtt-exporter.yaml" >"$T/mqtt-exporter.yaml"
	exp_env=()
fi
grep -q "server: .*://127.0.0.1:$BROKER_PORT" "$T/mqtt-exporter.yaml" || fail "exporter config has no server line to adjust"
env "${exp_env[@]}" prometheus-mqtt-exporter -config "$T/mqtt-exporter.yaml" -listen-address 127.0.0.1 \
	-listen-port "$exp_port" 2>"$T/exporter.log" &
PIDS+=($!)
exported() { curl -sf "http://127.0.0.1:$exp_port/metrics" | grep -F "$1" >/dev/null; }
wait_for 30 exported 'mqpipe_messages_in_total{sensor="mqpipe-counter"' ||
	fail "the exporter shows no counter metrics: $(tail -n 5 "$T/exporter.log")"

# Prometheus: Debian's sample global section plus the shipped job, scraping
# the exporter's port every second, its storage in $T.
prom_port=$(free_port) || fail "no free port"
{
	printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n'
	sed -e "s|'127.0.0.1:9641'|'127.0.0.1:$exp_port'|" -e 's|scrape_interval: 10s|scrape_interval: 1s|' \
		"$mon/prometheus-scrape.yml"
} >"$T/prometheus.yml"
grep -q "127.0.0.1:$exp_port" "$T/prometheus.yml" || fail "scrape job has no target to adjust"
promtool check config "$T/prometheus.yml" >"$T/promtool.out" 2>&1 || fail "promtool: $(cat "$T/promtool.out")"
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prometheus" \
	--web.listen-address="127.0.0.1:$prom_port" 2>"$T/prometheus.log" &
PIDS+=($!)

# One bad event: a dead letter for the counter to count.
publish recv_message '{"moduleId":"prom-bad","timestamp":-5}'

# A steady trickle of events while Prometheus scrapes, so each 1 s metrics
# interval has messages to rate and time.
(
	for i in $(seq 1 600); do
		publish recv_message "{\"moduleId\":\"prom-$((i % 7))\",\"timestamp\":$((1700000000 + i))}" || exit 0
		sleep 0.1
	done
) &
PIDS+=($!)

# query PROMQL: the result vector of an instant query, as JSON.
query() {
	curl -sf "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
		jq -ce 'select(.status == "success") | .data.result'
}
# has PROMQL: the query returns at least one series.
has() {
	query "$1" | jq -e 'length > 0' >/dev/null
}
rate_q='mqpipe_in_per_second{job="mqpipe",client_id="mqpipe-counter"} > 0'
p99_q='mqpipe_handling_seconds{job="mqpipe",client_id="mqpipe-counter",quantile="0.99"} > 0'
wait_for 60 has "$rate_q" || fail "no positive rate for the counter: $(query 'mqpipe_in_per_second') $(tail -n 3 "$T/prometheus.log")"
wait_for 30 has "$p99_q" || fail "no positive p99 for the counter: $(query 'mqpipe_handling_seconds')"
wait_for 30 has 'rate(mqpipe_messages_in_total{client_id="mqpipe-counter"}[10s]) > 0' ||
	fail "messages_in_total does not grow: $(query 'mqpipe_messages_in_total')"

rate=$(query "$rate_q" | jq -r '.[0].value[1]')
p99=$(query "$p99_q" | jq -r '.[0].value[1]')
note "counter: in_per_second $rate, p99 handling $p99 s"
# Sane: the feeder sends at most about 10 a second; a handling time is under
# a minute on any machine.
awk -v r="$rate" -v p="$p99" 'BEGIN { exit !(r > 0 && r < 1000 && p > 0 && p < 60) }' ||
	fail "implausible values: rate $rate, p99 $p99"
# Every series of the job carries a client id, not the exporter's "sensor".
has 'mqpipe_uptime_seconds{client_id="mqpipe-aggregator"}' || fail "no aggregator metrics: $(query 'mqpipe_uptime_seconds')"
has '{job="mqpipe",sensor!=""}' && fail "a series still has the sensor label"
for m in mqpipe_uptime_seconds mqpipe_messages_in_total mqpipe_messages_out_total mqpipe_in_per_second \
	mqpipe_out_per_second mqpipe_deadletters_total mqpipe_deadletters_dropped_total mqpipe_errors_total \
	mqpipe_refused_total mqpipe_handling_messages mqpipe_handling_seconds mqpipe_handling_max_seconds \
	mqpipe_outbox_depth mqpipe_resident_memory_bytes mqpipe_resident_memory_peak_bytes; do
	has "$m{client_id=\"mqpipe-counter\"}" || fail "Prometheus has no $m for the counter"
done
wait_for 30 has 'mqpipe_deadletters_total{client_id="mqpipe-counter"} >= 1' ||
	fail "the dead letter is not counted: $(query 'mqpipe_deadletters_total')"
[ "$(query 'mqpipe_handling_seconds{client_id="mqpipe-counter"}' | jq length)" -eq 3 ] ||
	fail "p50, p95 and p99 expected: $(query 'mqpipe_handling_seconds{client_id="mqpipe-counter"}')"
echo "all ok: Prometheus has the counter's rate ($rate/s) and p99 (${p99} s) by client id"
