#!/bin/bash
# scripts/demo.sh — a local pg_autopilot group on the loopback.
#
#   scripts/demo.sh start    monitor on 127.0.0.1:5000, node1 on 5001, node2 on 5002
#   scripts/demo.sh stop     stop all three and remove their data
#
# Servers run as an unprivileged user: the caller, or $DEMO_USER (default
# postgres) when run as root.  Data lives in ./demo/ (git-ignored) when that
# user can write there; otherwise (a checkout the user cannot reach, such as
# one under /root) in /tmp/pg_autopilot-demo, and ./demo/location says where.
# The two nodes differ only in port and pg_autopilot.node_name: node2 starts
# from a fresh initdb and clones itself from node1.
#
# Environment: DEMO_TIMEOUT (seconds to wait for each step, default 120),
# DEMO_USER, DEMO_PORT_BASE (default 5000).
set -u

action=${1:-start}
repo=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=$(pg_config --bindir)
timeout=${DEMO_TIMEOUT:-120}
base=${DEMO_PORT_BASE:-5000}
mport=$base
ports=([1]=$((base + 1)) [2]=$((base + 2)))
marker="$repo/demo/location"

if [ "$(id -u)" = 0 ]; then
	run_user=${DEMO_USER:-postgres}
	as_user() { runuser -u "$run_user" -- env PATH="$PGBIN:$PATH" "$@"; }
else
	run_user=$(id -un)
	as_user() { env PATH="$PGBIN:$PATH" "$@"; }
fi

say() { printf '== %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# data_dir: where the demo's data lives (chosen at start, recorded in ./demo/location).
data_dir() {
	if [ -f "$marker" ]; then cat "$marker"; else echo "$repo/demo"; fi
}

psql_monitor() {
	as_user psql -X -h 127.0.0.1 -p "$mport" -U "$run_user" -d pg_autopilot -v ON_ERROR_STOP=1 "$@"
}

stop_all() {
	local dir
	dir=$(data_dir)
	for d in node2 node1 monitor; do
		if [ -f "$dir/$d/postmaster.pid" ]; then
			as_user pg_ctl -D "$dir/$d" -m fast -t 60 stop >/dev/null || as_user pg_ctl -D "$dir/$d" -m immediate stop
		fi
	done
	# The data directories and the keepers' sibling directories (<PGDATA>.autopilot, .clone, .old-*).
	rm -rf "$dir"/monitor* "$dir"/node1* "$dir"/node2* "$dir"/*.log
	if [ "$dir" != "$repo/demo" ]; then rm -rf "$dir"; fi
	rm -rf "$repo/demo"
}

# fail: show what went wrong, clean up everything, exit non-zero.
fail() {
	local dir
	dir=$(data_dir)
	printf '\ndemo: %s\n' "$*" >&2
	for f in "$dir"/*.log; do
		[ -f "$f" ] || continue
		printf -- '---- last lines of %s\n' "$f" >&2
		tail -25 "$f" >&2
	done
	if [ -n "${DEMO_KEEP_ON_FAILURE:-}" ]; then
		printf 'demo: servers and data kept in %s (DEMO_KEEP_ON_FAILURE); stop with make demo-stop\n' "$dir" >&2
	else
		printf 'demo: stopping the servers and removing %s\n' "$dir" >&2
		stop_all
	fi
	exit 1
}

# wait_state NODE STATE: until current = assigned = STATE, or fail.
wait_state() {
	local node=$1 state=$2 got="" i
	for ((i = 0; i < timeout * 2; i++)); do
		got=$(psql_monitor -Atq -c "SELECT current_state || '|' || assigned_state FROM pg_autopilot.show_state() WHERE node_name = '$node'" 2>/dev/null)
		[ "$got" = "$state|$state" ] && return 0
		sleep 0.5
	done
	psql_monitor -c 'SELECT * FROM pg_autopilot.show_state()' >&2
	fail "$node did not reach $state within ${timeout}s (current|assigned: ${got:-none})"
}

# show_failover DIR: a planned switchover, then a crash of the new primary
# (kill -9 of its postmaster) and the automatic failover, then the crashed
# node restarting and rejoining (rewound) as a standby.  DEMO_FAILOVER=0 skips it.
show_failover() {
	local dir=$1 pm uri
	uri=$(psql_monitor -Atq -c 'SELECT pg_autopilot.formation_uri()')
	as_user psql -X -q "$uri" -c 'CREATE TABLE demo_writes(id int PRIMARY KEY, at timestamptz DEFAULT now())' ||
		fail "could not write through the formation URI"
	as_user psql -X -q "$uri" -c 'INSERT INTO demo_writes(id) SELECT generate_series(1, 100)' >/dev/null

	say "switchover: SELECT pg_autopilot.perform_switchover()"
	psql_monitor -q -c 'SELECT pg_autopilot.perform_switchover()' >/dev/null || fail "perform_switchover failed"
	wait_state node2 primary
	wait_state node1 secondary
	psql_monitor -c 'SELECT node_name, current_state, assigned_state FROM pg_autopilot.show_state()'

	pm=$(head -1 "$dir/node2/postmaster.pid")
	say "failover: kill -9 of the primary's postmaster (node2, PID $pm)"
	kill -KILL "$pm"
	wait_state node1 wait_primary
	as_user psql -X -q "$uri" -c 'INSERT INTO demo_writes(id) VALUES (101)' >/dev/null ||
		fail "no write through the formation URI after the failover"
	psql_monitor -c 'SELECT node_name, current_state, assigned_state FROM pg_autopilot.show_state()'

	say "node2 restarts: it is rewound and rejoins as a standby"
	while kill -0 "$pm" 2>/dev/null; do sleep 0.1; done
	as_user pg_ctl -D "$dir/node2" -l "$dir/node2.log" -w -t "$timeout" start >/dev/null 2>&1 || fail "node2 did not restart"
	wait_state node2 secondary
	wait_state node1 primary
	say "all 101 acknowledged rows are on the primary: $(as_user psql -X -Atq "$uri" -c 'SELECT count(*) FROM demo_writes')"
	psql_monitor -c "SELECT event_time::time(0), node_name, reported_state, assigned_state, rule
	                   FROM pg_autopilot.show_events('default', 60) WHERE rule IS NOT NULL ORDER BY event_id"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
	[ -e "$marker" ] || [ -e "$repo/demo/monitor" ] && die "a demo already exists; run 'make demo-stop' first"
	for p in "$mport" "${ports[1]}" "${ports[2]}"; do
		port_busy "$p" && die "port $p on 127.0.0.1 is in use; stop what listens there or set DEMO_PORT_BASE"
	done
	command -v "$PGBIN/initdb" >/dev/null || die "initdb not found in $PGBIN"

	local dir="$repo/demo"
	mkdir -p "$dir"
	if [ "$(id -u)" = 0 ]; then
		chown "$run_user" "$dir"
		if ! as_user test -w "$dir"; then
			# The checkout is not reachable by $run_user: keep the data in /tmp.
			dir=/tmp/pg_autopilot-demo
			rm -rf "$dir"
			mkdir -p "$dir"
			chown "$run_user" "$dir"
			echo "$dir" >"$marker"
		fi
	fi
	trap 'fail "interrupted"' INT TERM
	say "data in $dir (servers run as $run_user)"

	say "monitor: initdb, port $mport"
	as_user initdb -D "$dir/monitor" -A trust >"$dir/initdb.log" 2>&1 || fail "initdb of the monitor failed"
	cat >>"$dir/monitor/postgresql.conf" <<EOF

# pg_autopilot demo monitor
shared_preload_libraries = 'pg_autopilot_monitor'
port = $mport
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
EOF
	as_user pg_ctl -D "$dir/monitor" -l "$dir/monitor.log" -w -t "$timeout" start >/dev/null ||
		fail "the monitor did not start"
	as_user psql -X -q -h 127.0.0.1 -p "$mport" -U "$run_user" -d postgres -v ON_ERROR_STOP=1 \
		-c 'CREATE DATABASE pg_autopilot' || fail "CREATE DATABASE pg_autopilot failed"
	psql_monitor -q -c 'CREATE EXTENSION pg_autopilot_monitor' || fail "CREATE EXTENSION pg_autopilot_monitor failed"

	for n in 1 2; do
		say "node$n: initdb, port ${ports[$n]}"
		as_user initdb -D "$dir/node$n" -A trust >>"$dir/initdb.log" 2>&1 || fail "initdb of node$n failed"
		cat >>"$dir/node$n/postgresql.conf" <<EOF

# pg_autopilot demo node: the two nodes differ only in port and node_name
port = ${ports[$n]}
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_log_hints = on
shared_preload_libraries = 'pg_autopilot'
pg_autopilot.monitor = 'host=127.0.0.1 port=$mport dbname=pg_autopilot user=autopilot_node'
pg_autopilot.node_name = 'node$n'
pg_autopilot.hostname = '127.0.0.1'
pg_autopilot.formation = 'default'
EOF
	done

	say "starting node1"
	as_user pg_ctl -D "$dir/node1" -l "$dir/node1.log" -w -t "$timeout" start >/dev/null || fail "node1 did not start"
	wait_state node1 single
	say "node1 is single; starting node2 (fresh initdb: it clones itself from node1)"
	as_user pg_ctl -D "$dir/node2" -l "$dir/node2.log" -w -t "$timeout" start >/dev/null || fail "node2 did not start"
	wait_state node2 secondary
	wait_state node1 primary
	trap - INT TERM

	say "the group is ready"
	psql_monitor -c 'SELECT * FROM pg_autopilot.show_state()'
	[ "${DEMO_FAILOVER:-1}" = 1 ] && show_failover "$dir"
	local uri
	uri=$(psql_monitor -Atq -c 'SELECT pg_autopilot.formation_uri()')
	cat <<EOF
formation URI (writes go to the primary):
  $uri

Try:
  psql -U $run_user '$uri' -c 'CREATE TABLE t AS SELECT 1 AS x'
  psql -U $run_user -h 127.0.0.1 -p $mport -d pg_autopilot -c 'SELECT * FROM pg_autopilot.show_events()'
Logs: $dir/{monitor,node1,node2}.log
Stop and remove everything: make demo-stop
EOF
}

case "$action" in
start) start ;;
stop)
	stop_all
	say "demo stopped and removed"
	;;
*) die "usage: $0 start|stop" ;;
esac
