# t/009_keeper_restart.pl — the keeper worker restarts after a crash
# (issue 2) and the node keeps its role.
#
#  * SIGTERM (kill: pg_terminate_backend() does not reach a connection-less
#    worker, which has no proc array entry): the keeper exits with code 1, the postmaster starts a new one after
#    bgw_restart_time; status().keeper_pid changes, nothing else restarts,
#    the roles stay.
#  * SIGKILL: the postmaster treats it as a crash and reinitializes the whole
#    cluster (restart_after_crash, on by default; Cluster.pm turns it off, so
#    the nodes turn it back on); the node comes back with the same role, the
#    same postmaster and no promotion.  The only crash lines allowed in the
#    logs are those of the killed keepers ("terminated by signal 9").
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor, conf => "restart_after_crash = on\n");
$node1->start;
wait_for_state($monitor, 'node1', 'single', 'node1 becomes single');
my $node2 = new_node('node2', $monitor, conf => "restart_after_crash = on\n");
$node2->start;
wait_for_state($monitor, 'node2', 'secondary', 'node2 becomes secondary');
wait_for_state($monitor, 'node1', 'primary', 'node1 becomes primary');

my $uri = formation_uri($monitor);
my $rows = 0;
# writes_flow: 5 more synchronous writes through the formation URI reach both nodes.
sub writes_flow
{
	my ($what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @ids = ($rows + 1 .. $rows + 5);
	is(scalar(write_ids($uri, @ids)), 5, "$what: writes through formation_uri acknowledged");
	$rows += 5;
	ok($node2->poll_query_until('postgres', 'SELECT count(*) FROM ap_writes', $rows),
		"$what: the standby has every row");
	return;
}

$node1->safe_psql('postgres', 'CREATE EXTENSION pg_autopilot');
ok( $node2->poll_query_until('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'pg_autopilot'", '1'),
	'the extension replicated to node2');
writes_flow('before');

sub keeper_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT keeper_pid FROM pg_autopilot.status()');
}

# status_of: "current|assigned" as the node's keeper sees it.
sub status_of
{
	my ($node) = @_;
	return $node->safe_psql('postgres', "SELECT current_state || '|' || assigned_state FROM pg_autopilot.status()");
}

my %pm = (node1 => postmaster_pid($node1), node2 => postmaster_pid($node2));
my %killed;    # node name -> list of keeper PIDs killed with SIGKILL

# keeper_comes_back: after the keeper $old of $node ended, a new one runs and
# the node is back in $role (as its keeper and the monitor see it).
sub keeper_comes_back
{
	my ($node, $old, $role, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $name = $node->name;
	# poll_query_until retries while the node refuses connections (crash
	# restart, recovery, a primary fenced until its keeper confirms its role).
	ok( $node->poll_query_until('postgres',
			"SELECT keeper_pid > 0 AND keeper_pid <> $old FROM pg_autopilot.status()"),
		"$what: a new keeper runs on $name");
	my $new = keeper_pid($node);
	ok(kill(0, $new), "$what: new keeper PID $new is alive");
	ok($node->poll_query_until('postgres', "SELECT current_state || '|' || assigned_state FROM pg_autopilot.status()",
			"$role|$role"),
		"$what: the new keeper of $name is $role")
	  or diag 'status(): ' . status_of($node);
	wait_for_state($monitor, $name, $role, "$what: the monitor sees $name $role");
	is(postmaster_pid($node), $pm{$name}, "$what: same postmaster on $name");
	return $new;
}

########################################################################
# SIGTERM: the keeper alone restarts.
my $k1 = keeper_pid($node1);
like($k1, qr/^[1-9]\d*$/, "node1 keeper PID $k1");
my $offset1 = -s $node1->logfile;
# The keeper is connection-less: it never joins the proc array, so
# pg_terminate_backend() does not know it; a SIGTERM is sent with kill.
my ($tb_out, $tb_err) = ('', '');
$node1->psql('postgres', "SELECT pg_terminate_backend($k1)", stdout => \$tb_out, stderr => \$tb_err);
is($tb_out, 'f', 'pg_terminate_backend() does not apply to the connection-less keeper');
like($tb_err, qr/PID $k1 is not a PostgreSQL backend process/, '... and says so');
ok(kill('TERM', $k1), "SIGTERM to node1's keeper $k1");
my $new1 = keeper_comes_back($node1, $k1, 'primary', 'SIGTERM on the primary\'s keeper');
my $log1 = slurp_file($node1->logfile, $offset1);
like($log1, qr/background worker "pg_autopilot keeper" \(PID $k1\) exited with exit code 1/,
	'the terminated keeper exited with code 1');
unlike($log1, qr/terminated by signal|server process .* was terminated|all server processes terminated/,
	'no crash restart of the primary');
wait_for_state($monitor, 'node2', 'secondary', 'node2 still secondary');
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node1 is still a primary');
writes_flow('after SIGTERM on the primary\'s keeper');

my $k2 = keeper_pid($node2);
my $offset2 = -s $node2->logfile;
ok(kill('TERM', $k2), "SIGTERM to node2's keeper $k2");
keeper_comes_back($node2, $k2, 'secondary', 'SIGTERM on the standby\'s keeper');
my $log2 = slurp_file($node2->logfile, $offset2);
like($log2, qr/background worker "pg_autopilot keeper" \(PID $k2\) exited with exit code 1/,
	'the standby\'s keeper exited with code 1');
unlike($log2, qr/terminated by signal|all server processes terminated/, 'no crash restart of the standby');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node2 is still a standby');
writes_flow('after SIGTERM on the standby\'s keeper');

########################################################################
# SIGKILL: crash restart of the whole node, same role afterwards.
$offset1 = -s $node1->logfile;
ok(kill('KILL', $new1), "SIGKILL to node1's keeper $new1");
push @{ $killed{node1} }, $new1;
$node1->wait_for_log(qr/all server processes terminated; reinitializing/, $offset1);
ok(1, 'the primary\'s postmaster reinitializes after the keeper\'s crash');
keeper_comes_back($node1, $new1, 'primary', 'SIGKILL on the primary\'s keeper');
wait_for_state($monitor, 'node2', 'secondary', 'node2 secondary again after the primary\'s crash restart');
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node1 is a primary after its crash restart');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node2 was not promoted');
is($node1->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()'), '1',
	'no new timeline: nobody was promoted');
writes_flow('after SIGKILL on the primary\'s keeper');

my $k2b = keeper_pid($node2);
$offset2 = -s $node2->logfile;
ok(kill('KILL', $k2b), "SIGKILL to node2's keeper $k2b");
push @{ $killed{node2} }, $k2b;
$node2->wait_for_log(qr/all server processes terminated; reinitializing/, $offset2);
ok(1, 'the standby\'s postmaster reinitializes after the keeper\'s crash');
keeper_comes_back($node2, $k2b, 'secondary', 'SIGKILL on the standby\'s keeper');
wait_for_state($monitor, 'node1', 'primary', 'node1 still primary after the standby\'s crash restart');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node2 is a standby after its crash restart');
writes_flow('after SIGKILL on the standby\'s keeper');

########################################################################
# Logs: the killed keepers' "terminated by signal 9" lines, nothing else.
check_logs_clean($monitor);
foreach my $node ($node1, $node2)
{
	my $name = $node->name;
	my @bad = grep { /terminated by signal|TRAP:|PANIC/ } split /\n/, slurp_file($node->logfile);
	my @expected;
	foreach my $pid (@{ $killed{$name} })
	{
		my $re = qr/background worker "pg_autopilot keeper" \(PID $pid\) was terminated by signal 9: Killed/;
		is(scalar(grep { $_ =~ $re } @bad), 1, "$name log: the SIGKILL of keeper $pid");
		push @expected, $re;
	}
	my @other = grep {
		my $line = $_;
		!grep { $line =~ $_ } @expected
	} @bad;
	ok(!@other, "no other crash line in the log of $name") or diag join("\n", @other);
}
done_testing();
