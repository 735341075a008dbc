# t/006_monitor_drop_database.pl — DROP DATABASE of another database on the
# monitor completes while the health-check worker runs (it must absorb the
# ProcSignalBarrier: CHECK_FOR_INTERRUPTS() in every loop), whether its nodes
# are up, down (refused connections) or a black hole (connect never answers).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();

# drop_scratch: create and drop a database with a hard timeout.
sub drop_scratch
{
	my ($mon, $name) = @_;
	$mon->safe_psql('postgres', 'CREATE DATABASE scratch');
	my ($rc, $out, $err) = psql_timed($mon->connstr('postgres'), 'DROP DATABASE scratch');
	is($rc, 0, "DROP DATABASE completes: $name") or diag $err;
	return;
}

my ($node1, $node2) = two_node_group($monitor);
ok( $monitor->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = 'pg_autopilot' "
		  . "AND application_name = 'pg_autopilot health check'"),
	'the health-check worker runs (its session on the monitor database)');
drop_scratch($monitor, 'two healthy nodes');

$node2->stop('fast');
drop_scratch($monitor, 'one node down');
$node2->start;
wait_for_state($monitor, 'node2', 'secondary', 'node2 is back');

# A synthetic node whose address is a black hole, on a second monitor so the
# real group is not disturbed.
my ($hole, $hole_port) = black_hole_listener();
my $monitor2 = new_monitor(name => 'monitor2');
$monitor2->safe_psql('pg_autopilot',
	"SELECT * FROM pg_autopilot.register_node('default', 'ghost', '127.0.0.1', $hole_port, 42, 50, true)");
my $client = wait_for_black_hole_client($hole);
ok(defined $client, 'the health-check worker connects to the black-hole node');
drop_scratch($monitor2, 'health check stuck in a connect');
close $client if $client;
close $hole;

unlike(slurp_file($monitor->logfile), qr/still waiting for backend/, 'no barrier wait on the monitor');
unlike(slurp_file($monitor2->logfile), qr/still waiting for backend/, 'no barrier wait on monitor2');

check_logs_clean($monitor, $monitor2, $node1, $node2);
done_testing();
