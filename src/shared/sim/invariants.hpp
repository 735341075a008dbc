/*
 * src/shared/sim/invariants.hpp — DESIGN.md §6 as checks on the simulated
 * group (pure zone).  Precise definitions in invariants.cpp and
 * docs/simulator.md.  Violations are appended to World::violations; never
 * throws.
 */
#pragma once

#include <string>

#include "sim/world.hpp"

namespace autopilot::sim {

/*
 * RefreshEpochs opens and closes each node's acknowledgement epoch (the
 * interval in which CanCommit holds) after anything changed a server.  An
 * epoch that opens must contain every durable commit acknowledged before
 * (invariant 2); a closing epoch drops the node's pending commits (the
 * clients' sessions died, nothing was acknowledged).
 */
void RefreshEpochs(World &w);

/* OnAck records that `node` acknowledged commit `c` now and checks invariant 1. */
void OnAck(World &w, int node, Commit &c);

/* CheckStep checks invariant 3 (no diverged node serving reads) at the end of a step. */
void CheckStep(World &w);

/*
 * Live tells whether the group is settled (invariant 5): one node settled in
 * a writable state, serving, and every other node not in maintenance
 * settled secondary and streaming from it.  On false, `why` says what is
 * missing.
 */
bool Live(const World &w, std::string *why);

void AddViolation(World &w, const char *invariant, const std::string &detail);

} // namespace autopilot::sim
