/*
 * src/shared/tests/operator_test.cpp — the operator requests of
 * docs/failover.md and docs/elections.md (switchover, failover, promotion,
 * maintenance, drop_node, settings validations): what they assign and every
 * refusal.  The randomized safety check of requests and rules together is
 * random_walk_test.cpp.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "error.hpp"
#include "group_rules.hpp"
#include "keeper_fsm.hpp"

#include "group_fixture.hpp"

using namespace autopilot::fsm;
using namespace autopilot::fsm::testing;
using autopilot::Error;

namespace {

constexpr const char *k55000 = "55000";
constexpr const char *k42704 = "42704";

/* Every request output stays within kRequestEdges (so the static table checks cover it) and uses a request name. */
void
ExpectKnownEdges(const std::vector<Assignment> &out)
{
	for (const auto &a : out) {
		EXPECT_NE(std::find(kRequestEdges.begin(), kRequestEdges.end(), std::make_pair(a.from, a.to)),
				  kRequestEdges.end())
			<< a.rule << ": " << StateName(a.from) << " -> " << StateName(a.to) << " is not in kRequestEdges";
		EXPECT_NE(std::find_if(std::begin(kRequestRuleNames), std::end(kRequestRuleNames),
							   [&](const char *n) { return std::string(n) == a.rule; }),
				  std::end(kRequestRuleNames))
			<< a.rule;
		EXPECT_NE(FindKeeperTransition(a.from, a.to), nullptr) << a.rule;
	}
}

} // namespace

TEST(RequestEdges, EveryRequestEdgeHasAKeeperTransition)
{
	for (const auto &[from, to] : kRequestEdges)
		EXPECT_NE(FindKeeperTransition(from, to), nullptr) << StateName(from) << " -> " << StateName(to);
}

TEST_F(Group, SwitchoverAssignsOnlyThePrimary)
{
	FormPair();
	auto out = Switchover(g);
	ExpectKnownEdges(out);
	EXPECT_EQ(Apply(out), Strings{"1:primary->draining:switchover"});
}

TEST_F(Group, FailoverMovesBothNodesEvenFromAnUnhealthyPrimary)
{
	FormPair();
	Node(1).healthy = false;
	Node(2).candidate_priority = 0;
	ExpectError([&] { Failover(g); }, k55000, "no healthy secondary");
	Node(2).candidate_priority = 50;
	auto out = Failover(g);
	ExpectKnownEdges(out);
	EXPECT_EQ(Apply(out), (Strings{"1:primary->demote_timeout:failover", "2:secondary->prepare_promotion:failover"}));
	ExpectError([&] { Failover(g); }, k55000, "an operation is in progress");
	ExpectError([&] { Switchover(g); }, k55000, "an operation is in progress");

	/* The promotion still needs a proof: here node1's keeper demotes it and says so. */
	Report(2);
	Node(2).streaming = true;
	EXPECT_EQ(Proceed(), Strings{});
	Report(1);
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

TEST_F(Group, SwitchoverRefusals)
{
	Register(1, NodeState::Single);
	ExpectError([&] { Switchover(g); }, k55000, "an operation is in progress");
	ReportAll();
	ExpectError([&] { Switchover(g); }, k55000, "has no standby");
	ExpectError([&] { Failover(g); }, k55000, "has no standby");

	Register(2, NodeState::WaitStandby);
	ExpectError([&] { Switchover(g); }, k55000, "an operation is in progress");
	Proceed();
	ReportAll();
	Proceed();
	ReportAll();
	ASSERT_EQ(Node(1).assigned, NodeState::WaitPrimary);
	ASSERT_EQ(Node(2).assigned, NodeState::Catchingup);
	ExpectError([&] { Switchover(g); }, k55000, "no healthy secondary of group 0 of formation default can take over");

	for (int i = 0; i < 5; i++) {
		Proceed();
		ReportAll();
	}
	ASSERT_EQ(Node(1).assigned, NodeState::Primary);

	Node(1).healthy = false;
	ExpectError([&] { Switchover(g); }, k55000, "primary node1 (id 1) is unhealthy");
	Node(1).healthy = true;

	Node(2).healthy = false;
	ExpectError([&] { Switchover(g); }, k55000, "no healthy secondary");
	Node(2).healthy = true;
	Node(2).candidate_priority = 0;
	ExpectError([&] { Switchover(g); }, k55000, "no healthy secondary");
	Node(2).candidate_priority = 50;
	Node(2).wants_maintenance = true;
	ExpectError([&] { Switchover(g); }, k55000, "no healthy secondary");
	Node(2).wants_maintenance = false;

	Node(2).reported = NodeState::Catchingup;
	ExpectError([&] { Switchover(g); }, k55000, "an operation is in progress");
	Node(2).reported = NodeState::Secondary;

	Node(1).assigned = NodeState::Catchingup; /* nobody writable */
	Node(1).reported = NodeState::Catchingup;
	ExpectError([&] { Switchover(g); }, k55000, "has no primary");
}

TEST_F(Group, Promotion)
{
	FormPair();
	ExpectError([&] { Promotion(g, "nosuchnode"); }, k42704, "node \"nosuchnode\" is not a member");
	EXPECT_TRUE(Promotion(g, "node1").empty()) << "already the primary";

	Node(1).lsn = 10 + g.promote_lag_threshold_bytes + 1;
	Node(2).lsn = 10;
	ExpectError([&] { Promotion(g, "node2"); }, k55000, "bytes behind primary");
	Node(2).lsn = 11;

	Node(2).candidate_priority = 0;
	ExpectError([&] { Promotion(g, "node2"); }, k55000, "not a healthy secondary");
	Node(2).candidate_priority = 50;
	Node(2).healthy = false;
	ExpectError([&] { Promotion(g, "node2"); }, k55000, "not a healthy secondary");
	Node(2).healthy = true;
	Node(2).wants_maintenance = true;
	ExpectError([&] { Promotion(g, "node2"); }, k55000, "not a healthy secondary");
	Node(2).wants_maintenance = false;
	Node(2).assigned = Node(2).reported = NodeState::Catchingup;
	ExpectError([&] { Promotion(g, "node2"); }, k55000, "not a healthy secondary");
	Node(2).assigned = Node(2).reported = NodeState::Secondary;
	Node(1).healthy = false;
	ExpectError([&] { Promotion(g, "node2"); }, k55000, "is unhealthy");
	Node(1).healthy = true;

	AddSecondary(3);
	Node(3).lsn = 11;
	Node(3).candidate_priority = 10;
	auto out = Promotion(g, "node3");
	ExpectKnownEdges(out);
	EXPECT_EQ(Apply(out), Strings{"1:primary->draining:promotion"});
	Node(3).promotion_target = true; /* the caller records the target */
	ExpectError([&] { Promotion(g, "node2"); }, k55000, "an operation is in progress");

	/* Exactly node3 takes over, although node2 has the higher priority; node2 stays secondary. */
	Report(1);
	Node(1).lsn = 20;
	Node(2).lsn = 20;
	Node(3).healthy = false;
	EXPECT_EQ(Proceed(), Strings{}) << "the named target does not qualify now: wait for it";
	Node(3).healthy = true;
	EXPECT_EQ(Proceed(), Strings{}) << "node3 lacks WAL of the draining primary";
	Node(3).lsn = 20;
	EXPECT_EQ(Proceed(), (Strings{"1:draining->demoted:switchover_candidate_has_all_wal",
								  "3:secondary->prepare_promotion:switchover_candidate_has_all_wal"}));
	EXPECT_EQ(Node(2).assigned, NodeState::Secondary);
}

TEST_F(Group, MaintenanceOfAStandby)
{
	FormPair();
	ExpectError([&] { EnableMaintenance(g, "node9"); }, k42704, "node \"node9\" is not a member");
	ExpectError([&] { DisableMaintenance(g, "node9"); }, k42704, "node \"node9\" is not a member");
	ExpectError([&] { DisableMaintenance(g, "node2"); }, k55000, "it is not in maintenance");

	auto out = EnableMaintenance(g, "node2");
	ExpectKnownEdges(out);
	EXPECT_EQ(Apply(out), Strings{"2:secondary->maintenance:maintenance_enabled"});
	Node(2).wants_maintenance = true; /* the caller stores the wish */
	EXPECT_EQ(Proceed(), Strings{"1:primary->wait_primary:primary_loses_sync_standby"});
	ReportAll();
	EXPECT_EQ(Proceed(), Strings{}) << "automation leaves node2 alone";
	Node(2).healthy = false;
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(), Strings{}) << "a node in maintenance is never promoted";
	Node(1).healthy = true;
	ExpectError([&] { EnableMaintenance(g, "node2"); }, k55000, "already in maintenance");
	ExpectError([&] { Switchover(g); }, k55000, "no healthy secondary");

	out = DisableMaintenance(g, "node2");
	ExpectKnownEdges(out);
	EXPECT_EQ(Apply(out), Strings{"2:maintenance->catchingup:maintenance_disabled"});
	Node(2).wants_maintenance = false;
	Node(2).healthy = true;
	Report(2);
	EXPECT_EQ(Proceed(), Strings{"2:catchingup->secondary:standby_caught_up"});
	Report(2);
	EXPECT_EQ(Proceed(), Strings{"1:wait_primary->primary:primary_gains_sync_standby"});

	/* A catching-up standby may enter maintenance too, even while unhealthy (the operator stops a broken one). */
	Node(2).healthy = false;
	Proceed();
	ASSERT_EQ(Node(2).assigned, NodeState::Catchingup);
	EXPECT_EQ(Apply(EnableMaintenance(g, "node2")), Strings{"2:catchingup->maintenance:maintenance_enabled"});
}

TEST_F(Group, MaintenanceOfThePrimarySwitchesOverFirst)
{
	FormPair();
	Node(2).healthy = false;
	ExpectError([&] { EnableMaintenance(g, "node1"); }, k55000, "no healthy secondary");
	Node(2).healthy = true;

	auto out = EnableMaintenance(g, "node1");
	ExpectKnownEdges(out);
	EXPECT_EQ(Apply(out), Strings{"1:primary->draining:maintenance_switchover"});
	Node(1).wants_maintenance = true;
	ExpectError([&] { EnableMaintenance(g, "node1"); }, k55000, "already being prepared");
	ExpectError([&] { DisableMaintenance(g, "node1"); }, k55000, "it is not in maintenance");

	Strings fired;
	for (int i = 0; i < 10; i++) {
		ReportAll();
		for (auto &n : g.nodes)
			n.streaming = n.assigned != NodeState::PreparePromotion;
		for (const auto &s : Proceed())
			fired.push_back(s);
	}
	EXPECT_EQ(fired, (Strings{"1:draining->demoted:switchover_candidate_has_all_wal",
							  "2:secondary->prepare_promotion:switchover_candidate_has_all_wal",
							  "2:prepare_promotion->stop_replication:promote_candidate",
							  "2:stop_replication->wait_primary:candidate_promoted",
							  "1:demoted->maintenance:old_primary_rejoins"}));
	EXPECT_EQ(FindKeeperTransition(NodeState::Demoted, NodeState::Maintenance)->action, KeeperAction::None);

	out = DisableMaintenance(g, "node1");
	EXPECT_EQ(Apply(out), Strings{"1:maintenance->catchingup:maintenance_disabled"});
}

TEST_F(Group, EnableMaintenanceRefusesNodesInTransit)
{
	FormPair();
	AddMember(3, NodeState::WaitStandby);
	ExpectError([&] { EnableMaintenance(g, "node3"); }, k55000, "it is assigned wait_standby");
}

/*
 * A standby that went down is not "an operation in progress": the refusal
 * must say that no healthy standby can take over.
 */
TEST_F(Group, RefusalNamesTheMissingStandby)
{
	FormPair();
	Node(2).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->wait_primary:primary_loses_sync_standby", "2:secondary->catchingup:standby_lost"}));
	Report(1); /* node2 is down: it never reports catchingup */
	for (auto request : {+[](const GroupView &gv) { Switchover(gv); }, +[](const GroupView &gv) { Failover(gv); },
						 +[](const GroupView &gv) { Promotion(gv, "node2"); }}) {
		try {
			request(g);
			ADD_FAILURE() << "request accepted without a healthy standby";
		} catch (const autopilot::Error &e) {
			EXPECT_STREQ(e.sqlstate(), "55000");
			std::string msg = e.what();
			EXPECT_EQ(msg.find("operation is in progress"), std::string::npos) << msg;
			EXPECT_TRUE(msg.find("no healthy secondary") != std::string::npos ||
						msg.find("not a healthy secondary") != std::string::npos)
				<< msg;
			EXPECT_NE(e.detail().find("unhealthy"), std::string::npos) << e.detail();
		}
	}
}

/* A standby that is the candidate of a switchover under way cannot be taken into maintenance. */
TEST_F(Group, NoStandbyMaintenanceDuringASwitchover)
{
	FormPair();
	EXPECT_EQ(Apply(Switchover(g)), Strings{"1:primary->draining:switchover"});
	ExpectError([&] { EnableMaintenance(g, "node2"); }, k55000, "an operation is in progress");
	Report(1); /* node1 reports draining: the operation is still under way */
	ExpectError([&] { EnableMaintenance(g, "node2"); }, k55000, "an operation is in progress");
	EXPECT_EQ(Node(2).assigned, NodeState::Secondary) << "the refusal changed nothing";
}

/* Any number of standbys (issue 4): a third and a fourth node register as wait_standby. */
TEST_F(Group, ThirdNodeRegistersAsWaitStandby)
{
	FormPair();
	Register(3, NodeState::WaitStandby);
	Register(4, NodeState::WaitStandby);
	EXPECT_EQ(g.nodes.size(), 4u);
}
