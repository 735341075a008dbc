# t/103_freeze_primary.pl — the primary freezes (SIGSTOP of its postmaster and
# every child) under a concurrent writer (issue 3): the monitor fails over to
# the standby; when the old primary is thawed (SIGCONT) it acknowledges no
# write, not even one sent to it directly, and rejoins as a standby; no
# acknowledged id is lost.
use strict;
use warnings;

use IPC::Run;
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
ok(wait_for_writer_acks($writer, 0, 10), 'the writer writes through formation_uri');
my $first_event = max_event_id($monitor);
my $pid1 = postmaster_pid($node1);

my $t_freeze = Time::HiRes::time();
my @frozen = freeze_node($node1);
ok(@frozen >= 5, scalar(@frozen) . ' processes of node1 frozen');

wait_for_state($monitor, 'node2', 'wait_primary', 'node2 is promoted while node1 is frozen');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node2 is writable');
ok(wait_for_writer_acks($writer, $t_freeze, 5), 'the writer resumes on node2 while node1 is frozen');
my @events = events_since($monitor, $first_event);
note "failover events:\n" . join("\n", @events);
ok((grep { /^node1\|demote_timeout\|primary_failed$/ } @events), 'event: node1 -> demote_timeout (primary_failed)');
ok((grep { /^node2\|stop_replication\|promote_candidate$/ } @events), 'event: node2 -> stop_replication (promote_candidate)');

# A write sent straight to node1, queued while it is frozen: when node1 wakes
# up it must not acknowledge it (it still thinks it is the primary for a
# moment, but its synchronous standby is gone, and then it is demoted).
my ($dout, $derr) = ('', '');
my $direct = IPC::Run::start(
	[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node1->connstr('postgres'), '-c',
		'INSERT INTO ap_writer (id) VALUES (-1)' ],
	'<', \undef, '>', \$dout, '2>', \$derr, IPC::Run::timeout(60));

thaw_node(@frozen);
note 'thawed node1 after ' . sprintf('%.1f', Time::HiRes::time() - $t_freeze) . ' s';
my $direct_ok = eval { $direct->finish; 1 } && $? == 0;
ok(!$direct_ok, 'a write sent directly to the thawed old primary is not acknowledged')
  or diag "stdout: $dout";
note "direct write to node1: $derr $@";

wait_for_state($monitor, 'node1', 'secondary', 'the thawed old primary rejoins as secondary');
wait_for_state($monitor, 'node2', 'primary', 'node2 is primary with its standby back');
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node1 is a standby');
is($node1->safe_psql('postgres', 'SELECT count(*) FROM ap_writer WHERE id = -1'), '0',
	'the unacknowledged direct write is not on node1 after its rejoin');
is($node2->safe_psql('postgres', 'SELECT count(*) FROM ap_writer WHERE id = -1'), '0',
	'nor on node2');
ok( $node1->poll_query_until('postgres', "SELECT status || '|' || sender_port FROM pg_stat_wal_receiver",
		'streaming|' . $node2->port),
	'node1 streams from node2');
note 'node1 postmaster ' . (postmaster_pid($node1) eq $pid1 ? 'kept' : 'changed') . ' its PID';

my @acked = stop_writer($writer);
check_no_loss($node2, @acked);
check_no_loss($node1, @acked);

check_logs_clean($monitor, $node1, $node2);
done_testing();
