# t/104_monitor_down.pl — the monitor goes away for longer than the keepers'
# fence timeout (issue 3): writes continue on the primary, nobody changes
# role or fences itself (a standby streams from the primary); when the monitor
# comes back the group is primary/secondary again with no failover event.
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
$node1->safe_psql('postgres', 'CREATE EXTENSION pg_autopilot');
ok($node2->poll_query_until('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'pg_autopilot'", '1'),
	'the node extension reached the standby');
my ($pid1, $pid2) = (postmaster_pid($node1), postmaster_pid($node2));

# How long an isolated primary waits before fencing itself (the keeper's
# pg_autopilot.fence_timeout; the monitor's absence must outlast it).
my $fence_secs = $node1->safe_psql('postgres',
	"SELECT extract(epoch FROM coalesce(current_setting('pg_autopilot.fence_timeout', true), '10s')::interval)");
note "fence_timeout: $fence_secs s";

my $uri = formation_uri($monitor);
my $writer = start_writer($uri);
ok(wait_for_writer_acks($writer, 0, 5), 'the writer writes through formation_uri');
my $last_event = max_event_id($monitor);

$monitor->stop('fast');
my $t_down = Time::HiRes::time();
foreach my $node ($node1, $node2)
{
	ok($node->poll_query_until('postgres', 'SELECT monitor_reachable FROM pg_autopilot.status()', 'f'),
		$node->name . '\'s keeper sees the monitor gone');
}

# Observable passage of time: the writer keeps being acknowledged until well
# after the fence timeout has elapsed since the monitor stopped.
ok(wait_for_writer_acks($writer, $t_down + $fence_secs + 2, 5),
	'writes continue on the primary past the fence timeout with the monitor down');
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node1 is still the writable primary');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node2 is still a standby');
is($node2->safe_psql('postgres', 'SELECT status FROM pg_stat_wal_receiver'), 'streaming', 'node2 still streams');
is(postmaster_pid($node1), $pid1, 'node1 was not restarted');
is(postmaster_pid($node2), $pid2, 'node2 was not restarted');
my ($rc, $out, $err) = psql_timed($node1->connstr('postgres'), 'INSERT INTO ap_writer (id) VALUES (-1)', 60);
is($rc, 0, 'a direct write on node1 is acknowledged (no fence)') or diag $err;
my @fence_lines = grep { /fenc/i && !/statement: / } split /\n/, slurp_file($node1->logfile);
ok(!@fence_lines, 'node1\'s log does not mention a fence') or diag join("\n", @fence_lines);

$monitor->start;
wait_for_state($monitor, 'node1', 'primary', 'node1 is primary once the monitor is back');
wait_for_state($monitor, 'node2', 'secondary', 'node2 is secondary once the monitor is back');
foreach my $node ($node1, $node2)
{
	ok($node->poll_query_until('postgres', 'SELECT monitor_reachable FROM pg_autopilot.status()', 't'),
		$node->name . '\'s keeper is back in touch with the monitor');
}
# A false failover right after the restart (reports that went stale while
# the monitor was down judged as failures) would show as rule events after
# the outage.
my @events = events_since($monitor, $last_event);
note "events after the outage:\n" . join("\n", @events);
my @failover = grep { /\|(draining|demote_timeout|demoted|prepare_promotion|stop_replication|maintenance)\|/ } @events;
ok(!@failover, 'no failover event while and after the monitor was down') or diag join("\n", @events);
# Nor may the returning monitor drop synchronous replication because the
# reports it holds are old: that would let the primary acknowledge commits
# no standby has (wait_primary) although nothing failed.
my @sync_drop = grep { /\|(wait_primary|catchingup)\|/ } @events;
ok(!@sync_drop, 'the returning monitor does not drop synchronous replication over stale reports')
  or diag join("\n", @events);
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node1 is still the primary');
is($node1->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()'), '1',
	'no new timeline: nobody was promoted');

my @acked = stop_writer($writer);
my $during = grep { $_->{ok} && $_->{t0} >= $t_down } writer_results($writer);
ok($during >= 5, "$during writes acknowledged after the monitor stopped");
check_no_loss($node1, @acked, -1);
check_no_loss($node2, @acked, -1);

check_logs_clean($monitor, $node1, $node2);
done_testing();
