/*
 * src/bgworker/election.hpp — the keeper's actions for any number of
 * standbys (PostgreSQL zone, keeper process; docs/elections.md): settings
 * on the primary, the election steps of a standby, leaving the formation,
 * and the operator's priority and quorum pushed by the monitor.
 *
 * Include after the server headers, compat.hpp and keeper.hpp.  Every
 * function may raise ERROR unless its comment says otherwise (the keeper's
 * tick catches it, records it as last_error and retries the action).
 */
#pragma once

#include "keeper.hpp"

namespace autopilot::node {

/*
 * ApplySettings (primary -> apply_settings): a replication slot for every
 * other node of the group, pg_hba.conf lines for them (hba_method), and the
 * monitor's synchronous_standby_names.
 */
ActionResult ApplySettings(const LocalState *ls, const Goal *goal);

/*
 * ReportLsn (secondary/catchingup -> report_lsn): stop streaming for good
 * (primary_conninfo '', confirmed reload, the walreceiver has exited) so the
 * report carries the final LSN and streaming = false.  Also makes sure this
 * node can serve WAL to a fast_forward peer (HBA; warns when hot_standby or
 * max_wal_senders prevent it).
 */
ActionResult ReportLsn(const LocalState *ls, const Goal *goal);

/*
 * FastForward (report_lsn -> fast_forward): stream without a slot from the
 * upstream named by the monitor (a standby in recovery: cascading
 * replication) until the received LSN reaches upstream_lsn, then stop
 * streaming again and report.
 */
ActionResult FastForward(const LocalState *ls, const Goal *goal);

/*
 * LeaveFormation (any -> dropped): a standby stops streaming (the primary
 * drops its slot and no longer names it); a writable node other than single
 * raises the login fence (another node may hold its role now).  The keeper
 * then reports dropped once and idles (keeper.cpp).
 */
ActionResult LeaveFormation(const LocalState *ls, fsm::NodeState current);

/*
 * StopStreaming empties primary_conninfo (confirmed reload) and waits until
 * the startup process has stopped the walreceiver, at most monitor_timeout;
 * `why` names the step in the log.  InProgress when it is still running.
 */
ActionResult StopStreaming(const char *why);

/*
 * ApplyWantedSettings writes the candidate_priority / replication_quorum the
 * operator set on the monitor into postgresql.auto.conf (the keeper's own
 * writer, confirmed reload), so that the node's GUCs — the one source of
 * truth — and the monitor agree.  Never raises: a failure is a tick error,
 * logged once, and the same wanted values are not retried (an override the
 * writer cannot beat would otherwise cost a reload timeout every tick).
 */
void ApplyWantedSettings(const Goal *goal);

/*
 * SyncQuorumStreams: at least k = max(1, num_sync) standbys named in the
 * synchronous_standby_names this primary runs with stream from it.  Then no
 * election can have completed without this node (docs/elections.md: a winner
 * needs |ids| - k + 1 of them stopped, and a stopped standby never streams
 * from the old primary again), so no other node was promoted.  Never raises.
 */
bool SyncQuorumStreams(const LocalState *ls);

} // namespace autopilot::node
