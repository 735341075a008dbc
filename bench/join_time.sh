#!/bin/bash
# bench/join_time.sh — time from starting node 2 (fresh initdb) until the
# monitor shows it secondary (clone included), BENCH_RUNS runs (default 5),
# each with a fresh monitor and primary.  Prints every run, the median and
# the min-max.
. "$(dirname "$0")/lib.sh"
runs=${BENCH_RUNS:-5}
m=$BENCH_PORT_BASE
p1=$((m + 1))
p2=$((m + 2))
times=()
for ((r = 1; r <= runs; r++)); do
	stop_all_servers
	rm -rf "${BENCH_DIR:?}"/*
	start_monitor monitor "$m" || exit 1
	init_node node1 "$p1" "$m" && start_node node1 || exit 1
	wait_state "$m" node1 single || exit 1
	init_node node2 "$p2" "$m" || exit 1
	t0=$(now)
	start_node node2 || exit 1
	wait_state "$m" node2 secondary || exit 1
	t1=$(now)
	t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	printf 'run %d: node2 secondary after %.3f s\n' "$r" "$t"
	times+=("$t")
done
med=$(printf '%s\n' "${times[@]}" | percentile 50)
min=$(printf '%s\n' "${times[@]}" | percentile 0)
max=$(printf '%s\n' "${times[@]}" | percentile 100)
printf 'join_time: median %.3f s, min %.3f s, max %.3f s over %d runs (fresh initdb -> secondary)\n' \
	"$med" "$min" "$max" "$runs"
