/*
 * src/shared/keeper_fsm.hpp — the keeper's transition table (pure zone).
 *
 * The keeper reports `current`, the monitor assigns `goal`; the keeper looks
 * up the row {current, goal} and runs its action (zone P, src/bgworker/).
 * Every action is idempotent: after a crash or a failed attempt the same row
 * is found again and the action is retried; current is persisted only once
 * the action has succeeded.  Rows are data (kKeeperTransitions in
 * keeper_fsm.cpp), one per line, grouped by scenario; first match wins.
 */
#pragma once

#include <vector>

#include "states.hpp"

namespace autopilot::fsm {

enum class KeeperAction : uint8_t {
	None,            /* nothing to do on this node: report the new state */
	BecomeSingle,    /* make sure we run as a primary without replication (no standby.signal, sync names '') */
	PrepareStandbys, /* primary: replication slots for the group's standbys, synchronous_standby_names '' */
	EnableSyncRep,   /* primary: set synchronous_standby_names from the monitor */
	DisableSyncRep,  /* primary: synchronous_standby_names = '' so writes keep flowing */
	InitStandby,     /* standby: clone from the primary (fresh node) or follow it (same system) */
	FollowPrimary,   /* standby: make sure primary_conninfo/slot point at the current primary */
	DemoteClean,     /* planned: fast shutdown + same-PID re-exec as a standby without upstream */
	DemoteRewind,    /* unplanned: shutdown + pg_rewind from the new primary in the pre-start hook + re-exec */
	StopReplication, /* candidate: primary_conninfo '' so the walreceiver stops; report the final LSN */
	Promote,         /* candidate: promote, wait for the end of recovery, immediate checkpoint */
	/* Issue 4 (docs/elections.md). */
	ApplySettings,  /* primary: slots + HBA for every other node, synchronous_standby_names from the monitor, report */
	ReportLsn,      /* election: primary_conninfo '' (like StopReplication), wait until not streaming, report the LSN */
	FastForward,    /* elected: stream from upstream_* (no slot) until upstream_lsn is received, then stop, report */
	JoinNewPrimary, /* election loser: point primary_conninfo and the slot at the new primary, report */
	Dropped,        /* removed from the formation: report dropped, persist it locally, then idle */
};

const char *KeeperActionName(KeeperAction a) noexcept;

struct KeeperTransition {
	NodeState from;
	NodeState to;
	KeeperAction action;
	const char *why;
};

/* KeeperTransitions lists the table in lookup order. */
const std::vector<KeeperTransition> &KeeperTransitions();

/* FindKeeperTransition returns the row for (from, to), or nullptr if there is none. */
const KeeperTransition *FindKeeperTransition(NodeState from, NodeState to) noexcept;

} // namespace autopilot::fsm
