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

enum class CloneStatus { Idle, Running, Done, Failed };

/* CloneStart removes a stale <PGDATA>.clone and starts pg_basebackup from source_conninfo. */
bool CloneStart(const char *source_conninfo, char *errbuf, size_t errlen);

/* ClonePoll reports progress; on Done the clone is complete and fsynced. Failed sets errbuf. */
CloneStatus ClonePoll(char *errbuf, size_t errlen);

/* CloneCancel terminates a running pg_basebackup and reaps it; safe to call at any time. */
void CloneCancel(void);
