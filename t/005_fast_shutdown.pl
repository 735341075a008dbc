# t/005_fast_shutdown.pl — the keeper never delays a fast shutdown: not when
# its monitor is down (connection refused, reconnect backoff), and not when
# the monitor is a black hole that accepts TCP connections and never answers
# (the keeper is then in the middle of a connect).  Each stop is timed: it
# must take well under 10 s.  The nodes run with pg_autopilot.monitor_timeout
# = 60s (the deadline of one connect or call to the monitor), so a keeper that
# waited for its connect to time out instead of handling SIGTERM would hold
# the shutdown for about a minute; pg_ctl itself may wait 90 s, so that the
# measured time, not pg_ctl giving up, decides.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

# A keeper blocked in a connect holds a fast shutdown for monitor_timeout;
# a prompt one returns in about a second even on a loaded 2-core machine.
my $monitor_timeout_conf = "pg_autopilot.monitor_timeout = '60s'\n";
my $prompt_secs = 10;

# stop_fast: pg_ctl stop -m fast -t $secs, timed; one test result for the
# stop, one for its duration when $max_elapsed is given, one for the log;
# the node object learns whether the postmaster is gone.
sub stop_fast
{
	my ($node, $secs, $name, $max_elapsed) = @_;
	my $offset = -s $node->logfile;
	my $t0 = Time::HiRes::time();
	my $ok = PostgreSQL::Test::Utils::system_log('pg_ctl', '-D', $node->data_dir, '-m', 'fast',
		'-t', $secs, 'stop') == 0;
	my $elapsed = Time::HiRes::time() - $t0;
	ok($ok, $name);
	if (defined $max_elapsed)
	{
		cmp_ok($elapsed, '<', $max_elapsed, sprintf('%s: took %.1f s (limit %d s)', $name, $elapsed, $max_elapsed));
	}
	else
	{
		note sprintf('%s: took %.1f s', $name, $elapsed);
	}
	$node->_update_pid(-1);
	like(slurp_file($node->logfile, $offset), qr/database system is shut down/,
		$node->name . ': the log shows a clean shutdown');
	return $ok;
}

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor, conf => $monitor_timeout_conf);
$node1->start;
wait_for_state($monitor, 'node1', 'single', 'node1 becomes single');

# 1. The monitor goes away under a connected keeper.
$monitor->stop;
stop_fast($node1, 60, 'fast stop with the monitor down (keeper had a session)', $prompt_secs);

# 2. The keeper starts while the monitor is down: refused connects, backoff.
$node1->start;
stop_fast($node1, 90, 'fast stop while the keeper retries a refused monitor', $prompt_secs);

# 3. The monitor is a black hole: the keeper is stuck in its connect.
my ($hole, $hole_port) = black_hole_listener();
my $node2 = new_node('node2', undef,
	monitor_conninfo => "host=127.0.0.1 port=$hole_port dbname=pg_autopilot user=autopilot_node",
	conf => $monitor_timeout_conf);
$node2->start;
is($node2->safe_psql('postgres', 'SHOW pg_autopilot.monitor_timeout'), '1min',
	'node2 runs with a monitor_timeout far above the promptness limit');
my $client = wait_for_black_hole_client($hole);
ok(defined $client, 'the keeper connected to the black hole');
stop_fast($node2, 90, 'fast stop while the keeper waits on an unresponsive monitor', $prompt_secs);
close $client if $client;

# 4. Same, after a SIGHUP in the middle of the wait: reload must not block either.
$node2->start;
$client = wait_for_black_hole_client($hole);
ok(defined $client, 'the keeper connected to the black hole again');
$node2->reload;
ok($node2->poll_query_until('postgres', 'SELECT true'), 'the node serves queries while its keeper waits');
stop_fast($node2, 90, 'fast stop after a reload while the keeper waits', $prompt_secs);
close $client if $client;
close $hole;

check_logs_clean($monitor, $node1, $node2);
done_testing();
