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

check_logs_clean($monitor_b, $primary, $copy);
done_testing();
