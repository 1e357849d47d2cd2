# Helpers for integration tests with several hosts (README "Tests"): each
# host is a network namespace with a veth pair to one bridge, which lives in
# a namespace of its own (nothing is added to the root namespace, so two
# tests running at once cannot collide on a route or an address). Every
# client runs inside its host's namespace (netns_run): a client in the root
# namespace aimed at a namespace address would leave by the default route.
# Source it instead of calling it_setup; needs root (else the test SKIPs).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
declare -A NETNS=() NETADDR=() # host name -> namespace, its address
NETNS_ALL=()                   # every namespace made, for the cleanup
NETNS_TAG=mq$$                 # unique per test run: in every name
# 10.250.X.0/24: X from the PID, so concurrent tests differ in their logs
# too (the namespaces are isolated whatever X is).
NETNS_NET=10.250.$(($$ % 250 + 1))

netns__cleanup() { # stops every process by PID, then removes every namespace (their links go with them)
	local n p
	it_cleanup
	# Whatever is still in a namespace of the test's was started by it.
	for n in "${NETNS_ALL[@]}"; do
		for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
		ip netns del "$n" 2>/dev/null || true
	done
}

# netns_setup HOST...: a throw-away directory $T, a bridge, and one
# namespace per HOST with its loopback up and an address NETADDR[HOST] on
# the bridge. Prints SKIP and exits 0 when namespaces cannot be made here.
netns_setup() {
	T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
	trap netns__cleanup EXIT
	local sw=$NETNS_TAG-sw i=0 h ns
	if [ "$(id -u)" != 0 ] || ! ip netns add "$sw" 2>/dev/null; then
		echo "SKIP: network namespaces need root (ip netns add)"
		exit 0
	fi
	NETNS_ALL+=("$sw")
	ip -n "$sw" link add br0 type bridge
	ip -n "$sw" link set br0 up
	ip -n "$sw" link set lo up
	for h in "$@"; do
		i=$((i + 1))
		ns=$NETNS_TAG-$h
		ip netns add "$ns" || fail "ip netns add $ns"
		NETNS_ALL+=("$ns")
		# Created inside the host's namespace, its peer moved to the bridge's:
		# the root namespace never holds either end.
		ip -n "$ns" link add eth0 type veth peer name "p$i" netns "$sw" || fail "veth for $h"
		ip -n "$sw" link set "p$i" master br0
		ip -n "$sw" link set "p$i" up
		ip -n "$ns" addr add "$NETNS_NET.$i/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
		NETNS[$h]=$ns
		NETADDR[$h]=$NETNS_NET.$i
	done
	note "hosts ${*} on $NETNS_NET.0/24 (namespaces $NETNS_TAG-*), dir $T"
}

# netns_run HOST COMMAND...: runs COMMAND in HOST's namespace. To run it in
# the background with $! its own PID, call `ip netns exec "${NETNS[HOST]}"`
# directly (ip execs the command; a function sent to the background is a
# subshell, whose PID a kill would miss the command by).
netns_run() {
	local h=$1
	shift
	ip netns exec "${NETNS[$h]}" "$@"
}

# netns_port_open HOST ADDR PORT: something in HOST's namespace accepts TCP on ADDR:PORT.
netns_port_open() {
	netns_run "$1" bash -c "(exec 3<>/dev/tcp/$2/$3) 2>/dev/null"
}

# netns_broker HOST DIR [CONF...]: a mosquitto in HOST's namespace with the
# test settings (broker-config/test.conf.in) listening on HOST's address,
# port 1883 (the namespace is the test's own), persistence in DIR, and the
# lines of each CONF file appended (bridges). Sets NB_PID and NB_URI.
netns_broker() {
	local h=$1 dir=$2 addr=${NETADDR[$1]} i
	shift 2
	mkdir -p "$dir"
	sed -e "s|^listener @PORT@ 127.0.0.1|listener 1883 $addr|" -e "s|@DIR@|$dir|" -e "s|@USER@|$(id -un)|" \
		"$MQPIPE_ROOT/broker-config/test.conf.in" >"$dir/mosquitto.conf"
	[ $# -eq 0 ] || cat "$@" >>"$dir/mosquitto.conf"
	ip netns exec "${NETNS[$h]}" mosquitto -c "$dir/mosquitto.conf" >>"$dir/mosquitto.out" 2>&1 &
	NB_PID=$!
	PIDS+=("$NB_PID")
	for i in $(seq 1 200); do
		netns_port_open "$h" "$addr" 1883 && { NB_URI=tcp://$addr:1883; return 0; }
		proc_alive "$NB_PID" || break
		sleep 0.05
	done
	fail "mosquitto on $h did not start: $(tail -3 "$dir/mosquitto.log" "$dir/mosquitto.out" 2>/dev/null)"
}

# netns_spawn HOST NAME URI BINARY [ARGS...]: starts an agent in HOST's
# namespace on the broker URI, logging to $T/NAME.log, without waiting (see
# netns_online). Sets AGENT_PID and ONLINE_BEFORE[NAME] (its log's count of
# "online" so far).
declare -A ONLINE_BEFORE=()
netns_spawn() {
	local h=$1 name=$2 uri=$3 bin=$4
	shift 4
	ONLINE_BEFORE[$name]=$(grep -cE 'event=online' "$T/$name.log" 2>/dev/null || true)
	ip netns exec "${NETNS[$h]}" "$BIN/$bin" -b "$uri" "$@" 2>>"$T/$name.log" &
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
}

# netns_online NAME...: waits until each agent spawned as NAME came online (again).
netns_online() {
	local name
	for name in "$@"; do
		wait_for 40 agent_online_after "$T/$name.log" "${ONLINE_BEFORE[$name]:-0}" ||
			fail "$name did not come online: $(tail -n 5 "$T/$name.log")"
	done
}

# netns_agent HOST NAME URI BINARY [ARGS...]: netns_spawn, and waits until it is online.
netns_agent() {
	netns_spawn "$@"
	netns_online "$2"
}

# netns_record HOST NAME URI TOPIC...: mqpipe-record with a kept session in
# HOST's namespace writing $T/NAME.jsonl; waits until it records. Sets REC_PID.
netns_record() {
	local h=$1 name=$2 uri=$3 t args=()
	shift 3
	for t in "$@"; do args+=(-t "$t"); done
	ip netns exec "${NETNS[$h]}" "$BIN/mqpipe-record" -b "$uri" -c -i "it-$name-$$" "${args[@]}" \
		-o "$T/$name.jsonl" 2>>"$T/$name.log" &
	REC_PID=$!
	PIDS+=("$REC_PID")
	wait_for 30 log_has "$T/$name.log" recording || fail "recorder $name: $(tail -3 "$T/$name.log")"
}

# normalized NAME: the normalized output lines of $T/NAME.jsonl (scripts/traces normalize), every one.
normalized() {
	"$MQPIPE_ROOT/scripts/traces" normalize "$T/$1.jsonl"
}

# wait_outputs NAME WANT SECONDS: waits until $T/NAME.jsonl holds every line
# of the file WANT (sorted), then half a second for extras.
wait_outputs() {
	wait_for "$3" bash -c "[ -z \"\$(comm -23 '$2' <('$MQPIPE_ROOT/scripts/traces' normalize '$T/$1.jsonl' 2>/dev/null | LC_ALL=C sort -u))\" ]" ||
		return 1
	sleep 0.5
}
