#!/usr/bin/env bash
# The systemd units: every unit (each template as an instance) passes
# systemd-analyze verify without a word, each is Type=notify with a watchdog,
# a restart policy, a state directory and the hardening options; the
# shard templates pass --shard %i, read S from /etc/mqpipe/shards and share
# the agent's state directory, the router reads S too; the README's secure
# drop-in for the workers verifies as well; and
# cmake --install puts binaries, units, schemas, the live page, the traces,
# the mosquitto snippets and the README where Debian expects them.
# (t_counter_notify checks READY, WATCHDOG and STOPPING over a real
# NOTIFY_SOCKET; t_package the Debian package.)
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap 'rm -rf "$T"' EXIT
BUILD=$(cd "$BIN/.." && pwd)
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (apt-get install systemd)"

units=("$BUILD"/systemd-build/*.service)
[ "${#units[@]}" -eq 11 ] || fail "expected 11 units, found ${#units[@]}"
mkdir "$T/units"
for u in "${units[@]}"; do
	name=$(basename "$u" | sed 's/@\.service$/@1.service/')
	cp "$u" "$T/units/$name"
	for key in Type=notify WatchdogSec= Restart=on-failure RestartPreventExitStatus="64 78" StateDirectory= DynamicUser=yes \
		NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
		RestrictAddressFamilies= SystemCallFilter=@system-service CapabilityBoundingSet=; do
		grep -q "^$key" "$u" || fail "$(basename "$u") lacks $key"
	done
done
# SYSTEMD_LOG_LEVEL=warning: a warning (an unknown key, a missing binary)
# is printed and must fail the test, though verify exits 0 for some.
out=$(cd "$T/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify ./*.service 2>&1) ||
	fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"
note "11 units verified"

# A shard instance: its shard from the instance name, S from the shards file
# (not /etc/default/mqpipe, which the S = 1 units read too), the state
# directory of the agent's S = 1 unit (README "Under systemd").
for a in counter dispatcher aggregator alerter; do
	u=$BUILD/systemd-build/mqpipe-$a@.service
	grep -qx "ExecStart=$BIN/mqpipe-$a --shard %i" "$u" || fail "mqpipe-$a@ does not pass --shard %i: $(grep ExecStart "$u")"
	grep -qx 'EnvironmentFile=/etc/mqpipe/shards' "$u" || fail "mqpipe-$a@ does not read /etc/mqpipe/shards"
	grep -qx "StateDirectory=mqpipe-$a" "$u" || fail "mqpipe-$a@ has another state directory than mqpipe-$a"
done
grep -qx 'EnvironmentFile=/etc/mqpipe/shards' "$BUILD/systemd-build/mqpipe-router.service" || fail "the router does not read /etc/mqpipe/shards"
grep -qx 'EnvironmentFile=-/etc/mqpipe/shards' "$BUILD/systemd-build/mqpipe-worker@.service" || fail "the workers do not read /etc/mqpipe/shards"
for a in counter dispatcher aggregator alerter ingest; do
	! grep -q '/etc/mqpipe/shards' "$BUILD/systemd-build/mqpipe-$a.service" || fail "mqpipe-$a.service (S = 1) reads /etc/mqpipe/shards"
done

# The README's secure-profile drop-in for the worker template (README
# "Security"), its ExecStart pointed at this build, passes verify too.
dropin=$T/units/mqpipe-worker@1.service.d
mkdir "$dropin"
sed -n '/^# \/etc\/systemd\/system\/mqpipe-worker@.service.d\/secure.conf/,/^```$/p' "$MQPIPE_ROOT/README.md" |
	grep -v '^```' | sed "s|^ExecStart=/usr/bin/|ExecStart=$BIN/|" >"$dropin/secure.conf"
grep -q '^ExecStart=.*-i mqpipe-worker-%i$' "$dropin/secure.conf" || fail "no worker drop-in in the README"
out=$(cd "$T/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify ./mqpipe-worker@1.service 2>&1) ||
	fail "systemd-analyze verify with the drop-in: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned about the drop-in: $out"

DESTDIR="$T/root" cmake --install "$BUILD" >"$T/install.log" || fail "cmake --install: $(tail -3 "$T/install.log")"
prefix=$(grep -m1 '^CMAKE_INSTALL_PREFIX:' "$BUILD/CMakeCache.txt" | cut -d= -f2)
for f in bin/mqpipe-counter bin/mqpipe-dispatcher bin/mqpipe-worker bin/mqpipe-aggregator \
	bin/mqpipe-ingest bin/mqpipe-alerter bin/mqpipe-router lib/systemd/system/mqpipe-counter.service \
	lib/systemd/system/mqpipe-worker@.service lib/systemd/system/mqpipe-counter@.service \
	lib/systemd/system/mqpipe-dispatcher@.service lib/systemd/system/mqpipe-aggregator@.service \
	lib/systemd/system/mqpipe-alerter@.service lib/systemd/system/mqpipe-router.service share/mqpipe/schemas/success_rate.schema.json \
	share/doc/mqpipe/README.md share/mqpipe/secure/setup share/mqpipe/secure/roles share/mqpipe/secure/mosquitto.conf \
	share/mqpipe/www/index.html share/mqpipe/www/app.js share/mqpipe/traces/fleet.jsonl \
	share/mqpipe/mosquitto/mqpipe-dev.conf share/mqpipe/mosquitto/mqpipe-secure.conf; do
	[ -e "$T/root$prefix/$f" ] || fail "cmake --install did not install $prefix/$f"
done
grep -q "^ExecStart=$prefix/bin/mqpipe-counter" "$T/root$prefix/lib/systemd/system/mqpipe-counter.service" ||
	fail "the installed unit does not start $prefix/bin/mqpipe-counter"
echo "ok"
