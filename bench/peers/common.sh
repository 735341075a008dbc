#!/bin/bash
# bench/peers/common.sh — shared part of the side-by-side benchmarks (sourced,
# not run): process helpers for the drivers, and the measurement loop of one
# scenario run (measure_*).
#
# Every driver (bench/peers/<system>.sh) defines the same small interface:
#
#   drv_setup N         control plane (monitor / DCS) + N data nodes named
#                       node1..nodeN, node1 the first primary; returns when the
#                       group is formed (every standby streaming); returns 2
#                       when the system refuses N nodes (reported "n/a")
#   drv_uri             the system's multi-host connection string (read-write)
#   drv_primary         name of the node that is primary now
#   drv_port NODE       its PostgreSQL port
#   drv_kill_primary    kill -9 of the primary's postmaster and of its agent
#   drv_isolate_primary (common.sh, from drv_primary) cut the primary from every other node and the control plane
#   drv_switchover      the system's planned switchover call (returns when the call does)
#   drv_settled OLD     0 when a primary other than OLD is settled in the
#                       system's own view and every other node follows it
#   drv_agent_pids      PIDs of the HA agents of the data nodes
#   drv_control_pids    PIDs of the control plane (monitor instance, etcd)
#   drv_teardown        stop everything the driver started
#
# Scratch data lives in $BENCH_DIR (bench/lib.sh: a fresh /tmp folder per
# process, removed on exit); servers and agents run as $BENCH_RUN_USER.
# Ports: 7500-7699 (bench/peers/README.md has the map), 127.0.0.1 only.
PEERS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$PEERS_HERE/../lib.sh"
BENCH_TIMEOUT=${BENCH_TIMEOUT:-180}
# Longest a fault may take to be repaired before the run counts as failed.
FAULT_TIMEOUT=${FAULT_TIMEOUT:-240}

# --- hosts: loopback, or one network namespace per host (scenario isolate) ---
# Host names: ctl (monitor / DCS), client (writers, psql), node1..nodeN.
# Without a lab every host is 127.0.0.1 in the caller's namespace; with one
# (lab_up: bench/harness/netlab.py) each host has its own namespace and
# address, and the commands below run inside it.
NETLAB="$PEERS_HERE/../harness/netlab.py"
LAB_DIR=
declare -A LAB_NS LAB_ADDR
RUN_PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin"

# lab_up NAME...: the namespaces; 77 when the machine cannot have them.
lab_up() {
	local name ns a rc
	LAB_DIR="$BENCH_DIR/lab"
	python3 "$NETLAB" up "$LAB_DIR" "$@" >"$BENCH_DIR/lab.hosts" 2>"$BENCH_DIR/lab.err"
	rc=$?
	[ "$rc" = 0 ] || { LAB_DIR=; cat "$BENCH_DIR/lab.hosts" "$BENCH_DIR/lab.err" >&2; return "$rc"; }
	while read -r name ns a; do
		LAB_NS[$name]=$ns
		LAB_ADDR[$name]=$a
	done <"$BENCH_DIR/lab.hosts"
}
lab_down() {
	[ -n "$LAB_DIR" ] && python3 "$NETLAB" down "$LAB_DIR" >/dev/null 2>&1
	return 0
}
# addr HOST: the address at which the others reach HOST.
addr() { if [ -n "$LAB_DIR" ]; then echo "${LAB_ADDR[$1]}"; else echo 127.0.0.1; fi; }
# ns_exec HOST: the command prefix that enters HOST's namespace (none without a lab).
ns_exec() { [ -n "$LAB_DIR" ] && echo "ip netns exec ${LAB_NS[$1]}"; }

# on HOST CMD...: CMD as the benchmark user on HOST, in the foreground.
on() {
	local host=$1
	shift
	if [ "$(id -u)" = 0 ]; then
		$(ns_exec "$host") runuser -u "$BENCH_RUN_USER" -- env HOME="$BENCH_DIR" PATH="$RUN_PATH" "$@"
	else
		env PATH="$RUN_PATH" "$@"
	fi
}
# on_bg HOST LOG CMD...: CMD in the background on HOST (exec'd, so that
# BG_PID is the command's own PID), output appended to LOG.
on_bg() {
	local host=$1 log=$2
	shift 2
	if [ "$(id -u)" = 0 ]; then
		$(ns_exec "$host") setpriv --reuid="$BENCH_RUN_USER" --regid="$(id -g "$BENCH_RUN_USER")" --init-groups \
			env HOME="$BENCH_DIR" PATH="$RUN_PATH" "$@" >>"$log" 2>&1 </dev/null &
	else
		env PATH="$RUN_PATH" "$@" >>"$log" 2>&1 </dev/null &
	fi
	BG_PID=$!
}
# agent_bg HOST LOG CMD...: on_bg for a long-running agent, left out of the
# shell's job table (no "Killed" notice when a scenario kills it).
agent_bg() {
	on_bg "$@"
	disown "$BG_PID"
}
# sql HOST PORT DB SQL: one statement from the client host, unaligned tuples only.
sql() {
	on client psql -X -Atq -h "$(addr "$1")" -p "$2" -U "$BENCH_RUN_USER" -d "$3" -v ON_ERROR_STOP=1 -c "$4"
}
# node_conninfo NODE: a direct connection to NODE (no failover).
node_conninfo() { echo "host=$(addr "$1") port=$(drv_port "$1") dbname=postgres user=$BENCH_RUN_USER"; }

# writer_bg HOST CONNINFO LOG [FIRST_ID]: bench/peers/writer.pl on HOST (one
# psql and one new connection per insert into ap_writer, 5 s per attempt).
writer_bg() {
	local host=$1 conn=$2 log=$3 first=${4:-1}
	as_user touch "$log"
	on_bg "$host" /dev/null perl "$PEERS_HERE/writer.pl" "$conn" "$log" "${WRITER_MAX_SECS:-600}" ap_writer "$first"
	WRITER_PID=$BG_PID
}
# start_uri_writer URI LOG: the table, then the writer through URI from the client host.
start_uri_writer() {
	local uri=$1 log=$2 sep='?'
	case $uri in *\?*) sep='&' ;; esac
	on client psql -X -Atq -d "$uri" -c 'CREATE TABLE IF NOT EXISTS ap_writer (id int PRIMARY KEY)' >/dev/null 2>&1 || return 1
	writer_bg client "$uri${sep}connect_timeout=2" "$log"
}

# pg_initdb HOST DATADIR PORT: a fresh initdb -A trust listening on HOST's
# address only, no unix socket, admitting its subnet (samenet) for
# everything including replication.
pg_initdb() {
	local host=$1 d=$2 port=$3
	on "$host" initdb -D "$d" -A trust >"$d.initdb.out" 2>&1 || { cat "$d.initdb.out" >&2; return 1; }
	cat >>"$d/postgresql.conf" <<EOC
port = $port
listen_addresses = '$(addr "$host")'
unix_socket_directories = ''
EOC
	cat >>"$d/pg_hba.conf" <<EOC
host all all samenet trust
host replication all samenet trust
EOC
}
# pg_start HOST DATADIR: pg_ctl start in HOST's namespace.
pg_start() { on "$1" pg_ctl -D "$2" -l "$2.log" -w -t 120 start >/dev/null; }

# mark_fault: the drivers call it right before the fault's system call
# (after any look-up), so that the fault time FAULT_T0 is exact.
mark_fault() { FAULT_T0=$(now); }

# drv_isolate_primary, the same for every system: cut the node drv_primary
# names from every other host.  Marked once every namespace's rules are in
# place (netlab applies them in turn).
drv_isolate_primary() {
	local p
	p=$(drv_primary) || return 1
	python3 "$NETLAB" isolate "$LAB_DIR" "$p" >/dev/null || return 1
	mark_fault
}

# descendants PID...: the PIDs given and all their descendants.
descendants() {
	ps -e -o pid=,ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
		{ parent[$1] = $2; pids[NR] = $1 }
		END {
			do { changed = 0
				for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
			} while (changed)
			for (p in keep) if (p != "") print p
		}'
}

# all_dead PID...: none of the processes exists any more.
all_dead() {
	local p
	for p in "$@"; do kill -0 "$p" 2>/dev/null && return 1; done
	return 0
}

# postmaster_pid DATADIR
postmaster_pid() { head -1 "$1/postmaster.pid" 2>/dev/null; }

# stop_scratch_servers: immediate stop of every server whose data folder is in
# the scratch folder; a postmaster.pid whose PID is not that folder's
# postmaster (killed, or a copy left by a clone) is removed instead, so that
# nothing signals an unrelated process that reused the PID.
stop_scratch_servers() {
	local f d pid
	for f in "$BENCH_DIR"/*/postmaster.pid; do
		[ -f "$f" ] || continue
		d=${f%/postmaster.pid}
		pid=$(head -1 "$f")
		if [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "-D $d\( \|$\)"; then
			as_user pg_ctl -D "$d" -m immediate -t 30 stop >/dev/null 2>&1
		else
			rm -f "$f"
		fi
	done
	return 0
}

# kill_scratch_processes: last resort of a teardown — SIGKILL of every process
# whose command line names this run's scratch folder (a unique mktemp path:
# only processes this run started).
kill_scratch_processes() {
	local pids
	pids=$(pgrep -f -- "$BENCH_DIR/" | grep -vx "$$" || true)
	# shellcheck disable=SC2086
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	return 0
}

# wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_until() {
	local secs=$1 deadline
	shift
	deadline=$(($(date +%s) + secs))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# streaming_standbys NODE: number of streaming walsenders on NODE.
streaming_standbys() {
	sql "$1" "$(drv_port "$1")" postgres "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null
}

# cpu_ticks PID...: utime+stime+cutime+cstime of the processes, in clock ticks.
cpu_ticks() {
	local p sum=0 v
	for p in "$@"; do
		v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || continue
		[ -n "$v" ] && sum=$((sum + v))
	done
	echo "$sum"
}
# private_kb PID...: sum of Private_Clean + Private_Dirty (smaps_rollup), in kB.
private_kb() {
	local p sum=0 v
	for p in "$@"; do
		v=$(awk '$1 == "Private_Clean:" || $1 == "Private_Dirty:" { s += $2 } END { print s + 0 }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
		sum=$((sum + v))
	done
	echo "$sum"
}

# result METRIC VALUE: one line of this run's result (read by report.py).
result() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$SYSTEM" "$NODES" "$SCENARIO" "$RUN" "$1" "$2" >>"$RESULTS_TSV"; }

# keep_writer_log LOG T0 [SUFFIX]: copy the writer log for the plots, times relative to T0.
keep_writer_log() {
	local log=$1 t0=$2 dest="$OUT_DIR/raw/$SYSTEM-n$NODES-$SCENARIO-r$RUN${3:-}.log"
	mkdir -p "$OUT_DIR/raw"
	awk -v t0="$t0" '$1 == "ack" || $1 == "fail" {
		why = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ [^ ]+ ?/, "", why)
		printf "%s %d %.3f %.3f %s\n", $1, $2, $3 - t0, $4 - t0, substr(why, 1, 100) }' "$log" >"$dest"
}

# lost_acks LOG NODE: acknowledged ids of LOG missing on NODE.
lost_acks() {
	local log=$1 node=$2 have
	have=$(sql "$node" "$(drv_port "$node")" postgres 'SELECT id FROM ap_writer' 2>/dev/null) || { echo "n/a"; return; }
	awk 'NR == FNR { have[$1] = 1; next } $1 == "ack" && !($2 in have) { n++ } END { print n + 0 }' \
		<(printf '%s\n' "$have") "$log"
}

# measure_fault FAULT (kill | isolate): the writer runs through drv_uri; the
# fault; the first acknowledged write that started after it.
measure_fault() {
	local fault=$1 uri log t0 t1 old ms new lost
	uri=$(drv_uri) || return 1
	log="$BENCH_DIR/writer.log"
	start_uri_writer "$uri" "$log" || return 1
	wait_first_ack "$log" 0 >/dev/null || return 1
	sleep 1
	old=$(drv_primary) || return 1
	[ "$fault" = isolate ] && { start_old_primary_writer "$old"; wait_first_ack "$OLD_LOG" 0 >/dev/null || return 1; }
	FAULT_T0=
	if [ "$fault" = kill ]; then drv_kill_primary || return 1; else drv_isolate_primary || return 1; fi
	t0=$FAULT_T0
	[ -n "$t0" ] || { echo "driver did not mark the fault time" >&2; return 1; }
	t1=$(BENCH_TIMEOUT=$FAULT_TIMEOUT wait_first_ack "$log" "$t0") || { stop_writer "$log"; keep_writer_log "$log" "$t0"; return 1; }
	sleep 2
	stop_writer "$log"
	ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
	result first_write_ms "$ms"
	new=$(drv_primary)
	lost=$(lost_acks "$log" "$new")
	result lost_acks "$lost"
	printf '  %s n=%s %s run %s: first write %s ms after the fault (old primary %s, new %s, lost acknowledged writes %s)\n' \
		"$SYSTEM" "$NODES" "$SCENARIO" "$RUN" "$ms" "$old" "$new" "$lost"
	[ "$fault" = isolate ] && report_old_primary_writer "$t0" "$t1" "$new"
	keep_writer_log "$log" "$t0"
}

# measure_switchover: the writer runs through drv_uri; drv_switchover; the
# longest gap between two acknowledged writes around it and the time from the
# call to a settled group (drv_settled, and the new primary streams to every standby).
measure_switchover() {
	local uri log t0 t1 t2 old new gap stable deadline ok lost
	uri=$(drv_uri) || return 1
	log="$BENCH_DIR/writer.log"
	start_uri_writer "$uri" "$log" || return 1
	wait_first_ack "$log" 0 >/dev/null || return 1
	sleep 1
	old=$(drv_primary) || return 1
	t0=$(now)
	drv_switchover || { stop_writer "$log"; return 1; }
	deadline=$(($(date +%s) + FAULT_TIMEOUT))
	ok=
	while [ "$(date +%s)" -lt "$deadline" ]; do
		if drv_settled "$old" 2>/dev/null; then
			new=$(drv_primary 2>/dev/null)
			[ -n "$new" ] && [ "$(streaming_standbys "$new")" = $((NODES - 1)) ] && { ok=1; break; }
		fi
		sleep 0.05
	done
	t1=$(now)
	[ -n "$ok" ] || { echo "  switchover not settled within ${FAULT_TIMEOUT}s" >&2; stop_writer "$log"; return 1; }
	wait_first_ack "$log" "$t1" >/dev/null || { stop_writer "$log"; return 1; }
	sleep 1
	t2=$(now)
	stop_writer "$log"
	gap=$(awk -v a="$t0" -v b="$t2" '
		$1 != "ack" || $4 < a - 1 || $3 > b { next }
		{ if (last != "") { g = $4 - last; if (g > maxg) maxg = g }; last = $4 }
		END { printf "%.0f", maxg * 1000 }' "$log")
	stable=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
	lost=$(lost_acks "$log" "$new")
	result write_gap_ms "$gap"
	result stable_ms "$stable"
	result lost_acks "$lost"
	printf '  %s n=%s switchover run %s (%s -> %s): longest write gap %s ms, call to stable %s ms, lost %s\n' \
		"$SYSTEM" "$NODES" "$RUN" "$old" "$new" "$gap" "$stable" "$lost"
	keep_writer_log "$log" "$t0"
}

# measure_tps: pgbench on the primary (PGBENCH_SCALE, PGBENCH_CLIENTS,
# PGBENCH_SECONDS); meanwhile the CPU time and private memory of the agents
# and of the control plane.
measure_tps() {
	local primary port out tps agents control a0 c0 a1 c1 t0 t1 hz amem cmem topo
	primary=$(drv_primary) || return 1
	port=$(drv_port "$primary")
	on client timeout 600 pgbench -q -i -s "$PGBENCH_SCALE" -h "$(addr "$primary")" -p "$port" -U "$BENCH_RUN_USER" postgres >"$BENCH_DIR/pgbench-init.log" 2>&1 ||
		{ cat "$BENCH_DIR/pgbench-init.log" >&2; return 1; }
	topo=$(sql "$primary" "$port" postgres "SELECT format('synchronous_standby_names=%L synchronous_commit=%s wal_log_hints=%s standbys=%s',
		current_setting('synchronous_standby_names'), current_setting('synchronous_commit'), current_setting('wal_log_hints'),
		(SELECT string_agg(application_name || ':' || sync_state, ',') FROM pg_stat_replication))" 2>&1)
	agents=$(drv_agent_pids | tr '\n' ' ')
	control=$(drv_control_pids | tr '\n' ' ')
	hz=$(getconf CLK_TCK)
	# shellcheck disable=SC2086
	a0=$(cpu_ticks $agents)
	# shellcheck disable=SC2086
	c0=$(cpu_ticks $control)
	t0=$(now)
	out=$(on client timeout $((PGBENCH_SECONDS + 120)) pgbench -n -c "$PGBENCH_CLIENTS" -j "$PGBENCH_JOBS" -T "$PGBENCH_SECONDS" -h "$(addr "$primary")" -p "$port" -U "$BENCH_RUN_USER" postgres 2>&1)
	t1=$(now)
	# shellcheck disable=SC2086
	a1=$(cpu_ticks $agents)
	# shellcheck disable=SC2086
	c1=$(cpu_ticks $control)
	# shellcheck disable=SC2086
	amem=$(private_kb $agents)
	# shellcheck disable=SC2086
	cmem=$(private_kb $control)
	tps=$(awk '/^tps/ { printf "%.0f", $3; exit }' <<<"$out")
	[ -n "$tps" ] || { echo "$out" >&2; return 1; }
	result tps "$tps"
	if [ -n "$agents" ]; then
		result agent_cpu_pct "$(awk -v d="$((a1 - a0))" -v hz="$hz" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", d / hz * 100 / (e - s) }')"
		result agent_mem_kb "$amem"
	fi
	if [ -n "$control" ]; then
		result control_cpu_pct "$(awk -v d="$((c1 - c0))" -v hz="$hz" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", d / hz * 100 / (e - s) }')"
		result control_mem_kb "$cmem"
	fi
	printf '  %s n=%s tps run %s: %s TPS (agents: %s; control plane: %s)\n' "$SYSTEM" "$NODES" "$RUN" "$tps" \
		"$(echo "$agents" | wc -w) processes, $amem kB private" "$(echo "$control" | wc -w) processes, $cmem kB private"
	printf '    %s\n' "$topo"
}

# start_old_primary_writer / report_old_primary_writer: for the isolation
# scenario, a second writer connected straight to the old primary from its
# side of the cut (an application on the same host), counting what it still
# acknowledges.
start_old_primary_writer() {
	local keep=$WRITER_PID
	OLD_LOG="$BENCH_DIR/old-writer.log"
	writer_bg "$1" "$(node_conninfo "$1") connect_timeout=2" "$OLD_LOG" 100000000
	OLD_WRITER_PID=$WRITER_PID
	WRITER_PID=$keep
}
report_old_primary_writer() {
	local t0=$1 t1=$2 new=$3 after last lost
	[ -n "$OLD_LOG" ] || return 0
	as_user touch "$OLD_LOG.stop"
	wait "$OLD_WRITER_PID" 2>/dev/null
	# Writes the old primary acknowledged after the new primary acknowledged one.
	after=$(awk -v t="$t1" '$1 == "ack" && $4 >= t { n++ } END { print n + 0 }' "$OLD_LOG")
	last=$(awk -v t0="$t0" '$1 == "ack" && $4 >= t0 { last = $4 } END { if (last == "") print "none"; else printf "%.0f", (last - t0) * 1000 }' "$OLD_LOG")
	# Its acknowledged writes that the new primary does not have (split brain).
	lost=$(lost_acks "$OLD_LOG" "$new")
	keep_writer_log "$OLD_LOG" "$t0" .old
	result old_acks_after_new "$after"
	result old_last_ack_ms "$last"
	result old_lost_acks "$lost"
	printf '  old primary: last acknowledged write %s ms after the cut; %s acknowledged after the new primary took writes; %s of its acknowledged writes missing on the new primary\n' "$last" "$after" "$lost"
	OLD_LOG=
}
