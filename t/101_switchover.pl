# t/101_switchover.pl — switchover there and back (issue 3) under a concurrent
# writer: the old primary is demoted by a clean fast shutdown and a same-PID
# re-exec into a standby, follows the new primary's timeline without
# pg_rewind, the event log names every step of docs/failover.md with its
# rule, LISTEN state sees the transitions, and no acknowledged write is lost.
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
# The node-side proxies need the extension; created on the primary, it
# reaches the standby by replication.
$node1->safe_psql('postgres', 'CREATE EXTENSION pg_autopilot');
ok($node2->poll_query_until('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'pg_autopilot'", '1'),
	'the node extension reached the standby');

my $uri = formation_uri($monitor);
my $writer = start_writer($uri);
ok(wait_for_writer_acks($writer, 0, 5), 'the writer writes through formation_uri');

my $listener = $monitor->background_psql('pg_autopilot');
$listener->set_query_timer_restart();
$listener->query_safe('LISTEN state');

# one_switchover: request a switchover with $call on $caller (a node or the
# monitor), wait for $new to be primary and $old secondary, check the old
# primary's postmaster PID, its upstream and its log.  $first_event is the
# newest event id before the call.
sub one_switchover
{
	my ($caller, $db, $call, $old, $new, $label) = @_;
	my $pid_old = postmaster_pid($old);
	my $log_offset = -s $old->logfile;
	my $first_event = max_event_id($monitor);
	my $t_call = Time::HiRes::time();
	my ($rc, $out, $err) = psql_timed($caller->connstr($db), $call, 60);
	is($rc, 0, "$label: $call on " . $caller->name . ' succeeds') or diag $err;

	wait_for_state($monitor, $new->name, 'primary', "$label: " . $new->name . ' becomes primary');
	wait_for_state($monitor, $old->name, 'secondary', "$label: " . $old->name . ' becomes secondary');

	is(postmaster_pid($old), $pid_old, "$label: " . $old->name . '\'s postmaster PID is unchanged (same-PID re-exec)');
	ok(kill(0, $pid_old), "$label: that postmaster is alive");
	is($old->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', "$label: " . $old->name . ' is a standby');
	is($new->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', "$label: " . $new->name . ' is writable');
	ok( $old->poll_query_until('postgres',
			"SELECT status || '|' || sender_port FROM pg_stat_wal_receiver", 'streaming|' . $new->port),
		"$label: " . $old->name . ' streams from ' . $new->name);
	my $log = slurp_file($old->logfile, $log_offset);
	unlike($log, qr/pg_rewind/i, "$label: no pg_rewind in " . $old->name . '\'s log');
	ok(wait_for_writer_acks($writer, $t_call, 5), "$label: the writer writes after the switchover");

	# The event log tells the story with the rule names of docs/failover.md.
	my @events = events_since($monitor, $first_event);
	note "$label events:\n" . join("\n", @events);
	my ($o, $n) = ($old->name, $new->name);
	foreach my $step (
		[ $o, 'draining',          'switchover' ],
		[ $o, 'demoted',           'switchover_candidate_has_all_wal' ],
		[ $n, 'prepare_promotion', 'switchover_candidate_has_all_wal' ],
		[ $n, 'stop_replication',  'promote_candidate' ],
		[ $n, 'wait_primary',      'candidate_promoted' ],
		[ $o, 'catchingup',        'old_primary_rejoins' ],
		[ $o, 'secondary',         undef ],
		[ $n, 'primary',           undef ])
	{
		my ($who, $state, $rule) = @$step;
		my @hits = grep { /^\Q$who\E\|\Q$state\E\|/ } @events;
		ok(@hits >= 1, "$label: event $who -> $state" . ($rule ? " (rule $rule)" : ''))
		  or diag "events:\n" . join("\n", @events);
		if ($rule && @hits)
		{
			ok((grep { /\|\Q$rule\E$/ } @hits), "$label: $who -> $state carries rule $rule")
			  or diag join("\n", @hits);
		}
	}
	return;
}

# There: requested on the monitor.
one_switchover($monitor, 'pg_autopilot', 'SELECT pg_autopilot.perform_switchover()', $node1, $node2, 'there');
is( $node2->safe_psql('postgres', 'SHOW synchronous_standby_names'),
	'ANY 1 (pg_autopilot_node_' . node_id_of($monitor, 'node1') . ')',
	'the new primary waits for the old one as its synchronous standby');

# Back: requested through the node-side proxy, on the current standby.
one_switchover($node1, 'postgres', 'SELECT pg_autopilot.perform_switchover()', $node2, $node1, 'back');
is(
	$node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node1 is the primary again');

# LISTEN state saw the transitions (payloads are delivered with the next
# command: poll with a short server-side wait, as in t/007).
my $seen = '';
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
{
	$seen .= $listener->query('SELECT pg_sleep(0.1)');
	last if $seen =~ /"draining"/ && $seen =~ /"stop_replication"/;
}
like($seen, qr/"draining"/, 'LISTEN state: a payload carries draining');
like($seen, qr/"stop_replication"/, 'LISTEN state: a payload carries stop_replication');
$listener->quit;

my @acked = stop_writer($writer);
ok(scalar(@acked) >= 20, scalar(@acked) . ' writes acknowledged during two switchovers');
check_no_loss($node1, @acked);
check_no_loss($node2, @acked);

check_logs_clean($monitor, $node1, $node2);
done_testing();
