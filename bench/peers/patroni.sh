#!/bin/bash
# bench/peers/patroni.sh — driver of Patroni (Debian patroni 3.0) with a
# one-member etcd (Debian etcd-server 3.4, v3 API) for the side-by-side
# benchmarks (interface: bench/peers/common.sh).  etcd on 7520 (peer 7521),
# nodeI's PostgreSQL on 7530+I and REST API on 7540+I.  Every Patroni setting
# at its default (ttl 30 s, loop_wait 10 s, retry_timeout 10 s, asynchronous
# replication, no pg_rewind) except, in the tps scenario (BENCH_SYNC=1),
# synchronous_mode: on — the same synchronous topology as the others.
PT_ETCD=${PT_ETCD:-7520}
PT_PG=${PT_PG:-7530}
PT_API=${PT_API:-7540}

pt_config() {
	local i=$1 f="$BENCH_DIR/node$1.yml" sync=
	[ "${BENCH_SYNC:-0}" = 1 ] && sync="
    synchronous_mode: true"
	cat >"$f" <<EOC
scope: bench
name: node$i
restapi:
  listen: $(addr "node$i"):$((PT_API + i))
  connect_address: $(addr "node$i"):$((PT_API + i))
etcd3:
  hosts: $(addr ctl):$PT_ETCD
bootstrap:
  dcs:$sync
    postgresql:
      parameters: {}
postgresql:
  listen: $(addr "node$i"):$((PT_PG + i))
  connect_address: $(addr "node$i"):$((PT_PG + i))
  data_dir: $BENCH_DIR/node$i
  bin_dir: $PGBIN
  pgpass: $BENCH_DIR/node$i.pgpass
  authentication:
    superuser:
      username: $BENCH_RUN_USER
    replication:
      username: $BENCH_RUN_USER
  parameters:
    unix_socket_directories: ''
  pg_hba:
  - host all all samenet trust
  - host replication all samenet trust
EOC
	chmod 644 "$f"
}

# pt_cluster: GET /cluster from the first REST API that answers.
pt_cluster() {
	local i
	for ((i = 1; i <= NODES; i++)); do
		on client curl -s -m 2 "http://$(addr "node$i"):$((PT_API + i))/cluster" 2>/dev/null && return 0
	done
	return 1
}
# pt_members: one line per member: name role state.
pt_members() {
	pt_cluster | python3 -c '
import json, sys
for m in json.load(sys.stdin).get("members", []):
    print(m["name"], m.get("role", "?"), m.get("state", "?"))'
}
# pt_ready N: a running leader and N-1 running/streaming replicas.
pt_ready() {
	local n=$1
	pt_members 2>/dev/null | awk -v n="$n" '
		$2 == "leader" && $3 == "running" { l++ }
		$2 != "leader" && ($3 == "running" || $3 == "streaming") { r++ }
		END { exit !(l == 1 && r == n - 1) }'
}

drv_setup() {
	local n=$1 i
	local e
	e=$(addr ctl)
	agent_bg ctl "$BENCH_DIR/etcd.log" etcd --name bench --data-dir "$BENCH_DIR/etcd" \
		--listen-client-urls "http://$e:$PT_ETCD" --advertise-client-urls "http://$e:$PT_ETCD" \
		--listen-peer-urls "http://$e:$((PT_ETCD + 1))" --initial-advertise-peer-urls "http://$e:$((PT_ETCD + 1))" \
		--initial-cluster "bench=http://$e:$((PT_ETCD + 1))" --initial-cluster-state new
	echo "$BG_PID" >"$BENCH_DIR/etcd.agent"
	wait_until 60 on client curl -s -m 1 "http://$e:$PT_ETCD/health" >/dev/null || return 1
	for ((i = 1; i <= n; i++)); do
		pt_config "$i"
		agent_bg "node$i" "$BENCH_DIR/node$i.log" patroni "$BENCH_DIR/node$i.yml"
		echo "$BG_PID" >"$BENCH_DIR/node$i.agent"
		wait_until "$BENCH_TIMEOUT" pt_ready "$i" || { echo "patroni: node$i did not join: $(pt_members)" >&2; return 1; }
	done
	[ "${BENCH_SYNC:-0}" = 1 ] || return 0
	wait_until "$BENCH_TIMEOUT" pt_has_sync
}
pt_has_sync() { pt_members 2>/dev/null | grep -q ' sync_standby '; }

drv_uri() {
	local i hosts=
	for ((i = 1; i <= NODES; i++)); do hosts="$hosts${hosts:+,}$(addr "node$i"):$((PT_PG + i))"; done
	echo "postgresql://$hosts/postgres?target_session_attrs=read-write"
}

drv_primary() {
	local l
	l=$(pt_members | awk '$2 == "leader" && $3 == "running" { print $1; exit }')
	[ -n "$l" ] && echo "$l"
}

drv_port() { echo $((PT_PG + ${1#node})); }

# kill -9 of the node's patroni and its postmaster, at once.
drv_kill_primary() {
	local p agent pm
	p=$(drv_primary) || return 1
	agent=$(cat "$BENCH_DIR/$p.agent")
	pm=$(postmaster_pid "$BENCH_DIR/$p")
	mark_fault
	kill -KILL "$agent" "$pm"
}

# patronictl switchover to the first other member (a synchronous standby in sync mode).
drv_switchover() {
	local old cand
	old=$(drv_primary) || return 1
	cand=$(pt_members | awk -v o="$old" '$1 != o && $2 == "sync_standby" { print $1; exit }')
	[ -n "$cand" ] || cand=$(pt_members | awk -v o="$old" '$1 != o { print $1; exit }')
	on client patronictl -c "$BENCH_DIR/node1.yml" switchover --leader "$old" --candidate "$cand" --force >"$BENCH_DIR/switchover.out" 2>&1
}

drv_settled() {
	local old=$1
	pt_members | awk -v o="$old" -v n="$NODES" '
		$2 == "leader" && $3 == "running" && $1 != o { l++ }
		$2 != "leader" && ($3 == "running" || $3 == "streaming") { r++ }
		END { exit !(l == 1 && r == n - 1) }'
}

drv_agent_pids() {
	local f
	for f in "$BENCH_DIR"/node[0-9].agent; do cat "$f"; done
}

drv_control_pids() { cat "$BENCH_DIR/etcd.agent"; }

# Patroni stops its postgres on SIGTERM; then etcd.
drv_teardown() {
	local f pids=""
	for f in "$BENCH_DIR"/node[0-9].agent; do
		[ -f "$f" ] && pids="$pids $(cat "$f")"
	done
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null
		# shellcheck disable=SC2086
		wait_until 40 all_dead $pids
	fi
	[ -f "$BENCH_DIR/etcd.agent" ] && kill -TERM "$(cat "$BENCH_DIR/etcd.agent")" 2>/dev/null
	return 0
}
