# t/111_fence_receivewal.pl — only the group's own standbys keep an
# isolated primary from fencing (issue 3 review, docs/failover.md
# "Self-fencing").
#
# A pg_receivewal streams from node1 and replies every second, under an
# application_name that is not pg_autopilot_node_<id> of another node of
# the group (it even uses node1's own).  Formerly any streaming walsender
# counted as "my standby still streams", so with the monitor stopped and
# node2 frozen the primary never fenced.  Now only physical walsenders named
# after a peer from the monitor's standby_slots count: node1 fences itself.
use strict;
use warnings;

use Cwd ();
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor, conf => "pg_autopilot.fence_timeout = '2s'\n");
$node1->start;
wait_for_state($monitor, 'node1', 'single');
my $node2 = new_node('node2', $monitor);
$node2->start;
wait_for_state($monitor, 'node2', 'secondary');
wait_for_state($monitor, 'node1', 'primary');
my $id1 = node_id_of($monitor, 'node1');

# A pg_receivewal that pretends to be node1's own standby name.
my $waldir = Cwd::abs_path($PostgreSQL::Test::Utils::tmp_check) . '/receivewal';
mkdir $waldir or die "cannot create $waldir: $!";
my $receivewal = IPC::Run::start(
	[ 'pg_receivewal', '-D', $waldir, '--status-interval=1', '--no-password',
		'-d', 'host=127.0.0.1 port=' . $node1->port . " application_name=pg_autopilot_node_$id1" ],
	'<', \undef, '>', \my $rw_out, '2>', \my $rw_err);
ok( $node1->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_replication WHERE application_name = 'pg_autopilot_node_$id1' "
		  . "AND state = 'streaming' AND reply_time IS NOT NULL"),
	'pg_receivewal streams from node1 and replies');

# Isolate node1 from the monitor and from node2; pg_receivewal keeps
# streaming and replying.
my $log_offset = -s $node1->logfile;
$monitor->stop('fast');
my $t_isolate = Time::HiRes::time();
my @frozen = freeze_node($node2);
ok(@frozen >= 3, scalar(@frozen) . ' processes of node2 frozen');

ok( $node1->wait_for_log(
		qr/pg_autopilot keeper: primary isolated for \d+ ms \(no monitor, not enough synchronous standbys streaming\): fencing/,
		$log_offset),
	'node1 fences although pg_receivewal streams from it');
note sprintf('fenced %.1f s after the isolation', Time::HiRes::time() - $t_isolate);
ok($node1->wait_for_log(qr/background worker "pg_autopilot keeper" \(PID \d+\) exited with exit code 2/, $log_offset),
	'the keeper exits with code 2');
ok($node1->wait_for_log(qr/entering standby mode/, $log_offset), 'node1 restarts in standby mode');

my ($fenced, $last_err) = (0, '');
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default && !$fenced; $i++)
{
	my ($rc, $out, $err) = psql_timed($node1->connstr('postgres'), 'SELECT 1', 10);
	last if defined $rc && $rc == 0;
	$last_err = $err // '';
	$fenced = $last_err =~ /this node is fenced/;
	Time::HiRes::usleep(100_000) unless $fenced;
}
ok($fenced, 'a client login to node1 is refused by the fence') or diag "last login error: $last_err";

$receivewal->kill_kill;
thaw_node(@frozen);
check_logs_clean($monitor, $node1, $node2);
done_testing();
