# t/204_drop_node.pl — drop_node (issue 4, docs/elections.md): dropping a
# standby removes it from the primary's names and slots, lowers
# number_sync_standbys so writes do not block, and its keeper reports
# dropped and then idles without registering again; dropping the primary
# hands its role to a standby first.  Removing the dropped node's state file
# lets it register again.  An unknown node is refused.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $mon = $monitor->connstr('pg_autopilot');
my ($node1, $node2, $node3) = node_group($monitor, 3);
my $id2 = node_id_of($monitor, 'node2');
my $id3 = node_id_of($monitor, 'node3');
$monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.set_number_sync_standbys(1)');
wait_for_sync_names($node1, expected_any_names(1, $id2, $id3), 'n = 1 over two standbys');

my $before = states_text($monitor);
my ($code, $msg) = psql_error($mon, "SELECT pg_autopilot.drop_node('no_such_node')");
is($code, '42704', "dropping an unknown node is refused: $msg");
is(states_text($monitor), $before, 'the refusal changed nothing');

# Drop the standby node3.
my $log3 = -s $node3->logfile;
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.drop_node('node3')");
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT count(*) FROM pg_autopilot.show_state() WHERE node_name = 'node3'", '0'),
	'node3 reported dropped and left the formation');
ok($node3->wait_for_log(qr/node "node3" was dropped from formation "default"; the keeper stays idle/, $log3),
	'node3\'s keeper idles');
is($monitor->safe_psql('pg_autopilot', "SELECT number_sync_standbys FROM pg_autopilot.formation WHERE formation_id = 'default'"),
	'0', 'number_sync_standbys was lowered to what one quorum standby allows');
wait_for_sync_names($node1, expected_any_names(1, $id2), 'the primary no longer names node3');
ok( $node1->poll_query_until('postgres',
		"SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pg_autopilot_node_$id3'", '0'),
	'the primary dropped node3\'s slot');
is($node3->safe_psql('postgres', "SELECT count(*) FROM pg_stat_wal_receiver"), '0', 'node3 no longer streams');
my ($rc, $out, $err) = psql_timed(formation_uri($monitor), 'CREATE TABLE t204 (i int); INSERT INTO t204 VALUES (1)', 60);
is($rc, 0, 'writes continue') or diag $err;

# Its keeper never registers again by itself: a restart keeps it idle.
$log3 = -s $node3->logfile;
$node3->restart;
ok($node3->wait_for_log(qr/the keeper stays idle and does not register again/, $log3), 'after a restart node3 still idles');
is($monitor->safe_psql('pg_autopilot', "SELECT count(*) FROM pg_autopilot.show_state() WHERE node_name = 'node3'"),
	'0', 'node3 did not register again');

# Drop the primary: node2 takes over first, then node1 leaves.
my $log1 = -s $node1->logfile;
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.drop_node('node1')");
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT count(*) FROM pg_autopilot.show_state() WHERE node_name = 'node1'", '0'),
	'node1 handed over and left the formation');
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT current_state::text || '|' || assigned_state::text IN ('single|single', 'wait_primary|wait_primary') "
		  . "FROM pg_autopilot.show_state() WHERE node_name = 'node2'", 't'),
	'node2 runs the group alone');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node2 is writable');
ok($node1->wait_for_log(qr/node "node1" was dropped from formation "default"/, $log1), 'node1\'s keeper idles');
($rc, $out, $err) = psql_timed(formation_uri($monitor), 'INSERT INTO t204 VALUES (2)', 60);
is($rc, 0, 'writes go to node2') or diag $err;

# The DBA removes node3's state file: it registers again and follows node2.
$log3 = -s $node3->logfile;
unlink $node3->data_dir . '.autopilot/state' or die "cannot remove node3's state file: $!";
$node3->reload;
ok($node3->wait_for_log(qr/state file of the dropped node was removed: registering again/, $log3),
	'node3 notices the removed state file');
wait_for_state($monitor, 'node3', 'secondary', 'node3 joins again as secondary');
ok($node3->poll_query_until('postgres', 'SELECT count(*) FROM t204', '2'), 'node3 has every write');

check_logs_clean($monitor, $node1, $node2, $node3);
done_testing();
