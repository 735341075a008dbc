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
	{S::Init,        S::Single,      A::BecomeSingle,    "first node of its group: run as a primary without replication"},
	{S::Init,        S::WaitStandby, A::None,            "a primary exists: wait until it has prepared replication for us"},

	/*
	 * A standby joins: the primary creates a slot per standby and keeps
	 * synchronous_standby_names empty, so writes keep flowing while the
	 * standby clones and catches up.
	 */
	{S::Single,      S::WaitPrimary, A::PrepareStandbys, "a standby registered: create its replication slot, no synchronous replication yet"},
	{S::WaitStandby, S::Catchingup,  A::InitStandby,     "the primary is ready: clone it (fresh node) or follow it (same system)"},

	/*
	 * The standby caught up: it now counts for quorum, and the primary turns
	 * synchronous replication on with the names the monitor computed.
	 */
	{S::Catchingup,  S::Secondary,   A::None,            "caught up with the primary: the monitor counts us for quorum"},
	{S::WaitPrimary, S::Primary,     A::EnableSyncRep,   "a quorum standby is secondary: set synchronous_standby_names from the monitor"},

	/*
	 * A standby disappeared: without number_sync_standbys the primary drops
	 * synchronous replication so writes keep flowing; the lost standby must
	 * catch up again (and re-point at the current primary) when it is back.
	 */
	{S::Primary,     S::WaitPrimary, A::DisableSyncRep,  "no healthy quorum standby left: synchronous_standby_names = '' so writes keep flowing"},
	{S::Secondary,   S::Catchingup,  A::FollowPrimary,   "we were reported unhealthy: make sure we follow the current primary and catch up"},

	/*
	 * The last standby was removed from the group: the primary runs alone
	 * again and needs no slot or synchronous replication for it.
	 */
	{S::WaitPrimary, S::Single,      A::BecomeSingle,    "the last standby left the group: run as a primary without replication"},
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
