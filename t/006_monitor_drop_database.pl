# t/006_monitor_drop_database.pl — DROP DATABASE of another database on the
# monitor completes while the health-check worker runs, whether its nodes are
# up, down (refused connections) or a black hole (connect never answers), and
# the worker ends promptly on SIGTERM in the middle of a black-hole connect.
#
# What the DROP DATABASE part proves, on PostgreSQL 15: DROP DATABASE emits a
# ProcSignalBarrier (PROCSIGNAL_BARRIER_SMGRRELEASE) and waits for every
# process that holds a ProcSignal slot.  A slot is taken by ProcSignalInit(),
# called from InitPostgres() (and for auxiliary processes); the health-check
# worker is BGWORKER_SHMEM_ACCESS only and never calls
# BackgroundWorkerInitializeConnection(), so it has no slot and the barrier
# never waits for it.  The barrier does wait for the worker's libpq session to
# the pg_autopilot database (an ordinary backend), so the test shows that the
# worker neither connects to the dropped database nor keeps its session
# from absorbing the barrier (e.g. stuck inside a query), in all three
# situations.  It does not show that the worker itself calls
# CHECK_FOR_INTERRUPTS(): the SIGTERM part does, with health_check_timeout
# raised to 60 s so that a worker blocked in its connect would stay alive
# for most of a minute.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
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

# health_check_process: PID of $mon's health-check worker (by its process
# title; being connection-less it is not in pg_stat_activity), or undef.
sub health_check_process
{
	my ($mon) = @_;
	return titled_process($mon, qr/pg_autopilot health check/);
}

# A synthetic node whose address is a black hole, on a second monitor so the
# real group is not disturbed.  Its probes may wait 60 s for an answer.
my $probe_timeout_secs = 60;
my ($hole, $hole_port) = black_hole_listener();
my $monitor2 = new_monitor(name => 'monitor2',
	conf => "pg_autopilot_monitor.health_check_timeout = '${probe_timeout_secs}s'\n");
$monitor2->safe_psql('pg_autopilot',
	"SELECT * FROM pg_autopilot.register_node('default', 'ghost', '127.0.0.1', $hole_port, 42, 50, true)");
my $client = wait_for_black_hole_client($hole);
my $connected_at = Time::HiRes::time();
ok(defined $client, 'the health-check worker connects to the black-hole node');
drop_scratch($monitor2, 'health check stuck in a connect');

# SIGTERM while the probe still waits for the black hole's answer (its
# deadline is 60 s after the connect): the worker must end within a few
# seconds, not when the probe times out.
my $pm2 = postmaster_pid($monitor2);
my $hc_pid = health_check_process($monitor2);
ok(defined $hc_pid, 'monitor2 runs a health-check worker: pid ' . ($hc_pid // 'none'));
my $prompt_secs = 10;
my $gone_after;
if (defined $hc_pid)
{
	my $t0 = Time::HiRes::time();
	cmp_ok($t0 - $connected_at, '<', $probe_timeout_secs - 2 * $prompt_secs,
		'the probe is still within its 60 s deadline when SIGTERM is sent');
	kill 'TERM', $hc_pid;
	while (kill(0, $hc_pid) && Time::HiRes::time() - $t0 < $probe_timeout_secs + 30)
	{
		Time::HiRes::usleep(50_000);
	}
	$gone_after = Time::HiRes::time() - $t0;
	cmp_ok($gone_after, '<', $prompt_secs,
		sprintf('the health-check worker exits %.1f s after SIGTERM, during its black-hole connect', $gone_after));
}
ok(kill(0, $pm2) && postmaster_pid($monitor2) eq $pm2, 'monitor2\'s postmaster keeps running');
is($monitor2->safe_psql('postgres', 'SELECT 1'), '1', 'monitor2 serves queries');
# bgw_restart_time is 5 s: the postmaster starts a new worker, which probes
# the black hole again.
my $new_hc;
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
{
	$new_hc = health_check_process($monitor2);
	last if defined $new_hc && (!defined $hc_pid || $new_hc != $hc_pid);
	Time::HiRes::usleep(100_000);
}
ok(defined $new_hc && (!defined $hc_pid || $new_hc != $hc_pid),
	'the postmaster starts a new health-check worker: pid ' . ($new_hc // 'none'));
my $client2 = wait_for_black_hole_client($hole);
ok(defined $client2, 'the new worker probes the black-hole node again');
close $client2 if $client2;
close $client if $client;
close $hole;
like(slurp_file($monitor2->logfile), qr/terminating background worker "pg_autopilot health check" due to administrator command/,
	'monitor2\'s log shows the worker ending on SIGTERM');

unlike(slurp_file($monitor->logfile), qr/still waiting for backend/, 'no barrier wait on the monitor');
unlike(slurp_file($monitor2->logfile), qr/still waiting for backend/, 'no barrier wait on monitor2');

check_logs_clean($monitor, $monitor2, $node1, $node2);
done_testing();
