/*
 * src/bgworker/diverged.hpp — detection of a standby whose WAL went beyond
 * the point where the primary's timeline forked off its own (PostgreSQL
 * zone, keeper process; DESIGN.md §6.3, §6.5).
 *
 * Such a standby (typically one that kept receiving WAL from the old
 * primary while it was left out of an election) can never follow the new
 * primary: its walreceiver loops on "new timeline N forked off current
 * database system timeline M before current recovery point".  The keeper
 * detects it without parsing logs, raises the login fence (it must not
 * serve reads the primary lacks, DESIGN.md §6.3) and rewinds it with the
 * existing DemoteRewind path (keeper.cpp).
 *
 * Include after the server headers, compat.hpp and keeper.hpp.
 */
#pragma once

#include <cstdint>

#include "keeper.hpp"

namespace autopilot::node {

/*
 * StandbyDiverged is called by a following standby (catchingup, secondary,
 * join_secondary, in recovery, goal's primary of the same system) once per
 * steady tick, by an election participant (report_lsn) once the goal names
 * the new primary, and with the last answer in ticks whose heartbeat fails
 * (the monitor may be lost right after it named a new primary).  When its
 * walreceiver has not been streaming for kSuspectHeartbeats heartbeats — at
 * once when the goal's primary is on a later timeline than every position
 * of ours, or is another node or timeline than the last probe's — it asks
 * the primary (a physical replication
 * connection, IDENTIFY_SYSTEM then TIMELINE_HISTORY, deadline
 * monitor_timeout, at most once per kRecheckMs) where the primary's history
 * left this node's timeline; when this node's received or replayed LSN on
 * that timeline is beyond that switch point (or its timeline is not in the
 * primary's history) it has diverged: the decision is logged with both LSNs
 * and the timelines, the login fence goes up, and true is returned — from
 * then on for the rest of this process (the caller rewinds it).  A primary
 * that cannot be reached or asked is "not known to have diverged" (DEBUG1
 * log, retried later).  May raise ERROR only from SetFence (fence file I/O)
 * and the wait machinery.
 */
bool StandbyDiverged(const Goal *goal, uint64_t system_identifier);

/*
 * FetchSourceDiverged is called by a node in fast_forward: while its
 * walreceiver does not stream, at most once per kRecheckMs, it asks the
 * node it must fetch WAL from (goal->upstream_*) the same way.  True when
 * this node's WAL went past the point where the source's history left our
 * timeline — it can never fetch from it (the winner of an election on an
 * older timeline than the most advanced participant, simulator seeds 9271,
 * 13126): the caller rewinds it onto the source.  Logged; no fence here.
 */
bool FetchSourceDiverged(const Goal *goal, uint64_t system_identifier);

/*
 * DivergedBlocksFenceLift: true while the standby's login fence must stay up
 * although its walreceiver is connected: this process found it diverged, or
 * the walreceiver is connected but not in state streaming (waiting at the
 * end of a timeline it cannot leave is what a diverged standby does).
 * Never raises.
 */
bool DivergedBlocksFenceLift(void);

} // namespace autopilot::node
