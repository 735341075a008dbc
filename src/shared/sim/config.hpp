/*
 * src/shared/sim/config.hpp — what one simulated schedule runs with (pure zone).
 *
 * Time is logical: every step advances the clock by step_ms and every keeper
 * ticks once (plus immediate re-ticks after a completed action, like the real
 * keeper's "return 0").  The timeouts below keep the proportions of the real
 * defaults (DESIGN.md §2, docs/failover.md) but are short, so a schedule of a
 * hundred steps covers several failovers: what matters for safety is their
 * order, which CheckTiming states (the keeper's fence must be up before the
 * monitor's demote timeout runs out).  LSNs count WAL records, so the lag
 * thresholds are in records.
 */
#pragma once

#include <cstdint>
#include <string>

namespace autopilot::sim {

struct SimConfig {
	int nodes = 2;       /* group size, 2..5 (capped to what InitialState accepts, see MaxGroupSize) */
	int steps = 60;      /* steps with faults and operator calls */
	int heal_steps = 60; /* after the faults heal, liveness must hold within this many steps */

	/* Timing, logical milliseconds (one step = one keeper heartbeat). */
	uint64_t step_ms = 500;
	uint64_t node_timeout_ms = 2000;   /* monitor: a report older than this makes a node unhealthy */
	int health_check_max_retries = 1;  /* monitor: probes without an answer before "unhealthy" */
	uint64_t startup_grace_ms = 2500;  /* monitor: stale reports do not count right after its start */
	uint64_t restart_grace_ms = 2500;  /* monitor: a clean shutdown is not a failure for this long */
	uint64_t fence_timeout_ms = 3000;  /* keeper: an isolated primary fences itself after this */
	uint64_t reply_slack_ms = 1000;    /* keeper: a standby's last reply counts this long (kStandbyReplySlackMs) */
	uint64_t monitor_timeout_ms = 500; /* keeper: node_active deadline */
	uint64_t primary_demote_timeout_ms = 6000; /* monitor: > fence_timeout + reply_slack + monitor_timeout */
	/*
	 * keeper (diverged.cpp): a following standby that has not streamed for
	 * this many heartbeats (kSuspectHeartbeats) asks the primary for its
	 * timeline history, then at most every diverged_recheck_steps heartbeats
	 * (kRecheckMs 5 s = 5 default heartbeats of 1 s).
	 */
	int diverged_suspect_heartbeats = 2;
	int diverged_recheck_heartbeats = 5;

	uint64_t sync_lag_threshold = 4;    /* records */
	uint64_t promote_lag_threshold = 8; /* records */

	int number_sync_standbys = -1; /* -1: drawn per schedule */
	bool async_standbys = true;    /* some standbys may have replication_quorum = off (drawn per schedule) */
	bool keeper_kills = true;      /* schedule kills of the keeper process (restarts its isolation timer) */
	/*
	 * Also hold commits acknowledged through a synchronous quorum while
	 * number_sync_standbys = 0 to RPO 0 (stronger than DESIGN.md §6.2, which
	 * only promises it with number_sync_standbys >= 1).
	 */
	bool strict_sync = false;
	bool trace = false; /* record a human-readable trace (slow: for printing a failing seed) */
};

/* CheckTiming returns "" when the timeouts respect DESIGN.md's order, else why not. */
inline std::string
CheckTiming(const SimConfig &c)
{
	if (c.fence_timeout_ms + c.reply_slack_ms + c.monitor_timeout_ms >= c.primary_demote_timeout_ms)
		return "fence_timeout + reply slack + monitor_timeout must be below primary_demote_timeout";
	if (c.nodes < 2 || c.nodes > 5)
		return "nodes must be 2..5";
	return "";
}

} // namespace autopilot::sim
