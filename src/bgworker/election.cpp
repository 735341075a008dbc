/*
 * src/bgworker/election.cpp — the keeper's actions for any number of
 * standbys (PostgreSQL zone, keeper process; docs/elections.md).
 *
 * An election, seen from one standby: report_lsn stops streaming for good
 * and reports the final LSN; the winner either promotes at once or first
 * fetches the WAL it lacks from the most advanced participant
 * (fast_forward: cascading replication from a standby, no slot); the losers
 * then follow the new primary (join_secondary, keeper.cpp's FollowPrimary).
 * On the primary, apply_settings re-applies slots, HBA and the quorum names.
 *
 * Invariants: every action is idempotent (a crash or a failed attempt finds
 * the same transition again); waits are latch waits with
 * CHECK_FOR_INTERRUPTS at every wake-up and a deadline of monitor_timeout,
 * after which the action reports InProgress and continues at the next tick;
 * frames hold only POD locals.  A standby that stopped streaming for an
 * election never points primary_conninfo at the old primary again (only at
 * the upstream of fast_forward or at the new primary): the fence lift and the
 * monitor's QuorumReported proof rely on it.
 */
extern "C" {
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}
#include "pg/compat.hpp"

#include <cstring>

#include "diverged.hpp"
#include "election.hpp"
#include "keeper.hpp"

namespace autopilot::node {

/* Poll interval while waiting for the walreceiver or the received LSN (latch wait, interruptible). */
constexpr int kPollMs = 10;

/* The wanted (priority, quorum) whose write last failed; -1: none.  See ApplyWantedSettings. */
static int failed_wanted_priority = -1;
static int failed_wanted_quorum = -1;
static char failed_wanted_msg[kErrorLen];

/* LsnText formats an LSN as PostgreSQL prints it. */
static void
LsnText(uint64_t lsn, char *buf, size_t len)
{
	snprintf(buf, len, "%X/%X", (uint32) (lsn >> 32), (uint32) lsn);
}

static bool
RequireRecovery(const LocalState *ls, const char *state)
{
	if (ls->in_recovery)
		return true;
	SetTickErrorf(WARNING, "assigned state %s needs a standby, but this server is not in recovery; not acting", state);
	return false;
}

ActionResult
StopStreaming(const char *why)
{
	const char *names[] = {"primary_conninfo"};
	const char *values[] = {""};
	SetAutoConf(1, names, values, guc_monitor_timeout_ms);

	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), guc_monitor_timeout_ms);
	LocalState now_ls;
	for (;;) {
		CHECK_FOR_INTERRUPTS();
		ReadLocalState(&now_ls);
		/* Both: the report must say streaming = false, which counts a walreceiver waiting for instructions. */
		if (!now_ls.wal_receiver_running && !now_ls.wal_receiver_streaming)
			break;
		if (GetCurrentTimestamp() >= deadline) {
			SetTickErrorf(LOG, "%s: the walreceiver has not stopped yet after primary_conninfo was emptied", why);
			return ActionResult::InProgress;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kPollMs, KeeperWaitEvent());
		ResetLatch(MyLatch);
	}
	char lsn[32];
	LsnText(now_ls.lsn, lsn, sizeof(lsn));
	ereport(LOG, (errmsg("pg_autopilot keeper: %s: replication stopped; received WAL up to %s on timeline %u", why, lsn,
						 now_ls.timeline)));
	return ActionResult::Done;
}

ActionResult
ApplySettings(const LocalState *ls, const Goal *goal)
{
	if (ls->in_recovery) {
		SetTickError(WARNING, "assigned state apply_settings needs a primary, but this server is in recovery; not "
							  "acting");
		return ActionResult::Failed;
	}
	if (goal->has_slots)
		EnsureSlots(goal->standby_slots);
	/* A joining standby starts cloning once we report: let it in first. */
	if (!EnsurePeersInHba(goal))
		return ActionResult::InProgress;
	if (goal->has_ssn)
		SetSyncNames(goal->ssn);
	return ActionResult::Done;
}

ActionResult
ReportLsn(const LocalState *ls, const Goal *goal)
{
	if (!RequireRecovery(ls, "report_lsn"))
		return ActionResult::Failed;
	/*
	 * The most advanced participant may have to serve WAL to the winner
	 * (fast_forward): let the peers in, and say so when this server cannot
	 * (a standby accepts connections only with hot_standby, and needs a free
	 * walsender).  Not a reason to hold the election up: a failure is a
	 * tick error (the keeper's Steady retries the HBA lines while we wait in
	 * report_lsn), and the monitor may well pick another upstream or need
	 * none.
	 */
	(void) EnsurePeersInHba(goal);
	if (!EnableHotStandby || max_wal_senders <= 0)
		SetTickErrorf(WARNING,
					  "this standby cannot serve WAL to an election winner that lacks some (hot_standby = %s, "
					  "max_wal_senders = %d); set hot_standby = on and max_wal_senders > 0",
					  EnableHotStandby ? "on" : "off", max_wal_senders);
	return StopStreaming("election");
}

ActionResult
FastForward(const LocalState *ls, const Goal *goal)
{
	char have[32], want[32];

	if (!RequireRecovery(ls, "fast_forward"))
		return ActionResult::Failed;
	if (!goal->has_upstream) {
		SetTickError(0, "fast_forward: waiting for the monitor to name the standby to fetch WAL from");
		return ActionResult::InProgress;
	}
	/*
	 * Our WAL went past the source's fork: we can never fetch from it;
	 * rewound onto it (diverged.hpp).  Checked before the LSN comparison: an
	 * LSN on an older timeline may pass the source's and still lack its WAL
	 * (simulator seed 18175).
	 */
	if (FetchSourceDiverged(goal, ls->system_identifier))
		return RewindOntoUpstream(ls, goal);
	if (ls->lsn >= goal->upstream_lsn)
		return StopStreaming("fast_forward: the WAL of the most advanced standby is here");

	/*
	 * No slot: the upstream is a standby that keeps no slot for us, and this
	 * connection lives only until we have its WAL.
	 */
	char conninfo[1024];
	StandbyConninfo(goal->upstream_host, goal->upstream_port, conninfo, sizeof(conninfo));
	const char *names[] = {"primary_conninfo", "primary_slot_name"};
	const char *values[] = {conninfo, ""};
	const char *before = GetConfigOption("primary_conninfo", true, false);
	bool repointed = before == nullptr || strcmp(before, conninfo) != 0;
	SetAutoConf(2, names, values, guc_monitor_timeout_ms);
	LsnText(ls->lsn, have, sizeof(have));
	LsnText(goal->upstream_lsn, want, sizeof(want));
	if (repointed)
		ereport(LOG,
				(errmsg("pg_autopilot keeper: fast_forward: fetching WAL from node %lld at %s:%d, from %s up "
						"to %s",
						(long long) goal->upstream_node_id, goal->upstream_host, goal->upstream_port, have, want)));

	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), guc_monitor_timeout_ms);
	LocalState now_ls;
	for (;;) {
		CHECK_FOR_INTERRUPTS();
		ReadLocalState(&now_ls);
		if (now_ls.lsn >= goal->upstream_lsn)
			break;
		if (GetCurrentTimestamp() >= deadline) {
			LsnText(now_ls.lsn, have, sizeof(have));
			SetTickErrorf(0, "fast_forward: received WAL up to %s of %s from node %lld, still fetching", have, want,
						  (long long) goal->upstream_node_id);
			return ActionResult::InProgress;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kPollMs, KeeperWaitEvent());
		ResetLatch(MyLatch);
	}
	return StopStreaming("fast_forward: the WAL of the most advanced standby is here");
}

ActionResult
LeaveFormation(const LocalState *ls, fsm::NodeState current)
{
	if (!ls->in_recovery) {
		/*
		 * A writable node dropped after the monitor handed its role to
		 * another node (it was away meanwhile) must serve nobody: the fence
		 * the server started with stays, or goes up now.  The only node of a
		 * group (single) has nobody to conflict with: the DBA keeps it.
		 */
		if (current != fsm::NodeState::Single)
			SetFence(true, "the node was dropped from its formation while it held the primary's role");
		return ActionResult::Done;
	}
	/* The primary drops our slot and stops naming us: follow nobody rather than fail to. */
	const char *names[] = {"primary_conninfo", "primary_slot_name"};
	const char *values[] = {"", ""};
	SetAutoConf(2, names, values, guc_monitor_timeout_ms);
	return ActionResult::Done;
}

void
ApplyWantedSettings(const Goal *goal)
{
	bool set_priority = goal->has_wanted_priority && goal->wanted_priority != guc_candidate_priority;
	bool set_quorum = goal->has_wanted_quorum && goal->wanted_quorum != guc_replication_quorum;
	if (!set_priority && !set_quorum) {
		failed_wanted_priority = failed_wanted_quorum = -1;
		return;
	}
	int want_priority = set_priority ? goal->wanted_priority : guc_candidate_priority;
	int want_quorum = (set_quorum ? goal->wanted_quorum : guc_replication_quorum) ? 1 : 0;
	if (want_priority == failed_wanted_priority && want_quorum == failed_wanted_quorum) {
		SetTickError(0, failed_wanted_msg); /* keep it visible, do not retry */
		return;
	}

	char priority_text[16];
	snprintf(priority_text, sizeof(priority_text), "%d", want_priority);
	const char *names[] = {"pg_autopilot.candidate_priority", "pg_autopilot.replication_quorum"};
	const char *values[] = {priority_text, want_quorum ? "on" : "off"};
	MemoryContext ctx = CurrentMemoryContext;
	PG_TRY();
	{
		SetAutoConf(2, names, values, guc_monitor_timeout_ms);
		ereport(LOG, (errmsg("pg_autopilot keeper: candidate_priority = %d, replication_quorum = %s as set on the "
							 "monitor (written to postgresql.auto.conf)",
							 want_priority, want_quorum ? "on" : "off")));
		failed_wanted_priority = failed_wanted_quorum = -1;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(ctx);
		ErrorData *edata = CopyErrorData();
		FlushErrorState();
		LWLockReleaseAll(); /* AutoFileLock, when the write itself failed */
		snprintf(failed_wanted_msg, sizeof(failed_wanted_msg),
				 "could not apply candidate_priority = %d, replication_quorum = %s set on the monitor: %s",
				 want_priority, want_quorum ? "on" : "off", edata->message ? edata->message : "unknown error");
		FreeErrorData(edata);
		failed_wanted_priority = want_priority;
		failed_wanted_quorum = want_quorum;
		SetTickError(WARNING, failed_wanted_msg);
	}
	PG_END_TRY();
}

bool
SyncQuorumStreams(const LocalState *ls)
{
	if (ls->in_recovery || SyncRepConfig == nullptr)
		return false;
	/* In quorum (ANY k) mode every listed standby has priority 1: sync_candidates counts the listed ones. */
	return ls->sync_candidates >= Max(1, SyncRepConfig->num_sync);
}

} // namespace autopilot::node
