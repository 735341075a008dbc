# t/112_demote_broken_conf.pl — a demotion never depends on a confirmed
# reload (issue 3 review, docs/failover.md "Switchover").
#
# node1 (primary) carries a stale primary_conninfo in postgresql.conf and,
# before the switchover, a line that is not valid, so the clean demotion
# cannot confirm primary_conninfo = ''.  Formerly DemoteClean failed with an
# ERROR at every tick and node1 stayed writable while draining.  Now it falls
# back to the self-fence: standby.signal and a crash restart, so node1 stops
# accepting writes, node2 receives all of its WAL and is promoted, and once
# the configuration is repaired node1 rejoins as a secondary.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor,
	conf => "primary_conninfo = 'host=127.0.0.1 port=1 application_name=stale'\n");
$node1->start;
wait_for_state($monitor, 'node1', 'single');
my $node2 = new_node('node2', $monitor);
$node2->start;
wait_for_state($monitor, 'node2', 'secondary');
wait_for_state($monitor, 'node1', 'primary');
$node1->safe_psql('postgres', 'CREATE TABLE t (id int); INSERT INTO t VALUES (1)');

my $conf = $node1->data_dir . '/postgresql.conf';
my $good_conf = slurp_file($conf);
my $log_offset = -s $node1->logfile;
$node1->append_conf('postgresql.conf', "this line is not a valid setting\n");
$node1->reload;
ok($node1->wait_for_log(qr/syntax error in file ".*postgresql\.conf"/, $log_offset),
	'node1 rejects its broken postgresql.conf on reload');

my $pid1 = postmaster_pid($node1);
$monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.perform_switchover()');
ok( $node1->wait_for_log(
		qr/pg_autopilot keeper: the clean demotion failed: .*; fencing instead: crash restart as a standby/,
		$log_offset),
	'the clean demotion of node1 fails and falls back to the self-fence');
ok($node1->wait_for_log(qr/background worker "pg_autopilot keeper" \(PID \d+\) exited with exit code 2/, $log_offset),
	'the keeper exits with code 2');
ok($node1->wait_for_log(qr/entering standby mode/, $log_offset), 'node1 restarts in standby mode');
is(postmaster_pid($node1), $pid1, 'node1\'s postmaster kept its PID (crash restart)');

# node2 gets all of node1's WAL and is promoted; node1 writes no more.
wait_for_state($monitor, 'node2', 'wait_primary', 'node2 is promoted');
my ($stdout, $stderr) = run_command([ 'pg_controldata', $node1->data_dir ]);
like($stdout, qr/Database cluster state:\s+in archive recovery/, 'node1 runs in recovery: it accepts no write');
is($node2->safe_psql('postgres', 'SELECT count(*) FROM t'), '1', 'node2 has node1\'s data');

# Repair node1's configuration: it follows node2 and becomes its secondary.
open my $fh, '>', $conf or die "cannot write $conf: $!";
print $fh $good_conf;
close $fh;
$node1->reload;
wait_for_state($monitor, 'node1', 'secondary', 'node1 rejoins as a secondary once its configuration is repaired');
wait_for_state($monitor, 'node2', 'primary');
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node1 is a standby');
$node2->safe_psql('postgres', 'INSERT INTO t VALUES (2)');
ok($node1->poll_query_until('postgres', 'SELECT count(*) = 2 FROM t'), 'node1 replays node2\'s writes');

check_logs_clean($monitor, $node1, $node2);
done_testing();
