/*
 * src/shared/group_rules_requests.cpp — the operator requests of
 * docs/failover.md and docs/elections.md (switchover, failover, promotion,
 * maintenance, drop_node) and the validations of the settings requests
 * (number_sync_standbys, replication_quorum, candidate_priority), pure zone.
 *
 * Each request returns the assignments that start the operation; the rules
 * (group_rules.cpp, election.cpp) do the rest.  A refusal throws
 * autopilot::Error — 55000 (not in the prerequisite state), 42704 (unknown
 * node) or 22023 (invalid value) — with full-sentence detail and hint, and
 * the caller then changes nothing.  No server headers.
 */
#include <algorithm>
#include <climits>

#include "error.hpp"
#include "group_rules.hpp"
#include "group_rules_internal.hpp"
#include "lsn.hpp"

namespace autopilot::fsm {

namespace {

using namespace detail;

/* FindNode returns the member named `name`; throws 42704 when the group has none. */
const NodeView &
FindNode(const GroupView &group, const std::vector<NodeView> &nodes, const std::string &name)
{
	for (const auto &n : nodes)
		if (n.name == name && n.assigned != S::Dropped)
			return n;
	throw Error(sqlstate::kUndefinedObject, "node \"" + name + "\" is not a member of " + GroupLabel(group), "",
				"pg_autopilot.show_state() lists the nodes.");
}

/* InRoleChange tells whether state `s` belongs to a switchover, failover or election under way. */
bool
InRoleChange(NodeState s)
{
	switch (s) {
	case S::Draining:
	case S::DemoteTimeout:
	case S::Demoted:
	case S::PreparePromotion:
	case S::StopReplication:
	case S::ReportLsn:
	case S::FastForward:
	case S::JoinSecondary:
	case S::PrepareMaintenance:
	case S::WaitMaintenance:
		return true;
	default:
		return false;
	}
}

/*
 * RequireNoOperation refuses `what` when an operation is under way: some
 * member is in a role-change state, or has not reported its assigned state
 * yet.  A standby that is down (unhealthy, not in a role change) does not
 * count: it blocks nothing by itself, and the checks that follow explain
 * better why it cannot take over.
 */
void
RequireNoOperation(const GroupView &group, const std::vector<NodeView> &nodes, const std::string &what)
{
	for (const auto &n : nodes) {
		if (n.assigned == S::Dropped)
			continue;
		bool changing = InRoleChange(n.assigned) || InRoleChange(n.reported);
		if (!changing && (n.reported == n.assigned || !n.healthy))
			continue;
		Refuse("cannot " + what + ": an operation is in progress in " + GroupLabel(group),
			   "Node " + Label(n) + " is assigned " + StateName(n.assigned) + " and reports " + StateName(n.reported) +
				   ".",
			   "Wait until every node reports its assigned state (pg_autopilot.show_state()), then retry.");
	}
}

/* WhyNotCandidate explains in a sentence why `n` cannot take over from `primary` (IsCandidate is false). */
std::string
WhyNotCandidate(const NodeView &n, const NodeView &primary)
{
	std::string who = "Node " + Label(n);
	if (n.assigned == S::Maintenance || n.wants_maintenance)
		return who + " is in maintenance.";
	if (n.wants_drop)
		return who + " is being dropped.";
	if (!n.healthy)
		return who + " is unhealthy.";
	if (!Settled(n, S::Secondary))
		return who + " is assigned " + StateName(n.assigned) + " and reports " + StateName(n.reported) +
			   ", not secondary.";
	if (n.candidate_priority <= 0)
		return who + " has candidate_priority 0.";
	if (n.timeline != primary.timeline)
		return who + " is on timeline " + std::to_string(n.timeline) + ", the primary on timeline " +
			   std::to_string(primary.timeline) + ".";
	return who + " qualifies.";
}

/*
 * RequirePrimary returns the settled primary for `what`; refuses when there
 * is none, it is not settled `primary` (single: nobody to switch to;
 * wait_primary: no synchronous secondary yet, unless allow_wait_primary), or
 * — unless allow_unhealthy — it is unhealthy.
 */
const NodeView &
RequirePrimary(const GroupView &group, const std::vector<NodeView> &nodes, const std::string &what,
			   bool allow_unhealthy, bool allow_wait_primary = false)
{
	const NodeView *p = FindPrimary(group, nodes);
	if (p == nullptr)
		Refuse("cannot " + what + ": " + GroupLabel(group) + " has no primary", "No node is assigned a writable state.",
			   "Wait until the group has a primary, then retry.");
	if (p->assigned == S::Single)
		Refuse("cannot " + what + ": " + GroupLabel(group) + " has no standby", "Primary " + Label(*p) + " runs alone.",
			   "Add a standby and wait until it is secondary.");
	if (p->assigned == S::WaitPrimary && !allow_wait_primary) {
		std::string detail;
		for (const auto &n : nodes)
			if (n.node_id != p->node_id && n.assigned != S::Dropped)
				detail += (detail.empty() ? "" : " ") + WhyNotCandidate(n, *p);
		Refuse("cannot " + what + ": no healthy secondary of " + GroupLabel(group) + " can take over from " + Label(*p),
			   detail.empty() ? "The primary has no standby." : detail,
			   "Wait until a standby is secondary and healthy, then retry.");
	}
	if (!Settled(*p, S::Primary) && !(allow_wait_primary && Settled(*p, S::WaitPrimary)))
		Refuse("cannot " + what + ": primary " + Label(*p) + " is in state " + StateName(p->assigned),
			   "A switchover or failover starts from a primary with a synchronous secondary.",
			   "Wait until a standby is secondary and the primary reports primary, then retry.");
	if (!allow_unhealthy && !p->healthy)
		Refuse("cannot " + what + ": primary " + Label(*p) + " is unhealthy",
			   "An unhealthy primary cannot drain cleanly.",
			   "Use pg_autopilot.perform_failover() to fail over from an unreachable primary.");
	return *p;
}

/* RequireCandidate returns BestCandidate for `what`, refusing with each standby's reason when there is none. */
const NodeView &
RequireCandidate(const GroupView &group, const std::vector<NodeView> &nodes, const NodeView &primary,
				 const std::string &what)
{
	const NodeView *c = BestCandidate(nodes, primary, nullptr);
	if (c != nullptr)
		return *c;
	std::string detail;
	for (const auto &n : nodes)
		if (n.node_id != primary.node_id && n.assigned != S::Dropped)
			detail += (detail.empty() ? "" : " ") + WhyNotCandidate(n, primary);
	Refuse("cannot " + what + ": no healthy secondary of " + GroupLabel(group) + " can take over", detail,
		   "Wait until a standby is secondary and healthy, with candidate_priority > 0 and not in maintenance.");
}

} // namespace

/*
 * Switchover: the settled, healthy primary drains (fast shutdown, re-exec as
 * a standby without upstream); switchover_candidate_has_all_wal and the
 * promotion rules do the rest.  Only the primary moves now, so a refusal
 * later is impossible and the candidate keeps streaming until it has all the
 * WAL.
 */
std::vector<Assignment>
Switchover(const GroupView &group)
{
	const std::string what = "perform a switchover";
	std::vector<NodeView> nodes = SortedNodes(group);
	RequireNoOperation(group, nodes, what);
	const NodeView &p = RequirePrimary(group, nodes, what, false);
	const NodeView &c = RequireCandidate(group, nodes, p, what);
	return {MakeAssignment(p, S::Draining, "switchover",
						   "switchover requested: primary " + Label(p) + " drains, " + Label(c) + " takes over")};
}

/*
 * Failover (operator-forced): like Switchover, but also when the primary is
 * unhealthy, and without waiting for a candidate to have all the WAL.  The
 * primary goes to demote_timeout, not draining: draining waits for the old
 * primary to report a clean shutdown and for the candidate to receive its
 * WAL, which never happens when the primary is down or isolated.
 * demote_timeout instead goes through promote_candidate's proofs, so no
 * candidate is promoted while the old primary may still acknowledge
 * commits.  With one standby the candidate stops streaming at once
 * (prepare_promotion); with two or more the election rules choose, and they
 * honour allow_data_loss (read from the primary's view) instead of
 * QuorumReported.  A wait_primary primary (it may have acknowledged commits
 * alone) is failed over only with allow_data_loss or when
 * number_sync_standbys = 0.
 */
std::vector<Assignment>
Failover(const GroupView &group)
{
	const std::string what = "perform a failover";
	std::vector<NodeView> nodes = SortedNodes(group);
	RequireNoOperation(group, nodes, what);
	const NodeView *current = FindPrimary(group, nodes);
	bool allow_wait_primary = current != nullptr && (current->allow_data_loss || group.number_sync_standbys == 0);
	const NodeView &p = RequirePrimary(group, nodes, what, true, allow_wait_primary);
	const NodeView &c = RequireCandidate(group, nodes, p, what);
	std::string loss = p.allow_data_loss ? " (data loss allowed)" : "";
	if (Standbys(nodes, p) >= 2)
		return {MakeAssignment(p, S::DemoteTimeout, "failover",
							   "failover requested" + loss + ": primary " + Label(p) +
								   " must stop writing, its standbys elect a new primary")};
	return {MakeAssignment(p, S::DemoteTimeout, "failover",
						   "failover requested" + loss + ": primary " + Label(p) + " must stop writing, " + Label(c) +
							   " takes over"),
			MakeAssignment(c, S::PreparePromotion, "failover",
						   "failover requested: " + Label(c) + " stops streaming and prepares its promotion")};
}

/*
 * Promotion: a switchover towards node_name, which must qualify (IsCandidate)
 * and be within promote_lag_threshold_bytes of the primary.  The caller sets
 * promotion_target on it, so switchover_candidate_has_all_wal picks it even
 * when another standby has a higher priority.  Returns nothing when the node
 * already is the primary (the caller tells the operator).
 */
std::vector<Assignment>
Promotion(const GroupView &group, const std::string &node_name)
{
	std::vector<NodeView> nodes = SortedNodes(group);
	const NodeView &target = FindNode(group, nodes, node_name);
	if (IsWritableState(target.assigned))
		return {};
	const std::string what = "promote node " + Label(target);
	RequireNoOperation(group, nodes, what);
	const NodeView *primary = FindPrimary(group, nodes);
	if (primary != nullptr && !IsCandidate(target, *primary))
		Refuse("cannot " + what + ": it is not a healthy secondary that may be promoted",
			   WhyNotCandidate(target, *primary),
			   "Wait until the node is secondary and healthy, with candidate_priority > 0 and not in maintenance.");
	const NodeView &p = RequirePrimary(group, nodes, what, false);
	uint64_t lag = lsn::LagBytes(p.lsn, target.lsn);
	if (lag > group.promote_lag_threshold_bytes)
		Refuse("cannot " + what + ": it is " + std::to_string(lag) + " bytes behind primary " + Label(p),
			   "The promotion lag threshold is " + std::to_string(group.promote_lag_threshold_bytes) + " bytes.",
			   "Wait until the node has caught up, then retry.");
	return {MakeAssignment(p, S::Draining, "promotion",
						   "promotion of " + Label(target) + " requested: primary " + Label(p) + " drains")};
}

/*
 * EnableMaintenance: a standby (assigned and reporting secondary or
 * catchingup) goes to maintenance at once; the primary starts a switchover
 * (rule name maintenance_switchover) and ends in maintenance through
 * old_primary_rejoins.  The caller stores wants_maintenance = true on the
 * node for every accepted request: that flag is what sends the old primary
 * to maintenance and keeps the node from ever being a candidate.
 */
std::vector<Assignment>
EnableMaintenance(const GroupView &group, const std::string &node_name)
{
	std::vector<NodeView> nodes = SortedNodes(group);
	const NodeView &node = FindNode(group, nodes, node_name);
	const std::string what = "enable maintenance of node " + Label(node);
	if (node.assigned == S::Maintenance)
		Refuse("cannot " + what + ": it is already in maintenance", "",
			   "pg_autopilot.disable_maintenance() ends the maintenance.");
	if (node.wants_maintenance)
		Refuse("cannot " + what + ": its maintenance is already being prepared",
			   "The node is assigned " + std::string(StateName(node.assigned)) + ".",
			   "Wait until the node reports maintenance.");
	if (IsWritableState(node.assigned)) {
		RequireNoOperation(group, nodes, what);
		const NodeView &p = RequirePrimary(group, nodes, what, false);
		const NodeView &c = RequireCandidate(group, nodes, p, what);
		return {MakeAssignment(p, S::Draining, "maintenance_switchover",
							   "maintenance of primary " + Label(p) + " requested: it drains, " + Label(c) +
								   " takes over")};
	}
	/* A standby may be the candidate of a switchover under way: never take it away then. */
	for (const auto &n : nodes)
		if (n.assigned != S::Dropped && (InRoleChange(n.assigned) || InRoleChange(n.reported)))
			Refuse("cannot " + what + ": an operation is in progress in " + GroupLabel(group),
				   "Node " + Label(n) + " is assigned " + StateName(n.assigned) + " and reports " +
					   StateName(n.reported) + ".",
				   "Wait until the operation is over (pg_autopilot.show_state()), then retry.");
	if (FindPrimary(group, nodes) == nullptr)
		Refuse("cannot " + what + ": " + GroupLabel(group) + " has no primary", "No node is assigned a writable state.",
			   "Wait until the group has a primary, then retry.");
	auto standby_state = [](NodeState s) { return s == S::Secondary || s == S::Catchingup; };
	if (!standby_state(node.assigned) || !standby_state(node.reported))
		Refuse("cannot " + what + ": it is assigned " + StateName(node.assigned) + " and reports " +
				   StateName(node.reported),
			   "Only the primary or a standby in state secondary or catchingup can enter maintenance.",
			   "Wait until the node reports secondary or catchingup, then retry.");
	return {MakeAssignment(node, S::Maintenance, "maintenance_enabled",
						   "maintenance of standby " + Label(node) + " requested: automation leaves it alone")};
}

/* DisableMaintenance: maintenance → catchingup.  The caller clears wants_maintenance. */
std::vector<Assignment>
DisableMaintenance(const GroupView &group, const std::string &node_name)
{
	std::vector<NodeView> nodes = SortedNodes(group);
	const NodeView &node = FindNode(group, nodes, node_name);
	if (node.assigned != S::Maintenance)
		Refuse("cannot disable maintenance of node " + Label(node) + ": it is not in maintenance",
			   "The node is assigned " + std::string(StateName(node.assigned)) + ".",
			   node.wants_maintenance ? "Wait until the node reports maintenance, then retry." : "");
	return {MakeAssignment(node, S::Catchingup, "maintenance_disabled",
						   "maintenance of " + Label(node) + " ended: it catches up with the primary")};
}

/*
 * DropNode (group_rules.hpp).  States in which a node is never dropped: the
 * chosen candidate of an operation (prepare_promotion, fast_forward: the
 * operation would have nobody to promote; stop_replication: it may already
 * write) and an old primary that may still write (draining,
 * demote_timeout: the promotion proofs need it).  Other role-change states
 * (report_lsn, join_secondary, demoted, ...) only with force: the operator
 * says the node is gone for good.
 */
std::vector<Assignment>
DropNode(const GroupView &group, const std::string &node_name, bool force)
{
	std::vector<NodeView> nodes = SortedNodes(group);
	const NodeView &node = FindNode(group, nodes, node_name);
	const std::string what = "drop node " + Label(node);
	const std::string desc = "drop_node requested" + std::string(force ? " (force)" : "") + ": ";
	switch (node.assigned) {
	case S::PreparePromotion:
	case S::StopReplication:
	case S::FastForward:
	case S::Draining:
	case S::DemoteTimeout:
		Refuse("cannot " + what + ": it takes part in an operation in progress",
			   "The node is assigned " + std::string(StateName(node.assigned)) +
				   ": the operation needs it to end safely.",
			   "Wait until the operation is over (pg_autopilot.show_state()), then retry.");
	default:
		break;
	}
	if (!IsWritableState(node.assigned)) {
		if (!force && (InRoleChange(node.assigned) || InRoleChange(node.reported)))
			Refuse("cannot " + what + ": it takes part in an operation in progress",
				   "The node is assigned " + std::string(StateName(node.assigned)) + " and reports " +
					   StateName(node.reported) + ".",
				   "Retry once the operation is over, or use force => true if the node is gone for good.");
		return {MakeAssignment(node, S::Dropped, "drop_node",
							   desc + "standby " + Label(node) + " leaves " + GroupLabel(group))};
	}

	/* The primary. */
	const NodeView &p = node;
	if (Standbys(nodes, p) == 0)
		return {MakeAssignment(p, S::Dropped, "drop_node",
							   desc + Label(p) + " is the only node of " + GroupLabel(group) + ": it leaves")};
	if (p.wants_drop)
		Refuse("cannot " + what + ": it is already being dropped", "", "Wait until the node reports dropped.");
	RequireNoOperation(group, nodes, what);
	if (p.assigned == S::WaitPrimary && group.number_sync_standbys >= 1)
		Refuse("cannot " + what + ": primary " + Label(p) + " is in state wait_primary",
			   "It may have acknowledged commits that no standby has, and number_sync_standbys is " +
				   std::to_string(group.number_sync_standbys) + ".",
			   "Wait until the primary reports primary, or use pg_autopilot.perform_failover() with "
			   "allow_data_loss => true first.");
	const NodeView *c = BestCandidate(nodes, p, nullptr);
	if (c == nullptr) {
		std::string detail;
		for (const auto &n : nodes)
			if (n.node_id != p.node_id && n.assigned != S::Dropped)
				detail += (detail.empty() ? "" : " ") + WhyNotCandidate(n, p);
		Refuse("cannot " + what + ": no standby of " + GroupLabel(group) + " can take over from it", detail,
			   "Wait until a standby is secondary and healthy with candidate_priority > 0, or drop the standbys "
			   "first.");
	}
	if (Settled(p, S::Primary) && p.healthy)
		return {MakeAssignment(p, S::Draining, "drop_node",
							   desc + "primary " + Label(p) + " drains and leaves once " + Label(*c) +
								   " or another standby took over")};
	if (Standbys(nodes, p) >= 2)
		return {MakeAssignment(p, S::DemoteTimeout, "drop_node",
							   desc + "primary " + Label(p) +
								   " must stop writing and leaves once its standbys elected a new primary")};
	return {
		MakeAssignment(p, S::DemoteTimeout, "drop_node",
					   desc + "primary " + Label(p) + " must stop writing and leaves once " + Label(*c) + " took over"),
		MakeAssignment(*c, S::PreparePromotion, "drop_node",
					   desc + Label(*c) + " stops streaming and prepares its promotion")};
}

int
QuorumStandbyCount(const GroupView &group)
{
	const NodeView *p = FindPrimary(group, group.nodes);
	if (p == nullptr)
		p = OldPrimary(group.nodes);
	int count = 0;
	for (const auto &n : group.nodes)
		if (n.assigned != S::Dropped && !n.wants_drop && n.replication_quorum &&
			(p == nullptr || n.node_id != p->node_id))
			count++;
	/* A primary being dropped hands over to one of the counted nodes, which then is no standby of its own. */
	if (p != nullptr && p->wants_drop && count > 0)
		count--;
	return count;
}

/* HasMembers: the group has a node that is not being dropped. */
static bool
HasMembers(const GroupView &group)
{
	return std::any_of(group.nodes.begin(), group.nodes.end(),
					   [](const NodeView &n) { return n.assigned != NodeState::Dropped; });
}

int
MaxNumberSyncStandbys(const std::vector<GroupView> &groups)
{
	int max = INT_MAX;
	for (const auto &g : groups)
		if (HasMembers(g))
			max = std::min(max, std::max(QuorumStandbyCount(g) - 1, 0));
	return max;
}

void
ValidateNumberSyncStandbys(const std::vector<GroupView> &groups, int n)
{
	if (n < 0)
		throw Error(sqlstate::kInvalidParameterValue, "invalid number_sync_standbys " + std::to_string(n),
					"number_sync_standbys counts the standbys that must confirm each commit; it cannot be negative.",
					"Use 0 (no standby must confirm) or more.");
	if (n == 0)
		return;
	for (const auto &g : groups) {
		if (!HasMembers(g))
			continue;
		int quorum = QuorumStandbyCount(g);
		if (n + 1 <= quorum)
			continue;
		throw Error(sqlstate::kObjectNotInPrerequisiteState,
					"cannot set number_sync_standbys to " + std::to_string(n) + " in formation " + g.formation,
					GroupLabel(g) + " has " + std::to_string(quorum) + " quorum standby(s); number_sync_standbys " +
						std::to_string(n) + " needs at least " + std::to_string(n + 1) +
						" so that writes continue when one standby is lost.",
					"Add standbys with replication_quorum on, or choose at most " +
						std::to_string(std::max(quorum - 1, 0)) + ".");
	}
}

void
ValidateReplicationQuorum(const GroupView &group, const std::string &node_name, bool quorum)
{
	std::vector<NodeView> nodes = SortedNodes(group);
	const NodeView &node = FindNode(group, nodes, node_name);
	int n = group.number_sync_standbys;
	if (quorum || !node.replication_quorum || n == 0)
		return;
	const NodeView *p = FindPrimary(group, nodes);
	if (p == nullptr)
		p = OldPrimary(nodes);
	if (p != nullptr && p->node_id == node.node_id)
		return; /* the primary is not one of its own quorum standbys */
	int left = QuorumStandbyCount(group) - 1;
	if (left >= n + 1)
		return;
	Refuse("cannot turn replication_quorum off for node " + Label(node),
		   GroupLabel(group) + " would have " + std::to_string(left) +
			   " quorum standby(s) left; number_sync_standbys " + std::to_string(n) + " needs at least " +
			   std::to_string(n + 1) + ".",
		   "Lower number_sync_standbys first (pg_autopilot.set_number_sync_standbys()), or add a quorum standby.");
}

void
ValidateCandidatePriority(const GroupView &group, const std::string &node_name, int priority)
{
	if (priority < 0 || priority > 100)
		throw Error(sqlstate::kInvalidParameterValue, "invalid candidate_priority " + std::to_string(priority),
					"candidate_priority ranges from 0 (never promoted) to 100.", "Choose a value from 0 to 100.");
	std::vector<NodeView> nodes = SortedNodes(group);
	(void) FindNode(group, nodes, node_name);
}

} // namespace autopilot::fsm
