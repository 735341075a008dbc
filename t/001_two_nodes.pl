# t/001_two_nodes.pl — a monitor and two nodes form an HA group from GUCs
# alone (issue 2, point 3): node1 becomes primary, node2 from a fresh initdb
# clones itself with the same postmaster PID and becomes a synchronous standby.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();

my $node1 = new_node('node1', $monitor);
$node1->start;
wait_for_state($monitor, 'node1', 'single', 'first node becomes single');

my $node2 = new_node('node2', $monitor);
my $port2 = $node2->port;
my $sysid1 = $node1->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
$node2->start;
my $pid_before = postmaster_pid($node2);
ok(defined $pid_before, "node2 postmaster PID before clone: " . ($pid_before // 'none'));

wait_for_state($monitor, 'node2', 'secondary', 'fresh node2 clones itself and reaches secondary');
wait_for_state($monitor, 'node1', 'primary', 'node1 becomes primary');

# The clone swapped node2's data directory under the same postmaster.
is(postmaster_pid($node2), $pid_before, 'node2 postmaster PID is unchanged after the clone');
ok(kill(0, $pid_before), 'that postmaster is alive');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node2 is a standby');
is($node2->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
	$sysid1, 'node2 now holds node1\'s system');
is($node2->safe_psql('postgres', 'SHOW port'), $port2, 'node2 kept its port');
is($node2->safe_psql('postgres', 'SHOW pg_autopilot.node_name'), 'node2', 'node2 kept its node name');
ok(!-e $node2->data_dir . '.clone', 'no clone directory left behind');

# show_state: every row has current = assigned.
is( $monitor->safe_psql('pg_autopilot',
		'SELECT count(*) FROM pg_autopilot.show_state() WHERE current_state = assigned_state'),
	'2',
	'show_state: both nodes have current = assigned');

# Writes through the formation URI reach the primary and appear on the standby.
my $uri = formation_uri($monitor);
like($uri, qr/target_session_attrs=read-write/, "formation_uri is read-write: $uri");
like($uri, qr/127\.0\.0\.1:${\ $node1->port}/, 'formation_uri names node1');
like($uri, qr/127\.0\.0\.1:$port2/, 'formation_uri names node2');
my @acked = write_ids($uri, 1 .. 20);
is(scalar(@acked), 20, 'all 20 writes through formation_uri acknowledged');
is(count_ids($node1), '20', 'rows are on the primary');
# Synchronous replication: acknowledged commits are already flushed on node2;
# replay may lag a little, so wait for it.
ok($node2->poll_query_until('postgres', 'SELECT count(*) FROM ap_writes', '20'),
	'rows written through formation_uri appear on the standby');

# Synchronous replication as computed by the monitor.
my $id2 = node_id_of($monitor, 'node2');
my $ssn = $monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.synchronous_standby_names('default', 0)");
is($ssn, "ANY 1 (pg_autopilot_node_$id2)", 'monitor computes synchronous_standby_names');
is($node1->safe_psql('postgres', 'SHOW synchronous_standby_names'), $ssn,
	'the primary uses the monitor\'s synchronous_standby_names');
is( $node1->safe_psql('postgres', 'SELECT application_name || \'|\' || sync_state FROM pg_stat_replication'),
	"pg_autopilot_node_$id2|quorum",
	'node2 streams as a quorum synchronous standby');

# A replication slot per standby (DESIGN.md §2: pg_autopilot_node_<node_id>):
# the primary holds it, node2 names it and streams through it (the slot's
# active_pid is node2's walsender).
my $slot = "pg_autopilot_node_$id2";
is($node2->safe_psql('postgres', 'SHOW primary_slot_name'), $slot, "node2's primary_slot_name is $slot");
is( $node1->safe_psql('postgres',
		"SELECT slot_type || '|' || NOT temporary FROM pg_replication_slots WHERE slot_name = '$slot'"),
	'physical|true',
	"the primary has the persistent physical slot $slot");
ok( $node1->poll_query_until('postgres',
		"SELECT s.active AND s.active_pid = r.pid FROM pg_replication_slots s, pg_stat_replication r "
		  . "WHERE s.slot_name = '$slot' AND r.application_name = '$slot'"),
	"the slot $slot is active, held by node2's walsender")
  or diag $node1->safe_psql('postgres', 'SELECT * FROM pg_replication_slots');

# Prove that commits wait for node2: freeze its walreceiver, a commit on the
# primary then waits in SyncRep; thaw it and the commit completes.
my $walrcv_pid = $node2->safe_psql('postgres', 'SELECT pid FROM pg_stat_wal_receiver');
ok($walrcv_pid =~ /^\d+$/, "node2 walreceiver pid $walrcv_pid");
kill 'STOP', $walrcv_pid;
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node1->connstr('postgres'), '-c',
		'INSERT INTO ap_writes VALUES (1000)' ],
	'<', \undef, '>', \$out, '2>', \$err,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok( $node1->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'SyncRep'"),
	'a commit on the primary waits for the synchronous standby');
kill 'CONT', $walrcv_pid;
ok(eval { $h->finish; 1 } && $? == 0, 'the commit completes once the standby confirms') or diag "$err $@";
ok($node2->poll_query_until('postgres', 'SELECT count(*) FROM ap_writes WHERE id = 1000', '1'),
	'the waited-for row is on the standby');

# The event log tells the story with rule names.
my $events = show_events_text($monitor, 50);
note "show_events:\n$events";
like($events, qr/node2/, 'show_events mentions node2');
like($events, qr/secondary/, 'show_events records the move to secondary');

check_logs_clean($monitor, $node1, $node2);
done_testing();
