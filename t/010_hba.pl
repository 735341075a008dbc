# t/010_hba.pl — with pg_autopilot.hba_method set, the primary's keeper adds
# pg_hba.conf lines for its group's other nodes ahead of the operator's own
# lines, so a standby can clone and stream from a primary whose pg_hba.conf
# would otherwise reject it (issue 2: "replication role/HBA entries where
# needed").  Without the setting the file is left alone.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $monitor = new_monitor();
my $node1 = new_node('node1', $monitor, conf => "pg_autopilot.hba_method = 'trust'\n");

# An operator pg_hba.conf that lets in local sockets only and rejects TCP.
my $hba = $node1->data_dir . '/pg_hba.conf';
my $operator_hba = "local all all trust\nlocal replication all trust\nhost all all 0.0.0.0/0 reject\n";
open(my $fh, '>', $hba) or die "cannot write $hba: $!";
print $fh $operator_hba;
close $fh;

$node1->start;
wait_for_state($monitor, 'node1', 'single', 'node1 runs as single');
is(slurp_file($hba), $operator_hba, 'a single node has nobody to admit: pg_hba.conf untouched');

my $node2 = new_node('node2', $monitor);
$node2->start;
wait_for_state($monitor, 'node2', 'secondary', 'node2 clones through the managed lines and becomes secondary');
wait_for_state($monitor, 'node1', 'primary', 'node1 becomes primary');

my $content = slurp_file($hba);
my $id2 = node_id_of($monitor, 'node2');
like(
	$content,
	qr/\Ahost replication \S+ 127\.0\.0\.1\/32 trust # pg_autopilot managed \(node $id2\)\n/,
	'the managed replication line for node2 comes first');
like($content, qr/^host all \S+ 127\.0\.0\.1\/32 trust # pg_autopilot managed \(node $id2\)$/m,
	'a database line for node2 (pg_rewind) is there too');
like($content, qr/\Q$operator_hba\E\z/, "the operator's lines follow, unchanged");
is($node1->safe_psql('postgres', 'SELECT count(*) FROM pg_stat_replication'), '1', 'node2 streams from node1');

check_logs_clean($monitor, $node1, $node2);
done_testing();
