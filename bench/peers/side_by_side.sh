#!/bin/bash
# bench/peers/side_by_side.sh — pg_autopilot, pg_auto_failover and Patroni
# (+ etcd) side by side on this machine, in one run (issue 5):
#
#   kill        kill -9 of the primary postmaster (and of its agent where it
#               has one) -> first acknowledged write through the system's
#               multi-host connection string
#   isolate     the primary cut from every other host (network namespaces,
#               bench/harness/netlab.py) -> first acknowledged write on the
#               new primary; what the old primary still acknowledged
#   switchover  planned switchover: longest gap between acknowledged writes,
#               call to a settled group
#   tps         pgbench on the primary with one synchronous standby, against
#               plain streaming replication (no agent); agents' CPU and memory
#
# each with a control plane (monitor / etcd) plus 2 and then 3 nodes, every
# run on a fresh group (bench/peers/scenario.sh) that is torn down after it.
# Runs are interleaved (run 1 of every system, then run 2, ...) so that a
# change in the machine's load hits every system alike.  Then the figures
# (results.tsv, settings, writer logs) go to OUT and bench/peers/report.py
# writes OUT/results.md and one PNG per fault scenario.
#
# Options (environment in brackets):
#   --runs N          runs per figure (BENCH_RUNS, default 5)
#   --nodes LIST      group sizes, default "2 3"
#   --systems LIST    default "autopilot autofailover patroni" (+ plain for tps)
#   --scenarios LIST  default "kill isolate switchover tps"
#   --out DIR         default bench/results (then the README's "Side by side" table is updated too)
#   --quick           development settings: 1 run, pgbench scale 1, 2 clients, 5 s
# pgbench: PGBENCH_SCALE (10), PGBENCH_CLIENTS (8), PGBENCH_SECONDS (20).
# Needs root for the network namespaces (isolate is skipped without them)
# and the packages of scripts/deps-bench.sh.  Exit status 1 when a run failed
# (the others are still measured and reported).
set -u
here=$(cd "$(dirname "$0")" && pwd)
runs=${BENCH_RUNS:-5}
nodes="2 3"
systems="autopilot autofailover patroni"
scenarios="kill isolate switchover tps"
out="$here/../results"
export PGBENCH_SCALE=${PGBENCH_SCALE:-10} PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8} PGBENCH_SECONDS=${PGBENCH_SECONDS:-20}
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift ;;
	--nodes) nodes=$2; shift ;;
	--systems) systems=$2; shift ;;
	--scenarios) scenarios=$2; shift ;;
	--out) out=$2; shift ;;
	--quick) runs=1; PGBENCH_SCALE=1; PGBENCH_CLIENTS=2; PGBENCH_SECONDS=5 ;;
	*) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
	shift
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/pg_autopilot-sbs.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
trap 'echo "interrupted" >&2; exit 1' INT TERM

for s in $systems; do
	case $s in autopilot | autofailover | patroni) ;; *) echo "unknown system $s" >&2; exit 2 ;; esac
done
start=$(date +%s)
cat >"$work/settings" <<EOS
date=$(date -u +%Y-%m-%d)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
machine=$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME")
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
postgresql=$("$(pg_config --bindir)/postgres" --version | awk '{ print $3 }')
pg_auto_failover=$(dpkg-query -W -f='${Version}' pg-auto-failover-cli 2>/dev/null)
patroni=$(dpkg-query -W -f='${Version}' patroni 2>/dev/null)
etcd=$(dpkg-query -W -f='${Version}' etcd-server 2>/dev/null)
runs=$runs
nodes=$nodes
scenarios=$scenarios
pgbench=scale $PGBENCH_SCALE, $PGBENCH_CLIENTS clients, 2 threads, ${PGBENCH_SECONDS} s
EOS
: >"$work/results.tsv"
failed=0
total=0
for sc in $scenarios; do
	sys_list=$systems
	[ "$sc" = tps ] && sys_list="plain $systems"
	for n in $nodes; do for s in $sys_list; do total=$((total + runs)); done; done
done
done_runs=0
declare -A refused
for sc in $scenarios; do
	sys_list=$systems
	[ "$sc" = tps ] && sys_list="plain $systems"
	for n in $nodes; do
		for ((r = 1; r <= runs; r++)); do
			for s in $sys_list; do
				done_runs=$((done_runs + 1))
				if [ -n "${refused[$s-$n]:-}" ]; then
					echo "$s	$n	$sc	$r	${sc}_refused	1" >>"$work/results.tsv"
					continue
				fi
				printf '[%s, %d/%d] %s, %d nodes, %s, run %d/%d\n' "$(date -u +%T)" "$done_runs" "$total" "$s" "$n" "$sc" "$r" "$runs"
				"$here/scenario.sh" "$s" "$n" "$sc" "$r" "$work"
				rc=$?
				case $rc in
				0) ;;
				2) refused[$s-$n]=1 ;;
				77) echo "$s	$n	$sc	$r	${sc}_skipped	1" >>"$work/results.tsv" ;;
				*)
					failed=$((failed + 1))
					echo "$s	$n	$sc	$r	${sc}_failed	1" >>"$work/results.tsv"
					;;
				esac
			done
		done
	done
done
cat >>"$work/settings" <<EOS
finished=$(date -u '+%Y-%m-%d %H:%M UTC')
minutes=$((($(date +%s) - start + 59) / 60))
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)
failed_runs=$failed
EOS
# The new results replace the previous ones: the table, the plots, the
# figures per run and the writer logs (report.py keeps the plotted runs' ones).
rm -rf "$out/raw" "$out/failed" "$out"/*.png "$out/results.md"
cp "$work/results.tsv" "$work/settings" "$out/"
[ -d "$work/raw" ] && cp -r "$work/raw" "$out/raw"
[ -d "$work/failed" ] && cp -r "$work/failed" "$out/failed"
# The top-level README shows the latest default results.
readme=
[ "$out" = "$(cd "$here/../results" && pwd)" ] && readme="--readme $here/../../README.md"
# shellcheck disable=SC2086
python3 "$here/report.py" "$out" $readme || exit 1
echo "results: $out/results.md ($(ls "$out"/*.png 2>/dev/null | wc -l) plots); $failed of $total runs failed"
[ "$failed" = 0 ]
