/*
 * src/bgworker/restart.hpp — same-PID restart of the postmaster and the
 * pre-start hook (PostgreSQL zone; see DESIGN.md §4 and
 * research/bgworker-feasibility.md §5c, §6, research/reexec-pg17-18.md).
 *
 * AutopilotPrestartInit runs first in _PG_init, in the postmaster only,
 * before shared memory exists: it captures argv (/proc/self/cmdline) and the
 * original stdout/stderr, removes a stale restart marker, runs a pending
 * action described by <PGDATA>.autopilot/pending (clone swap) and re-execs
 * the postmaster with the same PID when it did, and registers the
 * on_proc_exit callback that re-execs after a fast shutdown when the
 * one-shot marker exists.
 *
 * RequestRestart runs in the keeper: it writes the pending action (if any)
 * and the marker, then sends SIGINT (fast shutdown) to the postmaster.
 */
#pragma once

#include <cstddef>

#include "datadir.hpp"

/* Called from _PG_init while process_shared_preload_libraries_in_progress. */
void AutopilotPrestartInit(void);

/* Returns false with errbuf set when the files could not be written (nothing was signalled). */
bool RequestRestart(const autopilot::datadir::PendingAction *action, const char *reason, char *errbuf, size_t errlen);
