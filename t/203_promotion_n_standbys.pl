# t/203_promotion_n_standbys.pl — perform_promotion with several standbys
# (issue 4, docs/elections.md "Switchover with N standbys"): node3 is promoted
# although node2 has a higher candidate priority; node2 stays secondary and
# its keeper re-points it at node3 on the new timeline without a rewind; the
# old primary rejoins; a concurrent writer loses nothing; promoting an
# unknown node is refused and changes nothing.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $mon = $monitor->connstr('pg_autopilot');
my ($node1, $node2, $node3) = node_group(
	$monitor, 3,
	node_opts => {
		node2 => { candidate_priority => 90 },
		node3 => { candidate_priority => 50 },
	});

my $before = states_text($monitor);
my ($code, $msg) = psql_error($mon, "SELECT pg_autopilot.perform_promotion('no_such_node')");
is($code, '42704', "promoting an unknown node is refused: $msg");
is(states_text($monitor), $before, 'the refusal changed nothing');

my $uri = formation_uri($monitor);
my $writer = start_writer($uri);
ok(wait_for_writer_acks($writer, 0, 10), 'the writer writes through formation_uri');
my $tli_before = $node2->safe_psql('postgres', 'SELECT received_tli FROM pg_stat_wal_receiver');
my $first_event = max_event_id($monitor);

my $t_promote = Time::HiRes::time();
is($monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.perform_promotion('node3')"),
	't', 'perform_promotion(node3) starts');
wait_for_state($monitor, 'node3', 'primary', 'node3 becomes primary');
wait_for_state($monitor, 'node1', 'secondary', 'the old primary rejoins as secondary');
wait_for_state($monitor, 'node2', 'secondary', 'node2 is secondary');
is($node3->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node3 is writable');
ok(wait_for_writer_acks($writer, $t_promote, 10), 'the writer resumes on node3');

# node2 kept its state and follows node3 on the new timeline.
my @events = events_since($monitor, $first_event);
note "promotion events:\n" . join("\n", @events);
ok(!(grep { /^node2\|/ } @events), 'node2 was not moved by any rule (it stayed secondary)');
ok( $node2->poll_query_until('postgres', "SELECT status || '|' || sender_port FROM pg_stat_wal_receiver",
		'streaming|' . $node3->port),
	'node2 streams from node3');
my $tli_after = $node2->safe_psql('postgres', 'SELECT received_tli FROM pg_stat_wal_receiver');
cmp_ok($tli_after, '>', $tli_before, "node2 follows the new timeline ($tli_before -> $tli_after)");
unlike(slurp_file($node2->logfile), qr/pg_rewind/, 'node2 was not rewound');
ok( $node1->poll_query_until('postgres', "SELECT status || '|' || sender_port FROM pg_stat_wal_receiver",
		'streaming|' . $node3->port),
	'node1 streams from node3');

is($monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.perform_promotion('node3')"),
	'f', 'promoting the primary again returns false');

my @acked = stop_writer($writer);
check_no_loss($_, @acked) foreach ($node3, $node2, $node1);
check_logs_clean($monitor, $node1, $node2, $node3);
done_testing();
