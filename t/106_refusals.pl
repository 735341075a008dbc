# t/106_refusals.pl — operator requests the monitor must refuse (issue 3):
# switchover with no healthy standby, promotion of an unknown node or of a
# node with candidate_priority 0, two operations at once.  Each refusal is an
# ERROR with the documented SQLSTATE and leaves show_state unchanged.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my ($node1, $node2) = two_node_group($monitor);
my $mconn = $monitor->connstr('pg_autopilot');

# refused: $sql fails with $sqlstate (and a message matching $msg_re when
# given) and show_state does not change.
sub refused
{
	my ($sql, $sqlstate, $label, $msg_re) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $before = states_text($monitor);
	my $events_before = max_event_id($monitor);
	my ($state, $msg) = psql_error($mconn, $sql, 60);
	is($state, $sqlstate, "$label: refused with SQLSTATE $sqlstate") or diag $msg;
	note "$label: $msg";
	like($msg // '', qr/^[a-z]/, "$label: the message is a lower-case errmsg");
	like($msg // '', $msg_re, "$label: the message says why") if $msg_re;
	is(states_text($monitor), $before, "$label: show_state unchanged");
	my @events = events_since($monitor, $events_before);
	ok(!@events, "$label: no rule fired") or diag join("\n", @events);
	return;
}

# 1. Switchover with the standby stopped (unhealthy): 55000.
$node2->stop('fast');
wait_for_state($monitor, 'node1', 'wait_primary', 'the primary loses its standby');
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT reachable FROM pg_autopilot.show_state() WHERE node_name = 'node2'", 'f'),
	'node2 is unreachable');
# No operation is in progress: the message must name the real reason.
my $unhealthy = qr/health|unreachable|no .*(standby|secondary)/i;
refused('SELECT pg_autopilot.perform_switchover()', '55000', 'switchover without a healthy standby', $unhealthy);
refused('SELECT pg_autopilot.perform_failover()', '55000', 'failover without a healthy standby', $unhealthy);
refused("SELECT pg_autopilot.perform_promotion('node2')", '55000', 'promotion of a stopped standby', $unhealthy);
$node2->start;
wait_for_state($monitor, 'node2', 'secondary', 'node2 is back');
wait_for_state($monitor, 'node1', 'primary', 'node1 is primary again');

# 2. Unknown node: 42704.
refused("SELECT pg_autopilot.perform_promotion('nosuch')", '42704', 'promotion of an unknown node');
refused("SELECT pg_autopilot.enable_maintenance('nosuch')", '42704', 'maintenance of an unknown node');

# 3. Maintenance requests in the wrong state: 55000.
refused("SELECT pg_autopilot.disable_maintenance('node2')", '55000', 'disable maintenance of a node not in maintenance');

# 4. Promotion of a node that may never be promoted (priority 0).
$node2->safe_psql('postgres', 'ALTER SYSTEM SET pg_autopilot.candidate_priority = 0');
$node2->reload;
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT candidate_priority FROM pg_autopilot.show_state() WHERE node_name = 'node2'", '0'),
	'the monitor sees node2\'s candidate_priority 0');
refused("SELECT pg_autopilot.perform_promotion('node2')", '55000', 'promotion of a priority-0 node');
refused('SELECT pg_autopilot.perform_switchover()', '55000', 'switchover to a priority-0 node');
$node2->safe_psql('postgres', 'ALTER SYSTEM RESET pg_autopilot.candidate_priority');
$node2->reload;
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT candidate_priority FROM pg_autopilot.show_state() WHERE node_name = 'node2'", '50'),
	'node2\'s candidate_priority is back to 50');

# 5. Two operations at once.  Deterministic form: both requests in one
# transaction; the second sees the first one's assignments and must refuse,
# and the rollback leaves everything as it was.
refused('BEGIN; SELECT pg_autopilot.perform_switchover(); SELECT pg_autopilot.perform_switchover(); COMMIT',
	'55000', 'second switchover in the same transaction');
# Real form: a second request right after the first one committed, while the
# first is in progress (a switchover takes at least a fast shutdown, a
# restart and a promotion: far longer than one round trip).
my $events_before = max_event_id($monitor);
my ($s1, $m1) = psql_error($mconn, 'SELECT pg_autopilot.perform_switchover()', 60);
my ($s2, $m2) = psql_error($mconn, 'SELECT pg_autopilot.perform_switchover()', 60);
is($s1, '', 'the first switchover is accepted') or diag $m1;
is($s2, '55000', 'a second switchover while the first is in progress is refused') or diag $m2;
my ($s3, $m3) = psql_error($mconn, "SELECT pg_autopilot.enable_maintenance('node2')", 60);
is($s3, '55000', 'maintenance while a switchover is in progress is refused') or diag $m3;
wait_for_state($monitor, 'node2', 'primary', 'the first switchover completes: node2 primary');
wait_for_state($monitor, 'node1', 'secondary', 'node1 secondary');
my @events = events_since($monitor, $events_before);
is(scalar(grep { /\|draining\|switchover$/ } @events), 1, 'exactly one switchover happened')
  or diag join("\n", @events);

check_logs_clean($monitor, $node1, $node2);
done_testing();
