#!/bin/bash
# bench/election.sh — issue 4: election failover with three nodes.  kill -9
# of the primary's postmaster to the first successful write through
# formation_uri(), BENCH_RUNS runs (default 5), each with a fresh monitor and
# three nodes at default settings (both standbys candidate_priority 50,
# replication_quorum on, number_sync_standbys 0): the two standbys hold an
# election (docs/elections.md).  Same writer and figure as bench/failover.sh,
# which it runs with NODES=3; prints every run, the node elected, and the median.
NODES=${NODES:-3} exec "$(dirname "$0")/failover.sh"
