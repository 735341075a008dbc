# t/005_fast_shutdown.pl — the keeper never delays a fast shutdown: not when
# its monitor is down (connection refused, reconnect backoff), and not when
# the monitor is a black hole that accepts TCP connections and never answers
# (the keeper is then in the middle of a connect).  The bound is pg_ctl's own
# wait (-t 5): a keeper that blocked would make pg_ctl give up.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

# stop_fast: pg_ctl stop -m fast -t $secs; one test result, and the node
# object learns whether the postmaster is gone.
sub stop_fast
{
	my ($node, $secs, $name) = @_;
	my $offset = -s $node->logfile;
	my $ok = PostgreSQL::Test::Utils::system_log('pg_ctl', '-D', $node->data_dir, '-m', 'fast',
		'-t', $secs, 'stop') == 0;
	ok($ok, $name);
	$node->_update_pid(-1);
	like(slurp_file($node->logfile, $offset), qr/database system is shut down/,
		$node->name . ': the log shows a clean shutdown');
	return $ok;
}

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor);
$node1->start;
wait_for_state($monitor, 'node1', 'single', 'node1 becomes single');

# 1. The monitor goes away under a connected keeper.
$monitor->stop;
stop_fast($node1, 60, 'fast stop with the monitor down (keeper had a session)');

# 2. The keeper starts while the monitor is down: refused connects, backoff.
$node1->start;
stop_fast($node1, 5, 'fast stop while the keeper retries a refused monitor');

# 3. The monitor is a black hole: the keeper is stuck in its connect.
my ($hole, $hole_port) = black_hole_listener();
my $node2 = new_node('node2', undef,
	monitor_conninfo => "host=127.0.0.1 port=$hole_port dbname=pg_autopilot user=autopilot_node");
$node2->start;
my $client = wait_for_black_hole_client($hole);
ok(defined $client, 'the keeper connected to the black hole');
stop_fast($node2, 5, 'fast stop while the keeper waits on an unresponsive monitor');
close $client if $client;

# 4. Same, after a SIGHUP in the middle of the wait: reload must not block either.
$node2->start;
$client = wait_for_black_hole_client($hole);
ok(defined $client, 'the keeper connected to the black hole again');
$node2->reload;
ok($node2->poll_query_until('postgres', 'SELECT true'), 'the node serves queries while its keeper waits');
stop_fast($node2, 5, 'fast stop after a reload while the keeper waits');
close $client if $client;
close $hole;

check_logs_clean($monitor, $node1, $node2);
done_testing();
