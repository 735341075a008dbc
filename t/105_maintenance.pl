# t/105_maintenance.pl — maintenance (issue 3, docs/failover.md): a standby in
# maintenance is left alone (the operator stops and starts it, nothing
# happens) while the primary keeps writing without it; maintenance of the
# primary first moves the primary away by a switchover.  No acknowledged id
# is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my ($node1, $node2) = two_node_group($monitor);
my $uri = formation_uri($monitor);
my $writer = start_writer($uri);
ok(wait_for_writer_acks($writer, 0, 5), 'the writer writes through formation_uri');

sub monitor_call
{
	my ($sql, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = psql_timed($monitor->connstr('pg_autopilot'), $sql, 60);
	is($rc, 0, $name // $sql) or diag $err;
	return;
}

# --- Maintenance of the standby ------------------------------------------
monitor_call("SELECT pg_autopilot.enable_maintenance('node2')");
wait_for_state($monitor, 'node2', 'maintenance', 'the standby goes to maintenance');
wait_for_state($monitor, 'node1', 'wait_primary', 'the primary stops waiting for it');
my $t = Time::HiRes::time();
ok(wait_for_writer_acks($writer, $t, 5), 'writes continue while the standby is in maintenance');

# The operator stops and starts the standby: automation leaves it alone.
my $events_before = max_event_id($monitor);
$node2->stop('fast');
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT reachable FROM pg_autopilot.show_state() WHERE node_name = 'node2'", 'f'),
	'the monitor sees the stopped standby as unreachable');
is(state_row($monitor, 'node2'), 'maintenance|maintenance', 'the stopped standby stays in maintenance');
is(state_row($monitor, 'node1'), 'wait_primary|wait_primary', 'the primary stays wait_primary');
$node2->start;
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT reachable FROM pg_autopilot.show_state() WHERE node_name = 'node2'", 't'),
	'the restarted standby reports again');
is(state_row($monitor, 'node2'), 'maintenance|maintenance', 'the restarted standby stays in maintenance');
is(state_row($monitor, 'node1'), 'wait_primary|wait_primary', 'the primary is still wait_primary');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node2 is still a standby');
my @events = events_since($monitor, $events_before);
ok(!@events, 'no rule fired while the standby in maintenance was stopped and started')
  or diag join("\n", @events);

monitor_call("SELECT pg_autopilot.disable_maintenance('node2')");
wait_for_state($monitor, 'node2', 'secondary', 'the standby leaves maintenance: secondary');
wait_for_state($monitor, 'node1', 'primary', 'the primary waits for it again');

# --- Maintenance of the primary: a switchover first ----------------------
my $pid1 = postmaster_pid($node1);
$events_before = max_event_id($monitor);
monitor_call("SELECT pg_autopilot.enable_maintenance('node1')");
wait_for_state($monitor, 'node1', 'maintenance', 'the old primary ends in maintenance');
wait_for_state($monitor, 'node2', 'wait_primary', 'node2 is the primary (no quorum standby)');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node2 is writable');
ok(-e $node1->data_dir . '/standby.signal', 'node1 is a standby (standby.signal)');
is(postmaster_pid($node1), $pid1, 'node1 was demoted with the same postmaster PID');
# It was demoted cleanly (its history cannot have diverged): the operator
# can still log in to the node while it is in maintenance.
ok($node1->poll_query_until('postgres', 'SELECT pg_is_in_recovery()'),
	'node1 in maintenance accepts client logins as a standby (the demotion fence is lifted)');
@events = events_since($monitor, $events_before);
note "maintenance of the primary:\n" . join("\n", @events);
ok((grep { /^node1\|draining\|/ } @events), 'the primary was drained (switchover)');
ok(!(grep { /^node1\|catchingup\|/ } @events), 'the old primary went to maintenance, not catchingup');
$t = Time::HiRes::time();
ok(wait_for_writer_acks($writer, $t, 5), 'writes continue on the new primary');

monitor_call("SELECT pg_autopilot.disable_maintenance('node1')");
wait_for_state($monitor, 'node1', 'secondary', 'node1 leaves maintenance: secondary');
wait_for_state($monitor, 'node2', 'primary', 'node2 is primary');
ok( $node1->poll_query_until('postgres', "SELECT status || '|' || sender_port FROM pg_stat_wal_receiver",
		'streaming|' . $node2->port),
	'node1 streams from node2');

my @acked = stop_writer($writer);
check_no_loss($node2, @acked);
check_no_loss($node1, @acked);

check_logs_clean($monitor, $node1, $node2);
done_testing();
