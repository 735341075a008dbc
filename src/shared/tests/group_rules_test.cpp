/*
 * src/shared/tests/group_rules_test.cpp — the monitor's rule table: static
 * checks (no duplicates, every assignment has a keeper transition, every state
 * reachable and left) and the scenarios of issue 2 driven through ProceedGroup.
 */
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <tuple>

#include "error.hpp"
#include "group_rules.hpp"
#include "keeper_fsm.hpp"

using namespace autopilot::fsm;
using autopilot::Error;

namespace {

/* Transitions the monitor can assign: InitialState's two plus every rule. */
std::vector<std::pair<NodeState, NodeState>>
AllMonitorEdges()
{
	std::vector<std::pair<NodeState, NodeState>> edges = {{NodeState::Init, NodeState::Single},
														  {NodeState::Init, NodeState::WaitStandby}};
	for (const auto &r : GroupRules())
		edges.emplace_back(r.from, r.to);
	return edges;
}

bool
IsTerminal(NodeState s)
{
	return s == NodeState::Maintenance || s == NodeState::Dropped;
}

} // namespace

TEST(GroupRuleTable, NamesAreUnique)
{
	std::set<std::string> names = {"first_node", "standby_registers"};
	for (const auto &r : GroupRules()) {
		EXPECT_TRUE(names.insert(r.name).second) << "duplicate rule name " << r.name;
		ASSERT_NE(r.description, nullptr);
		EXPECT_FALSE(std::string(r.description).empty()) << r.name;
	}
	EXPECT_EQ(GroupRules().size(), 7u);
}

TEST(GroupRuleTable, NoDuplicateRows)
{
	std::set<std::tuple<NodeState, NodeState, std::uintptr_t>> rows;
	for (std::size_t i = 0; i < GroupRules().size(); i++) {
		const auto &r = GroupRules()[i];
		std::uintptr_t key = GroupRulePredicateKey(i);
		EXPECT_NE(key, 0u) << r.name;
		EXPECT_TRUE(rows.insert({r.from, r.to, key}).second) << "duplicate row " << r.name;
		EXPECT_NE(r.from, r.to) << r.name;
	}
	EXPECT_EQ(GroupRulePredicateKey(GroupRules().size()), 0u);
}

TEST(GroupRuleTable, EveryAssignmentHasAKeeperTransition)
{
	for (const auto &[from, to] : AllMonitorEdges())
		EXPECT_NE(FindKeeperTransition(from, to), nullptr) << "the monitor may assign " << StateName(from) << " -> "
														   << StateName(to) << " but the keeper has no row for it";
}

TEST(GroupRuleTable, EveryTargetIsReachableFromInit)
{
	auto edges = AllMonitorEdges();
	std::set<NodeState> reached = {NodeState::Init};
	for (bool grew = true; grew;) {
		grew = false;
		for (const auto &[from, to] : edges)
			if (reached.count(from) && reached.insert(to).second)
				grew = true;
	}
	for (const auto &[from, to] : edges) {
		EXPECT_TRUE(reached.count(to)) << StateName(to) << " is assigned but never reached";
		EXPECT_TRUE(reached.count(from)) << "rule from " << StateName(from) << " can never fire";
	}
}

TEST(GroupRuleTable, EveryNonTerminalStateHasAnExit)
{
	std::set<NodeState> exits;
	for (const auto &r : GroupRules())
		exits.insert(r.from);
	for (const auto &[from, to] : AllMonitorEdges())
		if (!IsTerminal(to)) {
			EXPECT_TRUE(exits.count(to)) << StateName(to) << " is assigned but no rule ever leaves it";
		}
}

/*
 * A two-node (or more) group driven like the monitor does: apply the
 * assignments ProceedGroup returns, let keepers "report" their goals.
 */
class Group : public ::testing::Test {
  protected:
	GroupView g;

	void
	SetUp() override
	{
		g.formation = "default";
		g.group_id = 0;
	}

	NodeView &
	Node(int64_t id)
	{
		for (auto &n : g.nodes)
			if (n.node_id == id)
				return n;
		throw std::runtime_error("no node " + std::to_string(id));
	}

	void
	Register(int64_t id, NodeState expect)
	{
		std::string name = "node" + std::to_string(id);
		Assignment a = InitialState(g, id, name);
		ASSERT_EQ(a.node_id, id);
		ASSERT_EQ(a.from, NodeState::Init);
		ASSERT_EQ(a.to, expect) << StateName(a.to);
		EXPECT_NE(a.description.find(name), std::string::npos) << a.description;
		NodeView n;
		n.node_id = id;
		n.name = name;
		n.assigned = a.to;
		n.timeline = 1;
		n.streaming = true;
		g.nodes.push_back(n);
	}

	/* Runs the rules once, applies the result, returns "id:from->to:rule" strings in firing order. */
	std::vector<std::string>
	Proceed()
	{
		std::vector<std::string> out;
		std::set<int64_t> seen;
		for (const auto &a : ProceedGroup(g)) {
			EXPECT_TRUE(seen.insert(a.node_id).second) << "node " << a.node_id << " moved twice in one call";
			NodeView &n = Node(a.node_id);
			EXPECT_EQ(n.assigned, a.from) << a.rule;
			EXPECT_NE(a.description.find(n.name), std::string::npos) << a.description;
			n.assigned = a.to;
			out.push_back(std::to_string(a.node_id) + ":" + StateName(a.from) + "->" + StateName(a.to) + ":" + a.rule);
		}
		return out;
	}

	void
	ReportAll()
	{
		for (auto &n : g.nodes)
			n.reported = n.assigned;
	}

	/* Brings node1 primary + node2 secondary to their steady state. */
	void
	FormPair()
	{
		Register(1, NodeState::Single);
		ReportAll();
		Register(2, NodeState::WaitStandby);
		for (int i = 0; i < 10; i++) {
			Proceed();
			ReportAll();
		}
		ASSERT_EQ(Node(1).assigned, NodeState::Primary);
		ASSERT_EQ(Node(2).assigned, NodeState::Secondary);
	}
};

using Strings = std::vector<std::string>;

TEST_F(Group, TwoNodesFormAGroupStepByStep)
{
	Register(1, NodeState::Single);
	EXPECT_EQ(Proceed(), Strings{}) << "node1 has not reported single yet";
	ReportAll();
	EXPECT_EQ(Proceed(), Strings{});
	EXPECT_EQ(SynchronousStandbyNames(g), "");

	Register(2, NodeState::WaitStandby);
	auto first = ProceedGroup(g);
	ASSERT_EQ(first.size(), 1u);
	EXPECT_NE(first[0].description.find("node2 (id 2)"), std::string::npos) << first[0].description;
	EXPECT_NE(first[0].description.find("node1 (id 1)"), std::string::npos) << first[0].description;
	EXPECT_EQ(Proceed(), Strings{"1:single->wait_primary:standby_joined"});
	EXPECT_EQ(Proceed(), Strings{}) << "nothing moves before the keepers report";

	Node(1).reported = NodeState::WaitPrimary;
	EXPECT_EQ(Proceed(), Strings{}) << "node2 has not reported wait_standby yet";
	Node(2).reported = NodeState::WaitStandby;
	EXPECT_EQ(Proceed(), Strings{"2:wait_standby->catchingup:standby_can_init"});
	ReportAll();

	/* Far behind: stays catchingup. */
	Node(1).lsn = 1ull << 32;
	Node(2).lsn = 0;
	EXPECT_EQ(Proceed(), Strings{});
	/* Within the threshold but on another timeline: still catchingup. */
	Node(2).lsn = (1ull << 32) - 1000;
	Node(2).timeline = 2;
	EXPECT_EQ(Proceed(), Strings{});
	Node(2).timeline = 1;
	/* One byte over the lag threshold is not caught up; exactly at it is. */
	Node(2).lsn = (1ull << 32) - g.sync_lag_threshold_bytes - 1;
	EXPECT_EQ(Proceed(), Strings{});
	Node(2).lsn = (1ull << 32) - g.sync_lag_threshold_bytes;
	/* Close enough, but its walreceiver is not streaming: not a secondary. */
	Node(2).streaming = false;
	EXPECT_EQ(Proceed(), Strings{});
	Node(2).streaming = true;
	EXPECT_EQ(Proceed(), Strings{"2:catchingup->secondary:standby_caught_up"});
	EXPECT_EQ(Proceed(), Strings{}) << "the primary waits until node2 reports secondary";
	EXPECT_EQ(SynchronousStandbyNames(g), "");

	ReportAll();
	EXPECT_EQ(Proceed(), Strings{"1:wait_primary->primary:primary_gains_sync_standby"});
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2)");
	ReportAll();
	EXPECT_EQ(Proceed(), Strings{}) << "steady state";
}

TEST_F(Group, LostStandbyDisablesSyncRepAndComesBack)
{
	FormPair();
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2)");

	Node(2).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->wait_primary:primary_loses_sync_standby", "2:secondary->catchingup:standby_lost"}));
	EXPECT_EQ(SynchronousStandbyNames(g), "");
	Node(1).reported = Node(1).assigned;
	EXPECT_EQ(Proceed(), Strings{}) << "node2 is still away";

	Node(2).healthy = true;
	EXPECT_EQ(Proceed(), Strings{}) << "node2 has not reported catchingup yet";
	Node(2).reported = NodeState::Catchingup;
	EXPECT_EQ(Proceed(), Strings{"2:catchingup->secondary:standby_caught_up"});
	ReportAll();
	EXPECT_EQ(Proceed(), Strings{"1:wait_primary->primary:primary_gains_sync_standby"});
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2)");
}

TEST_F(Group, NumberSyncStandbysKeepsThePrimaryWhenTheStandbyIsLost)
{
	g.number_sync_standbys = 1;
	FormPair();
	Node(2).healthy = false;
	EXPECT_EQ(Proceed(), Strings{"2:secondary->catchingup:standby_lost"});
	ReportAll();
	EXPECT_EQ(Proceed(), Strings{});
	EXPECT_EQ(Node(1).assigned, NodeState::Primary);
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2)") << "commits keep waiting for node2";
}

TEST_F(Group, NonQuorumStandbyDoesNotEnableSyncRep)
{
	Register(1, NodeState::Single);
	ReportAll();
	Register(2, NodeState::WaitStandby);
	Node(2).replication_quorum = false;
	for (int i = 0; i < 10; i++) {
		Proceed();
		ReportAll();
	}
	EXPECT_EQ(Node(2).assigned, NodeState::Secondary);
	EXPECT_EQ(Node(1).assigned, NodeState::WaitPrimary);
	EXPECT_EQ(SynchronousStandbyNames(g), "");
}

TEST_F(Group, LastStandbyGoneMakesThePrimarySingle)
{
	Register(1, NodeState::Single);
	ReportAll();
	Register(2, NodeState::WaitStandby);
	Proceed();
	ReportAll();
	ASSERT_EQ(Node(1).assigned, NodeState::WaitPrimary);
	g.nodes.pop_back();
	EXPECT_EQ(Proceed(), Strings{"1:wait_primary->single:last_standby_gone"});
	ReportAll();
	EXPECT_EQ(Proceed(), Strings{});
}

TEST_F(Group, SynchronousStandbyNamesOrderAndCount)
{
	FormPair();
	Register(3, NodeState::WaitStandby);
	Register(4, NodeState::WaitStandby);
	Node(3).candidate_priority = 90;
	Node(4).replication_quorum = false;
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_3, pg_autopilot_node_2)");
	Node(2).candidate_priority = 90;
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2, pg_autopilot_node_3)");
	g.number_sync_standbys = 2;
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 2 (pg_autopilot_node_2, pg_autopilot_node_3)");
	Node(1).assigned = NodeState::WaitPrimary;
	EXPECT_EQ(SynchronousStandbyNames(g), "");
	EXPECT_EQ(StandbyName(42), "pg_autopilot_node_42");
}

TEST_F(Group, RegisteringWithoutAPrimaryFails)
{
	Register(1, NodeState::Single);
	Node(1).assigned = NodeState::Catchingup;
	try {
		InitialState(g, 2, "node2");
		FAIL() << "expected an error";
	} catch (const Error &e) {
		EXPECT_STREQ(e.sqlstate(), "55000");
		EXPECT_STREQ(e.what(), "no primary in group 0 of formation default to follow");
		EXPECT_EQ(e.hint(), "Retry registering in a moment.");
	}
}

TEST_F(Group, TwoPrimariesAreAnInconsistentView)
{
	Register(1, NodeState::Single);
	Register(2, NodeState::WaitStandby);
	Node(2).assigned = NodeState::WaitPrimary;
	try {
		ProceedGroup(g);
		FAIL() << "expected an error";
	} catch (const Error &e) {
		EXPECT_STREQ(e.sqlstate(), "XX000");
		EXPECT_NE(std::string(e.what()).find("node2 (id 2)"), std::string::npos) << e.what();
	}
}

TEST_F(Group, OutputDoesNotDependOnNodeOrder)
{
	FormPair();
	Node(2).healthy = false;
	std::swap(g.nodes[0], g.nodes[1]);
	auto out = ProceedGroup(g);
	ASSERT_EQ(out.size(), 2u);
	EXPECT_EQ(out[0].node_id, 1);
	EXPECT_EQ(out[1].node_id, 2);
}
