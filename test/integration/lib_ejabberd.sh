# ejabberd nodes for integration tests (README "Scaling out", "On an MQTT 5
# cluster"): each node runs as the test's own process (erl, started by PID
# and stopped by PID) with test/integration/ejabberd.yml on a free loopback
# port, its own Mnesia spool under $T/ej/NAME, and a long node name on
# 127.0.0.1. The Erlang cookie lives in $T/ej/.erlang.cookie (HOME=$T/ej for
# every erl), and the nodes find each other through an epmd of the test's own
# on a free port (ERL_EPMD_PORT), never the shared one on 4369.
# Source after lib.sh.

EJ_LIB=/usr/lib/x86_64-linux-gnu
EJ_PIDS=()

# ej_available: true when Debian's ejabberd and erl are installed.
ej_available() {
	command -v erl >/dev/null 2>&1 && command -v epmd >/dev/null 2>&1 &&
		compgen -G "$EJ_LIB/ejabberd-*/ebin/ejabberd.app" >/dev/null
}

# ej_erl ARGS...: erl with the test's HOME (its cookie), epmd port and
# distribution on loopback only.
ej_erl() {
	HOME=$T/ej ERL_EPMD_PORT=$EJ_EPMD_PORT ERL_LIBS=$EJ_LIB \
		erl -start_epmd false -kernel inet_dist_use_interface '{127,0,0,1}' "$@"
}

# ej_setup: the cookie and the test's epmd. Sets EJ_EPMD_PORT, EJ_EPMD_PID.
ej_setup() {
	mkdir -p "$T/ej"
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/ej/.erlang.cookie"
	chmod 400 "$T/ej/.erlang.cookie"
	local tries
	for tries in 1 2 3 4 5; do
		EJ_EPMD_PORT=$(free_port) || continue
		epmd -port "$EJ_EPMD_PORT" -address 127.0.0.1 >"$T/ej/epmd.log" 2>&1 &
		EJ_EPMD_PID=$!
		PIDS+=("$EJ_EPMD_PID")
		wait_for 10 port_in_use "$EJ_EPMD_PORT" && return 0
		stop_pid "$EJ_EPMD_PID" KILL
	done
	fail "cannot start epmd"
}

# ej_node_start NAME: starts node NAME@127.0.0.1 (its spool kept across
# restarts); ej_node_wait NAME then waits until its MQTT port answers (start
# several, then wait: each takes seconds). Sets EJ_PORT_<NAME> (kept across
# restarts) and EJ_PID_<NAME>.
ej_node_start() {
	local name=$1 dir=$T/ej/$1 port_var=EJ_PORT_$1 pid
	mkdir -p "$dir"
	local port=${!port_var:-}
	[ -z "$port" ] || EJ_PORTS=${EJ_PORTS//" $port"/} # a restart keeps its port
	while [ -z "$port" ] || [[ " ${EJ_PORTS:-} " == *" $port "* ]]; do # not another node's
		port=$(free_port) || fail "no free port"
	done
	printf -v "$port_var" %s "$port"
	EJ_PORTS="${EJ_PORTS:-} $port"
	sed "s|@PORT@|${!port_var}|" "$MQPIPE_ROOT/test/integration/ejabberd.yml" >"$dir/ejabberd.yml"
	# exec, not ej_erl: $! is then erl itself, which becomes the node's
	# beam.smp (erl and erlexec exec it), so a kill of it kills the node. In
	# $dir: a node writes its crash dumps (erl_crash.dump, MnesiaCore.*) there.
	(cd "$dir" && HOME=$T/ej ERL_EPMD_PORT=$EJ_EPMD_PORT ERL_LIBS=$EJ_LIB \
		EJABBERD_CONFIG_PATH=$dir/ejabberd.yml EJABBERD_LOG_PATH=$dir/ejabberd.log \
		exec erl -start_epmd false -kernel inet_dist_use_interface '{127,0,0,1}' \
		-name "$name@127.0.0.1" -noinput -mnesia dir "\"$dir/spool\"" -s ejabberd \
		>>"$dir/erl.out" 2>&1) &
	pid=$!
	PIDS+=("$pid")
	printf -v "EJ_PID_$name" %s "$pid"
}

ej_node_wait() {
	local name=$1 dir=$T/ej/$1 port_var=EJ_PORT_$1 pid_var=EJ_PID_$1
	local pid=${!pid_var}
	wait_for 90 port_in_use "${!port_var}" ||
		fail "ejabberd $name did not open its port: $(tail -n 5 "$dir/erl.out" "$dir/ejabberd.log" 2>&1)"
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = beam.smp ] || fail "ejabberd $name: pid $pid is not the node"
}

# ej_rpc NODE EXPR: evaluates the Erlang expression EXPR (of the variable
# Node, the target node's atom) from a hidden node; prints its value.
ej_rpc() {
	(cd "$T/ej" && ej_erl -name "ctl$$-$RANDOM@127.0.0.1" -hidden -noinput -eval "
		Node = '$1@127.0.0.1', R = ($2), io:format(\"~p~n\", [R]), halt().")
}

# ej_join NAME OTHER: node NAME joins OTHER's cluster (ejabberd restarts its
# applications there) and its MQTT port answers again.
ej_join() {
	local out port_var=EJ_PORT_$1
	out=$(ej_rpc "$1" "rpc:call(Node, ejabberd_admin, join_cluster, [<<\"$2@127.0.0.1\">>])")
	[ "$out" = ok ] || fail "$1 could not join $2: $out"
	wait_for 60 port_in_use "${!port_var}" || fail "$1 did not come back after joining"
}

# ej_running_nodes NAME: the cluster's running nodes as NAME sees them.
ej_running_nodes() {
	ej_rpc "$1" "rpc:call(Node, mnesia, system_info, [running_db_nodes])"
}
