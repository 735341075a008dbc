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
int health_check_period_ms = 1000;
int health_check_timeout_ms = 2000;
char *monitor_database = nullptr;
char *health_check_user = nullptr;

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
