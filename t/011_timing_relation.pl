# t/011_timing_relation.pl — the keeper checks the timing relation of
# DESIGN.md §2.2 against the monitor: an isolated primary must fence itself
# (pg_autopilot.fence_timeout) before the monitor may promote its standby
# without proof (pg_autopilot_monitor.primary_demote_timeout).  A violation
# is reported with a clear WARNING; the node keeps working.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();

# Default relation (10 s < 30 s): no warning.
my $good = new_node('good', $monitor);
$good->start;
wait_for_state($monitor, 'good', 'single', 'a node with default timings runs as single');
ok(!(slurp_file($good->logfile) =~ /is too long for the monitor's primary_demote_timeout/),
	'no timing warning with the defaults');

# fence_timeout 40 s against the monitor's 30 s: warned, and the node still works.
my $monitor2 = new_monitor(name => 'monitor2');
my $bad = new_node('bad', $monitor2, conf => "pg_autopilot.fence_timeout = '40s'\n");
$bad->start;
wait_for_state($monitor2, 'bad', 'single', 'the misconfigured node still runs as single');
ok( $bad->wait_for_log(
		qr/WARNING:  pg_autopilot.fence_timeout \(40000 ms\) is too long for the monitor's primary_demote_timeout \(30000 ms\)/
	),
	'the keeper warns that fence_timeout is too long for primary_demote_timeout');
like(slurp_file($bad->logfile), qr/HINT:  Lower pg_autopilot.fence_timeout or raise pg_autopilot_monitor.primary_demote_timeout/,
	'with a hint saying what to change');

# 20 s looks below 30 s, but with the standby reply slack (10 s) and
# monitor_timeout (5 s) the fence may come after 35 s: warned too.
my $monitor3 = new_monitor(name => 'monitor3');
my $subtle = new_node('subtle', $monitor3, conf => "pg_autopilot.fence_timeout = '20s'\n");
$subtle->start;
wait_for_state($monitor3, 'subtle', 'single', 'the subtly misconfigured node runs as single');
ok($subtle->wait_for_log(qr/fence_timeout \+ 10000 ms of standby reply slack \+ monitor_timeout \(5000 ms\) = 35000 ms/),
	'the warning counts the standby reply slack and monitor_timeout');

check_logs_clean($monitor, $monitor2, $monitor3, $good, $bad, $subtle);
done_testing();
