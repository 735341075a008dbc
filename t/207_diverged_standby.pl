# t/207_diverged_standby.pl — a standby left out of an election that received
# WAL from the old primary beyond the point where the winner forked its
# timeline is detected, fenced and rewound (src/bgworker/diverged.cpp,
# DESIGN.md §6.3, §6.5).
#
# Three nodes: node1 primary, node2 (priority 90, quorum), node3 (priority 10,
# replication_quorum off, so the primary runs ANY 1 (node2)).  node3's keeper
# is frozen (SIGSTOP): the monitor sees it unhealthy and leaves it out of the
# election, while its walreceiver keeps streaming from node1.  Then node1's
# keeper is frozen: node1 stops reporting, node2 is elected (its stopped
# walreceiver proves that node1 can acknowledge no commit) and promoted on
# timeline 2.  node1 itself still runs writable (its keeper cannot fence it):
# rows committed there with synchronous_commit = local reach node3 only, so
# node3 holds WAL on timeline 1 beyond node2's fork point.  When node3's
# keeper resumes and follows node2, its walreceiver cannot leave timeline 1;
# the keeper asks node2 for its timeline history over a replication
# connection, finds node3 ahead of the switch point, raises the login fence
# and rewinds node3 onto node2, after which it streams on timeline 2, lacks
# the diverged rows, serves logins again and becomes secondary.  node1 then
# resumes and is rewound as an old primary: the group is whole.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my ($node1, $node2, $node3) = node_group(
	$monitor, 3,
	node_opts => {
		node2 => { candidate_priority => 90 },
		node3 => { candidate_priority => 10, replication_quorum => 'off' },
	});
my $id2 = node_id_of($monitor, 'node2');
wait_for_sync_names($node1, expected_any_names(1, $id2), 'node1 waits for node2 only (node3 is not in the quorum)');

$node1->safe_psql('postgres', 'CREATE TABLE diverge_t (id int PRIMARY KEY); INSERT INTO diverge_t SELECT generate_series(1, 100)');
foreach my $n ($node2, $node3)
{
	ok($n->poll_query_until('postgres', 'SELECT count(*) FROM diverge_t', '100'), $n->name . ' has the first rows');
}

# Leave node3 out of the election: its keeper stops reporting, its
# walreceiver goes on streaming from node1.
my $keeper3 = keeper_process($node3);
ok(defined $keeper3, "node3's keeper runs (PID " . ($keeper3 // 'none') . ')');
kill 'STOP', $keeper3;
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT reachable FROM pg_autopilot.show_state() WHERE node_name = 'node3'", 'f'),
	'the monitor sees node3 as unhealthy');

# node1 stops reporting: node2 is elected and promoted.
my $keeper1 = keeper_process($node1);
ok(defined $keeper1, "node1's keeper runs (PID " . ($keeper1 // 'none') . ')');
kill 'STOP', $keeper1;
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT current_state::text IN ('wait_primary', 'primary') FROM pg_autopilot.show_state() "
		  . "WHERE node_name = 'node2'",
		't'),
	'node2 is elected and promoted')
  or diag show_state_text($monitor) . show_events_text($monitor, 40);
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node2 is writable');
my $tli2 = $node2->safe_psql('postgres', 'SELECT timeline_id FROM pg_control_checkpoint()');
is($tli2, '2', 'node2 runs timeline 2');

# node1 still writes (its keeper is frozen): node3 receives it, node2 forked before.
$node1->safe_psql('postgres',
	'SET synchronous_commit = local; INSERT INTO diverge_t SELECT generate_series(1001, 1100)');
ok($node3->poll_query_until('postgres', 'SELECT count(*) FROM diverge_t WHERE id > 1000', '100'),
	'node3 replayed rows that only node1 wrote after the fork');
is($node2->safe_psql('postgres', 'SELECT count(*) FROM diverge_t WHERE id > 1000'), '0',
	'node2 (the new primary) lacks them');
my $tli3 = $node3->safe_psql('postgres', 'SELECT received_tli FROM pg_stat_wal_receiver');
is($tli3, '1', 'node3 streams timeline 1 from node1');

# node3's keeper resumes: it follows node2, cannot, and is found diverged.
my $offset3 = -s $node3->logfile;
kill 'CONT', $keeper3;
my $diverged_re =
  qr/this standby has diverged from the primary: it (received|replayed) WAL up to [0-9A-F]+\/[0-9A-F]+ on timeline 1, but the primary's timeline 2 left timeline 1 at [0-9A-F]+\/[0-9A-F]+/;
ok($node3->wait_for_log($diverged_re, $offset3), 'node3\'s keeper finds it diverged (timeline history of node2)');
my ($rc, $out, $err) = psql_timed($node3->connstr('postgres'), 'SELECT count(*) FROM diverge_t WHERE id > 1000', 30);
ok(!defined $rc || $rc != 0, 'once found diverged, node3 refuses logins (fenced or shutting down for the rewind)')
  or diag "node3 answered: $out";

wait_for_state($monitor, 'node3', 'secondary', 'node3 is secondary again after the rewind');
my $log3 = substr(slurp_file($node3->logfile), $offset3);
my $p_detect = index($log3, 'this standby has diverged from the primary');
my $p_fence = index($log3, 'login fence up: this standby has diverged');
my $p_rewind = index($log3, 'pg_autopilot: pg_rewind succeeded');
my $p_lift = index($log3, 'login fence lifted: this standby streams from the primary');
ok($p_fence > $p_detect && $p_detect >= 0, 'the login fence went up when the divergence was detected');
ok($p_rewind > $p_fence, 'node3 was rewound with pg_rewind (pre-start hook) after the fence went up');
ok($p_lift > $p_rewind, 'the fence was lifted only after the rewind, once node3 streamed again');
ok($node3->poll_query_until('postgres', 'SELECT received_tli FROM pg_stat_wal_receiver', $tli2),
	'node3 streams timeline 2 from node2');
is($node3->safe_psql('postgres', 'SELECT count(*) FROM diverge_t WHERE id > 1000'), '0',
	'node3 no longer holds the diverged rows');
$node2->safe_psql('postgres', 'INSERT INTO diverge_t VALUES (2000)');
ok($node3->poll_query_until('postgres', 'SELECT count(*) FROM diverge_t WHERE id = 2000', '1'),
	'node3 replays what node2 writes');

# node1 resumes: an old primary, rewound onto node2 by the existing path.
kill 'CONT', $keeper1;
wait_for_state($monitor, 'node1', 'secondary', 'node1 rejoins as secondary');
wait_for_state($monitor, 'node2', 'primary', 'node2 is primary: the group is whole');
is($node1->safe_psql('postgres', 'SELECT count(*) FROM diverge_t WHERE id > 1000'), '1',
	'node1 lost its diverged rows too');

check_logs_clean($monitor, $node1, $node2, $node3);
done_testing();
