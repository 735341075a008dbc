/*
 * src/shared/sim/monitor_model.hpp — the simulated monitor (pure zone).
 *
 * Models the monitor glue (src/monitor_ext/: node_api.cpp, group_glue.cpp,
 * health_check.cpp, operator_api.cpp) around the REAL pure rules:
 * fsm::InitialState, fsm::ProceedGroup, fsm::SynchronousStandbyNames and
 * the operator requests run unchanged on a GroupView built from the node
 * table, exactly as the glue builds it.  A rules exception is recorded as a
 * violation (rules_error); refusals of operator calls are counted.
 */
#pragma once

#include <string>

#include "sim/world.hpp"

namespace autopilot::sim {

/* What node_active returns to a keeper. */
struct Answer {
	NodeState assigned = NodeState::Init;
	int primary = -1;              /* node assigned a writable state, -1 none */
	uint32_t primary_timeline = 0; /* primary_timeline: the primary's reported timeline, 0 none */
	std::string names;
	int upstream = -1; /* fast_forward: node to stream from */
	uint64_t upstream_lsn = 0;
};

/* BuildView is GatherGroup + BuildView of group_glue.cpp: the monitor's view of the group now. */
fsm::GroupView BuildView(const World &w);

/* ProceedAndApply runs the group rules and applies their assignments (state_change_time = now). */
void ProceedAndApply(World &w);

/* RegisterNode is register_node: false when InitialState refuses (the keeper retries later). */
bool RegisterNode(World &w, int node);

/* NodeActive records a report, runs the rules and returns the node's goal. */
Answer NodeActive(World &w, const Report &report);

/* NodeStopping records a clean-shutdown announcement (restart_grace). */
void NodeStopping(World &w, int node);

/* HealthRound probes every node once and re-runs the rules (the health-check worker's round). */
void HealthRound(World &w);

/* OperatorCall runs one operator request of the schedule against the monitor. */
void OperatorCall(World &w, const Event &e);

/* MaxGroupSize is the largest group InitialState accepts (2 while issue 4's elections have not landed). */
int MaxGroupSize();

} // namespace autopilot::sim
