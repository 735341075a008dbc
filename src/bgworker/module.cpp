/*
 * src/bgworker/module.cpp — _PG_init of the data-node extension pg_autopilot
 * (PostgreSQL zone): GUCs, the keeper's status struct in shared memory, the
 * keeper background worker's registration, and validation of the settings.
 *
 * Loaded through shared_preload_libraries, _PG_init runs in the postmaster:
 * it first runs the pre-start hook (AutopilotPrestartInit, which may re-exec
 * the postmaster before anything else happens), then defines the GUCs,
 * requests shared memory and registers the keeper.  Loaded any other way (a
 * backend running CREATE EXTENSION or status() without preloading), it does
 * nothing and raises nothing: status() then says the keeper is not running.
 *
 * Settings are never rejected at load time: a missing or invalid identity
 * setting would otherwise stop the server from starting.  The keeper checks
 * them (ValidateSettings), reports the problem once in the log and in
 * status(), idles, and checks again after every reload.
 *
 * The login fence (docs/failover.md "The old primary comes back"): a
 * ClientAuthentication_hook refuses every login except physical replication
 * connections while KeeperShared.fenced is set, with SQLSTATE 57P03
 * (cannot_connect_now).  There is no exception for superusers or unix
 * sockets: a node whose history may have diverged must serve nobody, and an
 * operator who needs in can stop the server and remove
 * <PGDATA>.autopilot/fenced.  Replication connections stay allowed so that
 * standbys keep streaming (their walreceiver refuses a history that is not a
 * prefix of theirs) and can be cloned.  The postmaster raises the fence when
 * it (re)creates shared memory (StartupFence): after a restart or a crash
 * restart of a node whose state file says it held the primary's role, or
 * when the fence file or a re-clone request exists; only the keeper lifts it.
 *
 * Default of pg_autopilot.hostname: 'localhost'.  It matches the default of
 * listen_addresses, so a one-host demo needs no setting, and it is plainly
 * wrong for a real deployment, where every node must name an address its
 * peers and the monitor can reach.
 */
extern "C" {
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "fmgr.h"
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "replication/walsender.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"

#include "libpq-fe.h"
}
#include "pg/compat.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include "conninfo.hpp"
#include "datadir.hpp"
#include "hba_file.hpp"
#include "keeper.hpp"
#include "pg/guard.hpp"
#include "restart.hpp"
#include "states.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
}

namespace autopilot::node {

char *guc_monitor = nullptr;
char *guc_node_name = nullptr;
char *guc_hostname = nullptr;
char *guc_formation = nullptr;
char *guc_replication_user = nullptr;
int guc_candidate_priority = 50;
bool guc_replication_quorum = true;
int guc_heartbeat_interval_ms = 1000;
int guc_monitor_timeout_ms = 5000;
int guc_fence_timeout_ms = 10000;
bool preloaded = false;
KeeperShared *keeper_shared = nullptr;

static shmem_request_hook_type prev_shmem_request_hook = nullptr;
static shmem_startup_hook_type prev_shmem_startup_hook = nullptr;
static ClientAuthentication_hook_type prev_client_auth_hook = nullptr;

void
ReadKeeperShared(KeeperShared *out)
{
	memset(out, 0, sizeof(*out));
	out->group_id = -1;
	if (keeper_shared == nullptr)
		return;
	SpinLockAcquire(&keeper_shared->mutex);
	memcpy(out, keeper_shared, sizeof(*out));
	SpinLockRelease(&keeper_shared->mutex);
}

static void
Append(char *msg, size_t len, const char *text)
{
	size_t used = strlen(msg);
	if (used + 3 >= len)
		return;
	snprintf(msg + used, len - used, "%s%s", used > 0 ? "; " : "", text);
}

/*
 * CheckName runs conninfo::ValidateName; the pure code reports through an
 * exception, copied here into `problem` (empty when the name is fine).  This
 * frame is its own error boundary: nothing in it can ereport, and the
 * exception object is gone when the function returns.
 */
static void
CheckName(const char *guc, const char *name, const char *what, char *problem, size_t len)
{
	problem[0] = '\0';
	try {
		autopilot::conninfo::ValidateName(name, what);
	} catch (const std::exception &e) {
		snprintf(problem, len, "%s: %s", guc, e.what());
	} catch (...) {
		snprintf(problem, len, "%s: invalid %s", guc, what);
	}
}

bool
ValidateSettings(char *msg, size_t len)
{
	char problem[512];

	msg[0] = '\0';
	if (guc_monitor == nullptr || guc_monitor[0] == '\0')
		Append(msg, len, "pg_autopilot.monitor is not set");
	else {
		char *err = nullptr;
		PQconninfoOption *opts = PQconninfoParse(guc_monitor, &err);
		if (opts == nullptr) {
			snprintf(problem, sizeof(problem), "pg_autopilot.monitor is not a valid connection string: %s",
					 err ? err : "out of memory");
			size_t n = strlen(problem);
			while (n > 0 && problem[n - 1] == '\n')
				problem[--n] = '\0';
			Append(msg, len, problem);
		} else
			PQconninfoFree(opts);
		if (err != nullptr)
			PQfreemem(err);
	}
	if (guc_node_name == nullptr || guc_node_name[0] == '\0')
		Append(msg, len, "pg_autopilot.node_name is not set");
	else {
		CheckName("pg_autopilot.node_name", guc_node_name, "node name", problem, sizeof(problem));
		if (problem[0] != '\0')
			Append(msg, len, problem);
	}
	if (guc_formation == nullptr || guc_formation[0] == '\0')
		Append(msg, len, "pg_autopilot.formation is not set");
	else {
		CheckName("pg_autopilot.formation", guc_formation, "formation name", problem, sizeof(problem));
		if (problem[0] != '\0')
			Append(msg, len, problem);
	}
	if (guc_hostname == nullptr || guc_hostname[0] == '\0')
		Append(msg, len, "pg_autopilot.hostname is not set");
	return msg[0] == '\0';
}

/*
 * StartupFence decides whether the server starts fenced and why (empty: not
 * fenced): the fence file exists, a re-clone is pending, or the keeper's
 * state file names a writable state other than single, or a demotion state
 * (draining, demote_timeout, demoted: the node may hold diverged history
 * until it follows the new primary).  A `single` node is
 * exempt: it has no standby, so no other node can have been promoted in its
 * place, and a one-node group must keep serving while the monitor is down.
 * Plain file reads, its own exception boundary; never raises.
 */
static void
StartupFence(char *reason, size_t len) noexcept
{
	reason[0] = '\0';
	try {
		std::string pgdata(DataDir);
		struct stat st;
		if (stat(datadir::FencedFile(pgdata).c_str(), &st) == 0) {
			snprintf(reason, len, "the node was fenced when the server stopped");
			return;
		}
		if (stat(datadir::NeedsRecloneFile(pgdata).c_str(), &st) == 0) {
			snprintf(reason, len, "a pg_rewind failed: the node waits to be re-cloned from the primary");
			return;
		}
		auto text = datadir::ReadSmallFile(datadir::StateFile(pgdata));
		if (!text)
			return;
		std::string label = *text;
		while (!label.empty() && (label.back() == '\n' || label.back() == ' ' || label.back() == '\r'))
			label.pop_back();
		auto state = fsm::ParseState(label);
		if (!state)
			return;
		if (fsm::IsWritableState(*state) && *state != fsm::NodeState::Single)
			snprintf(reason, len,
					 "the node held the primary's role (state %s) when it stopped; another node may have been "
					 "promoted since",
					 label.c_str());
		else if (*state == fsm::NodeState::Draining || *state == fsm::NodeState::DemoteTimeout ||
				 *state == fsm::NodeState::Demoted)
			snprintf(reason, len, "the node is a demoted primary (state %s) that does not follow the new primary yet",
					 label.c_str());
	} catch (...) {
		snprintf(reason, len, "could not read the keeper's state files");
	}
}

void
SetFence(bool on, const char *why)
{
	if (keeper_shared == nullptr)
		return;
	char path[MAXPGPATH] = "";
	char dir[MAXPGPATH] = "";
	autopilot::pgx::CallCpp([&] {
		std::string f = datadir::FencedFile(DataDir);
		std::string d = datadir::StateDir(DataDir);
		if (f.size() >= sizeof(path) || d.size() >= sizeof(dir))
			throw autopilot::Error(sqlstate::kInvalidParameterValue, "data directory path too long");
		memcpy(path, f.c_str(), f.size() + 1);
		memcpy(dir, d.c_str(), d.size() + 1);
	});

	bool was;
	SpinLockAcquire(&keeper_shared->mutex);
	was = keeper_shared->fenced;
	if (on) {
		keeper_shared->fenced = true;
		strlcpy(keeper_shared->fence_reason, why, sizeof(keeper_shared->fence_reason));
	}
	SpinLockRelease(&keeper_shared->mutex);

	if (on) {
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			ereport(ERROR, (errcode_for_file_access(), errmsg("could not create directory \"%s\": %m", dir)));
		struct stat st;
		if (stat(path, &st) != 0)
			autopilot::pgx::CallCpp([&] { datadir::WriteFileAtomic(path, std::string(why) + "\n"); });
		if (!was)
			ereport(LOG, (errmsg("pg_autopilot keeper: login fence up: %s", why),
						  errdetail("Only replication connections are accepted until the fence is lifted.")));
		return;
	}
	if (unlink(path) != 0 && errno != ENOENT)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not remove file \"%s\": %m", path)));
	SpinLockAcquire(&keeper_shared->mutex);
	keeper_shared->fenced = false;
	keeper_shared->fence_reason[0] = '\0';
	SpinLockRelease(&keeper_shared->mutex);
	if (was)
		ereport(LOG, (errmsg("pg_autopilot keeper: login fence lifted: %s", why)));
}

bool
IsFenced(void)
{
	if (keeper_shared == nullptr)
		return false;
	SpinLockAcquire(&keeper_shared->mutex);
	bool f = keeper_shared->fenced;
	SpinLockRelease(&keeper_shared->mutex);
	return f;
}

/*
 * FenceClientAuthentication (ClientAuthentication_hook, any backend): after
 * a successful authentication, refuse the login with FATAL 57P03 while the
 * node is fenced, except for physical replication connections.
 */
static void
FenceClientAuthentication(Port *port, int status)
{
	if (prev_client_auth_hook != nullptr)
		prev_client_auth_hook(port, status);
	if (status != STATUS_OK || keeper_shared == nullptr)
		return;
	if (am_walsender && !am_db_walsender)
		return;

	bool fenced;
	char reason[sizeof(keeper_shared->fence_reason)];
	SpinLockAcquire(&keeper_shared->mutex);
	fenced = keeper_shared->fenced;
	memcpy(reason, keeper_shared->fence_reason, sizeof(reason));
	SpinLockRelease(&keeper_shared->mutex);
	if (!fenced)
		return;
	reason[sizeof(reason) - 1] = '\0';
	ereport(FATAL, (errcode(ERRCODE_CANNOT_CONNECT_NOW),
					errmsg("pg_autopilot: this node is fenced until the monitor confirms its role"),
					reason[0] ? errdetail("Fenced because %s.", reason) : 0,
					errhint("Connect to the formation's primary; this node accepts clients again once it has "
							"rejoined.")));
}

static Size
KeeperSharedSize(void)
{
	return MAXALIGN(sizeof(KeeperShared));
}

static void
ShmemRequest(void)
{
	if (prev_shmem_request_hook != nullptr)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(KeeperSharedSize());
}

static void
ShmemStartup(void)
{
	bool found = false;

	if (prev_shmem_startup_hook != nullptr)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	keeper_shared = (KeeperShared *) ShmemInitStruct("pg_autopilot keeper", KeeperSharedSize(), &found);
	if (!found) {
		memset(keeper_shared, 0, sizeof(KeeperShared));
		SpinLockInit(&keeper_shared->mutex);
		keeper_shared->group_id = -1;
		StartupFence(keeper_shared->fence_reason, sizeof(keeper_shared->fence_reason));
		keeper_shared->fenced = keeper_shared->fence_reason[0] != '\0';
	}
	LWLockRelease(AddinShmemInitLock);
	if (!found && keeper_shared->fenced)
		ereport(LOG, (errmsg("pg_autopilot: starting with the login fence up: %s", keeper_shared->fence_reason)));
}

static void
DefineGucs(void)
{
	DefineCustomStringVariable("pg_autopilot.monitor", "Connection string of the pg_autopilot monitor.",
							   "libpq key=value string or URI, e.g. 'host=127.0.0.1 port=5000 dbname=pg_autopilot "
							   "user=autopilot_node'.",
							   &guc_monitor, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
	DefineCustomStringVariable("pg_autopilot.node_name", "Name of this node, unique in its formation.", nullptr,
							   &guc_node_name, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomStringVariable("pg_autopilot.hostname",
							   "Host name or address at which the monitor and peers reach "
							   "this node.",
							   nullptr, &guc_hostname, "localhost", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomStringVariable("pg_autopilot.formation", "Formation this node belongs to.", nullptr, &guc_formation,
							   "default", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("pg_autopilot.candidate_priority",
							"Priority of this node in a promotion (0 = never promote it).", nullptr,
							&guc_candidate_priority, 50, 0, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomBoolVariable("pg_autopilot.replication_quorum",
							 "Whether this node counts for the synchronous replication quorum.", nullptr,
							 &guc_replication_quorum, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	/*
	 * 1 s heartbeats: state changes arrive by NOTIFY immediately, so the
	 * interval only bounds how stale the monitor's view of LSNs may get.
	 */
	DefineCustomIntVariable("pg_autopilot.heartbeat_interval", "Time between two reports to the monitor.", nullptr,
							&guc_heartbeat_interval_ms, 1000, 10, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
							nullptr);
	/* Deadline of a connect or a query to the monitor; also of a confirmed reload. */
	DefineCustomIntVariable("pg_autopilot.monitor_timeout",
							"Deadline of one connection attempt or call to the "
							"monitor.",
							nullptr, &guc_monitor_timeout_ms, 5000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
							nullptr, nullptr);
	/*
	 * Self-fencing: a writable node that has neither reached the monitor nor
	 * heard from a streaming standby for this long fences itself.  It must
	 * stay below the monitor's primary_demote_timeout (default 30 s; the
	 * monitor checks the relation): fence_timeout + the standby reply slack
	 * (10 s, wal_receiver_status_interval's default) + monitor_timeout (a
	 * connect in progress) = 25 s with the defaults.
	 */
	DefineCustomIntVariable("pg_autopilot.fence_timeout", "Time after which an isolated primary fences itself.",
							"A writable node that has neither reached the monitor nor heard from a streaming standby "
							"for this long refuses logins and restarts as a standby. Keep it well below the "
							"monitor's primary_demote_timeout.",
							&guc_fence_timeout_ms, 10000, 1000, 3600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
							nullptr);
	DefineCustomStringVariable("pg_autopilot.replication_user",
							   "Role standbys use to stream from the primary and to clone it.",
							   "Empty means the operating system user name, libpq's default.", &guc_replication_user,
							   "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineHbaGucs();
	MarkGUCPrefixReserved("pg_autopilot");
}

static void
RegisterKeeper(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	/* Restart 1 s after a crash: fast enough for failover, slow enough not to spin on a persistent fault. */
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_autopilot");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "AutopilotKeeperMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_autopilot keeper");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_autopilot keeper");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

} // namespace autopilot::node

extern "C" void
_PG_init(void)
{
	using namespace autopilot::node;

	if (!process_shared_preload_libraries_in_progress)
		return;

	/* First: may run a pending clone swap and re-exec the postmaster. */
	AutopilotPrestartInit();

	preloaded = true;
	DefineGucs();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ShmemStartup;
	prev_client_auth_hook = ClientAuthentication_hook;
	ClientAuthentication_hook = FenceClientAuthentication;

	RegisterKeeper();
}
