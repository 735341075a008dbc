/*
 * src/shared/tests/operator_test.cpp — the operator requests of
 * docs/failover.md (switchover, failover, promotion, maintenance): what they
 * assign, every refusal, and a randomized safety check of requests and rules
 * together (fixed seeds: at most one writable node, no promotion without a
 * proof, the keeper always has a row to act on).
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
	ExpectError([&] { Promotion(g, "node3"); }, k55000, "node2 (id 2) would be chosen instead");
	Node(3).candidate_priority = 90;
	auto out = Promotion(g, "node3");
	ExpectKnownEdges(out);
	EXPECT_EQ(Apply(out), Strings{"1:primary->draining:promotion"});
	ExpectError([&] { Promotion(g, "node2"); }, k55000, "an operation is in progress");
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
 * Randomized safety check.  Many seeds, each a random walk over a two- or
 * three-node group: keepers report (or not), health flips, time passes, the
 * operator calls requests, the rules run.  After every step: at most one
 * node is assigned a writable state or promotes (stop_replication); every
 * promotion (→ stop_replication) happened while each other node that may
 * still write was proven unable to (independent re-statement of the proofs);
 * and each node's (reported, assigned) pair has a keeper row.
 */
namespace {

/* A small fixed PRNG (SplitMix64): same sequence everywhere, no <random> distribution differences. */
struct Prng {
	uint64_t s;
	uint64_t
	Next()
	{
		uint64_t z = (s += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		return z ^ (z >> 31);
	}
	uint64_t
	Below(uint64_t n)
	{
		return Next() % n;
	}
};

class RandomWalk : public Group {
  protected:
	std::map<int64_t, bool> proven; /* node was proven unable to write when a candidate was promoted */

	/* ProofHolds restates docs/failover.md's three proofs for node `old` independently of group_rules.cpp. */
	bool
	ProofHolds(const NodeView &old)
	{
		if (!IsWritableState(old.reported) && old.reported != NodeState::StopReplication)
			return true; /* stop_replication is reported once promoted: it writes */
		if (old.assigned == NodeState::DemoteTimeout && old.assigned_age_ms >= g.primary_demote_timeout_ms)
			return true;
		if (old.assigned == NodeState::Demoted && proven[old.node_id])
			return true;
		if (old.reported != NodeState::Primary)
			return false;
		int quorum = 0;
		for (const auto &n : g.nodes) {
			if (n.node_id == old.node_id || !n.replication_quorum)
				continue;
			quorum++;
			if (n.reported != NodeState::PreparePromotion || n.assigned != NodeState::PreparePromotion || n.streaming)
				return false;
		}
		return quorum > 0;
	}

	void
	Check(const std::vector<Assignment> &out, const std::string &where)
	{
		for (const auto &a : out)
			if (a.to == NodeState::StopReplication)
				for (const auto &n : g.nodes)
					if (n.node_id != a.node_id) {
						ASSERT_FALSE(IsWritableState(n.assigned)) << where;
						ASSERT_TRUE(ProofHolds(n))
							<< where << ": " << a.node_id << " promoted while " << n.name << " (assigned "
							<< StateName(n.assigned) << ", reported " << StateName(n.reported) << ") may write";
						proven[n.node_id] = true;
					}
		for (const auto &n : g.nodes)
			if (IsWritableState(n.assigned))
				proven[n.node_id] = false;
	}

	void
	Invariants(const std::string &where)
	{
		int writers = 0;
		for (const auto &n : g.nodes) {
			if (IsWritableState(n.assigned) || n.assigned == NodeState::StopReplication)
				writers++;
			if (n.reported != n.assigned && n.reported != NodeState::Init) {
				ASSERT_NE(FindKeeperTransition(n.reported, n.assigned), nullptr)
					<< where << ": keeper of " << n.name << " has no row " << StateName(n.reported) << " -> "
					<< StateName(n.assigned);
			}
		}
		ASSERT_LE(writers, 1) << where;
	}

	uint64_t
	MaxLsn()
	{
		uint64_t m = 0;
		for (const auto &n : g.nodes)
			m = std::max(m, n.lsn);
		return m;
	}

	uint32_t
	MaxTimeline()
	{
		uint32_t m = 0;
		for (const auto &n : g.nodes)
			m = std::max(m, n.timeline);
		return m;
	}

	/* A keeper reports its goal, with plausible side effects on LSN, timeline and streaming. */
	void
	KeeperReports(NodeView &n, Prng &r)
	{
		n.reported = n.assigned;
		switch (n.assigned) {
		case NodeState::PreparePromotion:
			n.streaming = false;
			break;
		case NodeState::StopReplication:
			n.timeline = MaxTimeline() + 1;
			break;
		case NodeState::Secondary:
		case NodeState::Catchingup: {
			uint64_t top = MaxLsn();
			n.lsn = std::max(n.lsn, top - std::min<uint64_t>(top, r.Below(3) * g.promote_lag_threshold_bytes));
			n.streaming = r.Below(4) != 0;
			for (const auto &p : g.nodes)
				if (IsWritableState(p.assigned) && n.streaming)
					n.timeline = p.timeline;
			break;
		}
		default:
			if (IsWritableState(n.assigned))
				n.lsn += r.Below(4096);
			break;
		}
	}

	void
	TryRequest(Prng &r)
	{
		std::string name = "node" + std::to_string(1 + r.Below(g.nodes.size()));
		std::vector<Assignment> out;
		int kind = static_cast<int>(r.Below(5));
		try {
			switch (kind) {
			case 0:
				out = Switchover(g);
				break;
			case 1:
				out = Failover(g);
				break;
			case 2:
				out = Promotion(g, name);
				break;
			case 3:
				out = EnableMaintenance(g, name);
				break;
			default:
				out = DisableMaintenance(g, name);
				break;
			}
		} catch (const Error &e) {
			ASSERT_TRUE(std::string(e.sqlstate()) == "55000" || std::string(e.sqlstate()) == "42704") << e.what();
			return;
		}
		ExpectKnownEdges(out);
		Apply(out);
		if (kind == 3)
			Node(std::stoll(name.substr(4))).wants_maintenance = true;
		if (kind == 4)
			Node(std::stoll(name.substr(4))).wants_maintenance = false;
	}
};

} // namespace

TEST_F(RandomWalk, NeverTwoWritersNorAnUnprovenPromotion)
{
	int promotions = 0;
	for (uint64_t seed = 1; seed <= 300; seed++) {
		g.nodes.clear();
		proven.clear();
		FormPair();
		if (seed % 3 == 0)
			AddSecondary(3);
		Prng r{seed};
		for (int step = 0; step < 200; step++) {
			std::string where = "seed " + std::to_string(seed) + " step " + std::to_string(step);
			NodeView &n = g.nodes[r.Below(g.nodes.size())];
			switch (r.Below(10)) {
			case 0:
			case 1:
				n.healthy = !n.healthy;
				break;
			case 2:
			case 3:
			case 4:
				if (n.healthy)
					KeeperReports(n, r);
				break;
			case 5:
				for (auto &m : g.nodes)
					m.assigned_age_ms += r.Below(g.primary_demote_timeout_ms / 2);
				break;
			case 6:
				n.streaming = n.assigned != NodeState::PreparePromotion && r.Below(2) == 0;
				break;
			case 7:
				TryRequest(r);
				break;
			default:
				break;
			}
			auto out = ProceedGroup(g);
			Check(out, where);
			Apply(out);
			for (const auto &a : out)
				if (a.to == NodeState::StopReplication)
					promotions++;
			Invariants(where);
			if (::testing::Test::HasFatalFailure())
				return;
		}
	}
	EXPECT_GT(promotions, 100) << "the walk exercises promotions";
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

/* Until elections exist, a group takes one primary and one standby: a third registration is refused. */
TEST_F(Group, ThirdNodeIsRefused)
{
	FormPair();
	ExpectError([&] { InitialState(g, 3, "node3"); }, k55000, "already has two nodes");
	EXPECT_EQ(g.nodes.size(), 2u);
}
