/*
 * src/monitor_ext/module.cpp — module entry of pg_autopilot_monitor: magic
 * block, GUCs, registration of the health-check worker (PostgreSQL zone).
 *
 * _PG_init runs in every backend that loads the module (CREATE EXTENSION,
 * the first call of one of its functions) and in the postmaster when the
 * module is in shared_preload_libraries; only the latter registers the
 * static health-check worker.  No pure code is called here.
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}
#include "pg/compat.hpp"

#include "monitor.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace autopilot::monitor {

int node_timeout_ms = 5000;
int startup_grace_ms = 10000;
int health_check_period_ms = 1000;
int health_check_timeout_ms = 2000;
char *monitor_database = nullptr;
char *health_check_user = nullptr;
int health_check_max_retries = 1;
int promote_lag_threshold_bytes = 16 * 1024 * 1024;
int primary_demote_timeout_ms = 30000;
int restart_grace_ms = 10000;

} // namespace autopilot::monitor

extern "C" void
_PG_init(void)
{
	using namespace autopilot::monitor;

	/*
	 * node_timeout: a node whose last report is older than this is unhealthy.
	 * 5 s is five missed heartbeats of a keeper (1 s period), long enough
	 * that a busy node is not flagged by one slow round trip.  PGC_SUSET so
	 * that tests and operators can change it per session; the keepers' own
	 * sessions use the server value.
	 */
	DefineCustomIntVariable(
		"pg_autopilot_monitor.node_timeout", "A node whose last report is older than this is considered unhealthy.",
		nullptr, &node_timeout_ms, 5000, 100, 3600 * 1000, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);

	/* health_check_period: one round of connection probes to every node; 0 turns health checks off. */
	DefineCustomIntVariable("pg_autopilot_monitor.health_check_period",
							"Time between two health-check rounds of the monitor; 0 disables health checks.", nullptr,
							&health_check_period_ms, 1000, 0, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
							nullptr);

	/*
	 * health_check_timeout: a probe that has not reached the server's
	 * authentication request within this time counts as failed.  2 s is many
	 * loopback or LAN round trips; a refused connection fails immediately.
	 */
	DefineCustomIntVariable(
		"pg_autopilot_monitor.health_check_timeout", "How long a health-check connection attempt to a node may take.",
		nullptr, &health_check_timeout_ms, 2000, 10, 600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

	/*
	 * health_check_max_retries: a probe that times out (frozen node, lost
	 * packets) is retried at once, and the node is marked unhealthy only
	 * after 1 + max_retries consecutive timeouts: one lost SYN or one slow
	 * moment of a loaded node must not start a failover.  A refused
	 * connection (nothing listens: the postmaster is gone) or a server that
	 * answers it is starting up, shutting down or in recovery marks the node
	 * unhealthy at the first probe.  Default 1: two timeouts in a row.
	 */
	DefineCustomIntVariable("pg_autopilot_monitor.health_check_max_retries",
							"How many consecutive timed-out health checks of a node are retried before the node is "
							"marked unhealthy.",
							"A refused connection marks the node unhealthy at once.", &health_check_max_retries, 1, 0,
							100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

	/*
	 * promote_lag_threshold: automatic failover never promotes a standby that
	 * is further behind the failed primary's last reported LSN than this (it
	 * would lose that much WAL if the commits were not synchronous).  16 MB is
	 * one WAL segment.  PGC_SUSET: tests and operators may set it per session
	 * for the operator functions; rules re-run by heartbeats and the
	 * health-check worker use the server value.
	 */
	DefineCustomIntVariable("pg_autopilot_monitor.promote_lag_threshold",
							"A standby further behind its failed primary than this is not promoted automatically.",
							nullptr, &promote_lag_threshold_bytes, 16 * 1024 * 1024, 0, PG_INT32_MAX, PGC_SUSET,
							GUC_UNIT_BYTE, nullptr, nullptr, nullptr);

	/*
	 * primary_demote_timeout: how long a primary in demote_timeout may still
	 * be writable when no proof that it cannot acknowledge commits exists
	 * (docs/failover.md).  It MUST exceed the data nodes'
	 * pg_autopilot.fence_timeout: an isolated primary fences itself within
	 * fence_timeout, so after this timeout it no longer accepts writes and the
	 * candidate may be promoted.  The monitor cannot see the nodes' settings;
	 * a keeper reads this value with current_setting() and warns when its
	 * fence_timeout is not smaller (docs/protocol.md).  30 s as
	 * pg_auto_failover; with synchronous replication the sync proof usually
	 * makes waiting unnecessary.  PGC_SUSET so that tests can lower it with
	 * SET.
	 */
	DefineCustomIntVariable("pg_autopilot_monitor.primary_demote_timeout",
							"How long the monitor waits for a failed primary to fence itself before promoting a "
							"standby without proof; must exceed the nodes' pg_autopilot.fence_timeout.",
							nullptr, &primary_demote_timeout_ms, 30000, 1, PG_INT32_MAX, PGC_SUSET, GUC_UNIT_MS,
							nullptr, nullptr, nullptr);

	/*
	 * restart_grace: a primary whose keeper announced a clean shutdown
	 * (pg_autopilot.node_stopping: pg_ctl stop or restart) is not failed over
	 * for this long after the announcement, unless it reports again first;
	 * so a planned restart keeps its role, and a primary stopped for good is
	 * failed over once the grace lapses.  A kill -9 or a crash announces
	 * nothing and is failed over at once.  10 s covers a restart with a
	 * shutdown checkpoint under load on a small machine.  PGC_SUSET so that
	 * tests can change it with SET.
	 */
	/*
	 * startup_grace: after the monitor (re)starts, stale reports do not make
	 * nodes unhealthy for this long — only failed health checks do — so the
	 * keepers can reconnect first (their backoff tops out at 5 s).
	 */
	DefineCustomIntVariable("pg_autopilot_monitor.startup_grace",
							"Time after the monitor starts during which stale reports do not make nodes unhealthy.",
							nullptr, &startup_grace_ms, 10000, 0, 3600 * 1000, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr,
							nullptr);
	DefineCustomIntVariable("pg_autopilot_monitor.restart_grace",
							"How long a primary that announced a clean shutdown may stay away before it is failed "
							"over.",
							nullptr, &restart_grace_ms, 10000, 0, 3600 * 1000, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr,
							nullptr);

	DefineCustomStringVariable("pg_autopilot_monitor.database",
							   "Database of this instance that holds the pg_autopilot_monitor extension.", nullptr,
							   &monitor_database, "pg_autopilot", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

	DefineCustomStringVariable("pg_autopilot_monitor.health_check_user",
							   "Role the health-check worker logs in as (monitor database and nodes); empty means "
							   "the operating system user running the server.",
							   nullptr, &health_check_user, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

	MarkGUCPrefixReserved("pg_autopilot_monitor");

	if (process_shared_preload_libraries_in_progress)
		RegisterHealthCheckWorker();
}
