/*
 * src/shared/election.cpp — the failover half of the monitor's rules: the
 * proofs (QuorumReported, CannotWrite), primary_failed, the election of
 * docs/elections.md (report_lsn → winner → fast_forward → promotion, losers
 * join the new primary) and promote_candidate (pure zone).
 *
 * Safety in one line (docs/elections.md): nothing is promoted until the old
 * primary cannot write (CannotWrite), and nothing is elected until every
 * acknowledged commit is on a participant (QuorumReported), or the operator
 * explicitly allowed data loss.  The predicates are rows of kGroupRules in
 * group_rules.cpp; they read the working copy of the group (Ctx) and never
 * modify it.  No server headers; nothing here throws but std::bad_alloc.
 */
#include <algorithm>
#include <cctype>
#include <set>

#include "group_rules.hpp"
#include "group_rules_internal.hpp"
#include "lsn.hpp"

namespace autopilot::fsm {

namespace detail {

namespace {

std::string
Position(const NodeView &n)
{
	return "timeline " + std::to_string(n.timeline) + " lsn " + lsn::FormatLsn(n.lsn);
}

/* Ahead: a's (timeline, lsn) is beyond b's — it holds WAL b lacks. */
bool
Ahead(const NodeView &a, const NodeView &b)
{
	return a.timeline != b.timeline ? a.timeline > b.timeline : a.lsn > b.lsn;
}

/* A node that takes part in an operation as its chosen candidate: no new winner while one exists. */
bool
IsChosenCandidate(NodeState s)
{
	return s == S::PreparePromotion || s == S::StopReplication || s == S::FastForward;
}

bool
AnyChosenCandidate(const std::vector<NodeView> &nodes)
{
	return std::any_of(nodes.begin(), nodes.end(), [](const NodeView &n) { return IsChosenCandidate(n.assigned); });
}

/* The old primary of an election: the first node assigned demote_timeout (a switchover drains instead). */
const NodeView *
ElectionOldPrimary(const std::vector<NodeView> &nodes)
{
	for (const auto &n : nodes)
		if (n.assigned == S::DemoteTimeout)
			return &n;
	return nullptr;
}

/*
 * MostAdvancedParticipant: among participants (settled report_lsn), the
 * highest (timeline, lsn), lowest id among equals; nullptr when none.
 * Unhealthy participants count: their WAL is on their disk, and the
 * acknowledged commits may be there only (QuorumReported counts them too).
 */
const NodeView *
MostAdvancedParticipant(const std::vector<NodeView> &nodes)
{
	const NodeView *best = nullptr;
	for (const auto &n : nodes)
		if (Settled(n, S::ReportLsn) && (best == nullptr || Ahead(n, *best)))
			best = &n; /* nodes are sorted by id: ties keep the lowest id */
	return best;
}

/*
 * ConfirmedDownSource: the old primary of an election (assigned
 * demote_timeout) when a node can fetch WAL from it: it reports a
 * non-writable state (its keeper demoted it cleanly: it runs as a standby
 * without upstream, at the end of its WAL, and serves WAL to a cascading
 * walreceiver) and it is healthy.  nullptr otherwise.
 */
const NodeView *
ConfirmedDownSource(const std::vector<NodeView> &nodes)
{
	const NodeView *old = ElectionOldPrimary(nodes);
	if (old == nullptr || MayWrite(old->reported) || old->reported == S::Init || !old->healthy)
		return nullptr;
	return old;
}

/*
 * FetchSource: the node a winner (or candidate) `node` in fast_forward
 * streams from: the confirmed-down old primary when it is ahead of every
 * participant (or, without participants, not behind `node`: it stays the
 * source once `node` caught up, until `node` reports) — it holds every
 * record it wrote, acknowledged or not, and fetching them all spares it a
 * rewind —, else the most advanced participant; nullptr when neither.
 */
const NodeView *
FetchSource(const std::vector<NodeView> &nodes, const NodeView &node)
{
	const NodeView *top = MostAdvancedParticipant(nodes);
	const NodeView *old = ConfirmedDownSource(nodes);
	if (old != nullptr && old->node_id != node.node_id && (top == nullptr ? !Ahead(node, *old) : Ahead(*old, *top)))
		return old;
	return top;
}

/* The outcome of an election, when one can be decided now. */
struct Election {
	const NodeView *old = nullptr;
	const NodeView *most_advanced = nullptr;
	const NodeView *source = nullptr; /* what the winner must hold: most_advanced, or the confirmed-down old primary */
	const NodeView *winner = nullptr;
	std::string rpo; /* why no acknowledged commit is lost, for the event */
};

/*
 * DecideElection: the election can be decided (docs/elections.md step 3)
 * when no node may write or was chosen yet, an old primary is in
 * demote_timeout, every healthy standby takes part (election_report_lsn
 * moved it) and every healthy node assigned report_lsn has reported it,
 * the RPO proof holds (QuorumReported; or the old primary ran without
 * synchronous standbys and number_sync_standbys = 0; or the operator forced
 * the failover with allow_data_loss), an eligible participant exists, and
 * the most advanced participant is within promote_lag_threshold of the old
 * primary's last reported LSN (not checked with allow_data_loss).
 */
bool
DecideElection(const Ctx &ctx, Election *e)
{
	if (ctx.primary != nullptr || AnyChosenCandidate(ctx.nodes))
		return false;
	e->old = ElectionOldPrimary(ctx.nodes);
	if (e->old == nullptr)
		return false;
	for (const auto &n : ctx.nodes) {
		if (n.assigned == S::ReportLsn && n.healthy && n.reported != S::ReportLsn)
			return false; /* a slow but healthy participant is waited for */
		bool standby = n.reported == S::Secondary || n.reported == S::Catchingup;
		if (n.healthy && standby && (n.assigned == S::Secondary || n.assigned == S::Catchingup))
			return false; /* election_report_lsn has yet to move it: every reachable standby takes part */
	}
	const NodeView &old = *e->old;
	e->most_advanced = MostAdvancedParticipant(ctx.nodes);
	if (e->most_advanced == nullptr)
		return false;
	e->source = ConfirmedDownSource(ctx.nodes);
	if (e->source != nullptr && Ahead(*e->source, *e->most_advanced)) {
		/* The winner fetches every record of the old primary: nothing it wrote is lost, whatever the lag. */
		e->rpo = "it reports " + std::string(StateName(old.reported)) + " at " + Position(old) +
				 " and the winner fetches all of its WAL from it";
	} else {
		e->source = e->most_advanced;
		if (!RpoProof(ctx, old, e->most_advanced, &e->rpo))
			return false;
		if (!old.allow_data_loss &&
			lsn::LagBytes(old.lsn, e->most_advanced->lsn) > ctx.group.promote_lag_threshold_bytes)
			return false;
	}
	/*
	 * Candidates on the source's timeline first: one on an older timeline
	 * can fetch the source's WAL only if its own ends before the fork, which
	 * the monitor cannot see; one that went past it is rewound onto the
	 * source by its keeper in fast_forward (simulator seeds 9271, 13126),
	 * which costs a restart.  It wins only when no candidate is on that
	 * timeline (seed 19122: the old primary promoted itself back).
	 */
	for (bool same_timeline : {true, false}) {
		for (const auto &n : ctx.nodes) {
			if (!Settled(n, S::ReportLsn) || !n.healthy || n.candidate_priority <= 0 || n.wants_maintenance ||
				n.wants_drop || (same_timeline && n.timeline != e->source->timeline))
				continue;
			const NodeView *w = e->winner;
			if (w == nullptr || n.candidate_priority > w->candidate_priority ||
				(n.candidate_priority == w->candidate_priority && Ahead(n, *w)))
				e->winner = &n; /* ties keep the lowest id */
		}
		if (e->winner != nullptr)
			return true;
	}
	return false;
}

} // namespace

bool
Stopped(const NodeView &n)
{
	return (Settled(n, S::ReportLsn) || Settled(n, S::FastForward) || Settled(n, S::PreparePromotion)) && !n.streaming;
}

/*
 * QuorumReportedIn: for both the applied and the told names of `old`, at
 * least m − k + 1 of the m named standbys are stopped (pigeonhole: a commit
 * acknowledged under `ANY k` is on k of them, so on a stopped one; and the
 * fewer than k that still run cannot acknowledge a new commit).  Names that
 * are not pg_autopilot_node_<id> count as members that never stop.  At least
 * one stopped node is always required.
 */
bool
QuorumReportedIn(const std::vector<NodeView> &nodes, const NodeView &old, std::string *why)
{
	for (const std::string *value : {&old.applied_sync_names, &old.told_sync_names}) {
		const char *which = value == &old.applied_sync_names ? "applied" : "told";
		if (value->empty()) {
			*why = "its " + std::string(which) + " synchronous_standby_names is empty: it acknowledged commits alone";
			return false;
		}
		int k = 0;
		int others = 0;
		std::vector<int64_t> ids;
		if (!ParseSyncNames(*value, &k, &ids, &others)) {
			*why = "its " + std::string(which) + " synchronous_standby_names '" + *value + "' cannot be parsed";
			return false;
		}
		int members = static_cast<int>(ids.size()) + others;
		int stopped = 0;
		for (int64_t id : ids)
			for (const auto &n : nodes)
				if (n.node_id == id && n.node_id != old.node_id && Stopped(n))
					stopped++;
		int need = std::max(1, members - k + 1);
		if (stopped < need) {
			*why = std::to_string(stopped) + " of the " + std::to_string(members) + " standbys of its " + which + " '" +
				   *value + "' stopped, " + std::to_string(need) + " needed";
			return false;
		}
	}
	return true;
}

/*
 * SyncSinceCovered: some stopped node other than `old` is on old's timeline
 * at or past old.sync_since_lsn, the LSN of the first report in which old's
 * current applied names took effect.  Commits old acknowledged before that
 * ran under other names (or alone, e.g. in wait_primary before
 * primary_gains_sync_standby) and the pigeonhole over the current names
 * does not cover them; WAL is sequential, so such a node holds every one of
 * them (the election winner then fast-forwards to the most advanced
 * participant as usual).  0 (names '' or never reported) asks nothing more
 * than QuorumReportedIn's stopped node.
 */
bool
SyncSinceCovered(const std::vector<NodeView> &nodes, const NodeView &old, std::string *why)
{
	for (const auto &n : nodes)
		if (n.node_id != old.node_id && Stopped(n) && n.timeline == old.timeline && n.lsn >= old.sync_since_lsn)
			return true;
	*why = "no stopped node on its timeline " + std::to_string(old.timeline) + " has reached " +
		   lsn::FormatLsn(old.sync_since_lsn) + ", where its synchronous_standby_names took effect";
	return false;
}

/*
 * RpoProof: no commit old primary `old` acknowledged can be lost by
 * promoting a node that stopped streaming from it (docs/elections.md, the
 * same test for the two-node path and the election): QuorumReported (its
 * applied and told names, pigeonhole over the stopped nodes); or the WAL
 * proof: `old` reports a state in which it cannot write (its keeper
 * demoted it: it runs in recovery and reports the end of its WAL) and
 * `holder` — the candidate, or the most advanced election participant,
 * stopped — is not behind it in (timeline, lsn), so it holds every record
 * `old` ever wrote (the applied and told names of a node in recovery are
 * '' and say nothing any more); or
 * number_sync_standbys = 0 and it ran, or was told to run, without
 * synchronous standbys (the user chose availability: commits it
 * acknowledged alone may be lost); or the operator allowed data loss.  On
 * true *why says which, on false what is missing.
 */
bool
RpoProof(const Ctx &ctx, const NodeView &old, const NodeView *holder, std::string *why)
{
	std::string missing;
	if (QuorumReportedIn(ctx.nodes, old, &missing) && SyncSinceCovered(ctx.nodes, old, &missing))
		*why = "every commit it acknowledged is on a participant";
	else if (holder != nullptr && !MayWrite(old.reported) && Stopped(*holder) && !Ahead(old, *holder))
		*why = "it reports " + std::string(StateName(old.reported)) + " at " + Position(old) + " and " +
			   Label(*holder) + " has all of its WAL (" + Position(*holder) + ")";
	else if (ctx.group.number_sync_standbys == 0 && (old.applied_sync_names.empty() || old.told_sync_names.empty()))
		*why = "it ran without synchronous standbys and number_sync_standbys is 0 (commits it acknowledged alone "
			   "may be lost)";
	else if (old.allow_data_loss)
		*why = "the operator allowed data loss (" + missing + ")";
	else {
		*why = missing;
		return false;
	}
	return true;
}

/*
 * CannotWrite tells whether old primary `old` (assigned draining or
 * demote_timeout) provably can no longer acknowledge a commit; on true `why`
 * names the proof (docs/failover.md, docs/elections.md):
 *
 * 1. confirmed down: it reports a state in which it cannot write (MayWrite)
 *    — its keeper demoted it or restarted it as a standby.
 * 2. sync proof: QuorumReported holds for its applied and told names (the
 *    keeper runs one or the other, whatever its state: primary,
 *    apply_settings, or told wait_primary, whose names '' never prove
 *    anything): fewer than k named standbys still run, so no commit can be
 *    acknowledged.  Stopped standbys cleared primary_conninfo and do not
 *    reconnect.
 * 3. timeout: it is assigned demote_timeout, its applied and told names
 *    are both '' and neither its last report nor the assignment is more
 *    recent than primary_demote_timeout_ms (min(report_age_ms,
 *    assigned_age_ms) >= it).  The keeper of a primary whose names are ''
 *    counts only the monitor as contact (docs/failover.md "Self-fencing"),
 *    and primary_demote_timeout exceeds fence_timeout plus the node_active
 *    deadline: an isolated primary has fenced itself by then, and one that
 *    still reports is not isolated (it demotes itself and reports a
 *    non-writable state: proof 1).  With names set, a quorum of streaming
 *    standbys the monitor cannot see keeps the keeper from fencing, so the
 *    time proves nothing: only proofs 1 and 2 apply.
 */
bool
CannotWrite(const Ctx &ctx, const NodeView &old, std::string *why)
{
	if (!MayWrite(old.reported)) {
		*why = "it reports " + std::string(StateName(old.reported));
		return true;
	}
	std::string missing;
	if (QuorumReportedIn(ctx.nodes, old, &missing)) {
		*why = "it was a synchronous primary and too few of its synchronous standbys stream from it to acknowledge a "
			   "commit";
		return true;
	}
	uint64_t quiet_ms = std::min(old.report_age_ms, old.assigned_age_ms);
	if (old.assigned == S::DemoteTimeout && old.applied_sync_names.empty() && old.told_sync_names.empty() &&
		quiet_ms >= ctx.group.primary_demote_timeout_ms) {
		*why = "it ran without synchronous standbys and has neither reported nor been reassigned for " +
			   std::to_string(quiet_ms) + " ms in demote_timeout, at least the " +
			   std::to_string(ctx.group.primary_demote_timeout_ms) + " ms of primary_demote_timeout";
		return true;
	}
	return false;
}

/*
 * primary_failed: the primary (assigned primary, apply_settings, or
 * wait_primary when number_sync_standbys = 0) is unhealthy and a candidate
 * qualifies (BestCandidate within promote_lag_threshold_bytes of its last
 * reported LSN, healthy for at least node_timeout: when the monitor itself
 * was cut off, every node looked unhealthy, and right after the heal the
 * first standby to report must not fail over a healthy primary that has
 * not reported yet; a standby that has reported all along qualifies at
 * once).  The primary goes to demote_timeout (its keeper, if it
 * still runs and reaches us, demotes it).  With exactly one standby that
 * candidate moves too (prepare_promotion: it stops streaming), as in
 * docs/failover.md; with two or more no peer moves and the election rules
 * choose the winner.
 *
 * Not while the primary is `restarting` (a planned restart keeps its role
 * until restart_grace lapses).  Never from wait_primary with
 * number_sync_standbys ≥ 1: it acknowledged commits alone, which its
 * standbys may lack (DESIGN §6.2); perform_failover(allow_data_loss) can.
 */
bool
PrimaryFailed(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (node.healthy || node.restarting)
		return false;
	if (node.assigned == S::WaitPrimary && ctx.group.number_sync_standbys >= 1)
		return false;
	const NodeView *c =
		BestCandidate(ctx.nodes, node, &ctx.group.promote_lag_threshold_bytes, ctx.group.node_timeout_ms);
	if (c == nullptr)
		return false;
	uint64_t lag = lsn::LagBytes(node.lsn, c->lsn);
	if (Standbys(ctx.nodes, node) >= 2) {
		fire->description = "primary " + Label(node) + " is unhealthy: it must stop writing, its standbys elect a " +
							"new primary (" + Label(*c) + " could win, " + std::to_string(lag) + " bytes behind)";
		return true;
	}
	fire->description = "primary " + Label(node) + " is unhealthy: it must stop writing, " + Label(*c) + " (" +
						std::to_string(lag) + " bytes behind) prepares its promotion";
	fire->peer = c;
	fire->peer_description = Label(*c) + " is the candidate of unhealthy primary " + Label(node) +
							 ": it stops streaming and prepares its promotion";
	return true;
}

/*
 * election_report_lsn: an old primary is in demote_timeout, no node may
 * write and no candidate was chosen yet (the two-node path chose one with
 * primary_failed): every healthy secondary or catching-up standby stops
 * streaming and reports its final LSN.  A standby that becomes healthy later
 * joins the same way while no winner exists.
 */
bool
ElectionReportLsn(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!node.healthy || ctx.primary != nullptr || AnyChosenCandidate(ctx.nodes))
		return false;
	/*
	 * Its keeper must run as a streaming standby (not still cloning, in
	 * maintenance or demoted): until it reports secondary or catchingup it is
	 * simply not stopped, which QuorumReported accounts for.
	 */
	if (node.reported != S::Secondary && node.reported != S::Catchingup)
		return false;
	const NodeView *old = ElectionOldPrimary(ctx.nodes);
	if (old == nullptr)
		return false;
	fire->description = "old primary " + Label(*old) + " is in demote_timeout: " + Label(node) +
						" stops streaming and reports its last LSN for the election";
	return true;
}

/* election_winner (→ prepare_promotion): the winner has the most advanced WAL of the participants. */
bool
ElectionWinnerPromotes(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	Election e;
	if (!DecideElection(ctx, &e) || e.winner->node_id != node.node_id || Ahead(*e.source, node))
		return false;
	fire->description = Label(node) + " wins the election after old primary " + Label(*e.old) + " (" + e.rpo +
						"), with the most advanced WAL (" + Position(node) + "): it prepares its promotion";
	return true;
}

/* election_winner (→ fast_forward): the winner lacks WAL the most advanced participant has. */
bool
ElectionWinnerFastForwards(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	Election e;
	if (!DecideElection(ctx, &e) || e.winner->node_id != node.node_id || !Ahead(*e.source, node))
		return false;
	fire->description = Label(node) + " wins the election after old primary " + Label(*e.old) + " (" + e.rpo +
						"), but " + Label(*e.source) + " is ahead (" + Position(*e.source) + " against " +
						Position(node) + "): it fetches the missing WAL first";
	return true;
}

/*
 * fast_forward_done: the winner (or the candidate of candidate_fetches_wal)
 * fetched the missing WAL (settled fast_forward, not streaming, its
 * FetchSource is not ahead of it) and no node may write: it prepares its
 * promotion like a winner that had everything.  When the confirmed-down
 * old primary it fetched from turns unhealthy meanwhile, the source falls
 * back to the participants; promote_candidate then needs another RPO proof
 * or candidate_fetches_wal sends it back once the old primary is healthy.
 */
bool
FastForwardDone(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::FastForward) || node.streaming || ctx.primary != nullptr)
		return false;
	const NodeView *source = FetchSource(ctx.nodes, node);
	if (source != nullptr && Ahead(*source, node))
		return false;
	fire->description =
		Label(node) + " fetched the missing WAL (" + Position(node) + ") and stopped: it prepares its promotion";
	return true;
}

/*
 * promote_candidate: the candidate stopped replication (settled
 * prepare_promotion) and may now be promoted: no node is assigned a writable
 * state, and every old primary still assigned draining or demote_timeout
 * provably cannot write (CannotWrite); for one in demote_timeout (a failover
 * or an election) the RPO proof must hold too (RpoProof: a primary that ran
 * with names '' acknowledged commits alone, which the candidate may lack).
 * A switchover's draining old primary needs no RPO proof: the candidate was
 * chosen once it had all its WAL (switchover_candidate_has_all_wal).  Old
 * primaries already assigned demoted were proven earlier.
 */
bool
PromoteCandidate(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::PreparePromotion) || ctx.primary != nullptr)
		return false;
	/*
	 * A participant that reported after the election (it came back) holds
	 * WAL the candidate lacks: the quorum proof counts it, so the candidate
	 * must have it too — candidate_fetches_wal sends it to fetch it first
	 * (simulator seed 61954).
	 */
	const NodeView *top = MostAdvancedParticipant(ctx.nodes);
	if (top != nullptr && Ahead(*top, node))
		return false;
	std::string proofs;
	for (const auto &n : ctx.nodes) {
		if (n.node_id == node.node_id || (n.assigned != S::Draining && n.assigned != S::DemoteTimeout))
			continue;
		std::string why;
		if (!CannotWrite(ctx, n, &why))
			return false;
		proofs += "; old primary " + Label(n) + " cannot write: " + why;
		if (n.assigned == S::DemoteTimeout) {
			if (!RpoProof(ctx, n, &node, &why))
				return false;
			proofs += "; no commit it acknowledged is lost: " + why;
		}
	}
	fire->description = Label(node) + " stopped replication and no node can write" + proofs + ": it is promoted";
	return true;
}

/*
 * candidate_fetches_wal (prepare_promotion → fast_forward): a participant
 * that reported after the election is ahead of the candidate (it fetches
 * from FetchSource, promote_candidate waits); or the candidate
 * stopped replication but promote_candidate cannot promote it because no
 * RPO proof holds, while the old primary is confirmed down (it reports a
 * non-writable state after its clean demotion), healthy and ahead of the
 * candidate: the candidate streams the missing WAL from it
 * (FastForwardUpstream names it), then fast_forward_done brings it back to
 * prepare_promotion, where the WAL proof holds.  The two-node path has no
 * other way to get that WAL (simulator seeds 150, 15).
 */
bool
CandidateFetchesWal(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::PreparePromotion) || node.streaming || ctx.primary != nullptr)
		return false;
	const NodeView *top = MostAdvancedParticipant(ctx.nodes);
	if (top != nullptr && Ahead(*top, node)) {
		fire->description = "participant " + Label(*top) + " reported " + Position(*top) + ", ahead of candidate " +
							Label(node) + " (" + Position(node) + "): the candidate fetches the missing WAL first";
		return true;
	}
	const NodeView *old = ConfirmedDownSource(ctx.nodes);
	if (old == nullptr || !Ahead(*old, node))
		return false;
	std::string why;
	if (RpoProof(ctx, *old, &node, &why))
		return false;
	fire->description = "old primary " + Label(*old) + " reports " + StateName(old->reported) + " at " +
						Position(*old) + ", ahead of candidate " + Label(node) + " (" + Position(node) +
						"), and no other proof keeps its commits (" + why + "): the candidate fetches its WAL";
	return true;
}

/* election_loser_joins: the new primary runs; a participant that did not win follows it. */
bool
ElectionLoserJoins(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::ReportLsn) || !NewPrimaryReady(ctx))
		return false;
	fire->description = "election over: " + Label(node) + " follows new primary " + Label(*ctx.primary);
	return true;
}

} // namespace detail

bool
ParseSyncNames(const std::string &value, int *k, std::vector<int64_t> *ids, int *others)
{
	std::size_t i = 0;
	const std::size_t n = value.size();
	auto skip_space = [&] {
		while (i < n && std::isspace(static_cast<unsigned char>(value[i])))
			i++;
	};
	auto is_ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; };
	auto lower = [](std::string s) {
		for (auto &c : s)
			c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
		return s;
	};

	ids->clear();
	*others = 0;
	*k = 1;
	skip_space();
	if (i == n)
		return false;

	/* Optional "ANY k (" / "FIRST k (" / "k (": otherwise a plain list (FIRST 1). */
	bool parens = false;
	std::size_t save = i;
	std::size_t word_end = i;
	while (word_end < n && std::isalpha(static_cast<unsigned char>(value[word_end])))
		word_end++;
	std::string word = lower(value.substr(i, word_end - i));
	if (word == "any" || word == "first") {
		i = word_end;
		skip_space();
		if (i == n || !std::isdigit(static_cast<unsigned char>(value[i])))
			i = save; /* a standby named "any": plain list */
	}
	if (i < n && std::isdigit(static_cast<unsigned char>(value[i]))) {
		std::size_t digits = i;
		while (digits < n && std::isdigit(static_cast<unsigned char>(value[digits])))
			digits++;
		std::size_t after = digits;
		while (after < n && std::isspace(static_cast<unsigned char>(value[after])))
			after++;
		if (after < n && value[after] == '(') {
			if (digits - i > 6)
				return false;
			*k = std::stoi(value.substr(i, digits - i));
			if (*k < 1)
				return false;
			i = after + 1;
			parens = true;
		} else if (i != save) {
			return false; /* "ANY 2" without a list */
		} else {
			i = save; /* a plain list whose first name starts with a digit */
		}
	} else if (i != save) {
		return false;
	}

	std::set<int64_t> seen;
	const std::string prefix = "pg_autopilot_node_";
	for (;;) {
		skip_space();
		std::string name;
		bool quoted = false;
		if (i < n && value[i] == '"') {
			quoted = true;
			i++;
			for (;;) {
				if (i == n)
					return false;
				if (value[i] == '"') {
					if (i + 1 < n && value[i + 1] == '"') {
						name += '"';
						i += 2;
						continue;
					}
					i++;
					break;
				}
				name += value[i++];
			}
		} else {
			while (i < n && is_ident(value[i]))
				name += value[i++];
			name = lower(name);
		}
		if (name.empty() && !quoted)
			return false; /* '*', an empty element or garbage */
		bool ours = name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
					name.size() - prefix.size() <= 18 &&
					std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
								[](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
		if (ours) {
			int64_t id = std::stoll(name.substr(prefix.size()));
			if (seen.insert(id).second)
				ids->push_back(id);
		} else {
			(*others)++;
		}
		skip_space();
		if (i < n && value[i] == ',') {
			i++;
			continue;
		}
		break;
	}
	if (parens) {
		if (i == n || value[i] != ')')
			return false;
		i++;
		skip_space();
	}
	return i == n;
}

bool
QuorumReported(const GroupView &group, int64_t old_primary_id)
{
	std::vector<NodeView> nodes = detail::SortedNodes(group);
	std::size_t at = detail::IndexOf(nodes, old_primary_id);
	if (at == nodes.size())
		return false;
	std::string why;
	return detail::QuorumReportedIn(nodes, nodes[at], &why) && detail::SyncSinceCovered(nodes, nodes[at], &why);
}

bool
FastForwardUpstream(const GroupView &group, int64_t node_id, int64_t *upstream_id, uint64_t *upstream_lsn)
{
	std::vector<NodeView> nodes = detail::SortedNodes(group);
	std::size_t at = detail::IndexOf(nodes, node_id);
	if (at == nodes.size() || nodes[at].assigned != NodeState::FastForward)
		return false;
	const NodeView *source = detail::FetchSource(nodes, nodes[at]);
	if (source == nullptr || source->node_id == node_id)
		return false;
	*upstream_id = source->node_id;
	*upstream_lsn = source->lsn;
	return true;
}

} // namespace autopilot::fsm
