#!/bin/bash
# bench/heartbeat_rtt.sh — round trip of the keeper heartbeat
# (pg_autopilot.node_active) on a monitor, for a synthetic registered node,
# over TCP as role autopilot_node; one pgbench client, HEARTBEATS calls
# (default 2000); p50, p99, min and max from pgbench's per-transaction log.
. "$(dirname "$0")/lib.sh"
n=${HEARTBEATS:-2000}
m=$BENCH_PORT_BASE
start_monitor monitor "$m" || exit 1
id=$(psql_at "$m" pg_autopilot -c "SELECT node_id FROM pg_autopilot.register_node('default', 'synthetic', '127.0.0.1', $((m + 9)), 4242, 50, true)") ||
	exit 1
cat >"$BENCH_DIR/heartbeat.sql" <<EOC
SELECT * FROM pg_autopilot.node_active('default', $id, 'single', true, false, 1, '0/3000000', false, 50, true, NULL);
EOC
chmod 644 "$BENCH_DIR/heartbeat.sql"
user=autopilot_node
psql_at "$m" pg_autopilot -U "$user" -c 'SELECT 1' >/dev/null 2>&1 || user=$BENCH_RUN_USER
cd "$BENCH_DIR" || exit 1
as_user pgbench -n -h 127.0.0.1 -p "$m" -U "$user" -c 1 -t "$n" -f heartbeat.sql -l --log-prefix="$BENCH_DIR/hb" pg_autopilot >"$BENCH_DIR/pgbench.out" 2>&1 ||
	{ cat "$BENCH_DIR/pgbench.out" >&2; exit 1; }
lat=$(cat "$BENCH_DIR"/hb.* | awk 'NF >= 6 { print $3 / 1000.0 }')
printf 'heartbeat_rtt (node_active as %s, %d calls): p50 %s ms, p99 %s ms, min %s ms, max %s ms\n' "$user" "$n" \
	"$(echo "$lat" | percentile 50)" "$(echo "$lat" | percentile 99)" \
	"$(echo "$lat" | percentile 0)" "$(echo "$lat" | percentile 100)"
