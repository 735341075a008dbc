/*
 * src/shared/tests/group_rules_test.cpp — the monitor's rule table: static
 * checks (no duplicates, every assignment has a keeper transition, every state
 * reachable and left) and the scenarios of issues 2 and 3 (switchover,
 * failover proofs, rejoin) driven through ProceedGroup.  Operator requests
 * and the randomized safety check are in operator_test.cpp.
 */
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <tuple>

#include "error.hpp"
#include "group_rules.hpp"
#include "keeper_fsm.hpp"

#include "group_fixture.hpp"

using namespace autopilot::fsm;
using namespace autopilot::fsm::testing;
using autopilot::Error;

namespace {

/*
 * Transitions the monitor can assign: InitialState's two, the operator
 * requests' (operator_test.cpp checks that every request output is listed
 * in kRequestEdges) and every rule.
 */
std::vector<std::pair<NodeState, NodeState>>
AllMonitorEdges()
{
	std::vector<std::pair<NodeState, NodeState>> edges = {{NodeState::Init, NodeState::Single},
														  {NodeState::Init, NodeState::WaitStandby}};
	for (const auto &e : kRequestEdges)
		edges.push_back(e);
	for (const auto &r : GroupRules())
		edges.emplace_back(r.from, r.to);
	return edges;
}

/* Maintenance is left only by an operator request (disable_maintenance), dropped never. */
bool
IsTerminal(NodeState s)
{
	return s == NodeState::Maintenance || s == NodeState::Dropped;
}

} // namespace

TEST(GroupRuleTable, NamesAreUniquePerTransition)
{
	/*
	 * A rule may list several moves under one name (its peer's move, or the
	 * same check from two states), but one name never means two different
	 * things for the same transition, and request names are never rule names.
	 */
	std::set<std::tuple<std::string, NodeState, NodeState>> rows;
	std::set<std::string> names;
	for (const auto &r : GroupRules()) {
		EXPECT_TRUE(rows.insert({r.name, r.from, r.to}).second) << "duplicate rule row " << r.name;
		names.insert(r.name);
		ASSERT_NE(r.description, nullptr);
		EXPECT_FALSE(std::string(r.description).empty()) << r.name;
	}
	for (const char *request : kRequestRuleNames)
		EXPECT_EQ(names.count(request), 0u) << request;
	EXPECT_EQ(names.size(), 21u);
	EXPECT_EQ(GroupRules().size(), 30u);
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
	AddMember(3, NodeState::Catchingup);
	AddMember(4, NodeState::Catchingup);
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

/*
 * The names list the quorum standbys that may stream from the primary's
 * history: not a node waiting to be cloned, not a demoted old primary that
 * must rewind first (simulator seed 70: listed, it blocked every later
 * election), not a dropped one; a node in maintenance or joining stays.
 */
TEST_F(Group, SynchronousStandbyNamesOnlyListNodesThatMayStream)
{
	FormPair();
	AddMember(3, NodeState::WaitStandby);
	AddMember(4, NodeState::Demoted);
	AddMember(5, NodeState::Dropped);
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2)");
	Node(3).assigned = NodeState::Catchingup;
	Node(4).assigned = NodeState::Maintenance;
	Node(5).assigned = NodeState::JoinSecondary;
	EXPECT_EQ(SynchronousStandbyNames(g),
			  "ANY 1 (pg_autopilot_node_2, pg_autopilot_node_3, pg_autopilot_node_4, pg_autopilot_node_5)");
}

/* A demoted old primary that rejoins changes the names: the primary re-applies them (settings_changed). */
TEST_F(Group, DemotedNodeRejoiningReappliesTheNames)
{
	FormPair();
	AddMember(3, NodeState::Demoted);
	ASSERT_EQ(Node(1).told_sync_names, "ANY 1 (pg_autopilot_node_2)");
	EXPECT_EQ(Proceed(),
			  (Strings{"3:demoted->catchingup:old_primary_rejoins", "1:primary->apply_settings:settings_changed"}));
	Report(1);
	EXPECT_EQ(Proceed(), Strings{"1:apply_settings->primary:primary_settings_applied"});
	EXPECT_EQ(Node(1).told_sync_names, "ANY 1 (pg_autopilot_node_2, pg_autopilot_node_3)");
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

/* ---- Issue 3: switchover, failover, rejoin (docs/failover.md) ---- */

/* At most one node is assigned a writable state, and at most one may be writing as a promoted candidate. */
void
ExpectOneWriter(const GroupView &g)
{
	int writers = 0;
	for (const auto &n : g.nodes)
		if (IsWritableState(n.assigned) || n.assigned == NodeState::StopReplication)
			writers++;
	EXPECT_LE(writers, 1);
}

TEST_F(Group, SwitchoverEndToEnd)
{
	FormPair();
	Node(1).lsn = Node(2).lsn = 1000;

	EXPECT_EQ(Apply(Switchover(g)), Strings{"1:primary->draining:switchover"});
	EXPECT_EQ(SynchronousStandbyNames(g), "") << "a draining primary has no synchronous names";
	EXPECT_EQ(Proceed(), Strings{}) << "node1 has not drained yet";

	/* The keeper demoted node1 cleanly: it reports draining, its LSN is the end of its WAL. */
	EXPECT_EQ(FindKeeperTransition(NodeState::Primary, NodeState::Draining)->action, KeeperAction::DemoteClean);
	Report(1);
	Node(1).lsn = 2000;
	Node(2).lsn = 1999;
	EXPECT_EQ(Proceed(), Strings{}) << "node2 misses the last WAL bytes";
	Node(2).lsn = 2000;
	EXPECT_EQ(Proceed(), (Strings{"1:draining->demoted:switchover_candidate_has_all_wal",
								  "2:secondary->prepare_promotion:switchover_candidate_has_all_wal"}));
	ExpectOneWriter(g);
	EXPECT_EQ(Proceed(), Strings{}) << "node2 has not stopped replication yet";

	EXPECT_EQ(FindKeeperTransition(NodeState::Secondary, NodeState::PreparePromotion)->action,
			  KeeperAction::StopReplication);
	Report(2);
	Node(2).streaming = false;
	auto promote = ProceedGroup(g);
	ASSERT_EQ(promote.size(), 1u);
	EXPECT_NE(promote[0].description.find("no node can write"), std::string::npos) << promote[0].description;
	EXPECT_EQ(Apply(promote), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
	ExpectOneWriter(g);

	EXPECT_EQ(FindKeeperTransition(NodeState::PreparePromotion, NodeState::StopReplication)->action,
			  KeeperAction::Promote);
	Report(2);
	Node(2).timeline = 2;
	EXPECT_EQ(Proceed(), Strings{"2:stop_replication->wait_primary:candidate_promoted"});
	ExpectOneWriter(g);
	EXPECT_EQ(Proceed(), Strings{}) << "node1 has not reported demoted";
	Report(1);
	EXPECT_EQ(Proceed(), Strings{}) << "node2 has not reported wait_primary";
	Report(2);
	EXPECT_EQ(Proceed(), Strings{"1:demoted->catchingup:old_primary_rejoins"});
	EXPECT_EQ(FindKeeperTransition(NodeState::Demoted, NodeState::Catchingup)->action, KeeperAction::FollowPrimary);

	Report(1);
	Node(1).timeline = 2;
	Node(1).streaming = true;
	EXPECT_EQ(Proceed(), Strings{"1:catchingup->secondary:standby_caught_up"});
	Report(1);
	EXPECT_EQ(Proceed(), Strings{"2:wait_primary->primary:primary_gains_sync_standby"});
	ReportAll();
	EXPECT_EQ(Proceed(), Strings{});
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_1)");

	/* And back. */
	EXPECT_EQ(Apply(Switchover(g)), Strings{"2:primary->draining:switchover"});
	for (int i = 0; i < 10; i++) {
		ReportAll();
		for (auto &n : g.nodes) {
			n.lsn = 3000;
			n.streaming = n.assigned != NodeState::PreparePromotion;
			if (n.assigned == NodeState::StopReplication)
				n.timeline = 3;
			if (n.assigned == NodeState::Catchingup)
				n.timeline = 3;
		}
		Proceed();
		ExpectOneWriter(g);
	}
	EXPECT_EQ(Node(1).assigned, NodeState::Primary);
	EXPECT_EQ(Node(2).assigned, NodeState::Secondary);
}

TEST_F(Group, SwitchoverDoesNotDisturbAnUnhealthyCandidate)
{
	FormPair();
	Apply(Switchover(g));
	Report(1);
	Node(2).healthy = false;
	EXPECT_EQ(Proceed(), Strings{}) << "standby_lost never moves the candidate while no node may write";
	Node(2).healthy = true;
	EXPECT_EQ(Proceed(), (Strings{"1:draining->demoted:switchover_candidate_has_all_wal",
								  "2:secondary->prepare_promotion:switchover_candidate_has_all_wal"}));
}

TEST_F(Group, FailoverWithTheSyncProof)
{
	FormPair();
	Node(1).lsn = 5000;
	Node(2).lsn = 4000;
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->prepare_promotion:primary_failed"}));
	EXPECT_EQ(Proceed(), Strings{}) << "node2 has not stopped replication yet";

	Report(2);
	Node(2).streaming = true;
	EXPECT_EQ(Proceed(), Strings{}) << "node2 still streams: node1 could still get commits acknowledged";
	Node(2).streaming = false;
	auto promote = ProceedGroup(g);
	ASSERT_EQ(promote.size(), 1u);
	EXPECT_NE(promote[0].description.find("synchronous primary"), std::string::npos) << promote[0].description;
	EXPECT_EQ(Apply(promote), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
	ExpectOneWriter(g);

	Report(2);
	Node(2).timeline = 2;
	EXPECT_EQ(Proceed(), (Strings{"2:stop_replication->wait_primary:candidate_promoted",
								  "1:demote_timeout->demoted:candidate_promoted"}));
	Report(2);
	EXPECT_EQ(Proceed(), Strings{}) << "node1 is still away";

	/* node1 comes back: its keeper still says primary and must rewind. */
	EXPECT_EQ(FindKeeperTransition(NodeState::Primary, NodeState::Demoted)->action, KeeperAction::DemoteRewind);
	EXPECT_EQ(FindKeeperTransition(NodeState::DemoteTimeout, NodeState::Demoted)->action, KeeperAction::DemoteRewind);
	Node(1).healthy = true;
	Report(1);
	EXPECT_EQ(Proceed(), Strings{"1:demoted->catchingup:old_primary_rejoins"});
	Report(1);
	Node(1).timeline = 2;
	Node(1).lsn = 4100;
	Node(2).lsn = 4200;
	Node(1).streaming = true;
	EXPECT_EQ(Proceed(), Strings{"1:catchingup->secondary:standby_caught_up"});
	Report(1);
	EXPECT_EQ(Proceed(), Strings{"2:wait_primary->primary:primary_gains_sync_standby"});
}

/*
 * The primary was told wait_primary (its standby was lost) and may have
 * cleared synchronous_standby_names, but its report of wait_primary never
 * reached the monitor: its last report still says primary.  When it then
 * fails, the sync proof must not hold — it may acknowledge commits alone.
 */
TEST_F(Group, NoSyncProofWhenThePrimaryWasToldWaitPrimary)
{
	FormPair();
	Node(2).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->wait_primary:primary_loses_sync_standby", "2:secondary->catchingup:standby_lost"}));
	Node(1).last_told = NodeState::WaitPrimary; /* told, but its next report is lost */
	Node(1).told_sync_names = "";
	Node(2).healthy = true;
	Report(2);
	EXPECT_EQ(Proceed(), Strings{"2:catchingup->secondary:standby_caught_up"});
	Report(2);
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(), (Strings{"1:wait_primary->demote_timeout:primary_failed",
								  "2:secondary->prepare_promotion:primary_failed"}));
	Report(2);
	Node(2).streaming = false;
	EXPECT_EQ(Node(1).reported, NodeState::Primary);
	EXPECT_EQ(Proceed(), Strings{}) << "node1 may run without synchronous replication";
	Node(1).assigned_age_ms = Node(1).report_age_ms = g.primary_demote_timeout_ms;
	EXPECT_EQ(Proceed(), Strings{})
		<< "its applied names are set: a standby the monitor cannot see may keep it from fencing";
	Node(1).reported = NodeState::DemoteTimeout; /* confirmed down */
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

/* A primary whose keeper announced a clean shutdown keeps its role while it restarts. */
TEST_F(Group, NoFailoverWhileThePrimaryRestarts)
{
	FormPair();
	Node(1).healthy = false;
	Node(1).restarting = true;
	EXPECT_EQ(Proceed(), Strings{}) << "a planned restart is not a failure";
	Node(1).restarting = false; /* restart_grace lapsed, or it crashed */
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->prepare_promotion:primary_failed"}));
}

TEST_F(Group, FailoverFromWaitPrimaryWaitsForTheTimeout)
{
	FormPair();
	Node(1).assigned = Node(1).reported = NodeState::WaitPrimary; /* e.g. number_sync_standbys 0, standby was away */
	Node(1).applied_sync_names = Node(1).told_sync_names = "";
	Node(1).report_age_ms = g.primary_demote_timeout_ms * 2; /* its last report is old */
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(), (Strings{"1:wait_primary->demote_timeout:primary_failed",
								  "2:secondary->prepare_promotion:primary_failed"}));
	EXPECT_EQ(FindKeeperTransition(NodeState::WaitPrimary, NodeState::DemoteTimeout)->action,
			  KeeperAction::DemoteClean);
	Report(2);
	Node(2).streaming = false;
	EXPECT_EQ(Proceed(), Strings{}) << "a wait_primary needs no standby to commit: no sync proof";
	Node(1).assigned_age_ms = g.primary_demote_timeout_ms - 1;
	EXPECT_EQ(Proceed(), Strings{});
	Node(1).assigned_age_ms = g.primary_demote_timeout_ms;
	auto promote = ProceedGroup(g);
	ASSERT_EQ(promote.size(), 1u);
	EXPECT_NE(promote[0].description.find("demote_timeout"), std::string::npos) << promote[0].description;
	EXPECT_EQ(Apply(promote), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

TEST_F(Group, FailoverWhenThePrimaryConfirmsItIsDown)
{
	FormPair();
	Node(1).healthy = false;
	Proceed();
	Report(2);
	Node(2).streaming = true; /* no sync proof */
	EXPECT_EQ(Proceed(), Strings{});
	/* node1's keeper reached the monitor again and demoted the node: it reports demote_timeout. */
	Report(1);
	auto promote = ProceedGroup(g);
	ASSERT_EQ(promote.size(), 1u);
	EXPECT_NE(promote[0].description.find("it reports demote_timeout"), std::string::npos) << promote[0].description;
	EXPECT_EQ(Apply(promote), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

/*
 * The sync proof is the pigeonhole over the old primary's applied and told
 * names: with 'ANY 1 (node2, x)' a standby x the monitor does not know may
 * still acknowledge, so node2 alone stopping proves nothing; with 'ANY 2'
 * it does.
 */
TEST_F(Group, SyncProofIsThePigeonholeOverTheNames)
{
	FormPair();
	Node(1).applied_sync_names = Node(1).told_sync_names = "ANY 1 (pg_autopilot_node_2, someone_else)";
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->prepare_promotion:primary_failed"}));
	Report(2);
	Node(2).streaming = false;
	EXPECT_EQ(Proceed(), Strings{}) << "someone_else may still acknowledge commits for node1";
	Node(1).told_sync_names = "ANY 2 (pg_autopilot_node_2, someone_else)";
	EXPECT_EQ(Proceed(), Strings{}) << "the applied names still need both";
	Node(1).applied_sync_names = "ANY 2 (pg_autopilot_node_2, someone_else)";
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

TEST_F(Group, NoFailoverWithoutAQualifyingCandidate)
{
	FormPair();
	Node(1).healthy = false;

	Node(2).candidate_priority = 0;
	EXPECT_EQ(Proceed(), Strings{}) << "priority 0 is never promoted";
	Node(2).candidate_priority = 50;

	Node(2).wants_maintenance = true;
	EXPECT_EQ(Proceed(), Strings{}) << "a node the operator wants in maintenance is never promoted";
	Node(2).wants_maintenance = false;

	Node(1).lsn = 100 + g.promote_lag_threshold_bytes + 1;
	Node(2).lsn = 100;
	EXPECT_EQ(Proceed(), Strings{}) << "one byte beyond promote_lag_threshold";

	Node(2).reported = NodeState::Catchingup;
	Node(2).lsn = 101;
	EXPECT_EQ(Proceed(), Strings{}) << "not settled secondary";
	Node(2).reported = NodeState::Secondary;

	Node(2).timeline = 7;
	EXPECT_EQ(Proceed(), Strings{}) << "not on the primary's timeline";
	Node(2).timeline = 1;

	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->prepare_promotion:primary_failed"}))
		<< "exactly at promote_lag_threshold";
}

TEST_F(Group, UnhealthyPrimaryAndStandbyMeansNoFailover)
{
	FormPair();
	Node(1).healthy = false;
	Node(2).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->wait_primary:primary_loses_sync_standby", "2:secondary->catchingup:standby_lost"}))
		<< "no candidate: the issue-2 rules keep the primary available";
}

TEST_F(Group, CandidateIsNeverPromotedWhileTheOldPrimaryDrains)
{
	FormPair();
	Apply(Switchover(g));
	/* Pathological: the candidate reports prepare_promotion while node1 is still draining unreported. */
	Node(2).assigned = Node(2).reported = NodeState::PreparePromotion;
	Node(2).streaming = true;
	EXPECT_EQ(Proceed(), Strings{}) << "node1 still reports primary and node2 streams: no proof";
	Node(1).reported = NodeState::Draining;
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}
