/*
 * src/shared/group_rules.hpp — the monitor's group rules (pure zone).
 *
 * The monitor gathers one group into a GroupView (zone P, via SPI), calls
 * ProceedGroup (pure, here), and applies the returned assignments (zone P:
 * UPDATE node, INSERT event, NOTIFY state).  Rules are rows of a data table
 * (kGroupRules in group_rules.cpp), evaluated in order, first match wins per
 * node; every firing carries the rule's name, which the monitor writes into
 * its event log.
 *
 * Never calls PostgreSQL.  May throw autopilot::Error on an inconsistent view.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "states.hpp"

namespace autopilot::fsm {

/* One node as the monitor sees it at decision time. */
struct NodeView {
	int64_t node_id = 0;
	std::string name;
	NodeState reported = NodeState::Init;  /* last state the keeper reported */
	NodeState assigned = NodeState::Init;  /* goal the monitor assigned */
	NodeState last_told = NodeState::Init; /* goal its last node_active call returned to the keeper */
	bool healthy = true;                   /* monitor's verdict: reports recent and health check not failed */
	uint64_t lsn = 0;                      /* last reported LSN (flush on a primary, receive/replay on a standby) */
	uint32_t timeline = 0;
	bool streaming = false;         /* a standby's walreceiver is streaming from the primary */
	int candidate_priority = 50;    /* 0..100, 0 = never promoted */
	bool replication_quorum = true; /* counts for synchronous quorum */
	uint64_t assigned_age_ms = 0;   /* how long the node has had its current assigned state */
	bool wants_maintenance = false; /* the operator asked for maintenance on this node */
	bool restarting = false;        /* its keeper announced a clean shutdown within restart_grace */
	/*
	 * report_age_ms: how long ago its last node_active call ran (from
	 * report_time; UINT64_MAX when it never reported).  The timeout proof
	 * counts from max(last report, assignment): min(report_age_ms,
	 * assigned_age_ms) >= primary_demote_timeout_ms (docs/failover.md).
	 */
	uint64_t report_age_ms = UINT64_MAX;
	/*
	 * healthy_for_ms: how long the node has been healthy without a gap (from
	 * node.healthy_since, which the glue resets when a report or a health
	 * check ends an unhealthy period); 0 while unhealthy.  primary_failed
	 * takes a standby as its candidate (or as the standby that could win an
	 * election) only when it has been healthy for node_timeout: right after
	 * the monitor itself was cut off, every node looked unhealthy and the
	 * first to report again must not fail over a primary that simply has not
	 * reported yet (docs/failover.md).
	 */
	uint64_t healthy_for_ms = UINT64_MAX;
	/*
	 * applied_sync_names: the synchronous_standby_names the node reported in
	 * its last node_active call (the value it runs with; '' on a standby).
	 * told_sync_names: the synchronous_standby_names value returned by that
	 * same last node_active call (the one that also returned last_told); ''
	 * before any call.  The keeper may apply the told value right after its
	 * last report, so the proofs check both; settings_changed compares the
	 * told value with SynchronousStandbyNames(group).
	 */
	std::string applied_sync_names;
	std::string told_sync_names;
	/*
	 * sync_since_lsn: the LSN the node reported in the first node_active
	 * call in which its applied_sync_names took their current value
	 * (node.sync_since_lsn; 0 when the names are '' or never reported).
	 * Commits acknowledged before that report may have been acknowledged
	 * under other names (or alone), so the pigeonhole over the current
	 * names does not cover them: RpoProof / QuorumReported also need a
	 * stopped node on the node's timeline at or past this LSN (WAL is
	 * sequential: it holds every earlier commit, docs/elections.md).
	 */
	uint64_t sync_since_lsn = 0;
	bool promotion_target = false; /* perform_promotion named this node: it, not BestCandidate, takes over */
	/*
	 * allow_data_loss: set on the primary by perform_failover(allow_data_loss
	 * => true) (the caller puts the argument into the primary's view before
	 * calling Failover and stores it with the accepted request); the monitor
	 * clears it when the node leaves demote_timeout.  Read by the rules only
	 * while the node is assigned demote_timeout.
	 */
	bool allow_data_loss = false;
	/*
	 * wants_drop: drop_node was accepted for this node while it was the
	 * primary (DropNode); it is switched or failed over first and then goes
	 * demoted → dropped (rule old_primary_dropped).  Never a candidate.
	 */
	bool wants_drop = false;
};

struct GroupView {
	std::string formation;
	int32_t group_id = 0;
	int number_sync_standbys = 0;
	/* A catching-up standby becomes secondary once within this many bytes of the primary. */
	uint64_t sync_lag_threshold_bytes = 16 * 1024 * 1024;
	/* A secondary further behind its failed primary than this is not promoted automatically. */
	uint64_t promote_lag_threshold_bytes = 16 * 1024 * 1024;
	/* How long a primary in demote_timeout may still be writable (> the keeper's fence_timeout). */
	uint64_t primary_demote_timeout_ms = 30000;
	/* pg_autopilot_monitor.node_timeout: a candidate of primary_failed has been healthy at least this long. */
	uint64_t node_timeout_ms = 5000;
	std::vector<NodeView> nodes;
};

/* One decision: node_id's goal moves from `from` to `to` because rule `rule` fired. */
struct Assignment {
	int64_t node_id = 0;
	NodeState from = NodeState::Init;
	NodeState to = NodeState::Init;
	const char *rule = "";   /* static string: the rule's name */
	std::string description; /* human-readable, names the nodes involved */
};

/* A rule as exported to SQL (pg_autopilot.group_rules()) and checked by tests. */
struct RuleInfo {
	const char *name;
	NodeState from; /* assigned state of the node the rule moves */
	NodeState to;
	const char *description;
};

/* GroupRules lists the rule table in evaluation order. */
const std::vector<RuleInfo> &GroupRules();

/*
 * GroupRulePredicateKey identifies the predicate of rule `index` of
 * GroupRules() (equal keys, same function); 0 when out of range.  For the
 * unit tests' "no duplicate rows" check.
 */
std::uintptr_t GroupRulePredicateKey(std::size_t index) noexcept;

/*
 * ProceedGroup applies the rule table to a group until nothing more fires and
 * returns the assignments in firing order (a node may appear once at most per
 * call).  Pure and deterministic.
 */
std::vector<Assignment> ProceedGroup(const GroupView &group);

/*
 * InitialState is the goal of a node that registers into `group` (which does
 * not contain it yet): single for the first node, wait_standby when a primary
 * exists (any number of standbys).  Throws Error (55000) when the group has
 * nodes but no primary to follow, with a hint to retry.
 */
Assignment InitialState(const GroupView &group, int64_t new_node_id, const std::string &new_node_name);

/*
 * SynchronousStandbyNames is the value the group's primary must use:
 * '' while the primary is single or wait_primary or has no quorum standby,
 * otherwise 'ANY k (pg_autopilot_node_<id>, ...)' over the quorum standbys
 * that may stream from the primary's history — every quorum node but the
 * primary and the nodes assigned wait_standby (not cloned yet), demoted
 * (an old primary waiting to rewind) or dropped —, k =
 * max(number_sync_standbys, 1), names ordered by candidate priority
 * (descending) then node id.
 */
std::string SynchronousStandbyNames(const GroupView &group);

/*
 * Operator requests (docs/failover.md).  Each returns the assignments that
 * start the operation, or throws autopilot::Error with SQLSTATE 55000
 * (object not in prerequisite state) or 42704 (unknown node) and a hint when
 * the request must be refused; the caller then changes nothing.
 */
std::vector<Assignment> Switchover(const GroupView &group);
/*
 * Failover (operator-forced).  One standby: primary → demote_timeout and the
 * standby → prepare_promotion; two or more: primary → demote_timeout only,
 * the election rules do the rest.  Reads the primary's allow_data_loss (the
 * caller sets it from the request's argument): a wait_primary is failed over
 * only with allow_data_loss when number_sync_standbys ≥ 1.
 */
std::vector<Assignment> Failover(const GroupView &group);
/*
 * Promotion: a switchover towards node_name (any healthy secondary with
 * candidate_priority > 0 within promote_lag_threshold).  The caller sets
 * promotion_target on that node when it stores the accepted request and
 * clears it when the node is assigned a writable state or the operation ends.
 */
std::vector<Assignment> Promotion(const GroupView &group, const std::string &node_name);
std::vector<Assignment> EnableMaintenance(const GroupView &group, const std::string &node_name);
std::vector<Assignment> DisableMaintenance(const GroupView &group, const std::string &node_name);

/*
 * DropNode removes node_name from the group (rule name drop_node).
 * * A standby (any state but the ones below) → dropped at once; its keeper
 *   reports dropped and idles, then the monitor deletes the row (at once
 *   with force).  Refused (55000) while it is the candidate of an operation
 *   in progress (prepare_promotion, stop_replication, fast_forward) or an
 *   old primary that may still write (draining, demote_timeout); without
 *   force also while it takes part in an operation (report_lsn,
 *   join_secondary, demoted, ...), hint: retry later or force.
 * * The primary: alone (single) → dropped.  Otherwise like perform_switchover
 *   (settled healthy primary: → draining) or perform_failover (unhealthy or
 *   unsettled: → demote_timeout, plus the candidate → prepare_promotion with
 *   one standby); refused (55000) when no standby can take over.  The caller
 *   sets wants_drop on the node; rule old_primary_dropped then moves it
 *   demoted → dropped once a candidate was promoted.
 * Unknown node: 42704.  The caller lowers number_sync_standbys afterwards
 * when it exceeds MaxNumberSyncStandbys of the groups without the node.
 */
std::vector<Assignment> DropNode(const GroupView &group, const std::string &node_name, bool force);

/*
 * QuorumStandbyCount: the group's nodes with replication_quorum on, neither
 * dropped nor being dropped (wants_drop), other than its primary (the node assigned a writable state, else the
 * old primary assigned draining/demote_timeout).  When that primary is being
 * dropped (wants_drop), one of the others becomes the primary: the count is
 * one less (at least 0) — what the group will have once the drop is over.
 */
int QuorumStandbyCount(const GroupView &group);

/*
 * MaxNumberSyncStandbys: the largest number_sync_standbys every group with
 * at least one node accepts, min(QuorumStandbyCount − 1) and ≥ 0; INT_MAX
 * when no group has a node.  For drop_node's automatic lowering.
 */
int MaxNumberSyncStandbys(const std::vector<GroupView> &groups);

/*
 * ValidateNumberSyncStandbys: n < 0 → 22023; n > 0 and n + 1 > the quorum
 * standbys of some group with nodes (QuorumStandbyCount) → 55000 with the
 * counts in the detail.  `groups` are every group of the formation (their
 * number_sync_standbys is ignored).
 */
void ValidateNumberSyncStandbys(const std::vector<GroupView> &groups, int n);

/*
 * ValidateReplicationQuorum: turning replication_quorum of node_name to
 * `quorum` is refused (55000) when number_sync_standbys > 0 and it would
 * leave fewer than number_sync_standbys + 1 quorum standbys; unknown node
 * 42704.  Turning it on, or off on the primary, is always accepted.
 */
void ValidateReplicationQuorum(const GroupView &group, const std::string &node_name, bool quorum);

/* ValidateCandidatePriority: priority outside 0..100 → 22023; unknown node → 42704. */
void ValidateCandidatePriority(const GroupView &group, const std::string &node_name, int priority);

/*
 * QuorumReported (docs/elections.md) tells whether every commit old primary
 * `old_primary_id` can have acknowledged is on a *stopped* node: for its
 * applied and its told synchronous_standby_names (each parsed by
 * ParseSyncNames), at least |ids| − k + 1 of the named nodes are stopped.
 * False when either value is '' or cannot be parsed, or the node is unknown.
 */
bool QuorumReported(const GroupView &group, int64_t old_primary_id);

/*
 * ParseSyncNames parses a synchronous_standby_names value: 'ANY k (a, b)',
 * 'FIRST k (a, b)', 'k (a, b)' and the plain list 'a, b' (= FIRST 1); for
 * the proofs FIRST k is as good as ANY k (a commit waits for k of the
 * names).  Names may be double-quoted; unquoted names compare
 * case-insensitively.  On success sets *k and the node ids named
 * pg_autopilot_node_<id> (other names are counted in *others: they can
 * acknowledge but are never stopped).  False for '', '*' or anything else.
 */
bool ParseSyncNames(const std::string &value, int *k, std::vector<int64_t> *ids, int *others);

/*
 * FastForwardUpstream: for a node assigned fast_forward, the id of the node
 * it must stream from and that node's reported LSN: the old primary when it
 * is confirmed down (assigned demote_timeout, reports a non-writable state:
 * a standby without upstream after its clean demotion), healthy, and ahead
 * of every election participant; otherwise the most advanced election
 * participant (lowest id among equals).  False when the node is not in
 * fast_forward or no node qualifies (docs/elections.md).
 */
bool FastForwardUpstream(const GroupView &group, int64_t node_id, int64_t *upstream_id, uint64_t *upstream_lsn);

/* StandbyName is the application_name and replication slot name of a node. */
std::string StandbyName(int64_t node_id);

} // namespace autopilot::fsm
