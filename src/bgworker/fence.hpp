/*
 * src/bgworker/fence.hpp — self-fencing of an isolated primary and the
 * isolation watch (PostgreSQL zone, keeper process; docs/failover.md
 * "Self-fencing").
 *
 * Include after the server headers and keeper.hpp.  Plain functions, POD
 * arguments.
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace autopilot::node {

/*
 * How long a standby's last reply proves that it is reachable.  Standbys
 * reply at least every wal_receiver_status_interval (10 s by default) even
 * when idle, so a standby whose reply time has not moved for this long plus
 * fence_timeout is taken as lost.
 */
constexpr int kStandbyReplySlackMs = 10000;

/* CreateStandbySignal creates and fsyncs PGDATA/standby.signal.  Raises ERROR on an I/O failure. */
void CreateStandbySignal(void);

/*
 * RunTrapped runs fn(arg) and turns an ERROR it raises into false with the
 * message in errbuf (the error state is flushed, LWLocks released), so the
 * caller can fall back to something else.  FATAL is not caught.
 */
bool RunTrapped(void (*fn)(void *), void *arg, char *errbuf, size_t errlen);

/*
 * FenceAndCrashRestart is the unconditional fence: login fence up
 * (persisted), standby.signal, best-effort primary_conninfo = '' and
 * restart_after_crash = on (written and signalled, not waited for), then
 * proc_exit(2), which makes the postmaster crash-restart into standby mode.
 * Each step runs in its own error trap: a failing step is logged and the
 * next one runs; the exit always happens.  Interrupts are held meanwhile.
 */
[[noreturn]] void FenceAndCrashRestart(const char *why);

/* FenceNoteMonitorOk records a successful call to the monitor (node_active) for the isolation watch. */
void FenceNoteMonitorOk(void);

/*
 * FenceRememberPeers records the node ids named by the monitor's
 * standby_slots list (pg_autopilot_node_<id>, the group's other nodes) in
 * shared memory and in <PGDATA>.autopilot/peers, so that a monitor outage or
 * a restart does not forget which walsenders are this group's standbys.
 * Never raises (a file that cannot be written is logged).
 */
void FenceRememberPeers(const char *standby_slots, int64_t self_id);

/* FenceLoadPeers reads <PGDATA>.autopilot/peers into shared memory unless the list is known already. */
void FenceLoadPeers(void);

/*
 * CheckIsolation fences the node (FenceAndCrashRestart, never returns then)
 * when it is `watched` (writable, replaceable by the monitor) and has neither
 * reached the monitor nor had a reply from a streaming peer standby for
 * fence_timeout.  Only physical walsenders in state streaming whose
 * application_name is pg_autopilot_node_<id> of another node of the group
 * count: a pg_receivewal or pg_basebackup never keeps an isolated primary
 * writable.  The clock lives in shared memory (a keeper restart does not
 * reset it).
 */
void CheckIsolation(bool watched, int64_t self_id);

} // namespace autopilot::node
