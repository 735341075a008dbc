# t/107_promotion_failover.pl — the other operator requests of issue 3 on a
# healthy two-node group under a concurrent writer: perform_promotion(node)
# makes that standby the primary, perform_failover() moves the primary to
# the other node; each ends with the old primary secondary (same postmaster
# PID, no rewind) and no acknowledged id lost.
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
my $uri = formation_uri($monitor);
my $writer = start_writer($uri);
ok(wait_for_writer_acks($writer, 0, 5), 'the writer writes through formation_uri');

# request: run $sql on the monitor, wait for $new primary and $old secondary.
sub request
{
	my ($sql, $old, $new, $planned) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $pid_old = postmaster_pid($old);
	my $log_offset = -s $old->logfile;
	my $t = Time::HiRes::time();
	my ($rc, $out, $err) = psql_timed($monitor->connstr('pg_autopilot'), $sql, 60);
	is($rc, 0, "$sql is accepted") or diag $err;
	note "$sql returned '$out'";
	wait_for_state($monitor, $new->name, 'primary', "$sql: " . $new->name . ' becomes primary');
	wait_for_state($monitor, $old->name, 'secondary', "$sql: " . $old->name . ' becomes secondary');
	is($new->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', "$sql: " . $new->name . ' is writable');
	if ($planned)
	{
		is(postmaster_pid($old), $pid_old, "$sql: " . $old->name . ' kept its postmaster PID');
		unlike(slurp_file($old->logfile, $log_offset), qr/pg_rewind/i, "$sql: no pg_rewind on " . $old->name);
	}
	ok(wait_for_writer_acks($writer, $t, 5), "$sql: writes continue");
	return;
}

request("SELECT pg_autopilot.perform_promotion('node2')", $node1, $node2, 1);
request('SELECT pg_autopilot.perform_failover()', $node2, $node1, 0);

my @acked = stop_writer($writer);
check_no_loss($node1, @acked);
check_no_loss($node2, @acked);

check_logs_clean($monitor, $node1, $node2);
done_testing();
