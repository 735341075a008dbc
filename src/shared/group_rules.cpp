/*
 * src/shared/group_rules.cpp — the monitor's group rules as data, and the
 * operator requests of docs/failover.md (pure zone).
 *
 * kGroupRules holds one row per rule: {name, from, to, peer_from, peer_to,
 * predicate, description, peer description}.  `from` is the assigned state
 * of the node the rule moves; ProceedGroup tries the rows in order for every
 * node whose assigned state equals `from`, first match wins, and repeats
 * until nothing fires (each node moves at most once per call).  A row may
 * also move one second node, its peer (peer_from → peer_to; S::Init = no
 * peer): the predicate names the peer, and both moves carry the rule's name.
 * That keeps two-node steps (primary_failed moves the primary and its
 * candidate) atomic: both assignments come out of the same call.
 *
 * A rule generally fires only once the node it waits for has reported its
 * assigned state (reported == assigned, "settled"); rules driven by health
 * verdicts are the exception.  Safety (DESIGN.md §6): a node is only ever
 * told to become writable (prepare_promotion → stop_replication, the keeper
 * promotes) when no node is assigned a writable state and every old primary
 * still in draining/demote_timeout is proven unable to acknowledge a commit
 * (PromoteCandidate); rules that exist for the primary's quorum bookkeeping
 * (standby_lost, standby_caught_up) only fire while a writable primary
 * exists, so they never disturb an operation in progress.
 *
 * Every (from, to) a rule or request produces has a row in the keeper's
 * table (keeper_fsm.cpp); the unit tests check it.  No server headers;
 * throws autopilot::Error on an inconsistent view (two writable primaries),
 * from InitialState when there is no primary to follow, and from the
 * operator requests when they are refused (nothing is assigned then).
 * Tables are constexpr arrays; vectors handed out are built once and never
 * freed (no static object with a destructor).
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

/* What a predicate decided: the event text, and the second node the row moves (if the row has a peer). */
struct Firing {
	std::string description;
	const NodeView *peer = nullptr;
	std::string peer_description;
};

/* A predicate decides whether its rule moves `node`; on true it fills `fire`. */
using Predicate = bool (*)(const Ctx &ctx, const NodeView &node, Firing *fire);

struct GroupRule {
	const char *name;
	NodeState from;
	NodeState to;
	NodeState peer_from; /* S::Init: the row moves no peer */
	NodeState peer_to;
	Predicate when;
	const char *description;
	const char *peer_description;
};

constexpr NodeState kNoPeer = S::Init;

std::string
Label(const NodeView &n)
{
	return n.name + " (id " + std::to_string(n.node_id) + ")";
}

std::string
GroupLabel(const GroupView &g)
{
	return "group " + std::to_string(g.group_id) + " of formation " + g.formation;
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
OtherMembers(const std::vector<NodeView> &nodes, const NodeView &self)
{
	int count = 0;
	for (const auto &n : nodes)
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
						GroupLabel(group) + " has two primaries: " + Label(*primary) + " and " + Label(n),
						"Both nodes are assigned a writable state.");
		primary = &n;
	}
	return primary;
}

/*
 * IsCandidate: `n` may take over from `primary` — a settled, healthy
 * secondary on the primary's timeline, candidate_priority > 0, and the
 * operator did not ask for its maintenance.  Lag is checked by the callers
 * (a switchover waits for all WAL, a failover has a threshold).
 */
bool
IsCandidate(const NodeView &n, const NodeView &primary)
{
	return n.node_id != primary.node_id && Settled(n, S::Secondary) && n.healthy && n.candidate_priority > 0 &&
		   !n.wants_maintenance && n.timeline == primary.timeline;
}

/*
 * BestCandidate is the candidate to take over from `primary`: highest
 * candidate_priority, then most advanced LSN, then lowest node id; nullptr
 * when no node qualifies (IsCandidate and, when max_lag is set, at most that
 * many bytes behind the primary's last reported LSN).
 */
const NodeView *
BestCandidate(const std::vector<NodeView> &nodes, const NodeView &primary, const uint64_t *max_lag)
{
	const NodeView *best = nullptr;
	for (const auto &n : nodes) {
		if (!IsCandidate(n, primary))
			continue;
		if (max_lag != nullptr && lsn::LagBytes(primary.lsn, n.lsn) > *max_lag)
			continue;
		if (best == nullptr || n.candidate_priority > best->candidate_priority ||
			(n.candidate_priority == best->candidate_priority && n.lsn > best->lsn))
			best = &n; /* nodes are sorted by id: ties keep the lowest id */
	}
	return best;
}

/* standby_joined: the primary runs alone and a new node waits to follow it. */
bool
StandbyJoined(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::Single))
		return false;
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && n.assigned == S::WaitStandby) {
			fire->description =
				Label(n) + " registered as wait_standby: primary " + Label(node) + " prepares replication";
			return true;
		}
	return false;
}

/* last_standby_gone: every standby was removed; the primary has nobody to prepare for. */
bool
LastStandbyGone(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::WaitPrimary) || OtherMembers(ctx.nodes, node) != 0)
		return false;
	fire->description = Label(node) + " is the only node left in " + GroupLabel(ctx.group) + ": it runs as single";
	return true;
}

/* primary_gains_sync_standby: a healthy quorum standby reported secondary. */
bool
PrimaryGainsSyncStandby(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::WaitPrimary))
		return false;
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && IsHealthyQuorumSecondary(n) && n.reported == S::Secondary) {
			fire->description = Label(n) + " is a healthy quorum secondary: primary " + Label(node) +
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
 * commit that only one node has).  Its `from` is primary, so it never
 * touches a primary that is draining or in demote_timeout.
 */
bool
PrimaryLosesSyncStandby(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (node.assigned != S::Primary || ctx.group.number_sync_standbys != 0)
		return false;
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && IsHealthyQuorumSecondary(n))
			return false;
	fire->description = "no healthy quorum secondary left and number_sync_standbys is 0: primary " + Label(node) +
						" disables synchronous replication";
	return true;
}

/*
 * primary_failed: the primary (assigned primary or wait_primary) is
 * unhealthy and a candidate qualifies (IsCandidate, within
 * promote_lag_threshold_bytes of the primary's last reported LSN).  The
 * primary goes to demote_timeout (its keeper, if it still runs and reaches
 * us, demotes it) and the candidate to prepare_promotion (it stops
 * streaming); promote_candidate then waits for a proof.
 *
 * Not while the primary is `restarting`: its keeper announced a clean
 * shutdown (a postmaster that crashed or was killed announces nothing), so a
 * planned restart keeps its role; if it does not come back within the
 * monitor's restart_grace, the flag lapses and this rule fires.
 */
bool
PrimaryFailed(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (node.healthy || node.restarting)
		return false;
	const NodeView *c = BestCandidate(ctx.nodes, node, &ctx.group.promote_lag_threshold_bytes);
	if (c == nullptr)
		return false;
	uint64_t lag = lsn::LagBytes(node.lsn, c->lsn);
	fire->description = "primary " + Label(node) + " is unhealthy: it must stop writing, " + Label(*c) + " (" +
						std::to_string(lag) + " bytes behind) prepares its promotion";
	fire->peer = c;
	fire->peer_description = Label(*c) + " is the candidate of unhealthy primary " + Label(node) +
							 ": it stops streaming and prepares its promotion";
	return true;
}

/*
 * switchover_candidate_has_all_wal: the old primary was shut down cleanly
 * and runs as a standby without upstream (settled draining, its LSN is the
 * end of its WAL); once the candidate has received all of it (same timeline,
 * lsn >= the old primary's), the old primary is demoted for good and the
 * candidate stops streaming.  The candidate is BestCandidate: with two nodes
 * the only standby, which is what perform_promotion checked.
 */
bool
SwitchoverCandidateHasAllWal(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::Draining))
		return false;
	const NodeView *c = BestCandidate(ctx.nodes, node, nullptr);
	if (c == nullptr || c->lsn < node.lsn)
		return false;
	fire->description =
		Label(*c) + " received all the WAL of draining primary " + Label(node) + ": the old primary is demoted";
	fire->peer = c;
	fire->peer_description = Label(*c) + " received all the WAL of draining primary " + Label(node) +
							 ": it stops streaming and prepares its promotion";
	return true;
}

/*
 * MayWrite: a node that reports `s` may accept writes.  stop_replication is
 * not a writable state for the monitor, but the keeper reports it once it
 * has promoted the node: it writes.
 */
bool
MayWrite(NodeState s)
{
	return IsWritableState(s) || s == S::StopReplication;
}

/*
 * CannotWrite tells whether old primary `old` (assigned draining or
 * demote_timeout) provably can no longer acknowledge a commit, given that
 * `candidate` is about to be promoted; on true `why` names the proof
 * (docs/failover.md):
 *
 * 1. confirmed down: it reports a state in which it cannot write (MayWrite)
 *    — its keeper demoted it (draining, demote_timeout) or restarted it as
 *    a standby.
 * 2. sync proof: it last reported `primary` (synchronous_standby_names was
 *    the monitor's ANY k over the quorum standbys), the call that carried
 *    that report also told it `primary` (last_told: had it been told
 *    wait_primary, it may have cleared synchronous_standby_names and lost the
 *    monitor before reporting so), and every quorum standby
 *    other than itself has settled prepare_promotion and reports
 *    streaming = false (StopReplication cleared primary_conninfo, so it will
 *    not reconnect): no standby can acknowledge a commit for it any more.  A
 *    quorum standby in any other state (secondary, maintenance, unhealthy
 *    with a stale report) may still stream from it, so the proof fails and
 *    we wait for the timeout.
 * 3. timeout: it has been assigned demote_timeout for
 *    primary_demote_timeout_ms, longer than the keeper's fence_timeout, so
 *    an isolated primary has fenced itself by now.  Only path when it was
 *    wait_primary (commits needed no standby).
 */
bool
CannotWrite(const Ctx &ctx, const NodeView &old, std::string *why)
{
	if (!MayWrite(old.reported)) {
		*why = "it reports " + std::string(StateName(old.reported));
		return true;
	}
	if (old.reported == S::Primary && old.last_told == S::Primary) {
		int quorum = 0;
		bool stopped = true;
		for (const auto &n : ctx.nodes) {
			if (n.node_id == old.node_id || !n.replication_quorum || n.assigned == S::Dropped)
				continue;
			quorum++;
			if (!Settled(n, S::PreparePromotion) || n.streaming)
				stopped = false;
		}
		if (quorum > 0 && stopped) {
			*why = "it was a synchronous primary and no quorum standby streams from it any more";
			return true;
		}
	}
	if (old.assigned == S::DemoteTimeout && old.assigned_age_ms >= ctx.group.primary_demote_timeout_ms) {
		*why = "it has been in demote_timeout for " + std::to_string(old.assigned_age_ms) + " ms, at least the " +
			   std::to_string(ctx.group.primary_demote_timeout_ms) + " ms of primary_demote_timeout";
		return true;
	}
	return false;
}

/*
 * promote_candidate: the candidate stopped replication (settled
 * prepare_promotion) and may now be promoted: no node is assigned a writable
 * state, and every old primary still assigned draining or demote_timeout
 * provably cannot write (CannotWrite).  Old primaries already assigned
 * demoted were proven earlier (switchover_candidate_has_all_wal saw them
 * settled draining, candidate_promoted needed this very proof).
 */
bool
PromoteCandidate(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::PreparePromotion) || ctx.primary != nullptr)
		return false;
	std::string proofs;
	for (const auto &n : ctx.nodes) {
		if (n.node_id == node.node_id || (n.assigned != S::Draining && n.assigned != S::DemoteTimeout))
			continue;
		std::string why;
		if (!CannotWrite(ctx, n, &why))
			return false;
		proofs += "; old primary " + Label(n) + " cannot write: " + why;
	}
	fire->description = Label(node) + " stopped replication and no node can write" + proofs + ": it is promoted";
	return true;
}

/*
 * candidate_promoted: the candidate reports it was promoted (settled
 * stop_replication) and nobody else is assigned a writable state: it opens
 * for writes as wait_primary (no synchronous replication until a standby is
 * secondary again).  An old primary still in demote_timeout is demoted at
 * the same time; its keeper rewinds it from the new primary.
 */
bool
CandidatePromoted(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::StopReplication) || ctx.primary != nullptr)
		return false;
	fire->description = Label(node) + " was promoted: it is the primary of " + GroupLabel(ctx.group);
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && n.assigned == S::DemoteTimeout) {
			fire->peer = &n;
			fire->peer_description =
				Label(node) + " was promoted: old primary " + Label(n) + " is demoted and must rewind from it";
			break;
		}
	return true;
}

/* The new primary runs (settled in a writable state, healthy): an old primary may follow it. */
bool
NewPrimaryReady(const Ctx &ctx)
{
	return ctx.primary != nullptr && ctx.primary->healthy && ctx.primary->reported == ctx.primary->assigned;
}

/* old_primary_rejoins (→ catchingup): the demoted old primary follows the new primary. */
bool
OldPrimaryRejoins(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::Demoted) || node.wants_maintenance || !NewPrimaryReady(ctx))
		return false;
	fire->description = "old primary " + Label(node) + " follows new primary " + Label(*ctx.primary);
	return true;
}

/* old_primary_rejoins (→ maintenance): the operator asked for maintenance of the old primary. */
bool
OldPrimaryRejoinsInMaintenance(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::Demoted) || !node.wants_maintenance || !NewPrimaryReady(ctx))
		return false;
	fire->description = "old primary " + Label(node) + " handed over to " + Label(*ctx.primary) +
						" and enters the maintenance the operator asked for";
	return true;
}

/* standby_can_init: the primary has prepared replication (slot, HBA); the new node may clone or follow. */
bool
StandbyCanInit(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::WaitStandby) || ctx.primary == nullptr || !Settled(*ctx.primary, S::WaitPrimary))
		return false;
	fire->description =
		"primary " + Label(*ctx.primary) + " reported wait_primary: " + Label(node) + " clones or follows it";
	return true;
}

/*
 * standby_caught_up: streaming on the primary's timeline, within the lag
 * threshold.  The primary must be assigned and report wait_primary or
 * primary: a candidate that reported stop_replication is not open yet.
 */
bool
StandbyCaughtUp(const Ctx &ctx, const NodeView &node, Firing *fire)
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
	if (p->reported != S::WaitPrimary && p->reported != S::Primary)
		return false;
	if (node.timeline != p->timeline)
		return false;
	uint64_t lag = lsn::LagBytes(p->lsn, node.lsn);
	if (lag > ctx.group.sync_lag_threshold_bytes)
		return false;
	fire->description = Label(node) + " is " + std::to_string(lag) + " bytes behind primary " + Label(*p) +
						" on timeline " + std::to_string(node.timeline) + ": it becomes secondary";
	return true;
}

/*
 * standby_lost: the monitor's health check gave up on a secondary; it no
 * longer counts for quorum.  Only while a node is assigned a writable state:
 * during a switchover or failover the secondary may be the candidate, and
 * moving it would leave the group without a way forward.
 */
bool
StandbyLost(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (node.assigned != S::Secondary || node.healthy || ctx.primary == nullptr)
		return false;
	fire->description = Label(node) + " is unhealthy: it no longer counts for quorum and must catch up again";
	return true;
}

// clang-format off
constexpr GroupRule kGroupRules[] = {
	/*
	 * Automatic failover.  Checked before the primary's other rules: an
	 * unhealthy primary with a qualifying candidate (settled secondary,
	 * healthy, priority > 0, not wanting maintenance, within
	 * promote_lag_threshold) must stop writing, whatever else is pending, and
	 * the candidate stops streaming at the same time.
	 */
	{"primary_failed",                   S::Primary,          S::DemoteTimeout,   S::Secondary,     S::PreparePromotion, PrimaryFailed,                  "the primary is unhealthy and a candidate qualifies: the primary must stop writing", "the candidate of an unhealthy primary stops streaming and prepares its promotion"},
	{"primary_failed",                   S::WaitPrimary,      S::DemoteTimeout,   S::Secondary,     S::PreparePromotion, PrimaryFailed,                  "the primary is unhealthy and a candidate qualifies: the primary must stop writing", "the candidate of an unhealthy primary stops streaming and prepares its promotion"},

	/*
	 * Primary side.  A new node's arrival makes the single primary prepare
	 * replication; a healthy quorum secondary turns synchronous replication
	 * on; losing every healthy quorum secondary turns it off again (only when
	 * number_sync_standbys = 0, see PrimaryLosesSyncStandby); once every
	 * standby is gone the primary runs alone.
	 */
	{"standby_joined",                   S::Single,           S::WaitPrimary,     kNoPeer,          kNoPeer,             StandbyJoined,                  "the single primary prepares replication for a node that registered", nullptr},
	{"last_standby_gone",                S::WaitPrimary,      S::Single,          kNoPeer,          kNoPeer,             LastStandbyGone,                "the primary is the only node left: it runs alone", nullptr},
	{"primary_gains_sync_standby",       S::WaitPrimary,      S::Primary,         kNoPeer,          kNoPeer,             PrimaryGainsSyncStandby,        "a healthy quorum standby is secondary: the primary enables synchronous replication", nullptr},
	{"primary_loses_sync_standby",       S::Primary,          S::WaitPrimary,     kNoPeer,          kNoPeer,             PrimaryLosesSyncStandby,        "no healthy quorum secondary and number_sync_standbys = 0: the primary disables synchronous replication", nullptr},

	/*
	 * Switchover (started by perform_switchover, perform_promotion or
	 * enable_maintenance of the primary, which assign primary → draining).
	 * The old primary shut down cleanly and reported draining; once the
	 * candidate has all of its WAL it is demoted and the candidate stops
	 * streaming, so the old primary can later follow the candidate's new
	 * timeline without pg_rewind.
	 */
	{"switchover_candidate_has_all_wal", S::Draining,         S::Demoted,         S::Secondary,     S::PreparePromotion, SwitchoverCandidateHasAllWal,   "the candidate received all the WAL of the draining primary: the old primary is demoted", "the candidate received all the WAL of the draining primary: it stops streaming and prepares its promotion"},

	/*
	 * Promotion, shared by switchover and failover.  The candidate is
	 * promoted only when no node can write any more (PromoteCandidate: the
	 * old primary reports a non-writable state, or the sync proof, or the
	 * demote timeout); it opens for writes once it reports the promotion,
	 * and an old primary still in demote_timeout is demoted then.
	 */
	{"promote_candidate",                S::PreparePromotion, S::StopReplication, kNoPeer,          kNoPeer,             PromoteCandidate,               "the candidate stopped replication and the old primary provably cannot write: promote it", nullptr},
	{"candidate_promoted",               S::StopReplication,  S::WaitPrimary,     S::DemoteTimeout, S::Demoted,          CandidatePromoted,              "the candidate was promoted: it opens for writes without synchronous replication", "the candidate was promoted: the old primary is demoted and rewinds from it"},

	/*
	 * Rejoin.  The demoted old primary follows the new primary once that one
	 * runs (settled, healthy), or enters maintenance when the operator asked
	 * for it (enable_maintenance of a primary).
	 */
	{"old_primary_rejoins",              S::Demoted,          S::Catchingup,      kNoPeer,          kNoPeer,             OldPrimaryRejoins,              "the demoted old primary follows the new primary", nullptr},
	{"old_primary_rejoins",              S::Demoted,          S::Maintenance,     kNoPeer,          kNoPeer,             OldPrimaryRejoinsInMaintenance, "the demoted old primary enters the maintenance the operator asked for", nullptr},

	/*
	 * Standby side.  A waiting node initializes once the primary is ready; it
	 * becomes secondary once caught up on the primary's timeline; an
	 * unhealthy secondary stops counting for quorum and must catch up again
	 * (only while a writable primary exists: never during an operation).
	 */
	{"standby_can_init",                 S::WaitStandby,      S::Catchingup,      kNoPeer,          kNoPeer,             StandbyCanInit,                 "the primary prepared replication: the standby clones or follows it", nullptr},
	{"standby_caught_up",                S::Catchingup,       S::Secondary,       kNoPeer,          kNoPeer,             StandbyCaughtUp,                "the standby is within the lag threshold on the primary's timeline: it counts for quorum", nullptr},
	{"standby_lost",                     S::Secondary,        S::Catchingup,      kNoPeer,          kNoPeer,             StandbyLost,                    "the secondary is unhealthy: it stops counting for quorum", nullptr},
};
// clang-format on

/*
 * The exported rule list: one entry per row, plus one for the peer's move of
 * a row with a peer (same name; listed once when several rows share it).
 */
struct ExportedRules {
	std::vector<RuleInfo> rules;
	std::vector<std::uintptr_t> keys;
};

const ExportedRules &
Exported()
{
	static const auto *exported = [] {
		auto *e = new ExportedRules();
		for (const auto &r : kGroupRules) {
			e->rules.push_back(RuleInfo{r.name, r.from, r.to, r.description});
			e->keys.push_back(reinterpret_cast<std::uintptr_t>(r.when));
			bool listed = std::any_of(e->rules.begin(), e->rules.end(), [&](const RuleInfo &i) {
				return std::string(i.name) == r.name && i.from == r.peer_from && i.to == r.peer_to;
			});
			if (r.peer_to != kNoPeer && !listed) {
				e->rules.push_back(RuleInfo{r.name, r.peer_from, r.peer_to, r.peer_description});
				e->keys.push_back(reinterpret_cast<std::uintptr_t>(r.when));
			}
		}
		return e;
	}();
	return *exported;
}

/* MakeAssignment builds the assignment of `node` from its current assigned state to `to`. */
Assignment
MakeAssignment(const NodeView &node, NodeState to, const char *rule, std::string description)
{
	Assignment a;
	a.node_id = node.node_id;
	a.from = node.assigned;
	a.to = to;
	a.rule = rule;
	a.description = std::move(description);
	return a;
}

/* Index of node_id in nodes; nodes.size() when absent. */
std::size_t
IndexOf(const std::vector<NodeView> &nodes, int64_t node_id)
{
	for (std::size_t i = 0; i < nodes.size(); i++)
		if (nodes[i].node_id == node_id)
			return i;
	return nodes.size();
}

std::vector<NodeView>
SortedNodes(const GroupView &group)
{
	std::vector<NodeView> nodes = group.nodes;
	std::stable_sort(nodes.begin(), nodes.end(),
					 [](const NodeView &a, const NodeView &b) { return a.node_id < b.node_id; });
	return nodes;
}

/* ---- Operator requests (docs/failover.md) ---- */

[[noreturn]] void
Refuse(const std::string &message, const std::string &detail, const std::string &hint)
{
	throw Error(sqlstate::kObjectNotInPrerequisiteState, message, detail, hint);
}

/* FindNode returns the member named `name`; throws 42704 when the group has none. */
const NodeView &
FindNode(const GroupView &group, const std::vector<NodeView> &nodes, const std::string &name)
{
	for (const auto &n : nodes)
		if (n.name == name && n.assigned != S::Dropped)
			return n;
	throw Error(sqlstate::kUndefinedObject, "node \"" + name + "\" is not a member of " + GroupLabel(group), "",
				"pg_autopilot.show_state() lists the nodes.");
}

/* InRoleChange tells whether state `s` belongs to a switchover, failover or election under way. */
bool
InRoleChange(NodeState s)
{
	switch (s) {
	case S::Draining:
	case S::DemoteTimeout:
	case S::Demoted:
	case S::PreparePromotion:
	case S::StopReplication:
	case S::ReportLsn:
	case S::FastForward:
	case S::JoinSecondary:
	case S::PrepareMaintenance:
	case S::WaitMaintenance:
		return true;
	default:
		return false;
	}
}

/*
 * RequireNoOperation refuses `what` when an operation is under way: some
 * member is in a role-change state, or has not reported its assigned state
 * yet.  A standby that is down (unhealthy, not in a role change) does not
 * count: it blocks nothing by itself, and the checks that follow explain
 * better why it cannot take over.
 */
void
RequireNoOperation(const GroupView &group, const std::vector<NodeView> &nodes, const std::string &what)
{
	for (const auto &n : nodes) {
		if (n.assigned == S::Dropped)
			continue;
		bool changing = InRoleChange(n.assigned) || InRoleChange(n.reported);
		if (!changing && (n.reported == n.assigned || !n.healthy))
			continue;
		Refuse("cannot " + what + ": an operation is in progress in " + GroupLabel(group),
			   "Node " + Label(n) + " is assigned " + StateName(n.assigned) + " and reports " + StateName(n.reported) +
				   ".",
			   "Wait until every node reports its assigned state (pg_autopilot.show_state()), then retry.");
	}
}

/* WhyNotCandidate explains in a sentence why `n` cannot take over from `primary` (IsCandidate is false). */
std::string
WhyNotCandidate(const NodeView &n, const NodeView &primary)
{
	std::string who = "Node " + Label(n);
	if (n.assigned == S::Maintenance || n.wants_maintenance)
		return who + " is in maintenance.";
	if (!n.healthy)
		return who + " is unhealthy.";
	if (!Settled(n, S::Secondary))
		return who + " is assigned " + StateName(n.assigned) + " and reports " + StateName(n.reported) +
			   ", not secondary.";
	if (n.candidate_priority <= 0)
		return who + " has candidate_priority 0.";
	if (n.timeline != primary.timeline)
		return who + " is on timeline " + std::to_string(n.timeline) + ", the primary on timeline " +
			   std::to_string(primary.timeline) + ".";
	return who + " qualifies.";
}

/*
 * RequirePrimary returns the settled primary for `what`; refuses when there
 * is none, it is not settled `primary` (single: nobody to switch to;
 * wait_primary: no synchronous secondary yet), or — unless allow_unhealthy —
 * it is unhealthy.
 */
const NodeView &
RequirePrimary(const GroupView &group, const std::vector<NodeView> &nodes, const std::string &what,
			   bool allow_unhealthy)
{
	const NodeView *p = FindPrimary(group, nodes);
	if (p == nullptr)
		Refuse("cannot " + what + ": " + GroupLabel(group) + " has no primary", "No node is assigned a writable state.",
			   "Wait until the group has a primary, then retry.");
	if (p->assigned == S::Single)
		Refuse("cannot " + what + ": " + GroupLabel(group) + " has no standby", "Primary " + Label(*p) + " runs alone.",
			   "Add a standby and wait until it is secondary.");
	if (p->assigned == S::WaitPrimary) {
		std::string detail;
		for (const auto &n : nodes)
			if (n.node_id != p->node_id && n.assigned != S::Dropped)
				detail += (detail.empty() ? "" : " ") + WhyNotCandidate(n, *p);
		Refuse("cannot " + what + ": no healthy secondary of " + GroupLabel(group) + " can take over from " + Label(*p),
			   detail.empty() ? "The primary has no standby." : detail,
			   "Wait until a standby is secondary and healthy, then retry.");
	}
	if (!Settled(*p, S::Primary))
		Refuse("cannot " + what + ": primary " + Label(*p) + " is in state " + StateName(p->assigned),
			   "A switchover or failover starts from a primary with a synchronous secondary.",
			   "Wait until a standby is secondary and the primary reports primary, then retry.");
	if (!allow_unhealthy && !p->healthy)
		Refuse("cannot " + what + ": primary " + Label(*p) + " is unhealthy",
			   "An unhealthy primary cannot drain cleanly.",
			   "Use pg_autopilot.perform_failover() to fail over from an unreachable primary.");
	return *p;
}

/* RequireCandidate returns BestCandidate for `what`, refusing with each standby's reason when there is none. */
const NodeView &
RequireCandidate(const GroupView &group, const std::vector<NodeView> &nodes, const NodeView &primary,
				 const std::string &what)
{
	const NodeView *c = BestCandidate(nodes, primary, nullptr);
	if (c != nullptr)
		return *c;
	std::string detail;
	for (const auto &n : nodes)
		if (n.node_id != primary.node_id && n.assigned != S::Dropped)
			detail += (detail.empty() ? "" : " ") + WhyNotCandidate(n, primary);
	Refuse("cannot " + what + ": no healthy secondary of " + GroupLabel(group) + " can take over", detail,
		   "Wait until a standby is secondary and healthy, with candidate_priority > 0 and not in maintenance.");
}

} // namespace

const std::vector<RuleInfo> &
GroupRules()
{
	return Exported().rules;
}

std::uintptr_t
GroupRulePredicateKey(std::size_t index) noexcept
{
	const auto &keys = Exported().keys;
	return index < keys.size() ? keys[index] : 0;
}

std::vector<Assignment>
ProceedGroup(const GroupView &group)
{
	std::vector<NodeView> nodes = SortedNodes(group);
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
				Firing fire;
				if (!rule.when(ctx, nodes[i], &fire))
					continue;
				std::size_t peer = nodes.size();
				if (fire.peer != nullptr) {
					peer = IndexOf(nodes, fire.peer->node_id);
					if (rule.peer_to == kNoPeer || peer == i || peer == nodes.size() ||
						nodes[peer].assigned != rule.peer_from)
						throw Error(sqlstate::kInternalError,
									std::string("group rule ") + rule.name + " named an unexpected peer");
					/* The peer already moved in this call: the view changed, the rule waits for the next call. */
					if (moved[peer])
						continue;
				}
				out.push_back(MakeAssignment(nodes[i], rule.to, rule.name, std::move(fire.description)));
				nodes[i].assigned = rule.to;
				moved[i] = true;
				if (peer != nodes.size()) {
					out.push_back(
						MakeAssignment(nodes[peer], rule.peer_to, rule.name, std::move(fire.peer_description)));
					nodes[peer].assigned = rule.peer_to;
					moved[peer] = true;
				}
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
	std::string where = GroupLabel(group);

	if (others.empty()) {
		a.to = S::Single;
		a.rule = "first_node";
		a.description = label + " is the first node of " + where + ": it runs as single";
		return a;
	}
	/*
	 * One primary and one standby per group until elections exist (issue 4):
	 * the failover proofs and the keeper's login-fence lift assume the
	 * candidate is the only other node, so a third member would make
	 * automatic failover unsafe.
	 */
	if (others.size() >= 2)
		throw Error(sqlstate::kObjectNotInPrerequisiteState,
					"cannot register " + label + ": " + where + " already has two nodes",
					"pg_autopilot supports one primary and one standby per group for now; a third node would make "
					"automatic failover unsafe.",
					"Register the node in another formation (pg_autopilot.formation).");
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

/*
 * Switchover: the settled, healthy primary drains (fast shutdown, re-exec as
 * a standby without upstream); switchover_candidate_has_all_wal and the
 * promotion rules do the rest.  Only the primary moves now, so a refusal
 * later is impossible and the candidate keeps streaming until it has all the
 * WAL.
 */
std::vector<Assignment>
Switchover(const GroupView &group)
{
	const std::string what = "perform a switchover";
	std::vector<NodeView> nodes = SortedNodes(group);
	RequireNoOperation(group, nodes, what);
	const NodeView &p = RequirePrimary(group, nodes, what, false);
	const NodeView &c = RequireCandidate(group, nodes, p, what);
	return {MakeAssignment(p, S::Draining, "switchover",
						   "switchover requested: primary " + Label(p) + " drains, " + Label(c) + " takes over")};
}

/*
 * Failover (operator-forced): like Switchover, but also when the primary is
 * unhealthy, and without waiting for the candidate to have all the WAL (a
 * candidate lagging behind a primary in wait_primary may lose commits: the
 * operator asked for it).  The primary goes to demote_timeout, not draining:
 * draining waits for the old primary to report a clean shutdown and for the
 * candidate to receive its WAL, which never happens when the primary is
 * down or isolated.  demote_timeout instead goes through promote_candidate's
 * proofs — its keeper demotes it and reports so (confirmed down), or the
 * sync proof, or the demote timeout — so the candidate is never promoted
 * while the old primary may still acknowledge commits.  The candidate
 * stops streaming at once (prepare_promotion).
 */
std::vector<Assignment>
Failover(const GroupView &group)
{
	const std::string what = "perform a failover";
	std::vector<NodeView> nodes = SortedNodes(group);
	RequireNoOperation(group, nodes, what);
	const NodeView &p = RequirePrimary(group, nodes, what, true);
	const NodeView &c = RequireCandidate(group, nodes, p, what);
	return {
		MakeAssignment(p, S::DemoteTimeout, "failover",
					   "failover requested: primary " + Label(p) + " must stop writing, " + Label(c) + " takes over"),
		MakeAssignment(c, S::PreparePromotion, "failover",
					   "failover requested: " + Label(c) + " stops streaming and prepares its promotion")};
}

/*
 * Promotion: a switchover towards node_name.  The node must be the one
 * switchover_candidate_has_all_wal will pick (BestCandidate: with two nodes
 * the only standby; with more, the highest candidate_priority) and within
 * promote_lag_threshold_bytes of the primary.  Returns nothing when the node
 * already is the primary (the caller tells the operator).
 */
std::vector<Assignment>
Promotion(const GroupView &group, const std::string &node_name)
{
	std::vector<NodeView> nodes = SortedNodes(group);
	const NodeView &target = FindNode(group, nodes, node_name);
	if (IsWritableState(target.assigned))
		return {};
	const std::string what = "promote node " + Label(target);
	RequireNoOperation(group, nodes, what);
	const NodeView *primary = FindPrimary(group, nodes);
	if (primary != nullptr && !IsCandidate(target, *primary))
		Refuse("cannot " + what + ": it is not a healthy secondary that may be promoted",
			   WhyNotCandidate(target, *primary),
			   "Wait until the node is secondary and healthy, with candidate_priority > 0 and not in maintenance.");
	const NodeView &p = RequirePrimary(group, nodes, what, false);
	uint64_t lag = lsn::LagBytes(p.lsn, target.lsn);
	if (lag > group.promote_lag_threshold_bytes)
		Refuse("cannot " + what + ": it is " + std::to_string(lag) + " bytes behind primary " + Label(p),
			   "The promotion lag threshold is " + std::to_string(group.promote_lag_threshold_bytes) + " bytes.",
			   "Wait until the node has caught up, then retry.");
	const NodeView &best = RequireCandidate(group, nodes, p, what);
	if (best.node_id != target.node_id)
		Refuse("cannot " + what + ": " + Label(best) + " would be chosen instead",
			   "The candidate with the highest candidate_priority (then the most advanced LSN) takes over.",
			   "Raise the candidate_priority of the node above the other standbys', then retry.");
	return {MakeAssignment(p, S::Draining, "promotion",
						   "promotion of " + Label(target) + " requested: primary " + Label(p) + " drains")};
}

/*
 * EnableMaintenance: a standby (assigned and reporting secondary or
 * catchingup) goes to maintenance at once; the primary starts a switchover
 * (rule name maintenance_switchover) and ends in maintenance through
 * old_primary_rejoins.  The caller stores wants_maintenance = true on the
 * node for every accepted request: that flag is what sends the old primary
 * to maintenance and keeps the node from ever being a candidate.
 */
std::vector<Assignment>
EnableMaintenance(const GroupView &group, const std::string &node_name)
{
	std::vector<NodeView> nodes = SortedNodes(group);
	const NodeView &node = FindNode(group, nodes, node_name);
	const std::string what = "enable maintenance of node " + Label(node);
	if (node.assigned == S::Maintenance)
		Refuse("cannot " + what + ": it is already in maintenance", "",
			   "pg_autopilot.disable_maintenance() ends the maintenance.");
	if (node.wants_maintenance)
		Refuse("cannot " + what + ": its maintenance is already being prepared",
			   "The node is assigned " + std::string(StateName(node.assigned)) + ".",
			   "Wait until the node reports maintenance.");
	if (IsWritableState(node.assigned)) {
		RequireNoOperation(group, nodes, what);
		const NodeView &p = RequirePrimary(group, nodes, what, false);
		const NodeView &c = RequireCandidate(group, nodes, p, what);
		return {MakeAssignment(p, S::Draining, "maintenance_switchover",
							   "maintenance of primary " + Label(p) + " requested: it drains, " + Label(c) +
								   " takes over")};
	}
	/* A standby may be the candidate of a switchover under way: never take it away then. */
	for (const auto &n : nodes)
		if (n.assigned != S::Dropped && (InRoleChange(n.assigned) || InRoleChange(n.reported)))
			Refuse("cannot " + what + ": an operation is in progress in " + GroupLabel(group),
				   "Node " + Label(n) + " is assigned " + StateName(n.assigned) + " and reports " +
					   StateName(n.reported) + ".",
				   "Wait until the operation is over (pg_autopilot.show_state()), then retry.");
	if (FindPrimary(group, nodes) == nullptr)
		Refuse("cannot " + what + ": " + GroupLabel(group) + " has no primary", "No node is assigned a writable state.",
			   "Wait until the group has a primary, then retry.");
	auto standby_state = [](NodeState s) { return s == S::Secondary || s == S::Catchingup; };
	if (!standby_state(node.assigned) || !standby_state(node.reported))
		Refuse("cannot " + what + ": it is assigned " + StateName(node.assigned) + " and reports " +
				   StateName(node.reported),
			   "Only the primary or a standby in state secondary or catchingup can enter maintenance.",
			   "Wait until the node reports secondary or catchingup, then retry.");
	return {MakeAssignment(node, S::Maintenance, "maintenance_enabled",
						   "maintenance of standby " + Label(node) + " requested: automation leaves it alone")};
}

/* DisableMaintenance: maintenance → catchingup.  The caller clears wants_maintenance. */
std::vector<Assignment>
DisableMaintenance(const GroupView &group, const std::string &node_name)
{
	std::vector<NodeView> nodes = SortedNodes(group);
	const NodeView &node = FindNode(group, nodes, node_name);
	if (node.assigned != S::Maintenance)
		Refuse("cannot disable maintenance of node " + Label(node) + ": it is not in maintenance",
			   "The node is assigned " + std::string(StateName(node.assigned)) + ".",
			   node.wants_maintenance ? "Wait until the node reports maintenance, then retry." : "");
	return {MakeAssignment(node, S::Catchingup, "maintenance_disabled",
						   "maintenance of " + Label(node) + " ended: it catches up with the primary")};
}

std::string
StandbyName(int64_t node_id)
{
	return "pg_autopilot_node_" + std::to_string(node_id);
}

} // namespace autopilot::fsm
