# t/004_foreign_datadir.pl — a node whose data directory holds another
# system's user data is never overwritten (DESIGN.md §6.4) and says so; a node
# that is a copy of the primary (same system identifier) joins without cloning.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

# --- Part 1: foreign data directory -------------------------------------
my $monitor = new_monitor(name => 'monitor_a');
my $node1 = new_node('node1', $monitor);
$node1->start;
wait_for_state($monitor, 'node1', 'single', 'node1 becomes single');

# An ordinary cluster with user data, configured as a pg_autopilot node only
# afterwards.
my $foreign = PostgreSQL::Test::Cluster->new('foreign');
$foreign->init;
$foreign->start;
$foreign->safe_psql('postgres', 'CREATE TABLE keepme AS SELECT g AS id FROM generate_series(1, 10) g');
my $foreign_sysid = $foreign->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
$foreign->stop;
configure_node($foreign, $monitor);
$foreign->start;
my $foreign_pid = postmaster_pid($foreign);

# The keeper is assigned to become a standby of node1 but must refuse.
my $refusal = qr/overwrit/i;
ok(eval { $foreign->wait_for_log($refusal); 1 }, 'the log says the node refuses to overwrite its data')
  or diag $@;
$foreign->safe_psql('postgres', 'CREATE EXTENSION pg_autopilot');
my $status_error = $foreign->safe_psql('postgres', 'SELECT last_error FROM pg_autopilot.status()');
like($status_error, $refusal, "status() reports the refusal: $status_error");
is($foreign->safe_psql('postgres', 'SELECT count(*) FROM keepme'), '10', 'the user data is intact');
is($foreign->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
	$foreign_sysid, 'the foreign node kept its own system');
is($foreign->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'the foreign node was not turned into a standby');
is(postmaster_pid($foreign), $foreign_pid, 'the foreign node was not restarted');
isnt(state_row($monitor, 'foreign'), 'secondary|secondary', 'the monitor does not count it as a secondary');
like(state_row($monitor, 'node1'), qr/^(single|wait_primary)\|/, 'node1 does not wait for the foreign node');
my ($rc, undef, $err) = psql_timed($node1->connstr('postgres'), 'CREATE TABLE still_writable AS SELECT 1');
is($rc, 0, 'writes on node1 do not wait for the foreign node') or diag $err;

# A restart runs the pre-start hook: still nothing may be swapped in.
$foreign->restart;
is($foreign->safe_psql('postgres', 'SELECT count(*) FROM keepme'), '10', 'the user data survives a restart');
ok(!-e $foreign->data_dir . '.clone', 'no clone directory next to the foreign node');

check_logs_clean($monitor, $node1, $foreign);
$foreign->stop;
$node1->stop;
$monitor->stop;

# --- Part 2: a copy of the primary joins without cloning ---------------------
my $monitor_b = new_monitor(name => 'monitor_b');
my $primary = new_node('primary_b', $monitor_b);
$primary->start;
wait_for_state($monitor_b, 'primary_b', 'single', 'primary_b becomes single');
$primary->safe_psql('postgres', 'CREATE TABLE before_copy AS SELECT 1 AS id');
$primary->backup('copy_bk');

my $copy = PostgreSQL::Test::Cluster->new('copy');
$copy->init_from_backup($primary, 'copy_bk', has_streaming => 1);
# The backup carries primary_b's settings: only the node name differs (the
# port was already rewritten by init_from_backup).
$copy->append_conf('postgresql.conf', "pg_autopilot.node_name = 'copy'\n");
$copy->start;
my $copy_pid = postmaster_pid($copy);
wait_for_state($monitor_b, 'copy', 'secondary', 'the copy reaches secondary');
wait_for_state($monitor_b, 'primary_b', 'primary', 'primary_b becomes primary');
is(postmaster_pid($copy), $copy_pid, 'the copy was not restarted');
ok(!-e $copy->data_dir . '.autopilot/clone.log', 'no pg_basebackup was run for the copy');
unlike(slurp_file($copy->logfile), qr/pg_basebackup/i, 'the copy\'s log has no clone message');
is($copy->safe_psql('postgres', 'SELECT count(*) FROM before_copy'), '1', 'the copy has the primary\'s data');
is(scalar(write_ids(formation_uri($monitor_b), 1 .. 5)), 5, 'writes through formation_uri');
ok($copy->poll_query_until('postgres', 'SELECT count(*) FROM ap_writes', '5'), 'the copy streams them');

# --- Part 3: a plain copy that started as a primary is re-cloned ----------
# A pg_basebackup of the primary without standby.signal or primary_conninfo
# (init_from_backup without has_streaming) starts as a primary of its own:
# it ends backup recovery and writes an end-of-recovery checkpoint on
# timeline 1 where primary_b's history goes on.  Restarted as a standby it
# would receive the primary's WAL but never replay it ("incorrect
# prev-link"), and pg_rewind sees no timeline fork to repair.  So its keeper,
# finding the primary's system identifier and a server not in recovery,
# re-clones it (keeper.cpp InitStandby) and keeps the old data directory
# aside; the copy then replays the primary's WAL.  Until the keeper acts the
# copy runs as an independent primary: inherent to starting a copy without
# standby.signal, not asserted against here.
my $primary_sysid = $primary->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
$primary->backup('plain_bk');
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init_from_backup($primary, 'plain_bk');
$plain->append_conf('postgresql.conf', "pg_autopilot.node_name = 'plain'\n");
ok(!-e $plain->data_dir . '/standby.signal' && !-e $plain->data_dir . '/recovery.signal',
	'the plain copy has no standby.signal or recovery.signal');
my $plain_conf = slurp_file($plain->data_dir . '/postgresql.conf')
  . (-f $plain->data_dir . '/postgresql.auto.conf' ? slurp_file($plain->data_dir . '/postgresql.auto.conf') : '');
unlike($plain_conf, qr/^\s*primary_conninfo\s*=\s*'[^']/m, 'the plain copy has no primary_conninfo');
$plain->start;
ok( $plain->wait_for_log(qr/pg_autopilot keeper: re-cloning this node from the primary at 127\.0\.0\.1:${\ $primary->port}/),
	'the keeper re-clones the copy that ran as a primary');
like(slurp_file($plain->logfile), qr/is a copy of the primary that was started as a primary/,
	'the log says why it is re-cloned');
wait_for_state($monitor_b, 'plain', 'secondary', 'the re-cloned copy reaches secondary');
is($plain->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the re-cloned copy runs as a standby');
is($plain->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
	$primary_sysid, 'the re-cloned copy has the primary\'s system identifier');
my @aside = glob($plain->data_dir . '.old-*');
is(scalar(@aside), 1, 'the data directory the copy ran with is kept aside (<PGDATA>.old-<time>)');
ok( $plain->poll_query_until('postgres',
		"SELECT status || '|' || sender_port FROM pg_stat_wal_receiver", 'streaming|' . $primary->port),
	'the re-cloned copy streams from primary_b');
$primary->safe_psql('postgres', 'CREATE TABLE after_plain AS SELECT 42 AS id');
my $primary_lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
ok($plain->poll_query_until('postgres', "SELECT pg_last_wal_replay_lsn() >= '$primary_lsn'::pg_lsn"),
	"the re-cloned copy replays the primary's WAL up to $primary_lsn");
is( $plain->safe_psql('postgres',
		"SELECT string_agg(id::text, ',') || '|' || (SELECT count(*) FROM ap_writes) FROM after_plain"),
	'42|5',
	'a table written on the primary appears on the re-cloned copy, with its row');

check_logs_clean($monitor_b, $primary, $copy, $plain);
done_testing();
