#!/bin/bash
# bench/peers/autofailover.sh — driver of pg_auto_failover (Debian
# pg-auto-failover-cli + postgresql-15-auto-failover, 2.0) for the
# side-by-side benchmarks (interface: bench/peers/common.sh).  Monitor on
# 7510, nodeI on 7510+I, every pg_autoctl setting at its default except what
# the benchmark needs: --auth trust, --no-ssl, listen addresses (and
# --pg-hba-lan in network namespaces).  The
# agent is pg_autoctl (a supervisor and its node-active and postgres-controller
# children) on each node; the monitor is also run by pg_autoctl.
AF_MPORT=${AF_MPORT:-7510}

# af_ctl HOST LOG ARGS...: pg_autoctl in the background on HOST, its XDG
# folders in the scratch folder.
af_ctl() {
	local host=$1 log=$2
	shift 2
	on_bg "$host" "$log" env XDG_CONFIG_HOME="$BENCH_DIR/xdg/config" XDG_DATA_HOME="$BENCH_DIR/xdg/data" \
		XDG_RUNTIME_DIR="$BENCH_DIR/xdg/run" pg_autoctl "$@"
}
af_monitor() { sql ctl "$AF_MPORT" pg_auto_failover "$1"; }
af_states() {
	af_monitor "SELECT string_agg(nodename || ':' || reportedstate || '/' || goalstate, ' ' ORDER BY nodeid) FROM pgautofailover.node" 2>/dev/null
}
# af_wait NODE STATE: until NODE reports STATE as its goal.
af_wait() {
	local node=$1 state=$2 deadline got
	deadline=$(($(date +%s) + BENCH_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		got=$(af_monitor "SELECT reportedstate || '/' || goalstate FROM pgautofailover.node WHERE nodename = '$node'" 2>/dev/null)
		[ "$got" = "$state/$state" ] && return 0
		sleep 0.1
	done
	echo "$node did not reach $state within ${BENCH_TIMEOUT}s: $(af_states)" >&2
	return 1
}

drv_setup() {
	local n=$1 i lan=
	# In network namespaces the client host is not on the loopback: admit the
	# lab's network for --dbname (postgres), as pg_autoctl offers.
	[ -n "$LAB_DIR" ] && lan=--pg-hba-lan
	as_user mkdir -p "$BENCH_DIR/xdg/config" "$BENCH_DIR/xdg/data" "$BENCH_DIR/xdg/run"
	as_user chmod 700 "$BENCH_DIR/xdg/run"
	# create monitor + config set + run: 'create monitor' has no --listen.
	af_ctl ctl "$BENCH_DIR/monitor.log" create monitor --pgdata "$BENCH_DIR/monitor" --pgport "$AF_MPORT" \
		--hostname "$(addr ctl)" --auth trust --no-ssl
	wait "$BG_PID" || return 1
	af_ctl ctl "$BENCH_DIR/monitor.log" config set --pgdata "$BENCH_DIR/monitor" postgresql.listen_addresses "$(addr ctl)"
	wait "$BG_PID" || return 1
	# The client host's psql (pg_autoctl admits only the nodes' role).
	echo "host all all samenet trust" >>"$BENCH_DIR/monitor/pg_hba.conf"
	af_ctl ctl "$BENCH_DIR/monitor.log" run --pgdata "$BENCH_DIR/monitor"
	disown "$BG_PID"
	echo "$BG_PID" >"$BENCH_DIR/monitor.agent"
	wait_until "$BENCH_TIMEOUT" af_monitor 'SELECT 1' >/dev/null 2>&1 || return 1
	for ((i = 1; i <= n; i++)); do
		af_ctl "node$i" "$BENCH_DIR/node$i.log" create postgres --pgdata "$BENCH_DIR/node$i" --pgport $((AF_MPORT + i)) \
			--listen "$(addr "node$i")" --hostname "$(addr "node$i")" --name "node$i" --auth trust --no-ssl \
			--monitor "postgres://autoctl_node@$(addr ctl):$AF_MPORT/pg_auto_failover?sslmode=disable" $lan --run
		disown "$BG_PID"
		echo "$BG_PID" >"$BENCH_DIR/node$i.agent"
		if [ "$i" = 1 ]; then af_wait node1 single || return 1; else af_wait "node$i" secondary || return 1; fi
	done
	af_wait node1 primary
}

drv_uri() { af_monitor "SELECT pgautofailover.formation_uri('default')"; }

drv_primary() {
	af_monitor "SELECT nodename FROM pgautofailover.node
		WHERE goalstate IN ('primary', 'wait_primary', 'single') AND reportedstate = goalstate
		ORDER BY reporttime DESC LIMIT 1"
}

drv_port() { echo $((AF_MPORT + ${1#node})); }

# kill -9 of the node's pg_autoctl processes and its postmaster, at once.
drv_kill_primary() {
	local p pids pm
	p=$(drv_primary) || return 1
	pm=$(postmaster_pid "$BENCH_DIR/$p")
	pids=$(descendants "$(cat "$BENCH_DIR/$p.agent")" | af_only_ctl)
	mark_fault
	# shellcheck disable=SC2086
	kill -KILL $pids "$pm"
}
af_only_ctl() {
	local p
	while read -r p; do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = pg_autoctl ] && echo "$p"; done
	return 0
}

# pg_autoctl perform switchover calls perform_failover() on the monitor.
drv_switchover() { af_monitor "SELECT pgautofailover.perform_failover('default', 0)" >/dev/null; }

drv_settled() {
	local old=$1 bad
	bad=$(af_monitor "SELECT count(*) FROM pgautofailover.node
		WHERE reportedstate <> goalstate
		   OR (nodename = '$old' AND reportedstate <> 'secondary')
		   OR reportedstate NOT IN ('primary', 'secondary')") || return 1
	[ "$bad" = 0 ]
}

drv_agent_pids() {
	local f
	for f in "$BENCH_DIR"/node[0-9].agent; do descendants "$(cat "$f")" | af_only_ctl; done
}

drv_control_pids() { descendants "$(cat "$BENCH_DIR/monitor.agent")"; }

# pg_autoctl stops its postgres on SIGTERM; what is left is killed by the caller.
drv_teardown() {
	local f pids=""
	for f in "$BENCH_DIR"/node[0-9].agent "$BENCH_DIR"/monitor.agent; do
		[ -f "$f" ] && pids="$pids $(cat "$f")"
	done
	[ -n "$pids" ] || return 0
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null
	# shellcheck disable=SC2086
	wait_until 30 all_dead $pids
}
