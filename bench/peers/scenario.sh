#!/bin/bash
# bench/peers/scenario.sh — one run of one scenario for one system, on a fresh
# group that is torn down at the end (also on failure or interrupt):
#
#   bench/peers/scenario.sh SYSTEM NODES SCENARIO RUN OUT_DIR
#
# SYSTEM: autopilot | autofailover | patroni | plain (plain streaming
# replication, no agent: tps only).  SCENARIO: kill | isolate | switchover |
# tps.  Appends its figures to OUT_DIR/results.tsv and the writer's log to
# OUT_DIR/raw/.  Exit status: 0 measured, 2 the system refuses NODES nodes
# (recorded as n/a), 77 skipped (isolate without network namespaces), 1 failure.
set -u
SYSTEM=$1 NODES=$2 SCENARIO=$3 RUN=$4 OUT_DIR=$5
export RESULTS_TSV="$OUT_DIR/results.tsv"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
# shellcheck source=/dev/null
. "$here/$SYSTEM.sh"
PGBENCH_SCALE=${PGBENCH_SCALE:-10}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8}
PGBENCH_JOBS=${PGBENCH_JOBS:-2}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-30}

teardown() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "${WRITER_PID:-}" ] && { as_user touch "$BENCH_DIR/writer.log.stop" 2>/dev/null; kill "$WRITER_PID" 2>/dev/null; }
	if [ "$rc" != 0 ] && [ "$rc" != 2 ] && [ "$rc" != 77 ]; then
		echo "  $SYSTEM n=$NODES $SCENARIO run $RUN failed; last lines of the logs:" >&2
		for f in "$BENCH_DIR"/*.log; do
			[ -f "$f" ] || continue
			echo "  ---- $f" >&2
			tail -8 "$f" | sed 's/^/  | /' >&2
		done
		mkdir -p "$OUT_DIR/failed"
		tar -C "$BENCH_DIR" -czf "$OUT_DIR/failed/$SYSTEM-n$NODES-$SCENARIO-r$RUN.tar.gz" --exclude='*/base' --exclude='*/pg_wal' . 2>/dev/null
	fi
	drv_teardown >/dev/null 2>&1
	stop_scratch_servers
	kill_scratch_processes
	lab_down
	bench_cleanup
	exit "$rc"
}
trap teardown EXIT
trap 'exit 1' INT TERM

# The synchronous topology of the tps scenario: one synchronous standby
# (pg_autopilot and pg_auto_failover are synchronous by default; Patroni and
# plain replication are told to be).
export BENCH_SYNC=0
[ "$SCENARIO" = tps ] && BENCH_SYNC=1

# Network isolation needs one namespace per host (bench/harness/netlab.py).
if [ "$SCENARIO" = isolate ]; then
	hosts="ctl client"
	for ((i = 1; i <= NODES; i++)); do hosts="$hosts node$i"; done
	# shellcheck disable=SC2086
	lab_up $hosts
	rc=$?
	[ "$rc" = 77 ] && { echo "  isolate: skipped (no network namespaces here)"; exit 77; }
	[ "$rc" = 0 ] || exit 1
fi

drv_setup "$NODES"
rc=$?
if [ "$rc" = 2 ]; then
	result "${SCENARIO}_refused" 1
	printf '  %s n=%s: refused (%s)\n' "$SYSTEM" "$NODES" "${REFUSAL:-the system does not accept $NODES nodes}"
	exit 2
fi
[ "$rc" = 0 ] || exit 1
# Every system measured from the same point: each standby streams from the primary.
primary_streams_to_all() { [ "$(streaming_standbys "$(drv_primary)")" = $((NODES - 1)) ]; }
wait_until "$BENCH_TIMEOUT" primary_streams_to_all || { echo "  the primary does not stream to $((NODES - 1)) standbys" >&2; exit 1; }
# A production group has been up for a while before it fails: give every
# system the same quiet time (pg_autopilot only fails over to a standby that
# has been healthy for node_timeout, 5 s by default; Patroni and
# pg_auto_failover have comparable warm-up loops).
sleep "${BENCH_STABLE_S:-10}"
case $SCENARIO in
kill) measure_fault kill ;;
isolate) measure_fault isolate ;;
switchover) measure_switchover ;;
tps) measure_tps ;;
*) echo "unknown scenario $SCENARIO" >&2; exit 1 ;;
esac
