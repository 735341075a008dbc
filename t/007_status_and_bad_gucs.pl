# t/007_status_and_bad_gucs.pl — a node with missing or invalid pg_autopilot
# settings still starts, says what is wrong once in its log and in
# pg_autopilot.status(); LISTEN state on the monitor receives one JSON payload
# per state change while a node joins.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

# keeper_lines: log lines matching $re, without our own logged statements.
sub keeper_lines
{
	my ($node, $re) = @_;
	return grep { /$re/ && /(LOG|WARNING|ERROR|FATAL):\s/ && !/statement: / } split /\n/,
	  slurp_file($node->logfile);
}

my $monitor = new_monitor();

# 1. No pg_autopilot.monitor and no node_name at all.
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_autopilot'\n");
$bare->start;
ok(eval { $bare->wait_for_log(qr/pg_autopilot\.monitor/); 1 }, 'the log names the missing pg_autopilot.monitor');
$bare->safe_psql('postgres', 'CREATE EXTENSION pg_autopilot');
my $err = $bare->safe_psql('postgres', 'SELECT last_error FROM pg_autopilot.status()');
like($err, qr/pg_autopilot\.monitor/, "status() reports the missing setting: $err");
# One complaint per distinct problem, not one per keeper loop.
$bare->safe_psql('postgres', 'SELECT pg_autopilot.status()');
is(scalar(keeper_lines($bare, qr/pg_autopilot\.monitor/)), 1,
	'the missing monitor setting is logged once')
  or diag join("\n", keeper_lines($bare, qr/pg_autopilot\.monitor/));

# 2. Invalid values: a conninfo that does not parse, an out-of-range priority.
my $bad = new_node('bad', $monitor,
	monitor_conninfo => 'this is not a conninfo',
	candidate_priority => 500);
$bad->start;
ok(eval { $bad->wait_for_log(qr/pg_autopilot\.monitor/); 1 }, 'the log names the invalid pg_autopilot.monitor');
ok(scalar(keeper_lines($bad, qr/pg_autopilot\.candidate_priority/)) >= 1,
	'the log names the invalid pg_autopilot.candidate_priority');
$bad->safe_psql('postgres', 'CREATE EXTENSION pg_autopilot');
$err = $bad->safe_psql('postgres', 'SELECT last_error FROM pg_autopilot.status()');
like($err, qr/monitor|conninfo/i, "status() reports the invalid conninfo: $err");
# PostgreSQL itself refuses 500 (range 0..100), keeps the default and only
# logs it; status() names the refused line too (pg_file_settings).
like($err, qr/invalid settings ignored .*pg_autopilot\.candidate_priority = '500' \(.*postgresql\.conf:\d+\)/,
	"status() reports the refused candidate_priority: $err");
is($monitor->safe_psql('pg_autopilot', "SELECT count(*) FROM pg_autopilot.show_state() WHERE node_name = 'bad'"),
	'0', 'a node with invalid settings does not register');

# 3. status() of a healthy node, and LISTEN state on the monitor during a join.
my $listener = $monitor->background_psql('pg_autopilot');
$listener->query_safe('LISTEN state');
my $node1 = new_node('node1', $monitor);
$node1->start;
wait_for_state($monitor, 'node1', 'single', 'node1 becomes single');

# psql prints notifications after the next command; poll with a short
# server-side wait, as poll_query_until does client-side.
my $seen = '';
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
{
	$seen .= $listener->query('SELECT pg_sleep(0.1)');
	last if $seen =~ /"single"/;
}
my @payloads = $seen =~ /Asynchronous notification "state" with payload "(.*)" received from server process/g;
ok(@payloads >= 1, 'LISTEN state received notifications') or diag $seen;
my @decoded = grep { defined } map { my $p = $_; eval { decode_json($p) } } @payloads;
is(scalar(@decoded), scalar(@payloads), 'every payload is JSON');
my @about_node1 = grep { grep { defined && !ref && $_ eq 'node1' } values %$_ } @decoded;
ok(@about_node1 >= 1, 'a payload names node1');
ok((grep { grep { defined && !ref && $_ eq 'single' } values %$_ } @about_node1),
	'a payload carries the single state');
note "payload: $payloads[0]" if @payloads;
$listener->quit;

$node1->safe_psql('postgres', 'CREATE EXTENSION pg_autopilot');
my $status = $node1->safe_psql('postgres',
	"SELECT current_state || '|' || assigned_state || '|' || coalesce(last_error, '') FROM pg_autopilot.status()");
is($status, 'single|single|', 'status() of a healthy node');

check_logs_clean($monitor, $bare, $bad, $node1);
done_testing();
