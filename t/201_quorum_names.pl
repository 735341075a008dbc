# t/201_quorum_names.pl — any number of standbys (issue 4, docs/elections.md
# "Primary side with N standbys"): with three and four nodes the primary runs
# the monitor's quorum names ANY k (...) for number_sync_standbys n = 0, 1
# and 2; one standby down with n = 1 and three nodes leaves writes flowing;
# impossible values of n and of replication_quorum are refused with a clear
# error and change nothing; an asynchronous standby is not named.
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

# n = 0 (the default): ANY 1 over both quorum standbys, equal priority: by id.
wait_for_sync_names($node1, expected_any_names(1, $id2, $id3), 'three nodes, n = 0: ANY 1 over both standbys');
is($monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.synchronous_standby_names()'),
	expected_any_names(1, $id2, $id3), 'the monitor computes the same names');
ok( $node1->poll_query_until('postgres',
		"SELECT string_agg(application_name || ':' || sync_state, ',' ORDER BY application_name) FROM pg_stat_replication",
		"pg_autopilot_node_$id2:quorum,pg_autopilot_node_$id3:quorum"),
	'both standbys stream as quorum standbys');

# Refusals change nothing.
my $before = states_text($monitor);
my ($code, $msg) = psql_error($mon, 'SELECT pg_autopilot.set_number_sync_standbys(2)');
is($code, '55000', "n = 2 with two quorum standbys is refused: $msg");
($code, $msg) = psql_error($mon, 'SELECT pg_autopilot.set_number_sync_standbys(-1)');
is($code, '22023', "n = -1 is refused: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.set_number_sync_standbys(1, 'no_such_formation')");
is($code, '42704', "an unknown formation is refused: $msg");
is(states_text($monitor), $before, 'the refusals changed nothing');

# n = 1: the same names, now with a guarantee.
$monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.set_number_sync_standbys(1)');
wait_for_state($monitor, 'node1', 'primary', 'the primary applied n = 1');
wait_for_sync_names($node1, expected_any_names(1, $id2, $id3), 'n = 1: ANY 1 over both standbys');

# One standby down with n = 1 and three nodes: the other one acknowledges.
my $uri = formation_uri($monitor);
$node3->stop('fast');
my @acked;
foreach my $id (1 .. 10)
{
	my ($rc, $out, $err) = psql_timed($uri,
		"CREATE TABLE IF NOT EXISTS ap_writes (id int PRIMARY KEY); INSERT INTO ap_writes VALUES ($id)", 60);
	push @acked, $id if defined $rc && $rc == 0;
	note "write $id: $err" if !defined $rc || $rc != 0;
}
is(scalar(@acked), 10, 'with node3 down and n = 1, all 10 writes are acknowledged');
ok($node2->poll_query_until('postgres', 'SELECT count(*) FROM ap_writes', '10'), 'node2 has them');
$node3->start;
wait_for_state($monitor, 'node3', 'secondary', 'node3 is back as secondary');

# A fourth node joins: ANY 1 over three standbys.
my $node4 = new_node('node4', $monitor);
$node4->start;
wait_for_state($monitor, 'node4', 'secondary', 'node4 joins as secondary');
my $id4 = node_id_of($monitor, 'node4');
wait_for_state($monitor, 'node1', 'primary', 'the primary applied the new names');
wait_for_sync_names($node1, expected_any_names(1, $id2, $id3, $id4), 'four nodes, n = 1: ANY 1 over three standbys');

# n = 2: ANY 2 over three standbys; writes need two acknowledgements and get them.
$monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.set_number_sync_standbys(2)');
wait_for_sync_names($node1, expected_any_names(2, $id2, $id3, $id4), 'four nodes, n = 2: ANY 2 over three standbys');
wait_for_state($monitor, 'node1', 'primary', 'the primary applied n = 2');
my ($rc, $out, $err) = psql_timed($uri, 'INSERT INTO ap_writes VALUES (11)', 60);
is($rc, 0, 'a write with n = 2 is acknowledged') or diag $err;

# With n = 2, three quorum standbys are needed: n = 3 and taking node4 out of
# the quorum are both refused.
$before = states_text($monitor);
($code, $msg) = psql_error($mon, 'SELECT pg_autopilot.set_number_sync_standbys(3)');
is($code, '55000', "n = 3 with three quorum standbys is refused: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.set_replication_quorum('node4', false)");
is($code, '55000', "replication_quorum off for node4 with n = 2 is refused: $msg");
is(states_text($monitor), $before, 'the refusals changed nothing');
is($node4->safe_psql('postgres', 'SHOW pg_autopilot.replication_quorum'), 'on', 'node4 still counts for quorum');

# Back to n = 1, then node4 becomes an asynchronous standby: set on the
# monitor, written into node4's postgresql.auto.conf by its keeper, and no
# longer named by the primary.
$monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.set_number_sync_standbys(1)');
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.set_replication_quorum('node4', false)");
ok($node4->poll_query_until('postgres', 'SHOW pg_autopilot.replication_quorum', 'off'),
	'node4\'s keeper applied replication_quorum = off');
wait_for_sync_names($node1, expected_any_names(1, $id2, $id3), 'the asynchronous node4 is not named');
ok( $node1->poll_query_until('postgres',
		"SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pg_autopilot_node_$id4'", 'async'),
	'node4 streams asynchronously');
is( $monitor->safe_psql('pg_autopilot',
		"SELECT replication_quorum FROM pg_autopilot.show_state() WHERE node_name = 'node4'"),
	'f', 'show_state shows node4 without quorum');
wait_for_state($monitor, 'node1', 'primary', 'the primary is settled');
($rc, $out, $err) = psql_timed($uri, 'INSERT INTO ap_writes VALUES (12)', 60);
is($rc, 0, 'writes continue') or diag $err;

check_logs_clean($monitor, $node1, $node2, $node3, $node4);
done_testing();
