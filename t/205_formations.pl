# t/205_formations.pl — several formations on one monitor (issue 4): a
# second formation "f2" with its own two nodes (pg_autopilot.formation on
# the nodes) forms its own group, URI and state next to the default
# formation; a switchover in one leaves the other alone; creating and
# dropping formations refuses bad requests with a clear error.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $mon = $monitor->connstr('pg_autopilot');

my ($code, $msg) = psql_error($mon, "SELECT pg_autopilot.create_formation('Bad-Name')");
is($code, '22023', "a bad formation name is refused: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.create_formation('f3', -1)");
is($code, '22023', "a negative number_sync_standbys is refused: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.create_formation('default')");
is($code, '42710', "an existing formation is refused: $msg");
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.create_formation('f2')");

my ($node1, $node2) = node_group($monitor, 2);
my ($a1, $a2) = node_group($monitor, 2, formation => 'f2', names => [ 'a1', 'a2' ]);

is($monitor->safe_psql('pg_autopilot', "SELECT string_agg(node_name, ',' ORDER BY node_id) FROM pg_autopilot.show_state()"),
	'node1,node2', 'the default formation has node1 and node2');
is( $monitor->safe_psql('pg_autopilot',
		"SELECT string_agg(node_name || ':' || group_id, ',' ORDER BY node_id) FROM pg_autopilot.show_state('f2')"),
	'a1:0,a2:0', 'formation f2 has its own group 0 with a1 and a2');
my $uri = formation_uri($monitor);
my $uri2 = $monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.formation_uri('f2')");
like($uri2, qr/127\.0\.0\.1:${\ $a1->port},127\.0\.0\.1:${\ $a2->port}\//, "f2's URI names a1 and a2: $uri2");
unlike($uri2, qr/:${\ $node1->port}\b/, 'f2\'s URI does not name node1');
unlike($uri, qr/:${\ $a1->port}\b/, 'the default URI does not name a1');

my ($rc, $out, $err) = psql_timed($uri, 'CREATE TABLE t205 (f text); INSERT INTO t205 VALUES (\'default\')', 60);
is($rc, 0, 'write through the default URI') or diag $err;
($rc, $out, $err) = psql_timed($uri2, 'CREATE TABLE t205 (f text); INSERT INTO t205 VALUES (\'f2\')', 60);
is($rc, 0, 'write through the f2 URI') or diag $err;
is($node1->safe_psql('postgres', 'SELECT string_agg(f, \',\') FROM t205'), 'default', 'node1 has only its formation\'s data');
is($a1->safe_psql('postgres', 'SELECT string_agg(f, \',\') FROM t205'), 'f2', 'a1 has only its formation\'s data');

# A switchover in f2 leaves the default formation alone.
my $default_before = states_text($monitor);
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.perform_switchover('f2')");
wait_for_state_in($monitor, 'f2', 'a2', 'primary', 'a2 becomes primary of f2');
wait_for_state_in($monitor, 'f2', 'a1', 'secondary', 'a1 becomes secondary of f2');
is(states_text($monitor), $default_before, 'the default formation did not change');
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node1 is still the default primary');
($rc, $out, $err) = psql_timed($uri2, 'INSERT INTO t205 VALUES (\'f2 again\')', 60);
is($rc, 0, 'f2 writes go to a2') or diag $err;

# number_sync_standbys is per formation.
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.set_number_sync_standbys(1, 'f2')");
is($code, '55000', "n = 1 with one quorum standby in f2 is refused: $msg");

# Dropping formations.
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.drop_formation('default')");
is($code, '55000', "the default formation cannot be dropped: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.drop_formation('f2')");
is($code, '55000', "a formation with nodes cannot be dropped: $msg");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.drop_formation('no_such_formation')");
is($code, '42704', "an unknown formation cannot be dropped: $msg");
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.create_formation('f3', 0)");
$monitor->safe_psql('pg_autopilot', "SELECT pg_autopilot.drop_formation('f3')");
($code, $msg) = psql_error($mon, "SELECT pg_autopilot.show_state('f3')");
is($code, '42704', "an empty formation is dropped: $msg");

check_logs_clean($monitor, $node1, $node2, $a1, $a2);
done_testing();
