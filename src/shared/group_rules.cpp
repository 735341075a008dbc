/*
 * src/shared/group_rules.cpp — the monitor's group rules as data (pure zone):
 * the rule table, ProceedGroup, InitialState, SynchronousStandbyNames and
 * the rules of the primary's and the standbys' steady life.  The failover
 * proofs and the election (docs/elections.md) are in election.cpp, the
 * operator requests in group_rules_requests.cpp; shared helpers are declared
 * in group_rules_internal.hpp.
 *
 * kGroupRules holds one row per rule: {name, from, to, peer_from, peer_to,
 * predicate, description, peer description}.  `from` is the assigned state
 * of the node the rule moves; ProceedGroup tries the rows in order for every
 * node whose assigned state equals `from`, first match wins, and repeats
 * until nothing fires (each node moves at most once per call).  A row may
 * also move one second node, its peer (peer_from → peer_to; S::Init = no
 * peer): the predicate names the peer (or none), and both moves carry the
 * rule's name.  That keeps two-node steps (primary_failed with one standby
 * moves the primary and its candidate) atomic.
 *
 * A rule generally fires only once the node it waits for has reported its
 * assigned state (reported == assigned, "settled"); rules driven by health
 * verdicts are the exception.  Safety (DESIGN.md §6): a node is only ever
 * told to become writable (prepare_promotion → stop_replication, the keeper
 * promotes) when no node is assigned a writable state and every old primary
 * still in draining/demote_timeout is proven unable to acknowledge a commit
 * (PromoteCandidate); a winner is only elected when every acknowledged
 * commit is on a participant (QuorumReported) or the operator allowed data
 * loss; rules that exist for the primary's quorum bookkeeping (standby_lost,
 * standby_caught_up) only fire while a writable primary exists, so they
 * never disturb an operation in progress.
 *
 * Every (from, to) a rule or request produces has a row in the keeper's
 * table (keeper_fsm.cpp); the unit tests check it.  No server headers;
 * throws autopilot::Error on an inconsistent view (two writable primaries)
 * and from InitialState when there is no primary to follow.  Tables are
 * constexpr arrays; vectors handed out are built once and never freed (no
 * static object with a destructor).
 */
#include "group_rules.hpp"

#include <algorithm>
#include <iterator>

#include "error.hpp"
#include "group_rules_internal.hpp"
#include "lsn.hpp"

namespace autopilot::fsm {

namespace detail {

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

const NodeView *
OldPrimary(const std::vector<NodeView> &nodes)
{
	for (const auto &n : nodes)
		if (n.assigned == S::Draining || n.assigned == S::DemoteTimeout)
			return &n;
	return nullptr;
}

int
Standbys(const std::vector<NodeView> &nodes, const NodeView &primary)
{
	int count = 0;
	for (const auto &n : nodes)
		if (n.node_id != primary.node_id && n.assigned != S::Dropped)
			count++;
	return count;
}

/*
 * IsCandidate: `n` may take over from `primary` — a settled, healthy
 * secondary on the primary's timeline, candidate_priority > 0, and the
 * operator asked neither for its maintenance nor for its removal.  Lag is
 * checked by the callers (a switchover waits for all WAL, a failover has a
 * threshold).
 */
bool
IsCandidate(const NodeView &n, const NodeView &primary)
{
	return n.node_id != primary.node_id && Settled(n, S::Secondary) && n.healthy && n.candidate_priority > 0 &&
		   !n.wants_maintenance && !n.wants_drop && n.timeline == primary.timeline;
}

const NodeView *
BestCandidate(const std::vector<NodeView> &nodes, const NodeView &primary, const uint64_t *max_lag,
			  uint64_t min_healthy_ms)
{
	const NodeView *best = nullptr;
	for (const auto &n : nodes) {
		if (!IsCandidate(n, primary) || n.healthy_for_ms < min_healthy_ms)
			continue;
		if (max_lag != nullptr && lsn::LagBytes(primary.lsn, n.lsn) > *max_lag)
			continue;
		if (best == nullptr || n.candidate_priority > best->candidate_priority ||
			(n.candidate_priority == best->candidate_priority && n.lsn > best->lsn))
			best = &n; /* nodes are sorted by id: ties keep the lowest id */
	}
	return best;
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

bool
NewPrimaryReady(const Ctx &ctx)
{
	return ctx.primary != nullptr && ctx.primary->healthy && ctx.primary->reported == ctx.primary->assigned;
}

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

[[noreturn]] void
Refuse(const std::string &message, const std::string &detail, const std::string &hint)
{
	throw Error(sqlstate::kObjectNotInPrerequisiteState, message, detail, hint);
}

} // namespace detail

namespace {

using namespace detail;

constexpr NodeState kNoPeer = S::Init;

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

/* A standby that counts for synchronous quorum right now: healthy quorum node assigned secondary. */
bool
IsHealthyQuorumSecondary(const NodeView &n)
{
	return n.replication_quorum && n.healthy && n.assigned == S::Secondary;
}

/*
 * NamedInSyncNames: `n` is a quorum standby that may stream from the
 * primary's history, so the primary's names list it.  Healthy or not: with
 * number_sync_standbys >= 1 a lost standby must stay in the list so that
 * commits wait for it instead of being acknowledged by the primary alone.
 * Not listed: wait_standby (not cloned yet), demoted (an old primary that
 * must rewind first: listed, it would never be stopped, and every later
 * election would miss the quorum proof) and dropped.  secondary,
 * catchingup, join_secondary and maintenance stay listed (they stream, or
 * will again without a rewind).  When a demoted node rejoins (→ catchingup)
 * the names change and settings_changed re-applies them.
 */
bool
NamedInSyncNames(const NodeView &n)
{
	return n.replication_quorum && n.assigned != S::Dropped && n.assigned != S::WaitStandby && n.assigned != S::Demoted;
}

/*
 * SyncNamesOf is SynchronousStandbyNames over a working copy: '' unless
 * `primary` is assigned primary or apply_settings; otherwise ANY k over the
 * nodes NamedInSyncNames but the primary, by priority desc then id.
 */
std::string
SyncNamesOf(const GroupView &group, const std::vector<NodeView> &nodes, const NodeView *primary)
{
	if (primary == nullptr || (primary->assigned != S::Primary && primary->assigned != S::ApplySettings))
		return "";
	std::vector<const NodeView *> quorum;
	for (const auto &n : nodes)
		if (n.node_id != primary->node_id && NamedInSyncNames(n))
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

/* Names the primary must use once it is assigned `as` (primary or apply_settings). */
std::string
SyncNamesAs(const Ctx &ctx, const NodeView &primary, NodeState as)
{
	NodeView p = primary;
	p.assigned = as;
	return SyncNamesOf(ctx.group, ctx.nodes, &p);
}

/*
 * standby_joined: a new node waits to follow the primary.  From single the
 * primary prepares replication as wait_primary (no synchronous standby yet);
 * from primary it re-applies its settings (slots, HBA, names) as
 * apply_settings and keeps synchronous replication meanwhile.
 */
bool
StandbyJoined(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, node.assigned) || (node.assigned != S::Single && node.assigned != S::Primary))
		return false;
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && n.assigned == S::WaitStandby) {
			fire->description =
				Label(n) + " registered as wait_standby: primary " + Label(node) + " prepares replication";
			return true;
		}
	return false;
}

/*
 * settings_changed: the names the settled primary must run
 * (SynchronousStandbyNames) differ from the value its last node_active call
 * returned (told_sync_names, from a call that also told it primary):
 * number_sync_standbys, a priority or quorum flag, or the members changed.
 * It re-applies them as apply_settings.
 */
bool
SettingsChanged(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::Primary) || node.last_told != S::Primary)
		return false;
	std::string wanted = SyncNamesAs(ctx, node, S::ApplySettings);
	if (wanted == node.told_sync_names)
		return false;
	fire->description = "synchronous_standby_names of primary " + Label(node) + " changes from '" +
						node.told_sync_names + "' to '" + wanted + "': it applies the new settings";
	return true;
}

/*
 * primary_settings_applied: the primary reported apply_settings after being
 * told the current names, and no node waits to be let in any more.
 */
bool
PrimarySettingsApplied(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::ApplySettings) || node.told_sync_names != SyncNamesAs(ctx, node, S::ApplySettings))
		return false;
	for (const auto &n : ctx.nodes)
		if (n.assigned == S::WaitStandby)
			return false;
	fire->description = "primary " + Label(node) + " applied synchronous_standby_names '" + node.told_sync_names +
						"' and prepared replication for every node";
	return true;
}

/* last_standby_gone: every standby was removed; the primary has nobody to prepare for. */
bool
LastStandbyGone(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::WaitPrimary) || Standbys(ctx.nodes, node) != 0)
		return false;
	fire->description = Label(node) + " is the only node left in " + GroupLabel(ctx.group) + ": it runs as single";
	return true;
}

/*
 * primary_gains_sync_standby: at least k = max(number_sync_standbys, 1)
 * healthy quorum standbys reported secondary, so commits will not wait for
 * a standby that is still far behind.
 */
bool
PrimaryGainsSyncStandby(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::WaitPrimary))
		return false;
	int k = std::max(ctx.group.number_sync_standbys, 1);
	std::string names;
	int count = 0;
	for (const auto &n : ctx.nodes)
		if (n.node_id != node.node_id && IsHealthyQuorumSecondary(n) && n.reported == S::Secondary) {
			names += (count == 0 ? "" : ", ") + Label(n);
			count++;
		}
	if (count < k)
		return false;
	fire->description = names + (count == 1 ? " is a healthy quorum secondary" : " are healthy quorum secondaries") +
						": primary " + Label(node) + " enables synchronous replication";
	return true;
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
 * switchover_candidate_has_all_wal: the old primary was shut down cleanly
 * and runs as a standby without upstream (settled draining, its LSN is the
 * end of its WAL); once the candidate has received all of it (same timeline,
 * lsn >= the old primary's), the old primary is demoted for good and the
 * candidate stops streaming.  The candidate is the node perform_promotion
 * named (promotion_target; while it does not qualify we wait: exactly that
 * node is promoted), else BestCandidate.  Other secondaries stay secondary:
 * their WAL is a prefix of the candidate's, they follow it without rewind.
 */
bool
SwitchoverCandidateHasAllWal(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::Draining))
		return false;
	const NodeView *c = nullptr;
	for (const auto &n : ctx.nodes)
		if (n.promotion_target && n.assigned != S::Dropped)
			c = IsCandidate(n, node) ? &n : &node;
	if (c == &node)
		return false; /* the named target does not qualify now */
	if (c == nullptr)
		c = BestCandidate(ctx.nodes, node, nullptr);
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

/*
 * old_primary_dropped: drop_node of the primary (wants_drop) switched or
 * failed it over; once it is demoted and another node is assigned a
 * writable state (the candidate was promoted: candidate_promoted), it
 * leaves.  A switchover assigns demoted before the promotion
 * (switchover_candidate_has_all_wal); waiting for the new primary keeps the
 * node — whose WAL the candidate has, but which is the only other copy —
 * in the group until the promotion succeeded.  Not waiting for its report:
 * a node that never comes back is dropped too (it cannot write: demoted is
 * only assigned once CannotWrite held or after a clean drain).
 */
bool
OldPrimaryDropped(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (node.assigned != S::Demoted || !node.wants_drop || ctx.primary == nullptr)
		return false;
	fire->description = "old primary " + Label(node) + " was handed over and leaves " + GroupLabel(ctx.group) +
						" as the operator asked";
	return true;
}

/* old_primary_rejoins (→ catchingup): the demoted old primary follows the new primary. */
bool
OldPrimaryRejoins(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::Demoted) || node.wants_maintenance || node.wants_drop || !NewPrimaryReady(ctx))
		return false;
	fire->description = "old primary " + Label(node) + " follows new primary " + Label(*ctx.primary);
	return true;
}

/* old_primary_rejoins (→ maintenance): the operator asked for maintenance of the old primary. */
bool
OldPrimaryRejoinsInMaintenance(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	if (!Settled(node, S::Demoted) || !node.wants_maintenance || node.wants_drop || !NewPrimaryReady(ctx))
		return false;
	fire->description = "old primary " + Label(node) + " handed over to " + Label(*ctx.primary) +
						" and enters the maintenance the operator asked for";
	return true;
}

/*
 * standby_can_init: the primary has prepared replication (slot, HBA): it is
 * settled wait_primary, or it reported apply_settings.  A node registering
 * while the primary already reports apply_settings may start before its
 * slot exists; the primary's keeper ensures slots every tick and the
 * standby's InitStandby is retried, so that costs a retry only.
 */
bool
StandbyCanInit(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	const NodeView *p = ctx.primary;
	if (!Settled(node, S::WaitStandby) || p == nullptr)
		return false;
	if (!Settled(*p, S::WaitPrimary) && p->reported != S::ApplySettings)
		return false;
	fire->description =
		"primary " + Label(*p) + " reported " + StateName(p->reported) + ": " + Label(node) + " clones or follows it";
	return true;
}

/*
 * CaughtUp: `node`, settled in its assigned state, streams on the primary's
 * timeline within the lag threshold.  The primary must be assigned and
 * report wait_primary or primary: a candidate that reported stop_replication
 * is not open yet.  Not streaming means not receiving the primary's WAL now
 * — for instance a copy whose history split from the primary's and whose
 * walreceiver keeps failing: its LSN may look close, but it must never count
 * for quorum.
 */
bool
CaughtUp(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	const NodeView *p = ctx.primary;
	if (!Settled(node, node.assigned) || !node.healthy || !node.streaming || p == nullptr)
		return false;
	if (p->assigned != S::WaitPrimary && p->assigned != S::Primary && p->assigned != S::ApplySettings)
		return false;
	if (p->reported != S::WaitPrimary && p->reported != S::Primary && p->reported != S::ApplySettings)
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

/* standby_caught_up: a catching-up standby (CaughtUp). */
bool
StandbyCaughtUp(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	return node.assigned == S::Catchingup && CaughtUp(ctx, node, fire);
}

/* join_secondary_caught_up: an election loser follows the new primary (CaughtUp). */
bool
JoinSecondaryCaughtUp(const Ctx &ctx, const NodeView &node, Firing *fire)
{
	return node.assigned == S::JoinSecondary && CaughtUp(ctx, node, fire);
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
	 * promote_lag_threshold) must stop writing, whatever else is pending.
	 * With one standby that candidate stops streaming at the same time; with
	 * more, the election below chooses.  Not from wait_primary when
	 * number_sync_standbys >= 1 (see PrimaryFailed).
	 */
	{"primary_failed",                   S::Primary,          S::DemoteTimeout,   S::Secondary,     S::PreparePromotion, PrimaryFailed,                  "the primary is unhealthy and a candidate qualifies: the primary must stop writing", "the only standby of an unhealthy primary stops streaming and prepares its promotion"},
	{"primary_failed",                   S::WaitPrimary,      S::DemoteTimeout,   S::Secondary,     S::PreparePromotion, PrimaryFailed,                  "the primary is unhealthy and a candidate qualifies: the primary must stop writing", "the only standby of an unhealthy primary stops streaming and prepares its promotion"},
	{"primary_failed",                   S::ApplySettings,    S::DemoteTimeout,   S::Secondary,     S::PreparePromotion, PrimaryFailed,                  "the primary is unhealthy and a candidate qualifies: the primary must stop writing", "the only standby of an unhealthy primary stops streaming and prepares its promotion"},

	/*
	 * Primary side.  A new node's arrival makes the primary prepare
	 * replication (single → wait_primary, primary → apply_settings); a
	 * settings change re-applies the names; enough healthy quorum
	 * secondaries turn synchronous replication on; losing every healthy
	 * quorum secondary turns it off again (only when number_sync_standbys =
	 * 0, see PrimaryLosesSyncStandby); once every standby is gone the primary
	 * runs alone.
	 */
	{"standby_joined",                   S::Single,           S::WaitPrimary,     kNoPeer,          kNoPeer,             StandbyJoined,                  "the single primary prepares replication for a node that registered", nullptr},
	{"standby_joined",                   S::Primary,          S::ApplySettings,   kNoPeer,          kNoPeer,             StandbyJoined,                  "the primary prepares replication for a node that registered", nullptr},
	{"primary_loses_sync_standby",       S::Primary,          S::WaitPrimary,     kNoPeer,          kNoPeer,             PrimaryLosesSyncStandby,        "no healthy quorum secondary and number_sync_standbys = 0: the primary disables synchronous replication", nullptr},
	{"settings_changed",                 S::Primary,          S::ApplySettings,   kNoPeer,          kNoPeer,             SettingsChanged,                "the primary's synchronous_standby_names changed: it applies the new settings", nullptr},
	{"primary_settings_applied",         S::ApplySettings,    S::Primary,         kNoPeer,          kNoPeer,             PrimarySettingsApplied,         "the primary applied the current settings and no node waits to be let in", nullptr},
	{"last_standby_gone",                S::WaitPrimary,      S::Single,          kNoPeer,          kNoPeer,             LastStandbyGone,                "the primary is the only node left: it runs alone", nullptr},
	{"primary_gains_sync_standby",       S::WaitPrimary,      S::Primary,         kNoPeer,          kNoPeer,             PrimaryGainsSyncStandby,        "enough healthy quorum standbys are secondary: the primary enables synchronous replication", nullptr},

	/*
	 * Switchover (started by perform_switchover, perform_promotion,
	 * enable_maintenance or drop_node of the primary, which assign primary →
	 * draining).  The old primary shut down cleanly and reported draining;
	 * once the candidate has all of its WAL it is demoted and the candidate
	 * stops streaming, so the old primary can later follow the candidate's
	 * new timeline without pg_rewind.
	 */
	{"switchover_candidate_has_all_wal", S::Draining,         S::Demoted,         S::Secondary,     S::PreparePromotion, SwitchoverCandidateHasAllWal,   "the candidate received all the WAL of the draining primary: the old primary is demoted", "the candidate received all the WAL of the draining primary: it stops streaming and prepares its promotion"},

	/*
	 * Election (docs/elections.md), when a primary with two or more standbys
	 * is in demote_timeout: every healthy standby stops streaming and reports
	 * its LSN; once every commit the old primary acknowledged is provably on
	 * a participant (QuorumReported, or allow_data_loss), the participant
	 * with the highest priority (then the most WAL) wins; it first fetches
	 * what the most advanced participant has when it lacks it.
	 */
	{"election_report_lsn",              S::Secondary,        S::ReportLsn,       kNoPeer,          kNoPeer,             ElectionReportLsn,              "the old primary is in demote_timeout: the standby stops streaming and reports its LSN for the election", nullptr},
	{"election_report_lsn",              S::Catchingup,       S::ReportLsn,       kNoPeer,          kNoPeer,             ElectionReportLsn,              "the old primary is in demote_timeout: the standby stops streaming and reports its LSN for the election", nullptr},
	{"election_winner",                  S::ReportLsn,        S::PreparePromotion,kNoPeer,          kNoPeer,             ElectionWinnerPromotes,         "every acknowledged commit is on a participant: the winner has the most advanced WAL and prepares its promotion", nullptr},
	{"election_winner",                  S::ReportLsn,        S::FastForward,     kNoPeer,          kNoPeer,             ElectionWinnerFastForwards,     "every acknowledged commit is on a participant: the winner lacks WAL and fetches it from the most advanced participant", nullptr},
	{"fast_forward_done",                S::FastForward,      S::PreparePromotion,kNoPeer,          kNoPeer,             FastForwardDone,                "the winner fetched the missing WAL and stopped: it prepares its promotion", nullptr},

	/*
	 * Promotion, shared by switchover, failover and election.  The candidate
	 * is promoted only when no node can write any more (PromoteCandidate:
	 * the old primary reports a non-writable state, or the sync proof, or the
	 * demote timeout while it does not report) and no acknowledged commit is
	 * lost (RpoProof); when only the old primary, confirmed down and healthy,
	 * holds WAL the candidate lacks, the candidate fetches it first
	 * (candidate_fetches_wal → fast_forward → fast_forward_done), after which
	 * the WAL proof holds.  It opens for writes once it reports the
	 * promotion, and an old primary still in demote_timeout is demoted then.
	 */
	{"promote_candidate",                S::PreparePromotion, S::StopReplication, kNoPeer,          kNoPeer,             PromoteCandidate,               "the candidate stopped replication and the old primary provably cannot write: promote it", nullptr},
	{"candidate_fetches_wal",            S::PreparePromotion, S::FastForward,     kNoPeer,          kNoPeer,             CandidateFetchesWal,            "a participant that reported late, or the confirmed-down old primary, holds WAL the candidate lacks: the candidate fetches it first", nullptr},
	{"candidate_promoted",               S::StopReplication,  S::WaitPrimary,     S::DemoteTimeout, S::Demoted,          CandidatePromoted,              "the candidate was promoted: it opens for writes without synchronous replication", "the candidate was promoted: the old primary is demoted and rewinds from it"},

	/*
	 * Rejoin.  A demoted old primary the operator dropped leaves; otherwise
	 * it follows the new primary once that one runs (settled, healthy), or
	 * enters maintenance when the operator asked for it.  Election losers
	 * follow the new primary and become secondary once caught up.
	 */
	{"old_primary_dropped",              S::Demoted,          S::Dropped,         kNoPeer,          kNoPeer,             OldPrimaryDropped,              "the old primary the operator dropped was handed over: it leaves the group", nullptr},
	{"old_primary_rejoins",              S::Demoted,          S::Catchingup,      kNoPeer,          kNoPeer,             OldPrimaryRejoins,              "the demoted old primary follows the new primary", nullptr},
	{"old_primary_rejoins",              S::Demoted,          S::Maintenance,     kNoPeer,          kNoPeer,             OldPrimaryRejoinsInMaintenance, "the demoted old primary enters the maintenance the operator asked for", nullptr},
	{"election_loser_joins",             S::ReportLsn,        S::JoinSecondary,   kNoPeer,          kNoPeer,             ElectionLoserJoins,             "the new primary runs: an election participant that did not win follows it", nullptr},
	{"join_secondary_caught_up",         S::JoinSecondary,    S::Secondary,       kNoPeer,          kNoPeer,             JoinSecondaryCaughtUp,          "the election loser is within the lag threshold on the new primary's timeline: it counts for quorum", nullptr},

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

/*
 * InitialState: any number of standbys per group (issue 4): the elections
 * and the generalised proofs (docs/elections.md) no longer assume that the
 * candidate is the only other node.
 */
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
	return SyncNamesOf(group, group.nodes, FindPrimary(group, group.nodes));
}

std::string
StandbyName(int64_t node_id)
{
	return "pg_autopilot_node_" + std::to_string(node_id);
}

} // namespace autopilot::fsm
