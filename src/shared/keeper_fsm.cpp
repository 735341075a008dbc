/*
 * src/shared/keeper_fsm.cpp — the keeper's transition table as data (pure zone).
 *
 * One row per line, {from (current), to (goal), action, why}, grouped by
 * scenario; first match wins.  Every action is idempotent (keeper_fsm.hpp):
 * the keeper persists `current` only once the action has succeeded, so after
 * a crash the same row is found again.  Unit tests check that there is no
 * duplicate (from, to) pair and that every assignment the monitor's group
 * rules can produce has a row here.  No server headers, never throws.  The
 * table is a constexpr array (no static object with a destructor); the vector
 * KeeperTransitions() hands out is built once and deliberately never freed.
 */
#include "keeper_fsm.hpp"

#include <iterator>

namespace autopilot::fsm {

namespace {

using S = NodeState;
using A = KeeperAction;

// clang-format off
constexpr KeeperTransition kKeeperTransitions[] = {
	/*
	 * Registration: the monitor tells a new node what it is.  The first node of
	 * a group runs alone; any later node waits for the primary to prepare
	 * (slot, HBA) before it clones or follows, so there is nothing to do yet.
	 */
	{S::Init,             S::Single,           A::BecomeSingle,    "first node of its group: run as a primary without replication"},
	{S::Init,             S::WaitStandby,      A::None,            "a primary exists: wait until it has prepared replication for us"},

	/*
	 * A standby joins: the primary creates a slot per standby and keeps
	 * synchronous_standby_names empty, so writes keep flowing while the
	 * standby clones and catches up.
	 */
	{S::Single,           S::WaitPrimary,      A::PrepareStandbys, "a standby registered: create its replication slot, no synchronous replication yet"},
	{S::WaitStandby,      S::Catchingup,       A::InitStandby,     "the primary is ready: clone it (fresh node) or follow it (same system)"},

	/*
	 * The standby caught up: it now counts for quorum, and the primary turns
	 * synchronous replication on with the names the monitor computed.
	 */
	{S::Catchingup,       S::Secondary,        A::None,            "caught up with the primary: the monitor counts us for quorum"},
	{S::WaitPrimary,      S::Primary,          A::EnableSyncRep,   "a quorum standby is secondary: set synchronous_standby_names from the monitor"},

	/*
	 * A standby disappeared: without number_sync_standbys the primary drops
	 * synchronous replication so writes keep flowing; the lost standby must
	 * catch up again (and re-point at the current primary) when it is back.
	 */
	{S::Primary,          S::WaitPrimary,      A::DisableSyncRep,  "no healthy quorum standby left: synchronous_standby_names = '' so writes keep flowing"},
	{S::Secondary,        S::Catchingup,       A::FollowPrimary,   "we were reported unhealthy: make sure we follow the current primary and catch up"},

	/*
	 * The last standby was removed from the group: the primary runs alone
	 * again and needs no slot or synchronous replication for it.
	 */
	{S::WaitPrimary,      S::Single,           A::BecomeSingle,    "the last standby left the group: run as a primary without replication"},

	/*
	 * Switchover, old primary: a clean fast shutdown and a same-PID re-exec as
	 * a standby without upstream, so every WAL record reaches the candidate
	 * and the node later follows the new timeline without pg_rewind.  Once
	 * the candidate has all of it, demoted needs nothing more.
	 */
	{S::Primary,          S::Draining,         A::DemoteClean,     "switchover: stop writes with a clean fast shutdown and re-exec as a standby without upstream"},
	{S::Draining,         S::Demoted,          A::None,            "the candidate has all our WAL: we stay a standby without upstream until the new primary runs"},

	/*
	 * Candidate (switchover and failover): stop streaming for good so that
	 * the old primary cannot get a commit acknowledged by us, report the
	 * final LSN, then promote when the monitor has its proof, then prepare
	 * the slots for the other nodes as a new wait_primary.
	 */
	{S::Secondary,        S::PreparePromotion, A::StopReplication, "we are the promotion candidate: primary_conninfo '' stops the walreceiver, report the final LSN"},
	/*
	 * The monitor chose us from a report older than our state file (a
	 * node_active call we gave up on ran late and recorded secondary after
	 * we moved to catchingup): stopping replication is just as safe from
	 * here; the monitor's proofs decide whether we are promoted.
	 */
	{S::Catchingup,       S::PreparePromotion, A::StopReplication, "we are the promotion candidate (chosen from an older report): primary_conninfo '' stops the walreceiver, report the final LSN"},
	{S::PreparePromotion, S::StopReplication,  A::Promote,         "the old primary provably cannot write: promote, wait for the end of recovery, checkpoint"},
	{S::StopReplication,  S::WaitPrimary,      A::PrepareStandbys, "we are the new primary: replication slots for the other nodes, no synchronous replication yet"},

	/*
	 * Failover, old primary.  demote_timeout: if this keeper still runs and
	 * reaches the monitor, the node must stop acknowledging commits now; a
	 * clean demotion does that (fast shutdown, re-exec as a standby without
	 * upstream) and lets it report a non-writable state, which is the
	 * monitor's fastest proof.  pg_rewind cannot run yet: no new primary
	 * exists to rewind from.  demoted: the candidate was promoted and our
	 * history may have diverged from it (WAL it never received), so rewind
	 * from the new primary in the pre-start hook; the same when the keeper
	 * was away during the whole failover and still believes it is primary.
	 */
	{S::Primary,          S::DemoteTimeout,    A::DemoteClean,     "failover: stop writes now with a fast shutdown and re-exec as a standby without upstream"},
	{S::WaitPrimary,      S::DemoteTimeout,    A::DemoteClean,     "failover: stop writes now with a fast shutdown and re-exec as a standby without upstream"},
	{S::DemoteTimeout,    S::Demoted,          A::DemoteRewind,    "a new primary was promoted: rewind from it (our history may have diverged) and restart as its standby"},
	{S::Primary,          S::Demoted,          A::DemoteRewind,    "we were failed over while away: rewind from the new primary and restart as its standby"},
	{S::WaitPrimary,      S::Demoted,          A::DemoteRewind,    "we were failed over while away: rewind from the new primary and restart as its standby"},
	{S::StopReplication,  S::DemoteTimeout,    A::DemoteClean,     "failed before we reported wait_primary: we are promoted, stop writes now as above"},
	{S::StopReplication,  S::Demoted,          A::DemoteRewind,    "failed over before we reported wait_primary: rewind from the new primary and restart as its standby"},

	/*
	 * Rejoin: the demoted old primary follows the new primary (clean or
	 * rewound, it is on a history the new timeline continues), or stays as
	 * it is when the operator asked for its maintenance.
	 */
	{S::Demoted,          S::Catchingup,       A::FollowPrimary,   "the new primary runs: point primary_conninfo and the slot at it and catch up"},
	{S::Demoted,          S::Maintenance,      A::None,            "the operator asked for maintenance: stay a standby and let the operator act"},

	/*
	 * Maintenance of a standby: automation leaves it alone (the operator may
	 * stop it); when it ends, it follows the current primary and catches up.
	 */
	{S::Secondary,        S::Maintenance,      A::None,            "the operator asked for maintenance: nothing to do, the operator owns the node"},
	{S::Catchingup,       S::Maintenance,      A::None,            "the operator asked for maintenance: nothing to do, the operator owns the node"},
	{S::Maintenance,      S::Catchingup,       A::FollowPrimary,   "maintenance ended: point primary_conninfo and the slot at the current primary and catch up"},
	{S::Maintenance,      S::Secondary,        A::FollowPrimary,   "maintenance ended and the monitor already counts it caught up (its report of maintenance came late): point primary_conninfo and the slot at the current primary"},

	/*
	 * Primary with N standbys (docs/elections.md): a node registered or the
	 * synchronous names changed; the primary ensures slots and HBA for every
	 * other node and applies the names (it stays synchronous meanwhile), then
	 * returns to primary.  A primary in apply_settings can lose its last
	 * standby, fail or be failed over while away like a primary.
	 */
	{S::Primary,          S::ApplySettings,    A::ApplySettings,   "a node registered or the settings changed: slots and HBA for every node, names from the monitor"},
	{S::ApplySettings,    S::Primary,          A::EnableSyncRep,   "settings applied: keep synchronous_standby_names from the monitor"},
	{S::ApplySettings,    S::WaitPrimary,      A::DisableSyncRep,  "no healthy quorum standby left: synchronous_standby_names = '' so writes keep flowing"},
	{S::ApplySettings,    S::DemoteTimeout,    A::DemoteClean,     "failover: stop writes now with a fast shutdown and re-exec as a standby without upstream"},
	{S::ApplySettings,    S::Demoted,          A::DemoteRewind,    "we were failed over while away: rewind from the new primary and restart as its standby"},

	/*
	 * Election, standbys: stop streaming for good and report the final LSN;
	 * the winner fetches WAL it lacks from the most advanced participant
	 * (upstream_*, no slot) and stops again, then is promoted as above; the
	 * losers follow the new primary once it runs.
	 */
	{S::Secondary,        S::ReportLsn,        A::ReportLsn,       "election: primary_conninfo '' stops the walreceiver, wait until it stopped, report the final LSN"},
	{S::Catchingup,       S::ReportLsn,        A::ReportLsn,       "election: primary_conninfo '' stops the walreceiver, wait until it stopped, report the final LSN"},
	{S::ReportLsn,        S::PreparePromotion, A::StopReplication, "we won the election with the most WAL: make sure replication stays stopped, report"},
	{S::ReportLsn,        S::FastForward,      A::FastForward,     "we won but lack WAL: stream from upstream_* until upstream_lsn, then stop and report"},
	{S::FastForward,      S::PreparePromotion, A::StopReplication, "we have the missing WAL: make sure replication is stopped, report the final LSN"},
	/*
	 * The candidate (two-node failover or election winner) lacks WAL that
	 * only the old primary, confirmed down after its clean demotion (a
	 * standby without upstream), holds: fetch it from there (upstream_* names
	 * the old primary), then stop and report as above.
	 */
	{S::PreparePromotion, S::FastForward,      A::FastForward,     "the confirmed-down old primary holds WAL we lack: stream from upstream_* until upstream_lsn, then stop and report"},
	{S::ReportLsn,        S::JoinSecondary,    A::JoinNewPrimary,  "the election is over: point primary_conninfo and our slot at the new primary, report"},
	{S::JoinSecondary,    S::Secondary,        A::None,            "caught up with the new primary: the monitor counts us for quorum"},
	{S::JoinSecondary,    S::Catchingup,       A::FollowPrimary,   "reported unhealthy right after we joined: make sure we follow the current primary and catch up"},

	/*
	 * drop_node: whatever the node was doing, its keeper reports dropped,
	 * persists it locally and idles (a writable node stays fenced); it never
	 * registers again until its local state file is removed.
	 */
	{S::Init,             S::Dropped,          A::Dropped,         "dropped before we joined: report dropped and idle"},
	{S::Single,           S::Dropped,          A::Dropped,         "the only node was dropped: report dropped and idle"},
	{S::WaitPrimary,      S::Dropped,          A::Dropped,         "dropped: report dropped and idle (the login fence stays)"},
	{S::Primary,          S::Dropped,          A::Dropped,         "dropped while away: report dropped and idle (the login fence stays)"},
	{S::ApplySettings,    S::Dropped,          A::Dropped,         "dropped while away: report dropped and idle (the login fence stays)"},
	{S::Draining,         S::Dropped,          A::Dropped,         "dropped after the handover: report dropped and idle"},
	{S::DemoteTimeout,    S::Dropped,          A::Dropped,         "dropped after the failover: report dropped and idle"},
	{S::Demoted,          S::Dropped,          A::Dropped,         "dropped after the handover: report dropped and idle"},
	{S::WaitStandby,      S::Dropped,          A::Dropped,         "dropped before we cloned: report dropped and idle"},
	{S::Catchingup,       S::Dropped,          A::Dropped,         "dropped: report dropped and idle"},
	{S::Secondary,        S::Dropped,          A::Dropped,         "dropped: report dropped and idle"},
	{S::PreparePromotion, S::Dropped,          A::Dropped,         "dropped: report dropped and idle"},
	{S::StopReplication,  S::Dropped,          A::Dropped,         "dropped while away: report dropped and idle (the login fence stays)"},
	{S::ReportLsn,        S::Dropped,          A::Dropped,         "dropped during an election: report dropped and idle"},
	{S::FastForward,      S::Dropped,          A::Dropped,         "dropped during an election: report dropped and idle"},
	{S::JoinSecondary,    S::Dropped,          A::Dropped,         "dropped after an election: report dropped and idle"},
	{S::PrepareMaintenance, S::Dropped,        A::Dropped,         "dropped: report dropped and idle"},
	{S::WaitMaintenance,  S::Dropped,          A::Dropped,         "dropped: report dropped and idle"},
	{S::Maintenance,      S::Dropped,          A::Dropped,         "dropped in maintenance: report dropped and idle"},
};
// clang-format on

} // namespace

const char *
KeeperActionName(KeeperAction a) noexcept
{
	switch (a) {
	case KeeperAction::None:
		return "none";
	case KeeperAction::BecomeSingle:
		return "become_single";
	case KeeperAction::PrepareStandbys:
		return "prepare_standbys";
	case KeeperAction::EnableSyncRep:
		return "enable_sync_rep";
	case KeeperAction::DisableSyncRep:
		return "disable_sync_rep";
	case KeeperAction::InitStandby:
		return "init_standby";
	case KeeperAction::FollowPrimary:
		return "follow_primary";
	case KeeperAction::DemoteClean:
		return "demote_clean";
	case KeeperAction::DemoteRewind:
		return "demote_rewind";
	case KeeperAction::StopReplication:
		return "stop_replication";
	case KeeperAction::Promote:
		return "promote";
	case KeeperAction::ApplySettings:
		return "apply_settings";
	case KeeperAction::ReportLsn:
		return "report_lsn";
	case KeeperAction::FastForward:
		return "fast_forward";
	case KeeperAction::JoinNewPrimary:
		return "join_new_primary";
	case KeeperAction::Dropped:
		return "dropped";
	}
	return "unknown";
}

const std::vector<KeeperTransition> &
KeeperTransitions()
{
	static const auto *rows =
		new std::vector<KeeperTransition>(std::begin(kKeeperTransitions), std::end(kKeeperTransitions));
	return *rows;
}

const KeeperTransition *
FindKeeperTransition(NodeState from, NodeState to) noexcept
{
	for (const auto &row : kKeeperTransitions)
		if (row.from == from && row.to == to)
			return &row;
	return nullptr;
}

} // namespace autopilot::fsm
