# t/003_standby_loss.pl — the standby goes away: the primary moves to
# wait_primary and writes keep flowing; the standby comes back: secondary and
# primary again, with every row written meanwhile.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my ($node1, $node2) = two_node_group($monitor);
my $uri = formation_uri($monitor);
is(scalar(write_ids($uri, 1 .. 10)), 10, 'writes with both nodes up');

$node2->stop('fast');
wait_for_state($monitor, 'node1', 'wait_primary', 'primary without its standby goes to wait_primary');
is($node1->safe_psql('postgres', 'SHOW synchronous_standby_names'), '',
	'wait_primary does not wait for a standby');

# A hang here would mean commits still wait for the lost standby: psql_timed
# turns it into a failure instead of a stuck suite.
my ($rc, $out, $err) = psql_timed($node1->connstr('postgres'), 'INSERT INTO ap_writes VALUES (11)');
is($rc, 0, 'a write on the primary completes while the standby is down') or diag $err;
is(scalar(write_ids($uri, 12 .. 20)), 9, 'writes through formation_uri complete too');

$node2->start;
wait_for_state($monitor, 'node2', 'secondary', 'standby comes back as secondary');
wait_for_state($monitor, 'node1', 'primary', 'primary is primary again');
ok($node2->poll_query_until('postgres', 'SELECT count(*) FROM ap_writes', '20'),
	'standby has the rows written while it was down');
my $id2 = node_id_of($monitor, 'node2');
is($node1->safe_psql('postgres', 'SHOW synchronous_standby_names'),
	"ANY 1 (pg_autopilot_node_$id2)", 'synchronous replication is back');

check_logs_clean($monitor, $node1, $node2);
done_testing();
