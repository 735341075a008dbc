# t/108_self_fence.pl — an isolated primary fences itself (issue 3,
# docs/failover.md "Self-fencing"): with the monitor stopped and its standby
# frozen (SIGSTOP), the primary's keeper, after pg_autopilot.fence_timeout
# (plus the standby reply slack), raises the login fence and exits with code
# 2, so the same postmaster crash-restarts into standby mode: it can neither
# acknowledge a commit nor serve a client.  Once the monitor and the standby
# are back the group converges to one primary and one secondary (the monitor
# may keep node1 or fail over: both are correct) with no acknowledged write
# of the concurrent writer lost.
#
# While node1 is isolated its keeper is terminated each time it starts
# (the postmaster restarts it after 1 s): the isolation clock lives in
# shared memory, so the restarts do not postpone the fence (formerly every
# keeper start began a new fence_timeout and node1 never fenced).
use strict;
use warnings;

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
is($node1->safe_psql('postgres', 'SHOW pg_autopilot.fence_timeout'), '2s', 'node1 fences after 2 s');

my $uri = formation_uri($monitor);
my $writer = start_writer($uri);
ok(wait_for_writer_acks($writer, 0, 10), 'the writer writes through formation_uri');

# Isolate node1: the monitor goes away and node2 stops answering (its
# walreceiver's connection stays open, so node1 still counts a streaming
# walsender; only its reply time stops moving).
my $pid1 = postmaster_pid($node1);
my $log_offset = -s $node1->logfile;
$monitor->stop('fast');
my $t_isolate = Time::HiRes::time();
my @frozen = freeze_node($node2);
ok(@frozen >= 3, scalar(@frozen) . ' processes of node2 frozen');

# keeper_pid: PID of node1's keeper (undef when none runs).
sub keeper_pid
{
	my ($node, $pm) = @_;
	foreach my $pid (node_processes($node, $pm))
	{
		open my $fh, '<', "/proc/$pid/cmdline" or next;
		my $cmd = <$fh> // '';
		close $fh;
		return $pid if $cmd =~ /pg_autopilot keeper/;
	}
	return undef;
}

my $fence_re = qr/pg_autopilot keeper: primary isolated for \d+ ms \(no monitor, not enough synchronous standbys streaming\): fencing/;
my ($fenced, $kills) = (0, 0);
for (my $i = 0; $i < 100 && !$fenced; $i++)
{
	my $offset = -s $node1->logfile;
	last if substr(slurp_file($node1->logfile), $log_offset) =~ $fence_re;
	my $kpid = keeper_pid($node1, $pid1);
	$kills++ if defined $kpid && kill('TERM', $kpid);
	# The next keeper start (1 s later), or the fence of the current one.
	$node1->wait_for_log(qr/pg_autopilot keeper started|$fence_re/, $offset);
	$fenced = substr(slurp_file($node1->logfile), $log_offset) =~ $fence_re;
}
ok($kills >= 2, "node1's keeper was terminated $kills times during the isolation");
ok($fenced, 'node1\'s keeper fences its isolated primary although it keeps being restarted');
note sprintf('fenced %.1f s after the isolation', Time::HiRes::time() - $t_isolate);

# The keeper exits with code 2 and the postmaster crash-restarts in standby
# mode with the login fence up.
ok($node1->wait_for_log(qr/background worker "pg_autopilot keeper" \(PID \d+\) exited with exit code 2/, $log_offset),
	'the keeper exits with code 2');
ok($node1->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset),
	'the postmaster crash-restarts');
ok($node1->wait_for_log(qr/pg_autopilot: starting with the login fence up/, $log_offset),
	'node1 restarts with the login fence up');
ok($node1->wait_for_log(qr/entering standby mode/, $log_offset), 'node1 restarts in standby mode');
ok( $node1->wait_for_log(qr/database system was not properly shut down; automatic recovery in progress/, $log_offset),
	'node1 recovers from the crash');
ok($node1->wait_for_log(qr/consistent recovery state reached/, $log_offset), 'node1 reaches a consistent standby state');

# A new client login is refused by the fence (the server may still be
# starting up at the first attempts).
my ($fence_err, $served, $last_err) = ('', 0, '');
my $max_attempts = 10 * $PostgreSQL::Test::Utils::timeout_default;
for (my $i = 0; $i < $max_attempts; $i++)
{
	my ($rc, $out, $err) = psql_timed($node1->connstr('postgres'), 'SELECT pg_is_in_recovery()', 10);
	if (defined $rc && $rc == 0)
	{
		$served = 1;
		last;
	}
	$last_err = $err // '';
	if ($last_err =~ /fence/i)
	{
		($fence_err = $last_err) =~ s/\s+/ /g;
		last;
	}
	Time::HiRes::usleep(100_000);
}
ok(!$served, 'the fenced node1 serves no client');
isnt($fence_err, '', "a client login to node1 is refused by the fence: $fence_err")
  or diag "last login error: $last_err";
my ($rc, $out, $err) = psql_timed($node1->connstr('postgres'), 'SELECT * FROM pg_autopilot.status()', 10);
ok(!(defined $rc && $rc == 0) && $err =~ /fence/i, 'pg_autopilot.status() cannot be queried: the login is refused');
is(postmaster_pid($node1), $pid1, 'node1\'s postmaster kept its PID (crash restart, not a new postmaster)');
ok(kill(0, $pid1), 'and it is alive');

# Heal: node2 wakes up, the monitor comes back.
thaw_node(@frozen);
$monitor->start;
note sprintf('healed after %.1f s of isolation', Time::HiRes::time() - $t_isolate);

# The monitor's show_state is stale right after its restart (it says what
# it knew before): wait until it shows one primary and one secondary and the
# nodes really are a writable primary and a standby that answer clients
# (node1's fence down).
my ($converged, $primary_name, $last_seen) = (0, '', '');
for (my $i = 0; $i < $max_attempts && !$converged; $i++)
{
	my $rows = $monitor->safe_psql('pg_autopilot',
		"SELECT string_agg(node_name || ':' || current_state || '|' || assigned_state, ' ' ORDER BY node_name) "
		  . 'FROM pg_autopilot.show_state()');
	$last_seen = $rows;
	my ($role1, $role2) = $rows =~ /^node1:(primary|secondary)\|\1 node2:(primary|secondary)\|\2$/;
	if (defined $role1 && $role1 ne $role2)
	{
		my $want1 = $role1 eq 'primary' ? 'f' : 't';
		my $want2 = $role2 eq 'primary' ? 'f' : 't';
		my ($rc1, $out1) = psql_timed($node1->connstr('postgres'), 'SELECT pg_is_in_recovery()', 10);
		my ($rc2, $out2) = psql_timed($node2->connstr('postgres'), 'SELECT pg_is_in_recovery()', 10);
		if (defined $rc1 && $rc1 == 0 && $out1 eq $want1 && defined $rc2 && $rc2 == 0 && $out2 eq $want2)
		{
			$converged = 1;
			$primary_name = $role1 eq 'primary' ? 'node1' : 'node2';
			last;
		}
	}
	Time::HiRes::usleep(100_000);
}
ok($converged, 'the group converges to one primary and one secondary, both serving clients')
  or diag "last show_state: $last_seen\nshow_state:\n" . show_state_text($monitor) . "show_events:\n" . show_events_text($monitor);
note "final primary: $primary_name";
note "show_events:\n" . show_events_text($monitor, 40);
my ($primary, $standby) = $primary_name eq 'node1' ? ($node1, $node2) : ($node2, $node1);
is($primary->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', "$primary_name is writable");
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', $standby->name . ' is a standby');
ok( $standby->poll_query_until('postgres', "SELECT status || '|' || sender_port FROM pg_stat_wal_receiver",
		'streaming|' . $primary->port),
	$standby->name . " streams from $primary_name");
ok(wait_for_writer_acks($writer, Time::HiRes::time(), 5), 'the writer writes again');

my @acked = stop_writer($writer);
my $before = grep { $_->{ok} && $_->{t1} < $t_isolate } writer_results($writer);
ok($before >= 10, "$before writes acknowledged before the isolation");
check_no_loss($primary, @acked);
check_no_loss($standby, @acked);

# node1's crash restart is on purpose: its keeper exited with code 2, which
# logs no crash marker ("terminated by signal" etc.).
check_logs_clean($monitor, $node1, $node2);
done_testing();
