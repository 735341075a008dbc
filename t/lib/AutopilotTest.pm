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

use Cwd ();
use Exporter 'import';
use IO::Socket::INET;
use IPC::Run;
use JSON::PP;
use Time::HiRes ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  new_monitor new_node configure_node two_node_group
  monitor_conninfo wait_for_state state_row node_id_of show_state_text show_events_text
  postmaster_pid check_logs_clean formation_uri write_ids count_ids
  black_hole_listener wait_for_black_hole_client psql_timed
  start_writer stop_writer writer_results wait_for_writer_acks check_no_loss
  psql_error node_processes freeze_node thaw_node wait_processes_gone
  check_log_clean_except events_since max_event_id states_text
  node_group wait_for_state_in state_row_in wait_for_sync_names expected_any_names
  wait_for_assigned_in events_since_in keeper_process titled_process
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

# ---------------------------------------------------------------------------
# The concurrent writer (issue 3).
#
# start_writer runs a separate perl process (not a fork of the test: a forked
# test would run Cluster.pm's END block and stop the nodes) that inserts
# increasing ids into table ap_writer, one psql per insert (each a new
# connection through the URI, so it follows the primary), and appends one
# line per attempt to a file:
#   ack  <id> <start> <end>            the commit was acknowledged
#   fail <id> <start> <end> <error>    refused, failed or timed out
# An id is never reused, so a failed attempt whose commit happened anyway
# never collides.  The writer stops by itself after max_secs (default 120),
# when the stop file appears, on SIGTERM or when the test process is gone.  After a failure it pauses
# 50 ms, after a success `pause` seconds (default 0.02): enough load to see
# every gap, little enough for a 2-core machine running three servers.
# ---------------------------------------------------------------------------

my $writer_code = <<'EOP';
use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(time);
my ($uri, $file, $stopfile, $max_secs, $start_id, $pause, $attempt_timeout) = @ARGV;
open my $fh, '>>', $file or die "cannot open $file: $!";
$fh->autoflush(1);
my $stop = 0;
$SIG{TERM} = sub { $stop = 1 };
my $deadline = time + $max_secs;
my $id = $start_id;
my $parent = getppid();
# Stops with the test even when the test dies without stopping it.
while (!$stop && time < $deadline && !-e $stopfile && getppid() == $parent)
{
	my ($out, $err) = ('', '');
	my $t0 = time;
	my $ok = eval {
		IPC::Run::run([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $uri, '-c',
				"INSERT INTO ap_writer (id) VALUES ($id)" ],
			'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout($attempt_timeout));
	};
	my $rc = $?;
	my $t1 = time;
	if ($ok && $rc == 0)
	{
		printf $fh "ack %d %.6f %.6f\n", $id, $t0, $t1;
		select(undef, undef, undef, $pause) if $pause > 0;
	}
	else
	{
		my $why = $@ ? "timeout: $@" : $err;
		$why =~ s/\s+/ /g;
		printf $fh "fail %d %.6f %.6f %s\n", $id, $t0, $t1, substr($why, 0, 300);
		select(undef, undef, undef, 0.05);
	}
	$id++;
}
close $fh;
EOP

my $last_writer;

# start_writer: create ap_writer through $uri and start the writer.  %opts:
# max_secs (120), start_id (1), pause (0.02), attempt_timeout (5 s: bounds a
# commit stuck waiting for a lost synchronous standby), connect_timeout (2:
# appended to the URI, bounds a connect to a frozen node).  Returns a handle
# (also remembered for stop_writer without argument).
sub start_writer
{
	my ($uri, %opts) = @_;
	my $connect_timeout = $opts{connect_timeout} // 2;
	my $wuri = $uri . ($uri =~ /\?/ ? '&' : '?') . "connect_timeout=$connect_timeout";
	my ($rc, $out, $err) =
	  psql_timed($uri, 'CREATE TABLE IF NOT EXISTS ap_writer (id int PRIMARY KEY, t timestamptz DEFAULT clock_timestamp())');
	die "cannot create ap_writer through $uri: $err" if !defined $rc || $rc != 0;
	my $dir = Cwd::abs_path($PostgreSQL::Test::Utils::tmp_check);
	my $tag = sprintf('%d_%d', $$, int(Time::HiRes::time() * 1000));
	my $w = {
		file => "$dir/writer_$tag.log",
		stopfile => "$dir/writer_$tag.stop",
		uri => $wuri,
		started => Time::HiRes::time(),
	};
	unlink $w->{file}, $w->{stopfile};
	open my $fh, '>', $w->{file} or die "cannot create $w->{file}: $!";
	close $fh;
	$w->{h} = IPC::Run::start(
		[ $^X, '-e', $writer_code, $wuri, $w->{file}, $w->{stopfile}, $opts{max_secs} // 120,
			$opts{start_id} // 1, $opts{pause} // 0.02, $opts{attempt_timeout} // 5 ],
		'<', \undef, '>', \my $wout, '2>', \my $werr);
	$w->{out} = \$wout;
	$w->{err} = \$werr;
	note "writer started through $wuri, log $w->{file}";
	$last_writer = $w;
	return $w;
}

# writer_results: the writer's attempts so far, as a list of hashes
# { ok => 0|1, id, t0, t1, error }.
sub writer_results
{
	my ($w) = @_;
	$w //= $last_writer;
	my @res;
	open my $fh, '<', $w->{file} or return ();
	while (my $line = <$fh>)
	{
		chomp $line;
		# A line being written right now may be incomplete: skip it.
		next unless $line =~ /^(ack|fail) (\d+) ([\d.]+) ([\d.]+)(?: (.*))?$/;
		push @res, { ok => ($1 eq 'ack' ? 1 : 0), id => $2, t0 => $3, t1 => $4, error => $5 // '' };
	}
	close $fh;
	return @res;
}

# wait_for_writer_acks: wait until the writer has $n acknowledged writes that
# started at or after time $after (Time::HiRes epoch seconds).  Polls the log
# every 100 ms like poll_query_until, for at most PG_TEST_TIMEOUT_DEFAULT.
# Returns true on success.
sub wait_for_writer_acks
{
	my ($w, $after, $n) = @_;
	$w //= $last_writer;
	$n //= 1;
	my $max_attempts = 10 * $PostgreSQL::Test::Utils::timeout_default;
	for (my $i = 0; $i < $max_attempts; $i++)
	{
		my $got = grep { $_->{ok} && $_->{t0} >= $after } writer_results($w);
		return 1 if $got >= $n;
		if (!$w->{h}->pumpable)
		{
			diag "the writer has stopped: " . ${ $w->{err} };
			return 0;
		}
		Time::HiRes::usleep(100_000);
	}
	my @last = (writer_results($w))[-5 .. -1];
	diag 'last writer attempts: ' . join("\n", map { defined $_ ? "$_->{ok} $_->{id} $_->{error}" : () } @last);
	return 0;
}

# stop_writer: stop the writer (stop file, then SIGTERM and SIGKILL if it does
# not finish in time) and return the acknowledged ids in order.
sub stop_writer
{
	my ($w) = @_;
	$w //= $last_writer;
	if (!$w->{stopped})
	{
		open my $fh, '>', $w->{stopfile};
		close $fh if $fh;
		# The current attempt ends within attempt_timeout + a little.
		my $ok = eval { $w->{h}->finish(IPC::Run::timeout(30)); 1 };
		if (!$ok)
		{
			diag "writer did not stop by itself: $@";
			$w->{h}->kill_kill(grace => 5);
		}
		$w->{stopped} = 1;
		diag 'writer stderr: ' . ${ $w->{err} } if ${ $w->{err} } ne '';
	}
	my @res = writer_results($w);
	my $acked = grep { $_->{ok} } @res;
	note sprintf('writer: %d attempts, %d acknowledged, %d failed', scalar(@res), $acked, @res - $acked);
	return map { $_->{id} } grep { $_->{ok} } @res;
}

# check_no_loss: one test: every id in @acked is in $node's ap_writer.  Waits
# for the node to show all of them (a standby may still be replaying), then
# lists the missing ids on failure.
sub check_no_loss
{
	my ($node, @acked) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $n = scalar @acked;
	if ($n == 0)
	{
		fail('check_no_loss on ' . $node->name . ': the writer acknowledged nothing');
		return 0;
	}
	my $arr = "'{" . join(',', @acked) . "}'::int[]";
	my $query = "SELECT count(*) FROM ap_writer WHERE id = ANY ($arr)";
	my $ok = $node->poll_query_until('postgres', $query, $n);
	ok($ok, 'all ' . $n . ' acknowledged ids are on ' . $node->name);
	if (!$ok)
	{
		my ($rc, $out, $err) = psql_timed($node->connstr('postgres'),
			"SELECT string_agg(a::text, ',') FROM unnest($arr) a WHERE NOT EXISTS (SELECT 1 FROM ap_writer w WHERE w.id = a)",
			60);
		diag 'missing acknowledged ids: ' . ($out // '') . ($err // '');
	}
	return $ok;
}

# psql_error: run $sql on $connstr (verbose errors) with a timeout.  Returns
# (sqlstate, message) of the first ERROR, ('', stdout) when it succeeded, or
# (undef, stderr) when psql timed out or could not connect.
sub psql_error
{
	my ($connstr, $sql, $timeout) = @_;
	$timeout //= $PostgreSQL::Test::Utils::timeout_default;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run(
			[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d', $connstr, '-c', $sql ],
			'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
		1;
	};
	return (undef, "timeout: $@ $err") if !$ok;
	chomp $out;
	return ('', $out) if $? == 0;
	return ($1, $2) if $err =~ /ERROR:\s+([0-9A-Z]{5}):\s+(.*)/;
	return (undef, $err);
}

# node_processes: the postmaster of $node (from postmaster.pid) and all its
# descendants, from a /proc scan; postmaster first.
sub node_processes
{
	my ($node, $pm) = @_;
	$pm //= postmaster_pid($node);
	return () unless defined $pm && kill(0, $pm);
	my %children;
	opendir my $dh, '/proc' or die "cannot read /proc: $!";
	foreach my $pid (grep { /^\d+$/ } readdir $dh)
	{
		open my $fh, '<', "/proc/$pid/stat" or next;
		my $stat = <$fh>;
		close $fh;
		next unless defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/;
		push @{ $children{$1} }, $pid;
	}
	closedir $dh;
	my @all = ($pm);
	for (my $i = 0; $i < @all; $i++)
	{
		push @all, @{ $children{ $all[$i] } // [] };
	}
	return @all;
}

# keeper_process: PID of $node's keeper background worker (undef when none
# runs), found among the postmaster's children by its process title.
sub keeper_process
{
	my ($node) = @_;
	return titled_process($node, qr/pg_autopilot keeper/);
}

# titled_process: PID of the first child of $node's postmaster whose process
# title matches $re (connection-less workers are not in pg_stat_activity),
# or undef.
sub titled_process
{
	my ($node, $re) = @_;
	foreach my $pid (node_processes($node))
	{
		open my $fh, '<', "/proc/$pid/cmdline" or next;
		my $cmd = <$fh> // '';
		close $fh;
		return $pid if $cmd =~ $re;
	}
	return undef;
}

# freeze_node: SIGSTOP the postmaster, then every descendant, until a /proc
# scan finds no process left running (a fork in flight shows up in the next
# scan).  Children started by pg_ctl share the test's process group, so a
# group kill is not an option.  Returns the stopped pids.
sub freeze_node
{
	my ($node) = @_;
	my $pm = postmaster_pid($node);
	my %stopped;
	for (my $round = 0; $round < 20; $round++)
	{
		my @new = grep { !$stopped{$_} } node_processes($node, $pm);
		last unless @new;
		kill 'STOP', @new;
		$stopped{$_} = 1 foreach @new;
	}
	note 'frozen ' . $node->name . ': ' . join(' ', sort { $a <=> $b } keys %stopped);
	return keys %stopped;
}

# thaw_node: SIGCONT the given pids (children first, then the postmaster).
sub thaw_node
{
	my (@pids) = @_;
	kill 'CONT', @pids;
	return;
}

# wait_processes_gone: wait until none of @pids exists any more (max the
# default timeout, polling every 100 ms).  A zombie still counts: a new
# postmaster refuses to start while the PID in postmaster.pid answers
# kill(0), and a killed postmaster stays a zombie until init reaps it.
# Returns true when all are gone.
sub wait_processes_gone
{
	my (@pids) = @_;
	my $max_attempts = 10 * $PostgreSQL::Test::Utils::timeout_default;
	for (my $i = 0; $i < $max_attempts; $i++)
	{
		return 1 unless grep { kill(0, $_) } @pids;
		Time::HiRes::usleep(100_000);
	}
	diag 'still alive: ' . join(' ', grep { kill(0, $_) } @pids);
	return 0;
}

# check_log_clean_except: like check_logs_clean for one node, ignoring lines
# that match $allowed (the messages the test itself caused).
sub check_log_clean_except
{
	my ($node, $allowed, $why) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $log = -f $node->logfile ? slurp_file($node->logfile) : '';
	my @bad = grep { /terminated by signal|TRAP:|PANIC/ && !/$allowed/ } split /\n/, $log;
	ok(!@bad, 'no unexpected crash in the log of ' . $node->name . ($why ? " ($why)" : ''))
	  or diag join("\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
	return;
}

# max_event_id: the newest event id on the monitor (0 when none).
sub max_event_id
{
	my ($monitor) = @_;
	return $monitor->safe_psql('pg_autopilot', 'SELECT coalesce(max(event_id), 0) FROM pg_autopilot.show_events(\'default\', 100000)');
}

# events_since: "node_name|assigned_state|rule" of the events after
# $event_id that carry a rule name, oldest first.
sub events_since
{
	my ($monitor, $event_id) = @_;
	my $out = $monitor->safe_psql('pg_autopilot',
		"SELECT node_name || '|' || assigned_state || '|' || rule FROM pg_autopilot.show_events('default', 100000) "
		  . "WHERE event_id > $event_id AND rule IS NOT NULL ORDER BY event_id");
	return grep { $_ ne '' } split /\n/, $out;
}

# states_text: "name|current|assigned" of every node, ordered by node id (to
# compare show_state before and after a refused request).
sub states_text
{
	my ($monitor) = @_;
	return $monitor->safe_psql('pg_autopilot',
		"SELECT string_agg(node_name || '|' || current_state || '|' || assigned_state || '|' || candidate_priority, ' ' ORDER BY node_id) "
		  . 'FROM pg_autopilot.show_state()');
}

# ---------------------------------------------------------------------------
# Groups of any size and several formations (issue 4, docs/elections.md).
# ---------------------------------------------------------------------------

# state_row_in: "current|assigned" of one node of $formation.
sub state_row_in
{
	my ($monitor, $formation, $node_name) = @_;
	return $monitor->safe_psql('pg_autopilot',
		"SELECT current_state || '|' || assigned_state FROM pg_autopilot.show_state('$formation') "
		  . "WHERE node_name = '$node_name'");
}

# wait_for_state_in: wait_for_state for a node of $formation.
sub wait_for_state_in
{
	my ($monitor, $formation, $node_name, $state, $test_name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ok = $monitor->poll_query_until('pg_autopilot',
		"SELECT current_state || '|' || assigned_state FROM pg_autopilot.show_state('$formation') "
		  . "WHERE node_name = '$node_name'",
		"$state|$state");
	ok($ok, $test_name // "$node_name reaches $state in formation $formation");
	if (!$ok)
	{
		my ($out, $err);
		$monitor->psql('pg_autopilot', "SELECT * FROM pg_autopilot.show_state('$formation') ORDER BY node_id",
			stdout => \$out, stderr => \$err);
		diag "show_state('$formation'):\n" . ($out // '') . ($err // '');
		$monitor->psql('pg_autopilot', "SELECT * FROM pg_autopilot.show_events('$formation', 40)",
			stdout => \$out, stderr => \$err);
		diag "show_events('$formation'):\n" . ($out // '') . ($err // '');
	}
	return $ok;
}

# wait_for_assigned_in: wait until the node's assigned state is one of
# @states (current may still differ); returns the state reached or undef.
sub wait_for_assigned_in
{
	my ($monitor, $formation, $node_name, @states) = @_;
	my $list = join(',', map { "'$_'" } @states);
	my $ok = $monitor->poll_query_until('pg_autopilot',
		"SELECT count(*) FROM pg_autopilot.show_state('$formation') "
		  . "WHERE node_name = '$node_name' AND assigned_state::text IN ($list)", '1');
	return undef unless $ok;
	return $monitor->safe_psql('pg_autopilot',
		"SELECT assigned_state FROM pg_autopilot.show_state('$formation') WHERE node_name = '$node_name'");
}

# node_group: a group of $n nodes from fresh initdbs.  The first node waits
# for single, then each further node is started and waited for until
# secondary, one at a time (each clones the primary), and the first ends
# primary.  %opts: names (array ref, default node1..nodeN), formation
# (default 'default'), node_opts (hash ref: name => hash ref of
# configure_node options, e.g. candidate_priority).  Returns the
# PostgreSQL::Test::Cluster objects in order.
sub node_group
{
	my ($monitor, $n, %opts) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @names = @{ $opts{names} // [ map { "node$_" } 1 .. $n ] };
	my $formation = $opts{formation} // 'default';
	my @nodes;
	foreach my $i (0 .. $n - 1)
	{
		my %node_opts = %{ $opts{node_opts}{ $names[$i] } // {} };
		$node_opts{formation} = $formation if $formation ne 'default';
		my $node = new_node($names[$i], $monitor, %node_opts);
		$node->start;
		wait_for_state_in($monitor, $formation, $names[$i], $i == 0 ? 'single' : 'secondary');
		push @nodes, $node;
	}
	wait_for_state_in($monitor, $formation, $names[0], 'primary') if $n > 1;
	return @nodes;
}

# expected_any_names: the synchronous_standby_names the monitor computes,
# 'ANY k (pg_autopilot_node_<id>, ...)' over the node ids in the order given
# (priority descending, then id), as PostgreSQL shows it.
sub expected_any_names
{
	my ($k, @ids) = @_;
	return "ANY $k (" . join(', ', map { "pg_autopilot_node_$_" } @ids) . ')';
}

# wait_for_sync_names: one test: SHOW synchronous_standby_names on $node
# reaches $expected.
sub wait_for_sync_names
{
	my ($node, $expected, $test_name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ok = $node->poll_query_until('postgres', 'SHOW synchronous_standby_names', $expected);
	ok($ok, $test_name // $node->name . " runs synchronous_standby_names = '$expected'");
	diag 'it runs: ' . $node->safe_psql('postgres', 'SHOW synchronous_standby_names') if !$ok;
	return $ok;
}

# events_since_in: events_since for $formation.
sub events_since_in
{
	my ($monitor, $formation, $event_id) = @_;
	my $out = $monitor->safe_psql('pg_autopilot',
		"SELECT node_name || '|' || assigned_state || '|' || rule FROM pg_autopilot.show_events('$formation', 100000) "
		  . "WHERE event_id > $event_id AND rule IS NOT NULL ORDER BY event_id");
	return grep { $_ ne '' } split /\n/, $out;
}

1;
