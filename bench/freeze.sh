#!/bin/bash
# bench/freeze.sh — (d) of issue 3: the primary frozen (SIGSTOP of its
# postmaster and every child, as a hung host would be) to the first
# successful write through formation_uri(), BENCH_RUNS runs (default 5), each
# with a fresh monitor and two-node group at default settings.  Detection
# here relies on health-check timeouts and missed reports (nothing refuses a
# connection), so this is the slow path of failure detection.  Prints every
# run and the median.
. "$(dirname "$0")/lib.sh"
runs=${BENCH_RUNS:-5}
m=$BENCH_PORT_BASE
p1=$((m + 1))
p2=$((m + 2))
times=()

# node_pids: the postmaster of a data directory and all its descendants.
node_pids() {
	local pm=$1 pids=$1 frontier=$1 next p
	while [ -n "$frontier" ]; do
		next=""
		for p in $frontier; do next="$next $(pgrep -P "$p")"; done
		frontier=$(echo $next)
		pids="$pids $frontier"
	done
	echo $pids
}

for ((r = 1; r <= runs; r++)); do
	stop_all_servers
	rm -rf "${BENCH_DIR:?}"/*
	two_node_group "$m" "$p1" "$p2" || exit 1
	wait_group_settled "$m" || exit 1
	uri=$(psql_at "$m" pg_autopilot -c 'SELECT pg_autopilot.formation_uri()') || exit 1
	log="$BENCH_DIR/writer.log"
	start_writer "$uri" "$log" || exit 1
	wait_first_ack "$log" 0 >/dev/null || exit 1
	pm=$(head -1 "$BENCH_DIR/node1/postmaster.pid")
	frozen=$(node_pids "$pm")
	t0=$(now)
	# A short-lived child may be gone by now: no message for it.
	kill -STOP $frozen 2>/dev/null
	t1=$(wait_first_ack "$log" "$t0") || { kill -CONT $frozen 2>/dev/null; stop_writer "$log"; exit 1; }
	stop_writer "$log"
	kill -CONT $frozen 2>/dev/null
	ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
	printf 'run %d: first write %d ms after the primary froze\n' "$r" "$ms"
	times+=("$ms")
	stop_all_servers
done
med=$(printf '%s\n' "${times[@]}" | percentile 50)
printf 'frozen primary (SIGSTOP) -> first write through formation_uri: median %s ms over %d runs\n' "$med" "$runs"
