# t/114_pending_garbage.pl — an unreadable pending pre-start action never
# leads to a writable start (issue 3 review, src/bgworker/restart.cpp
# RollBack).
#
# The pending file (<PGDATA>.autopilot/pending) tells the pre-start hook
# what the keeper asked for, e.g. a rewind of a former primary.  When it
# cannot be parsed nobody knows whether the data directory may have
# diverged: formerly the hook dropped it and started the server normally —
# a primary stayed a writable primary.  Now it starts as a standby without
# upstream with the login fence up, and the keeper decides once the monitor
# is back.
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
$node1->safe_psql('postgres', 'CREATE TABLE t (id int); INSERT INTO t VALUES (1)');

# With the monitor away nothing changes while node1 is down.
$monitor->stop('fast');
$node1->stop('fast');
my $pending = $node1->data_dir . '.autopilot/pending';
open my $fh, '>', $pending or die "cannot write $pending: $!";
print $fh "this is not a pending action\n";
close $fh;

my $log_offset = -s $node1->logfile;
$node1->start;
ok( $node1->wait_for_log(
		qr/WARNING:  pg_autopilot: pending pre-start action abandoned: the pending file is not valid/, $log_offset),
	'the pre-start hook abandons the garbage pending file');
ok(!-e $pending, 'the pending file is removed');
ok($node1->wait_for_log(qr/entering standby mode/, $log_offset), 'node1 starts in standby mode');
ok($node1->wait_for_log(qr/database system is ready to accept (read-only )?connections/, $log_offset),
	'node1 is up');
my $log = substr(slurp_file($node1->logfile), $log_offset);
like($log, qr/ready to accept read-only connections/, 'node1 accepts read-only connections only');
unlike($log, qr/ready to accept connections/, 'node1 never started writable');
like($log, qr/pg_autopilot: starting with the login fence up/, 'node1 starts with the login fence up');
my ($rc, $out, $err) = psql_timed($node1->connstr('postgres'), 'SELECT 1', 10);
ok(!(defined $rc && $rc == 0) && $err =~ /this node is fenced/, 'a client login to node1 is refused by the fence')
  or diag "psql: " . ($err // '');
my ($stdout) = run_command([ 'pg_controldata', $node1->data_dir ]);
like($stdout, qr/Database cluster state:\s+in archive recovery/, 'node1 runs in recovery');

# The monitor comes back: the group converges to one primary and one
# secondary (the keeper promotes node1 back, or the monitor fails over to
# node2: both are correct), and writes work again.
$monitor->start;
ok( $monitor->poll_query_until(
		'pg_autopilot',
		"SELECT string_agg(current_state || '|' || assigned_state, ' ' ORDER BY current_state) "
		  . 'FROM pg_autopilot.show_state()',
		'primary|primary secondary|secondary'),
	'the group converges to a primary and a secondary')
  or diag show_state_text($monitor) . show_events_text($monitor);
my $primary = $monitor->safe_psql('pg_autopilot',
	"SELECT node_name FROM pg_autopilot.show_state() WHERE current_state = 'primary'");
my ($p, $s) = $primary eq 'node1' ? ($node1, $node2) : ($node2, $node1);
note "primary: $primary";
ok($p->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'), "$primary is writable");
$p->safe_psql('postgres', 'INSERT INTO t VALUES (2)');
ok($s->poll_query_until('postgres', 'SELECT count(*) = 2 FROM t'), $s->name . " follows $primary");

check_logs_clean($monitor, $node1, $node2);
done_testing();
