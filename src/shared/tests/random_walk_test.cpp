/*
 * src/shared/tests/random_walk_test.cpp — randomized safety check of the
 * monitor's rules and operator requests together (fixed seeds).
 *
 * Each seed is a random walk over a group of two to five nodes: keepers
 * report (or not) with plausible side effects, health flips, time passes,
 * nodes register, the operator calls requests (switchover, failover with or
 * without allow_data_loss, promotion, maintenance, drop_node), the rules
 * run.  After every step: at most one node is assigned a writable state or
 * promotes (stop_replication); every promotion happened while each other
 * node that may still write was proven unable to (independent re-statement
 * of the proofs of docs/elections.md); every election winner was elected
 * with the RPO proof (or allow_data_loss, or number_sync_standbys = 0 with
 * no synchronous names) and has candidate_priority > 0; and each node's
 * (reported, assigned) pair has a keeper row.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "error.hpp"
#include "group_rules.hpp"
#include "keeper_fsm.hpp"

#include "group_fixture.hpp"

using namespace autopilot::fsm;
using namespace autopilot::fsm::testing;
using autopilot::Error;

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

/*
 * ParseAny reads the only form the monitor produces, 'ANY k (pg_autopilot_node_a, ...)',
 * independently of ParseSyncNames; false for anything else (incl. '').
 */
bool
ParseAny(const std::string &v, int *k, std::vector<int64_t> *ids)
{
	ids->clear();
	if (v.rfind("ANY ", 0) != 0)
		return false;
	std::size_t open = v.find(" (");
	if (open == std::string::npos || v.back() != ')')
		return false;
	*k = std::stoi(v.substr(4, open - 4));
	std::stringstream list(v.substr(open + 2, v.size() - open - 3));
	std::string name;
	while (std::getline(list, name, ',')) {
		name.erase(0, name.find_first_not_of(' '));
		ids->push_back(std::stoll(name.substr(std::string("pg_autopilot_node_").size())));
	}
	return true;
}

class RandomWalk : public Group {
  protected:
	std::map<int64_t, bool> proven; /* node was proven unable to write when a candidate was promoted */
	int elections = 0;
	int fast_forwards = 0;
	int drops = 0;
	int64_t next_id = 0;

	bool
	StoppedNode(const NodeView &n)
	{
		bool settled = n.assigned == n.reported;
		return settled && !n.streaming &&
			   (n.assigned == NodeState::ReportLsn || n.assigned == NodeState::FastForward ||
				n.assigned == NodeState::PreparePromotion);
	}

	/* Pigeonhole: for both names, at least m - k + 1 (and 1) of the named nodes are stopped. */
	bool
	Pigeonhole(const NodeView &old)
	{
		for (const std::string &v : {old.applied_sync_names, old.told_sync_names}) {
			int k = 0;
			std::vector<int64_t> ids;
			if (!ParseAny(v, &k, &ids))
				return false;
			int stopped = 0;
			for (int64_t id : ids)
				for (const auto &n : g.nodes)
					if (n.node_id == id && StoppedNode(n))
						stopped++;
			if (stopped < std::max<int>(1, static_cast<int>(ids.size()) - k + 1))
				return false;
		}
		return true;
	}

	/* WalProof: `old` reports a non-writable state and stopped `holder` is not behind it (restated). */
	bool
	WalProof(const NodeView &old, const NodeView &holder)
	{
		bool may_write = IsWritableState(old.reported) || old.reported == NodeState::StopReplication;
		bool behind = holder.timeline != old.timeline ? holder.timeline < old.timeline : holder.lsn < old.lsn;
		return !may_write && StoppedNode(holder) && !behind;
	}

	/* ProofHolds restates the three proofs for node `old` independently of election.cpp. */
	bool
	ProofHolds(const NodeView &old)
	{
		if (!IsWritableState(old.reported) && old.reported != NodeState::StopReplication)
			return true; /* stop_replication is reported once promoted: it writes */
		if (old.assigned == NodeState::DemoteTimeout && old.applied_sync_names.empty() && old.told_sync_names.empty() &&
			old.assigned_age_ms >= g.primary_demote_timeout_ms && old.report_age_ms >= g.primary_demote_timeout_ms)
			return true;
		if (old.assigned == NodeState::Demoted && proven[old.node_id])
			return true;
		return Pigeonhole(old);
	}

	void
	Check(const std::vector<Assignment> &out, const std::string &where)
	{
		for (const auto &a : out) {
			if (a.to == NodeState::StopReplication)
				for (const auto &n : g.nodes)
					/* Dropped: left the group (an old primary only after it was proven and demoted). */
					if (n.node_id != a.node_id && n.assigned != NodeState::Dropped) {
						ASSERT_FALSE(IsWritableState(n.assigned)) << where;
						ASSERT_TRUE(ProofHolds(n))
							<< where << ": " << a.node_id << " promoted while " << n.name << " (assigned "
							<< StateName(n.assigned) << ", reported " << StateName(n.reported) << ") may write";
						/* RPO: a promotion after a failover or an election never loses an acknowledged commit. */
						if (n.assigned == NodeState::DemoteTimeout) {
							bool alone = n.applied_sync_names.empty() || n.told_sync_names.empty();
							ASSERT_TRUE(n.allow_data_loss || (g.number_sync_standbys == 0 && alone) || Pigeonhole(n) ||
										WalProof(n, Node(a.node_id)))
								<< where << ": " << a.node_id << " promoted while a commit of " << n.name
								<< " may be elsewhere";
						}
						proven[n.node_id] = true;
					}
			if (a.from == NodeState::ReportLsn &&
				(a.to == NodeState::PreparePromotion || a.to == NodeState::FastForward)) {
				elections++;
				if (a.to == NodeState::FastForward)
					fast_forwards++;
				const NodeView &w = Node(a.node_id);
				ASSERT_GT(w.candidate_priority, 0) << where;
				ASSERT_FALSE(w.wants_maintenance) << where;
				const NodeView *old = nullptr;
				for (const auto &n : g.nodes)
					if (n.assigned == NodeState::DemoteTimeout)
						old = &n;
				for (const auto &b : out) /* failed in this very call */
					if (b.to == NodeState::DemoteTimeout)
						old = &Node(b.node_id);
				ASSERT_NE(old, nullptr) << where << ": an election without an old primary";
				bool alone = old->applied_sync_names.empty() || old->told_sync_names.empty();
				bool wal = false;
				for (const auto &n : g.nodes)
					wal = wal || (n.assigned == NodeState::ReportLsn && WalProof(*old, n));
				/*
				 * Or the old primary is confirmed down and healthy: the winner
				 * fetches its WAL from it, and the promotion (checked above)
				 * still needs the WAL proof.
				 */
				bool fetch = old->healthy && !IsWritableState(old->reported) &&
							 old->reported != NodeState::StopReplication && old->reported != NodeState::Init;
				ASSERT_TRUE(old->allow_data_loss || (g.number_sync_standbys == 0 && alone) || Pigeonhole(*old) || wal ||
							fetch)
					<< where << ": " << w.name << " elected while a commit of " << old->name << " may be elsewhere";
				/* The winner or its upstream has the most WAL of every participant. */
				for (const auto &n : g.nodes)
					if (n.assigned == NodeState::ReportLsn && n.reported == NodeState::ReportLsn &&
						a.to == NodeState::PreparePromotion) {
						ASSERT_TRUE(n.timeline < w.timeline || (n.timeline == w.timeline && n.lsn <= w.lsn))
							<< where << ": winner " << w.name << " lacks WAL of " << n.name;
					}
			}
		}
	}

	void
	Invariants(const std::string &where)
	{
		int writers = 0;
		for (const auto &n : g.nodes) {
			if (IsWritableState(n.assigned) || n.assigned == NodeState::StopReplication)
				writers++;
			if (IsWritableState(n.assigned))
				proven[n.node_id] = false;
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
		Report(n.node_id);
		switch (n.assigned) {
		case NodeState::PreparePromotion:
		case NodeState::ReportLsn:
			n.streaming = false;
			break;
		case NodeState::FastForward:
			n.streaming = false;
			for (const auto &m : g.nodes)
				if (m.assigned == NodeState::ReportLsn && m.reported == NodeState::ReportLsn &&
					(m.timeline > n.timeline || (m.timeline == n.timeline && m.lsn > n.lsn))) {
					n.timeline = m.timeline;
					n.lsn = m.lsn;
				}
			break;
		case NodeState::StopReplication:
			n.timeline = MaxTimeline() + 1;
			break;
		case NodeState::Secondary:
		case NodeState::Catchingup:
		case NodeState::JoinSecondary: {
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

	/* The monitor glue's bookkeeping of the request flags after each step. */
	void
	GlueFlags()
	{
		bool draining = false;
		for (const auto &n : g.nodes)
			draining = draining || n.assigned == NodeState::Draining;
		for (auto &n : g.nodes) {
			if (n.assigned != NodeState::DemoteTimeout)
				n.allow_data_loss = false;
			if (IsWritableState(n.assigned) || !draining)
				n.promotion_target = false;
		}
		/* A dropped node's row is deleted once its keeper reported dropped. */
		g.nodes.erase(std::remove_if(g.nodes.begin(), g.nodes.end(),
									 [](const NodeView &n) {
										 return n.assigned == NodeState::Dropped && n.reported == NodeState::Dropped;
									 }),
					  g.nodes.end());
	}

	void
	TryRequest(Prng &r)
	{
		const NodeView &pick = g.nodes[r.Below(g.nodes.size())];
		std::string name = pick.name;
		int64_t id = pick.node_id;
		std::vector<Assignment> out;
		int kind = static_cast<int>(r.Below(7));
		bool loss = r.Below(3) == 0;
		try {
			switch (kind) {
			case 0:
				out = Switchover(g);
				break;
			case 1:
				for (auto &n : g.nodes)
					if (IsWritableState(n.assigned))
						n.allow_data_loss = loss;
				out = Failover(g);
				break;
			case 2:
				out = Promotion(g, name);
				break;
			case 3:
				out = EnableMaintenance(g, name);
				break;
			case 4:
				out = DisableMaintenance(g, name);
				break;
			case 5:
				out = DropNode(g, name, r.Below(2) == 0);
				break;
			default:
				if (g.nodes.size() < 5) {
					next_id++;
					Assignment a = InitialState(g, next_id, "node" + std::to_string(next_id));
					NodeView n;
					n.node_id = a.node_id;
					n.name = "node" + std::to_string(a.node_id);
					n.assigned = a.to;
					n.timeline = 1;
					g.nodes.push_back(n);
				}
				return;
			}
		} catch (const Error &e) {
			ASSERT_TRUE(std::string(e.sqlstate()) == "55000" || std::string(e.sqlstate()) == "42704") << e.what();
			for (auto &n : g.nodes)
				n.allow_data_loss = false;
			return;
		}
		for (const auto &a : out) {
			EXPECT_NE(std::find(kRequestEdges.begin(), kRequestEdges.end(), std::make_pair(a.from, a.to)),
					  kRequestEdges.end())
				<< a.rule << ": " << StateName(a.from) << " -> " << StateName(a.to) << " is not in kRequestEdges";
		}
		Apply(out);
		if (kind == 2 && !out.empty())
			Node(id).promotion_target = true;
		if (kind == 3)
			Node(id).wants_maintenance = true;
		if (kind == 4)
			Node(id).wants_maintenance = false;
		if (kind == 5 && Node(id).assigned != NodeState::Dropped) {
			Node(id).wants_drop = true;
			drops++;
		}
		if (kind == 5 && Node(id).assigned == NodeState::Dropped)
			drops++;
	}
};

} // namespace

TEST_F(RandomWalk, NeverTwoWritersNorAnUnprovenPromotionNorALostCommit)
{
	int promotions = 0;
	for (uint64_t seed = 1; seed <= 600; seed++) {
		g.nodes.clear();
		proven.clear();
		g.number_sync_standbys = static_cast<int>(seed % 2);
		int64_t size = 2 + static_cast<int64_t>(seed % 4); /* 2..5 nodes */
		FormGroup(size);
		if (::testing::Test::HasFatalFailure())
			return;
		next_id = size;
		Prng r{seed};
		for (int step = 0; step < 250; step++) {
			std::string where = "seed " + std::to_string(seed) + " step " + std::to_string(step);
			if (g.nodes.empty())
				break;
			NodeView &n = g.nodes[r.Below(g.nodes.size())];
			switch (r.Below(11)) {
			case 0:
			case 1:
				n.healthy = !n.healthy;
				break;
			case 2:
			case 3:
			case 4:
			case 5:
				if (n.healthy)
					KeeperReports(n, r);
				break;
			case 6:
				for (auto &m : g.nodes) {
					uint64_t dt = r.Below(g.primary_demote_timeout_ms / 2);
					m.assigned_age_ms += dt;
					m.report_age_ms = m.report_age_ms > UINT64_MAX - dt ? UINT64_MAX : m.report_age_ms + dt;
				}
				break;
			case 7:
				n.streaming =
					n.assigned != NodeState::PreparePromotion && n.assigned != NodeState::ReportLsn && r.Below(2) == 0;
				break;
			case 8:
				TryRequest(r);
				break;
			default:
				break;
			}
			if (::testing::Test::HasFatalFailure())
				return;
			auto out = ProceedGroup(g);
			Check(out, where);
			Apply(out);
			GlueFlags();
			for (const auto &a : out)
				if (a.to == NodeState::StopReplication)
					promotions++;
			Invariants(where);
			if (::testing::Test::HasFatalFailure())
				return;
		}
	}
	EXPECT_GT(promotions, 300) << "the walk exercises promotions";
	EXPECT_GT(elections, 50) << "the walk exercises elections";
	EXPECT_GT(fast_forwards, 5) << "the walk exercises fast_forward";
	EXPECT_GT(drops, 50) << "the walk exercises drop_node";
}
