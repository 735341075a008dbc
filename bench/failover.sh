#!/bin/bash
# bench/failover.sh — (a) of issue 3: kill -9 of the primary's postmaster to
# the first successful write through formation_uri(), BENCH_RUNS runs
# (default 5), each with a fresh monitor and a group of NODES nodes (default
# 2; bench/election.sh runs it with 3: an election among the standbys) at
# default settings, killed once every node has been healthy for
# node_timeout (lib.sh wait_group_settled).  A background writer
# (bench/lib.sh start_writer: one psql per insert, a new connection each
# time, connect_timeout=2) runs throughout; the figure is the end time of the first acknowledged write that started
# after the kill, minus the time of the kill.  Prints every run with the node
# that took over, and the median.
. "$(dirname "$0")/lib.sh"
runs=${BENCH_RUNS:-5}
nodes=${NODES:-2}
m=$BENCH_PORT_BASE
times=()
declare -A wins=()
for ((r = 1; r <= runs; r++)); do
	stop_all_servers
	rm -rf "${BENCH_DIR:?}"/*
	node_group "$m" "$nodes" || exit 1
	# A standby becomes a candidate once healthy for node_timeout (5 s):
	# measure a group that has run for a while, not one that just formed.
	wait_group_settled "$m" || exit 1
	uri=$(psql_at "$m" pg_autopilot -c 'SELECT pg_autopilot.formation_uri()') || exit 1
	log="$BENCH_DIR/writer.log"
	start_writer "$uri" "$log" || exit 1
	wait_first_ack "$log" 0 >/dev/null || exit 1
	pm=$(head -1 "$BENCH_DIR/node1/postmaster.pid")
	t0=$(now)
	kill -KILL "$pm"
	t1=$(wait_first_ack "$log" "$t0") || { stop_writer "$log"; exit 1; }
	stop_writer "$log"
	winner=$(wait_writable "$m" node1) || winner=unknown
	ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
	fails=$(awk -v t="$t0" '$1 == "fail" && $3 >= t' "$log" | wc -l)
	printf 'run %d: first write %d ms after kill -9 (%d failed attempts meanwhile), %s took over\n' "$r" "$ms" "$fails" "$winner"
	times+=("$ms")
	wins[$winner]=$((${wins[$winner]:-0} + 1))
	# The killed postmaster's children exit by themselves; its data
	# directory is thrown away with the rest before the next run.
	stop_all_servers
done
med=$(printf '%s\n' "${times[@]}" | percentile 50)
won=$(for w in "${!wins[@]}"; do printf '%s %s\n' "$w" "${wins[$w]}"; done | sort | awk '{ printf "%s%s %dx", (NR > 1 ? ", " : ""), $1, $2 }')
if [ "$nodes" = 2 ]; then
	what='failover (kill -9 of the primary postmaster -> first write through formation_uri)'
else
	what="election ($nodes nodes, kill -9 of the primary postmaster -> first write through formation_uri)"
fi
printf '%s: median %s ms over %d runs, min %s ms, max %s ms; new primary: %s\n' "$what" "$med" "$runs" \
	"$(printf '%s\n' "${times[@]}" | percentile 0)" "$(printf '%s\n' "${times[@]}" | percentile 100)" "$won"
