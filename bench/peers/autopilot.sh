#!/bin/bash
# bench/peers/autopilot.sh — driver of pg_autopilot for the side-by-side
# benchmarks (interface: bench/peers/common.sh).  Monitor on 7500, nodeI on
# 7500+I; default settings: the initdb defaults plus the node GUCs of the
# README's manual setup (as bench/lib.sh init_node).  The agent is the keeper
# background worker inside each node's postmaster.
AP_MPORT=${AP_MPORT:-7500}

ap_monitor() { sql ctl "$AP_MPORT" pg_autopilot "$1"; }
ap_node() {
	local i=$1 d="$BENCH_DIR/node$1"
	pg_initdb "node$i" "$d" $((AP_MPORT + i)) || return 1
	cat >>"$d/postgresql.conf" <<EOC
wal_log_hints = on
shared_preload_libraries = 'pg_autopilot'
pg_autopilot.monitor = 'host=$(addr ctl) port=$AP_MPORT dbname=pg_autopilot user=autopilot_node'
pg_autopilot.node_name = 'node$i'
pg_autopilot.hostname = '$(addr "node$i")'
EOC
	pg_start "node$i" "$d"
}
ap_state_is() {
	[ "$(ap_monitor "SELECT current_state || '|' || assigned_state FROM pg_autopilot.show_state() WHERE node_name = '$1'" 2>/dev/null)" = "$2|$2" ]
}

# ap_wait_join NODE: until NODE is secondary; 2 as soon as the monitor refuses it.
ap_wait_join() {
	local node=$1 deadline got
	deadline=$(($(date +%s) + BENCH_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		got=$(ap_monitor "SELECT current_state || '|' || assigned_state FROM pg_autopilot.show_state() WHERE node_name = '$node'" 2>/dev/null)
		[ "$got" = "secondary|secondary" ] && return 0
		REFUSAL=$(grep -m1 -o 'cannot register.*' "$BENCH_DIR/$node.log" 2>/dev/null | cut -c1-110)
		[ -n "$REFUSAL" ] && return 2
		sleep 0.05
	done
	echo "$node did not become secondary within ${BENCH_TIMEOUT}s (got '$got')" >&2
	return 1
}

drv_setup() {
	local n=$1 i rc
	pg_initdb ctl "$BENCH_DIR/monitor" "$AP_MPORT" || return 1
	echo "shared_preload_libraries = 'pg_autopilot_monitor'" >>"$BENCH_DIR/monitor/postgresql.conf"
	pg_start ctl "$BENCH_DIR/monitor" || return 1
	ap_monitor 'SELECT 1' >/dev/null 2>&1 || sql ctl "$AP_MPORT" postgres 'CREATE DATABASE pg_autopilot' || return 1
	ap_monitor 'CREATE EXTENSION pg_autopilot_monitor' || return 1
	ap_node 1 || return 1
	wait_until "$BENCH_TIMEOUT" ap_state_is node1 single || return 1
	for ((i = 2; i <= n; i++)); do
		ap_node "$i" || return 1
		ap_wait_join "node$i"
		rc=$?
		[ "$rc" = 0 ] || return "$rc"
	done
	wait_until "$BENCH_TIMEOUT" ap_state_is node1 primary
}

drv_uri() { ap_monitor 'SELECT pg_autopilot.formation_uri()'; }

drv_primary() {
	ap_monitor "SELECT node_name FROM pg_autopilot.show_state()
		WHERE assigned_state IN ('primary', 'wait_primary', 'single') ORDER BY node_id LIMIT 1"
}

drv_port() { echo $((AP_MPORT + ${1#node})); }

drv_kill_primary() {
	local p pm
	p=$(drv_primary) || return 1
	pm=$(postmaster_pid "$BENCH_DIR/$p") || return 1
	mark_fault
	kill -KILL "$pm"
}

drv_switchover() { ap_monitor 'SELECT pg_autopilot.perform_switchover()' >/dev/null; }

drv_settled() {
	local old=$1 bad
	bad=$(ap_monitor "SELECT count(*) FROM pg_autopilot.show_state()
		WHERE current_state <> assigned_state
		   OR (node_name = '$old' AND current_state <> 'secondary')
		   OR current_state NOT IN ('primary', 'secondary')") || return 1
	[ "$bad" = 0 ]
}

# The keeper: the postmaster's child titled "... pg_autopilot keeper".
drv_agent_pids() {
	local d pm p
	for d in "$BENCH_DIR"/node[0-9]/; do
		pm=$(postmaster_pid "${d%/}") || continue
		for p in $(pgrep -P "$pm"); do
			tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q 'pg_autopilot keeper' && echo "$p"
		done
	done
}

drv_control_pids() { descendants "$(postmaster_pid "$BENCH_DIR/monitor")"; }

drv_teardown() { stop_scratch_servers; }
