# t/113_streaming_connected.pl — a standby reports streaming only while its
# walreceiver holds an established connection (issue 3 review,
# src/bgworker/local_state.cpp ReadWalReceiver).
#
# The walreceiver sets WALRCV_STREAMING before it connects.  node1 (the
# primary) is frozen with SIGSTOP and node2's walreceiver is terminated: the
# startup process starts a new one, whose connection to the frozen node1
# never completes (the kernel accepts the TCP connection, nobody answers).
# Formerly node2 kept reporting streaming = true to the monitor; now it
# reports false.  node2 has candidate_priority 0, so
# the frozen primary causes no failover meanwhile.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor);
$node1->start;
wait_for_state($monitor, 'node1', 'single');
my $node2 = new_node('node2', $monitor, candidate_priority => 0,
	conf => "wal_retrieve_retry_interval = '100ms'\n");
$node2->start;
wait_for_state($monitor, 'node2', 'secondary');
wait_for_state($monitor, 'node1', 'primary');

my $streaming_sql =
  "SELECT coalesce(wal_receiver_streaming::text, 'null') FROM pg_autopilot.node WHERE node_name = 'node2'";
ok($monitor->poll_query_until('pg_autopilot', $streaming_sql, 'true'), 'node2 reports streaming while connected');

my @frozen = freeze_node($node1);
ok(@frozen >= 3, scalar(@frozen) . ' processes of node1 frozen');
my $old_pid = $node2->safe_psql('postgres', 'SELECT pid FROM pg_stat_wal_receiver');
ok($old_pid =~ /^\d+$/, "node2's walreceiver runs (PID $old_pid)");
kill 'TERM', $old_pid;

# A new walreceiver hangs in its connection attempt (wait event
# LibPQWalReceiverConnect); pg_stat_wal_receiver shows no row for a
# walreceiver that is not connected yet (ready_to_display is false).
ok( $node2->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'walreceiver' AND pid <> $old_pid "
		  . "AND wait_event = 'LibPQWalReceiverConnect'"),
	'node2\'s new walreceiver is stuck connecting to the frozen node1');
is($node2->safe_psql('postgres', 'SELECT count(*) FROM pg_stat_wal_receiver'),
	'0', 'pg_stat_wal_receiver does not show it as connected');
# Only reports made from now on count (the walreceiver is known to hang).
my $since = $monitor->safe_psql('pg_autopilot', 'SELECT now()');
ok( $monitor->poll_query_until(
		'pg_autopilot',
		"SELECT wal_receiver_streaming FROM pg_autopilot.node WHERE node_name = 'node2' "
		  . "AND report_time > '$since'::timestamptz",
		'f'),
	'node2 reports streaming = false while its walreceiver is not connected');

thaw_node(@frozen);
ok( $node2->poll_query_until('postgres',
		"SELECT status = 'streaming' AND sender_port = " . $node1->port . ' FROM pg_stat_wal_receiver'),
	'node2 streams from node1 again once it is thawed');
ok($monitor->poll_query_until('pg_autopilot', $streaming_sql, 'true'), 'node2 reports streaming again');
wait_for_state($monitor, 'node1', 'primary');
wait_for_state($monitor, 'node2', 'secondary');

check_logs_clean($monitor, $node1, $node2);
done_testing();
