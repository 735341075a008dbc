# t/008_clone_crash_recovery.pl — a crash in the middle of a self-clone
# leaves a node that retries or rolls back at its next start (issue 2).
#
# Each case has its own monitor, a running primary node1_<case> and a fresh
# node2_<case> (initdb, configured, not started) whose keeper files are put
# in the state a crash would have left them in (src/shared/datadir.hpp:
# <PGDATA>.autopilot/pending, <PGDATA>.clone; the pre-start hook is in
# src/bgworker/restart.cpp):
#  (a) a pending clone-swap but no clone: the hook rolls back (WARNING,
#      pending removed), the node starts with its own data, then clones
#      itself for real and becomes secondary;
#  (b) a complete clone and the pending file (crash right before the swap):
#      the hook swaps at start, the postmaster pg_ctl started re-execs with
#      the same PID and comes up as a standby of node1 on node2's own port;
#  (c) the exchange already done, pending still there (crash right after the
#      RENAME_EXCHANGE): the hook finishes (old data to .old-*, pending
#      removed) and the node starts as a standby;
#  (d) the keeper killed (SIGKILL) in the middle of its pg_basebackup: the
#      postmaster restarts the cluster, the new keeper removes the partial
#      clone, clones again and the node becomes secondary; the only crash
#      line in its log is the keeper's own "terminated by signal 9".
use strict;
use warnings;

use File::Copy;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use AutopilotTest;

# sysid_of_dir: the system identifier stored in <dir>/global/pg_control (undef if unreadable).
sub sysid_of_dir
{
	my ($dir) = @_;
	open my $fh, '<:raw', "$dir/global/pg_control" or return undef;
	my $n = read($fh, my $buf, 8);
	close $fh;
	return undef unless defined $n && $n == 8;
	return unpack('Q<', $buf);
}

# setup_case: a monitor, a running node1 (single) and a configured, not started, node2.
sub setup_case
{
	my ($tag, %node2_opts) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $monitor = new_monitor(name => "monitor_$tag");
	my $node1 = new_node("node1_$tag", $monitor);
	$node1->start;
	wait_for_state($monitor, "node1_$tag", 'single', "($tag) node1_$tag becomes single");
	my $node2 = new_node("node2_$tag", $monitor, %node2_opts);
	return ($monitor, $node1, $node2);
}

# write_pending: the pending file RequestRestart writes for a clone-swap
# (kind, expected system identifier, settings for postgresql.auto.conf).
sub write_pending
{
	my ($node2, $sysid, $node1) = @_;
	my $state_dir = $node2->data_dir . '.autopilot';
	mkdir $state_dir, 0700 unless -d $state_dir;
	my $conninfo = 'host=127.0.0.1 port=' . $node1->port;
	open my $fh, '>', "$state_dir/pending" or die "cannot write $state_dir/pending: $!";
	print $fh "kind=clone-swap\nsystem_identifier=$sysid\nsetting=primary_conninfo=$conninfo\n";
	close $fh or die;
	return "$state_dir/pending";
}

# base_backup: a complete pg_basebackup of node1 into $dir, as the keeper's clone does it.
sub base_backup
{
	my ($node1, $dir) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	command_ok(
		[ 'pg_basebackup', '-D', $dir, '-X', 'stream', '-c', 'fast', '--no-password',
			'-d', 'host=127.0.0.1 port=' . $node1->port . ' dbname=postgres' ],
		"pg_basebackup of node1 into $dir");
	return;
}

# live_in_group: PIDs of the processes of process group $pgid that are not zombies.
sub live_in_group
{
	my ($pgid) = @_;
	my @live;
	foreach my $stat (glob('/proc/[0-9]*/stat'))
	{
		open my $fh, '<', $stat or next;
		my $line = <$fh>;
		close $fh;
		next unless defined $line && $line =~ /^(\d+) \(.*\) (\S) \d+ (\d+) /;
		push @live, $1 if $3 == $pgid && $2 ne 'Z';
	}
	return @live;
}

# wait_until: poll a condition every 10 ms (like poll_query_until, for a
# file-system condition) up to the default timeout; true once it holds.
sub wait_until
{
	my ($cond) = @_;
	for (my $i = 0; $i < 100 * $PostgreSQL::Test::Utils::timeout_default; $i++)
	{
		return 1 if $cond->();
		usleep(10_000);
	}
	return 0;
}

sub old_dirs
{
	my ($node) = @_;
	return glob($node->data_dir . '.old-*');
}

sub log_of
{
	my ($node) = @_;
	return -f $node->logfile ? slurp_file($node->logfile) : '';
}

# standby_checks: node2 runs as a standby of node1's system on its own port and name.
sub standby_checks
{
	my ($tag, $node1, $node2, $sysid1, $port2) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', "($tag) node2 is a standby");
	is($node2->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
		$sysid1, "($tag) node2 holds node1's system");
	is($node2->safe_psql('postgres', 'SHOW port'), $port2, "($tag) node2 kept its own port");
	is($node2->safe_psql('postgres', 'SHOW pg_autopilot.node_name'), $node2->name, "($tag) node2 kept its node name");
	ok( $node2->poll_query_until('postgres',
			"SELECT status = 'streaming' AND sender_port = " . $node1->port . ' FROM pg_stat_wal_receiver'),
		"($tag) node2 streams from node1");
	return;
}

########################################################################
# (a) pending clone-swap, no clone directory: roll back, then clone for real.
{
	my ($monitor, $node1, $node2) = setup_case('a');
	my $sysid1 = $node1->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
	my $own_sysid = sysid_of_dir($node2->data_dir);
	my $pending = write_pending($node2, $sysid1, $node1);
	ok(!-e $node2->data_dir . '.clone', '(a) no clone directory');

	$node2->start;
	my $pid = postmaster_pid($node2);
	ok(!-e $pending, '(a) the pending file is removed at start');
	my $log = log_of($node2);
	like(
		$log,
		qr/WARNING:  pg_autopilot: pending pre-start action abandoned: the clone to swap in is not usable/,
		'(a) WARNING: the pending action is rolled back');
	like($log, qr/is missing or has no readable global\/pg_control/, '(a) the WARNING says the clone is missing');
	unlike($log, qr/swapping in the clone/, '(a) nothing was swapped at start');

	wait_for_state($monitor, 'node2_a', 'secondary', '(a) node2 then clones itself and reaches secondary');
	$log = log_of($node2);
	like($log, qr/cloning into ".*\.clone" with pg_basebackup/, '(a) the keeper cloned node1 for real');
	like($log, qr/clone swapped in; re-executing postmaster $pid /, '(a) and swapped it in, same postmaster');
	is(postmaster_pid($node2), $pid, '(a) postmaster PID unchanged');
	standby_checks('a', $node1, $node2, $sysid1, $node2->port);
	my @old = old_dirs($node2);
	is(scalar(@old), 1, '(a) one replaced data directory kept aside');
	is(sysid_of_dir($old[0]), $own_sysid, '(a) it is node2\'s own initdb') if @old;

	check_logs_clean($monitor, $node1, $node2);
	$_->stop('fast') for ($node2, $node1, $monitor);
}

########################################################################
# (b) complete clone + pending: crash right before the swap; swap at start.
{
	my ($monitor, $node1, $node2) = setup_case('b');
	my $sysid1 = $node1->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
	my $own_sysid = sysid_of_dir($node2->data_dir);
	my $clone = $node2->data_dir . '.clone';
	base_backup($node1, $clone);
	is(sysid_of_dir($clone), $sysid1, '(b) the clone holds node1\'s system');
	my $pending = write_pending($node2, $sysid1, $node1);

	$node2->start;
	my $pid = postmaster_pid($node2);
	my $log = log_of($node2);
	like($log, qr{swapping in the clone of system $sysid1 from "[^"]*/pgdata\.clone"}, '(b) log: swapping in the clone');
	ok($log =~ /clone swapped in; re-executing postmaster (\d+) to start as a standby/,
		'(b) log: the postmaster re-executes itself');
	my $reexec_pid = $1 // 'none';
	is($pid, $reexec_pid, '(b) the re-executed postmaster is the one that runs (same PID)');
	my @old = old_dirs($node2);
	is(scalar(@old), 1, '(b) the replaced data directory is kept aside as .old-*');
	if (@old)
	{
		is(sysid_of_dir($old[0]), $own_sysid, '(b) .old-* is node2\'s own initdb');
		# The first image locked the old data directory: its postmaster.pid names the PID pg_ctl started.
		my $first_pid = (split /\n/, slurp_file("$old[0]/postmaster.pid"))[0];
		is($first_pid, $pid, '(b) the postmaster pg_ctl started is the one that runs now');
	}
	ok(!-e $clone, '(b) no .clone left');
	ok(!-e $pending, '(b) pending removed');
	ok(-e $node2->data_dir . '/standby.signal', '(b) standby.signal in the swapped-in data directory');
	standby_checks('b', $node1, $node2, $sysid1, $node2->port);

	wait_for_state($monitor, 'node2_b', 'secondary', '(b) node2 reaches secondary');
	wait_for_state($monitor, 'node1_b', 'primary', '(b) node1 becomes primary');
	unlike(log_of($node2), qr/cloning into/, '(b) the keeper did not clone again');
	is(postmaster_pid($node2), $pid, '(b) postmaster PID unchanged');

	check_logs_clean($monitor, $node1, $node2);
	$_->stop('fast') for ($node2, $node1, $monitor);
}

########################################################################
# (c) exchange done, pending still present: crash after RENAME_EXCHANGE.
{
	my ($monitor, $node1, $node2) = setup_case('c');
	my $sysid1 = $node1->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
	my $pgdata = $node2->data_dir;
	my $own_sysid = sysid_of_dir($pgdata);
	my $clone = "$pgdata.clone";
	base_backup($node1, $clone);

	# What the hook does before the exchange (PrepareClone): the node's own
	# configuration files, the standby settings, standby.signal.
	foreach my $f (qw(postgresql.conf pg_hba.conf pg_ident.conf postgresql.auto.conf))
	{
		copy("$pgdata/$f", "$clone/$f") or die "copy $f: $!";
	}
	PostgreSQL::Test::Utils::append_to_file("$clone/postgresql.auto.conf",
		"primary_conninfo = 'host=127.0.0.1 port=" . $node1->port . "'\n");
	PostgreSQL::Test::Utils::append_to_file("$clone/standby.signal", '');
	my $pending = write_pending($node2, $sysid1, $node1);
	# The exchange itself: the clone is PGDATA, the old data directory is .clone.
	rename($pgdata, "$pgdata.tmp") or die "rename: $!";
	rename($clone, $pgdata) or die "rename: $!";
	rename("$pgdata.tmp", $clone) or die "rename: $!";
	is(sysid_of_dir($pgdata), $sysid1, '(c) PGDATA holds the clone');
	is(sysid_of_dir($clone), $own_sysid, '(c) .clone holds the old data directory');

	$node2->start;
	my $pid = postmaster_pid($node2);
	my $log = log_of($node2);
	like($log, qr/already holds the clone of system $sysid1; finishing the swap/, '(c) log: finishing the swap');
	like($log, qr{keeping the replaced data directory as "[^"]*/pgdata\.old-\d+"},
		'(c) log: the old data directory is kept aside');
	like($log, qr/clone swapped in; re-executing postmaster $pid /, '(c) same postmaster re-executed');
	unlike($log, qr/exchanging "/, '(c) no second exchange');
	ok(!-e $clone, '(c) .clone moved away');
	ok(!-e $pending, '(c) pending removed');
	my @old = old_dirs($node2);
	is(scalar(@old), 1, '(c) one .old-* directory');
	is(sysid_of_dir($old[0]), $own_sysid, '(c) .old-* holds node2\'s own initdb') if @old;
	standby_checks('c', $node1, $node2, $sysid1, $node2->port);

	wait_for_state($monitor, 'node2_c', 'secondary', '(c) node2 reaches secondary');
	wait_for_state($monitor, 'node1_c', 'primary', '(c) node1 becomes primary');
	unlike(log_of($node2), qr/cloning into/, '(c) the keeper did not clone again');

	check_logs_clean($monitor, $node1, $node2);
	$_->stop('fast') for ($node2, $node1, $monitor);
}

########################################################################
# (d) the keeper killed with SIGKILL in the middle of its pg_basebackup.
{
	# Cluster.pm sets restart_after_crash = off; a node runs with the default.
	my ($monitor, $node1, $node2) = setup_case('d', conf => "restart_after_crash = on\n");
	my $sysid1 = $node1->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
	# About 80 MB, so that the base backup is still copying when we look.
	$node1->safe_psql('postgres',
		"CREATE TABLE big AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 80000) g; CHECKPOINT");
	my $clone = $node2->data_dir . '.clone';

	$node2->start;
	my $pid = postmaster_pid($node2);
	my $offset = $node2->wait_for_log(qr/cloning into ".*" with pg_basebackup \(PID \d+\)/);
	my ($bb_pid) = log_of($node2) =~ /cloning into ".*" with pg_basebackup \(PID (\d+)\)/;
	ok(defined $bb_pid, '(d) the keeper started pg_basebackup (PID ' . ($bb_pid // 'none') . ')');
	# Wait until it copies data files into the clone, then hold it there so
	# that the kill lands in the middle of the copy.
	ok(wait_until(sub { -d "$clone/base" }), '(d) pg_basebackup is copying into the clone directory');
	ok(kill('STOP', $bb_pid), '(d) pg_basebackup paused');
	my $keeper_pid = (split ' ', slurp_file("/proc/$bb_pid/stat"))[3];
	like(slurp_file("/proc/$keeper_pid/cmdline"), qr/pg_autopilot keeper/,
		"(d) pg_basebackup's parent is the keeper (PID $keeper_pid)");
	ok(!-e "$clone/global/pg_control", '(d) the clone is incomplete (no global/pg_control yet)');

	ok(kill('KILL', $keeper_pid), '(d) keeper killed with SIGKILL');
	# pg_basebackup got SIGTERM from PR_SET_PDEATHSIG; let it act on it.
	kill('CONT', $bb_pid);
	$node2->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	ok(1, '(d) the postmaster restarts the cluster after the keeper\'s crash');

	wait_for_state($monitor, 'node2_d', 'secondary', '(d) node2 still ends up secondary');
	wait_for_state($monitor, 'node1_d', 'primary', '(d) node1 becomes primary');
	# pg_basebackup runs in its own process group, with its WAL streaming child.
	my @left = live_in_group($bb_pid);
	ok(!@left, '(d) the interrupted pg_basebackup and its WAL streamer are gone')
	  or diag "still running: @left";
	ok(!-d "/proc/$keeper_pid" || slurp_file("/proc/$keeper_pid/stat") =~ /\) Z /, '(d) the killed keeper is gone');
	my $log = log_of($node2);
	my @clones = $log =~ /(cloning into ".*" with pg_basebackup)/g;
	is(scalar(@clones), 2, '(d) the clone was retried once from scratch')
	  or diag join("\n", grep { /pg_autopilot/ && !/statement:/ } split /\n/, $log);
	like($log, qr/clone swapped in; re-executing postmaster $pid /, '(d) the retry was swapped in, same postmaster');
	is(postmaster_pid($node2), $pid, '(d) postmaster PID unchanged');
	ok(!-e $clone, '(d) no .clone left');
	ok(!-e $node2->data_dir . '.autopilot/pending', '(d) no pending file left');
	standby_checks('d', $node1, $node2, $sysid1, $node2->port);
	is($node2->safe_psql('postgres', 'SELECT count(*) FROM big'), '80000', '(d) the standby has the big table');

	# The keeper's own SIGKILL is the only crash line allowed in node2's log.
	my @bad = grep { /terminated by signal|TRAP:|PANIC/ } split /\n/, $log;
	my $expected = qr/background worker "pg_autopilot keeper" \(PID $keeper_pid\) was terminated by signal 9: Killed/;
	is(scalar(grep { $_ =~ $expected } @bad), 1, '(d) the log records the keeper\'s SIGKILL');
	my @other = grep { $_ !~ $expected } @bad;
	ok(!@other, '(d) no other crash line (TRAP, PANIC, terminated by signal) in node2\'s log')
	  or diag join("\n", @other);
	check_logs_clean($monitor, $node1);
	$_->stop('fast') for ($node2, $node1, $monitor);
}

done_testing();
