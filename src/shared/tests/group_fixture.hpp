/*
 * src/shared/tests/group_fixture.hpp — a group driven like the monitor drives
 * it, shared by the rule and operator-request tests: register nodes, run the
 * rules, apply assignments (resetting assigned_age_ms as state_change_time
 * would), let keepers "report" their goals (resetting report_age_ms as
 * report_time would).
 */
#pragma once

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"
#include "group_rules.hpp"
#include "keeper_fsm.hpp"

namespace autopilot::fsm::testing {

using Strings = std::vector<std::string>;

/* Every (from, to) an operator request may assign; operator_test.cpp checks the requests stay within it. */
inline const std::vector<std::pair<NodeState, NodeState>> kRequestEdges = {
	{NodeState::Primary, NodeState::Draining},            /* switchover, promotion, maintenance_switchover, drop_node */
	{NodeState::Primary, NodeState::DemoteTimeout},       /* failover, drop_node */
	{NodeState::WaitPrimary, NodeState::DemoteTimeout},   /* failover (allow_data_loss), drop_node */
	{NodeState::ApplySettings, NodeState::DemoteTimeout}, /* drop_node of an unhealthy primary */
	{NodeState::Secondary, NodeState::PreparePromotion},  /* failover, drop_node (one standby) */
	{NodeState::Secondary, NodeState::Maintenance},       /* maintenance_enabled */
	{NodeState::Catchingup, NodeState::Maintenance},      /* maintenance_enabled */
	{NodeState::Maintenance, NodeState::Catchingup},      /* maintenance_disabled */
	/* drop_node of a standby (force for the role-change states), or of the only node */
	{NodeState::Single, NodeState::Dropped},
	{NodeState::WaitPrimary, NodeState::Dropped}, /* the primary whose standbys were all dropped */
	{NodeState::Primary, NodeState::Dropped},
	{NodeState::ApplySettings, NodeState::Dropped},
	{NodeState::WaitStandby, NodeState::Dropped},
	{NodeState::Catchingup, NodeState::Dropped},
	{NodeState::Secondary, NodeState::Dropped},
	{NodeState::Maintenance, NodeState::Dropped},
	{NodeState::ReportLsn, NodeState::Dropped},
	{NodeState::JoinSecondary, NodeState::Dropped},
	{NodeState::Demoted, NodeState::Dropped},
	{NodeState::Init, NodeState::Dropped},
};

/* The rule names the operator requests write into the event log. */
inline const char *const kRequestRuleNames[] = {
	"switchover",           "failover", "promotion", "maintenance_switchover", "maintenance_enabled",
	"maintenance_disabled", "drop_node"};

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

	/*
	 * Apply writes assignments into the view (checking each starts from the
	 * node's assigned state, names it, and has a keeper row for the keeper's
	 * current state) and returns "id:from->to:rule" strings in order.
	 */
	Strings
	Apply(const std::vector<Assignment> &assignments)
	{
		Strings out;
		std::set<int64_t> seen;
		for (const auto &a : assignments) {
			EXPECT_TRUE(seen.insert(a.node_id).second) << "node " << a.node_id << " moved twice in one call";
			NodeView &n = Node(a.node_id);
			EXPECT_EQ(n.assigned, a.from) << a.rule;
			EXPECT_NE(a.description.find(n.name), std::string::npos) << a.description;
			EXPECT_NE(FindKeeperTransition(a.from, a.to), nullptr)
				<< a.rule << ": no keeper row " << StateName(a.from) << " -> " << StateName(a.to);
			n.assigned = a.to;
			n.assigned_age_ms = 0;
			out.push_back(std::to_string(a.node_id) + ":" + StateName(a.from) + "->" + StateName(a.to) + ":" + a.rule);
		}
		return out;
	}

	/* Runs the rules once and applies the result. */
	Strings
	Proceed()
	{
		return Apply(ProceedGroup(g));
	}

	/*
	 * Report: the keeper reached its goal and says so.  node_active records
	 * the report and returns the goal and the names in the same call; a
	 * primary runs the names it was told (applied = told = the current
	 * SynchronousStandbyNames), a standby reports ''.
	 */
	void
	Report(int64_t id)
	{
		NodeView &n = Node(id);
		n.reported = n.last_told = n.assigned;
		n.report_age_ms = 0;
		n.applied_sync_names = n.told_sync_names = IsWritableState(n.assigned) ? SynchronousStandbyNames(g) : "";
	}

	void
	ReportAll()
	{
		for (auto &n : g.nodes)
			Report(n.node_id);
	}

	/* TellNames: the primary `id` was told and applied the current names (its settings are in place). */
	void
	TellNames(int64_t id)
	{
		Node(id).applied_sync_names = Node(id).told_sync_names = SynchronousStandbyNames(g);
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

	/* Adds node `id` as a settled secondary of the formed pair. */
	void
	AddSecondary(int64_t id)
	{
		AddMember(id, NodeState::Secondary);
	}

	/*
	 * AddMember adds a member directly in state s (registration goes through
	 * standby_joined and apply_settings; see the election tests), as if the
	 * primary (node1 when it is writable) had already applied the resulting
	 * names.
	 */
	void
	AddMember(int64_t id, NodeState s)
	{
		NodeView n;
		n.node_id = id;
		n.name = "node" + std::to_string(id);
		n.assigned = n.reported = n.last_told = s;
		n.timeline = 1;
		n.streaming = true;
		g.nodes.push_back(n);
		for (auto &m : g.nodes)
			if (IsWritableState(m.assigned))
				TellNames(m.node_id);
	}

	/* FormGroup: node1 primary and nodes 2..count secondaries, registered one by one through the rules. */
	void
	FormGroup(int64_t count)
	{
		FormPair();
		for (int64_t id = 3; id <= count; id++) {
			Register(id, NodeState::WaitStandby);
			for (int i = 0; i < 10; i++) {
				Proceed();
				ReportAll();
			}
			ASSERT_EQ(Node(id).assigned, NodeState::Secondary) << id;
		}
		ASSERT_EQ(Node(1).assigned, NodeState::Primary);
		ASSERT_EQ(Proceed(), Strings{}) << "steady state";
	}
};

/* ExpectError runs f, which must throw autopilot::Error with `sqlstate` and a message containing `part`. */
template <typename F>
void
ExpectError(F f, const char *sqlstate, const std::string &part)
{
	try {
		f();
		ADD_FAILURE() << "expected an error containing \"" << part << "\"";
	} catch (const autopilot::Error &e) {
		EXPECT_STREQ(e.sqlstate(), sqlstate) << e.what();
		EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
		std::string msg = e.what();
		EXPECT_FALSE(msg.empty());
		EXPECT_NE(msg.back(), '.') << "errmsg has no trailing period: " << msg;
		EXPECT_FALSE(msg[0] >= 'A' && msg[0] <= 'Z') << "errmsg is lower case: " << msg;
		if (!e.hint().empty()) {
			EXPECT_EQ(e.hint().back(), '.') << "hints are full sentences: " << e.hint();
		}
		if (!e.detail().empty()) {
			EXPECT_EQ(e.detail().back(), '.') << "details are full sentences: " << e.detail();
		}
	}
}

} // namespace autopilot::fsm::testing
