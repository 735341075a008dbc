#!/bin/bash
# bench/failover.sh — (a) of issue 3: kill -9 of the primary's postmaster to
# the first successful write through formation_uri(), BENCH_RUNS runs
# (default 5), each with a fresh monitor and two-node group at default
# settings.  A background writer (bench/lib.sh start_writer: one psql per
# insert, a new connection each time, connect_timeout=2) runs throughout; the
# figure is the end time of the first acknowledged write that started after
# the kill, minus the time of the kill.  Prints every run and the median.
. "$(dirname "$0")/lib.sh"
runs=${BENCH_RUNS:-5}
m=$BENCH_PORT_BASE
p1=$((m + 1))
p2=$((m + 2))
times=()
for ((r = 1; r <= runs; r++)); do
	stop_all_servers
	rm -rf "${BENCH_DIR:?}"/*
	two_node_group "$m" "$p1" "$p2" || exit 1
	uri=$(psql_at "$m" pg_autopilot -c 'SELECT pg_autopilot.formation_uri()') || exit 1
	log="$BENCH_DIR/writer.log"
	start_writer "$uri" "$log" || exit 1
	wait_first_ack "$log" 0 >/dev/null || exit 1
	pm=$(head -1 "$BENCH_DIR/node1/postmaster.pid")
	t0=$(now)
	kill -KILL "$pm"
	t1=$(wait_first_ack "$log" "$t0") || { stop_writer "$log"; exit 1; }
	stop_writer "$log"
	wait_state "$m" node2 wait_primary >/dev/null 2>&1 || true
	ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
	fails=$(awk -v t="$t0" '$1 == "fail" && $3 >= t' "$log" | wc -l)
	printf 'run %d: first write %d ms after kill -9 (%d failed attempts meanwhile)\n' "$r" "$ms" "$fails"
	times+=("$ms")
	# The killed postmaster's children exit by themselves; its data
	# directory is thrown away with the rest before the next run.
	stop_all_servers
done
med=$(printf '%s\n' "${times[@]}" | percentile 50)
printf 'failover (kill -9 of the primary postmaster -> first write through formation_uri): median %s ms over %d runs\n' "$med" "$runs"
