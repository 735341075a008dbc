#!/bin/bash
# bench/load_no_failover.sh — issue 3: the default timings must not cause a
# false failover under load.  A two-node group at default settings runs
# pgbench (BENCH_CLIENTS clients, default 8, for BENCH_SECONDS, default 60)
# against the primary, which saturates this 2-core machine; afterwards the
# monitor's event log must show no rule other than the steady state's (no
# primary_failed, standby_lost, ...).  Prints the TPS and every rule that
# fired during the load; exits 1 on a false failover.
. "$(dirname "$0")/lib.sh"
clients=${BENCH_CLIENTS:-8}
seconds=${BENCH_SECONDS:-60}
m=$BENCH_PORT_BASE
p1=$((m + 1))
p2=$((m + 2))

two_node_group "$m" "$p1" "$p2" || exit 1
as_user pgbench -q -i -s 10 -h 127.0.0.1 -p "$p1" -U "$BENCH_RUN_USER" postgres >/dev/null 2>&1 || exit 1
mark=$(psql_at "$m" pg_autopilot -c 'SELECT coalesce(max(event_id), 0) FROM pg_autopilot.event')
tps=$(as_user pgbench -n -c "$clients" -j 2 -T "$seconds" -h 127.0.0.1 -p "$p1" -U "$BENCH_RUN_USER" postgres 2>&1 |
	awk '/^tps/ { print $3; exit }')
rules=$(psql_at "$m" pg_autopilot -c "SELECT node_name || ': ' || rule FROM pg_autopilot.event
	WHERE event_id > $mark AND rule IS NOT NULL ORDER BY event_id")
states=$(psql_at "$m" pg_autopilot -c "SELECT string_agg(node_name || '=' || current_state || '/' || assigned_state, ' '
	ORDER BY node_id) FROM pg_autopilot.show_state()")
echo "pgbench: $clients clients, $seconds s against the primary: tps $tps"
echo "states after the load: $states"
if [ -n "$rules" ]; then
	echo "rules that fired during the load (false failover or degradation):"
	echo "$rules"
	exit 1
fi
echo "no rule fired during the load: no false failover"
