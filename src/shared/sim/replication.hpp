/*
 * src/shared/sim/replication.hpp — the data plane of the simulated group:
 * client commits, streaming replication and synchronous acknowledgement
 * (pure zone).  Never throws.
 */
#pragma once

#include "sim/world.hpp"

namespace autopilot::sim {

/* AppendRecord writes one WAL record on node i (a commit, a checkpoint or an end-of-recovery record). */
uint32_t AppendRecord(World &w, int i);

/* WriteCommits: every node on which a client can commit gets one commit, pending until acknowledged. */
void WriteCommits(World &w);

/* Replicate: every streaming standby receives its upstream's WAL (all of it, or part when the engine says so). */
void Replicate(World &w, bool partial);

/* FlushToStandbys: a clean shutdown of node i sends all its WAL to the standbys streaming from it. */
void FlushToStandbys(World &w, int i);

/*
 * AckCommits acknowledges each pending commit whose node's applied
 * synchronous_standby_names is satisfied: '' acknowledges at once (the
 * primary alone), 'ANY k (...)' once k of the named standbys stream from it
 * and have received the commit's record.
 */
void AckCommits(World &w);

} // namespace autopilot::sim
