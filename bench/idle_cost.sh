#!/bin/bash
# bench/idle_cost.sh — memory and CPU of the keeper worker at idle, on a
# primary and on a secondary.  RSS from /proc/<pid>/status (VmRSS, RssAnon:
# RssAnon is the worker's own memory, shared buffers appear in RssShmem),
# compared with the logical replication launcher, an idle bgworker of the
# same postmaster; CPU from utime+stime of /proc/<pid>/stat over
# IDLE_SECONDS (default 60).
. "$(dirname "$0")/lib.sh"
secs=${IDLE_SECONDS:-60}
m=$BENCH_PORT_BASE
p1=$((m + 1))
p2=$((m + 2))
start_monitor monitor "$m" || exit 1
init_node node1 "$p1" "$m" && start_node node1 || exit 1
wait_state "$m" node1 single || exit 1
init_node node2 "$p2" "$m" && start_node node2 || exit 1
wait_state "$m" node2 secondary || exit 1
wait_state "$m" node1 primary || exit 1

# worker_pid PORT PATTERN: pid of the background process whose backend_type matches.
worker_pid() {
	psql_at "$1" postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type ILIKE '$2' ORDER BY pid LIMIT 1"
}
kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

declare -A pid t0
for n in node1 node2; do
	port=$([ $n = node1 ] && echo $p1 || echo $p2)
	pid[$n]=$(worker_pid "$port" '%autopilot%')
	[ -n "${pid[$n]}" ] || { echo "no keeper worker found on $n (pg_stat_activity backend_type)" >&2; exit 1; }
	launcher=$(worker_pid "$port" 'logical replication launcher')
	printf '%s keeper pid %s: VmRSS %s kB, RssAnon %s kB, RssFile %s kB' "$n" "${pid[$n]}" \
		"$(kb "${pid[$n]}" VmRSS)" "$(kb "${pid[$n]}" RssAnon)" "$(kb "${pid[$n]}" RssFile)"
	if [ -n "$launcher" ]; then
		printf ' (launcher: VmRSS %s kB, RssAnon %s kB)' "$(kb "$launcher" VmRSS)" "$(kb "$launcher" RssAnon)"
	fi
	echo
	t0[$n]=$(ticks "${pid[$n]}")
done
sleep "$secs"
for n in node1 node2; do
	d=$(($(ticks "${pid[$n]}") - t0[$n]))
	printf '%s keeper CPU over %ss idle: %d ticks = %.3f %% of one core\n' "$n" "$secs" "$d" \
		"$(awk -v d="$d" -v hz="$hz" -v s="$secs" 'BEGIN { print d * 100 / hz / s }')"
done
