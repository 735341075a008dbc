/*
 * src/shared/group_rules.cpp — the monitor's group rules as data (pure zone).
 *
 * kGroupRules holds one row per rule: {name, from, to, predicate, description}.
 * `from` is the assigned state of the node the rule moves; ProceedGroup tries
 * the rows in order for every node whose assigned state equals `from`, first
 * match wins, and repeats until nothing fires (each node moves at most once
 * per call).  A rule generally fires only once the node it waits for has
 * reported its assigned state (reported == assigned, "settled"); rules driven
 * by health verdicts are the exception.
 *
 * Every (from, to) a rule produces has a row in the keeper's table
 * (keeper_fsm.cpp); the unit tests check it.  No server headers; throws
 * autopilot::Error on an inconsistent view (two writable primaries) and from
 * InitialState when there is no primary to follow.  Tables are constexpr
 * arrays; vectors handed out are built once and never freed (no static object
 * with a destructor).
 */
#include "group_rules.hpp"

#include <algorithm>
#include <iterator>

#include "error.hpp"
#include "lsn.hpp"

namespace autopilot::fsm {

namespace {

using S = NodeState;

/* The working copy of a group while rules fire: assigned states change as we go. */
struct Ctx {
	const GroupView &group;
	const std::vector<NodeView> &nodes;
	const NodeView *primary; /* node assigned a writable state, or nullptr */
};

/* A predicate decides whether its rule moves `node`; on true it writes the event text. */
using Predicate = bool (*)(const Ctx &ctx, const NodeView &node, std::string *description);

struct GroupRule {
	const char *name;
	NodeState from;
	NodeState to;
	Predicate when;
	const char *description;
};

std::string
Label(const NodeView &n)
{
	return n.name + " (id " + std::to_string(n.node_id) + ")";
}

bool
Settled(const NodeView &n, NodeState s)
{
	return n.assigned == s && n.reported == s;
}

/* A standby that counts for synchronous quorum right now: healthy quorum node assigned secondary. */
bool
IsHealthyQuorumSecondary(const NodeView &n)
{
	return n.replication_quorum && n.healthy && n.assigned == S::Secondary;
}

/* Nodes of the group other than `self` that are not being removed. */
int
OtherMembers(const Ctx &ctx, const NodeView &self)
{
	int count = 0;
	for (const auto &n : ctx.nodes)
		if (n.node_id != self.node_id && n.assigned != S::Dropped)
			count++;
	return count;
}

/*
 * FindPrimary returns the node assigned a writable state, nullptr if none.
 * Throws Error (XX000) when two nodes are, which the monitor must never let
 * happen.
 */
const NodeView *
FindPrimary(const GroupView &group, const std::vector<NodeView> &nodes)
{
	const NodeView *primary = nullptr;
	for (const auto &n : nodes) {
		if (!IsWritableState(n.assigned))
			continue;
		if (primary != nullptr)
			throw Error(sqlstate::kInternalError,
						"group " + std::to_string(group.group_id) + " of formation " + group.formation +
							" has two primaries: " + Label(*primary) + " and " + Label(n),
						"Both nodes are assigned a writable state.");
		primary = &n;
	}
	return primary;
}

/* standby_joined: the primary runs alone and a new node waits to follow it. */
bool
StandbyJoined(const Ctx &ctx, const NodeView &node, std::string *description)
{
	if (!Settled(node, S::Single))
		return false;
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && n.assigned == S::WaitStandby) {
			*description = Label(n) + " registered as wait_standby: primary " + Label(node) + " prepares replication";
			return true;
		}
	return false;
}

/* last_standby_gone: every standby was removed; the primary has nobody to prepare for. */
bool
LastStandbyGone(const Ctx &ctx, const NodeView &node, std::string *description)
{
	if (!Settled(node, S::WaitPrimary) || OtherMembers(ctx, node) != 0)
		return false;
	*description =
		Label(node) + " is the only node left in group " + std::to_string(ctx.group.group_id) + ": it runs as single";
	return true;
}

/* primary_gains_sync_standby: a healthy quorum standby reported secondary. */
bool
PrimaryGainsSyncStandby(const Ctx &ctx, const NodeView &node, std::string *description)
{
	if (!Settled(node, S::WaitPrimary))
		return false;
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && IsHealthyQuorumSecondary(n) && n.reported == S::Secondary) {
			*description = Label(n) + " is a healthy quorum secondary: primary " + Label(node) +
						   " enables synchronous replication";
			return true;
		}
	return false;
}

/*
 * primary_loses_sync_standby: no healthy quorum secondary is left.  Only with
 * number_sync_standbys = 0: the user chose availability, so the primary
 * drops synchronous replication and writes keep flowing.  With
 * number_sync_standbys >= 1 the user chose durability: the primary stays
 * primary and commits wait until a standby is back (never acknowledge a
 * commit that only one node has).
 */
bool
PrimaryLosesSyncStandby(const Ctx &ctx, const NodeView &node, std::string *description)
{
	if (node.assigned != S::Primary || ctx.group.number_sync_standbys != 0)
		return false;
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && IsHealthyQuorumSecondary(n))
			return false;
	*description = "no healthy quorum secondary left and number_sync_standbys is 0: primary " + Label(node) +
				   " disables synchronous replication";
	return true;
}

/* standby_can_init: the primary has prepared replication (slot, HBA); the new node may clone or follow. */
bool
StandbyCanInit(const Ctx &ctx, const NodeView &node, std::string *description)
{
	if (!Settled(node, S::WaitStandby) || ctx.primary == nullptr || !Settled(*ctx.primary, S::WaitPrimary))
		return false;
	*description =
		"primary " + Label(*ctx.primary) + " reported wait_primary: " + Label(node) + " clones or follows it";
	return true;
}

/* standby_caught_up: streaming on the primary's timeline, within the lag threshold. */
bool
StandbyCaughtUp(const Ctx &ctx, const NodeView &node, std::string *description)
{
	const NodeView *p = ctx.primary;
	/*
	 * Not streaming means not receiving the primary's WAL now — for instance a
	 * copy whose history split from the primary's and whose walreceiver keeps
	 * failing: its LSN may look close, but it must never count for quorum.
	 */
	if (!Settled(node, S::Catchingup) || !node.healthy || !node.streaming || p == nullptr)
		return false;
	if (p->assigned != S::WaitPrimary && p->assigned != S::Primary)
		return false;
	if (node.timeline != p->timeline)
		return false;
	uint64_t lag = lsn::LagBytes(p->lsn, node.lsn);
	if (lag > ctx.group.sync_lag_threshold_bytes)
		return false;
	*description = Label(node) + " is " + std::to_string(lag) + " bytes behind primary " + Label(*p) + " on timeline " +
				   std::to_string(node.timeline) + ": it becomes secondary";
	return true;
}

/* standby_lost: the monitor's health check gave up on a secondary; it no longer counts for quorum. */
bool
StandbyLost(const Ctx &, const NodeView &node, std::string *description)
{
	if (node.assigned != S::Secondary || node.healthy)
		return false;
	*description = Label(node) + " is unhealthy: it no longer counts for quorum and must catch up again";
	return true;
}

// clang-format off
constexpr GroupRule kGroupRules[] = {
	/*
	 * Primary side.  A new node's arrival makes the single primary prepare
	 * replication; a healthy quorum secondary turns synchronous replication
	 * on; losing every healthy quorum secondary turns it off again (only when
	 * number_sync_standbys = 0, see PrimaryLosesSyncStandby); once every
	 * standby is gone the primary runs alone.
	 */
	{"standby_joined",             S::Single,      S::WaitPrimary, StandbyJoined,           "the single primary prepares replication for a node that registered"},
	{"last_standby_gone",          S::WaitPrimary, S::Single,      LastStandbyGone,         "the primary is the only node left: it runs alone"},
	{"primary_gains_sync_standby", S::WaitPrimary, S::Primary,     PrimaryGainsSyncStandby, "a healthy quorum standby is secondary: the primary enables synchronous replication"},
	{"primary_loses_sync_standby", S::Primary,     S::WaitPrimary, PrimaryLosesSyncStandby, "no healthy quorum secondary and number_sync_standbys = 0: the primary disables synchronous replication"},

	/*
	 * Standby side.  A waiting node initializes once the primary is ready; it
	 * becomes secondary once caught up on the primary's timeline; an
	 * unhealthy secondary stops counting for quorum and must catch up again.
	 */
	{"standby_can_init",           S::WaitStandby, S::Catchingup,  StandbyCanInit,          "the primary prepared replication: the standby clones or follows it"},
	{"standby_caught_up",          S::Catchingup,  S::Secondary,   StandbyCaughtUp,         "the standby is within the lag threshold on the primary's timeline: it counts for quorum"},
	{"standby_lost",               S::Secondary,   S::Catchingup,  StandbyLost,             "the secondary is unhealthy: it stops counting for quorum"},
};
// clang-format on

} // namespace

const std::vector<RuleInfo> &
GroupRules()
{
	static const auto *rules = [] {
		auto *v = new std::vector<RuleInfo>();
		for (const auto &r : kGroupRules)
			v->push_back(RuleInfo{r.name, r.from, r.to, r.description});
		return v;
	}();
	return *rules;
}

std::uintptr_t
GroupRulePredicateKey(std::size_t index) noexcept
{
	if (index >= std::size(kGroupRules))
		return 0;
	return reinterpret_cast<std::uintptr_t>(kGroupRules[index].when);
}

std::vector<Assignment>
ProceedGroup(const GroupView &group)
{
	std::vector<NodeView> nodes = group.nodes;
	std::stable_sort(nodes.begin(), nodes.end(),
					 [](const NodeView &a, const NodeView &b) { return a.node_id < b.node_id; });
	std::vector<bool> moved(nodes.size(), false);
	std::vector<Assignment> out;

	/* Each round moves at least one node or ends; a node moves once, so nodes.size() rounds suffice. */
	for (std::size_t round = 0; round < nodes.size(); round++) {
		bool fired = false;
		for (std::size_t i = 0; i < nodes.size(); i++) {
			if (moved[i])
				continue;
			Ctx ctx{group, nodes, FindPrimary(group, nodes)};
			for (const auto &rule : kGroupRules) {
				if (rule.from != nodes[i].assigned)
					continue;
				std::string description;
				if (!rule.when(ctx, nodes[i], &description))
					continue;
				Assignment a;
				a.node_id = nodes[i].node_id;
				a.from = rule.from;
				a.to = rule.to;
				a.rule = rule.name;
				a.description = std::move(description);
				out.push_back(std::move(a));
				nodes[i].assigned = rule.to;
				moved[i] = true;
				fired = true;
				break;
			}
		}
		if (!fired)
			break;
	}
	return out;
}

Assignment
InitialState(const GroupView &group, int64_t new_node_id, const std::string &new_node_name)
{
	std::vector<NodeView> others;
	for (const auto &n : group.nodes)
		if (n.node_id != new_node_id && n.assigned != S::Dropped)
			others.push_back(n);

	Assignment a;
	a.node_id = new_node_id;
	a.from = S::Init;
	std::string label = new_node_name + " (id " + std::to_string(new_node_id) + ")";
	std::string where = "group " + std::to_string(group.group_id) + " of formation " + group.formation;

	if (others.empty()) {
		a.to = S::Single;
		a.rule = "first_node";
		a.description = label + " is the first node of " + where + ": it runs as single";
		return a;
	}
	const NodeView *primary = FindPrimary(group, others);
	if (primary == nullptr)
		throw Error(sqlstate::kObjectNotInPrerequisiteState, "no primary in " + where + " to follow",
					"The group has " + std::to_string(others.size()) +
						" node(s) but none is assigned a writable state.",
					"Retry registering in a moment.");
	a.to = S::WaitStandby;
	a.rule = "standby_registers";
	a.description = label + " registered: it waits for primary " + Label(*primary) + " to prepare replication";
	return a;
}

std::string
SynchronousStandbyNames(const GroupView &group)
{
	const NodeView *primary = FindPrimary(group, group.nodes);
	if (primary == nullptr || (primary->assigned != S::Primary && primary->assigned != S::ApplySettings))
		return "";

	/*
	 * Every quorum node but the primary is listed, healthy or not: with
	 * number_sync_standbys >= 1 a lost standby must stay in the list so that
	 * commits wait for it instead of being acknowledged by the primary alone.
	 */
	std::vector<const NodeView *> quorum;
	for (const auto &n : group.nodes)
		if (n.node_id != primary->node_id && n.replication_quorum && n.assigned != S::Dropped)
			quorum.push_back(&n);
	if (quorum.empty())
		return "";
	std::sort(quorum.begin(), quorum.end(), [](const NodeView *a, const NodeView *b) {
		if (a->candidate_priority != b->candidate_priority)
			return a->candidate_priority > b->candidate_priority;
		return a->node_id < b->node_id;
	});

	std::string out = "ANY " + std::to_string(std::max(group.number_sync_standbys, 1)) + " (";
	for (std::size_t i = 0; i < quorum.size(); i++) {
		if (i > 0)
			out += ", ";
		out += StandbyName(quorum[i]->node_id);
	}
	out += ")";
	return out;
}

std::string
StandbyName(int64_t node_id)
{
	return "pg_autopilot_node_" + std::to_string(node_id);
}

} // namespace autopilot::fsm
