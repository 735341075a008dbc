# t/110_fence_broken_conf.pl — the self-fence is unconditional (issue 3
# review, docs/failover.md "Self-fencing"): an isolated primary whose
# configuration cannot be reloaded still fences itself.
#
# node1's postgresql.conf carries a stale primary_conninfo (ignored while it
# is a primary, but the fence wants it empty, so it has to write and reload)
# and, right before the isolation, a line that is not valid, so no reload is
# ever applied.  Formerly the fence waited for the reload confirmation,
# failed with an ERROR every tick and the primary stayed writable forever
# while the monitor's timeout proof assumed it had fenced.  Now the login
# fence and standby.signal come first, the settings are best-effort and the
# keeper always exits with code 2: node1 comes back in recovery with logins
# refused.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

# login_refused_by_fence: true once a client login to $node is refused by
# the login fence (the server may still be starting at the first attempts);
# false when a login succeeds or the default timeout passes.
sub login_refused_by_fence
{
	my ($node) = @_;
	my $last_err = '';
	for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
	{
		my ($rc, $out, $err) = psql_timed($node->connstr('postgres'), 'SELECT 1', 10);
		return 0 if defined $rc && $rc == 0;
		$last_err = $err // '';
		return 1 if $last_err =~ /this node is fenced/;
		Time::HiRes::usleep(100_000);
	}
	diag "last login error: $last_err";
	return 0;
}

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor,
	conf => "pg_autopilot.fence_timeout = '2s'\nprimary_conninfo = 'host=127.0.0.1 port=1 application_name=stale'\n");
$node1->start;
wait_for_state($monitor, 'node1', 'single');
my $node2 = new_node('node2', $monitor);
$node2->start;
wait_for_state($monitor, 'node2', 'secondary');
wait_for_state($monitor, 'node1', 'primary');
$node1->safe_psql('postgres', 'CREATE TABLE t (id int)');

# Break node1's configuration: every later reload fails as a whole.
my $log_offset = -s $node1->logfile;
$node1->append_conf('postgresql.conf', "this line is not a valid setting\n");
$node1->reload;
ok($node1->wait_for_log(qr/syntax error in file ".*postgresql\.conf"/, $log_offset),
	'node1 rejects its broken postgresql.conf on reload');

# Isolate node1 (as t/108 does): no monitor, node2 frozen.
my $pid1 = postmaster_pid($node1);
$monitor->stop('fast');
my $t_isolate = Time::HiRes::time();
my @frozen = freeze_node($node2);
ok(@frozen >= 3, scalar(@frozen) . ' processes of node2 frozen');

ok( $node1->wait_for_log(
		qr/pg_autopilot keeper: primary isolated for \d+ ms \(no monitor, not enough synchronous standbys streaming\): fencing/,
		$log_offset),
	'node1\'s keeper decides to fence');
ok($node1->wait_for_log(qr/background worker "pg_autopilot keeper" \(PID \d+\) exited with exit code 2/, $log_offset),
	'the keeper exits with code 2 although the configuration cannot be reloaded');
note sprintf('fenced %.1f s after the isolation (fence_timeout 2 s + standby reply slack 10 s)',
	Time::HiRes::time() - $t_isolate);
ok($node1->wait_for_log(qr/entering standby mode/, $log_offset), 'node1 restarts in standby mode');
ok($node1->wait_for_log(qr/consistent recovery state reached/, $log_offset), 'node1 reaches a consistent standby state');
ok(login_refused_by_fence($node1), 'a client login to node1 is refused by the fence');
is(postmaster_pid($node1), $pid1, 'node1\'s postmaster kept its PID (crash restart)');

# The unix socket of the test bypasses nothing: the fence refuses it too, so
# look at the control data for the recovery state.
my ($stdout, $stderr) = run_command([ 'pg_controldata', $node1->data_dir ]);
like($stdout, qr/Database cluster state:\s+in archive recovery/, 'node1 runs in recovery');

thaw_node(@frozen);
check_logs_clean($monitor, $node1, $node2);
done_testing();
