/*
 * src/bgworker/clone.hpp — taking a pg_basebackup of the primary into
 * <PGDATA>.clone while this server runs (PostgreSQL zone, keeper process).
 *
 * The child is fork+exec'd (it only ever execs or _exits), its output goes to
 * <PGDATA>.autopilot/clone.log, and it is polled with waitpid(WNOHANG) from
 * the keeper's loop, so the keeper keeps reporting and stays interruptible.
 * CloneCancel kills it; the keeper calls it from its exit callback so a
 * shutdown never waits for a running base backup.
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include <sys/types.h>

enum class CloneStatus { Idle, Running, Done, Failed };

/* CloneStart removes a stale <PGDATA>.clone and starts pg_basebackup from source_conninfo. */
bool CloneStart(const char *source_conninfo, char *errbuf, size_t errlen);

/* ClonePoll reports progress; on Done the clone is complete and fsynced. Failed sets errbuf. */
CloneStatus ClonePoll(char *errbuf, size_t errlen);

/* CloneCancel terminates a running pg_basebackup and reaps it; safe to call at any time. */
void CloneCancel(void);

/*
 * WaitChildren waits up to timeout_ms until child `pid` has been reaped
 * (*status set), or with pid == -1 until this process has no child left.
 * Returns true when that happened (also when there was nothing to wait for),
 * false on timeout.  Never sleeps (sigtimedwait on SIGCHLD), never raises;
 * usable in exit callbacks and in the postmaster's re-exec path.
 */
bool WaitChildren(pid_t pid, int timeout_ms, int *status) noexcept;
