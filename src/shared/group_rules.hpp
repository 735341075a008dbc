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
	/* Issue 4 (docs/elections.md). */
	bool reported_since_assigned = false; /* a node_active call arrived after the current goal was assigned */
	std::string applied_sync_names;       /* synchronous_standby_names the node reports it runs with */
	std::string told_sync_names;          /* synchronous_standby_names node_active last returned to it */
	bool promotion_target = false;        /* perform_promotion named this node: it, not BestCandidate, takes over */
	bool allow_data_loss = false;         /* set on an old primary by perform_failover(allow_data_loss => true) */
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
 * exists.  Throws Error (55000) when the group has nodes but no primary to
 * follow, with a hint to retry.
 */
Assignment InitialState(const GroupView &group, int64_t new_node_id, const std::string &new_node_name);

/*
 * SynchronousStandbyNames is the value the group's primary must use:
 * '' while the primary is single or wait_primary or has no quorum standby,
 * otherwise 'ANY k (pg_autopilot_node_<id>, ...)' over the quorum standbys,
 * k = max(number_sync_standbys, 1), names ordered by candidate priority
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
std::vector<Assignment> Failover(const GroupView &group); /* operator-forced */
std::vector<Assignment> Promotion(const GroupView &group, const std::string &node_name);
std::vector<Assignment> EnableMaintenance(const GroupView &group, const std::string &node_name);
std::vector<Assignment> DisableMaintenance(const GroupView &group, const std::string &node_name);

/*
 * FastForwardUpstream: for a node assigned fast_forward, the id of the
 * election participant it must stream from (the most advanced, lowest id
 * among equals) and that node's reported LSN; false when the node is not in
 * fast_forward or no participant qualifies (docs/elections.md).
 */
bool FastForwardUpstream(const GroupView &group, int64_t node_id, int64_t *upstream_id, uint64_t *upstream_lsn);

/* StandbyName is the application_name and replication slot name of a node. */
std::string StandbyName(int64_t node_id);

} // namespace autopilot::fsm
