#!/bin/bash
# bench/switchover.sh — (b) and (c) of issue 3 on one two-node group at
# default settings, BENCH_RUNS switchovers (default 5, there and back):
#
# (b) write outage: a background writer (bench/lib.sh start_writer: one psql
#     per insert through formation_uri(), a new connection each time, retried
#     10 ms after a failure) runs throughout.  For each run, the longest
#     window in which writes fail = start of the first failed attempt to the
#     end of the next acknowledged one; also the longest gap between two
#     consecutive acknowledged writes (covers commits that block instead of
#     failing).
# (c) the perform_switchover() call to both nodes stable (new primary
#     primary/primary, old one secondary/secondary), polled every ~20 ms.
#
# Prints every run and the medians.
. "$(dirname "$0")/lib.sh"
runs=${BENCH_RUNS:-5}
m=$BENCH_PORT_BASE
p1=$((m + 1))
p2=$((m + 2))
two_node_group "$m" "$p1" "$p2" || exit 1
uri=$(psql_at "$m" pg_autopilot -c 'SELECT pg_autopilot.formation_uri()') || exit 1
log="$BENCH_DIR/writer.log"
start_writer "$uri" "$log" || exit 1
wait_first_ack "$log" 0 >/dev/null || exit 1

states_query="SELECT string_agg(node_name || ':' || current_state || ':' || assigned_state, ',' ORDER BY node_name) FROM pg_autopilot.show_state()"
windows=()
gaps=()
stables=()
old=node1
new=node2
for ((r = 1; r <= runs; r++)); do
	want="$old:secondary:secondary,$new:primary:primary"
	[ "$old" = node2 ] && want="$new:primary:primary,$old:secondary:secondary"
	t0=$(now)
	psql_at "$m" pg_autopilot -c 'SELECT pg_autopilot.perform_switchover()' >/dev/null || { stop_writer "$log"; exit 1; }
	deadline=$(($(date +%s) + BENCH_TIMEOUT))
	got=
	while [ "$(date +%s)" -lt "$deadline" ]; do
		got=$(psql_at "$m" pg_autopilot -c "$states_query" 2>/dev/null)
		[ "$got" = "$want" ] && break
		sleep 0.02
	done
	t1=$(now)
	[ "$got" = "$want" ] || { echo "run $r: not stable within ${BENCH_TIMEOUT}s: $got" >&2; stop_writer "$log"; exit 1; }
	# Let the writer show a few acknowledged writes on the new primary.
	wait_first_ack "$log" "$t1" >/dev/null || { stop_writer "$log"; exit 1; }
	t2=$(now)
	read -r window gap < <(awk -v a="$t0" -v b="$t2" '
		$3 < a - 1 || $3 > b { next }
		$1 == "fail" { if (fail_start == "") fail_start = $3; next }
		$1 == "ack" {
			if (fail_start != "") { w = $4 - fail_start; if (w > maxw) maxw = w; fail_start = "" }
			if (last_ack != "") { g = $4 - last_ack; if (g > maxg) maxg = g }
			last_ack = $4
		}
		END { printf "%.0f %.0f\n", maxw * 1000, maxg * 1000 }' "$log")
	stable=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
	printf 'run %d (%s -> %s): writes failed for %d ms, longest gap between acknowledged writes %d ms, call to stable %d ms\n' \
		"$r" "$old" "$new" "$window" "$gap" "$stable"
	windows+=("$window")
	gaps+=("$gap")
	stables+=("$stable")
	tmp=$old
	old=$new
	new=$tmp
done
stop_writer "$log"
printf 'switchover: writes failed: median %s ms; longest gap between acknowledged writes: median %s ms; perform_switchover() to both nodes stable: median %s ms (%d runs)\n' \
	"$(printf '%s\n' "${windows[@]}" | percentile 50)" "$(printf '%s\n' "${gaps[@]}" | percentile 50)" \
	"$(printf '%s\n' "${stables[@]}" | percentile 50)" "$runs"
