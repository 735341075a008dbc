# t/202_election_kill9.pl — an election (issue 4, docs/elections.md): four
# nodes, node3 with the highest candidate priority, node4 with priority 0.
# node3 is made to lag (its walsender on the primary is stopped while the
# writer goes on, acknowledged by node2 and node4), then the primary's
# postmaster is killed.  Every standby stops and reports its LSN; node3 wins
# on priority, fetches the WAL it lacks from the most advanced standby
# (fast_forward: cascading replication from a standby) and is promoted;
# node2 and node4 rejoin it; node4 never takes part as a candidate; every
# acknowledged id of the writer survives; the old primary comes back fenced,
# is rewound and rejoins.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my ($node1, $node2, $node3, $node4) = node_group(
	$monitor, 4,
	node_opts => {
		node2 => { candidate_priority => 50 },
		node3 => { candidate_priority => 90 },
		node4 => { candidate_priority => 0 },
	});
my ($id2, $id3, $id4) = map { node_id_of($monitor, $_) } qw(node2 node3 node4);
wait_for_sync_names($node1, expected_any_names(1, $id3, $id2, $id4),
	'the primary names every quorum standby, by priority');

my $uri = formation_uri($monitor);
my $writer = start_writer($uri);
ok(wait_for_writer_acks($writer, 0, 10), 'the writer writes through formation_uri');

# Make node3 lag: stop the walsender that serves it.  Commits are still
# acknowledged by node2 or node4 (ANY 1).
my $walsender3 = $node1->safe_psql('postgres',
	"SELECT pid FROM pg_stat_replication WHERE application_name = 'pg_autopilot_node_$id3'");
ok($walsender3 =~ /^\d+$/, "node1's walsender for node3 is $walsender3");
kill 'STOP', $walsender3;
my $t_stop = Time::HiRes::time();
ok(wait_for_writer_acks($writer, $t_stop, 20), 'writes go on while node3 receives nothing');
my $first_event = max_event_id($monitor);

# kill -9 of the primary's postmaster, and of the stopped walsender (it would
# otherwise hold node3's connection and node1's shared memory).
my @old_procs = node_processes($node1);
my $t_kill = Time::HiRes::time();
$node1->kill9;
kill 'KILL', $walsender3;
note "killed node1 at $t_kill";

ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT current_state::text IN ('wait_primary', 'primary') FROM pg_autopilot.show_state() "
		  . "WHERE node_name = 'node3'",
		't'),
	'node3, the highest priority, is elected and promoted')
  or diag show_state_text($monitor) . show_events_text($monitor, 60);
is($node3->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node3 is writable');
wait_for_state($monitor, 'node2', 'secondary', 'node2 rejoins as secondary of node3');
wait_for_state($monitor, 'node4', 'secondary', 'node4 rejoins as secondary of node3');
wait_for_state($monitor, 'node3', 'primary', 'node3 is primary with its standbys back');
ok(wait_for_writer_acks($writer, $t_kill, 10), 'the writer resumes on node3');

my @events = events_since($monitor, $first_event);
note "election events:\n" . join("\n", @events);
foreach my $n (qw(node2 node3 node4))
{
	ok((grep { /^$n\|report_lsn\|/ } @events), "$n stopped and reported its LSN (report_lsn)");
}
ok((grep { /^node3\|fast_forward\|/ } @events), 'node3 lacked WAL and fetched it first (fast_forward)');
ok((grep { /^node3\|prepare_promotion\|/ } @events), 'node3 was the candidate');
ok(!(grep { /^node4\|(fast_forward|prepare_promotion|stop_replication|wait_primary)\|/ } @events),
	'node4 (priority 0) was never a candidate');
ok(!(grep { /^node2\|(fast_forward|prepare_promotion|stop_replication|wait_primary)\|/ } @events),
	'node2 (lower priority) was never a candidate');
ok((grep { /^node2\|join_secondary\|/ } @events), 'node2 joined the new primary (join_secondary)');
ok((grep { /^node4\|join_secondary\|/ } @events), 'node4 joined the new primary (join_secondary)');
like(slurp_file($node3->logfile), qr/fast_forward: fetching WAL from node \d+/, 'node3\'s keeper streamed from a standby');

foreach my $n ($node2, $node4)
{
	ok( $n->poll_query_until('postgres', "SELECT status || '|' || sender_port FROM pg_stat_wal_receiver",
			'streaming|' . $node3->port),
		$n->name . ' streams from node3');
}

# The old primary comes back: fenced, rewound onto node3, then secondary.
ok(wait_processes_gone(@old_procs), 'the children of the killed postmaster have exited');
$node1->start;
wait_for_state($monitor, 'node1', 'secondary', 'the old primary rejoins as secondary');
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node1 is a standby');

my @acked = stop_writer($writer);
my $after_kill = grep { $_->{ok} && $_->{t0} >= $t_kill } writer_results($writer);
ok($after_kill >= 10, "$after_kill writes acknowledged after the kill");
check_no_loss($_, @acked) foreach ($node3, $node2, $node4, $node1);

# The walsender was stopped and killed by the test: the postmaster of node1
# was killed first, so nothing logs its death.
check_logs_clean($monitor, $node1, $node2, $node3, $node4);
done_testing();
