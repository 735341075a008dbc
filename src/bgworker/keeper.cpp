/*
 * src/bgworker/keeper.cpp — the keeper background worker's main loop
 * (PostgreSQL zone; DESIGN.md §4, docs/protocol.md).
 *
 * One tick: gather (local state from shared memory, settings), talk to the
 * monitor (register_node once per connection, node_active every tick), decide
 * (FindKeeperTransition, pure), apply (the transition's action).  A tick whose
 * action succeeded persists the new current state to <PGDATA>.autopilot/state
 * and is followed immediately by another tick, which reports it.  Otherwise
 * the keeper waits heartbeat_interval on its latch and the monitor socket, so
 * a NOTIFY on the state channel starts the next tick at once.
 *
 * Invariants:
 *  - never blocks: libpq goes through pq_conn (deadlines, CHECK_FOR_INTERRUPTS
 *    at every wake-up); SIGTERM is `die`, so a fast shutdown ends the keeper
 *    within milliseconds, even mid-connect; the exit callback cancels a
 *    running pg_basebackup and closes the monitor connection;
 *  - every frame here holds only POD locals and file-static POD state; pure
 *    code is called through CallCpp with results copied into POD buffers;
 *  - each tick allocates in a memory context reset at the next tick.
 *
 * Error policy (deliberate): an ERROR raised during a tick (an invalid
 * setting rejected by the GUC machinery, an I/O failure writing
 * postgresql.auto.conf, an unconfirmed reload) is caught around the tick,
 * logged once per distinct message, recorded as last_error (shown by
 * status() and sent to the monitor), and the keeper carries on with the next
 * tick.  Exiting instead would only restart the worker 1 s later with the
 * same outcome, and would lose the monitor connection and LISTEN each time.
 * current is not advanced on failure, so the action is retried (actions are
 * idempotent).  FATAL (SIGTERM) is not caught: it ends the process.
 */
extern "C" {
#include "postgres.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/bgwriter.h"
#include "postmaster/interrupt.h"
#include "postmaster/postmaster.h"
#include "replication/slot.h"
#include "storage/condition_variable.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}
#include "pg/compat.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "clone.hpp"
#include "conninfo.hpp"
#include "datadir.hpp"
#include "diverged.hpp"
#include "fence.hpp"
#include "election.hpp"
#include "hba_file.hpp"
#include "keeper.hpp"
#include "keeper_fsm.hpp"
#include "lsn.hpp"
#include "pg/guard.hpp"
#include "pg/pq_conn.hpp"
#include "restart.hpp"
#include "states.hpp"

extern "C" {
PGDLLEXPORT void AutopilotKeeperMain(Datum main_arg);
}

namespace autopilot::node {

using fsm::KeeperAction;
using fsm::NodeState;

/*
 * Reconnect backoff: the first retry after 100 ms (a monitor restart is over
 * quickly), doubling up to 5 s so that a long outage costs one attempt every
 * few seconds; +-25 % jitter keeps the nodes of a formation from hammering a
 * monitor that comes back in lock-step.
 */
constexpr int kBackoffInitialMs = 100;
constexpr int kBackoffMaxMs = 5000;
/* With invalid settings the keeper idles; a SIGHUP (which sets the latch) wakes it earlier. */
constexpr int kIdleMs = 60000;

/* Process-lifetime state (POD). */
static PGconn *monitor_conn = nullptr;
static MemoryContext tick_ctx = nullptr;
static uint32 wait_event = 0;
static pg_prng_state prng;

static int64_t node_id = 0;
static int32_t group_id = -1;
static NodeState current = NodeState::Init;
static bool have_assigned = false;
static NodeState assigned = NodeState::Init;
static bool have_last_goal = false; /* last_goal holds the last node_active answer (WatchWithoutMonitor) */
static Goal last_goal;

/* Identity the open connection registered with; a change means re-register. */
static char reg_monitor[1024];
static char reg_node_name[kNameLen];
static char reg_formation[kNameLen];
static char reg_hostname[256];

static int backoff_ms = 0;
static TimestampTz next_connect_at = 0;
static bool monitor_down_logged = false;
static int failed_attempts = 0;

static bool clone_running = false;
static bool clone_is_reclone = false;   /* the running clone replaces a diverged copy */
static char clone_new_state[kStateLen]; /* state the clone swap records when done */
static bool restart_requested = false;  /* a same-PID restart was requested: wait for it */
static bool rewind_unsupported = false; /* neither wal_log_hints nor data checksums */

/* While a writable node is watched for isolation, ticks are at most this far apart. */
constexpr int kFenceWatchIntervalMs = 1000;
/* Deadline of a promotion (end of recovery); afterwards the action is retried at the next tick. */
constexpr int kPromoteTimeoutMs = 60000;
/* Poll interval while waiting for the end of recovery or for the walreceiver to stop (latch wait, interruptible). */
constexpr int kPollMs = 10;

/* Errors: the first problem of this tick, and what status() currently shows. */
static char tick_error[kErrorLen];
static char published_error[kErrorLen];

/* ---------- status in shared memory ---------- */

static void
PublishStatus(void)
{
	if (keeper_shared == nullptr)
		return;
	SpinLockAcquire(&keeper_shared->mutex);
	keeper_shared->keeper_pid = MyProcPid;
	keeper_shared->node_id = node_id;
	keeper_shared->group_id = group_id;
	keeper_shared->monitor_reachable = monitor_conn != nullptr;
	strlcpy(keeper_shared->node_name, guc_node_name, kNameLen);
	strlcpy(keeper_shared->formation, guc_formation, kNameLen);
	strlcpy(keeper_shared->current_state, fsm::StateName(current), kStateLen);
	strlcpy(keeper_shared->assigned_state, have_assigned ? fsm::StateName(assigned) : "", kStateLen);
	strlcpy(keeper_shared->last_error, published_error, kErrorLen);
	SpinLockRelease(&keeper_shared->mutex);
}

/*
 * SetTickError (keeper.hpp) logs a problem only when it differs from what
 * status() shows now, so a persistent problem is logged once, not every tick.
 */
void
SetTickError(int level, const char *msg)
{
	if (tick_error[0] == '\0')
		strlcpy(tick_error, msg, sizeof(tick_error));
	if (level != 0 && strcmp(msg, published_error) != 0)
		ereport(level, (errmsg("pg_autopilot keeper: %s", msg)));
}

/* SetTickErrorf: the message is cut at kErrorLen. */
void
SetTickErrorf(int level, const char *fmt, ...)
{
	char msg[kErrorLen];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	SetTickError(level, msg);
}

static void
EndTickErrors(void)
{
	if (published_error[0] != '\0' && tick_error[0] == '\0')
		ereport(LOG, (errmsg("pg_autopilot keeper: problem resolved: %s", published_error)));
	strlcpy(published_error, tick_error, sizeof(published_error));
	PublishStatus();
}

/* ---------- pure-zone helpers (through the error boundary) ---------- */

static bool
ParseLabel(const char *label, NodeState *out)
{
	bool ok = false;
	autopilot::pgx::CallCpp([&] {
		auto s = fsm::ParseState(label);
		if (s) {
			*out = *s;
			ok = true;
		}
	});
	return ok;
}

static bool
LookupTransition(NodeState from, NodeState to, KeeperAction *action, const char **why)
{
	bool found = false;
	autopilot::pgx::CallCpp([&] {
		const fsm::KeeperTransition *t = fsm::FindKeeperTransition(from, to);
		if (t != nullptr) {
			*action = t->action;
			*why = t->why;
			found = true;
		}
	});
	return found;
}

static bool
IsWritable(NodeState s)
{
	bool w = false;
	autopilot::pgx::CallCpp([&] { w = fsm::IsWritableState(s); });
	return w;
}

static void
LoadStateFile(void)
{
	char label[kStateLen] = "";
	autopilot::pgx::CallCpp([&] {
		auto text = datadir::ReadSmallFile(datadir::StateFile(DataDir));
		if (!text)
			return;
		std::string t = *text;
		while (!t.empty() && (t.back() == '\n' || t.back() == ' ' || t.back() == '\r'))
			t.pop_back();
		if (t.size() < sizeof(label))
			memcpy(label, t.c_str(), t.size() + 1);
	});
	if (label[0] == '\0')
		return;
	if (!ParseLabel(label, &current)) {
		ereport(WARNING, (errmsg("pg_autopilot keeper: ignoring unknown state \"%s\" in the state file", label)));
		current = NodeState::Init;
		return;
	}
	ereport(LOG, (errmsg("pg_autopilot keeper: resuming in state %s", label)));
}

static void
PersistState(void)
{
	const char *label = fsm::StateName(current);
	autopilot::pgx::CallCpp([&] {
		std::string dir = datadir::StateDir(DataDir);
		if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
			throw autopilot::Error(sqlstate::kConfigFileError, "could not create directory \"" + dir + "\"");
		datadir::WriteFileAtomic(datadir::StateFile(DataDir), std::string(label) + "\n");
	});
}

/* StandbyName writes pg_autopilot_node_<id> into buf. */
static void
StandbyName(int64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s%lld", kStandbyPrefix, (long long) id);
}

/* ---------- the monitor connection ---------- */

/*
 * One deadline bounds all monitor calls of a tick (connect, LISTEN,
 * register_node, the timing check, node_active): monitor_timeout from the
 * start of the tick's monitor work.  The isolation check runs between
 * ticks, so a tick that spent several monitor_timeouts would delay a
 * self-fence beyond what CheckFenceBeforeDemoteTimeout accounts for (one
 * monitor_timeout).  A call whose budget is used up gets 1 ms and fails as
 * a timeout (reconnect with backoff).
 */
static TimestampTz tick_monitor_deadline = 0;

static int
MonitorCallMs(void)
{
	long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), tick_monitor_deadline);
	return (int) Max(left, 1);
}

static void
DropMonitor(void)
{
	if (monitor_conn == nullptr)
		return;
	autopilot::pgx::PqFinish(monitor_conn);
	monitor_conn = nullptr;
}

static void
DrainNotifies(bool *got)
{
	PGnotify *n;
	while (monitor_conn != nullptr && (n = PQnotifies(monitor_conn)) != nullptr) {
		if (got != nullptr)
			*got = true;
		PQfreemem(n);
	}
}

static void
ScheduleReconnect(void)
{
	backoff_ms = backoff_ms == 0 ? kBackoffInitialMs : Min(backoff_ms * 2, kBackoffMaxMs);
	int jitter = (int) pg_prng_uint64_range(&prng, 0, backoff_ms / 2);
	next_connect_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff_ms - backoff_ms / 4 + jitter);
}

/* MonitorFailed closes the connection, logs the first failure of an outage and schedules a retry. */
static void
MonitorFailed(const char *what, const char *err_in)
{
	/* err_in may be PQerrorMessage of the connection closed below: copy it first. */
	char err[1024];
	strlcpy(err, err_in, sizeof(err));
	SetTickErrorf(0, "%s: %s", what, err);
	DropMonitor();
	failed_attempts++;
	if (!monitor_down_logged) {
		ereport(LOG,
				(errmsg("pg_autopilot keeper: %s: %s", what, err),
				 errdetail("Retrying with a backoff of up to %d ms; further failures are not logged.", kBackoffMaxMs)));
		monitor_down_logged = true;
	} else
		ereport(DEBUG1, (errmsg_internal("pg_autopilot keeper: %s: %s", what, err)));
	ScheduleReconnect();
}

/* ConnectAndRegister opens the session, LISTENs and registers; false (already reported) on failure. */
/*
 * CheckFenceBeforeDemoteTimeout checks the timing relation of DESIGN.md §2.2
 * once per monitor session: when synchronous replication cannot prove that a
 * failed primary stopped writing, the monitor promotes its standby after
 * primary_demote_timeout, so an isolated primary must have fenced itself
 * (fence_timeout) before that.  A violation is a configuration error the DBA
 * must fix; we warn (the node keeps working) rather than refuse to run.
 */
static void
CheckFenceBeforeDemoteTimeout(void)
{
	char err[kErrorLen];
	PGresult *res = autopilot::pgx::PqExec(monitor_conn,
										   "SELECT setting FROM pg_catalog.pg_settings "
										   "WHERE name = 'pg_autopilot_monitor.primary_demote_timeout'",
										   0, nullptr, MonitorCallMs(), wait_event, err, sizeof(err));
	if (res == nullptr)
		return;
	if (PQntuples(res) == 1) {
		/*
		 * Worst case until the fence is up: a standby's last reply may be
		 * kStandbyReplySlackMs old when it vanishes, then fence_timeout, and
		 * the last monitor call may itself take monitor_timeout.
		 */
		long demote_ms = strtol(PQgetvalue(res, 0, 0), nullptr, 10);
		long worst_ms = (long) guc_fence_timeout_ms + kStandbyReplySlackMs + guc_monitor_timeout_ms;
		if (demote_ms > 0 && worst_ms >= demote_ms)
			ereport(
				WARNING,
				(errmsg("pg_autopilot.fence_timeout (%d ms) is too long for the monitor's primary_demote_timeout "
						"(%ld ms)",
						guc_fence_timeout_ms, demote_ms),
				 errdetail("An isolated primary fences itself at the latest after fence_timeout + %d ms of "
						   "standby reply slack + monitor_timeout (%d ms) = %ld ms; until then it could still "
						   "accept writes when the monitor promotes its standby after the demote timeout.",
						   kStandbyReplySlackMs, guc_monitor_timeout_ms, worst_ms),
				 errhint("Lower pg_autopilot.fence_timeout or raise pg_autopilot_monitor.primary_demote_timeout.")));
	}
	PQclear(res);
}

static bool
ConnectAndRegister(const LocalState *ls)
{
	char err[1024];
	char appname[NAMEDATALEN + 32];
	snprintf(appname, sizeof(appname), "pg_autopilot keeper %s", guc_node_name);

	const char *kw[] = {"dbname", "application_name", nullptr};
	const char *val[] = {guc_monitor, appname, nullptr};
	monitor_conn = autopilot::pgx::PqConnect(kw, val, MonitorCallMs(), wait_event, err, sizeof(err));
	if (monitor_conn == nullptr) {
		MonitorFailed("could not connect to the monitor", err);
		return false;
	}

	PGresult *res =
		autopilot::pgx::PqExec(monitor_conn, "LISTEN state", 0, nullptr, MonitorCallMs(), wait_event, err, sizeof(err));
	if (res == nullptr) {
		MonitorFailed("could not LISTEN on the monitor", err);
		return false;
	}
	PQclear(res);

	char port[16], sysid[32], prio[16];
	snprintf(port, sizeof(port), "%d", PostPortNumber);
	snprintf(sysid, sizeof(sysid), "%lld", (long long) (int64) ls->system_identifier);
	snprintf(prio, sizeof(prio), "%d", guc_candidate_priority);
	const char *params[] = {
		guc_formation, guc_node_name, guc_hostname, port, sysid, prio, guc_replication_quorum ? "true" : "false"};
	res = autopilot::pgx::PqExec(monitor_conn,
								 "SELECT node_id, group_id, assigned_state FROM pg_autopilot.register_node("
								 "$1::text, $2::text, $3::text, $4::int, $5::bigint, $6::int, $7::bool)",
								 7, params, MonitorCallMs(), wait_event, err, sizeof(err));
	if (res == nullptr) {
		MonitorFailed("register_node failed on the monitor", err);
		return false;
	}
	if (PQntuples(res) != 1 || PQnfields(res) < 3 || PQgetisnull(res, 0, 0)) {
		PQclear(res);
		MonitorFailed("register_node failed on the monitor", "unexpected result shape");
		return false;
	}
	node_id = strtoll(PQgetvalue(res, 0, 0), nullptr, 10);
	group_id = PQgetisnull(res, 0, 1) ? -1 : (int32_t) strtol(PQgetvalue(res, 0, 1), nullptr, 10);
	NodeState st;
	if (!PQgetisnull(res, 0, 2) && ParseLabel(PQgetvalue(res, 0, 2), &st)) {
		assigned = st;
		have_assigned = true;
	}
	PQclear(res);
	DrainNotifies(nullptr);
	CheckFenceBeforeDemoteTimeout();

	strlcpy(reg_monitor, guc_monitor, sizeof(reg_monitor));
	strlcpy(reg_node_name, guc_node_name, sizeof(reg_node_name));
	strlcpy(reg_formation, guc_formation, sizeof(reg_formation));
	strlcpy(reg_hostname, guc_hostname, sizeof(reg_hostname));

	if (monitor_down_logged)
		ereport(LOG, (errmsg("pg_autopilot keeper: connected to the monitor again after %d failed attempts",
							 failed_attempts)));
	else
		ereport(LOG, (errmsg("pg_autopilot keeper: registered as node %lld in group %d of formation \"%s\"",
							 (long long) node_id, group_id, guc_formation)));
	monitor_down_logged = false;
	failed_attempts = 0;
	backoff_ms = 0;
	return true;
}

static bool
IdentityChanged(void)
{
	return strcmp(reg_monitor, guc_monitor) != 0 || strcmp(reg_node_name, guc_node_name) != 0 ||
		   strcmp(reg_formation, guc_formation) != 0 || strcmp(reg_hostname, guc_hostname) != 0;
}

/* ParseLsn reads an LSN as pg_lsn prints it (lsn.hpp); false when it is not one. */
static bool
ParseLsn(const char *text, uint64_t *out)
{
	bool ok = false;
	autopilot::pgx::CallCpp([&] {
		auto v = autopilot::lsn::ParseLsn(text);
		if (v) {
			*out = *v;
			ok = true;
		}
	});
	return ok;
}

/* Heartbeat calls node_active with the local state; false (already reported) on failure. */
static bool
Heartbeat(const LocalState *ls, Goal *goal)
{
	char err[1024];
	char id[32], tli[16], lsn[32], prio[16], seq[32];
	snprintf(id, sizeof(id), "%lld", (long long) node_id);
	/*
	 * report_seq: the send time.  A call abandoned at monitor_timeout may
	 * still run on the monitor after a newer one; the monitor ignores a
	 * report not newer than the last it recorded (docs/protocol.md).
	 */
	snprintf(seq, sizeof(seq), "%lld", (long long) GetCurrentTimestamp());
	snprintf(tli, sizeof(tli), "%u", ls->timeline);
	snprintf(lsn, sizeof(lsn), "%X/%X", (uint32) (ls->lsn >> 32), (uint32) ls->lsn);
	snprintf(prio, sizeof(prio), "%d", guc_candidate_priority);
	/*
	 * The synchronous_standby_names setting (SyncRepStandbyNames), also in
	 * recovery: a demoted old primary keeps reporting the names it
	 * acknowledged commits with (docs/elections.md, "Evidence kept").
	 */
	const char *applied = GetConfigOption("synchronous_standby_names", true, false);
	const char *params[] = {guc_formation,
							id,
							fsm::StateName(current),
							"true",
							ls->in_recovery ? "true" : "false",
							tli,
							lsn,
							ls->wal_receiver_streaming ? "true" : "false",
							prio,
							guc_replication_quorum ? "true" : "false",
							published_error[0] ? published_error : nullptr,
							applied != nullptr ? applied : "",
							seq};

	PGresult *res = autopilot::pgx::PqExec(
		monitor_conn,
		"SELECT assigned_state, primary_node_id, primary_host, primary_port, primary_system_identifier, "
		"synchronous_standby_names, standby_slots, upstream_node_id, upstream_host, upstream_port, upstream_lsn, "
		"wanted_candidate_priority, wanted_replication_quorum FROM pg_autopilot.node_active($1::text, "
		"$2::bigint, $3::text, $4::bool, $5::bool, $6::int, $7::pg_lsn, $8::bool, $9::int, $10::bool, $11::text, "
		"$12::text, $13::bigint)",
		13, params, MonitorCallMs(), wait_event, err, sizeof(err));
	if (res == nullptr) {
		MonitorFailed("node_active failed on the monitor", err);
		return false;
	}
	DrainNotifies(nullptr);
	if (PQntuples(res) != 1 || PQnfields(res) < 13 || PQgetisnull(res, 0, 0) ||
		!ParseLabel(PQgetvalue(res, 0, 0), &goal->assigned)) {
		PQclear(res);
		MonitorFailed("node_active failed on the monitor", "unexpected result");
		return false;
	}
	goal->has_primary = !PQgetisnull(res, 0, 1);
	goal->primary_node_id = goal->has_primary ? strtoll(PQgetvalue(res, 0, 1), nullptr, 10) : 0;
	strlcpy(goal->primary_host, PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2), sizeof(goal->primary_host));
	goal->primary_port = PQgetisnull(res, 0, 3) ? 0 : (int) strtol(PQgetvalue(res, 0, 3), nullptr, 10);
	goal->primary_sysid = PQgetisnull(res, 0, 4) ? 0 : (uint64) strtoll(PQgetvalue(res, 0, 4), nullptr, 10);
	goal->has_ssn = !PQgetisnull(res, 0, 5);
	strlcpy(goal->ssn, goal->has_ssn ? PQgetvalue(res, 0, 5) : "", sizeof(goal->ssn));
	goal->has_slots = !PQgetisnull(res, 0, 6);
	strlcpy(goal->standby_slots, goal->has_slots ? PQgetvalue(res, 0, 6) : "", sizeof(goal->standby_slots));
	goal->has_upstream = !PQgetisnull(res, 0, 7) && !PQgetisnull(res, 0, 8) && !PQgetisnull(res, 0, 9) &&
						 !PQgetisnull(res, 0, 10) && ParseLsn(PQgetvalue(res, 0, 10), &goal->upstream_lsn);
	if (goal->has_upstream) {
		goal->upstream_node_id = strtoll(PQgetvalue(res, 0, 7), nullptr, 10);
		strlcpy(goal->upstream_host, PQgetvalue(res, 0, 8), sizeof(goal->upstream_host));
		goal->upstream_port = (int) strtol(PQgetvalue(res, 0, 9), nullptr, 10);
		goal->has_upstream = goal->upstream_host[0] != '\0' && goal->upstream_port > 0;
	}
	goal->has_wanted_priority = !PQgetisnull(res, 0, 11);
	goal->wanted_priority = goal->has_wanted_priority ? (int) strtol(PQgetvalue(res, 0, 11), nullptr, 10) : 0;
	goal->has_wanted_quorum = !PQgetisnull(res, 0, 12);
	goal->wanted_quorum = goal->has_wanted_quorum && PQgetvalue(res, 0, 12)[0] == 't';
	/* primary_timeline: 0 from a monitor that does not return it (older version) or while unknown. */
	goal->primary_timeline =
		PQnfields(res) >= 14 && !PQgetisnull(res, 0, 13) ? (uint32_t) strtoul(PQgetvalue(res, 0, 13), nullptr, 10) : 0;
	PQclear(res);

	if (goal->primary_host[0] == '\0' || goal->primary_port <= 0)
		goal->has_primary = false;
	assigned = goal->assigned;
	have_assigned = true;
	FenceNoteMonitorOk();
	if (goal->has_slots)
		FenceRememberPeers(goal->standby_slots, node_id);
	return true;
}

/* ---------- actions ---------- */

void
SetSyncNames(const char *value)
{
	const char *names[] = {"synchronous_standby_names"};
	const char *values[] = {value};
	SetAutoConf(1, names, values, guc_monitor_timeout_ms);
}

uint32_t
KeeperWaitEvent(void)
{
	return wait_event;
}

void
StandbyConninfo(const char *host, int port_number, char *buf, size_t len)
{
	char port[16], appname[NAMEDATALEN];
	snprintf(port, sizeof(port), "%d", port_number);
	StandbyName(node_id, appname, sizeof(appname));
	const char *user = guc_replication_user;
	buf[0] = '\0';
	autopilot::pgx::CallCpp([&] {
		std::vector<std::pair<std::string, std::string>> params = {
			{"host", host}, {"port", port}, {"application_name", appname}};
		if (user != nullptr && user[0] != '\0')
			params.emplace_back("user", user);
		std::string s = autopilot::conninfo::Build(params);
		if (s.size() >= len)
			throw autopilot::Error(sqlstate::kInvalidParameterValue, "primary_conninfo is too long");
		memcpy(buf, s.c_str(), s.size() + 1);
	});
}

/* PrimaryConninfo renders the primary_conninfo of this node for the goal's primary. */
static void
PrimaryConninfo(const Goal *goal, char *buf, size_t len)
{
	StandbyConninfo(goal->primary_host, goal->primary_port, buf, len);
}

/* EnsureFollowing points primary_conninfo/primary_slot_name at the goal's primary (no-op when they do). */
static void
EnsureFollowing(const Goal *goal)
{
	char conninfo[1024], slot[NAMEDATALEN];
	PrimaryConninfo(goal, conninfo, sizeof(conninfo));
	StandbyName(node_id, slot, sizeof(slot));
	const char *names[] = {"primary_conninfo", "primary_slot_name"};
	const char *values[] = {conninfo, slot};
	SetAutoConf(2, names, values, guc_monitor_timeout_ms);
}

/*
 * RequestCloneSwap asks for the restart that swaps the finished clone in.
 * The PendingAction (std::string members) lives only inside the boundary;
 * RequestRestart reports failures through errbuf, never by ereport.
 */
static bool
RequestCloneSwap(uint64_t sysid, const Goal *goal, char *errbuf, size_t errlen)
{
	char conninfo[1024], slot[NAMEDATALEN];
	PrimaryConninfo(goal, conninfo, sizeof(conninfo));
	StandbyName(node_id, slot, sizeof(slot));
	bool ok = false;
	const bool reclone = clone_is_reclone;
	const char *new_state = clone_new_state;
	autopilot::pgx::CallCpp([&] {
		datadir::PendingAction action;
		action.kind = "clone-swap";
		action.expected_system_identifier = sysid;
		action.settings = {{"primary_conninfo", conninfo}, {"primary_slot_name", slot}};
		action.reclone = reclone;
		action.new_state = new_state;
		ok = RequestRestart(&action, "swap in the clone of the primary", errbuf, errlen);
	});
	if (ok)
		restart_requested = true;
	return ok;
}

/* PollClone follows a running pg_basebackup; on success requests the swap restart. */
static ActionResult
PollClone(const Goal *goal)
{
	char err[1024] = "";
	CloneStatus st = ClonePoll(err, sizeof(err));
	if (st == CloneStatus::Running)
		return ActionResult::InProgress;
	clone_running = false;
	if (st != CloneStatus::Done) {
		SetTickErrorf(LOG, "cloning the primary failed: %s", err[0] ? err : "unknown error");
		return ActionResult::Failed;
	}

	uint64_t clone_sysid = 0;
	bool have = false;
	autopilot::pgx::CallCpp([&] {
		auto id = datadir::ReadSystemIdentifier(datadir::CloneDir(DataDir));
		if (id) {
			clone_sysid = *id;
			have = true;
		}
	});
	if (!have || clone_sysid != goal->primary_sysid) {
		SetTickErrorf(LOG, "the finished clone has system identifier %llu, the primary has %llu; not swapping it in",
					  (unsigned long long) clone_sysid, (unsigned long long) goal->primary_sysid);
		return ActionResult::Failed;
	}
	ereport(LOG, (errmsg("pg_autopilot keeper: clone of the primary complete, restarting to swap it in")));
	if (!RequestCloneSwap(clone_sysid, goal, err, sizeof(err))) {
		SetTickErrorf(LOG, "could not request the restart that swaps the clone in: %s", err);
		return ActionResult::Failed;
	}
	clone_is_reclone = false;
	clone_new_state[0] = '\0';
	return ActionResult::InProgress;
}

static ActionResult Reclone(const LocalState *ls, const Goal *goal, const char *new_state, const char *why);

/*
 * InitStandby: same system as the primary -> follow it when it is a standby
 * already, re-clone it when it ran as a primary (t/004); different system ->
 * clone only when the data directory is pristine, otherwise refuse
 * (DESIGN.md §6.4).
 */
static ActionResult
InitStandby(const LocalState *ls, const Goal *goal)
{
	if (!goal->has_primary) {
		SetTickError(0, "waiting for the monitor to name a primary to follow");
		return ActionResult::InProgress;
	}
	if (clone_running)
		return PollClone(goal);
	if (ls->system_identifier == goal->primary_sysid) {
		if (ls->in_recovery) {
			EnsureFollowing(goal);
			return ActionResult::Done;
		}
		/*
		 * A copy of the primary that was started without standby.signal ran
		 * as a primary: it ended recovery and wrote WAL of its own (at least
		 * its end-of-recovery checkpoint) at positions where the primary's
		 * history goes on, on the same timeline.  Started as a standby it
		 * would stream the primary's WAL but never replay it ("incorrect
		 * prev-link"), and pg_rewind sees no timeline fork to repair: it is
		 * re-cloned, its data directory kept aside.
		 */
		return Reclone(ls, goal, "",
					   "is a copy of the primary that was started as a primary (without standby.signal) and wrote "
					   "WAL of its own where the primary's history goes on");
	}

	char why[512] = "";
	bool pristine = false;
	autopilot::pgx::CallCpp([&] {
		std::string reason;
		pristine = datadir::IsPristine(DataDir, &reason);
		strlcpy(why, reason.c_str(), sizeof(why));
	});
	if (!pristine) {
		SetTickErrorf(WARNING,
					  "data directory \"%s\" holds a different database system (system identifier %llu, primary has "
					  "%llu) with user data (%s); refusing to overwrite it",
					  DataDir, (unsigned long long) ls->system_identifier, (unsigned long long) goal->primary_sysid,
					  why);
		return ActionResult::Failed;
	}

	char conninfo[1024], err[1024];
	PrimaryConninfo(goal, conninfo, sizeof(conninfo));
	if (!CloneStart(conninfo, err, sizeof(err))) {
		SetTickErrorf(LOG, "could not start cloning the primary: %s", err);
		return ActionResult::Failed;
	}
	clone_running = true;
	clone_is_reclone = false;
	clone_new_state[0] = '\0';
	ereport(LOG, (errmsg("pg_autopilot keeper: cloning the primary at %s:%d into \"%s.clone\"", goal->primary_host,
						 goal->primary_port, DataDir)));
	return ActionResult::InProgress;
}

/* ---------- demotion, promotion, rewind, fencing (docs/failover.md) ---------- */

/* RestartOnce asks for a same-PID restart once per keeper process (the keeper ends with the shutdown). */
static bool
RestartOnce(const datadir::PendingAction *action, const char *reason)
{
	char err[1024];
	if (restart_requested)
		return true;
	if (!RequestRestart(action, reason, err, sizeof(err))) {
		SetTickErrorf(LOG, "could not request a restart (%s): %s", reason, err);
		return false;
	}
	restart_requested = true;
	return true;
}

/* NeedsReclone tells whether a failed pg_rewind left <PGDATA>.autopilot/needs_reclone. */
static bool
NeedsReclone(void)
{
	bool exists = false;
	autopilot::pgx::CallCpp([&] {
		struct stat st;
		exists = stat(datadir::NeedsRecloneFile(DataDir).c_str(), &st) == 0;
	});
	return exists;
}

/*
 * DemoteClean (primary -> draining for a switchover, primary/wait_primary ->
 * demote_timeout in a failover): a standby without upstream after a clean
 * fast shutdown and a same-PID re-exec.  The shutdown streams all WAL to the
 * connected standbys and writes the shutdown checkpoint, so a candidate can
 * receive everything before it is promoted and this node then follows the
 * new timeline without a rewind.  synchronous_standby_names is deliberately
 * left as it is: emptying it would acknowledge waiting commits that the
 * candidate may never receive (in a failover it has stopped streaming); the
 * fast shutdown terminates those sessions unacknowledged instead, so nothing
 * waits on the way down.  The login fence goes up first.  Done once the
 * server runs in recovery, i.e. in the keeper process after the re-exec.
 *
 * The demotion never depends on a confirmed reload: when the fence, the
 * standby settings (a broken postgresql.conf makes the reload unconfirmable)
 * or the restart request fail, it falls back to the self-fence —
 * standby.signal and a crash restart (FenceAndCrashRestart, no return) —
 * rather than retrying while the node stays writable.  The crash restart
 * skips the shutdown checkpoint, but the node writes nothing afterwards, so
 * the candidate still receives all of its WAL (from the node in recovery)
 * and it follows the new timeline without a rewind.
 */
static void
DemoteCleanFiles(void *)
{
	SetFence(true, "the node is being demoted");
	const char *names[] = {"primary_conninfo"};
	const char *values[] = {""};
	SetAutoConf(1, names, values, guc_monitor_timeout_ms);
	CreateStandbySignal();
}

static ActionResult
DemoteClean(const LocalState *ls)
{
	if (ls->in_recovery)
		return ActionResult::Done;
	if (restart_requested)
		return ActionResult::InProgress;
	char err[kErrorLen], why[kErrorLen + 64];
	if (!RunTrapped(DemoteCleanFiles, nullptr, err, sizeof(err))) {
		snprintf(why, sizeof(why), "the clean demotion failed: %s", err);
		ereport(WARNING, (errmsg("pg_autopilot keeper: %s; fencing instead: crash restart as a standby", why)));
		FenceAndCrashRestart(why);
	}
	ereport(LOG, (errmsg("pg_autopilot keeper: demoting: clean fast shutdown, then restart as a standby without "
						 "upstream (same postmaster PID)")));
	if (!RestartOnce(nullptr, "demote: restart as a standby")) {
		ereport(WARNING, (errmsg("pg_autopilot keeper: could not request the clean demotion restart; fencing "
								 "instead: crash restart as a standby")));
		FenceAndCrashRestart("the restart for the clean demotion could not be requested");
	}
	return ActionResult::InProgress;
}

/*
 * StopReplication (candidate, secondary -> prepare_promotion): empty
 * primary_conninfo (confirmed reload), then wait until the startup process
 * has stopped the walreceiver, so that the next report says streaming=false
 * with the final received LSN.
 */
static ActionResult
StopReplication(const LocalState *ls)
{
	if (!ls->in_recovery) {
		SetTickError(WARNING, "assigned to stop replication, but this server is not in recovery; not acting");
		return ActionResult::Failed;
	}
	return StopStreaming("promotion candidate");
}

/*
 * Promote (candidate, prepare_promotion -> stop_replication; also a fenced
 * primary the monitor still wants as primary): what pg_promote() does —
 * the promote signal file (fsynced) and SIGUSR1 to the postmaster — then a
 * latch wait until recovery has ended (deadline kPromoteTimeoutMs, retried
 * at the next tick), then an immediate checkpoint, which a pg_rewind source
 * needs (pg_control must show the new timeline).  The startup process
 * removes standby.signal itself.
 */
static ActionResult
Promote(const LocalState *ls)
{
	TimestampTz start = GetCurrentTimestamp();
	if (ls->in_recovery) {
		FILE *f = AllocateFile(PROMOTE_SIGNAL_FILE, "w");
		if (f == nullptr)
			ereport(ERROR,
					(errcode_for_file_access(), errmsg("could not create file \"%s\": %m", PROMOTE_SIGNAL_FILE)));
		if (FreeFile(f) != 0)
			ereport(ERROR, (errcode_for_file_access(), errmsg("could not close file \"%s\": %m", PROMOTE_SIGNAL_FILE)));
		fsync_fname(PROMOTE_SIGNAL_FILE, false);
		if (kill(PostmasterPid, SIGUSR1) != 0)
			ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR),
							errmsg("could not send SIGUSR1 to the postmaster (PID %d): %m", (int) PostmasterPid)));

		TimestampTz deadline = TimestampTzPlusMilliseconds(start, kPromoteTimeoutMs);
		while (RecoveryInProgress()) {
			CHECK_FOR_INTERRUPTS();
			if (GetCurrentTimestamp() >= deadline) {
				SetTickErrorf(LOG, "promotion not finished after %d ms; retrying", kPromoteTimeoutMs);
				return ActionResult::InProgress;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kPollMs, wait_event);
			ResetLatch(MyLatch);
		}
	}
	long promoted_ms = TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
	RequestCheckpoint(CHECKPOINT_FORCE | CHECKPOINT_WAIT | CHECKPOINT_IMMEDIATE);
	ereport(LOG, (errmsg("pg_autopilot keeper: promoted in %ld ms, now timeline %u (checkpoint done after %ld ms)",
						 promoted_ms, GetWALInsertionTimeLine(),
						 TimestampDifferenceMilliseconds(start, GetCurrentTimestamp()))));
	return ActionResult::Done;
}

/*
 * Reclone replaces a former member's diverged copy by a fresh clone of the
 * primary (same system identifier, so the pristine check of a first join does
 * not apply: DESIGN.md §6.4 allows re-cloning a former member of the same
 * group).  The swap records `new_state` ("" keeps the current one).
 */
static const char *const kRecloneDiverged =
	"is a former member of the group whose history diverged and could not be rewound";

static ActionResult
Reclone(const LocalState *ls, const Goal *goal, const char *new_state, const char *why)
{
	if (clone_running)
		return PollClone(goal);
	if (ls->system_identifier != goal->primary_sysid) {
		SetTickErrorf(WARNING,
					  "this node must be re-cloned but the primary is another database system (%llu, ours %llu); "
					  "not acting",
					  (unsigned long long) goal->primary_sysid, (unsigned long long) ls->system_identifier);
		return ActionResult::Failed;
	}
	char conninfo[1024], err[1024];
	PrimaryConninfo(goal, conninfo, sizeof(conninfo));
	if (!CloneStart(conninfo, err, sizeof(err))) {
		SetTickErrorf(LOG, "could not start re-cloning the primary: %s", err);
		return ActionResult::Failed;
	}
	clone_running = true;
	clone_is_reclone = true;
	strlcpy(clone_new_state, new_state, sizeof(clone_new_state));
	ereport(LOG, (errmsg("pg_autopilot keeper: re-cloning this node from the primary at %s:%d", goal->primary_host,
						 goal->primary_port),
				  errdetail("This node (system identifier %llu) %s; its data directory is kept aside after the swap.",
							(unsigned long long) ls->system_identifier, why)));
	return ActionResult::InProgress;
}

/*
 * DemoteRewind (unplanned, primary/wait_primary/demote_timeout -> demoted;
 * also a node told to follow that still runs as a primary): the node held
 * the primary's role and may have written WAL the new primary never got.
 * It stays fenced; once the monitor names a new writable primary, a fast
 * shutdown leaves a cleanly shut down data directory and the pre-start hook
 * runs pg_rewind from that primary (a no-op when nothing diverged), writes
 * the standby settings and records `new_state` — the keeper process after
 * the re-exec then finds the action done.  A failed rewind leaves
 * needs_reclone: then the node is re-cloned.
 */
static ActionResult
DemoteRewind(const LocalState *ls, const Goal *goal, const char *new_state)
{
	SetFence(true, "the node held the primary's role and may have diverged; it is rewound onto the new primary");
	if (!goal->has_primary || goal->primary_node_id == node_id) {
		SetTickError(LOG, "demoted: waiting for the monitor to name the new primary to rewind from");
		return ActionResult::InProgress;
	}
	if (NeedsReclone())
		return Reclone(ls, goal, new_state, kRecloneDiverged);
	if (restart_requested)
		return ActionResult::InProgress;

	char conninfo[1024], source[1024], slot[NAMEDATALEN], port[16];
	PrimaryConninfo(goal, conninfo, sizeof(conninfo));
	StandbyName(node_id, slot, sizeof(slot));
	snprintf(port, sizeof(port), "%d", goal->primary_port);
	const char *user = guc_replication_user;
	bool ok = false;
	char err[1024] = "";
	autopilot::pgx::CallCpp([&] {
		std::vector<std::pair<std::string, std::string>> params = {{"host", goal->primary_host},
																   {"port", port},
																   {"dbname", "postgres"},
																   {"application_name", "pg_autopilot rewind"}};
		if (user != nullptr && user[0] != '\0')
			params.emplace_back("user", user);
		std::string s = autopilot::conninfo::Build(params);
		if (s.size() >= sizeof(source))
			throw autopilot::Error(sqlstate::kInvalidParameterValue, "pg_rewind source conninfo is too long");
		memcpy(source, s.c_str(), s.size() + 1);
	});
	/*
	 * Whatever happens between the shutdown and the rewind (a crash, a lost
	 * or unreadable pending file), the next start is a standby without
	 * upstream, never a writable primary: standby.signal and an empty
	 * primary_conninfo are on disk before the restart is requested.  The
	 * rewind's own settings replace them.  No reload to wait for: the
	 * re-exec reads the files afresh.
	 */
	const char *sb_names[] = {"primary_conninfo"};
	const char *sb_values[] = {""};
	SetAutoConf(1, sb_names, sb_values, 0);
	CreateStandbySignal();
	ereport(LOG, (errmsg("pg_autopilot keeper: rewinding onto the new primary at %s:%d: clean fast shutdown, then "
						 "pg_rewind in the pre-start hook and a restart as its standby (same postmaster PID)",
						 goal->primary_host, goal->primary_port)));
	autopilot::pgx::CallCpp([&] {
		datadir::PendingAction action;
		action.kind = "rewind";
		action.source = source;
		action.new_state = new_state;
		action.settings = {
			{"primary_conninfo", conninfo}, {"primary_slot_name", slot}, {"synchronous_standby_names", ""}};
		ok = RequestRestart(&action, "rewind onto the new primary", err, sizeof(err));
	});
	if (!ok) {
		SetTickErrorf(LOG, "could not request the rewind restart: %s", err);
		return ActionResult::Failed;
	}
	restart_requested = true;
	return ActionResult::InProgress;
}

/* FollowPrimary: point primary_conninfo/slot at the primary; a node not in recovery is rewound first. */
static ActionResult
FollowPrimary(const LocalState *ls, const Goal *goal)
{
	if (!goal->has_primary) {
		SetTickError(0, "waiting for the monitor to name a primary to follow");
		return ActionResult::InProgress;
	}
	if (NeedsReclone())
		return Reclone(ls, goal, "", kRecloneDiverged);
	if (!ls->in_recovery) {
		SetTickErrorf(WARNING, "assigned %s, but this server still runs as a primary; rewinding it onto the primary",
					  fsm::StateName(assigned));
		return DemoteRewind(ls, goal, fsm::StateName(current));
	}
	EnsureFollowing(goal);
	return ActionResult::Done;
}

/* IsolationWatched: a writable node the monitor may replace (single has nobody to be replaced by). */
static bool
IsolationWatched(const LocalState *ls)
{
	return !ls->in_recovery && current != NodeState::Single && IsWritable(current);
}

/*
 * LiftFenceIfProven lifts the login fence when the node's role is proven
 * (docs/failover.md "The old primary comes back"):
 *  - confirmed: the monitor has just assigned this writable node the state
 *    it reported (after_heartbeat);
 *  - at least k of the standbys named in the ANY k (...) this primary runs
 *    with stream from it (SyncQuorumStreams, election.cpp): an election
 *    needs all but k - 1 of them stopped, and a stopped standby never
 *    streams from the old primary again, so no other node was promoted.
 *    With one standby this is "the synchronous standby streams from us";
 *    the monitor's failover of a one-standby group stops it first too;
 *  - a standby that catches up, is secondary or joins the new primary
 *    after an election streams from the primary: its history is a prefix
 *    of the primary's.  "Streams" means the walreceiver is in state
 *    streaming and this process has not found the standby diverged
 *    (DivergedBlocksFenceLift): a diverged one stays connected, waiting at
 *    the end of a timeline it cannot leave.
 */
/*
 * StreamsFromPrimary: the walreceiver is connected to the node the monitor
 * names as the group's primary (host and port as the monitor gave them,
 * which is what primary_conninfo was built from).  Streaming from anything
 * else — an old primary that was failed over, a standby — proves nothing
 * about this node's history.
 */
static bool
StreamsFromPrimary(const LocalState *ls, const Goal *goal)
{
	return ls->wal_receiver_streaming && goal != nullptr && goal->has_primary &&
		   strcmp(ls->sender_host, goal->primary_host) == 0 && ls->sender_port == goal->primary_port;
}

/*
 * ConninfoTarget: whom this server's primary_conninfo names (the GUC as
 * this process last loaded it: the keeper's own writer reloads after every
 * change): kNobody for '' (a cleanly demoted old primary), kPrimary for the
 * node the monitor names as the group's primary, kOther for any other node
 * or while the group has none (ConninfoOffPrimary).  An unparseable value
 * counts as another node (a WARNING says why).  Host and port are compared
 * as the monitor gave them, which is what StandbyConninfo built the value
 * from.
 */
enum class ConninfoNames { kNobody, kPrimary, kOther };

static ConninfoNames
ConninfoTarget(const Goal *goal)
{
	const char *value = GetConfigOption("primary_conninfo", true, false);
	if (value == nullptr || value[0] == '\0')
		return ConninfoNames::kNobody;
	if (goal == nullptr || !goal->has_primary)
		return ConninfoNames::kOther;
	char host[256] = "";
	int port = 0;
	bool parsed = autopilot::pgx::CallCppNoThrow([&] {
		for (const auto &kv : autopilot::conninfo::ParseParams(value)) {
			if (kv.first == "host")
				snprintf(host, sizeof(host), "%s", kv.second.c_str());
			else if (kv.first == "port")
				port = atoi(kv.second.c_str());
		}
	});
	if (!parsed || strcmp(host, goal->primary_host) != 0 || port != goal->primary_port)
		return ConninfoNames::kOther;
	return ConninfoNames::kPrimary;
}

static bool
ConninfoOffPrimary(const Goal *goal)
{
	return ConninfoTarget(goal) == ConninfoNames::kOther;
}

/*
 * StuckBehindPrimary: primary_conninfo names the monitor's primary, the
 * walreceiver does not stream, and the monitor saw that primary on a later
 * timeline than this server's: a promotion this standby has not followed,
 * and its WAL may go past the fork (simulator seed 49: a maintenance
 * standby's old upstream was failed over, rewound and promoted again).
 */
static bool
StuckBehindPrimary(const LocalState *ls, const Goal *goal)
{
	return !ls->wal_receiver_streaming && goal != nullptr && goal->primary_timeline > ls->timeline &&
		   ConninfoTarget(goal) == ConninfoNames::kPrimary;
}

static void
LiftFenceIfProven(const LocalState *ls, const Goal *goal)
{
	if (!IsFenced())
		return;
	if (ls->in_recovery) {
		if ((current == NodeState::Catchingup || current == NodeState::Secondary ||
			 current == NodeState::JoinSecondary) &&
			StreamsFromPrimary(ls, goal) && !NeedsReclone() && !DivergedBlocksFenceLift())
			SetFence(false, "this standby streams from the primary");
		/*
		 * Maintenance is reached only from a standby state or from demoted,
		 * i.e. after a clean demotion or a completed rewind: its history is a
		 * prefix of the primary's, so it may serve reads while the operator
		 * works on it, even though it does not stream — but not while it
		 * streams from a node that is not the primary, nor while its
		 * primary_conninfo names one (FenceMaintenanceOffPrimary).
		 */
		else if (current == NodeState::Maintenance && goal != nullptr && goal->assigned == NodeState::Maintenance &&
				 (!ls->wal_receiver_streaming || StreamsFromPrimary(ls, goal)) && !ConninfoOffPrimary(goal) &&
				 !StuckBehindPrimary(ls, goal) && !NeedsReclone())
			SetFence(false, "the monitor confirms this standby is in maintenance");
		return;
	}
	if (!IsWritable(current))
		return;
	if (goal != nullptr && goal->assigned == current) {
		char why[128];
		snprintf(why, sizeof(why), "the monitor confirms this node as the primary (state %s)", fsm::StateName(current));
		SetFence(false, why);
	} else if (current == NodeState::Primary && SyncQuorumStreams(ls))
		SetFence(false, "a quorum of synchronous standbys streams from this primary, so no other node was promoted");
}

/*
 * FenceMaintenanceOffPrimary: a standby in maintenance keeps whatever
 * upstream it had (automation leaves it alone), so it may go on streaming
 * from an old primary after another node was promoted and receive WAL the
 * new timeline does not contain.  It must not serve those reads (DESIGN.md
 * §6.3): the login fence goes up while it streams from anything but the
 * monitor's current primary (also while the group has none, during a
 * failover), and comes down through LiftFenceIfProven.  It also goes up
 * while its primary_conninfo names a node other than the monitor's primary
 * (ConninfoOffPrimary), streaming or not: it may have received WAL past the
 * new primary's fork point from that old primary before it stopped
 * streaming (the old primary was rewound or went down; simulator seed 49).
 * A maintenance node with an empty primary_conninfo (an old primary
 * demoted cleanly into maintenance) keeps serving reads.
 */
static void
FenceMaintenanceOffPrimary(const LocalState *ls, const Goal *goal)
{
	if (current != NodeState::Maintenance || !ls->in_recovery || IsFenced())
		return;
	char why[kErrorLen];
	if (ls->wal_receiver_streaming && !StreamsFromPrimary(ls, goal))
		snprintf(why, sizeof(why), "this standby in maintenance streams from %s:%d, which is not the group's primary",
				 ls->sender_host, ls->sender_port);
	else if (ConninfoOffPrimary(goal))
		snprintf(why, sizeof(why),
				 "the primary_conninfo of this standby in maintenance names a node that is not the group's primary");
	else if (StuckBehindPrimary(ls, goal))
		snprintf(why, sizeof(why),
				 "this standby in maintenance does not stream from the primary, which is on a later timeline (%u) "
				 "than its own (%u)",
				 goal->primary_timeline, ls->timeline);
	else
		return;
	SetFence(true, why);
}

/* RequireNotInRecovery reports a primary-only action assigned to a server in recovery; false then. */
static bool
RequireNotInRecovery(const LocalState *ls, KeeperAction action)
{
	if (!ls->in_recovery)
		return true;
	SetTickErrorf(WARNING, "assigned state %s needs a primary, but this server is in recovery; not acting (%s)",
				  fsm::StateName(assigned), fsm::KeeperActionName(action));
	return false;
}

static ActionResult
RunAction(KeeperAction action, const LocalState *ls, const Goal *goal)
{
	switch (action) {
	case KeeperAction::None:
		return ActionResult::Done;
	case KeeperAction::BecomeSingle:
		if (!RequireNotInRecovery(ls, action))
			return ActionResult::Failed;
		SetSyncNames("");
		return ActionResult::Done;
	case KeeperAction::PrepareStandbys:
		if (!RequireNotInRecovery(ls, action))
			return ActionResult::Failed;
		EnsureSlots(goal->standby_slots);
		/* The standby starts cloning once we report: let it in first. */
		if (!EnsurePeersInHba(goal))
			return ActionResult::InProgress;
		SetSyncNames("");
		return ActionResult::Done;
	case KeeperAction::EnableSyncRep:
		if (!RequireNotInRecovery(ls, action))
			return ActionResult::Failed;
		if (goal->has_slots)
			EnsureSlots(goal->standby_slots);
		SetSyncNames(goal->ssn);
		return ActionResult::Done;
	case KeeperAction::DisableSyncRep:
		if (!RequireNotInRecovery(ls, action))
			return ActionResult::Failed;
		SetSyncNames("");
		return ActionResult::Done;
	case KeeperAction::InitStandby:
		return InitStandby(ls, goal);
	case KeeperAction::FollowPrimary:
		return FollowPrimary(ls, goal);
	case KeeperAction::DemoteClean:
		return DemoteClean(ls);
	case KeeperAction::DemoteRewind:
		return DemoteRewind(ls, goal, fsm::StateName(goal->assigned));
	case KeeperAction::StopReplication:
		return StopReplication(ls);
	case KeeperAction::Promote:
		return Promote(ls);
	/* docs/elections.md (election.cpp). */
	case KeeperAction::ApplySettings:
		return ApplySettings(ls, goal);
	case KeeperAction::ReportLsn:
		return ReportLsn(ls, goal);
	case KeeperAction::FastForward:
		return FastForward(ls, goal);
	case KeeperAction::JoinNewPrimary:
		/* The new primary's timeline continues our WAL (it had the most of it): follow it, no rewind. */
		return FollowPrimary(ls, goal);
	case KeeperAction::Dropped:
		return LeaveFormation(ls, current);
	}
	return ActionResult::Failed;
}

/*
 * PromoteBack: the node fenced itself (or was restarted as a standby) while
 * it held the primary's role, but the monitor still assigns it a writable
 * state: no failover happened, so it is promoted back before anything else;
 * the fence is lifted once the monitor confirms it.  Returns true when it
 * handled the tick.
 */
static bool
PromoteBack(const LocalState *ls, const Goal *goal)
{
	if (!ls->in_recovery || !IsWritable(current) || !IsWritable(goal->assigned))
		return false;
	if (NeedsReclone()) {
		SetTickError(WARNING, "assigned the primary's role, but a failed pg_rewind left this node to be re-cloned");
		return true;
	}
	ereport(LOG, (errmsg("pg_autopilot keeper: the monitor still assigns %s to this node, which runs as a standby "
						 "after fencing itself: promoting it back",
						 fsm::StateName(goal->assigned))));
	(void) Promote(ls);
	return true;
}

/*
 * EnsurePeersInHba (keeper.hpp; hba_file.cpp): a failure is reported like
 * any tick error and retried at the next tick.
 */
bool
EnsurePeersInHba(const Goal *goal)
{
	char err[kErrorLen];
	if (guc_hba_method == nullptr || guc_hba_method[0] == '\0')
		return true;
	if (monitor_conn == nullptr)
		return false;
	if (EnsureHba(monitor_conn, node_id, group_id, goal->standby_slots, wait_event, err, sizeof(err)))
		return true;
	SetTickErrorf(WARNING, "could not update pg_hba.conf for the other nodes: %s", err);
	return false;
}

/*
 * Steady keeps a node whose current state equals its goal in line with the
 * monitor's latest values.  A primary keeps a slot (and HBA lines) for every
 * other node and the monitor's names.  A following standby re-points at
 * whatever node primary_* names: a new host or port, and after a switchover
 * with several standbys the new primary — its WAL is a prefix of the
 * candidate's, and recovery_target_timeline = 'latest' (the default) makes
 * the walreceiver fetch the new timeline's history and follow it.  While a
 * role change is in flight primary_* is NULL and nothing moves.  With
 * hba_method set, standbys keep pg_hba.conf lines for the other nodes too.
 */
static void
Steady(const LocalState *ls, const Goal *goal)
{
	if (!ls->in_recovery && IsWritable(current)) {
		if (goal->has_slots) {
			EnsureSlots(goal->standby_slots);
			(void) EnsurePeersInHba(goal);
		}
		if (goal->has_ssn)
			SetSyncNames(goal->ssn);
	} else if (ls->in_recovery) {
		bool follows =
			current == NodeState::Catchingup || current == NodeState::Secondary || current == NodeState::JoinSecondary;
		/* Any standby may have to serve WAL to an election winner (fast_forward): admit the peers (cached). */
		if (follows || current == NodeState::ReportLsn)
			(void) EnsurePeersInHba(goal);
		bool names_primary =
			goal->has_primary && goal->primary_node_id != node_id && goal->primary_sysid == ls->system_identifier;
		if (follows && names_primary) {
			EnsureFollowing(goal);
			/* WAL beyond the primary's fork point: fenced by StandbyDiverged, rewound here (diverged.cpp). */
			if (StandbyDiverged(goal, ls->system_identifier))
				(void) DemoteRewind(ls, goal, fsm::StateName(current));
		} else if (current == NodeState::ReportLsn && names_primary) {
			/* An election participant told of the new primary: fenced if diverged, rewound once it joins. */
			(void) StandbyDiverged(goal, ls->system_identifier);
		} else if (current == NodeState::FastForward && goal->has_upstream) {
			/*
			 * The monitor may name another source once this one is reached
			 * (the old primary came back ahead): fetch from it, or be rewound
			 * onto it when our WAL went past its fork.  Quiet while there is
			 * nothing to do (FetchSourceDiverged logs only a divergence).
			 */
			if (FetchSourceDiverged(goal, ls->system_identifier))
				(void) RewindOntoUpstream(ls, goal);
			else if (ls->lsn < goal->upstream_lsn)
				(void) FastForward(ls, goal);
		}
	}
}

/*
 * WatchWithoutMonitor: this tick got no answer, but the last one named a
 * primary.  A following standby or an election participant goes on checking
 * its history against it (fence only: the rewind waits for the monitor's
 * next answer), a standby in maintenance that it streams from no other node
 * (simulator seeds 159, 917, 14509: the monitor was lost right after it
 * named a new primary, and the check never ran).
 */
static void
WatchWithoutMonitor(const LocalState *ls)
{
	if (!have_last_goal || !ls->in_recovery || current == NodeState::Dropped)
		return;
	bool watches = current == NodeState::Catchingup || current == NodeState::Secondary ||
				   current == NodeState::JoinSecondary || current == NodeState::ReportLsn;
	if (watches && last_goal.has_primary && last_goal.primary_node_id != node_id &&
		last_goal.primary_sysid == ls->system_identifier)
		(void) StandbyDiverged(&last_goal, ls->system_identifier);
	FenceMaintenanceOffPrimary(ls, &last_goal);
}

ActionResult
RewindOntoUpstream(const LocalState *ls, const Goal *goal)
{
	Goal source;
	UpstreamAsPrimary(goal, &source);
	return DemoteRewind(ls, &source, fsm::StateName(current));
}

void
UpstreamAsPrimary(const Goal *goal, Goal *out)
{
	*out = *goal;
	out->has_primary = true;
	out->primary_node_id = goal->upstream_node_id;
	strlcpy(out->primary_host, goal->upstream_host, sizeof(out->primary_host));
	out->primary_port = goal->upstream_port;
}

/* ---------- a dropped node (docs/elections.md, drop_node) ---------- */

static bool dropped_reported = false; /* the one report of `dropped` was attempted */
static bool dropped_logged = false;

static bool
StateFileExists(void)
{
	bool exists = false;
	autopilot::pgx::CallCpp([&] {
		struct stat st;
		exists = stat(datadir::StateFile(DataDir).c_str(), &st) == 0;
	});
	return exists;
}

/*
 * DroppedIdle: the node was removed from its formation.  The keeper reports
 * `dropped` once, on the session it still has (the monitor then deletes the
 * node's row), closes the session and idles.  It never registers again —
 * a dropped node must not come back by itself — until the DBA removes the
 * state file <PGDATA>.autopilot/state (README), which it looks for at every
 * wake-up (kIdleMs, or a reload).  A keeper that restarts in state dropped
 * idles at once: its report, if it never arrived, is replaced by
 * drop_node(..., force => true).  Returns the wait before the next tick.
 */
static long
DroppedIdle(const LocalState *ls)
{
	if (!StateFileExists()) {
		ereport(LOG, (errmsg("pg_autopilot keeper: the state file of the dropped node was removed: registering "
							 "again")));
		DropMonitor();
		current = NodeState::Init;
		node_id = 0;
		group_id = -1;
		have_assigned = false;
		dropped_reported = dropped_logged = false;
		return 0;
	}
	if (monitor_conn != nullptr && !dropped_reported) {
		Goal goal;
		memset(&goal, 0, sizeof(goal));
		dropped_reported = true;
		(void) Heartbeat(ls, &goal);
	}
	DropMonitor();
	if (!dropped_logged) {
		char path[MAXPGPATH] = "";
		autopilot::pgx::CallCpp([&] { strlcpy(path, datadir::StateFile(DataDir).c_str(), sizeof(path)); });
		ereport(LOG, (errmsg("pg_autopilot keeper: node \"%s\" was dropped from formation \"%s\"; the keeper stays "
							 "idle and does not register again",
							 guc_node_name, guc_formation),
					  errhint("To add this node again, remove \"%s\" and reload the configuration.", path)));
		dropped_logged = true;
	}
	return kIdleMs;
}

/* ---------- the tick ---------- */

/* KeeperTick runs one gather/decide/apply round; returns how long to wait before the next (ms). */
static long
KeeperTick(void)
{
	LocalState ls;
	Goal goal;
	char cfg[kErrorLen];

	memset(&goal, 0, sizeof(goal));
	ReadLocalState(&ls);
	if (restart_requested) {
		/* The postmaster is shutting down for a same-PID restart; this process ends with it. */
		SetTickError(0, "waiting for the requested restart");
		return guc_heartbeat_interval_ms;
	}
	CheckIsolation(IsolationWatched(&ls), node_id);
	LiftFenceIfProven(&ls, nullptr);

	if (!ValidateSettings(cfg, sizeof(cfg))) {
		DropMonitor();
		if (strcmp(cfg, published_error) != 0)
			ereport(WARNING, (errmsg("pg_autopilot keeper is idle: %s", cfg),
							  errhint("Set these parameters in postgresql.conf and reload; the keeper checks again "
									  "on every reload.")));
		SetTickError(0, cfg);
		return kIdleMs;
	}
	if (current == NodeState::Dropped)
		return DroppedIdle(&ls);

	tick_monitor_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), guc_monitor_timeout_ms);
	if (monitor_conn != nullptr && IdentityChanged()) {
		ereport(LOG, (errmsg("pg_autopilot keeper: identity settings changed, registering again")));
		DropMonitor();
	}
	if (monitor_conn == nullptr) {
		long wait = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_connect_at);
		if (wait > 0) {
			/* Keep the error of the outage visible while waiting. */
			SetTickError(0, published_error);
			WatchWithoutMonitor(&ls);
			return wait;
		}
		if (!ConnectAndRegister(&ls)) {
			WatchWithoutMonitor(&ls);
			return backoff_ms;
		}
	}
	if (!Heartbeat(&ls, &goal)) {
		WatchWithoutMonitor(&ls);
		return backoff_ms;
	}
	memcpy(&last_goal, &goal, sizeof(goal));
	have_last_goal = true;
	LiftFenceIfProven(&ls, &goal);
	FenceMaintenanceOffPrimary(&ls, &goal);
	if (PromoteBack(&ls, &goal))
		return 0; /* report as a primary again at once */
	ApplyWantedSettings(&goal);

	if (current == goal.assigned) {
		Steady(&ls, &goal);
		return guc_heartbeat_interval_ms;
	}

	KeeperAction action = KeeperAction::None;
	const char *why = "";
	if (!LookupTransition(current, goal.assigned, &action, &why)) {
		SetTickErrorf(WARNING, "no keeper transition from %s to %s", fsm::StateName(current),
					  fsm::StateName(goal.assigned));
		return guc_heartbeat_interval_ms;
	}

	ActionResult r = RunAction(action, &ls, &goal);
	if (r != ActionResult::Done)
		return guc_heartbeat_interval_ms;

	ereport(LOG, (errmsg("pg_autopilot keeper: %s -> %s (%s): %s", fsm::StateName(current),
						 fsm::StateName(goal.assigned), fsm::KeeperActionName(action), why)));
	current = goal.assigned;
	PersistState();
	return 0; /* report the new state now */
}

/* RunTickGuarded runs a tick and turns an ERROR into last_error (see the header comment). */
static long
RunTickGuarded(void)
{
	volatile long wait_ms = guc_heartbeat_interval_ms;

	tick_error[0] = '\0';
	PG_TRY();
	{
		wait_ms = KeeperTick();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(TopMemoryContext);
		ErrorData *edata = CopyErrorData();
		if (strcmp(edata->message ? edata->message : "", published_error) != 0)
			EmitErrorReport();
		FlushErrorState();
		LWLockReleaseAll();
		ConditionVariableCancelSleep();
		pgstat_report_wait_end();
		if (MyReplicationSlot != nullptr)
			ReplicationSlotRelease();
		/* A call interrupted mid-flight leaves the session unusable. */
		if (monitor_conn != nullptr && PQtransactionStatus(monitor_conn) != PQTRANS_IDLE)
			DropMonitor();
		tick_error[0] = '\0';
		SetTickError(0, edata->message ? edata->message : "unknown error");
		FreeErrorData(edata);
		RESUME_INTERRUPTS();
		wait_ms = guc_heartbeat_interval_ms;
	}
	PG_END_TRY();
	if (rewind_unsupported && tick_error[0] == '\0')
		SetTickError(WARNING, "neither wal_log_hints nor data checksums are on: pg_rewind cannot rewind this node "
							  "after a failover, it would have to be re-cloned");
	EndTickErrors();
	/* An isolated primary must notice within fence_timeout, whatever else the keeper waits for. */
	LocalState ls;
	ReadLocalState(&ls);
	if (IsolationWatched(&ls) && wait_ms > kFenceWatchIntervalMs)
		wait_ms = kFenceWatchIntervalMs;
	return wait_ms;
}

/* WaitForWork sleeps up to wait_ms on the latch and the monitor socket; a NOTIFY ends it early. */
static void
WaitForWork(long wait_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	for (;;) {
		long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
			return;
		int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
		pgsocket sock = PGINVALID_SOCKET;
		if (monitor_conn != nullptr && (sock = PQsocket(monitor_conn)) != PGINVALID_SOCKET)
			events |= WL_SOCKET_READABLE;
		int rc = WaitLatchOrSocket(MyLatch, events, sock, remaining, wait_event);

		if (rc & WL_LATCH_SET) {
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			return; /* SIGHUP or another wake-up: tick now */
		}
		if (rc & WL_SOCKET_READABLE) {
			bool got = false;
			if (!PQconsumeInput(monitor_conn)) {
				MonitorFailed("lost the connection to the monitor", PQerrorMessage(monitor_conn));
				EndTickErrors();
				return;
			}
			DrainNotifies(&got);
			if (got)
				return;
		}
	}
}

/*
 * AnnounceStopping tells the monitor, best effort, that this node is being
 * shut down cleanly, so that a planned restart of the primary is not taken
 * for a failure (rule primary_failed waits out the monitor's restart_grace).
 * Runs from the exit callback, hence its own bounded loop without
 * CHECK_FOR_INTERRUPTS (we are already exiting): at most
 * kAnnounceTimeoutMs, so a fast shutdown is never held up noticeably.  Only
 * when the postmaster is alive: a killed postmaster is a failure and must
 * look like one.
 */
static void
AnnounceStopping(void)
{
	/* Long enough for a loopback or LAN round trip, short next to a shutdown. */
	constexpr long kAnnounceTimeoutMs = 300;

	if (monitor_conn == nullptr || node_id <= 0 || !PostmasterIsAlive() || PQisBusy(monitor_conn))
		return;
	char id_text[24];
	snprintf(id_text, sizeof(id_text), "%lld", (long long) node_id);
	const char *params[] = {guc_formation, id_text};
	if (!PQsendQueryParams(monitor_conn, "SELECT pg_autopilot.node_stopping($1::text, $2::bigint)", 2, nullptr, params,
						   nullptr, nullptr, 0))
		return;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kAnnounceTimeoutMs);
	for (;;) {
		int flushed = PQflush(monitor_conn);
		if (flushed < 0)
			return;
		if (flushed == 0 && !PQisBusy(monitor_conn))
			break;
		long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left <= 0)
			return;
		/* WL_POSTMASTER_DEATH, not WL_EXIT_ON_PM_DEATH: we are inside proc_exit already. */
		int events = WL_TIMEOUT | WL_POSTMASTER_DEATH | (flushed == 1 ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE);
		if (WaitLatchOrSocket(nullptr, events, PQsocket(monitor_conn), left, wait_event) & WL_POSTMASTER_DEATH)
			return;
		if (flushed == 0 && !PQconsumeInput(monitor_conn))
			return;
	}
	PGresult *res;
	while ((res = PQgetResult(monitor_conn)) != nullptr) {
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			ereport(LOG, (errmsg("pg_autopilot: told the monitor that this node is shutting down cleanly")));
		PQclear(res);
	}
}

/* KeeperExit runs at process exit: never leave a pg_basebackup or a monitor session behind. */
static void
KeeperExit(int code, Datum arg)
{
	CloneCancel();
	/* Only an orderly exit (SIGTERM: FATAL, code 1) is a clean shutdown; self-fencing exits with 2. */
	if (code == 1)
		AnnounceStopping();
	DropMonitor();
	if (keeper_shared != nullptr) {
		SpinLockAcquire(&keeper_shared->mutex);
		keeper_shared->keeper_pid = 0;
		keeper_shared->monitor_reachable = false;
		SpinLockRelease(&keeper_shared->mutex);
	}
}

} // namespace autopilot::node

extern "C" void
AutopilotKeeperMain(Datum main_arg)
{
	using namespace autopilot::node;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	before_shmem_exit(KeeperExit, (Datum) 0);
	wait_event = AUTOPILOT_WAIT_EVENT("PgAutopilotKeeper");
	pg_prng_seed(&prng, (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp());
	tick_ctx = AllocSetContextCreate(TopMemoryContext, "pg_autopilot keeper tick", ALLOCSET_DEFAULT_SIZES);

	LoadStateFile();
	FenceLoadPeers();
	rewind_unsupported = !wal_log_hints && !DataChecksumsEnabled();
	PublishStatus();
	ereport(LOG, (errmsg("pg_autopilot keeper started")));

	for (;;) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(tick_ctx);
		MemoryContextSwitchTo(tick_ctx);
		long wait_ms = RunTickGuarded();
		MemoryContextSwitchTo(TopMemoryContext);
		if (wait_ms > 0)
			WaitForWork(wait_ms);
	}
}
