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

# start_writer URI LOG: a background writer (perl, one psql per insert, each a
# new connection through URI, so it follows the primary) that inserts
# increasing ids into ap_writer and appends one line per attempt to LOG:
#   ack <id> <start> <end>  |  fail <id> <start> <end> <error>
# (epoch seconds).  It retries 10 ms after a failure and stops when
# LOG.stop exists or after WRITER_MAX_SECS (default 600).  Attempts are
# bounded by connect_timeout=2 (a frozen host) and a 5 s overall timeout.
WRITER_PL='
use strict; use warnings; use IPC::Run; use Time::HiRes qw(time);
my ($uri, $file, $max) = @ARGV;
open my $fh, ">>", $file or die "$file: $!"; $fh->autoflush(1);
my $deadline = time + $max; my $id = 1;
while (time < $deadline && !-e "$file.stop") {
	my ($out, $err) = ("", "");
	my $t0 = time;
	my $ok = eval { IPC::Run::run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", $uri, "-c",
		"INSERT INTO ap_writer (id) VALUES ($id)"], "<", \undef, ">", \$out, "2>", \$err, IPC::Run::timeout(5)) };
	my $rc = $?; my $t1 = time;
	if ($ok && $rc == 0) { printf $fh "ack %d %.6f %.6f\n", $id, $t0, $t1; }
	else { my $why = $@ ? "timeout" : $err; $why =~ s/\s+/ /g; printf $fh "fail %d %.6f %.6f %s\n", $id, $t0, $t1, substr($why, 0, 200); select(undef, undef, undef, 0.01); }
	$id++;
}'
start_writer() {
	local uri=$1 log=$2
	psql_uri "$uri" -c 'CREATE TABLE IF NOT EXISTS ap_writer (id int PRIMARY KEY)' >/dev/null || return 1
	as_user touch "$log"
	as_user perl -e "$WRITER_PL" "$uri&connect_timeout=2" "$log" "${WRITER_MAX_SECS:-600}" &
	WRITER_PID=$!
}
stop_writer() {
	local log=$1
	as_user touch "$log.stop"
	wait "$WRITER_PID" 2>/dev/null
}

# psql_uri URI ARGS...: psql on a connection URI (e.g. formation_uri()).
psql_uri() {
	local uri=$1
	shift
	as_user psql -X -Atq -d "$uri" -v ON_ERROR_STOP=1 "$@"
}

# wait_first_ack LOG T: wait until LOG has an acknowledged write that started
# at or after T and print its end time.
wait_first_ack() {
	local log=$1 t=$2 deadline got
	deadline=$(($(date +%s) + BENCH_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		got=$(awk -v t="$t" '$1 == "ack" && $3 >= t { print $4; exit }' "$log")
		[ -n "$got" ] && { echo "$got"; return 0; }
		sleep 0.01
	done
	echo "no acknowledged write after $t within ${BENCH_TIMEOUT}s" >&2
	return 1
}

# node_group MONITOR_PORT NODES: fresh monitor on MONITOR_PORT and NODES nodes
# node1..nodeN on the ports after it; node1 primary, the others join one
# after the other as secondary.
node_group() {
	local m=$1 n=$2 i
	start_monitor monitor "$m" || return 1
	init_node node1 "$((m + 1))" "$m" && start_node node1 || return 1
	wait_state "$m" node1 single || return 1
	for ((i = 2; i <= n; i++)); do
		init_node "node$i" "$((m + i))" "$m" && start_node "node$i" || return 1
		wait_state "$m" "node$i" secondary || return 1
	done
	wait_state "$m" node1 primary
}

# wait_writable MONITOR_PORT EXCEPT: poll every 20 ms until a node other than
# EXCEPT is settled (current = assigned) in wait_primary or primary; print its name.
wait_writable() {
	local mport=$1 except=$2 deadline got
	deadline=$(($(date +%s) + BENCH_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		got=$(psql_at "$mport" pg_autopilot -c "SELECT node_name FROM pg_autopilot.show_state() WHERE node_name <> '$except' AND current_state = assigned_state AND assigned_state IN ('wait_primary', 'primary') LIMIT 1" 2>/dev/null)
		[ -n "$got" ] && { echo "$got"; return 0; }
		sleep 0.02
	done
	echo "no node but $except became writable within ${BENCH_TIMEOUT}s" >&2
	return 1
}

# server_cpu_ticks DATADIR: CPU time (utime + stime, in clock ticks) used so
# far by the server of DATADIR: its postmaster, every live child, and the
# children it already reaped (cutime + cstime of the postmaster).
server_cpu_ticks() {
	local pm pids
	pm=$(head -1 "$1/postmaster.pid") || return 1
	pids=$(ps -o pid= --ppid "$pm")
	# shellcheck disable=SC2046,SC2086 # word splitting of the pid list is wanted
	(cd /proc && cat "$pm/stat" $(printf '%s/stat ' $pids) 2>/dev/null) |
		awk '{ sub(/^.*\) /, ""); t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}

# machine_busy_ticks: "busy total" clock ticks of all cores so far (/proc/stat).
machine_busy_ticks() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat
}

# wait_group_settled MONITOR_PORT: poll every 100 ms until every node is
# healthy and has been for the monitor's node_timeout (healthy_since): only
# then may primary_failed take a standby as its candidate at once, as in a
# group that has run for a while (docs/protocol.md, healthy_since).
wait_group_settled() {
	local mport=$1 deadline got
	deadline=$(($(date +%s) + BENCH_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		got=$(psql_at "$mport" pg_autopilot -c "SELECT bool_and(health = 1 AND healthy_since <= now() - current_setting('pg_autopilot_monitor.node_timeout')::interval) FROM pg_autopilot.node" 2>/dev/null)
		[ "$got" = t ] && return 0
		sleep 0.1
	done
	echo "the group did not settle (every node healthy for node_timeout) within ${BENCH_TIMEOUT}s" >&2
	return 1
}

# two_node_group MONITOR_PORT PORT1 PORT2: node_group of two (the ports must be
# the two after the monitor's).
two_node_group() {
	if [ "$2" != $(($1 + 1)) ] || [ "$3" != $(($1 + 2)) ]; then
		echo "two_node_group: ports $2 $3 must follow the monitor's ($1)" >&2
		return 1
	fi
	node_group "$1" 2
}
