# t/lib/AutopilotTest.pm — helpers for pg_autopilot's TAP tests, on top of
# PostgreSQL::Test::Cluster.
#
# Every server listens on 127.0.0.1 (keepers, the monitor's health checks and
# pg_basebackup reach each other over TCP) and keeps Cluster.pm's private unix
# socket for the test's own psql calls.  Helpers never sleep: they wait with
# poll_query_until / wait_for_log, whose limit is PG_TEST_TIMEOUT_DEFAULT.
package AutopilotTest;

use strict;
use warnings;

use Exporter 'import';
use IO::Socket::INET;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  new_monitor new_node configure_node two_node_group
  monitor_conninfo wait_for_state state_row node_id_of show_state_text show_events_text
  postmaster_pid check_logs_clean formation_uri write_ids count_ids
  black_hole_listener wait_for_black_hole_client psql_timed
);

# Settings that keep several postmasters cheap on a 2-core machine.
my $small_settings = <<'EOC';
shared_buffers = 1MB
max_connections = 30
max_wal_size = 128MB
listen_addresses = '127.0.0.1'
log_min_messages = info
EOC

# TCP access from the loopback: keepers, health checks, peers, replication.
my $hba_lines = <<'EOC';
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
EOC

# new_monitor: an initialised and started monitor with the extension created.
# %opts: name (default 'monitor'), conf (extra postgresql.conf lines).
sub new_monitor
{
	my (%opts) = @_;
	my $monitor = PostgreSQL::Test::Cluster->new($opts{name} // 'monitor');
	$monitor->init;
	$monitor->append_conf('postgresql.conf',
		$small_settings . "shared_preload_libraries = 'pg_autopilot_monitor'\n" . ($opts{conf} // ''));
	$monitor->append_conf('pg_hba.conf', $hba_lines);
	$monitor->start;
	$monitor->safe_psql('postgres', 'CREATE DATABASE pg_autopilot');
	$monitor->safe_psql('pg_autopilot', 'CREATE EXTENSION pg_autopilot_monitor');
	return $monitor;
}

# monitor_conninfo: the pg_autopilot.monitor value keepers use for $monitor.
sub monitor_conninfo
{
	my ($monitor) = @_;
	return 'host=127.0.0.1 port=' . $monitor->port . ' dbname=pg_autopilot user=autopilot_node';
}

# configure_node: append the pg_autopilot settings of DESIGN.md §2.2 and the
# replication settings to an existing data directory (fresh or not).
# %opts: node_name (default the Cluster name), monitor_conninfo (overrides
# $monitor), formation, candidate_priority, replication_quorum, conf (extra lines).
sub configure_node
{
	my ($node, $monitor, %opts) = @_;
	my $node_name = $opts{node_name} // $node->name;
	my $conninfo = $opts{monitor_conninfo} // monitor_conninfo($monitor);
	my $conf = $small_settings . <<"EOC";
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_log_hints = on
shared_preload_libraries = 'pg_autopilot'
pg_autopilot.monitor = '$conninfo'
pg_autopilot.node_name = '$node_name'
pg_autopilot.hostname = '127.0.0.1'
EOC
	$conf .= "pg_autopilot.formation = '$opts{formation}'\n" if defined $opts{formation};
	$conf .= "pg_autopilot.candidate_priority = $opts{candidate_priority}\n"
	  if defined $opts{candidate_priority};
	$conf .= "pg_autopilot.replication_quorum = $opts{replication_quorum}\n"
	  if defined $opts{replication_quorum};
	$conf .= $opts{conf} if defined $opts{conf};
	$node->append_conf('postgresql.conf', $conf);
	$node->append_conf('pg_hba.conf', $hba_lines);
	return $node;
}

# new_node: a fresh initdb (never a copy) configured as a pg_autopilot node,
# not started.  Options as for configure_node.
sub new_node
{
	my ($name, $monitor, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	return configure_node($node, $monitor, %opts);
}

# state_row: "current|assigned" of one node as the monitor sees it.
sub state_row
{
	my ($monitor, $node_name) = @_;
	return $monitor->safe_psql('pg_autopilot',
		"SELECT current_state || '|' || assigned_state FROM pg_autopilot.show_state() "
		  . "WHERE node_name = '$node_name'");
}

sub node_id_of
{
	my ($monitor, $node_name) = @_;
	return $monitor->safe_psql('pg_autopilot',
		"SELECT node_id FROM pg_autopilot.show_state() WHERE node_name = '$node_name'");
}

sub show_state_text
{
	my ($monitor) = @_;
	my ($out, $err);
	$monitor->psql('pg_autopilot', 'SELECT * FROM pg_autopilot.show_state() ORDER BY node_id',
		stdout => \$out, stderr => \$err, extra_params => ['-P', 'footer=off']);
	return ($out // '') . ($err // '');
}

sub show_events_text
{
	my ($monitor, $count) = @_;
	$count //= 30;
	my ($out, $err);
	$monitor->psql('pg_autopilot', "SELECT * FROM pg_autopilot.show_events('default', $count)",
		stdout => \$out, stderr => \$err);
	return ($out // '') . ($err // '');
}

# wait_for_state: wait until the node's current and assigned states are both
# $state (one test result); on timeout, show_state and show_events are printed.
sub wait_for_state
{
	my ($monitor, $node_name, $state, $test_name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ok = $monitor->poll_query_until('pg_autopilot',
		"SELECT current_state || '|' || assigned_state FROM pg_autopilot.show_state() "
		  . "WHERE node_name = '$node_name'",
		"$state|$state");
	ok($ok, $test_name // "$node_name reaches $state");
	if (!$ok)
	{
		diag "show_state:\n" . show_state_text($monitor);
		diag "show_events:\n" . show_events_text($monitor);
	}
	return $ok;
}

# two_node_group: node1 (waits for single), then node2 from a fresh initdb,
# until primary and secondary.  Returns ($node1, $node2).
sub two_node_group
{
	my ($monitor, %opts) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $node1 = new_node($opts{name1} // 'node1', $monitor);
	$node1->start;
	wait_for_state($monitor, $node1->name, 'single');
	my $node2 = new_node($opts{name2} // 'node2', $monitor);
	$node2->start;
	wait_for_state($monitor, $node2->name, 'secondary');
	wait_for_state($monitor, $node1->name, 'primary');
	return ($node1, $node2);
}

# postmaster_pid: the PID recorded in postmaster.pid right now (undef if none).
sub postmaster_pid
{
	my ($node) = @_;
	open my $fh, '<', $node->data_dir . '/postmaster.pid' or return undef;
	my $pid = <$fh>;
	close $fh;
	chomp $pid if defined $pid;
	return $pid;
}

# check_logs_clean: one test per node: its log has no crash marker.
sub check_logs_clean
{
	my (@nodes) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	foreach my $node (@nodes)
	{
		my $log = -f $node->logfile ? slurp_file($node->logfile) : '';
		my @bad = grep { /terminated by signal|TRAP:|PANIC/ } split /\n/, $log;
		ok(!@bad, 'no crash in the log of ' . $node->name)
		  or diag join("\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
	}
	return;
}

sub formation_uri
{
	my ($monitor) = @_;
	return $monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.formation_uri()');
}

# psql_timed: run psql on a connection string with a hard timeout, so a hang
# fails the test instead of the suite.  Returns (exit code or undef on
# timeout, stdout, stderr).
sub psql_timed
{
	my ($connstr, $sql, $timeout) = @_;
	$timeout //= $PostgreSQL::Test::Utils::timeout_default;
	my ($out, $err) = ('', '');
	my $t = IPC::Run::timeout($timeout);
	my $rc;
	eval {
		IPC::Run::run([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $connstr, '-c', $sql ],
			'<', \undef, '>', \$out, '2>', \$err, $t);
		$rc = $? >> 8;
	};
	if ($@)
	{
		$err .= "\n$@";
		return (undef, $out, $err);
	}
	chomp $out;
	return ($rc, $out, $err);
}

# write_ids: the synchronous writer.  Inserts each id in its own transaction
# into table ap_writes (created if needed) through $connstr (usually the
# formation URI) and returns the ids whose commit was acknowledged.
sub write_ids
{
	my ($connstr, @ids) = @_;
	my @acked;
	my ($rc, $out, $err) = psql_timed($connstr, 'CREATE TABLE IF NOT EXISTS ap_writes (id int PRIMARY KEY)');
	diag "create ap_writes: $err" if !defined $rc || $rc != 0;
	foreach my $id (@ids)
	{
		($rc, $out, $err) = psql_timed($connstr, "INSERT INTO ap_writes VALUES ($id)");
		if (defined $rc && $rc == 0)
		{
			push @acked, $id;
		}
		else
		{
			note "write of $id failed: $err";
		}
	}
	return @acked;
}

# count_ids: how many of ap_writes' rows a node holds (via its unix socket).
sub count_ids
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT count(*) FROM ap_writes');
}

# black_hole_listener: a TCP listener on 127.0.0.1 that never answers (the
# kernel completes connects into the backlog).  Returns ($socket, $port).
sub black_hole_listener
{
	my $sock = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Proto => 'tcp',
		Listen => 64,
		ReuseAddr => 1) or die "cannot listen: $!";
	return ($sock, $sock->sockport);
}

# wait_for_black_hole_client: accept one connection (kept open, never
# answered) within the default timeout.  Returns the client socket or undef.
sub wait_for_black_hole_client
{
	my ($sock) = @_;
	$sock->timeout($PostgreSQL::Test::Utils::timeout_default);
	my $client = $sock->accept;
	return $client;
}

1;
