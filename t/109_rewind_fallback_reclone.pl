# t/109_rewind_fallback_reclone.pl — the rewind of a diverged old primary
# falls back to a re-clone (issue 3, docs/failover.md "The old primary comes
# back").  node1 runs with wal_log_hints = off and no data checksums, so
# pg_rewind must refuse it.  After kill -9 of node1 under a concurrent writer
# node2 is promoted; node1, restarted, comes back fenced, its pre-start hook's
# pg_rewind fails, it starts fenced as a standby without upstream, the keeper
# re-clones it from node2 (node-local configuration kept) and it reaches
# secondary.  Its postmaster keeps one PID from its restart to the end, it
# never serves a client as a writable node, and no acknowledged id is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
# wal_log_hints is set on by configure_node; the later line wins.
my $node1 = new_node('node1', $monitor, conf => "wal_log_hints = off\n");
$node1->start;
wait_for_state($monitor, 'node1', 'single');
my $node2 = new_node('node2', $monitor);
$node2->start;
wait_for_state($monitor, 'node2', 'secondary');
wait_for_state($monitor, 'node1', 'primary');
is($node1->safe_psql('postgres', 'SHOW wal_log_hints'), 'off', 'node1 runs with wal_log_hints = off');
is($node1->safe_psql('postgres', 'SHOW data_checksums'), 'off', 'node1 has no data checksums');
is($node2->safe_psql('postgres', 'SHOW wal_log_hints'), 'on',
	'node2 kept its own wal_log_hints = on through its clone of node1');

my $uri = formation_uri($monitor);
my $writer = start_writer($uri);
ok(wait_for_writer_acks($writer, 0, 10), 'the writer writes through formation_uri');

my @old_procs = node_processes($node1);
my $t_kill = Time::HiRes::time();
$node1->kill9;
note 'killed postmaster ' . $old_procs[0] . ' of node1';

wait_for_state($monitor, 'node2', 'wait_primary', 'node2 is promoted (wait_primary: its standby is gone)');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node2 is writable');
ok(wait_for_writer_acks($writer, $t_kill, 10), 'the writer resumes on node2 after the kill');
ok(wait_processes_gone(@old_procs), 'the children of the killed postmaster have exited');

# Restart node1: it comes back fenced, cannot be rewound, is re-cloned.
my $log_offset = -s $node1->logfile;
$node1->start;
my $pid1 = postmaster_pid($node1);
note "node1 restarted, postmaster $pid1";
my %pids = ($pid1 => 1);
my ($fence_seen, $served_writable, $last_err) = (0, 0, '');
my $max_attempts = 10 * $PostgreSQL::Test::Utils::timeout_default;
for (my $i = 0; $i < $max_attempts; $i++)
{
	my $pid = postmaster_pid($node1);
	$pids{$pid} = 1 if defined $pid;
	my ($rc, $out, $err) = psql_timed($node1->connstr('postgres'), 'SELECT pg_is_in_recovery()', 10);
	if (defined $rc && $rc == 0)
	{
		$served_writable = 1 if $out eq 'f';
		last if $out eq 't' && state_row($monitor, 'node1') eq 'secondary|secondary';
	}
	else
	{
		$last_err = $err // '';
		$fence_seen = 1 if $last_err =~ /fenced/;
	}
	Time::HiRes::usleep(100_000);
}
wait_for_state($monitor, 'node1', 'secondary', 'the old primary rejoins as secondary');
wait_for_state($monitor, 'node2', 'primary', 'node2 is primary with its standby back');
ok(!$served_writable, 'the restarted old primary never served a client as a writable node');
note 'a client login was ' . ($fence_seen ? '' : 'never ') . 'seen refused by the fence';
is(join(' ', sort keys %pids), $pid1, "node1's postmaster kept PID $pid1 from its restart to secondary");
is(postmaster_pid($node1), $pid1, 'and still has it');

my $log = slurp_file($node1->logfile, $log_offset);
like($log, qr/WARNING:  pg_autopilot keeper: neither wal_log_hints nor data checksums are on/,
	'the keeper warns that node1 cannot be rewound');
like($log, qr/pg_autopilot: running pg_rewind on ".*" from the new primary/, 'the pre-start hook runs pg_rewind');
like($log,
	qr/WARNING:  pg_autopilot: pg_rewind of ".*" failed: exit code \d+ after \d+ ms: .*target server needs to use either data checksums or "wal_log_hints = on"/,
	'pg_rewind fails: wal_log_hints is off');
like($log, qr/pg_autopilot: re-executing postmaster $pid1 as a standby without upstream/,
	'after the failed rewind the same postmaster re-executes as a standby without upstream');
like($log, qr/pg_autopilot keeper: re-cloning this node from the primary at 127\.0\.0\.1:${\ $node2->port}/,
	'the keeper re-clones node1 from node2');
like($log, qr/pg_autopilot: clone swapped in; re-executing postmaster $pid1 /,
	'the clone is swapped in by the same postmaster');
unlike($log, qr/pg_rewind succeeded/, 'no rewind succeeded');
note 'node1 log lines of the rejoin:' . "\n"
  . join("\n", grep { /pg_autopilot|fence|rewind|clone/i && !/FATAL|DETAIL|HINT/ } split /\n/, $log);

is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node1 is a standby');
is($node1->safe_psql('postgres', 'SHOW wal_log_hints'), 'off',
	'node1 kept its node-local configuration (wal_log_hints = off) through the re-clone');
ok( $node1->poll_query_until('postgres', "SELECT status || '|' || sender_port FROM pg_stat_wal_receiver",
		'streaming|' . $node2->port),
	'node1 streams from node2');
is( $node1->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
	$node2->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
	'node1 is a copy of the same database system');

my @acked = stop_writer($writer);
my $after_kill = grep { $_->{ok} && $_->{t0} >= $t_kill } writer_results($writer);
ok($after_kill >= 10, "$after_kill writes acknowledged after the kill");
check_no_loss($node2, @acked);
check_no_loss($node1, @acked);
# node1 holds exactly node2's rows once it has replayed everything: no write
# of its own (diverged or not) survived the re-clone.
my $lsn = $node2->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
ok($node1->poll_query_until('postgres', "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn"),
	'node1 has replayed node2\'s WAL');
is($node1->safe_psql('postgres', 'SELECT count(*) FROM ap_writer'),
	$node2->safe_psql('postgres', 'SELECT count(*) FROM ap_writer'),
	'node1 holds the same rows as node2');

# As in t/102: the killed postmaster logs no crash marker, nor does the
# failed rewind.
check_logs_clean($monitor, $node1, $node2);
done_testing();
