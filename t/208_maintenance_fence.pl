# t/208_maintenance_fence.pl — a standby in maintenance serves reads only
# while its history is the primary's (DESIGN.md §6.3, docs/failover.md):
# node3 is in maintenance and streams from primary node1 (reads allowed);
# a switchover makes node2 the primary; node1, now a standby, still feeds
# node3 (cascading), which is no proof that node3 follows the new
# timeline, so node3's keeper raises the login fence.  Once maintenance
# ends node3 follows node2 and the fence comes down.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my ($node1, $node2, $node3) = node_group(
	$monitor, 3,
	node_opts => {
		node2 => { candidate_priority => 90 },
		node3 => { candidate_priority => 10 },
	});

$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.enable_maintenance('node3')");
wait_for_state($monitor, 'node3', 'maintenance', 'node3 is in maintenance');
is($node3->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node3 in maintenance serves reads');

my $offset = -s $node3->logfile;
$monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.perform_switchover()');
wait_for_state($monitor, 'node2', 'primary', 'node2 becomes primary');
wait_for_state($monitor, 'node1', 'secondary', 'node1 rejoins as secondary');
ok( $node3->wait_for_log(qr/login fence up: this standby in maintenance streams from [^ ]+, which is not the group's primary/,
		$offset),
	'node3 raises the login fence while it streams from a node that is not the primary');
# The fence follows the walreceiver: it may come down while node3 has no
# upstream (nothing to serve wrongly then) and goes up again when node3
# streams from node1 once more; wait for a refused login.
my ($refused, $last_err) = (0, '');
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default && !$refused; $i++)
{
	my ($rc, $out, $err) = psql_timed($node3->connstr('postgres'), 'SELECT 1', 10);
	$last_err = $err // '';
	$refused = !(defined $rc && $rc == 0) && $last_err =~ /fence/i;
	Time::HiRes::usleep(100_000) unless $refused;
}
ok($refused, 'a client login to node3 is refused') or diag "last login error: $last_err";

$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.disable_maintenance('node3')");
wait_for_state($monitor, 'node3', 'secondary', 'node3 is secondary again');
ok( $node3->poll_query_until('postgres', "SELECT status || '|' || sender_port FROM pg_stat_wal_receiver",
		'streaming|' . $node2->port),
	'node3 streams from the new primary node2');
is($node3->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node3 serves reads again (fence lifted)');

check_logs_clean($monitor, $node1, $node2, $node3);
$_->stop('fast') for ($node3, $node2, $node1);
$monitor->stop('fast');
done_testing();
