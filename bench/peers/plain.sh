#!/bin/bash
# bench/peers/plain.sh — plain PostgreSQL streaming replication with no HA
# agent, the baseline of the tps scenario (interface: bench/peers/common.sh;
# only setup, uri, primary, port, agent/control pids and teardown).  node1 on
# 7550 + 1 is the primary; nodeI (I > 1) is a pg_basebackup -R standby
# streaming from it with application_name nodeI; synchronous_standby_names =
# 'ANY 1 (node2, ...)' on the primary: one synchronous standby, as the others.
PL_PORT=${PL_PORT:-7550}

drv_setup() {
	local n=$1 i names=
	pg_initdb node1 "$BENCH_DIR/node1" $((PL_PORT + 1)) || return 1
	pg_start node1 "$BENCH_DIR/node1" || return 1
	for ((i = 2; i <= n; i++)); do
		on "node$i" pg_basebackup -h "$(addr node1)" -p $((PL_PORT + 1)) -U "$BENCH_RUN_USER" -D "$BENCH_DIR/node$i" -R -X stream \
			>"$BENCH_DIR/node$i.basebackup.log" 2>&1 || return 1
		cat >>"$BENCH_DIR/node$i/postgresql.conf" <<EOC
port = $((PL_PORT + i))
listen_addresses = '$(addr "node$i")'
EOC
		# After the primary_conninfo pg_basebackup -R wrote there: the last one wins.
		echo "primary_conninfo = 'host=$(addr node1) port=$((PL_PORT + 1)) user=$BENCH_RUN_USER application_name=node$i'" \
			>>"$BENCH_DIR/node$i/postgresql.auto.conf"
		pg_start "node$i" "$BENCH_DIR/node$i" || return 1
		names="$names${names:+, }node$i"
	done
	[ -n "$names" ] || return 0
	sql node1 $((PL_PORT + 1)) postgres "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ($names)'" &&
		sql node1 $((PL_PORT + 1)) postgres 'SELECT pg_reload_conf()' >/dev/null
}
drv_uri() { echo "postgresql://$(addr node1):$((PL_PORT + 1))/postgres"; }
drv_primary() { echo node1; }
drv_port() { echo $((PL_PORT + ${1#node})); }
drv_agent_pids() { :; }
drv_control_pids() { :; }
drv_teardown() { stop_scratch_servers; }
