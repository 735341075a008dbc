/*
 * src/bgworker/fence.cpp — self-fencing of an isolated primary and the
 * isolation watch (PostgreSQL zone, keeper process; docs/failover.md
 * "Self-fencing").
 *
 * The monitor's timeout proof (docs/failover.md, proof 3) assumes that an
 * isolated primary has fenced itself within fence_timeout (+ slack): the
 * fence therefore never depends on anything that can fail for reasons of
 * its own.  FenceAndCrashRestart raises the login fence and writes
 * standby.signal first, does everything else best-effort, each step in its
 * own error trap, and always ends in proc_exit(2) — the postmaster treats
 * that as a crash, SIGQUITs every backend (no session can commit any more)
 * and restarts in standby mode.
 *
 * Invariants:
 *  - the isolation clock (FenceWatch in KeeperShared) is read and written
 *    under keeper_shared->mutex, memcpy-like work only;
 *  - peer standbys are recognised by application_name
 *    pg_autopilot_node_<id> with <id> from the monitor's standby_slots list,
 *    remembered in shared memory and in <PGDATA>.autopilot/peers;
 *  - every frame holds only POD locals; pure helpers run through TryCpp.
 */
extern "C" {
#include "postgres.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/condition_variable.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/backend_status.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}
#include "pg/compat.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "datadir.hpp"
#include "keeper.hpp"
#include "fence.hpp"
#include "pg/guard.hpp"

namespace autopilot::node {

void
CreateStandbySignal(void)
{
	FILE *f = AllocateFile(STANDBY_SIGNAL_FILE, "w");
	if (f == nullptr)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not create file \"%s\": %m", STANDBY_SIGNAL_FILE)));
	if (FreeFile(f) != 0)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not close file \"%s\": %m", STANDBY_SIGNAL_FILE)));
	fsync_fname(STANDBY_SIGNAL_FILE, false);
}

bool
RunTrapped(void (*fn)(void *), void *arg, char *errbuf, size_t errlen)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool ok = true;

	errbuf[0] = '\0';
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(oldcxt);
		ErrorData *edata = CopyErrorData();
		FlushErrorState();
		/* SetAutoConf holds AutoFileLock while it writes; a wait may have begun. */
		LWLockReleaseAll();
		ConditionVariableCancelSleep();
		pgstat_report_wait_end();
		strlcpy(errbuf, edata->message ? edata->message : "unknown error", errlen);
		FreeErrorData(edata);
		RESUME_INTERRUPTS();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* The steps of FenceAndCrashRestart, each run by RunTrapped. */

static void
RaiseLoginFence(void *why)
{
	SetFence(true, (const char *) why);
}

static void
WriteStandbySignal(void *)
{
	CreateStandbySignal();
}

/*
 * StandbyWithoutUpstreamSettings writes primary_conninfo = '' (the node must
 * not follow a former upstream with a history that may have diverged) and
 * restart_after_crash = on (PGC_SIGHUP; without it the server would stop
 * instead of restarting as a standby — still fenced, but never rejoining),
 * and sends SIGHUP without waiting for the confirmation: the fence cannot
 * wait for a reload that may never come (a broken postgresql.conf).  The
 * postmaster handles the pending SIGHUP before the SIGCHLD of our exit
 * (signals are delivered lowest number first), so in the usual case the
 * crash restart already runs with these values; otherwise the keeper after
 * the restart sets them again.
 */
static void
StandbyWithoutUpstreamSettings(void *)
{
	if (!restart_after_crash)
		ereport(LOG, (errmsg("pg_autopilot keeper: setting restart_after_crash = on, which self-fencing needs")));
	const char *names[] = {"primary_conninfo", "restart_after_crash"};
	const char *values[] = {"", "on"};
	SetAutoConf(2, names, values, 0);
}

/* FenceStep runs one step; a failure is logged and the fence goes on. */
static void
FenceStep(const char *what, void (*fn)(void *), void *arg)
{
	char err[kErrorLen];
	if (!RunTrapped(fn, arg, err, sizeof(err)))
		ereport(LOG, (errmsg("pg_autopilot keeper: fencing goes on although %s failed: %s", what, err)));
}

void
FenceAndCrashRestart(const char *why)
{
	/* A SIGTERM meanwhile must not turn the crash restart into a clean exit (code 1). */
	HOLD_INTERRUPTS();
	FenceStep("raising the login fence", RaiseLoginFence, const_cast<char *>(why));
	FenceStep("writing standby.signal", WriteStandbySignal, nullptr);
	FenceStep("writing the standby settings", StandbyWithoutUpstreamSettings, nullptr);
	ereport(LOG, (errmsg("pg_autopilot keeper: exiting with code 2: the postmaster restarts the server as a "
						 "standby (%s)",
						 why)));
	proc_exit(2);
}

/* ---------- peers ---------- */

/* ParseStandbyName parses pg_autopilot_node_<id> (exactly); false otherwise. */
static bool
ParseStandbyName(const char *name, size_t len, int64_t *id)
{
	size_t plen = strlen(kStandbyPrefix);
	if (len <= plen || strncmp(name, kStandbyPrefix, plen) != 0)
		return false;
	int64_t v = 0;
	for (size_t i = plen; i < len; i++) {
		if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (name[i] - '0');
	}
	*id = v;
	return v > 0;
}

/* ParsePeers fills ids (up to kMaxPeers) from a list of slot names separated by commas, spaces or newlines. */
static int
ParsePeers(const char *list, int64_t self_id, int64_t *ids)
{
	int n = 0;
	const char *p = list;
	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t')
			p++;
		const char *start = p;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\n' && *p != '\t')
			p++;
		int64_t id;
		if (p > start && ParseStandbyName(start, (size_t) (p - start), &id) && id != self_id && n < kMaxPeers)
			ids[n++] = id;
	}
	return n;
}

/* StorePeers puts the list into shared memory; true when it changed. */
static bool
StorePeers(const int64_t *ids, int n)
{
	SpinLockAcquire(&keeper_shared->mutex);
	FenceWatch *w = &keeper_shared->fence_watch;
	bool changed = !w->peers_known || w->n_peers != n || memcmp(w->peer_ids, ids, sizeof(int64_t) * n) != 0;
	w->peers_known = true;
	w->n_peers = n;
	memcpy(w->peer_ids, ids, sizeof(int64_t) * n);
	SpinLockRelease(&keeper_shared->mutex);
	return changed;
}

void
FenceRememberPeers(const char *standby_slots, int64_t self_id)
{
	if (keeper_shared == nullptr || standby_slots == nullptr)
		return;
	int64_t ids[kMaxPeers];
	int n = ParsePeers(standby_slots, self_id, ids);
	if (!StorePeers(ids, n))
		return;

	/* One slot name per line: the same format ParsePeers reads back. */
	char text[kMaxPeers * 48 + 1];
	size_t used = 0;
	text[0] = '\0';
	for (int i = 0; i < n; i++)
		used += snprintf(text + used, sizeof(text) - used, "%s%lld\n", kStandbyPrefix, (long long) ids[i]);
	autopilot::pgx::ErrorBuffer err;
	const char *pgdata = DataDir;
	if (!autopilot::pgx::TryCpp(err, [&] {
			std::string dir = datadir::StateDir(pgdata);
			if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
				throw autopilot::Error("58030", "could not create directory \"" + dir + "\": " + strerror(errno));
			datadir::WriteFileAtomic(dir + "/peers", std::string(text));
		}))
		ereport(WARNING, (errmsg("pg_autopilot keeper: could not record the group's other nodes: %s", err.message),
						  errdetail("After a restart during a monitor outage this primary may fence itself although "
									"its standbys stream.")));
}

void
FenceLoadPeers(void)
{
	if (keeper_shared == nullptr)
		return;
	SpinLockAcquire(&keeper_shared->mutex);
	bool known = keeper_shared->fence_watch.peers_known;
	SpinLockRelease(&keeper_shared->mutex);
	if (known)
		return;

	char text[kMaxPeers * 48 + 1] = "";
	bool have = false;
	autopilot::pgx::ErrorBuffer err;
	const char *pgdata = DataDir;
	(void) autopilot::pgx::TryCpp(err, [&] {
		auto t = datadir::ReadSmallFile(datadir::StateDir(pgdata) + "/peers");
		if (t && t->size() < sizeof(text)) {
			memcpy(text, t->c_str(), t->size() + 1);
			have = true;
		}
	});
	if (!have)
		return;
	int64_t ids[kMaxPeers];
	int n = ParsePeers(text, 0, ids);
	(void) StorePeers(ids, n);
}

/* ---------- the isolation watch ---------- */

/*
 * CountPeerWalsenders counts the physical walsenders in state streaming
 * whose application_name names one of `peers` AND that are listed in the
 * running synchronous_standby_names (WalSnd.sync_standby_priority > 0, set
 * by each walsender from its own configuration), and returns the newest
 * reply time among them in *newest_reply.  Only such a standby can help this
 * primary acknowledge a commit, so only such standbys count as contact
 * (CheckIsolation).  The application name is not in WalSnd:
 * it comes from the backend status array (a fresh snapshot, dropped again
 * before returning).  A logical walsender is connected to a database, a
 * physical one is not.
 */
static int
CountPeerWalsenders(const FenceWatch *peers, int64_t self_id, int64_t *newest_reply)
{
	*newest_reply = 0;
	if (WalSndCtl == nullptr || max_wal_senders <= 0 || peers->n_peers == 0)
		return 0;
	pid_t *pids = (pid_t *) palloc(sizeof(pid_t) * max_wal_senders);
	TimestampTz *replies = (TimestampTz *) palloc(sizeof(TimestampTz) * max_wal_senders);
	int nstreaming = 0;
	for (int i = 0; i < max_wal_senders; i++) {
		WalSnd *walsnd = &WalSndCtl->walsnds[i];
		SpinLockAcquire(&walsnd->mutex);
		pid_t pid = walsnd->pid;
		WalSndState state = walsnd->state;
		TimestampTz reply = walsnd->replyTime;
		int priority = walsnd->sync_standby_priority;
		SpinLockRelease(&walsnd->mutex);
		if (pid != 0 && state == WALSNDSTATE_STREAMING && priority > 0) {
			pids[nstreaming] = pid;
			replies[nstreaming] = reply;
			nstreaming++;
		}
	}

	int count = 0;
	if (nstreaming > 0) {
		pgstat_clear_snapshot();
		int nbackends = pgstat_fetch_stat_numbackends();
		for (int b = 1; b <= nbackends; b++) {
			LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(b);
			if (local == nullptr)
				continue;
			PgBackendStatus *be = &local->backendStatus;
			if (be->st_backendType != B_WAL_SENDER || be->st_databaseid != InvalidOid || be->st_appname == nullptr)
				continue;
			int64_t id;
			if (!ParseStandbyName(be->st_appname, strlen(be->st_appname), &id) || id == self_id)
				continue;
			bool is_peer = false;
			for (int k = 0; k < peers->n_peers && !is_peer; k++)
				is_peer = peers->peer_ids[k] == id;
			if (!is_peer)
				continue;
			for (int j = 0; j < nstreaming; j++) {
				if (pids[j] != be->st_procpid)
					continue;
				count++;
				if (replies[j] > *newest_reply)
					*newest_reply = replies[j];
			}
		}
		pgstat_clear_snapshot();
	}
	pfree(pids);
	pfree(replies);
	return count;
}

void
FenceNoteMonitorOk(void)
{
	if (keeper_shared == nullptr)
		return;
	TimestampTz now = GetCurrentTimestamp();
	SpinLockAcquire(&keeper_shared->mutex);
	keeper_shared->fence_watch.last_monitor_ok = now;
	SpinLockRelease(&keeper_shared->mutex);
}

/*
 * SelfFence (docs/failover.md "Self-fencing"): see FenceAndCrashRestart.
 * synchronous_standby_names is left alone: emptying it would acknowledge
 * commits no standby has.  Terminating client backends first would add
 * nothing: the crash restart ends them all at once.
 */
[[noreturn]] static void
SelfFence(long isolated_ms)
{
	ereport(WARNING,
			(errmsg("pg_autopilot keeper: primary isolated for %ld ms (no monitor, not enough synchronous standbys "
					"streaming): fencing: "
					"logins refused, restarting as a standby",
					isolated_ms),
			 errdetail("pg_autopilot.fence_timeout is %d ms.", guc_fence_timeout_ms)));
	FenceAndCrashRestart("the primary was isolated from the monitor and its standbys");
}

/*
 * EnsureRestartAfterCrash turns restart_after_crash on (confirmed reload,
 * monitor_timeout) as soon as the node is watched, once per keeper process,
 * so that the fence does not depend on a reload at the moment it happens:
 * with it off, the fence's crash restart would stop the server instead (no
 * writes either, but it would never rejoin).  A failure is logged and the
 * fence tries again (StandbyWithoutUpstreamSettings).
 */
static void
SetRestartAfterCrash(void *)
{
	const char *names[] = {"restart_after_crash"};
	const char *values[] = {"on"};
	SetAutoConf(1, names, values, guc_monitor_timeout_ms);
}

static void
EnsureRestartAfterCrash(void)
{
	static bool tried = false;
	char err[kErrorLen];
	if (restart_after_crash || tried)
		return;
	tried = true;
	ereport(LOG, (errmsg("pg_autopilot keeper: setting restart_after_crash = on: an isolated primary must come back "
						 "as a standby after its crash restart")));
	if (!RunTrapped(SetRestartAfterCrash, nullptr, err, sizeof(err)))
		ereport(WARNING, (errmsg("pg_autopilot keeper: could not set restart_after_crash = on: %s", err),
						  errdetail("Should this primary fence itself, the server stops instead of restarting as a "
									"standby.")));
}

void
CheckIsolation(bool watched, int64_t self_id)
{
	if (keeper_shared == nullptr)
		return;
	FenceWatch *w = &keeper_shared->fence_watch;
	if (!watched) {
		SpinLockAcquire(&keeper_shared->mutex);
		w->watch_since = 0;
		SpinLockRelease(&keeper_shared->mutex);
		return;
	}
	EnsureRestartAfterCrash();
	FenceWatch snap;
	SpinLockAcquire(&keeper_shared->mutex);
	memcpy(&snap, w, sizeof(snap));
	SpinLockRelease(&keeper_shared->mutex);

	/*
	 * Standby contact counts only while at least k of the standbys named in
	 * the running 'ANY k (...)' stream from us (docs/failover.md,
	 * "Self-fencing"): then no election can have gathered the reports it
	 * needs (QuorumReported) and we cannot acknowledge a commit without
	 * them either.  With synchronous_standby_names '' (wait_primary, single)
	 * we acknowledge commits alone and only the monitor's contact counts:
	 * the monitor's timeout proof runs from our last report.
	 */
	int64_t newest_reply = 0;
	int listed = CountPeerWalsenders(&snap, self_id, &newest_reply);
	int needed = SyncRepConfig != nullptr ? Max(1, SyncRepConfig->num_sync) : INT_MAX;
	bool quorum_streams = listed >= needed;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz contact;

	SpinLockAcquire(&keeper_shared->mutex);
	if (w->watch_since == 0)
		w->watch_since = now;
	if (quorum_streams && newest_reply != 0 && newest_reply != w->seen_peer_reply) {
		/* The reply time is the standby's clock: only its change counts, measured on ours. */
		w->seen_peer_reply = newest_reply;
		w->last_peer_contact = now;
	}
	contact = Max(w->watch_since, w->last_monitor_ok);
	if (w->last_peer_contact != 0 && quorum_streams)
		contact = Max(contact, TimestampTzPlusMilliseconds(w->last_peer_contact, kStandbyReplySlackMs));
	SpinLockRelease(&keeper_shared->mutex);

	long isolated_ms = TimestampDifferenceMilliseconds(contact, now);
	if (now > contact && isolated_ms >= guc_fence_timeout_ms)
		SelfFence(isolated_ms);
}

} // namespace autopilot::node
