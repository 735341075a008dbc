#!/bin/bash
# bench/idle_cost.sh — memory and CPU of the keeper worker at idle, on a
# primary and on a secondary of a two-node group.
#
# The keeper is a connection-less background worker: it has no
# pg_stat_activity row, so it is found as the postmaster's child whose
# process title contains "pg_autopilot keeper".
#
# Memory ("extra RSS"): the keeper's private resident memory,
# Private_Clean + Private_Dirty of /proc/<pid>/smaps_rollup — pages no other
# process maps: its heap, its libpq connection, its copy-on-write pages.
# Shared buffers and the code shared with the postmaster are not counted
# (they exist whether or not the keeper runs).  Rss and Pss are printed for
# reference, and the same figures for the logical replication launcher, an
# idle background worker of the same postmaster, as a baseline (it runs on
# the primary only).
#
# CPU: time on CPU from /proc/<pid>/schedstat (nanoseconds; utime+stime of
# /proc/<pid>/stat counts 10 ms ticks, too coarse for an idle process), over
# SAMPLES intervals of INTERVAL seconds (defaults 6 x 10 s); median and
# min-max of the per-interval percentages of one core.  Memory is sampled at
# the end of each interval.
. "$(dirname "$0")/lib.sh"
samples=${SAMPLES:-6}
interval=${INTERVAL:-10}
m=$BENCH_PORT_BASE
p1=$((m + 1))
p2=$((m + 2))
start_monitor monitor "$m" || exit 1
init_node node1 "$p1" "$m" && start_node node1 || exit 1
wait_state "$m" node1 single || exit 1
init_node node2 "$p2" "$m" && start_node node2 || exit 1
wait_state "$m" node2 secondary || exit 1
wait_state "$m" node1 primary || exit 1

# keeper_pid NODE: the postmaster's child titled "... pg_autopilot keeper".
keeper_pid() {
	local pm p
	pm=$(head -1 "$BENCH_DIR/$1/postmaster.pid")
	for p in /proc/[0-9]*; do
		[ "$(awk '{ print $4 }' "$p/stat" 2>/dev/null)" = "$pm" ] || continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q 'pg_autopilot keeper' && { echo "${p#/proc/}"; return 0; }
	done
	return 1
}
launcher_pid() {
	psql_at "$1" postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'logical replication launcher'"
}
# smaps KEY PID: a field of smaps_rollup, in kB.
smaps() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/smaps_rollup"; }
private_kb() { echo $(($(smaps Private_Clean "$1") + $(smaps Private_Dirty "$1"))); }
cpu_ns() { awk '{ print $1 }' "/proc/$1/schedstat"; }
summary() { # label values...: median and min-max
	local label=$1
	shift
	printf '%s\n' "$@" | sort -g | awk -v l="$label" '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%s: median %s, min %s, max %s (n=%d)\n", l, m, v[1], v[NR], NR }'
}

declare -A pid lpid t0 cpu mem lmem
for n in node1 node2; do
	port=$([ $n = node1 ] && echo $p1 || echo $p2)
	pid[$n]=$(keeper_pid $n) || { echo "no keeper worker found on $n" >&2; exit 1; }
	lpid[$n]=$(launcher_pid "$port")
	t0[$n]=$(cpu_ns "${pid[$n]}")
	cpu[$n]=""
	mem[$n]=""
	lmem[$n]=""
done
for ((s = 1; s <= samples; s++)); do
	sleep "$interval"
	for n in node1 node2; do
		t=$(cpu_ns "${pid[$n]}")
		cpu[$n]+=" $(awk -v d="$((t - t0[$n]))" -v s="$interval" 'BEGIN { printf "%.4f", d * 100 / 1e9 / s }')"
		t0[$n]=$t
		mem[$n]+=" $(private_kb "${pid[$n]}")"
		[ -n "${lpid[$n]}" ] && lmem[$n]+=" $(private_kb "${lpid[$n]}")"
	done
done
for n in node1 node2; do
	role=$([ $n = node1 ] && echo primary || echo secondary)
	k=${pid[$n]}
	printf '%s (%s) keeper pid %s: Rss %s kB, Pss %s kB, Private %s kB (Private_Clean %s + Private_Dirty %s)\n' \
		"$n" "$role" "$k" "$(smaps Rss "$k")" "$(smaps Pss "$k")" "$(private_kb "$k")" \
		"$(smaps Private_Clean "$k")" "$(smaps Private_Dirty "$k")"
	if [ -n "${lpid[$n]}" ]; then
		l=${lpid[$n]}
		printf '%s (%s) logical replication launcher pid %s (baseline): Rss %s kB, Pss %s kB, Private %s kB\n' \
			"$n" "$role" "$l" "$(smaps Rss "$l")" "$(smaps Pss "$l")" "$(private_kb "$l")"
		# shellcheck disable=SC2086
		summary "$n ($role) launcher private kB over $samples samples" ${lmem[$n]}
	fi
	# shellcheck disable=SC2086
	summary "$n ($role) keeper private kB over $samples samples" ${mem[$n]}
	# shellcheck disable=SC2086
	summary "$n ($role) keeper CPU % of one core per ${interval}s interval" ${cpu[$n]}
done
