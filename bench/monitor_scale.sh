#!/bin/bash
# bench/monitor_scale.sh — issue 4: one monitor and a simulated fleet of
# FLEET nodes (default 1000, even) heartbeating once per second; heartbeat
# round trip p50/p99/max, the achieved rate, and the monitor's CPU.
#
# The fleet: FLEET/2 formations f1, f2, ... of one group of two synthetic
# nodes each (n<2k-1> primary, n<2k> secondary, the shape of many small
# clusters), registered and brought to primary/secondary by the keeper
# protocol (register_node, node_active: the sequence of
# sql/monitor_two_nodes.sql) at default settings.
#
# Heartbeats: pgbench with one client per node, like the keepers (one
# persistent session each, as autopilot_node over TCP, extended query
# protocol, the keeper's 13-argument call with report_seq = send time in
# microseconds, so no report is stale), rate-limited to FLEET calls/s in all
# (-R: about one call per node per second), for WARMUP (default 10) +
# DURATION (default 60) seconds.  The round trip of a call is pgbench's
# per-transaction latency minus its schedule lag (-l log); only calls that end
# inside the DURATION window count.
#
# Health checks stay on (default period 1 s): the monitor's worker probes
# every node each round and records the verdict, as in production.  A refused
# port would make every node unhealthy at once (and fail over the primaries),
# so each synthetic node's port (NODE_PORT_BASE + i - 1, default
# BENCH_PORT_BASE + 100 ...) is served by a small stand-in (python3) that
# answers every connection with a FATAL error: the probe "reaches the server"
# and counts as healthy, cheaply.  HEALTH_CHECKS=off sets health_check_period
# = 0 instead (heartbeat path only).
#
# node_timeout is raised to 10 min while the fleet is set up and pgbench
# connects, then reset to its default (5 s) before the window starts.
#
# Monitor CPU: utime + stime of the monitor's postmaster and all its
# children (backends, health-check worker, auxiliary processes) from
# /proc/<pid>/stat over the window, in % of one core; the machine's busy
# share over the same window is printed for context (pgbench and the
# stand-in run on the same cores).
. "$(dirname "$0")/lib.sh"
fleet=${FLEET:-1000}
duration=${DURATION:-60}
warmup=${WARMUP:-10}
health=${HEALTH_CHECKS:-on}
m=$BENCH_PORT_BASE
np=${NODE_PORT_BASE:-$((m + 100))}
if [ $((fleet % 2)) != 0 ] || [ "$fleet" -lt 2 ]; then echo "FLEET must be even and at least 2" >&2; exit 1; fi
mdir="$BENCH_DIR/monitor"

# The stand-in for the nodes' postmasters: one listening port per node.
cat >"$BENCH_DIR/standin.py" <<'EOP'
import asyncio, os, resource, struct, sys
first, count, countfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(countfile + ".pid", "w") as f:
    f.write("%d\n" % os.getpid())
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
served = 0
FATAL = b"SFATAL\0VFATAL\0C28000\0Msynthetic node of bench/monitor_scale.sh: no login\0\0"
async def serve(reader, writer):
    global served
    try:
        while True:
            n = struct.unpack("!i", await reader.readexactly(4))[0]
            body = await reader.readexactly(n - 4)
            if n == 8 and struct.unpack("!i", body)[0] in (80877103, 80877104):
                writer.write(b"N")  # no SSL, no GSS encryption
                continue
            break
        writer.write(b"E" + struct.pack("!i", len(FATAL) + 4) + FATAL)
        await writer.drain()
        served += 1
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    for p in range(first, first + count):
        await asyncio.start_server(serve, "127.0.0.1", p, backlog=64)
    while True:
        with open(countfile + ".tmp", "w") as f:
            f.write("%d\n" % served)
        os.replace(countfile + ".tmp", countfile)
        await asyncio.sleep(0.5)
asyncio.run(main())
EOP
probes="$BENCH_DIR/probes"
if [ "$health" = on ]; then
	as_user python3 "$BENCH_DIR/standin.py" "$np" "$fleet" "$probes" >"$BENCH_DIR/standin.log" 2>&1 &
	standin=$!
	stop_standin() {
		local pid
		pid=$(cat "$probes.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
		wait "$standin" 2>/dev/null
	}
	trap 'stop_standin; bench_cleanup' EXIT
	for _ in $(seq 100); do [ -s "$probes" ] && break; kill -0 "$standin" 2>/dev/null || break; sleep 0.1; done
	[ -s "$probes" ] || { echo "the node stand-in did not start (ports $np..$((np + fleet - 1)) free?)" >&2; cat "$BENCH_DIR/standin.log" >&2; exit 1; }
fi

# The monitor: one session per node plus slack.
start_monitor monitor "$m" || exit 1
{
	echo "max_connections = $((fleet + 30))"
	[ "$health" = on ] || echo "pg_autopilot_monitor.health_check_period = 0"
} >>"$mdir/postgresql.conf"
as_user pg_ctl -D "$mdir" -l "$BENCH_DIR/monitor.log" -w restart >/dev/null || { echo "monitor did not restart" >&2; exit 1; }
psql_at "$m" pg_autopilot -c "ALTER SYSTEM SET pg_autopilot_monitor.node_timeout = '10min'" -c 'SELECT pg_reload_conf()' >/dev/null || exit 1

# Set the fleet up: per group, the keeper protocol of sql/monitor_two_nodes.sql
# (every call its own transaction, as from a keeper).
echo "setting up $fleet synthetic nodes in $((fleet / 2)) formations" >&2
args="true, false, 1, '0/3000000', false, 50, true, NULL"
sargs="true, true, 1, '0/3000000', true, 50, true, NULL"
for ((g = 1; g <= fleet / 2; g++)); do
	a=$((2 * g - 1))
	b=$((2 * g))
	cat <<EOS
SELECT pg_autopilot.create_formation('f$g');
SELECT node_id AS a FROM pg_autopilot.register_node('f$g', 'n$a', '127.0.0.1', $((np + a - 1)), 7000000000000000001, 50, true) \gset
SELECT 1 FROM pg_autopilot.node_active('f$g', :a, 'init', $args, '');
SELECT 1 FROM pg_autopilot.node_active('f$g', :a, 'single', $args, '');
SELECT node_id AS b FROM pg_autopilot.register_node('f$g', 'n$b', '127.0.0.1', $((np + b - 1)), 7000000000000000001, 50, true) \gset
SELECT 1 FROM pg_autopilot.node_active('f$g', :b, 'wait_standby', true, false, 1, '0/3000000', false, 50, true, NULL, '');
SELECT 1 FROM pg_autopilot.node_active('f$g', :a, 'wait_primary', $args, '');
SELECT 1 FROM pg_autopilot.node_active('f$g', :b, 'catchingup', $sargs, '');
SELECT 1 FROM pg_autopilot.node_active('f$g', :b, 'secondary', $sargs, '');
SELECT 1 FROM pg_autopilot.node_active('f$g', :a, 'primary', $args, '');
SELECT 1 FROM pg_autopilot.node_active('f$g', :a, 'primary', $args, 'ANY 1 (pg_autopilot_node_' || :b || ')');
EOS
done >"$BENCH_DIR/setup.sql"
chmod 644 "$BENCH_DIR/setup.sql"
psql_at "$m" pg_autopilot -f "$BENCH_DIR/setup.sql" >/dev/null || { echo "fleet setup failed" >&2; exit 1; }
# The heartbeat script derives everything from the node id: check the layout.
steady="SELECT count(*) FROM pg_autopilot.node n WHERE node_name = 'n' || node_id AND formation_id = 'f' || (node_id + 1) / 2
	AND reported_state = assigned_state AND assigned_state = CASE WHEN node_id % 2 = 1 THEN 'primary' ELSE 'secondary' END::pg_autopilot.node_state
	AND coalesce(last_told_sync_names, '') = CASE WHEN node_id % 2 = 1 THEN 'ANY 1 (pg_autopilot_node_' || node_id + 1 || ')' ELSE '' END"
got=$(psql_at "$m" pg_autopilot -c "$steady") || exit 1
[ "$got" = "$fleet" ] || { echo "only $got of $fleet synthetic nodes are steady after the setup" >&2; exit 1; }

# The heartbeat: the keeper's call (src/bgworker/keeper.cpp Heartbeat).
cols="assigned_state, primary_node_id, primary_host, primary_port, primary_system_identifier, synchronous_standby_names, standby_slots, upstream_node_id, upstream_host, upstream_port, upstream_lsn, wanted_candidate_priority, wanted_replication_quorum"
seq="(extract(epoch FROM clock_timestamp() - timestamptz '2000-01-01 00:00:00+00') * 1000000)::bigint"
cat >"$BENCH_DIR/heartbeat.sql" <<EOC
\\set id :client_id + 1
\\set f (:id + 1) / 2
\\if :id % 2 = 1
\\set b :id + 1
SELECT $cols FROM pg_autopilot.node_active('f' || :f::int, :id::bigint, 'primary', true, false, 1, '0/3000000', false, 50, true, NULL, 'ANY 1 (pg_autopilot_node_' || :b::bigint || ')', $seq);
\\else
SELECT $cols FROM pg_autopilot.node_active('f' || :f::int, :id::bigint, 'secondary', true, true, 1, '0/3000000', true, 50, true, NULL, '', $seq);
\\endif
EOC
chmod 644 "$BENCH_DIR/heartbeat.sql"
user=autopilot_node
psql_at "$m" pg_autopilot -U "$user" -c 'SELECT 1' >/dev/null 2>&1 || user=$BENCH_RUN_USER
cd "$BENCH_DIR" || exit 1
start=$(psql_at "$m" pg_autopilot -c 'SELECT now()') || exit 1
# shellcheck disable=SC2016 # expanded by the inner shell
as_user bash -c 'ulimit -n "$(ulimit -Hn)" && exec "$@"' pgbench pgbench -n -h 127.0.0.1 -p "$m" -U "$user" -M extended \
	-c "$fleet" -j 2 -R "$fleet" -T "$((warmup + duration))" -f heartbeat.sql -l --log-prefix="$BENCH_DIR/hb" pg_autopilot \
	>"$BENCH_DIR/pgbench.out" 2>&1 &
pgb=$!
# Ready when every node has reported through pgbench: back to the default node_timeout.
deadline=$(($(date +%s) + BENCH_TIMEOUT))
while :; do
	got=$(psql_at "$m" pg_autopilot -c "SELECT count(*) FROM pg_autopilot.node WHERE report_time > '$start'")
	[ "$got" = "$fleet" ] && break
	if ! kill -0 "$pgb" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
		echo "pgbench did not reach every node ($got of $fleet)" >&2
		cat "$BENCH_DIR/pgbench.out" >&2
		exit 1
	fi
	sleep 0.2
done
psql_at "$m" pg_autopilot -c 'ALTER SYSTEM RESET pg_autopilot_monitor.node_timeout' -c 'SELECT pg_reload_conf()' >/dev/null || exit 1
sleep 1
t0=$(now)
c0=$(server_cpu_ticks "$mdir")
read -r b0 a0 < <(machine_busy_ticks)
p0=$(cat "$probes" 2>/dev/null || echo 0)
sleep "$duration"
t1=$(now)
c1=$(server_cpu_ticks "$mdir")
read -r b1 a1 < <(machine_busy_ticks)
p1=$(cat "$probes" 2>/dev/null || echo 0)
wait "$pgb" || { cat "$BENCH_DIR/pgbench.out" >&2; exit 1; }

# Calls that ended in the window: round trip = latency - schedule lag (us -> ms).
lat=$(cat "$BENCH_DIR"/hb.* | awk -v a="$t0" -v b="$t1" 'NF >= 7 { t = $5 + $6 / 1e6; if (t >= a && t < b) print ($3 - $7) / 1000.0 }')
calls=$(echo "$lat" | grep -c .)
tck=$(getconf CLK_TCK)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
rate=$(awk -v n="$calls" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
cpu=$(awk -v c="$((c1 - c0))" -v t="$tck" -v s="$secs" 'BEGIN { printf "%.1f", 100 * c / t / s }')
busy=$(awk -v b="$((b1 - b0))" -v a="$((a1 - a0))" 'BEGIN { printf "%.0f", (a > 0 ? 100 * b / a : 0) }')
lag99=$(cat "$BENCH_DIR"/hb.* | awk -v a="$t0" -v b="$t1" 'NF >= 7 { t = $5 + $6 / 1e6; if (t >= a && t < b) print $7 / 1000.0 }' | percentile 99)
# The fleet after the run: still steady, and did any rule fire?
got=$(psql_at "$m" pg_autopilot -c "$steady")
events=$(psql_at "$m" pg_autopilot -c "SELECT count(*) FILTER (WHERE rule IS NOT NULL) || ' rules fired, ' || count(*) || ' events' FROM pg_autopilot.event WHERE event_time >= '$start'")
if [ "$health" = on ]; then
	hc=$(awk -v n="$((p1 - p0))" -v s="$secs" 'BEGIN { printf "%.0f health probes/s", n / s }')
else
	hc='health checks off'
fi
printf 'monitor_scale (%d nodes in %d two-node formations, one session each, %d heartbeats/s requested, %s s as %s; %s): round trip p50 %s ms, p99 %s ms, max %s ms; %s calls/s achieved (schedule lag p99 %s ms); monitor CPU %s%% of one core (%d cores, machine %s%% busy); after the run %s/%d nodes steady, %s since the heartbeats started\n' \
	"$fleet" "$((fleet / 2))" "$fleet" "$(printf '%.0f' "$secs")" "$user" "$hc" \
	"$(echo "$lat" | percentile 50)" "$(echo "$lat" | percentile 99)" "$(echo "$lat" | percentile 100)" \
	"$rate" "$lag99" "$cpu" "$(nproc)" "$busy" "$got" "$fleet" "$events"
