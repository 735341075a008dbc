#!/bin/bash
# bench/lib.sh — shared helpers of the benchmarks (sourced, not run).
#
# Servers run as an unprivileged user (the caller, or $BENCH_USER, default
# postgres, when run as root) in a scratch folder under /tmp that is removed
# on exit with every server in it.  Ports start at $BENCH_PORT_BASE (5100).
# Benchmarks may sleep (they measure time); tests never do.
set -u
PGBIN=$(pg_config --bindir)
BENCH_PORT_BASE=${BENCH_PORT_BASE:-5100}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
if [ "$(id -u)" = 0 ]; then
	BENCH_RUN_USER=${BENCH_USER:-postgres}
	as_user() { runuser -u "$BENCH_RUN_USER" -- env PATH="$PGBIN:$PATH" "$@"; }
else
	BENCH_RUN_USER=$(id -un)
	as_user() { env PATH="$PGBIN:$PATH" "$@"; }
fi
BENCH_DIR=$(mktemp -d /tmp/pg_autopilot-bench.XXXXXX)
chmod 755 "$BENCH_DIR"
[ "$(id -u)" = 0 ] && chown "$BENCH_RUN_USER" "$BENCH_DIR"

# stop_all_servers: fast stop of every server in the scratch folder.
stop_all_servers() {
	local d
	for d in "$BENCH_DIR"/*/; do
		d=${d%/}
		[ -f "$d/postmaster.pid" ] || continue
		as_user pg_ctl -D "$d" -m fast -t 30 stop >/dev/null 2>&1 || as_user pg_ctl -D "$d" -m immediate stop >/dev/null 2>&1
	done
}
bench_cleanup() {
	stop_all_servers
	if [ -n "${BENCH_KEEP:-}" ]; then echo "bench data kept in $BENCH_DIR"; else rm -rf "$BENCH_DIR"; fi
}
trap bench_cleanup EXIT
trap 'exit 1' INT TERM

now() { date +%s.%N; }

# psql_at PORT DB SQL...: psql over TCP, unaligned tuples only.
psql_at() {
	local port=$1 db=$2
	shift 2
	as_user psql -X -Atq -h 127.0.0.1 -p "$port" -U "$BENCH_RUN_USER" -d "$db" -v ON_ERROR_STOP=1 "$@"
}

# start_monitor NAME PORT
start_monitor() {
	local name=$1 port=$2 d="$BENCH_DIR/$1"
	as_user initdb -D "$d" -A trust >"$BENCH_DIR/$name.initdb.log" 2>&1 || { echo "initdb $name failed" >&2; return 1; }
	cat >>"$d/postgresql.conf" <<EOC
shared_preload_libraries = 'pg_autopilot_monitor'
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
EOC
	as_user pg_ctl -D "$d" -l "$BENCH_DIR/$name.log" -w start >/dev/null || { echo "$name did not start" >&2; return 1; }
	psql_at "$port" postgres -c 'CREATE DATABASE pg_autopilot' &&
		psql_at "$port" pg_autopilot -c 'CREATE EXTENSION pg_autopilot_monitor'
}

# init_node NAME PORT MONITOR_PORT: a fresh initdb with the node settings (not started).
init_node() {
	local name=$1 port=$2 mport=$3 d="$BENCH_DIR/$1"
	as_user initdb -D "$d" -A trust >"$BENCH_DIR/$name.initdb.log" 2>&1 || { echo "initdb $name failed" >&2; return 1; }
	cat >>"$d/postgresql.conf" <<EOC
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_log_hints = on
shared_preload_libraries = 'pg_autopilot'
pg_autopilot.monitor = 'host=127.0.0.1 port=$mport dbname=pg_autopilot user=autopilot_node'
pg_autopilot.node_name = '$name'
pg_autopilot.hostname = '127.0.0.1'
EOC
}

start_node() { as_user pg_ctl -D "$BENCH_DIR/$1" -l "$BENCH_DIR/$1.log" -w start >/dev/null; }

# wait_state MONITOR_PORT NODE STATE: poll every 20 ms until current = assigned = STATE.
wait_state() {
	local mport=$1 node=$2 state=$3 deadline got
	deadline=$(($(date +%s) + BENCH_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		got=$(psql_at "$mport" pg_autopilot -c "SELECT current_state || '|' || assigned_state FROM pg_autopilot.show_state() WHERE node_name = '$node'" 2>/dev/null)
		[ "$got" = "$state|$state" ] && return 0
		sleep 0.02
	done
	echo "$node did not reach $state within ${BENCH_TIMEOUT}s (got '$got')" >&2
	return 1
}

# median / percentile of numbers on stdin (one per line).
percentile() {
	sort -g | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } i = int((NR - 1) * p / 100 + 0.5) + 1; if (i > NR) i = NR; print v[i] }'
}
