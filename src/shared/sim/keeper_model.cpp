/*
 * src/shared/sim/keeper_model.cpp — a model of the keeper (src/bgworker/)
 * driving the real transition table (pure zone).
 *
 * One tick, in keeper.cpp's order: CheckIsolation (self-fencing), lift the
 * login fence when proven (before and after the heartbeat), node_active
 * (register first), PromoteBack, Steady when current == goal, else the
 * table's row for (current, goal) and its action; a completed action
 * advances the state file and the keeper ticks again at once.  Restarts
 * (demotion, rewind, clone swap, self-fence) happen within the action, and
 * the keeper process starts again with empty memory, as the real same-PID
 * re-exec does.  Actions the table names that this model does not know
 * (KeeperAction values added after it was written) are modelled from the
 * goal state per docs/elections.md (ActByGoal).  Never throws.
 */
#include "sim/keeper_model.hpp"

#include "keeper_fsm.hpp"
#include "sim/invariants.hpp"
#include "sim/monitor_model.hpp"
#include "sim/replication.hpp"

namespace autopilot::sim {

namespace {

using fsm::KeeperAction;
using fsm::NodeState;

enum class Result { Done, InProgress, Failed };

void
SetFence(World &w, int i, bool on, const char *why)
{
	Server &s = w.servers[i];
	if (s.fenced != on)
		w.Trace(NodeName(i) + (on ? " login fence up: " : " login fence lifted: ") + why);
	s.fenced = s.fence_file = on;
}

/* A same-PID restart of the postmaster (clean fast shutdown, start again with the files as they are now). */
void
Restart(World &w, int i)
{
	StopServer(w, i, true);
	StartServer(w, i);
}

/*
 * SyncQuorumStreams (src/bgworker/election.cpp): the synchronous_standby_names
 * node i runs with is 'ANY k (...)' and at least k of the standbys it names
 * stream from it.  False with names '': then no standby counts.
 */
bool
SyncQuorumStreams(const World &w, int i)
{
	Quorum q = ParseQuorum(w.servers[i].sync_names);
	if (q.k == 0)
		return false;
	int count = 0;
	for (int j : q.nodes)
		if (j >= 0 && j < w.n && j != i && w.servers[j].upstream == i && Streaming(w, j))
			count++;
	return count >= q.k;
}

/* SelfFence: login fence, no upstream, standby.signal, keeper exit 2 -> crash restart into recovery. */
void
SelfFence(World &w, int i)
{
	w.Trace(NodeName(i) + " isolated for fence_timeout: fences itself (crash restart as a standby)");
	SetFence(w, i, true, "isolated primary");
	Server &s = w.servers[i];
	s.upstream = -1;
	s.standby_signal = true;
	StopServer(w, i, false);
	StartServer(w, i);
}

/*
 * CheckIsolation (fence.cpp, docs/failover.md "Self-fencing"): a writable
 * non-single node fences itself once fence_timeout has passed since the
 * latest of: the start of the watch, its last successful node_active, and
 * the last moment at least k of the standbys named in its running
 * 'ANY k (...)' streamed from it (SyncQuorumStreams) plus the reply slack
 * (conservative: a walsender of a vanished standby may linger that long).
 * With names '' only the monitor counts.  The watch lives in shared memory
 * (Server): a keeper restart does not reset it.
 */
bool
CheckIsolation(World &w, int i)
{
	Server &s = w.servers[i];
	Keeper &k = w.keepers[i];
	if (s.in_recovery || s.pristine || k.current == NodeState::Single || !fsm::IsWritableState(k.current)) {
		s.watched = false;
		return false;
	}
	if (!s.watched) {
		s.watched = true;
		s.watch_since_ms = w.now_ms;
	}
	if (SyncQuorumStreams(w, i))
		s.quorum_contact_ms = w.now_ms + 1; /* + 1: 0 means never */
	uint64_t contact = std::max(s.watch_since_ms, s.monitor_ok_ms);
	if (s.quorum_contact_ms != 0)
		contact = std::max(contact, s.quorum_contact_ms - 1 + w.config.reply_slack_ms);
	if (w.now_ms > contact && w.now_ms - contact >= w.config.fence_timeout_ms) {
		SelfFence(w, i);
		return true;
	}
	return false;
}

/*
 * StreamsFromPrimary (keeper.cpp): the walreceiver streams from the node
 * the monitor's last answer named as the primary.  Streaming from anything
 * else (an old primary that was failed over, a standby) proves nothing.
 */
bool
StreamsFromPrimary(const World &w, int i)
{
	const Keeper &k = w.keepers[i];
	return k.has_goal && k.goal_primary >= 0 && w.servers[i].upstream == k.goal_primary && Streaming(w, i);
}

/*
 * ConninfoOffPrimary (keeper.cpp): primary_conninfo names a node other than
 * the one the keeper's last answer named as the primary (or there is none);
 * an empty primary_conninfo names nobody.
 */
bool
ConninfoOffPrimary(const World &w, int i)
{
	const Keeper &k = w.keepers[i];
	int up = w.servers[i].upstream;
	return up >= 0 && (!k.has_goal || k.goal_primary < 0 || up != k.goal_primary);
}

/*
 * StuckBehindPrimary (keeper.cpp): primary_conninfo names the monitor's
 * primary, the walreceiver does not stream, and the monitor saw the primary
 * on a later timeline than ours: a promotion this node has not followed
 * (its WAL may go past the fork: seed 49, the old upstream promoted again).
 */
bool
StuckBehindPrimary(const World &w, int i)
{
	const Keeper &k = w.keepers[i];
	const Server &s = w.servers[i];
	return s.upstream >= 0 && !Streaming(w, i) && k.has_goal && k.goal_primary >= 0 && s.upstream == k.goal_primary &&
		   k.goal_primary_timeline > s.timeline;
}

/*
 * FenceMaintenanceOffPrimary (keeper.cpp): a maintenance standby whose
 * walreceiver streams from a node other than the monitor's primary (or
 * while the group has none), or whose primary_conninfo names such a node
 * (streaming or not: seed 49), raises the login fence.  One with an empty
 * primary_conninfo (a cleanly demoted old primary) is left as it is.
 */
void
MaintenanceFence(World &w, int i)
{
	const Server &s = w.servers[i];
	if (!s.in_recovery || s.fenced || w.keepers[i].current != NodeState::Maintenance)
		return;
	if (Streaming(w, i) && !StreamsFromPrimary(w, i))
		SetFence(w, i, true, "maintenance standby that streams from a node that is not the monitor's primary");
	else if (ConninfoOffPrimary(w, i))
		SetFence(w, i, true,
				 "maintenance standby whose primary_conninfo names a node that is not the monitor's primary");
	else if (StuckBehindPrimary(w, i))
		SetFence(w, i, true, "maintenance standby that does not stream from a primary on a later timeline");
}

/*
 * LiftFenceIfProven (keeper.cpp).  Before the heartbeat (have_goal false)
 * the keeper passes no goal: a standby cannot prove anything then.  A
 * following standby lifts the fence only while it streams from the
 * monitor's primary and StandbyDiverged has not found it diverged
 * (DivergedBlocksFenceLift); a maintenance standby while the monitor
 * confirms maintenance and it either does not stream or streams from the
 * primary.
 */
void
LiftFence(World &w, int i, bool have_goal)
{
	Server &s = w.servers[i];
	Keeper &k = w.keepers[i];
	if (!s.fenced)
		return;
	NodeState cur = k.current;
	if (s.in_recovery) {
		if ((cur == NodeState::Catchingup || cur == NodeState::Secondary || cur == NodeState::JoinSecondary) &&
			have_goal && StreamsFromPrimary(w, i) && !s.needs_reclone && !k.diverged_known)
			SetFence(w, i, false, "this standby streams from the primary");
		else if (cur == NodeState::Maintenance && have_goal && k.goal == NodeState::Maintenance && !s.needs_reclone &&
				 (!Streaming(w, i) || StreamsFromPrimary(w, i)) && !ConninfoOffPrimary(w, i) &&
				 !StuckBehindPrimary(w, i))
			SetFence(w, i, false, "the monitor confirms this standby is in maintenance");
		return;
	}
	if (!fsm::IsWritableState(cur))
		return;
	if (have_goal && k.goal == cur)
		SetFence(w, i, false, "the monitor confirms this node as the primary");
	else if (cur == NodeState::Primary && SyncQuorumStreams(w, i))
		SetFence(w, i, false, "a quorum of synchronous standbys streams from this primary");
}

/* MakeReport: what Heartbeat sends; report_seq is the node's clock at the send (µs, strictly increasing here). */
Report
MakeReport(World &w, int i)
{
	Server &s = w.servers[i];
	s.clock_us = std::max(w.now_ms * 1000, s.clock_us + 1);
	Report r;
	r.report_seq = s.clock_us;
	r.node = i;
	r.current = w.keepers[i].current;
	r.lsn = s.Lsn();
	r.timeline = s.timeline;
	r.streaming = Streaming(w, i);
	/* The synchronous_standby_names setting, also in recovery: the names it acknowledged with before (elections.md). */
	r.applied_names = s.sync_names;
	return r;
}

/* Heartbeat: register_node once, then node_active; false when the monitor was not reached or the answer lost. */
bool
Heartbeat(World &w, int i)
{
	Keeper &k = w.keepers[i];
	bool lossy = w.lossy_until[i] > w.step;
	if (!w.monitor.up || !w.LinkUp(i, -1) || (lossy && w.rng.Chance(50)))
		return false;
	if (k.delay_reports > 0) {
		/* The call times out on the keeper's side; the server still runs it later. */
		w.delayed.push_back(Delayed{w.step + k.delay_reports, MakeReport(w, i)});
		k.delay_reports = 0;
		return false;
	}
	if (!w.monitor.rows[i].exists && !RegisterNode(w, i))
		return false;
	Answer a = NodeActive(w, MakeReport(w, i));
	if (lossy && w.rng.Chance(50))
		return false;
	k.has_goal = true;
	k.goal = a.assigned;
	k.goal_primary = a.primary;
	k.goal_primary_timeline = a.primary_timeline;
	k.goal_names = a.names;
	k.goal_upstream = a.upstream;
	k.goal_upstream_lsn = a.upstream_lsn;
	w.servers[i].monitor_ok_ms = w.now_ms;
	if (a.primary >= 0)
		w.monitor_contacts[i].push_back(World::Moment{w.now_ms, w.seq++});
	return true;
}

void
Promote(World &w, int i)
{
	Server &s = w.servers[i];
	if (!s.in_recovery)
		return;
	s.in_recovery = false;
	s.standby_signal = false;
	s.timeline = ++w.max_timeline;
	uint32_t id = AppendRecord(w, i); /* end-of-recovery record: the new timeline starts here */
	w.promoted_seq = w.seq;
	w.promoted = i;
	w.promotion_records.emplace_back(id, World::Moment{w.now_ms, w.seq++});
	w.Trace(NodeName(i) + " promoted: timeline " + std::to_string(s.timeline) + " at lsn " + std::to_string(s.Lsn()));
}

/* A clone (pg_basebackup of `source`, then the swap restart); takes two steps. */
Result
Clone(World &w, int i, int source, NodeState new_state, bool set_state)
{
	Keeper &k = w.keepers[i];
	Server &s = w.servers[i];
	if (k.clone_done_at < 0) {
		k.clone_done_at = w.step + 2;
		return Result::InProgress;
	}
	if (w.step < k.clone_done_at)
		return Result::InProgress;
	k.clone_done_at = -1;
	const Server &src = w.servers[source];
	if (!src.up || src.pristine || !w.LinkUp(i, source))
		return Result::Failed;
	/* The swap restart: stop the old copy (nothing of it is kept), then start on the clone. */
	StopServer(w, i, false);
	s.wal = src.wal;
	s.timeline = src.timeline;
	s.pristine = false;
	s.needs_reclone = false;
	s.upstream = source;
	s.standby_signal = true;
	s.sync_names.clear();
	if (set_state)
		k.current = new_state;
	w.Trace(NodeName(i) + " cloned from " + NodeName(source) + " at lsn " + std::to_string(s.Lsn()));
	StartServer(w, i);
	return Result::InProgress;
}

Result
InitStandby(World &w, int i)
{
	Keeper &k = w.keepers[i];
	Server &s = w.servers[i];
	if (k.goal_primary < 0)
		return Result::InProgress;
	if (s.pristine)
		return Clone(w, i, k.goal_primary, NodeState::Init, false);
	s.upstream = k.goal_primary;
	if (s.in_recovery)
		return Result::Done;
	s.standby_signal = true;
	Restart(w, i);
	return Result::InProgress;
}

Result RewindOnto(World &w, int i, int src, NodeState new_state);

/* DemoteRewind (keeper.cpp): fence; once a primary is named, shutdown + pg_rewind from it in the pre-start hook. */
Result
DemoteRewind(World &w, int i, NodeState new_state)
{
	Keeper &k = w.keepers[i];
	Server &s = w.servers[i];
	SetFence(w, i, true, "held the primary's role, may have diverged");
	if (k.goal_primary < 0 || k.goal_primary == i)
		return Result::InProgress;
	if (s.needs_reclone)
		return Clone(w, i, k.goal_primary, new_state, true);
	return RewindOnto(w, i, k.goal_primary, new_state);
}

/* RewindOnto: clean shutdown, pg_rewind from `src` in the pre-start hook, start as a standby in `new_state`. */
Result
RewindOnto(World &w, int i, int src, NodeState new_state)
{
	Keeper &k = w.keepers[i];
	Server &s = w.servers[i];
	StopServer(w, i, true);
	const Server &source = w.servers[src];
	s.standby_signal = true;
	if (source.up && !source.pristine && w.LinkUp(i, src)) {
		s.wal = source.wal;
		s.timeline = source.timeline;
		s.upstream = src;
		s.sync_names.clear();
		k.current = new_state;
		w.Trace(NodeName(i) + " rewound onto " + NodeName(src) + " (lsn " + std::to_string(s.Lsn()) + ")");
	} else {
		s.needs_reclone = true;
		s.upstream = -1;
		w.Trace(NodeName(i) + " pg_rewind failed: the node waits to be re-cloned");
	}
	StartServer(w, i);
	return Result::InProgress;
}

Result
FollowPrimary(World &w, int i)
{
	Keeper &k = w.keepers[i];
	Server &s = w.servers[i];
	if (k.goal_primary < 0)
		return Result::InProgress;
	if (s.needs_reclone)
		return Clone(w, i, k.goal_primary, NodeState::Init, false);
	if (!s.in_recovery)
		return DemoteRewind(w, i, k.current);
	s.upstream = k.goal_primary;
	return Result::Done;
}

Result
StopReplication(World &w, int i)
{
	Server &s = w.servers[i];
	if (!s.in_recovery)
		return Result::Failed;
	s.upstream = -1;
	return Result::Done;
}

/* DemoteClean (keeper.cpp): fence, no upstream, standby.signal, clean fast shutdown, start in recovery. */
Result
DemoteClean(World &w, int i)
{
	Server &s = w.servers[i];
	if (s.in_recovery)
		return Result::Done;
	SetFence(w, i, true, "the node is being demoted");
	s.upstream = -1;
	s.standby_signal = true;
	Restart(w, i);
	return Result::InProgress;
}

/* FastForward (docs/elections.md): stream from the named participant until its reported LSN, then stop. */
Result
FastForward(World &w, int i)
{
	Keeper &k = w.keepers[i];
	Server &s = w.servers[i];
	if (!s.in_recovery || k.goal_upstream < 0)
		return Result::InProgress;
	/*
	 * FetchSourceDiverged (diverged.cpp), before the LSN comparison (an LSN
	 * on an older timeline may pass the source's and still lack its WAL:
	 * seed 18175): the source's history left our timeline before our end of
	 * WAL — we went past its fork and can never fetch from it (PostgreSQL's
	 * walreceiver cannot stream from it): rewound onto it, keeping the state.
	 */
	const Server &src = w.servers[k.goal_upstream];
	if (src.up && !src.pristine && w.LinkUp(i, k.goal_upstream) && src.timeline > s.timeline &&
		!IsPrefix(s.wal, src.wal)) {
		w.Trace(NodeName(i) + " keeper: fast_forward: this node went past the fork of " + NodeName(k.goal_upstream) +
				"'s timeline " + std::to_string(src.timeline) + ": rewound onto it");
		SetFence(w, i, true, "fast_forward from a source whose timeline forked before our end of WAL");
		return RewindOnto(w, i, k.goal_upstream, k.current);
	}
	if (s.Lsn() >= k.goal_upstream_lsn) {
		s.upstream = -1;
		return Result::Done;
	}
	s.upstream = k.goal_upstream;
	return Result::InProgress;
}

/* ActByGoal: the effect of reaching `to` for actions this model does not know by name (docs/elections.md). */
Result
ActByGoal(World &w, int i, NodeState to)
{
	switch (to) {
	case NodeState::ReportLsn:
	case NodeState::PreparePromotion:
		return StopReplication(w, i);
	case NodeState::FastForward:
		return FastForward(w, i);
	case NodeState::JoinSecondary:
	case NodeState::Catchingup:
	case NodeState::Secondary:
		return FollowPrimary(w, i);
	case NodeState::ApplySettings:
	case NodeState::Primary:
		if (w.servers[i].in_recovery)
			return Result::Failed;
		w.servers[i].sync_names = w.keepers[i].goal_names;
		return Result::Done;
	case NodeState::Dropped:
	case NodeState::Maintenance:
		return Result::Done;
	default:
		w.Trace(NodeName(i) + ": no model for the action towards " + fsm::StateName(to));
		return Result::Failed;
	}
}

Result
RunAction(World &w, int i, KeeperAction action, NodeState to)
{
	Server &s = w.servers[i];
	switch (action) {
	case KeeperAction::None:
		return to == NodeState::FastForward ? FastForward(w, i) : Result::Done;
	case KeeperAction::BecomeSingle:
	case KeeperAction::PrepareStandbys:
	case KeeperAction::DisableSyncRep:
		if (s.in_recovery)
			return Result::Failed;
		s.sync_names.clear();
		return Result::Done;
	case KeeperAction::EnableSyncRep:
		if (s.in_recovery)
			return Result::Failed;
		s.sync_names = w.keepers[i].goal_names;
		return Result::Done;
	case KeeperAction::InitStandby:
		return InitStandby(w, i);
	case KeeperAction::FollowPrimary:
		return FollowPrimary(w, i);
	case KeeperAction::DemoteClean:
		return DemoteClean(w, i);
	case KeeperAction::DemoteRewind:
		return DemoteRewind(w, i, to);
	case KeeperAction::StopReplication:
		return to == NodeState::FastForward ? FastForward(w, i) : StopReplication(w, i);
	case KeeperAction::Promote:
		Promote(w, i);
		return Result::Done;
	default:
		return ActByGoal(w, i, to);
	}
}

bool
FollowsPrimary(NodeState st)
{
	return st == NodeState::Catchingup || st == NodeState::Secondary || st == NodeState::JoinSecondary;
}

/*
 * StandbyDiverged (diverged.cpp): a following standby whose walreceiver
 * has not streamed for diverged_suspect_heartbeats heartbeats (a call after
 * a pause of more than one more heartbeat starts the suspicion again) asks
 * the goal's primary, at most every diverged_recheck_heartbeats, for its
 * timeline and history: WAL beyond the point where the primary's timeline
 * left ours (here: our WAL is not a prefix of the primary's, on an older
 * timeline) means diverged — sticky for the keeper process, and the login
 * fence goes up (persisted).  An unreachable primary tells nothing.
 * Process memory (Keeper) is lost with the keeper; times are ms + 1.
 */
bool
StandbyDiverged(World &w, int i)
{
	Keeper &k = w.keepers[i];
	const Server &s = w.servers[i];
	if (k.diverged_known)
		return true;
	const uint64_t hb = w.config.step_ms;
	const uint64_t now = w.now_ms + 1;
	bool fresh = k.last_check_call_ms == 0 ||
				 now - k.last_check_call_ms >= static_cast<uint64_t>(w.config.diverged_suspect_heartbeats + 1) * hb;
	k.last_check_call_ms = now;
	/* Streaming from another node (the old primary came back) is no proof (seed 14200 with --nss 2). */
	bool streams = Streaming(w, i) && s.upstream == k.goal_primary;
	/* A promotion this standby has not followed: check at once (no suspicion delay). */
	bool behind = k.goal_primary_timeline > s.timeline;
	/*
	 * Streaming from another node (the old primary) while the primary is on
	 * a later timeline: whatever a check finds now, the next record may go
	 * past the fork — no reads until it streams from the primary (seed 14200).
	 */
	if (behind && Streaming(w, i) && !streams && !s.fenced)
		SetFence(w, i, true, "a standby that streams from another node than the primary, on a later timeline");
	if (streams || (fresh && !behind)) {
		k.suspect_since_ms = streams ? 0 : now;
		return false;
	}
	if (k.suspect_since_ms == 0)
		k.suspect_since_ms = now;
	/* A primary or timeline other than the last probe's is asked at once. */
	bool new_target = k.goal_primary != k.probed_primary || k.goal_primary_timeline != k.probed_timeline;
	if ((!behind && now - k.suspect_since_ms < static_cast<uint64_t>(w.config.diverged_suspect_heartbeats) * hb) ||
		(now < k.next_probe_ms && !new_target))
		return false;
	k.next_probe_ms = now + static_cast<uint64_t>(w.config.diverged_recheck_heartbeats) * hb;
	k.probed_primary = k.goal_primary;
	k.probed_timeline = k.goal_primary_timeline;
	int p = k.goal_primary;
	const Server &ps = w.servers[p];
	if (!ps.up || ps.pristine || !w.LinkUp(i, p)) {
		/*
		 * Could not tell.  The monitor names a primary on a later timeline
		 * than ours: a promotion happened that this standby has not
		 * followed, so its WAL may go past the fork; it refuses reads until
		 * it streams from the primary (LiftFence) or is found diverged.
		 */
		if (k.goal_primary_timeline > s.timeline && !s.fenced)
			SetFence(w, i, true, "a suspect standby that cannot check its history against a newer primary");
		return false;
	}
	if (s.timeline >= ps.timeline || IsPrefix(s.wal, ps.wal))
		return false;
	k.diverged_known = true;
	w.Trace(NodeName(i) + " keeper: this standby has diverged from " + NodeName(p) + "'s timeline " +
			std::to_string(ps.timeline));
	SetFence(w, i, true, "this standby has diverged from the primary's timeline");
	return true;
}

/*
 * Steady (keeper.cpp): keep a settled node in line with the monitor's
 * latest values: a primary runs the told names; a following standby
 * re-points at the monitor's primary, and one found diverged is rewound
 * onto it (DemoteRewind keeps its state).
 */
void
Steady(World &w, int i)
{
	Server &s = w.servers[i];
	Keeper &k = w.keepers[i];
	if (!s.in_recovery && fsm::IsWritableState(k.current))
		s.sync_names = k.goal_names;
	else if (s.in_recovery && !s.pristine && FollowsPrimary(k.current) && k.goal_primary >= 0 && k.goal_primary != i) {
		s.upstream = k.goal_primary;
		if (StandbyDiverged(w, i))
			(void) DemoteRewind(w, i, k.current);
	} else if (s.in_recovery && k.current == NodeState::FastForward) {
		/* The monitor may name another source once this one is reached (the old primary came back ahead). */
		(void) FastForward(w, i);
	} else if (s.in_recovery && !s.pristine && k.current == NodeState::ReportLsn && k.goal_primary >= 0 &&
			   k.goal_primary != i) {
		/* An election participant told of the new primary: fenced if diverged, rewound once it joins. */
		(void) StandbyDiverged(w, i);
	}
}

/*
 * WatchWithoutMonitor (keeper.cpp): the heartbeat failed, but the last
 * answer named a primary: a following standby goes on checking its history
 * against it (fence only; the rewind waits for the monitor's next answer),
 * a maintenance standby on checking that it streams from no other node.
 */
void
WatchWithoutMonitor(World &w, int i)
{
	const Server &s = w.servers[i];
	const Keeper &k = w.keepers[i];
	if (s.in_recovery && !s.pristine && (FollowsPrimary(k.current) || k.current == NodeState::ReportLsn) &&
		k.has_goal && k.goal_primary >= 0 && k.goal_primary != i)
		(void) StandbyDiverged(w, i);
	if (k.has_goal)
		MaintenanceFence(w, i);
}

/* One tick; true when an action completed (the keeper ticks again at once). */
bool
TickOnce(World &w, int i)
{
	Server &s = w.servers[i];
	Keeper &k = w.keepers[i];
	if (CheckIsolation(w, i))
		return false;
	LiftFence(w, i, false);
	if (!Heartbeat(w, i)) {
		WatchWithoutMonitor(w, i);
		return false;
	}
	LiftFence(w, i, true);
	MaintenanceFence(w, i);
	/* PromoteBack: fenced (restarted as a standby) while the monitor still wants it primary. */
	if (s.in_recovery && fsm::IsWritableState(k.current) && fsm::IsWritableState(k.goal)) {
		if (s.needs_reclone)
			return false;
		w.Trace(NodeName(i) + " promoted back: the monitor still assigns " + fsm::StateName(k.goal));
		Promote(w, i);
		return true;
	}
	if (k.current == k.goal) {
		Steady(w, i);
		return false;
	}
	const fsm::KeeperTransition *t = fsm::FindKeeperTransition(k.current, k.goal);
	if (t == nullptr) {
		w.Trace(NodeName(i) + ": no keeper transition " + fsm::StateName(k.current) + " -> " + fsm::StateName(k.goal));
		return false;
	}
	NodeState from = k.current;
	Result r = RunAction(w, i, t->action, k.goal);
	if (r != Result::Done)
		return false;
	/* The action may have restarted the keeper (its memory is gone): only a live, unchanged keeper advances. */
	if (!k.alive || k.current != from || !k.has_goal)
		return false;
	w.Trace(NodeName(i) + " keeper: " + fsm::StateName(from) + " -> " + fsm::StateName(k.goal) + " (" +
			fsm::KeeperActionName(t->action) + ")");
	k.current = k.goal;
	return true;
}

} // namespace

void
StartKeeper(World &w, int i)
{
	Keeper &k = w.keepers[i];
	NodeState current = k.current;
	int delay = k.delay_reports;
	k = Keeper();
	k.current = current;
	k.delay_reports = delay;
	k.alive = true;
}

void
StartServer(World &w, int i)
{
	Server &s = w.servers[i];
	const Keeper &k = w.keepers[i];
	s.up = true;
	s.restart_at = -1;
	s.sessions = false;
	/* Shared memory is new: the isolation watch starts over (the node comes up fenced if it may have been replaced). */
	s.watched = false;
	s.watch_since_ms = s.monitor_ok_ms = s.quorum_contact_ms = 0;
	if (!s.pristine)
		s.in_recovery = s.standby_signal;
	/* StartupFence (module.cpp). */
	NodeState st = k.current;
	s.fenced = s.fence_file || s.needs_reclone || (fsm::IsWritableState(st) && st != NodeState::Single) ||
			   st == NodeState::Draining || st == NodeState::DemoteTimeout || st == NodeState::Demoted;
	StartKeeper(w, i);
}

void
StopServer(World &w, int i, bool clean)
{
	Server &s = w.servers[i];
	if (!s.up)
		return;
	if (clean && !s.in_recovery && !s.pristine) {
		AppendRecord(w, i); /* shutdown checkpoint */
		FlushToStandbys(w, i);
	}
	s.up = false;
	s.sessions = false;
	s.fenced = false; /* shared memory is gone; the fence file stays */
	w.keepers[i].alive = false;
	w.keepers[i].clone_done_at = -1;
	RefreshEpochs(w);
}

void
KeeperTick(World &w, int i)
{
	for (int round = 0; round < 3; round++) {
		if (!w.servers[i].up || !w.keepers[i].alive)
			return;
		bool again = TickOnce(w, i);
		RefreshEpochs(w);
		if (!again)
			return;
	}
}

} // namespace autopilot::sim
