# t/002_standby_restart.pl — a restarted standby rejoins as secondary; a
# restarted primary keeps its role (no failover, the standby stays secondary).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my ($node1, $node2) = two_node_group($monitor);
my $uri = formation_uri($monitor);
is(scalar(write_ids($uri, 1 .. 10)), 10, 'writes before the restarts');

# Standby restart: it comes back as secondary and streams again.
my $pid2 = postmaster_pid($node2);
$node2->restart;
isnt(postmaster_pid($node2), $pid2, 'node2 really restarted (new postmaster)');
wait_for_state($monitor, 'node2', 'secondary', 'restarted standby rejoins as secondary');
wait_for_state($monitor, 'node1', 'primary', 'primary is primary again');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node2 is still a standby');
is(scalar(write_ids($uri, 11 .. 20)), 10, 'writes after the standby restart');
ok($node2->poll_query_until('postgres', 'SELECT count(*) FROM ap_writes', '20'),
	'standby has every row after its restart');

# Primary restart: it keeps its role.
my $id1 = node_id_of($monitor, 'node1');
$node1->restart;
wait_for_state($monitor, 'node1', 'primary', 'restarted primary is primary again');
wait_for_state($monitor, 'node2', 'secondary', 'standby is still secondary');
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node1 is not in recovery');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node2 was not promoted');
is(node_id_of($monitor, 'node1'), $id1, 'node1 kept its node id');
is( $node1->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()'),
	'1', 'no new timeline: nobody was promoted');
is(scalar(write_ids($uri, 21 .. 30)), 10, 'writes after the primary restart');
ok($node2->poll_query_until('postgres', 'SELECT count(*) FROM ap_writes', '30'),
	'standby has every row after the primary restart');
is($node1->safe_psql('postgres', 'SHOW synchronous_standby_names'),
	$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.synchronous_standby_names('default', 0)"),
	'primary uses the monitor\'s synchronous_standby_names again');

check_logs_clean($monitor, $node1, $node2);
done_testing();
