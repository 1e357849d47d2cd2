#!/usr/bin/env bash
# The Debian package (README "Install"): scripts/package builds it (or reuses
# the build of an unchanged tree, which t_debian_system then installs) and
# lintian reports no error; it holds every program with a man page that
# renders, the units in /lib/systemd/system, the live page with its MQTT
# bundle, the schemas, the secure profile, the sample traces and the two
# mosquitto snippets, and nothing under /etc/mosquitto; its maintainer
# scripts start no unit. Then Debian's own /etc/mosquitto/mosquitto.conf
# (its paths and the snippets' ports moved into $T) starts with each
# snippet in its include_dir without a complaint, serves the page, and the
# packaged counter comes online on it (on the secure one with its identity,
# over TLS, made by the packaged setup).
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
PIDS=()
trap it_cleanup EXIT
for tool in dpkg-buildpackage dh help2man lintian curl; do
	command -v "$tool" >/dev/null || fail "$tool is missing (scripts/bootstrap installs it)"
done
[ -f /etc/mosquitto/mosquitto.conf ] || fail "no /etc/mosquitto/mosquitto.conf (apt-get install mosquitto)"

debs=$("$MQPIPE_ROOT/scripts/package" 2>"$T/package.log") || fail "scripts/package: $(tail -5 "$T/package.log")"
deb=$(echo "$debs" | head -1)
[[ $(basename "$deb") == mqpipe_*.deb ]] || fail "scripts/package printed no mqpipe_*.deb first: $debs"
note "package $deb"
R=$T/root
dpkg-deb -x "$deb" "$R"
dpkg-deb -e "$deb" "$T/control"

# Every program the build makes, with its man page.
n=0
for b in "$BIN"/mqpipe-*; do
	name=$(basename "$b")
	[ -x "$R/usr/bin/$name" ] || fail "no /usr/bin/$name in the package"
	page=$R/usr/share/man/man1/$name.1.gz
	[ -f "$page" ] || fail "no man page for $name"
	out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>&1)
	grep -q "^NAME" <<<"$out" && grep -q -- "--version" <<<"$out" && grep -q "^SEE ALSO" <<<"$out" ||
		fail "the man page of $name does not render its --help: $out"
	grep -q '???' <<<"$out" && fail "the man page of $name lost characters: $(grep '???' <<<"$out")"
	n=$((n + 1))
done
[ "$n" -ge 9 ] || fail "expected at least 9 programs in $BIN, found $n"
for u in mqpipe-counter.service mqpipe-dispatcher.service mqpipe-worker@.service \
	mqpipe-aggregator.service mqpipe-ingest.service mqpipe-alerter.service mqpipe-router.service \
	mqpipe-counter@.service mqpipe-dispatcher@.service mqpipe-aggregator@.service mqpipe-alerter@.service; do
	[ -f "$R/lib/systemd/system/$u" ] || fail "no /lib/systemd/system/$u"
	grep -q '^ExecStart=/usr/bin/mqpipe-' "$R/lib/systemd/system/$u" || fail "$u does not start /usr/bin/"
done
S=$R/usr/share/mqpipe
for f in www/index.html www/app.js www/style.css mosquitto/mqpipe-dev.conf mosquitto/mqpipe-secure.conf \
	secure/setup secure/roles; do
	[ -f "$S/$f" ] || fail "no /usr/share/mqpipe/$f"
done
[ -s "$S/www/vendor/mqtt.min.js" ] || fail "the live page's MQTT bundle is missing"
[ -x "$S/secure/setup" ] || fail "secure/setup is not executable"
for f in "$MQPIPE_ROOT"/schemas/*.json "$MQPIPE_ROOT"/test/traces/*; do
	d=$( [[ $f == */schemas/* ]] && echo schemas || echo traces)
	cmp -s "$f" "$S/$d/$(basename "$f")" || fail "/usr/share/mqpipe/$d/$(basename "$f") missing or different"
done
if [ -d "$MQPIPE_ROOT/monitoring" ] && [ -n "$(ls -A "$MQPIPE_ROOT/monitoring")" ]; then
	[ -n "$(ls -A "$S/prometheus" 2>/dev/null)" ] || fail "monitoring/ is not in /usr/share/mqpipe/prometheus"
fi
[ ! -e "$R/etc/mosquitto" ] || fail "the package installs files under /etc/mosquitto"
# Installing starts and enables nothing; an upgrade only try-restarts (what
# runs) and enables again only what was enabled (debhelper's was-enabled
# guard, a few lines before each enable).
for s in "$T"/control/preinst "$T"/control/postinst; do
	[ -f "$s" ] || continue
	bad=$(awk '/deb-systemd-invoke +(start|restart|stop)|systemctl +(start|enable|restart)/ ||
		(/deb-systemd-helper +enable/ && FNR - guard > 3) { print FILENAME ":" FNR ": " $0 }
		/was-enabled/ { guard = FNR }' "$s")
	[ -z "$bad" ] || fail "$(basename "$s") may start, enable or stop units: $bad"
done
note "$n programs with man pages, 11 units, page, bundle, schemas, traces, snippets; no unit started"

# Debian's main file sets these: a snippet repeating one stops mosquitto.
for c in "$S"/mosquitto/*.conf; do
	if grep -nE '^(pid_file|persistence|persistence_location|log_dest|include_dir)[[:space:]]' "$c"; then
		fail "$(basename "$c") repeats a setting of Debian's mosquitto.conf"
	fi
done

# Each snippet has every setting of its profile's own file
# (broker-config/mosquitto.conf, broker-config/secure/mosquitto.conf) but
# those Debian's file sets and the page's path; a listener by its port.
for pair in mosquitto.conf:mqpipe-dev.conf secure/mosquitto.conf:mqpipe-secure.conf; do
	src=$MQPIPE_ROOT/broker-config/${pair%%:*} snippet=$S/mosquitto/${pair##*:}
	while read -r key rest; do
		case $key in
		'' | '#'* | persistence | persistence_location | log_dest | http_dir) continue ;;
		listener) grep -q "^listener ${rest%% *} " "$snippet" || fail "$(basename "$snippet") lacks listener ${rest%% *}" ;;
		*) grep -qxF "$key $rest" "$snippet" || fail "$(basename "$snippet") lacks '$key $rest' of $src" ;;
		esac
	done <"$src"
done

# debian_broker NAME SNIPPET: Debian's mosquitto.conf with its paths in
# $T/NAME and SNIPPET (ports and paths moved) in its include_dir; starts it
# and waits for the websockets port. Sets BROKER_PID, MQTT_PORT, WEB_PORT.
debian_broker() {
	local name=$1 snippet=$2 dir=$T/$1
	mkdir -p "$dir/conf.d" "$dir/persist"
	MQTT_PORT=$(free_port) WEB_PORT=$(free_port) TLS_PORT=$(free_port)
	sed -e "s|^pid_file .*|pid_file $dir/mosquitto.pid|" \
		-e "s|^persistence_location .*|persistence_location $dir/persist/|" \
		-e "s|^log_dest .*|log_dest file $dir/mosquitto.log|" \
		-e "s|^include_dir .*|include_dir $dir/conf.d|" /etc/mosquitto/mosquitto.conf >"$dir/mosquitto.conf"
	grep -q "^include_dir $dir/conf.d" "$dir/mosquitto.conf" || fail "Debian's mosquitto.conf has no include_dir"
	# (as root mosquitto would switch to the mosquitto user, who cannot write $T)
	echo "user $(id -un)" >"$dir/conf.d/00-test.conf"
	sed -e "s|^listener 1883 |listener $MQTT_PORT |" -e "s|^listener 8883 |listener $TLS_PORT |" \
		-e "s|^listener 9001 |listener $WEB_PORT |" -e "s|/usr/share/mqpipe/|$S/|" \
		-e "s|/etc/mqpipe/secure/|$T/secure/|" "$snippet" >"$dir/conf.d/$(basename "$snippet")"
	mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.out" 2>&1 &
	BROKER_PID=$!
	wait_for 10 port_in_use "$WEB_PORT" ||
		fail "mosquitto did not start with $(basename "$snippet"): $(cat "$dir/mosquitto.out" "$dir/mosquitto.log" 2>/dev/null | tail -5)"
	! grep -iE 'error|duplicate|unknown' "$dir/mosquitto.out" "$dir/mosquitto.log" ||
		fail "mosquitto complained about $(basename "$snippet")"
	[ "$(curl -fsS "http://127.0.0.1:$WEB_PORT/vendor/mqtt.min.js" | cmp - "$S/www/vendor/mqtt.min.js" && echo same)" = same ] ||
		fail "the page's bundle is not served on the websockets port"
	curl -fsS "http://127.0.0.1:$WEB_PORT/" | grep -q 'vendor/mqtt.min.js' || fail "the live page is not served"
}

# counter_online DIR [FLAGS...]: the packaged counter (extra flags in $@) comes online.
counter_online() {
	local dir=$1
	shift
	local pid
	"$R/usr/bin/mqpipe-counter" -d "$dir/counter.db" "$@" >"$dir/counter.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_for 30 log_has "$dir/counter.log" 'event=online' || fail "the counter is not online: $(tail -3 "$dir/counter.log")"
	stop_pid "$pid"
}

debian_broker dev "$S/mosquitto/mqpipe-dev.conf"
counter_online "$T/dev" -b "tcp://127.0.0.1:$MQTT_PORT"
stop_pid "$BROKER_PID"
BROKER_PID=
note "Debian's mosquitto.conf + mqpipe-dev.conf: started, page served, counter online"

# The broker plugin (README "Routing inside mosquitto"): in the package, and
# Debian's mosquitto routes with it.
plugin=$R/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/mqpipe/mqpipe_route.so
[ -f "$plugin" ] || fail "no $plugin in the package"
{ cat "$S/mosquitto/mqpipe-dev.conf"; printf 'plugin %s\nplugin_opt_shards 2\n' "$plugin"; } >"$T/mqpipe-route.conf"
debian_broker route "$T/mqpipe-route.conf"
mosquitto_sub -p "$MQTT_PORT" -t 'shard/+/recv_message' -C 1 -W 20 -v >"$T/routed.out" 2>&1 &
sub=$!
sleep 0.5
mosquitto_pub -p "$MQTT_PORT" -q 1 -t recv_message -m '{"moduleId":"m-1","timestamp":1}'
wait "$sub" || true
grep -q "^shard/$("$R/usr/bin/mqpipe-shard" --shards 2 m-1)/recv_message " "$T/routed.out" ||
	fail "the packaged plugin did not route: $(cat "$T/routed.out") $(grep mqpipe_route "$T/route/mosquitto.log")"
stop_pid "$BROKER_PID"
BROKER_PID=
note "Debian's mosquitto.conf + the packaged mqpipe_route.so: an input routed to its shard"

"$S/secure/setup" "$T/secure" --systemd "$T/dropins" >"$T/setup.log" 2>&1 || fail "setup: $(tail -3 "$T/setup.log")"
# setup's drop-ins on the packaged units (ExecStart pointed into $R, the
# template as instance 1, as in t_systemd) pass systemd-analyze verify.
mkdir "$T/units"
for u in "$R"/lib/systemd/system/*.service; do
	name=$(basename "$u" | sed 's/@\.service$/@1.service/')
	sed "s|^ExecStart=/usr/bin/|ExecStart=$R/usr/bin/|" "$u" >"$T/units/$name"
	src=$T/dropins/$(basename "$u").d
	[ -f "$src/secure.conf" ] || fail "setup --systemd wrote no $(basename "$u").d/secure.conf"
	mkdir "$T/units/$name.d"
	sed "s|^ExecStart=/usr/bin/|ExecStart=$R/usr/bin/|" "$src/secure.conf" >"$T/units/$name.d/secure.conf"
done
grep -q "^LoadCredential=password:$T/secure/mqpipe-worker-%i.password" "$T/units/mqpipe-worker@1.service.d/secure.conf" ||
	fail "the worker's drop-in does not load its password: $(cat "$T/units/mqpipe-worker@1.service.d/secure.conf")"
out=$(cd "$T/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify ./*.service 2>&1) ||
	fail "systemd-analyze verify with setup's drop-ins: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned about setup's drop-ins: $out"
debian_broker secure "$S/mosquitto/mqpipe-secure.conf"
port_in_use "$MQTT_PORT" && fail "the secure profile listens on plain MQTT"
counter_online "$T/secure" -b "ssl://127.0.0.1:$TLS_PORT" --cafile "$T/secure/ca.crt" \
	-u mqpipe-counter --password-file "$T/secure/mqpipe-counter.password"
note "Debian's mosquitto.conf + mqpipe-secure.conf: started, page served, counter online over TLS"
echo "ok"
