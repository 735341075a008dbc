# t/012_monitor_tcp_only.pl — a monitor without a Unix socket that listens
# only on one address (here 127.0.0.2, still loopback) is reached by its own
# health-check worker: it connects to the first listen_addresses entry, not
# to "localhost".  Found by the netns fault campaign: a monitor listening on
# its LAN address only never probed, and a kill -9 of a primary was noticed
# only after node_timeout.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

my $addr = '127.0.0.2';
my $monitor = PostgreSQL::Test::Cluster->new('monitor');
$monitor->init;
$monitor->append_conf('postgresql.conf', <<"EOC");
shared_buffers = 1MB
max_connections = 30
listen_addresses = '$addr'
unix_socket_directories = ''
shared_preload_libraries = 'pg_autopilot_monitor'
EOC
$monitor->append_conf('pg_hba.conf', "host all all 127.0.0.0/8 trust\n");
# The test framework reaches this server over TCP from now on.
$monitor->{_host} = $addr;
$monitor->start;
$monitor->safe_psql('postgres', 'CREATE DATABASE pg_autopilot');
$monitor->safe_psql('pg_autopilot', 'CREATE EXTENSION pg_autopilot_monitor');

ok( $monitor->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = 'pg_autopilot' "
		  . "AND application_name = 'pg_autopilot health check'"),
	'the health-check worker has its session on the monitor database over TCP');
# (Before CREATE DATABASE it may log once that the database does not
# exist: that is a server answering, not an address problem.)
unlike(slurp_file($monitor->logfile),
	qr/cannot connect to monitor database.*(Connection refused|No such file|could not translate)/,
	'the health-check worker never failed to reach its own server');

# A node: its refused probe (postmaster gone) is seen by the health checks,
# i.e. the worker probes at all.
my $conninfo = "host=$addr port=" . $monitor->port . ' dbname=pg_autopilot user=autopilot_node';
my $node1 = new_node('node1', $monitor, monitor_conninfo => $conninfo);
$node1->start;
wait_for_state($monitor, 'node1', 'single', 'node1 runs as single');
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT health_check_time IS NOT NULL FROM pg_autopilot.node WHERE node_name = 'node1'"),
	'the health-check worker probed node1');

$node1->stop('fast');
check_logs_clean($monitor, $node1);
$monitor->stop('fast');
done_testing();
