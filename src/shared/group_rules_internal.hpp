/*
 * src/shared/group_rules_internal.hpp — helpers shared by the files of the
 * monitor's rules (pure zone, not a public interface): group_rules.cpp (the
 * rule table, ProceedGroup, primary and standby rules), election.cpp (the
 * election and promotion proofs of docs/elections.md) and
 * group_rules_requests.cpp (operator requests and validations).
 *
 * No server headers.  Helpers that can throw say so; the rest never throw
 * anything but std::bad_alloc.
 */
#pragma once

#include <string>
#include <vector>

#include "group_rules.hpp"

namespace autopilot::fsm::detail {

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

std::string Label(const NodeView &n);
std::string GroupLabel(const GroupView &g);

/* Settled: the node is assigned `s` and reported it. */
inline bool
Settled(const NodeView &n, NodeState s)
{
	return n.assigned == s && n.reported == s;
}

/*
 * FindPrimary returns the node assigned a writable state, nullptr if none.
 * Throws Error (XX000) when two nodes are.
 */
const NodeView *FindPrimary(const GroupView &group, const std::vector<NodeView> &nodes);

/* OldPrimary: the first node assigned draining or demote_timeout (an operation is under way), or nullptr. */
const NodeView *OldPrimary(const std::vector<NodeView> &nodes);

/* Standbys: non-dropped nodes other than `primary` (docs/elections.md vocabulary). */
int Standbys(const std::vector<NodeView> &nodes, const NodeView &primary);

/* IsCandidate: settled healthy secondary on the primary's timeline, priority > 0, no maintenance or drop wanted. */
bool IsCandidate(const NodeView &n, const NodeView &primary);

/*
 * BestCandidate: highest priority, then LSN, then lowest id among IsCandidate
 * (within *max_lag when set, healthy for at least min_healthy_ms).
 */
const NodeView *BestCandidate(const std::vector<NodeView> &nodes, const NodeView &primary, const uint64_t *max_lag,
							  uint64_t min_healthy_ms = 0);

/* MayWrite: a node reporting `s` may accept writes (writable states and stop_replication). */
bool MayWrite(NodeState s);

/* Stopped (docs/elections.md): settled report_lsn, fast_forward or prepare_promotion, not streaming. */
bool Stopped(const NodeView &n);

/* QuorumReportedIn: QuorumReported over a working copy; on false *why says what is missing. */
bool QuorumReportedIn(const std::vector<NodeView> &nodes, const NodeView &old, std::string *why);

/*
 * SyncSinceCovered: a stopped node on old's timeline is at or past
 * old.sync_since_lsn (commits acknowledged before its current names took
 * effect); on false *why says what is missing.  Part of the RPO proof, not
 * of CannotWrite (it says nothing about what old can still acknowledge).
 */
bool SyncSinceCovered(const std::vector<NodeView> &nodes, const NodeView &old, std::string *why);

/*
 * RpoProof: no commit old primary `old` acknowledged is lost by promoting
 * `holder` (the candidate, or the most advanced election participant;
 * nullptr: none known); *why names the proof or what is missing.
 */
bool RpoProof(const Ctx &ctx, const NodeView &old, const NodeView *holder, std::string *why);

/* CannotWrite: old primary `old` provably cannot acknowledge a commit any more; *why names the proof. */
bool CannotWrite(const Ctx &ctx, const NodeView &old, std::string *why);

/* Election and promotion predicates (election.cpp), referenced by the rule table. */
bool PrimaryFailed(const Ctx &ctx, const NodeView &node, Firing *fire);
bool ElectionReportLsn(const Ctx &ctx, const NodeView &node, Firing *fire);
bool ElectionWinnerPromotes(const Ctx &ctx, const NodeView &node, Firing *fire);
bool ElectionWinnerFastForwards(const Ctx &ctx, const NodeView &node, Firing *fire);
bool FastForwardDone(const Ctx &ctx, const NodeView &node, Firing *fire);
bool CandidateFetchesWal(const Ctx &ctx, const NodeView &node, Firing *fire);
bool PromoteCandidate(const Ctx &ctx, const NodeView &node, Firing *fire);
bool ElectionLoserJoins(const Ctx &ctx, const NodeView &node, Firing *fire);

/* The new primary runs (settled in a writable state, healthy). */
bool NewPrimaryReady(const Ctx &ctx);

/* MakeAssignment builds the assignment of `node` from its current assigned state to `to`. */
Assignment MakeAssignment(const NodeView &node, NodeState to, const char *rule, std::string description);

/* Index of node_id in nodes; nodes.size() when absent. */
std::size_t IndexOf(const std::vector<NodeView> &nodes, int64_t node_id);

/* SortedNodes: a copy of the group's nodes ordered by id (every decision is independent of input order). */
std::vector<NodeView> SortedNodes(const GroupView &group);

/* Refuse throws Error 55000 with message, detail and hint. */
[[noreturn]] void Refuse(const std::string &message, const std::string &detail, const std::string &hint);

} // namespace autopilot::fsm::detail
