/*
 * src/monitor_ext/health_check.cpp — the monitor's health-check background
 * worker "pg_autopilot health check" (PostgreSQL zone).
 *
 * A static worker, registered when the module is in shared_preload_libraries,
 * started once recovery has finished, restarted 5 s after a crash.  It is
 * CONNECTION-LESS (BGWORKER_SHMEM_ACCESS only): it never attaches to a
 * database, so it never blocks DROP DATABASE and needs no database to exist.
 * Instead it talks SQL through libpq, non-blockingly (pq_conn.hpp), to
 * pg_autopilot_monitor.database of its own server over the first Unix socket
 * directory, and probes every node with a connection attempt.
 *
 * Every health_check_period ms (0: health checks off, the worker only waits
 * for SIGHUP): read the node list, probe each node, record each verdict with
 * pg_autopilot.record_health(), which re-runs the group rules on a change.
 *
 * Invariants: every wait is in WaitLatch / pq_conn's WaitLatchOrSocket with
 * CHECK_FOR_INTERRUPTS() on every wake-up (so ProcSignalBarriers, e.g. of
 * DROP DATABASE, are absorbed and SIGTERM ends the worker within
 * milliseconds); SIGHUP reloads the configuration; per-round memory is reset
 * after each round; a missing database or extension is logged once, then
 * retried quietly every period.  No pure code is called.
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
}
#include "pg/compat.hpp"

#include <cstring>
#include <pwd.h>
#include <unistd.h>

#include "pg/pq_conn.hpp"

#include "monitor.hpp"

extern "C" {
PGDLLEXPORT void AutopilotHealthCheckMain(Datum arg);
}

namespace autopilot::monitor {

namespace {

/*
 * Statements on the monitor's own database: record_health may wait for the
 * group lock behind a heartbeat, which holds it for milliseconds; 10 s means
 * something is badly wrong (then we reconnect next round).
 */
constexpr int kMonitorQueryTimeoutMs = 10000;

/* What went wrong last, so that each kind of problem is logged once until it clears. */
enum class Problem { None, MonitorConnect, NoExtension, NodeList, RecordHealth };

Problem last_problem = Problem::None;

/* The session to the monitor database: process-lifetime, owned by this file. */
PGconn *monitor_conn = nullptr;

/*
 * A failed connection to the monitor database makes the server log a FATAL
 * (e.g. the database does not exist yet): retry with a doubling back-off of
 * up to kMaxConnectBackoffMs instead of every period, so that the server's
 * log shows at most a line every 30 s.
 */
constexpr int kMaxConnectBackoffMs = 30000;
int connect_backoff_ms = 0;
TimestampTz next_connect_time = 0;

void
ReportProblem(Problem p, const char *what, const char *message)
{
	if (last_problem == p)
		return;
	last_problem = p;
	ereport(LOG, (errmsg("pg_autopilot health check: %s: %s", what, message),
				  errdetail("Health checks retry every pg_autopilot_monitor.health_check_period without logging "
							"this again.")));
}

void
ClearProblem()
{
	if (last_problem != Problem::None)
		ereport(LOG,
				(errmsg("pg_autopilot health check: health checks of database \"%s\" are running", monitor_database)));
	last_problem = Problem::None;
}

void
DropMonitorConnection()
{
	autopilot::pgx::PqFinish(monitor_conn);
	monitor_conn = nullptr;
}

/* LoginUser is health_check_user, or the operating system user running the server. */
const char *
LoginUser()
{
	if (health_check_user != nullptr && health_check_user[0] != '\0')
		return health_check_user;
	struct passwd *pw = getpwuid(geteuid());
	return pw != nullptr ? pstrdup(pw->pw_name) : "postgres";
}

/* LocalSocketHost is the first unix_socket_directories entry, or localhost when there is none. */
const char *
LocalSocketHost()
{
	List *dirs = NIL;
	char *raw = pstrdup(Unix_socket_directories ? Unix_socket_directories : "");
	if (SplitDirectoriesString(raw, ',', &dirs) && dirs != NIL)
		return static_cast<const char *>(linitial(dirs));
	return "localhost";
}

/* ConnectMonitor opens monitor_conn if needed; false (problem logged once) when it cannot. */
bool
ConnectMonitor(uint32 wait_event)
{
	if (monitor_conn != nullptr && PQstatus(monitor_conn) == CONNECTION_OK)
		return true;
	DropMonitorConnection();
	if (GetCurrentTimestamp() < next_connect_time)
		return false;

	char port[16];
	snprintf(port, sizeof(port), "%d", PostPortNumber);
	const char *keywords[] = {"host", "port", "dbname", "user", "application_name", nullptr};
	const char *values[] = {LocalSocketHost(),           port,   monitor_database, LoginUser(),
							"pg_autopilot health check", nullptr};
	char errbuf[512];

	monitor_conn =
		autopilot::pgx::PqConnect(keywords, values, health_check_timeout_ms, wait_event, errbuf, sizeof(errbuf));
	if (monitor_conn == nullptr) {
		char what[256];
		snprintf(what, sizeof(what), "cannot connect to monitor database \"%s\"", monitor_database);
		ReportProblem(Problem::MonitorConnect, what, errbuf);
		connect_backoff_ms = connect_backoff_ms == 0 ? health_check_period_ms : connect_backoff_ms * 2;
		if (connect_backoff_ms > kMaxConnectBackoffMs)
			connect_backoff_ms = kMaxConnectBackoffMs;
		next_connect_time = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), connect_backoff_ms);
		return false;
	}
	connect_backoff_ms = 0;
	next_connect_time = 0;
	return true;
}

/*
 * ServerAnswered decides whether a failed probe still reached a live server.
 * A connection that gets as far as an authentication request counts as
 * healthy: libpq reports a client-side authentication failure
 * ("fe_sendauth", SCRAM) or the server's FATAL (password failed, no
 * pg_hba.conf entry, unknown role or database, too many clients, a standby
 * that does not accept connections).  A server that is starting up, in crash
 * recovery or shutting down does not count, nor do refused connections and
 * timeouts (no "FATAL" in the message).  This reads libpq's English text
 * and the server's message as sent with lc_messages; a localized server
 * makes auth failures count as unhealthy, never the reverse.
 */
bool
ServerAnswered(const char *err)
{
	if (strstr(err, "fe_sendauth") != nullptr || strstr(err, "SCRAM") != nullptr)
		return true;
	if (strstr(err, "FATAL") == nullptr)
		return false;
	if (strstr(err, "is starting up") != nullptr || strstr(err, "is shutting down") != nullptr ||
		strstr(err, "is in recovery mode") != nullptr)
		return false;
	return true;
}

/* ProbeNode connects to one node within health_check_timeout; true when it is alive. */
bool
ProbeNode(const char *host, const char *port, uint32 wait_event)
{
	const char *keywords[] = {"host", "port", "dbname", "user", "application_name", nullptr};
	const char *values[] = {host, port, "postgres", LoginUser(), "pg_autopilot health check", nullptr};
	char errbuf[512];

	PGconn *conn =
		autopilot::pgx::PqConnect(keywords, values, health_check_timeout_ms, wait_event, errbuf, sizeof(errbuf));
	if (conn != nullptr) {
		autopilot::pgx::PqFinish(conn);
		return true;
	}
	bool alive = ServerAnswered(errbuf);
	ereport(DEBUG1, (errmsg("pg_autopilot health check: %s:%s: %s (%s)", host, port, errbuf,
							alive ? "server answered" : "unreachable")));
	return alive;
}

/* RunRound probes every node once; all memory in the current (per-round) context. */
void
RunRound(uint32 wait_event)
{
	if (!ConnectMonitor(wait_event))
		return;

	/*
	 * Without the extension there is no node to check; asking first keeps
	 * the server from logging a failed statement every period.
	 */
	char errbuf[512];
	PGresult *res = autopilot::pgx::PqExec(monitor_conn, "SELECT to_regclass('pg_autopilot.node') IS NOT NULL", 0,
										   nullptr, kMonitorQueryTimeoutMs, wait_event, errbuf, sizeof(errbuf));
	if (res != nullptr) {
		bool installed = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (!installed) {
			char what[256];
			snprintf(what, sizeof(what), "extension pg_autopilot_monitor is not installed in database \"%s\"",
					 monitor_database);
			ReportProblem(Problem::NoExtension, what, "no node to check");
			return;
		}
		res = autopilot::pgx::PqExec(monitor_conn, "SELECT node_id, host, port FROM pg_autopilot.node ORDER BY node_id",
									 0, nullptr, kMonitorQueryTimeoutMs, wait_event, errbuf, sizeof(errbuf));
	}
	if (res == nullptr) {
		char what[256];
		snprintf(what, sizeof(what), "cannot read the nodes from database \"%s\" (is pg_autopilot_monitor installed?)",
				 monitor_database);
		ReportProblem(Problem::NodeList, what, errbuf);
		if (PQstatus(monitor_conn) != CONNECTION_OK)
			DropMonitorConnection();
		return;
	}

	int count = PQntuples(res);
	char **ids = static_cast<char **>(palloc0(sizeof(char *) * (count + 1)));
	char **hosts = static_cast<char **>(palloc0(sizeof(char *) * (count + 1)));
	char **ports = static_cast<char **>(palloc0(sizeof(char *) * (count + 1)));
	for (int i = 0; i < count; i++) {
		ids[i] = pstrdup(PQgetvalue(res, i, 0));
		hosts[i] = pstrdup(PQgetvalue(res, i, 1));
		ports[i] = pstrdup(PQgetvalue(res, i, 2));
	}
	PQclear(res);

	bool recorded_all = true;
	for (int i = 0; i < count; i++) {
		CHECK_FOR_INTERRUPTS();
		bool alive = ProbeNode(hosts[i], ports[i], wait_event);
		const char *params[2] = {ids[i], alive ? "true" : "false"};
		PGresult *r = autopilot::pgx::PqExec(monitor_conn, "SELECT pg_autopilot.record_health($1::bigint, $2::bool)", 2,
											 params, kMonitorQueryTimeoutMs, wait_event, errbuf, sizeof(errbuf));
		if (r == nullptr) {
			ReportProblem(Problem::RecordHealth, "cannot record a health check", errbuf);
			recorded_all = false;
			if (PQstatus(monitor_conn) != CONNECTION_OK) {
				DropMonitorConnection();
				break;
			}
			continue;
		}
		PQclear(r);
	}
	if (recorded_all)
		ClearProblem();
}

} // namespace

void
RegisterHealthCheckWorker()
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	/* Connection-less: shared memory only, never BackgroundWorkerInitializeConnection. */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	/* 5 s: a crashing worker must not spin; health checks are not needed within the second. */
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_autopilot_monitor");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "AutopilotHealthCheckMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_autopilot health check");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_autopilot health check");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

} // namespace autopilot::monitor

/* AutopilotHealthCheckMain is the worker's entry point; it only returns through proc_exit. */
extern "C" void
AutopilotHealthCheckMain(Datum arg)
{
	using namespace autopilot::monitor;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	uint32 wait_event = AUTOPILOT_WAIT_EVENT("PgAutopilotHealthCheck");
	MemoryContext round_context =
		AllocSetContextCreate(TopMemoryContext, "pg_autopilot health check round", ALLOCSET_DEFAULT_SIZES);

	for (;;) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (health_check_period_ms > 0) {
			MemoryContext old = MemoryContextSwitchTo(round_context);
			RunRound(wait_event);
			MemoryContextSwitchTo(old);
			MemoryContextReset(round_context);
		} else if (monitor_conn != nullptr) {
			/* Health checks were turned off: do not keep a session open on the monitor database. */
			autopilot::pgx::PqFinish(monitor_conn);
			monitor_conn = nullptr;
		}

		int events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
		long timeout = -1;
		if (health_check_period_ms > 0) {
			events |= WL_TIMEOUT;
			timeout = health_check_period_ms;
		}
		(void) WaitLatch(MyLatch, events, timeout, wait_event);
		ResetLatch(MyLatch);
	}
}
