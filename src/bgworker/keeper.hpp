/*
 * src/bgworker/keeper.hpp — what the files of the data-node extension share
 * (PostgreSQL zone): the GUCs, the status struct in shared memory, local state
 * gathering, the postgresql.auto.conf writer and slot maintenance.
 *
 * Include after the server headers (postgres.h first) and compat.hpp.
 * Everything here is POD or plain functions: safe on frames that ereport.
 */
#pragma once

extern "C" {
#include "storage/spin.h"
}

#include <cstddef>
#include <cstdint>

#include "states.hpp"

namespace autopilot::node {

/* GUCs (module.cpp).  Strings are never NULL once _PG_init has run. */
extern char *guc_monitor;
extern char *guc_node_name;
extern char *guc_hostname;
extern char *guc_formation;
extern char *guc_replication_user;
extern int guc_candidate_priority;
extern bool guc_replication_quorum;
extern int guc_heartbeat_interval_ms;
extern int guc_monitor_timeout_ms;
extern int guc_fence_timeout_ms;

/* True when _PG_init ran during shared_preload_libraries (the keeper exists). */
extern bool preloaded;

constexpr size_t kNameLen = 64;    /* node and formation names: 1..63 bytes */
constexpr size_t kStateLen = 32;   /* state labels */
constexpr size_t kErrorLen = 1024; /* last_error */

/* The most nodes of a group the isolation watch remembers besides this one (fence.cpp). */
constexpr int kMaxPeers = 32;

/*
 * FenceWatch (fence.cpp) is what the isolation check needs to remember
 * across a restart of the keeper process (not of shared memory: a crash
 * restart starts it again).  TimestampTz values, 0 = never.
 */
struct FenceWatch {
	int64_t watch_since;       /* when the node became writable and watched; 0 while not watched */
	int64_t last_monitor_ok;   /* last successful node_active */
	int64_t last_peer_contact; /* last time a peer standby's reply time moved (our clock) */
	int64_t seen_peer_reply;   /* newest peer reply time seen (the standby's clock) */
	bool peers_known;          /* peer_ids holds the monitor's (or the peers file's) list */
	int32_t n_peers;
	int64_t peer_ids[kMaxPeers]; /* node ids of the group's other nodes (standby_slots) */
};

/*
 * KeeperShared is the keeper's status, written by the keeper and read by
 * pg_autopilot.status() in any backend.  Every field is read and written
 * under `mutex` (a spinlock: only memcpy inside).
 */
struct KeeperShared {
	slock_t mutex;
	pid_t keeper_pid;       /* 0 while no keeper runs */
	int64_t node_id;        /* 0 until registered */
	int32_t group_id;       /* -1 until registered */
	bool monitor_reachable; /* the last call to the monitor succeeded */
	char node_name[kNameLen];
	char formation[kNameLen];
	char current_state[kStateLen];
	char assigned_state[kStateLen];
	char last_error[kErrorLen];
	/*
	 * The login fence (module.cpp's ClientAuthentication_hook refuses every
	 * non-replication login while it is up).  Set by the postmaster at
	 * shared-memory initialisation (StartupFence) and by the keeper; cleared
	 * only by the keeper.
	 */
	bool fenced;
	char fence_reason[256];
	/* The isolation watch of fence.cpp (see FenceWatch): survives a restart of the keeper process. */
	FenceWatch fence_watch;
};

extern KeeperShared *keeper_shared; /* nullptr when not preloaded */

/* Snapshot copy for readers. */
void ReadKeeperShared(KeeperShared *out);

/*
 * SetFence raises (fenced = true) or lifts the login fence: the shared flag
 * and the persistent <PGDATA>.autopilot/fenced file (so that a crash restart
 * comes back fenced), and logs the change with `why`.  Keeper process.
 * Raises ERROR when the file cannot be written or removed (the flag is set
 * first when raising the fence, cleared last when lifting it).
 */
void SetFence(bool fenced, const char *why);
bool IsFenced(void);

/*
 * ValidateSettings checks the identity GUCs (monitor, node_name, hostname,
 * formation).  Returns true when they are usable; otherwise writes every
 * problem, joined by "; ", into msg.  Never raises.
 */
bool ValidateSettings(char *msg, size_t len);

/* What the keeper knows about its own server, read from shared memory (local_state.cpp). */
struct LocalState {
	bool in_recovery;
	uint32_t timeline;
	uint64_t lsn; /* flush LSN on a primary, max(receive, replay) on a standby */
	bool wal_receiver_streaming;
	uint64_t system_identifier;
	int streaming_walsenders;   /* walsenders in state streaming */
	int sync_candidates;        /* of those, candidates for synchronous replication */
	int64_t last_standby_reply; /* newest reply time (TimestampTz) of a streaming walsender, 0 when none */
	bool wal_receiver_running;  /* a walreceiver exists and is not stopped or waiting for instructions */
	char sender_host[256];      /* walreceiver's primary host ("" when none) */
	int sender_port;            /* walreceiver's primary port (0 when none) */
};

/* ReadLocalState fills st; needs no lock of the caller and no transaction. */
void ReadLocalState(LocalState *st);

/*
 * SetAutoConf writes `n` settings into postgresql.auto.conf (an empty value
 * removes the line), makes the postmaster reload and waits until this
 * process' own reload shows every new value, for at most timeout_ms.
 * Does nothing (and does not signal) when all values are already in effect.
 * timeout_ms <= 0 writes and signals without waiting for the confirmation.
 * Raises ERROR on an invalid value, an I/O failure, or an unconfirmed reload.
 */
void SetAutoConf(int n, const char *const *names, const char *const *values, int timeout_ms);

/*
 * EnsureSlots creates a persistent physical slot for every name in the
 * comma-separated `wanted` list and drops every other pg_autopilot_node_*
 * slot.  Logs and continues on a failure of one slot; never raises.
 */
void EnsureSlots(const char *wanted);

/* The prefix of the slots and application names the keeper manages. */
constexpr const char *kStandbyPrefix = "pg_autopilot_node_";

/* ---------- the keeper's tick, shared by keeper.cpp and the action files ---------- */

/* Outcome of a keeper action: Done advances the current state, the others retry at the next tick. */
enum class ActionResult { Done, InProgress, Failed };

/* What node_active answered (keeper.cpp, Heartbeat; docs/protocol.md, docs/elections.md). */
struct Goal {
	fsm::NodeState assigned;
	bool has_primary;
	int64_t primary_node_id;
	char primary_host[256];
	int primary_port;
	uint64_t primary_sysid;
	uint32_t primary_timeline; /* the primary's last reported timeline (primary_timeline), 0 unknown */
	bool has_ssn;
	char ssn[1024];
	bool has_slots;
	char standby_slots[2048];
	/* fast_forward: the election participant to stream from (upstream_*), NULL otherwise. */
	bool has_upstream;
	int64_t upstream_node_id;
	char upstream_host[256];
	int upstream_port;
	uint64_t upstream_lsn;
	/* Values the operator set on the monitor that this node's GUCs must take (NULL: none pending). */
	bool has_wanted_priority;
	int wanted_priority;
	bool has_wanted_quorum;
	bool wanted_quorum;
};

/*
 * SetTickError records a problem of this tick (the first one wins; status()
 * and the monitor see it) and logs it at `level` when it differs from what
 * status() shows now; level 0: never log.  SetTickErrorf formats it.
 */
void SetTickError(int level, const char *msg);
void SetTickErrorf(int level, const char *fmt, ...) pg_attribute_printf(2, 3);

/* The keeper's wait event for its latch waits. */
uint32_t KeeperWaitEvent(void);

/*
 * StandbyConninfo renders the primary_conninfo this node uses to stream from
 * host:port (application_name pg_autopilot_node_<our id>, replication_user).
 * Raises ERROR when it does not fit in len.
 */
void StandbyConninfo(const char *host, int port, char *buf, size_t len);

/* SetSyncNames writes synchronous_standby_names (confirmed reload); raises like SetAutoConf. */
void SetSyncNames(const char *value);

/*
 * EnsurePeersInHba lets the group's other nodes in through pg_hba.conf when
 * pg_autopilot.hba_method is set; false (reported as a tick error) when that
 * failed or the monitor is not connected, true otherwise.
 */
bool EnsurePeersInHba(const Goal *goal);

/*
 * RewindOntoUpstream: DemoteRewind with goal->upstream_* as the source (a
 * node in fast_forward whose WAL went past the source's fork,
 * FetchSourceDiverged); the state after the restart is the current one.
 */
ActionResult RewindOntoUpstream(const LocalState *ls, const Goal *goal);

/* UpstreamAsPrimary: a copy of `goal` whose primary_* name its upstream_* (the fast_forward source). */
void UpstreamAsPrimary(const Goal *goal, Goal *out);

} // namespace autopilot::node
