#!/bin/bash
# bench/run.sh — run every benchmark in turn and print their summaries
# (figures for the README's Performance section).
set -u
here=$(cd "$(dirname "$0")" && pwd)
status=0
for b in join_time idle_cost heartbeat_rtt failover election switchover freeze load_no_failover monitor_scale; do
	echo "== $b"
	"$here/$b.sh" || { echo "$b failed" >&2; status=1; }
done
exit $status
