/*
 * src/shared/tests/election_rules_test.cpp — any number of standbys
 * (docs/elections.md): the primary side (standby_joined from primary,
 * apply_settings, settings_changed), the election (report_lsn, winner,
 * fast_forward, losers joining), its proofs (QuorumReported, the refused
 * timeout proof, wait_primary with number_sync_standbys >= 1), the requests
 * with N standbys (failover, switchover, drop_node) and the settings
 * validations, driven through ProceedGroup like the monitor does.
 */
#include <gtest/gtest.h>

#include <climits>
#include <string>
#include <vector>

#include "error.hpp"
#include "group_rules.hpp"
#include "keeper_fsm.hpp"

#include "group_fixture.hpp"

using namespace autopilot::fsm;
using namespace autopilot::fsm::testing;

namespace {

constexpr const char *k55000 = "55000";
constexpr const char *k42704 = "42704";
constexpr const char *k22023 = "22023";

/* Election fixture: node1 primary, nodes 2..n secondaries, all at lsn 1000. */
class Election : public Group {
  protected:
	void
	Form(int64_t n)
	{
		FormGroup(n);
		for (auto &m : g.nodes)
			m.lsn = 1000;
	}

	/* The standbys' keepers did ReportLsn: stopped, reporting their LSN. */
	void
	ReportLsn(int64_t id, uint64_t lsn)
	{
		ASSERT_EQ(Node(id).assigned, NodeState::ReportLsn);
		Report(id);
		Node(id).streaming = false;
		Node(id).lsn = lsn;
	}

	/* Kill the primary: it goes demote_timeout, every healthy secondary report_lsn. */
	void
	KillPrimary()
	{
		Node(1).healthy = false;
		Strings expect = {"1:primary->demote_timeout:primary_failed"};
		for (const auto &n : g.nodes)
			if (n.node_id != 1 && n.healthy)
				expect.push_back(std::to_string(n.node_id) + ":secondary->report_lsn:election_report_lsn");
		ASSERT_EQ(Proceed(), expect);
	}
};

} // namespace

TEST_F(Group, ThirdNodeJoinsThroughApplySettings)
{
	FormPair();
	TellNames(1);
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2)");
	Register(3, NodeState::WaitStandby);
	EXPECT_EQ(Proceed(), Strings{"1:primary->apply_settings:standby_joined"});
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2)")
		<< "the primary keeps synchronous replication while it applies the settings; node3 is not cloned yet";
	EXPECT_EQ(FindKeeperTransition(NodeState::Primary, NodeState::ApplySettings)->action, KeeperAction::ApplySettings);
	Report(3);
	EXPECT_EQ(Proceed(), Strings{}) << "the primary has not reported apply_settings yet";
	Report(1);
	EXPECT_EQ(Proceed(), Strings{"3:wait_standby->catchingup:standby_can_init"});
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2, pg_autopilot_node_3)")
		<< "once it may stream from the primary, node3 is named";
	Report(3);
	EXPECT_EQ(Proceed(), Strings{"3:catchingup->secondary:standby_caught_up"})
		<< "the primary, told the names without node3, stays in apply_settings";
	Report(3);
	Report(1);
	EXPECT_EQ(Proceed(), (Strings{"1:apply_settings->primary:primary_settings_applied"}))
		<< "the primary returns to primary once it was told the current names and no node waits any more";
	EXPECT_EQ(FindKeeperTransition(NodeState::ApplySettings, NodeState::Primary)->action, KeeperAction::EnableSyncRep);
	ReportAll();
	EXPECT_EQ(Proceed(), Strings{}) << "steady state";
}

TEST_F(Group, SettingsChangedReappliesTheNames)
{
	FormGroup(3);
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2, pg_autopilot_node_3)");
	g.number_sync_standbys = 1;
	EXPECT_EQ(Proceed(), Strings{}) << "the names did not change";
	Node(3).candidate_priority = 90;
	EXPECT_EQ(Proceed(), Strings{"1:primary->apply_settings:settings_changed"});
	auto again = ProceedGroup(g);
	EXPECT_TRUE(again.empty()) << "the primary has not reported apply_settings yet";
	Node(1).reported = NodeState::ApplySettings; /* reported, but told the old names */
	EXPECT_EQ(Proceed(), Strings{}) << "it was not told the current names yet";
	Report(1);
	EXPECT_EQ(Proceed(), Strings{"1:apply_settings->primary:primary_settings_applied"});
	Report(1);
	EXPECT_EQ(Node(1).told_sync_names, "ANY 1 (pg_autopilot_node_3, pg_autopilot_node_2)");
	EXPECT_EQ(Proceed(), Strings{});

	/* Settings applied while the primary was last told wait_primary are not compared. */
	Node(3).replication_quorum = false;
	Node(1).last_told = NodeState::WaitPrimary;
	EXPECT_EQ(Proceed(), Strings{});
	Node(1).last_told = NodeState::Primary;
	EXPECT_EQ(Proceed(), Strings{"1:primary->apply_settings:settings_changed"});
}

TEST_F(Election, ThreeNodesPrimaryKilledEveryoneReportsAndTheBestWins)
{
	Form(3);
	Node(3).candidate_priority = 90;
	KillPrimary();
	EXPECT_EQ(FindKeeperTransition(NodeState::Secondary, NodeState::ReportLsn)->action, KeeperAction::ReportLsn);
	EXPECT_EQ(SynchronousStandbyNames(g), "");

	ReportLsn(2, 1000);
	EXPECT_EQ(Proceed(), Strings{}) << "node3 is healthy and has not reported: it is waited for";
	ReportLsn(3, 1000);
	auto win = ProceedGroup(g);
	ASSERT_EQ(win.size(), 1u);
	EXPECT_NE(win[0].description.find("every commit it acknowledged is on a participant"), std::string::npos)
		<< win[0].description;
	EXPECT_EQ(Apply(win), Strings{"3:report_lsn->prepare_promotion:election_winner"})
		<< "equal LSNs: the highest priority wins";
	EXPECT_EQ(Proceed(), Strings{}) << "node3 has not reported prepare_promotion";
	Report(3);
	Node(3).streaming = false;
	auto promote = ProceedGroup(g);
	ASSERT_EQ(promote.size(), 1u);
	EXPECT_NE(promote[0].description.find("synchronous primary"), std::string::npos) << promote[0].description;
	EXPECT_EQ(Apply(promote), Strings{"3:prepare_promotion->stop_replication:promote_candidate"});
	Report(3);
	Node(3).timeline = 2;
	EXPECT_EQ(Proceed(), (Strings{"3:stop_replication->wait_primary:candidate_promoted",
								  "1:demote_timeout->demoted:candidate_promoted"}));
	EXPECT_EQ(Proceed(), Strings{}) << "node3 has not reported wait_primary";
	Report(3);
	EXPECT_EQ(Proceed(), Strings{"2:report_lsn->join_secondary:election_loser_joins"});
	EXPECT_EQ(FindKeeperTransition(NodeState::ReportLsn, NodeState::JoinSecondary)->action,
			  KeeperAction::JoinNewPrimary);
	Report(2);
	Node(2).streaming = true;
	EXPECT_EQ(Proceed(), Strings{}) << "still on the old timeline";
	Node(2).timeline = 2;
	EXPECT_EQ(Proceed(), Strings{"2:join_secondary->secondary:join_secondary_caught_up"});
	Report(2);
	EXPECT_EQ(Proceed(), Strings{"3:wait_primary->primary:primary_gains_sync_standby"});
}

TEST_F(Election, PriorityZeroNeverWinsAndALaggingWinnerFastForwards)
{
	Form(4);
	Node(2).candidate_priority = 0;
	Node(3).candidate_priority = 90;
	Node(4).candidate_priority = 50;
	KillPrimary();
	ReportLsn(2, 1300); /* most advanced, but priority 0 */
	ReportLsn(3, 1100); /* highest priority, lagging */
	ReportLsn(4, 1300);
	EXPECT_EQ(Proceed(), Strings{"3:report_lsn->fast_forward:election_winner"});
	int64_t up = 0;
	uint64_t up_lsn = 0;
	ASSERT_TRUE(FastForwardUpstream(g, 3, &up, &up_lsn));
	EXPECT_EQ(up, 2) << "the most advanced participant, lowest id among equals";
	EXPECT_EQ(up_lsn, 1300u);
	EXPECT_FALSE(FastForwardUpstream(g, 4, &up, &up_lsn)) << "node4 is not in fast_forward";
	EXPECT_EQ(FindKeeperTransition(NodeState::ReportLsn, NodeState::FastForward)->action, KeeperAction::FastForward);

	Report(3);
	Node(3).streaming = true;
	Node(3).lsn = 1300;
	EXPECT_EQ(Proceed(), Strings{}) << "still streaming from its upstream";
	Node(3).streaming = false;
	Node(3).lsn = 1200;
	EXPECT_EQ(Proceed(), Strings{}) << "still lacks WAL";
	Node(3).lsn = 1300;
	EXPECT_EQ(Proceed(), Strings{"3:fast_forward->prepare_promotion:fast_forward_done"});
	Report(3);
	EXPECT_EQ(Proceed(), Strings{"3:prepare_promotion->stop_replication:promote_candidate"});
}

/*
 * Candidates on the fetch source's timeline win first (docs/elections.md):
 * node3 has the higher priority but is on an older timeline than the most
 * advanced participant; whether its WAL ends before that timeline's fork
 * the monitor cannot see.  Only when nobody is on the source's timeline
 * does an older one win (its keeper rewinds it onto the source if needed).
 */
TEST_F(Election, CandidatesOnTheSourceTimelineWinFirst)
{
	Form(4);
	Node(2).candidate_priority = 10;
	Node(3).candidate_priority = 90;
	Node(4).candidate_priority = 50;
	KillPrimary();
	ReportLsn(2, 1300);
	Node(2).timeline = 2;
	ReportLsn(3, 1400); /* higher LSN, older timeline */
	ReportLsn(4, 1300);
	Node(4).timeline = 2;
	EXPECT_EQ(Proceed(), Strings{"4:report_lsn->prepare_promotion:election_winner"})
		<< "node4: highest priority on the source's timeline 2 (node3's timeline 1 is older)";
}

TEST_F(Election, AnOlderTimelineWinsOnlyWhenNobodyIsOnTheSourceTimeline)
{
	Form(3);
	Node(2).candidate_priority = 0;
	Node(3).candidate_priority = 50;
	KillPrimary();
	ReportLsn(2, 1300);
	Node(2).timeline = 2;
	ReportLsn(3, 1300);
	EXPECT_EQ(Proceed(), Strings{"3:report_lsn->fast_forward:election_winner"})
		<< "the priority-0 node on timeline 2 cannot win: node3 fetches from it";
}

/*
 * A participant that reports after the election, ahead of the candidate
 * (it came back): the quorum proof counts its WAL, so the candidate must
 * hold it before its promotion (simulator seed 61954).
 */
TEST_F(Election, ALateParticipantAheadSendsTheCandidateToFetch)
{
	Form(4);
	Node(3).candidate_priority = 90;
	KillPrimary();
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	Node(4).healthy = false; /* assigned report_lsn, lost before it reported */
	ASSERT_EQ(Proceed(), Strings{}) << "node4 may hold commits alone: no RPO proof";
	Node(1).allow_data_loss = true; /* the operator forces it (perform_failover(allow_data_loss => true)) */
	ASSERT_EQ(Proceed(), Strings{"3:report_lsn->prepare_promotion:election_winner"});
	Report(3);
	Node(3).streaming = false;
	/* node4 comes back and reports WAL the candidate lacks. */
	Node(4).healthy = true;
	ReportLsn(4, 1200);
	EXPECT_EQ(Proceed(), Strings{"3:prepare_promotion->fast_forward:candidate_fetches_wal"})
		<< "not promote_candidate: node4's WAL would be lost";
	int64_t up = 0;
	uint64_t up_lsn = 0;
	ASSERT_TRUE(FastForwardUpstream(g, 3, &up, &up_lsn));
	EXPECT_EQ(up, 4);
	EXPECT_EQ(up_lsn, 1200u);
}

TEST_F(Election, NoEligibleParticipantMeansNoWinner)
{
	Form(3);
	KillPrimary();
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	Node(2).candidate_priority = 0;
	Node(3).candidate_priority = 0;
	EXPECT_EQ(Proceed(), Strings{}) << "priority 0 is never promoted";
	Node(3).candidate_priority = 10;
	Node(3).wants_maintenance = true;
	EXPECT_EQ(Proceed(), Strings{});
	Node(3).wants_maintenance = false;
	Node(3).healthy = false;
	EXPECT_EQ(Proceed(), Strings{}) << "an unhealthy participant does not win";
	Node(3).healthy = true;
	Node(3).lsn = 1000 - 1; /* lag threshold is checked against the most advanced participant */
	EXPECT_EQ(Proceed(), Strings{"3:report_lsn->fast_forward:election_winner"});
}

TEST_F(Election, MostAdvancedTooFarBehindTheOldPrimaryBlocks)
{
	Form(3);
	KillPrimary();
	Node(1).lsn = 1000 + g.promote_lag_threshold_bytes + 1;
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	EXPECT_EQ(Proceed(), Strings{});
	Node(1).allow_data_loss = true;
	EXPECT_EQ(Proceed(), Strings{"2:report_lsn->prepare_promotion:election_winner"});
}

/*
 * Missing quorum reports block the election: with 'ANY 1 (node2, node3)'
 * a commit may be on node3 only.  allow_data_loss unblocks the election but
 * never CannotWrite: the promotion still waits for a proof.
 */
TEST_F(Election, MissingQuorumReportsBlockTheElectionUnlessDataLossIsAllowed)
{
	Form(3);
	Node(3).healthy = false; /* lost together with the primary */
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->report_lsn:election_report_lsn"}));
	ReportLsn(2, 1000);
	EXPECT_FALSE(QuorumReported(g, 1));
	EXPECT_EQ(Proceed(), Strings{}) << "node3 may hold acknowledged commits";
	Node(1).assigned_age_ms = g.primary_demote_timeout_ms * 10;
	EXPECT_EQ(Proceed(), Strings{}) << "time does not prove where the commits are";

	/* node3 comes back, stops and reports: the election proceeds. */
	Node(3).healthy = true;
	EXPECT_EQ(Proceed(), Strings{"3:secondary->report_lsn:election_report_lsn"});
	ReportLsn(3, 1000);
	EXPECT_TRUE(QuorumReported(g, 1));
	EXPECT_EQ(Proceed(), Strings{"2:report_lsn->prepare_promotion:election_winner"});
}

/*
 * sync_since_lsn (simulator seeds 17325, 570): the old primary's current
 * names took effect at its report at lsn 1100; it may have acknowledged
 * commits before that under other names (or alone, in wait_primary).  The
 * pigeonhole over the current names does not cover them: the election
 * also needs a stopped participant on its timeline at or past 1100.
 */
TEST_F(Election, CommitsAcknowledgedBeforeTheNamesTookEffectNeedAParticipantPastSyncSince)
{
	Form(3);
	Node(1).sync_since_lsn = 1100;
	Node(1).lsn = 1100;
	KillPrimary();
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	EXPECT_FALSE(QuorumReported(g, 1));
	EXPECT_EQ(Proceed(), Strings{}) << "commits up to lsn 1100 may be on the old primary only";
	Node(3).timeline = 2; /* past it, but on another timeline: says nothing about timeline 1 */
	Node(3).lsn = 1100;
	EXPECT_EQ(Proceed(), Strings{});
	Node(3).timeline = 1;
	EXPECT_TRUE(QuorumReported(g, 1));
	EXPECT_EQ(Proceed(), Strings{"3:report_lsn->prepare_promotion:election_winner"});
}

/* The same in the two-node path: the stopped candidate must have reached sync_since_lsn. */
TEST_F(Election, TwoNodePromotionWaitsForSyncSince)
{
	FormPair();
	g.number_sync_standbys = 1;
	Node(1).applied_sync_names = Node(1).told_sync_names = SynchronousStandbyNames(g);
	ASSERT_NE(Node(1).applied_sync_names, "");
	Node(1).sync_since_lsn = Node(2).lsn + 1;
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->prepare_promotion:primary_failed"}));
	Report(2);
	Node(2).streaming = false;
	EXPECT_EQ(Proceed(), Strings{}) << "node1 may have acknowledged a commit alone just before its names took effect";
	Node(2).lsn = Node(1).sync_since_lsn;
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

TEST_F(Election, AllowDataLossUnblocksTheElectionButNeverCannotWrite)
{
	Form(3);
	Node(3).healthy = false;
	Node(1).healthy = false;
	Proceed();
	ReportLsn(2, 1000);
	EXPECT_EQ(Proceed(), Strings{});
	Node(1).allow_data_loss = true;
	auto win = ProceedGroup(g);
	ASSERT_EQ(win.size(), 1u);
	EXPECT_NE(win[0].description.find("allowed data loss"), std::string::npos) << win[0].description;
	EXPECT_EQ(Apply(win), Strings{"2:report_lsn->prepare_promotion:election_winner"});
	Report(2);
	Node(2).streaming = false;
	EXPECT_EQ(Proceed(), Strings{}) << "node3 may still acknowledge for node1: no sync proof";
	Node(1).assigned_age_ms = Node(1).report_age_ms = g.primary_demote_timeout_ms;
	EXPECT_EQ(Proceed(), Strings{}) << "names set: no timeout proof (node3 may keep node1 from fencing)";
	Node(1).reported = NodeState::DemoteTimeout;
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"}) << "confirmed down";
}

/* With number_sync_standbys = 0 a primary that ran without synchronous names has nothing to wait for. */
TEST_F(Election, EmptyNamesElectOnlyWithNumberSyncStandbysZero)
{
	Form(3);
	Node(1).applied_sync_names = Node(1).told_sync_names = "";
	g.number_sync_standbys = 1;
	KillPrimary();
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	EXPECT_EQ(Proceed(), Strings{}) << "it may have acknowledged commits alone";
	g.number_sync_standbys = 0;
	EXPECT_EQ(Proceed(), Strings{"2:report_lsn->prepare_promotion:election_winner"});
}

/*
 * The timeout proof needs names '' (applied and told): with names set, a
 * quorum of standbys the monitor cannot see may stream from the old primary
 * and keep its keeper from fencing.  Only confirmed-down (or the sync proof)
 * then promotes.
 */
TEST_F(Election, TimeoutProofRefusedWhenTheOldPrimaryRanWithNames)
{
	Form(3);
	Node(1).applied_sync_names = "garbage ((";
	KillPrimary();
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	Node(1).allow_data_loss = true; /* the names cannot be parsed: no RPO proof, no sync proof */
	EXPECT_EQ(Proceed(), Strings{"2:report_lsn->prepare_promotion:election_winner"});
	Report(2);
	Node(2).streaming = false;
	Node(1).assigned_age_ms = Node(1).report_age_ms = g.primary_demote_timeout_ms * 2;
	EXPECT_EQ(Proceed(), Strings{}) << "names set: its keeper may not have fenced";
	Node(1).reported = NodeState::DemoteTimeout; /* its demotion is done */
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

/* The timeout counts from max(last report, assignment): a keeper that still reports is not isolated. */
TEST_F(Election, TwoNodeTimeoutProofCountsFromTheLastReport)
{
	FormPair();
	Node(1).assigned = Node(1).reported = NodeState::WaitPrimary;
	Node(1).applied_sync_names = Node(1).told_sync_names = "";
	Node(1).healthy = false;
	Proceed();
	Report(2);
	Node(2).streaming = false;
	Node(1).assigned_age_ms = g.primary_demote_timeout_ms;
	Node(1).report_age_ms = g.primary_demote_timeout_ms - 1;
	EXPECT_EQ(Proceed(), Strings{}) << "it reported less than primary_demote_timeout ago";
	Node(1).report_age_ms = g.primary_demote_timeout_ms * 3;
	Node(1).assigned_age_ms = g.primary_demote_timeout_ms - 1;
	EXPECT_EQ(Proceed(), Strings{}) << "assigned less than primary_demote_timeout ago";
	Node(1).assigned_age_ms = g.primary_demote_timeout_ms;
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

/*
 * Bug 1b of the simulator: assigned primary, but the keeper never applied it
 * (names '' applied): it acknowledged commits alone.  With
 * number_sync_standbys = 1 its candidate is not promoted even once the old
 * primary is confirmed down — only with allow_data_loss.
 */
TEST_F(Election, TwoNodeNoPromotionWithoutRpoProof)
{
	FormPair();
	g.number_sync_standbys = 1;
	Node(1).applied_sync_names = "";
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->prepare_promotion:primary_failed"}));
	Report(2);
	Node(2).streaming = false;
	Node(1).reported = NodeState::DemoteTimeout; /* confirmed down, */
	Node(1).lsn = Node(2).lsn + 100;             /* with WAL node2 never received */
	EXPECT_EQ(Proceed(), Strings{}) << "commits it acknowledged alone may be missing on node2";
	Node(1).allow_data_loss = true;
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

/* WAL proof: the old primary is confirmed down (in recovery, at the end of its WAL) and the candidate has all of it. */
TEST_F(Election, TwoNodeWalProofWhenTheCandidateHasAllTheWal)
{
	FormPair();
	g.number_sync_standbys = 1;
	Node(1).applied_sync_names = "";
	Node(1).healthy = false;
	Proceed();
	Report(2);
	Node(2).streaming = false;
	Node(1).lsn = Node(2).lsn + 1;
	Node(1).reported = NodeState::DemoteTimeout;
	EXPECT_EQ(Proceed(), Strings{});
	Node(2).lsn = Node(1).lsn;
	auto promote = ProceedGroup(g);
	ASSERT_EQ(promote.size(), 1u);
	EXPECT_NE(promote[0].description.find("has all of its WAL"), std::string::npos) << promote[0].description;
	EXPECT_EQ(Apply(promote), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

/*
 * candidate_fetches_wal: the old primary is confirmed down (it reports
 * demote_timeout after its clean demotion) and healthy, with WAL its stopped
 * candidate never received and no other RPO proof: the candidate streams it
 * from the old primary (fast_forward), then the WAL proof promotes it
 * (simulator seeds 15, 150).
 */
TEST_F(Election, TwoNodeCandidateFetchesWalFromTheConfirmedDownOldPrimary)
{
	FormPair();
	g.number_sync_standbys = 1;
	Node(1).applied_sync_names = "";
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->prepare_promotion:primary_failed"}));
	Report(2);
	Node(2).streaming = false;
	Node(1).reported = NodeState::DemoteTimeout;
	Node(1).lsn = Node(2).lsn + 100;
	EXPECT_EQ(Proceed(), Strings{}) << "the old primary is unhealthy: its WAL cannot be fetched";
	Node(1).healthy = true;
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->fast_forward:candidate_fetches_wal"});
	EXPECT_EQ(FindKeeperTransition(NodeState::PreparePromotion, NodeState::FastForward)->action,
			  KeeperAction::FastForward);
	int64_t up = 0;
	uint64_t up_lsn = 0;
	ASSERT_TRUE(FastForwardUpstream(g, 2, &up, &up_lsn));
	EXPECT_EQ(up, 1) << "the old primary is the upstream";
	EXPECT_EQ(up_lsn, Node(1).lsn);
	Node(2).lsn = Node(1).lsn;
	ASSERT_TRUE(FastForwardUpstream(g, 2, &up, &up_lsn)) << "still named once caught up, until the node reports";
	EXPECT_EQ(up, 1);
	Report(2);
	Node(2).streaming = true;
	EXPECT_EQ(Proceed(), Strings{}) << "still streaming";
	Node(2).streaming = false;
	EXPECT_EQ(Proceed(), Strings{"2:fast_forward->prepare_promotion:fast_forward_done"});
	Report(2);
	auto promote = ProceedGroup(g);
	ASSERT_EQ(promote.size(), 1u);
	EXPECT_NE(promote[0].description.find("has all of its WAL"), std::string::npos) << promote[0].description;
	EXPECT_EQ(Apply(promote), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

/* The same in an election: the confirmed-down old primary is the most advanced node; the winner fetches from it. */
TEST_F(Election, ElectionWinnerFetchesWalFromTheConfirmedDownOldPrimary)
{
	Form(3);
	g.number_sync_standbys = 1;
	Node(1).applied_sync_names = Node(1).told_sync_names = "";
	KillPrimary();
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	Node(1).reported = NodeState::DemoteTimeout;
	Node(1).lsn = 1100;
	EXPECT_EQ(Proceed(), Strings{}) << "no RPO proof while the old primary is unhealthy";
	Node(1).healthy = true;
	EXPECT_EQ(Proceed(), Strings{"2:report_lsn->fast_forward:election_winner"});
	int64_t up = 0;
	uint64_t up_lsn = 0;
	ASSERT_TRUE(FastForwardUpstream(g, 2, &up, &up_lsn));
	EXPECT_EQ(up, 1);
	EXPECT_EQ(up_lsn, 1100u);
	Report(2);
	Node(2).streaming = false;
	EXPECT_EQ(Proceed(), Strings{}) << "lacks the old primary's WAL";
	Node(2).lsn = 1100;
	EXPECT_EQ(Proceed(), Strings{"2:fast_forward->prepare_promotion:fast_forward_done"});
	Report(2);
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
}

/*
 * Monitor isolation (netns campaign seed 21): every node looked unhealthy
 * while the monitor was cut off; the standby that reports first after the
 * heal has been healthy for less than node_timeout and is no candidate yet.
 */
TEST_F(Election, PrimaryFailedWantsACandidateHealthyForNodeTimeout)
{
	FormPair();
	g.node_timeout_ms = 5000;
	Node(1).healthy = false;
	Node(2).healthy_for_ms = 400;
	EXPECT_EQ(Proceed(), Strings{}) << "node2 just became healthy again";
	Node(2).healthy_for_ms = 5000;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->prepare_promotion:primary_failed"}));
}

TEST_F(Election, PrimaryFailedWithSeveralStandbysWantsOneHealthyForNodeTimeout)
{
	Form(3);
	g.node_timeout_ms = 5000;
	Node(1).healthy = false;
	Node(2).healthy_for_ms = 100;
	Node(3).healthy_for_ms = 4999;
	EXPECT_EQ(Proceed(), Strings{});
	Node(3).healthy_for_ms = 5000;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:primary->demote_timeout:primary_failed", "2:secondary->report_lsn:election_report_lsn",
					   "3:secondary->report_lsn:election_report_lsn"}));
}

TEST_F(Election, NoAutomaticFailoverFromWaitPrimaryWithNumberSyncStandbys)
{
	for (int64_t size : {2, 3}) {
		g.nodes.clear();
		g.number_sync_standbys = 1;
		Form(size);
		Node(1).assigned = Node(1).reported = NodeState::WaitPrimary;
		for (auto &n : g.nodes)
			n.replication_quorum = n.node_id == 1; /* asynchronous standbys: it stays wait_primary */
		Node(1).healthy = false;
		EXPECT_EQ(Proceed(), Strings{}) << size << " nodes: wait_primary acknowledged commits alone";
		g.number_sync_standbys = 0;
		EXPECT_EQ(Proceed().size(), static_cast<std::size_t>(size)) << "with 0 it is failed over";
	}
}

/*
 * A primary in apply_settings runs its applied or its told names: the sync
 * proof checks both, so it holds as for a primary (with names set, the
 * timeout proof never would).
 */
TEST_F(Election, PrimaryInApplySettingsIsFailedOverWithTheSyncProof)
{
	Form(3);
	Node(3).candidate_priority = 90;
	Proceed();
	Node(1).assigned = NodeState::ApplySettings;
	Report(1);
	Node(1).healthy = false;
	EXPECT_EQ(Proceed(),
			  (Strings{"1:apply_settings->demote_timeout:primary_failed", "2:secondary->report_lsn:election_report_lsn",
					   "3:secondary->report_lsn:election_report_lsn"}));
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	EXPECT_EQ(Proceed(), Strings{"3:report_lsn->prepare_promotion:election_winner"});
	Report(3);
	Node(3).streaming = true;
	EXPECT_EQ(Proceed(), Strings{}) << "node3 must have stopped";
	Node(3).streaming = false;
	EXPECT_EQ(Proceed(), Strings{"3:prepare_promotion->stop_replication:promote_candidate"});
}

TEST_F(Election, ParseSyncNames)
{
	int k = 0;
	int others = 0;
	std::vector<int64_t> ids;
	EXPECT_TRUE(ParseSyncNames("ANY 2 (pg_autopilot_node_3, pg_autopilot_node_12)", &k, &ids, &others));
	EXPECT_EQ(k, 2);
	EXPECT_EQ(ids, (std::vector<int64_t>{3, 12}));
	EXPECT_EQ(others, 0);
	EXPECT_TRUE(ParseSyncNames("  first 1 ( \"pg_autopilot_node_4\" , Pg_Autopilot_Node_5,x)  ", &k, &ids, &others));
	EXPECT_EQ(k, 1);
	EXPECT_EQ(ids, (std::vector<int64_t>{4, 5}));
	EXPECT_EQ(others, 1);
	EXPECT_TRUE(ParseSyncNames("3 (a, b, c)", &k, &ids, &others));
	EXPECT_EQ(k, 3);
	EXPECT_EQ(others, 3);
	EXPECT_TRUE(ParseSyncNames("pg_autopilot_node_7, any", &k, &ids, &others));
	EXPECT_EQ(k, 1);
	EXPECT_EQ(ids, (std::vector<int64_t>{7}));
	EXPECT_EQ(others, 1);
	EXPECT_TRUE(ParseSyncNames("\"PG_AUTOPILOT_NODE_7\"", &k, &ids, &others));
	EXPECT_EQ(others, 1) << "a quoted name is case-sensitive";
	for (const char *bad : {"", "   ", "*", "ANY 0 (a)", "ANY 1 (a", "ANY 1 a", "ANY (a)", "a,", "ANY 1 (*)",
							"ANY 1 (a) b", "\"a", "ANY 9999999 (a)"})
		EXPECT_FALSE(ParseSyncNames(bad, &k, &ids, &others)) << bad;
}

TEST_F(Election, FailoverRequestWithSeveralStandbysMovesOnlyThePrimary)
{
	Form(3);
	EXPECT_EQ(Apply(Failover(g)), Strings{"1:primary->demote_timeout:failover"});
	EXPECT_EQ(Proceed(),
			  (Strings{"2:secondary->report_lsn:election_report_lsn", "3:secondary->report_lsn:election_report_lsn"}));
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	Report(1); /* the healthy old primary demoted itself */
	EXPECT_EQ(Proceed(), Strings{"2:report_lsn->prepare_promotion:election_winner"});
	Report(2);
	auto promote = ProceedGroup(g);
	ASSERT_EQ(promote.size(), 1u);
	EXPECT_NE(promote[0].description.find("it reports demote_timeout"), std::string::npos) << promote[0].description;
}

TEST_F(Election, FailoverOfAWaitPrimaryNeedsAllowDataLoss)
{
	g.number_sync_standbys = 1;
	Form(3);
	Node(1).assigned = Node(1).reported = NodeState::WaitPrimary;
	ExpectError([&] { Failover(g); }, k55000, "no healthy secondary");
	Node(1).allow_data_loss = true; /* the caller puts the argument into the view */
	EXPECT_EQ(Apply(Failover(g)), Strings{"1:wait_primary->demote_timeout:failover"});
	Proceed();
	ReportLsn(2, 1000);
	ReportLsn(3, 1000);
	EXPECT_EQ(Proceed(), Strings{"2:report_lsn->prepare_promotion:election_winner"});
}

TEST_F(Election, SwitchoverWithSeveralStandbysLeavesTheOthersSecondary)
{
	Form(4);
	Node(4).candidate_priority = 90;
	EXPECT_EQ(Apply(Switchover(g)), Strings{"1:primary->draining:switchover"});
	Report(1);
	EXPECT_EQ(Proceed(), (Strings{"1:draining->demoted:switchover_candidate_has_all_wal",
								  "4:secondary->prepare_promotion:switchover_candidate_has_all_wal"}));
	Report(4);
	Node(4).streaming = false;
	EXPECT_EQ(Proceed(), Strings{"4:prepare_promotion->stop_replication:promote_candidate"});
	Report(4);
	EXPECT_EQ(Proceed(), Strings{"4:stop_replication->wait_primary:candidate_promoted"});
	ReportAll();
	EXPECT_EQ(Proceed(), (Strings{"1:demoted->catchingup:old_primary_rejoins",
								  "4:wait_primary->primary:primary_gains_sync_standby"}));
	EXPECT_EQ(Node(2).assigned, NodeState::Secondary);
	EXPECT_EQ(Node(3).assigned, NodeState::Secondary);
}

TEST_F(Election, DropNodeOfAStandby)
{
	Form(3);
	ExpectError([&] { DropNode(g, "node9", false); }, k42704, "node \"node9\" is not a member");
	auto out = DropNode(g, "node3", false);
	EXPECT_EQ(Apply(out), Strings{"3:secondary->dropped:drop_node"});
	EXPECT_EQ(FindKeeperTransition(NodeState::Secondary, NodeState::Dropped)->action, KeeperAction::Dropped);
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_2)");
	EXPECT_EQ(Proceed(), Strings{"1:primary->apply_settings:settings_changed"});
	ExpectError([&] { DropNode(g, "node3", false); }, k42704, "not a member");
}

TEST_F(Election, DropNodeRefusesNodesTheOperationNeeds)
{
	Form(3);
	KillPrimary();
	ReportLsn(2, 1000);
	ExpectError([&] { DropNode(g, "node2", false); }, k55000, "takes part in an operation");
	/* An old primary in demote_timeout may still write: never dropped, even with force. */
	ExpectError([&] { DropNode(g, "node1", true); }, k55000, "takes part in an operation");
	EXPECT_EQ(Apply(DropNode(g, "node2", true)), Strings{"2:report_lsn->dropped:drop_node"});
	ReportLsn(3, 1000);
	EXPECT_EQ(Proceed(), Strings{}) << "node2 may hold acknowledged commits: the dropped node never counts as stopped";
}

TEST_F(Election, DropNodeOfThePrimarySwitchesOverThenDrops)
{
	Form(3);
	EXPECT_EQ(Apply(DropNode(g, "node1", false)), Strings{"1:primary->draining:drop_node"});
	Node(1).wants_drop = true; /* the caller stores it */
	ExpectError([&] { DropNode(g, "node1", false); }, k55000, "takes part in an operation");
	for (int i = 0; i < 10; i++) {
		ReportAll();
		for (auto &n : g.nodes)
			n.streaming = n.assigned != NodeState::PreparePromotion;
		Proceed();
	}
	EXPECT_EQ(Node(1).assigned, NodeState::Dropped);
	EXPECT_EQ(Node(2).assigned, NodeState::Primary);
	EXPECT_EQ(SynchronousStandbyNames(g), "ANY 1 (pg_autopilot_node_3)");
}

TEST_F(Election, DropNodeOfAnUnhealthyPrimaryFailsOver)
{
	FormPair();
	Node(1).healthy = false;
	Node(2).candidate_priority = 0;
	ExpectError([&] { DropNode(g, "node1", false); }, k55000, "no standby");
	Node(2).candidate_priority = 50;
	EXPECT_EQ(Apply(DropNode(g, "node1", false)),
			  (Strings{"1:primary->demote_timeout:drop_node", "2:secondary->prepare_promotion:drop_node"}));
	Node(1).wants_drop = true;
	Report(2);
	Node(2).streaming = false;
	EXPECT_EQ(Proceed(), Strings{"2:prepare_promotion->stop_replication:promote_candidate"});
	Report(2);
	EXPECT_EQ(Proceed(), (Strings{"2:stop_replication->wait_primary:candidate_promoted",
								  "1:demote_timeout->demoted:candidate_promoted"}));
	EXPECT_EQ(Proceed(), Strings{"1:demoted->dropped:old_primary_dropped"});
	Report(2);
	g.nodes.erase(g.nodes.begin()); /* the monitor deletes the row */
	EXPECT_EQ(Proceed(), Strings{"2:wait_primary->single:last_standby_gone"});
	EXPECT_EQ(Apply(DropNode(g, "node2", false)), Strings{"2:single->dropped:drop_node"});
}

TEST_F(Election, ValidateNumberSyncStandbys)
{
	Form(3);
	GroupView other;
	other.formation = "default";
	other.group_id = 1; /* empty group: no constraint */
	std::vector<GroupView> groups = {g, other};
	EXPECT_EQ(QuorumStandbyCount(g), 2);
	EXPECT_EQ(MaxNumberSyncStandbys(groups), 1);
	EXPECT_EQ(MaxNumberSyncStandbys({other}), INT_MAX);
	ValidateNumberSyncStandbys(groups, 0);
	ValidateNumberSyncStandbys(groups, 1);
	ExpectError([&] { ValidateNumberSyncStandbys(groups, -1); }, k22023, "invalid number_sync_standbys -1");
	ExpectError([&] { ValidateNumberSyncStandbys(groups, 2); }, k55000, "cannot set number_sync_standbys to 2");
	Node(3).replication_quorum = false;
	groups[0] = g;
	ExpectError([&] { ValidateNumberSyncStandbys(groups, 1); }, k55000, "formation default");
	EXPECT_EQ(MaxNumberSyncStandbys(groups), 0);
}

TEST_F(Election, ValidateReplicationQuorumAndCandidatePriority)
{
	Form(3);
	g.number_sync_standbys = 1;
	ExpectError([&] { ValidateReplicationQuorum(g, "node2", false); }, k55000,
				"cannot turn replication_quorum off for node node2 (id 2)");
	ValidateReplicationQuorum(g, "node2", true);
	ValidateReplicationQuorum(g, "node1", false); /* the primary is not its own quorum standby */
	ExpectError([&] { ValidateReplicationQuorum(g, "nope", false); }, k42704, "not a member");
	g.number_sync_standbys = 0;
	ValidateReplicationQuorum(g, "node2", false);

	ValidateCandidatePriority(g, "node2", 0);
	ValidateCandidatePriority(g, "node2", 100);
	ExpectError([&] { ValidateCandidatePriority(g, "node2", 101); }, k22023, "invalid candidate_priority 101");
	ExpectError([&] { ValidateCandidatePriority(g, "node2", -1); }, k22023, "invalid candidate_priority -1");
	ExpectError([&] { ValidateCandidatePriority(g, "nope", 50); }, k42704, "not a member");
}
