# t/013_notify_wakeup.pl — the keeper's monitor connection (issue 2: "one
# persistent non-blocking monitor connection with LISTEN, reconnects with
# backoff").  Three parts, each failing without the feature it covers:
#
# 1. One persistent session.  With the default 1 s heartbeat, each keeper has
#    exactly one session on the monitor (application_name 'pg_autopilot
#    keeper <node_name>', user autopilot_node), and after both nodes have
#    reported for 4 s more it is still the same backend (pid and
#    backend_start).  A keeper that connected per call or per tick shows
#    another backend (or none, or two) at the second look.
#
# 2. Reconnect with backoff.  heartbeat_interval goes to its maximum, 60 s,
#    on both nodes (node_timeout on the monitor to 5 min, so that silent
#    nodes stay healthy), then the monitor is restarted (fast).  Both keepers
#    log the lost connection with the backoff detail of keeper.cpp
#    MonitorFailed, log "connected to the monitor again after N failed
#    attempts" and have one session each again within 30 s: only the
#    backoff schedule (100 ms doubling to 5 s) brings them back that fast; a
#    keeper that never reconnected, or only at its next heartbeat, fails the
#    bound.  Done while the group is settled primary/secondary: the primary
#    has a streaming synchronous standby, so the outage never fences it.
#
# 3. NOTIFY wake-ups.  Right after the reconnect (each keeper has just
#    reported and now waits up to 60 s), a switchover is requested on the
#    monitor.  The standby must see prepare_promotion, and the demoted old
#    primary (a standby again, with a new keeper after its same-PID re-exec)
#    must see catchingup; both wait in a 60 s heartbeat, so without
#    LISTEN/NOTIFY the first step alone takes about 60 s.  Asserted: the
#    promoted node reports wait_primary or primary and the old primary
#    reports catchingup or secondary within 30 s of the call
#    (catchingup -> secondary needs the old primary's next report with
#    streaming=true, a heartbeat later, so the timed part stops at
#    catchingup).  The promoted node's keeper never restarted: its session is
#    still the one it had before the switchover.  The old primary's keeper
#    was restarted by the demotion (docs/failover.md), so it has one new
#    session.  Then the heartbeat goes back to 1 s, the group settles (node2
#    primary, node1 secondary) and the logs show no crash.
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

# keeper_sessions: node_name => [ "pid/backend_start", ... ] of the keepers'
# sessions on the monitor (each keeper names itself in application_name).
sub keeper_sessions
{
	my $out = $monitor->safe_psql('pg_autopilot',
		"SELECT substr(application_name, length('pg_autopilot keeper ') + 1) || '|' || pid || '/' || backend_start "
		  . "FROM pg_stat_activity WHERE datname = 'pg_autopilot' AND usename = 'autopilot_node' "
		  . "AND application_name LIKE 'pg_autopilot keeper %' ORDER BY application_name, pid");
	my %s;
	foreach my $line (split /\n/, $out)
	{
		my ($name, $session) = split /\|/, $line, 2;
		push @{ $s{$name} }, $session;
	}
	return \%s;
}

sub sessions_text
{
	my ($s) = @_;
	return join(', ', map { "$_: " . join(' ', @{ $s->{$_} }) } sort keys %$s);
}

# set_heartbeat: pg_autopilot.heartbeat_interval on both nodes (postgresql.conf
# and reload), until both servers show $setting_ms.
sub set_heartbeat
{
	my ($value, $setting_ms) = @_;
	foreach my $n ($node1, $node2)
	{
		$n->append_conf('postgresql.conf', "pg_autopilot.heartbeat_interval = '$value'\n");
		$n->reload;
	}
	foreach my $n ($node1, $node2)
	{
		ok( $n->poll_query_until('postgres',
				"SELECT setting FROM pg_settings WHERE name = 'pg_autopilot.heartbeat_interval'", $setting_ms),
			$n->name . " runs with heartbeat_interval $value");
	}
	return;
}

# ---- part 1: one persistent session per keeper ----
my $before = keeper_sessions();
note 'keeper sessions: ' . sessions_text($before);
foreach my $n ($node1, $node2)
{
	is(scalar(@{ $before->{ $n->name } // [] }), 1, 'one monitor session of the keeper of ' . $n->name);
}
# Several heartbeats of both nodes (1 s each) after this point.
my $t_quiet = $monitor->safe_psql('pg_autopilot', 'SELECT now()');
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT count(*) FROM pg_autopilot.node WHERE report_time > '$t_quiet'::timestamptz + interval '4 s'", '2'),
	'both nodes reported for 4 s more');
my $after_quiet = keeper_sessions();
foreach my $n ($node1, $node2)
{
	is_deeply($after_quiet->{ $n->name }, $before->{ $n->name },
		'the keeper of ' . $n->name . ' kept its session over several heartbeats (same pid and backend_start)')
	  or diag 'before: ' . sessions_text($before) . "\nafter: " . sessions_text($after_quiet);
}

# ---- part 2: a monitor restart: reconnect with backoff ----
$monitor->append_conf('postgresql.conf', "pg_autopilot_monitor.node_timeout = '5min'\n");
$monitor->reload;
ok( $monitor->poll_query_until('pg_autopilot',
		"SELECT setting FROM pg_settings WHERE name = 'pg_autopilot_monitor.node_timeout'", '300000'),
	'the monitor runs with node_timeout 5 min');
set_heartbeat('60s', '60000');

my %offset = map { $_->name => -s $_->logfile } ($node1, $node2);
$monitor->restart;
my $t_up = Time::HiRes::time();
my $back = $monitor->poll_query_until('pg_autopilot',
	"SELECT count(DISTINCT application_name) FROM pg_stat_activity "
	  . "WHERE datname = 'pg_autopilot' AND application_name LIKE 'pg_autopilot keeper %'",
	'2');
my $reconnect = Time::HiRes::time() - $t_up;
ok($back, 'both keepers have a session on the restarted monitor');
cmp_ok($reconnect, '<', 30,
	sprintf('they reconnected %.1f s after the monitor came back (bound 30 s; the heartbeat is 60 s)', $reconnect));
foreach my $n ($node1, $node2)
{
	ok( $n->wait_for_log(qr/DETAIL:  Retrying with a backoff of up to \d+ ms; further failures are not logged\./,
			$offset{ $n->name }),
		$n->name . ': the lost monitor connection is logged with the backoff');
	ok( $n->wait_for_log(qr/pg_autopilot keeper: connected to the monitor again after \d+ failed attempts/,
			$offset{ $n->name }),
		$n->name . ': the keeper logs its reconnect');
}
my $after_restart = keeper_sessions();
note 'keeper sessions after the monitor restart: ' . sessions_text($after_restart);
foreach my $n ($node1, $node2)
{
	is(scalar(@{ $after_restart->{ $n->name } // [] }),
		1, 'one session of the keeper of ' . $n->name . ' after the restart');
}
wait_for_state($monitor, 'node1', 'primary', 'node1 is still primary after the monitor restart');
wait_for_state($monitor, 'node2', 'secondary', 'node2 is still secondary after the monitor restart');

# ---- part 3: NOTIFY wakes keepers that wait a 60 s heartbeat ----
# Both keepers reported when they reconnected and now wait up to 60 s: the
# standby would not look at the monitor again for about a minute without a
# NOTIFY.
my $pid1 = postmaster_pid($node1);
my $since_report = $monitor->safe_psql('pg_autopilot',
	"SELECT extract(epoch FROM clock_timestamp() - report_time) FROM pg_autopilot.node WHERE node_name = 'node2'");
cmp_ok($since_report, '<', 20,
	sprintf('node2 last reported %.1f s ago: without a NOTIFY it looks again only after the bound', $since_report));
my $t_call = Time::HiRes::time();
$monitor->safe_psql('pg_autopilot', 'SELECT pg_autopilot.perform_switchover()');
my $woken = $monitor->poll_query_until('pg_autopilot',
	"SELECT count(*) FROM pg_autopilot.show_state() "
	  . "WHERE (node_name = 'node1' AND current_state IN ('catchingup', 'secondary')) "
	  . "OR (node_name = 'node2' AND current_state IN ('wait_primary', 'primary'))",
	'2');
my $elapsed = Time::HiRes::time() - $t_call;
ok($woken, 'switchover: node2 promoted and node1 following it') or diag show_state_text($monitor);
cmp_ok($elapsed, '<', 30,
	sprintf('the NOTIFY-driven steps took %.1f s (bound 30 s; the heartbeat is 60 s)', $elapsed))
  or diag show_events_text($monitor);
is(postmaster_pid($node1), $pid1, 'node1 was demoted by a same-PID re-exec');

my $after_switch = keeper_sessions();
note 'keeper sessions after the switchover: ' . sessions_text($after_switch);
is_deeply($after_switch->{node2}, $after_restart->{node2},
	'the keeper of node2 (promoted without a restart) still uses the same session')
  or diag 'before: ' . sessions_text($after_restart) . "\nafter: " . sessions_text($after_switch);
is(scalar(@{ $after_switch->{node1} // [] }), 1, 'the restarted keeper of node1 has one session');
isnt($after_switch->{node1}[0] // '', $after_restart->{node1}[0],
	'and it is a new one (the demotion restarted the keeper)');

# Back to 1 s heartbeats (the reload wakes the keepers): node1 reports that it
# streams and becomes secondary, node2 primary.
set_heartbeat('1s', '1000');
wait_for_state($monitor, 'node2', 'primary', 'node2 settles as primary');
wait_for_state($monitor, 'node1', 'secondary', 'node1 settles as secondary');
# (node1 keeps its login fence up until it has rejoined: checked only now.)
is($node1->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'node1 is a standby');
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'node2 is writable');

check_logs_clean($monitor, $node1, $node2);
done_testing();
