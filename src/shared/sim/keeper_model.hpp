/*
 * src/shared/sim/keeper_model.hpp — the simulated keeper and its server
 * (pure zone).
 *
 * The keeper's decisions come from the REAL table (fsm::FindKeeperTransition);
 * what each KeeperAction does to the server, the tick around it (isolation
 * check, login fence, heartbeat, promote-back, steady state) are a model of
 * src/bgworker/keeper.cpp, module.cpp (StartupFence) and restart.cpp,
 * written from their code and docs/failover.md, docs/elections.md.
 */
#pragma once

#include "sim/world.hpp"

namespace autopilot::sim {

/* KeeperTick runs node i's keeper for one heartbeat (and at once again after a completed action). */
void KeeperTick(World &w, int i);

/* StartServer starts node i's postmaster: standby.signal and the keeper's files decide role and fence. */
void StartServer(World &w, int i);

/* StopServer stops node i's postmaster: clean (fast shutdown: WAL sent to streaming standbys) or a crash. */
void StopServer(World &w, int i, bool clean);

/* StartKeeper starts node i's keeper process with empty memory (its state file survives). */
void StartKeeper(World &w, int i);

} // namespace autopilot::sim
