# t/115_fence_async_standby.pl — an asynchronous standby is no contact for
# an isolated primary (docs/failover.md "Self-fencing"): with
# synchronous_standby_names '' the primary acknowledges commits alone, and
# the monitor's timeout proof assumes it fences itself once it has lost the
# monitor, whatever standby still streams from it.  Here node2 is the only
# standby, with replication_quorum off: node1 runs with names '' and node2
# keeps streaming; the monitor goes away; node1 must fence within its
# fence_timeout.  (Formerly any streaming peer counted and node1 never
# fenced.)  Then, with the monitor back, the group converges again.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor, conf => "pg_autopilot.fence_timeout = '2s'\n");
$node1->start;
wait_for_state($monitor, 'node1', 'single');
my $node2 = new_node('node2', $monitor, replication_quorum => 'off');
$node2->start;
wait_for_state($monitor, 'node2', 'secondary');
ok( $node1->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_replication WHERE application_name LIKE 'pg_autopilot_node_%' "
		  . "AND state = 'streaming'"),
	'node2 streams from node1');
is($node1->safe_psql('postgres', 'SHOW synchronous_standby_names'), '',
	'node1 runs without synchronous standby names (node2 is asynchronous)');

my $log_offset = -s $node1->logfile;
$monitor->stop('fast');
ok( $node1->wait_for_log(
		qr/pg_autopilot keeper: primary isolated for \d+ ms \(no monitor, not enough synchronous standbys streaming\): fencing/,
		$log_offset),
	'node1 fences itself although its asynchronous standby streams');
ok($node1->wait_for_log(qr/entering standby mode/, $log_offset), 'node1 restarts in standby mode');

$monitor->start;
my $converged = $monitor->poll_query_until('pg_autopilot',
	"SELECT string_agg(current_state || '|' || assigned_state, ' ' ORDER BY current_state) "
	  . "~ '^(primary|wait_primary)\\|\\1 secondary\\|secondary\$' FROM pg_autopilot.show_state()");
ok($converged, 'the group has a primary and a secondary again once the monitor is back');

check_logs_clean($monitor, $node1, $node2);
$node2->stop('fast');
$node1->stop('fast');
$monitor->stop('fast');
done_testing();
