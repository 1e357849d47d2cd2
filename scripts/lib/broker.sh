# Shell helpers shared by scripts/test, scripts/bench and the integration tests:
# a throw-away mosquitto on a free loopback port, stopped by PID.
# Source it; it defines functions and sets nothing until called.

MQPIPE_ROOT=${MQPIPE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: prints a loopback port in 20000-59999 that nothing listens on
# (50 random tries; returns 1 when all were taken). Whoever binds it may
# still lose a race with another process, so callers retry on failure.
free_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		port_in_use "$p" || { echo "$p"; return 0; }
	done
	return 1
}

# broker_start DIR [TEMPLATE]: starts mosquitto with TEMPLATE (default
# broker-config/test.conf.in) in DIR on a free port. Sets BROKER_PORT,
# BROKER_PID, BROKER_URI. Retries other ports if another process takes the
# one picked first.
broker_start() {
	local dir=$1 template=${2:-$MQPIPE_ROOT/broker-config/test.conf.in} tries port
	mkdir -p "$dir"
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		port=$(free_port) || continue
		sed -e "s|@PORT@|$port|" -e "s|@DIR@|$dir|" -e "s|@USER@|$(id -un)|" \
			"$template" >"$dir/mosquitto.conf"
		broker__mosquitto "$dir" >"$dir/mosquitto.out" 2>&1 &
		BROKER_PID=$!
		local i
		for i in $(seq 1 100); do
			if port_in_use "$port"; then
				BROKER_PORT=$port
				BROKER_URI=$(grep -q '^certfile' "$dir/mosquitto.conf" && echo ssl || echo tcp)://127.0.0.1:$port
				echo "$BROKER_PID" >"$dir/mosquitto.pid"
				return 0
			fi
			kill -0 "$BROKER_PID" 2>/dev/null || break
			sleep 0.05
		done
		kill "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
	done
	echo "broker_start: could not start mosquitto (see $dir/mosquitto.log)" >&2
	return 1
}

# broker_web_template DIR: writes DIR/web.conf.in, the test broker's
# template (broker-config/test.conf.in) plus the development configuration's
# websockets listener serving the live page, on a free port. Sets WEB_PORT.
# Start it with broker_start DIR/broker DIR/web.conf.in.
broker_web_template() {
	local dir=$1
	WEB_PORT=$(free_port) || return 1
	mkdir -p "$dir"
	{
		cat "$MQPIPE_ROOT/broker-config/test.conf.in"
		sed -n '/^listener 9001 /,/^http_dir /p' "$MQPIPE_ROOT/broker-config/mosquitto.conf" |
			sed -e "s|^listener 9001 |listener $WEB_PORT |" \
				-e "s|^http_dir .*|http_dir $MQPIPE_ROOT/broker-config/www|"
	} >"$dir/web.conf.in"
	grep -q '^protocol websockets' "$dir/web.conf.in"
}

# broker__mosquitto DIR: execs mosquitto on DIR/mosquitto.conf. A plugin of
# ours built with sanitizers (scripts/test's second pass) needs their
# run-times loaded first: they are preloaded, and mosquitto's own leaks at
# exit are not ours to report.
broker__mosquitto() {
	local so preload=
	so=$(sed -n 's/^plugin \(.*mqpipe_route\.so\)$/\1/p' "$1/mosquitto.conf")
	[ -n "$so" ] && preload=$(ldd "$so" 2>/dev/null | awk '/lib(asan|ubsan)\.so/ {printf "%s:", $3}')
	if [ -n "$preload" ]; then
		LD_PRELOAD=$preload ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 exec mosquitto -c "$1/mosquitto.conf"
	fi
	exec mosquitto -c "$1/mosquitto.conf"
}

# broker_route_template DIR SHARDS [PREFIX]: writes DIR/route.conf.in, the
# test broker's template plus mqpipe_route.so (README "Routing inside
# mosquitto") with SHARDS shards, from $MQPIPE_BIN/../lib. Start it with
# broker_start DIR/broker DIR/route.conf.in. Returns 1 without the plugin.
broker_route_template() {
	local dir=$1 so
	so=$(cd "${MQPIPE_BIN:-$MQPIPE_ROOT/build/bin}/../lib" 2>/dev/null && pwd)/mqpipe_route.so
	[ -f "$so" ] || return 1
	mkdir -p "$dir"
	{
		cat "$MQPIPE_ROOT/broker-config/test.conf.in"
		echo "plugin $so"
		echo "plugin_opt_shards $2"
		[ -z "${3:-}" ] || echo "plugin_opt_prefix $3"
	} >"$dir/route.conf.in"
}

# broker_restart DIR: starts mosquitto again on the same port and directory.
broker_restart() {
	local dir=$1 i
	broker__mosquitto "$dir" >>"$dir/mosquitto.out" 2>&1 &
	BROKER_PID=$!
	echo "$BROKER_PID" >"$dir/mosquitto.pid"
	for i in $(seq 1 200); do
		port_in_use "$BROKER_PORT" && return 0
		sleep 0.05
	done
	return 1
}

# proc_alive PID: the process exists and is not a zombie.
proc_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# stop_pid PID [SIGNAL]: signals PID (TERM by default) and waits until it is
# gone, escalating to KILL after 10 s. It polls /proc rather than calling
# `wait`, which can hang in an EXIT trap; zombies are reaped when the shell ends.
stop_pid() {
	local pid=$1 sig=${2:-TERM} i
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for i in $(seq 1 200); do
		proc_alive "$pid" || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	return 0
}

broker_stop() {
	stop_pid "${BROKER_PID:-}"
	BROKER_PID=
}
