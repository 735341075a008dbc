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
 * for SIGHUP), a full round: read the node list, probe each node (those whose
 * keeper session is missing first), record each verdict with
 * pg_autopilot.record_health(), which re-runs the group rules on a change,
 * then call pg_autopilot.proceed_groups() so that rules that depend on time
 * (primary_demote_timeout, node_timeout) fire even when no node reports.
 *
 * Verdicts: a probe that connects, or reaches the server's authentication,
 * is healthy.  A refused connection (nothing listens: the postmaster is
 * gone) or a server that answers it is starting up, shutting down or in
 * recovery is unhealthy at once.  Any other failure (timeout, unreachable
 * network) counts as unhealthy only after 1 + health_check_max_retries
 * consecutive failures; each retry runs at the next watch tick, not a period
 * later.
 * A planned restart of a primary is not a failure: its keeper announces it
 * with pg_autopilot.node_stopping() and the rules wait out restart_grace
 * (NodeView.restarting); the probes here simply report what they see.
 *
 * Between rounds, every kWatchPeriodMs, a watch tick asks the monitor which
 * nodes reported recently but have no keeper session (application_name
 * 'pg_autopilot keeper <node_name>' in pg_stat_activity): a session that
 * disappears (the keeper died with its postmaster: kill -9, crash) triggers
 * an immediate probe of that node, so a killed primary is seen as unhealthy
 * within about kWatchPeriodMs instead of a period.  One probe per
 * disappearance; the full rounds go on as usual.
 *
 * Invariants: every wait is in WaitLatch / pq_conn's WaitLatchOrSocket with
 * CHECK_FOR_INTERRUPTS() on every wake-up (SIGTERM ends the worker within
 * milliseconds, even inside a connect: t/006; on PG 15 this connection-less
 * worker has no ProcSignal slot, so DROP DATABASE never waits for it — its
 * libpq session to pg_autopilot is an ordinary backend that DROP DATABASE
 * of another database does not wait for either); SIGHUP reloads the
 * configuration; per-tick memory is reset
 * after each tick, per-node counters live in a hash table in
 * TopMemoryContext; a missing database or extension is logged once, then
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
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
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

/*
 * Watch tick: 100 ms between two looks at the keepers' sessions.  The query
 * reads pg_stat_activity and the node table of the local server (well under
 * a millisecond for a few nodes), so ten per second cost nothing, and they
 * bound the time from a keeper's death to the probe of its node.
 */
constexpr int kWatchPeriodMs = 100;

/* What the worker remembers about a node between ticks (hash table keyed by node_id). */
struct NodeWatch {
	int64 node_id;
	int failures;         /* consecutive probes without an answer (timeouts, unreachable) */
	bool session_missing; /* its keeper session was missing at the last look */
};

HTAB *node_watch = nullptr;

/* The outcome of one probe. */
enum class Probe {
	Alive,    /* connected, or the server answered (authentication, FATAL) */
	Down,     /* refused, no socket, starting up, shutting down, in recovery: unhealthy at once */
	NoAnswer, /* timeout, unreachable network, ...: unhealthy after health_check_max_retries retries */
};

/* What went wrong last, so that each kind of problem is logged once until it clears. */
enum class Problem { None, MonitorConnect, NoExtension, NodeList, RecordHealth, ProceedGroups };

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

/*
 * LocalSocketHost is how this worker reaches its own server: the first
 * unix_socket_directories entry; without one, the first listen_addresses
 * entry (a wildcard means any local address will do: localhost), so that a
 * monitor that listens only on its LAN address is still reached.
 */
const char *
LocalSocketHost()
{
	List *dirs = NIL;
	char *raw = pstrdup(Unix_socket_directories ? Unix_socket_directories : "");
	if (SplitDirectoriesString(raw, ',', &dirs) && dirs != NIL)
		return static_cast<const char *>(linitial(dirs));

	List *addrs = NIL;
	char *listen = pstrdup(ListenAddresses ? ListenAddresses : "");
	if (!SplitGUCList(listen, ',', &addrs) || addrs == NIL)
		return "localhost";
	const char *first = static_cast<const char *>(linitial(addrs));
	if (strcmp(first, "*") == 0)
		return "localhost";
	if (strcmp(first, "0.0.0.0") == 0)
		return "127.0.0.1";
	if (strcmp(first, "::") == 0)
		return "::1";
	return first;
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

/* ServerNotServing: the server answered that it is starting up, shutting down or in (crash) recovery. */
bool
ServerNotServing(const char *err)
{
	return strstr(err, "is starting up") != nullptr || strstr(err, "is shutting down") != nullptr ||
		   strstr(err, "is in recovery mode") != nullptr;
}

/*
 * Refused: nothing listens at the address (ECONNREFUSED over TCP, a missing
 * socket file over Unix sockets).  libpq's English text; a localized client
 * library makes a refusal count as a timeout, i.e. retried, never the reverse.
 */
bool
Refused(const char *err)
{
	return strstr(err, "Connection refused") != nullptr || strstr(err, "No such file or directory") != nullptr;
}

/* ProbeNode connects to one node within health_check_timeout. */
Probe
ProbeNode(const char *host, const char *port, uint32 wait_event)
{
	const char *keywords[] = {"host", "port", "dbname", "user", "application_name", nullptr};
	const char *values[] = {host, port, "postgres", LoginUser(), "pg_autopilot health check", nullptr};
	char errbuf[512];

	PGconn *conn =
		autopilot::pgx::PqConnect(keywords, values, health_check_timeout_ms, wait_event, errbuf, sizeof(errbuf));
	if (conn != nullptr) {
		autopilot::pgx::PqFinish(conn);
		return Probe::Alive;
	}
	Probe result = ServerAnswered(errbuf)                        ? Probe::Alive
				   : Refused(errbuf) || ServerNotServing(errbuf) ? Probe::Down
																 : Probe::NoAnswer;
	ereport(DEBUG1, (errmsg("pg_autopilot health check: %s:%s: %s (%s)", host, port, errbuf,
							result == Probe::Alive  ? "server answered"
							: result == Probe::Down ? "down"
													: "no answer")));
	return result;
}

NodeWatch *
WatchOf(int64 node_id)
{
	bool found;
	NodeWatch *w = static_cast<NodeWatch *>(hash_search(node_watch, &node_id, HASH_ENTER, &found));
	if (!found) {
		w->failures = 0;
		w->session_missing = false;
	}
	return w;
}

/*
 * CheckNode probes one node and records the verdict (see the file comment
 * for when a failure counts).  False when the monitor connection broke.
 */
bool
CheckNode(const char *id, const char *name, const char *host, const char *port, uint32 wait_event, bool *recorded)
{
	NodeWatch *w = WatchOf(pg_strtoint64(id));
	Probe probe = ProbeNode(host, port, wait_event);
	bool healthy = true;

	switch (probe) {
	case Probe::Alive:
		w->failures = 0;
		break;
	case Probe::Down:
		w->failures = 0;
		healthy = false;
		break;
	case Probe::NoAnswer:
		w->failures++;
		if (w->failures <= health_check_max_retries) {
			ereport(DEBUG1, (errmsg("pg_autopilot health check: %s (id %s) did not answer (%d of %d): retrying", name,
									id, w->failures, health_check_max_retries + 1)));
			return true;
		}
		healthy = false;
		break;
	}

	char errbuf[512];
	const char *params[2] = {id, healthy ? "true" : "false"};
	PGresult *r = autopilot::pgx::PqExec(monitor_conn, "SELECT pg_autopilot.record_health($1::bigint, $2::bool)", 2,
										 params, kMonitorQueryTimeoutMs, wait_event, errbuf, sizeof(errbuf));
	if (r == nullptr) {
		ReportProblem(Problem::RecordHealth, "cannot record a health check", errbuf);
		*recorded = false;
		if (PQstatus(monitor_conn) != CONNECTION_OK) {
			DropMonitorConnection();
			return false;
		}
		return true;
	}
	PQclear(r);
	return true;
}

/*
 * RunTick reads the node list with the keeper-session verdict and probes:
 * every node when `full` (then re-runs the group rules with proceed_groups),
 * otherwise only nodes whose keeper session just disappeared and nodes with
 * a pending retry.  All memory in the current (per-tick) context.
 */
void
RunTick(bool full, uint32 wait_event)
{
	/* Watch ticks only run on a working session; full rounds reconnect (with back-off) and report problems. */
	if (!full && (monitor_conn == nullptr || PQstatus(monitor_conn) != CONNECTION_OK ||
				  last_problem == Problem::NoExtension || last_problem == Problem::NodeList))
		return;
	if (!ConnectMonitor(wait_event))
		return;

	/*
	 * Without the extension there is no node to check; asking first (in full
	 * rounds) keeps the server from logging a failed statement every period.
	 */
	char errbuf[512];
	if (full) {
		PGresult *res = autopilot::pgx::PqExec(monitor_conn, "SELECT to_regclass('pg_autopilot.node') IS NOT NULL", 0,
											   nullptr, kMonitorQueryTimeoutMs, wait_event, errbuf, sizeof(errbuf));
		bool installed = res != nullptr && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		if (res != nullptr)
			PQclear(res);
		if (res != nullptr && !installed) {
			char what[256];
			snprintf(what, sizeof(what), "extension pg_autopilot_monitor is not installed in database \"%s\"",
					 monitor_database);
			ReportProblem(Problem::NoExtension, what, "no node to check");
			return;
		}
	}

	/*
	 * keeper_missing: the node reported within node_timeout but no session of
	 * this database carries its keeper's application_name (truncated like the
	 * server truncates it, to NAMEDATALEN - 1 bytes; node names are ASCII).
	 * Missing ones first: they are the likely failures.
	 */
	char timeout[16];
	char namelen[16];
	snprintf(timeout, sizeof(timeout), "%d", node_timeout_ms);
	snprintf(namelen, sizeof(namelen), "%d", NAMEDATALEN - 1);
	const char *params[2] = {timeout, namelen};
	PGresult *res = autopilot::pgx::PqExec(
		monitor_conn,
		"SELECT n.node_id, n.node_name, n.host, n.port, "
		"n.report_time IS NOT NULL AND n.report_time > now() - $1::int * interval '1 millisecond' "
		"AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a "
		"WHERE a.datname = current_database() "
		"AND a.application_name = left('pg_autopilot keeper ' || n.node_name, $2::int)) AS keeper_missing "
		"FROM pg_autopilot.node n ORDER BY keeper_missing DESC, n.node_id",
		2, params, kMonitorQueryTimeoutMs, wait_event, errbuf, sizeof(errbuf));
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
	char **names = static_cast<char **>(palloc0(sizeof(char *) * (count + 1)));
	char **hosts = static_cast<char **>(palloc0(sizeof(char *) * (count + 1)));
	char **ports = static_cast<char **>(palloc0(sizeof(char *) * (count + 1)));
	bool *probe = static_cast<bool *>(palloc0(sizeof(bool) * (count + 1)));
	for (int i = 0; i < count; i++) {
		ids[i] = pstrdup(PQgetvalue(res, i, 0));
		names[i] = pstrdup(PQgetvalue(res, i, 1));
		hosts[i] = pstrdup(PQgetvalue(res, i, 2));
		ports[i] = pstrdup(PQgetvalue(res, i, 3));
		bool missing = strcmp(PQgetvalue(res, i, 4), "t") == 0;
		NodeWatch *w = WatchOf(pg_strtoint64(ids[i]));
		bool vanished = missing && !w->session_missing;
		w->session_missing = missing;
		if (vanished)
			ereport(LOG, (errmsg("pg_autopilot health check: the keeper session of %s (id %s) is gone: checking the "
								 "node now",
								 names[i], ids[i])));
		probe[i] = full || vanished || w->failures > 0;
	}
	PQclear(res);

	bool recorded_all = true;
	for (int i = 0; i < count; i++) {
		CHECK_FOR_INTERRUPTS();
		if (!probe[i])
			continue;
		if (!CheckNode(ids[i], names[i], hosts[i], ports[i], wait_event, &recorded_all))
			return;
	}

	if (full) {
		PGresult *r = autopilot::pgx::PqExec(monitor_conn, "SELECT pg_autopilot.proceed_groups()", 0, nullptr,
											 kMonitorQueryTimeoutMs, wait_event, errbuf, sizeof(errbuf));
		if (r == nullptr) {
			ReportProblem(Problem::ProceedGroups, "cannot re-run the group rules", errbuf);
			if (PQstatus(monitor_conn) != CONNECTION_OK)
				DropMonitorConnection();
			return;
		}
		PQclear(r);
		if (recorded_all)
			ClearProblem();
	}
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
	MemoryContext tick_context =
		AllocSetContextCreate(TopMemoryContext, "pg_autopilot health check tick", ALLOCSET_DEFAULT_SIZES);
	HASHCTL ctl;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(NodeWatch);
	node_watch = hash_create("pg_autopilot health check nodes", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	TimestampTz next_round = 0;

	for (;;) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		int events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
		long timeout = -1;
		if (health_check_period_ms > 0) {
			bool full = GetCurrentTimestamp() >= next_round;
			if (full)
				next_round = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), health_check_period_ms);
			MemoryContext old = MemoryContextSwitchTo(tick_context);
			RunTick(full, wait_event);
			MemoryContextSwitchTo(old);
			MemoryContextReset(tick_context);

			/* Sleep until the next watch tick or the next round, whichever comes first. */
			long until_round = 0;
			int unused_usecs;
			TimestampDifference(GetCurrentTimestamp(), next_round, &until_round, &unused_usecs);
			until_round = until_round * 1000 + unused_usecs / 1000;
			events |= WL_TIMEOUT;
			timeout = Min(until_round, (long) kWatchPeriodMs);
			if (timeout < 1)
				timeout = 1;
		} else if (monitor_conn != nullptr) {
			/* Health checks were turned off: do not keep a session open on the monitor database. */
			autopilot::pgx::PqFinish(monitor_conn);
			monitor_conn = nullptr;
		}

		(void) WaitLatch(MyLatch, events, timeout, wait_event);
		ResetLatch(MyLatch);
	}
}
