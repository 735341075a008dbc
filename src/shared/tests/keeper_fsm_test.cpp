/*
 * src/shared/tests/keeper_fsm_test.cpp — the keeper's transition table.
 */
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>

#include "keeper_fsm.hpp"

using namespace autopilot::fsm;

TEST(KeeperFsm, NoDuplicatePairs)
{
	std::set<std::pair<NodeState, NodeState>> seen;
	for (const auto &row : KeeperTransitions()) {
		EXPECT_TRUE(seen.insert({row.from, row.to}).second)
			<< "duplicate row " << StateName(row.from) << " -> " << StateName(row.to);
		EXPECT_NE(row.from, row.to) << "a keeper row must change the state: " << StateName(row.from);
		ASSERT_NE(row.why, nullptr);
		EXPECT_GT(std::string(row.why).size(), 10u) << "every row explains itself";
	}
	EXPECT_GE(KeeperTransitions().size(), 8u);
}

TEST(KeeperFsm, FindReturnsTheRowOrNull)
{
	const KeeperTransition *t = FindKeeperTransition(NodeState::WaitStandby, NodeState::Catchingup);
	ASSERT_NE(t, nullptr);
	EXPECT_EQ(t->action, KeeperAction::InitStandby);

	t = FindKeeperTransition(NodeState::Init, NodeState::Single);
	ASSERT_NE(t, nullptr);
	EXPECT_EQ(t->action, KeeperAction::BecomeSingle);

	t = FindKeeperTransition(NodeState::Single, NodeState::WaitPrimary);
	ASSERT_NE(t, nullptr);
	EXPECT_EQ(t->action, KeeperAction::PrepareStandbys);

	t = FindKeeperTransition(NodeState::WaitPrimary, NodeState::Primary);
	ASSERT_NE(t, nullptr);
	EXPECT_EQ(t->action, KeeperAction::EnableSyncRep);

	t = FindKeeperTransition(NodeState::Primary, NodeState::WaitPrimary);
	ASSERT_NE(t, nullptr);
	EXPECT_EQ(t->action, KeeperAction::DisableSyncRep);

	t = FindKeeperTransition(NodeState::Secondary, NodeState::Catchingup);
	ASSERT_NE(t, nullptr);
	EXPECT_EQ(t->action, KeeperAction::FollowPrimary);

	EXPECT_EQ(FindKeeperTransition(NodeState::Init, NodeState::WaitStandby)->action, KeeperAction::None);
	EXPECT_EQ(FindKeeperTransition(NodeState::Catchingup, NodeState::Secondary)->action, KeeperAction::None);

	/* Issue 3 (docs/failover.md). */
	EXPECT_EQ(FindKeeperTransition(NodeState::Primary, NodeState::Draining)->action, KeeperAction::DemoteClean);
	EXPECT_EQ(FindKeeperTransition(NodeState::Draining, NodeState::Demoted)->action, KeeperAction::None);
	EXPECT_EQ(FindKeeperTransition(NodeState::Secondary, NodeState::PreparePromotion)->action,
			  KeeperAction::StopReplication);
	EXPECT_EQ(FindKeeperTransition(NodeState::PreparePromotion, NodeState::StopReplication)->action,
			  KeeperAction::Promote);
	EXPECT_EQ(FindKeeperTransition(NodeState::StopReplication, NodeState::WaitPrimary)->action,
			  KeeperAction::PrepareStandbys);
	EXPECT_EQ(FindKeeperTransition(NodeState::Primary, NodeState::DemoteTimeout)->action, KeeperAction::DemoteClean);
	EXPECT_EQ(FindKeeperTransition(NodeState::WaitPrimary, NodeState::DemoteTimeout)->action,
			  KeeperAction::DemoteClean);
	EXPECT_EQ(FindKeeperTransition(NodeState::DemoteTimeout, NodeState::Demoted)->action, KeeperAction::DemoteRewind);
	EXPECT_EQ(FindKeeperTransition(NodeState::Primary, NodeState::Demoted)->action, KeeperAction::DemoteRewind);
	EXPECT_EQ(FindKeeperTransition(NodeState::WaitPrimary, NodeState::Demoted)->action, KeeperAction::DemoteRewind);
	EXPECT_EQ(FindKeeperTransition(NodeState::Demoted, NodeState::Catchingup)->action, KeeperAction::FollowPrimary);
	EXPECT_EQ(FindKeeperTransition(NodeState::Demoted, NodeState::Maintenance)->action, KeeperAction::None);
	EXPECT_EQ(FindKeeperTransition(NodeState::Secondary, NodeState::Maintenance)->action, KeeperAction::None);
	EXPECT_EQ(FindKeeperTransition(NodeState::Catchingup, NodeState::Maintenance)->action, KeeperAction::None);
	EXPECT_EQ(FindKeeperTransition(NodeState::Maintenance, NodeState::Catchingup)->action, KeeperAction::FollowPrimary);
	EXPECT_EQ(FindKeeperTransition(NodeState::Draining, NodeState::Catchingup), nullptr)
		<< "a draining node is demoted first";

	EXPECT_EQ(FindKeeperTransition(NodeState::Secondary, NodeState::Single), nullptr);
	EXPECT_EQ(FindKeeperTransition(NodeState::Primary, NodeState::Primary), nullptr);
	EXPECT_EQ(FindKeeperTransition(NodeState::Single, NodeState::Primary), nullptr);
}

TEST(KeeperFsm, ActionNamesAreLowerSnakeAndUnique)
{
	const KeeperAction all[] = {KeeperAction::None,
								KeeperAction::BecomeSingle,
								KeeperAction::PrepareStandbys,
								KeeperAction::EnableSyncRep,
								KeeperAction::DisableSyncRep,
								KeeperAction::InitStandby,
								KeeperAction::FollowPrimary,
								KeeperAction::DemoteClean,
								KeeperAction::DemoteRewind,
								KeeperAction::StopReplication,
								KeeperAction::Promote,
								KeeperAction::ApplySettings,
								KeeperAction::ReportLsn,
								KeeperAction::FastForward,
								KeeperAction::JoinNewPrimary,
								KeeperAction::Dropped};
	std::set<std::string> names;
	for (KeeperAction a : all) {
		std::string name = KeeperActionName(a);
		EXPECT_TRUE(names.insert(name).second) << name;
		EXPECT_NE(name, "unknown");
		for (char c : name)
			EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << name;
	}
	EXPECT_STREQ(KeeperActionName(KeeperAction::InitStandby), "init_standby");
	EXPECT_STREQ(KeeperActionName(KeeperAction::None), "none");
}

/* Issue 4 (docs/elections.md): every state can be dropped, and the election rows. */
TEST(KeeperFsm, ElectionAndDropRows)
{
	for (const auto &info : kStates)
		if (info.state != NodeState::Dropped) {
			const KeeperTransition *t = FindKeeperTransition(info.state, NodeState::Dropped);
			ASSERT_NE(t, nullptr) << info.label;
			EXPECT_EQ(t->action, KeeperAction::Dropped) << info.label;
		}
	EXPECT_EQ(FindKeeperTransition(NodeState::Catchingup, NodeState::ReportLsn)->action, KeeperAction::ReportLsn);
	EXPECT_EQ(FindKeeperTransition(NodeState::ReportLsn, NodeState::PreparePromotion)->action,
			  KeeperAction::StopReplication);
	EXPECT_EQ(FindKeeperTransition(NodeState::FastForward, NodeState::PreparePromotion)->action,
			  KeeperAction::StopReplication);
	EXPECT_EQ(FindKeeperTransition(NodeState::JoinSecondary, NodeState::Secondary)->action, KeeperAction::None);
	EXPECT_EQ(FindKeeperTransition(NodeState::ApplySettings, NodeState::DemoteTimeout)->action,
			  KeeperAction::DemoteClean);
	EXPECT_STREQ(KeeperActionName(KeeperAction::JoinNewPrimary), "join_new_primary");
}
