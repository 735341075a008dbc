# t/206_priority_settings.pl — one source of truth for candidate_priority and
# replication_quorum (issue 4, docs/elections.md): set_candidate_priority on
# the monitor reaches the node's GUC (its keeper writes postgresql.auto.conf)
# and reorders the primary's quorum names; ALTER SYSTEM + reload on a node
# reaches the monitor; out-of-range priorities and unknown nodes or
# formations are refused with a clear error and change nothing.
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
wait_for_sync_names($node1, expected_any_names(1, $id2, $id3), 'equal priorities: names by id');

sub monitor_priority
{
	my ($name) = @_;
	return $monitor->safe_psql('pg_autopilot',
		"SELECT candidate_priority FROM pg_autopilot.show_state() WHERE node_name = '$name'");
}

# Refusals.
my $before = states_text($monitor);
my ($code, $msg) = psql_error($mon, "SELECT pg_autopilot.set_candidate_priority('node3', 101)");
is($code, '22023', "priority 101 is refused: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.set_candidate_priority('node3', -1)");
is($code, '22023', "priority -1 is refused: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.set_candidate_priority('no_such_node', 10)");
is($code, '42704', "an unknown node is refused: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.set_candidate_priority('node3', 10, 'no_such_formation')");
is($code, '42704', "an unknown formation is refused: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.set_replication_quorum('no_such_node', false)");
is($code, '42704', "set_replication_quorum of an unknown node is refused: $msg");
is(states_text($monitor), $before, 'the refusals changed nothing');
is($node3->safe_psql('postgres', 'SHOW pg_autopilot.candidate_priority'), '50', 'node3 keeps priority 50');

# Monitor -> node.
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.set_candidate_priority('node3', 90)");
ok($node3->poll_query_until('postgres', 'SHOW pg_autopilot.candidate_priority', '90'),
	'node3\'s keeper applied candidate_priority = 90 from the monitor');
like(slurp_file($node3->data_dir . '/postgresql.auto.conf'), qr/^pg_autopilot\.candidate_priority = '90'$/m,
	'it is in node3\'s postgresql.auto.conf');
is(monitor_priority('node3'), '90', 'show_state shows 90');
wait_for_sync_names($node1, expected_any_names(1, $id3, $id2), 'the primary names node3 first now');

# The monitor does not go back to the old value when the node reports (one source of truth).
$node3->reload;
ok($monitor->poll_query_until('pg_autopilot',
		"SELECT candidate_priority FROM pg_autopilot.show_state() WHERE node_name = 'node3'", '90'),
	'the monitor keeps 90 after node3 reported it');

# Node -> monitor: ALTER SYSTEM on the standby node2 (allowed on a hot standby).
$node2->safe_psql('postgres', 'ALTER SYSTEM SET pg_autopilot.candidate_priority = 10');
$node2->reload;
ok($monitor->poll_query_until('pg_autopilot',
		"SELECT candidate_priority FROM pg_autopilot.show_state() WHERE node_name = 'node2'", '10'),
	'ALTER SYSTEM on node2 reaches the monitor');
is($node2->safe_psql('postgres', 'SHOW pg_autopilot.candidate_priority'), '10', 'node2 keeps its own value');

# Priority 0 from the monitor: never promoted, still a quorum standby.
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.set_candidate_priority('node2', 0)");
ok($node2->poll_query_until('postgres', 'SHOW pg_autopilot.candidate_priority', '0'), 'node2 applied priority 0');
wait_for_sync_names($node1, expected_any_names(1, $id3, $id2), 'node2 is still named (quorum) after node3');
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.perform_promotion('node2')");
is($code, '55000', "promoting the priority-0 node2 is refused: $msg");

check_logs_clean($monitor, $node1, $node2, $node3);
done_testing();
