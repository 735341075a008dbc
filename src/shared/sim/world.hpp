/*
 * src/shared/sim/world.hpp — the simulated group: servers, keepers, the
 * monitor's node table, the network and the clients' commits (pure zone).
 *
 * Plain data; behaviour lives in keeper_model.cpp (what a keeper does and
 * what its actions do to its server), monitor_model.cpp (node_active,
 * health checks, operator calls — the real rules run there) and
 * invariants.cpp.  Nodes are indexed 0..n-1; node i has node_id i + 1.
 *
 * WAL is modelled exactly enough to see divergence: a server's `wal` holds
 * the id of the record at each LSN (wal[0] is the cluster's first record,
 * lsn = wal.size() - 1).  Record ids are unique across the group, so two
 * histories agree up to an LSN iff their ids agree, a standby can stream
 * from an upstream iff its WAL is a prefix of the upstream's (otherwise the
 * walreceiver fails on the timeline switch, as PostgreSQL's does), and a
 * commit is in a history iff wal[commit.lsn] == commit.id.
 */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "group_rules.hpp"
#include "sim/config.hpp"
#include "sim/prng.hpp"
#include "sim/schedule.hpp"
#include "states.hpp"

namespace autopilot::sim {

using fsm::NodeState;

/* The PostgreSQL server of a node: what survives a keeper restart (files) and what it runs as. */
struct Server {
	bool up = false;
	bool pristine = false;      /* an empty cluster of its own: not a member's data yet (to be cloned) */
	bool in_recovery = true;    /* standby (or demoted, or fenced) */
	bool standby_signal = true; /* persisted: the next start is in recovery */
	int upstream = -1;          /* primary_conninfo: index of the node it streams from, -1 none (persisted) */
	std::string sync_names;     /* synchronous_standby_names in effect (persisted, postgresql.auto.conf) */
	std::vector<uint32_t> wal;  /* record id per LSN */
	uint32_t timeline = 1;
	bool fence_file = false;    /* <PGDATA>.autopilot/fenced */
	bool fenced = false;        /* the login fence is up now */
	bool needs_reclone = false; /* a pg_rewind failed */
	bool sessions = false;      /* client sessions opened before a fence went up (they survive it until a restart) */
	int restart_at = -1;        /* stopped: the step at which it starts again; -2: at the heal */
	/*
	 * The keeper's isolation watch (src/bgworker/fence.cpp), in shared
	 * memory: a restart of the keeper process keeps it, a restart of the
	 * server clears it.  Times in ms; 0: never.
	 */
	bool watched = false;           /* the watch runs: the node is writable and replaceable */
	uint64_t watch_since_ms = 0;    /* when the watch started */
	uint64_t monitor_ok_ms = 0;     /* the keeper's last successful node_active */
	uint64_t quorum_contact_ms = 0; /* last tick at which SyncQuorumStreams held (+ 1: 0 means never) */
	/* The node's clock as the keeper reads it for node_active's report_seq (GetCurrentTimestamp, µs). */
	uint64_t clock_us = 0;

	/* Invariant bookkeeping: the interval in which it could acknowledge commits (see invariants.cpp). */
	bool epoch_open = false;
	uint64_t epoch_start = 0;
	uint64_t last_ack = 0; /* sequence number of its last acknowledgement, 0 none */

	uint64_t
	Lsn() const
	{
		return wal.empty() ? 0 : wal.size() - 1;
	}
};

/* The keeper: its state file and what its process holds in memory (lost when it restarts). */
struct Keeper {
	bool alive = true;
	int restart_at = -1;                 /* killed: the step at which the postmaster starts it again */
	NodeState current = NodeState::Init; /* state file */
	bool registered = false;             /* the monitor has a row for it */
	/* In memory. */
	bool has_goal = false;
	NodeState goal = NodeState::Init;
	int goal_primary = -1;              /* node the goal names as primary, -1 none */
	uint32_t goal_primary_timeline = 0; /* its timeline as the monitor last saw it (primary_timeline), 0 none */
	std::string goal_names;             /* synchronous_standby_names the monitor told it */
	int goal_upstream = -1;             /* fast_forward: node to stream from */
	uint64_t goal_upstream_lsn = 0;
	int clone_done_at = -1; /* a pg_basebackup runs until this step */
	/* StandbyDiverged's process-lifetime state (diverged.cpp); times in ms + 1, 0: never. */
	bool diverged_known = false;
	uint64_t suspect_since_ms = 0;
	uint64_t last_check_call_ms = 0;
	uint64_t next_probe_ms = 0;
	int probed_primary = -1; /* the primary and timeline the last probe asked */
	uint32_t probed_timeline = 0;
	int delay_reports = 0; /* DelayReport: the next report is this many steps late */
};

/* What a keeper sends in node_active. */
struct Report {
	int node = 0;
	NodeState current = NodeState::Init;
	uint64_t lsn = 0;
	uint32_t timeline = 0;
	bool streaming = false;
	std::string applied_names;
	uint64_t report_seq = 0; /* node_active's report_seq: the keeper's send time in µs; 0: NULL (an old keeper) */
};

/* One row of the monitor's pg_autopilot.node. */
struct Row {
	bool exists = false;
	NodeState reported = NodeState::Init;
	NodeState assigned = NodeState::Init;
	NodeState last_told = NodeState::Init;
	bool has_report = false;
	uint64_t report_ms = 0;
	uint64_t report_seq = 0;       /* logical order of the last report (w.seq), for "after" comparisons */
	uint64_t last_report_seq = 0;  /* node.last_report_seq: the keeper's send time of the newest report, 0 none */
	uint64_t healthy_since_ms = 0; /* node.healthy_since: start of the current healthy period */
	int health = -1;               /* -1 unknown, 0 bad, 1 good */
	uint64_t health_check_ms = 0;
	uint64_t health_check_seq = 0;
	int failures = 0; /* consecutive probes without an answer */
	uint64_t state_change_ms = 0;
	uint64_t state_change_seq = 0;
	uint64_t lsn = 0;
	uint32_t timeline = 0;
	bool streaming = false;
	int priority = 50;
	bool quorum = true;
	bool wants_maintenance = false;
	bool promotion_target = false;
	bool has_stopping = false;
	uint64_t stopping_ms = 0;
	uint64_t stopping_seq = 0;
	std::string applied_names;
	std::string told_names;
	uint64_t sync_since_lsn = 0; /* node.sync_since_lsn: lsn of the first report with the current applied names */
};

struct Monitor {
	bool up = true;
	int restart_at = -1;
	uint64_t started_ms = 0;
	int number_sync_standbys = 0;
	std::vector<Row> rows;
};

/* A client commit: written on `node` at `lsn` as record `id`; acknowledged or not. */
struct Commit {
	uint32_t id = 0;
	uint64_t lsn = 0;
	int node = 0;
	bool pending = true;
	bool acked = false;
	bool durable = false; /* acknowledged with number_sync_standbys >= 1 or through a synchronous quorum */
	uint64_t ack_seq = 0;
	int ack_step = 0;
};

/* A report in flight (DelayReport): the monitor processes it late; the answer goes nowhere. */
struct Delayed {
	int deliver_at = 0;
	Report report;
};

struct Violation {
	std::string invariant; /* "split_brain", "lost_commit", "diverged_reads", "liveness", "rules_error", ... */
	std::string detail;
	int step = 0;
};

struct World {
	SimConfig config;
	Schedule schedule;
	int n = 0;
	int step = 0;
	uint64_t now_ms = 0;
	uint64_t seq = 1; /* logical order of everything that happens (finer than steps) */
	bool healing = false;
	Prng rng; /* message loss, replication progress, tick order */
	std::vector<Server> servers;
	std::vector<Keeper> keepers;
	Monitor monitor;
	/* Links: link_down_until[a][b] for nodes, index n is the monitor; step until which it is cut (exclusive). */
	std::vector<std::vector<int>> link_down_until;
	std::vector<int> lossy_until; /* node <-> monitor loses half its messages until this step */
	std::vector<Commit> commits;
	std::vector<Delayed> delayed;
	uint32_t next_record = 2; /* record 1 is the first node's initdb */
	/* Promotions: end-of-recovery record id and when it was written, for invariant 3's knowledge window. */
	struct Moment {
		uint64_t ms = 0;
		uint64_t seq = 0; /* order within the step */
	};
	std::vector<std::pair<uint32_t, Moment>> promotion_records;
	/* Per node: when its keeper received a node_active answer that named a primary (primary_*), ascending. */
	std::vector<std::vector<Moment>> monitor_contacts;
	uint32_t max_timeline = 1;
	int leader = 0;            /* node whose acknowledgement epoch started last: its WAL is the group's history */
	int promoted = -1;         /* node promoted last (invariant 3: its WAL is the history to come) */
	uint64_t promoted_seq = 0; /* when (w.seq) */
	std::vector<Violation> violations;
	std::vector<std::string> trace;
	/* Counters for the summary. */
	uint64_t promotions = 0, acks = 0, refusals = 0, requests = 0;
	std::map<std::string, uint64_t> rules_fired; /* monitor rule name -> firings (coverage test) */

	bool
	LinkUp(int a, int b) const
	{
		/* b == -1 or b == n: the monitor. */
		int bb = b < 0 ? n : b;
		return link_down_until[a][bb] <= step && link_down_until[bb][a] <= step;
	}

	void
	Trace(const std::string &line)
	{
		if (config.trace)
			trace.push_back("step " + std::to_string(step) + ": " + line);
	}
};

std::string NodeName(int i);

/* IsPrefix: history a is contained in history b. */
bool IsPrefix(const std::vector<uint32_t> &a, const std::vector<uint32_t> &b) noexcept;

/* Streaming: node s is a standby whose walreceiver streams from its upstream right now. */
bool Streaming(const World &w, int s) noexcept;

/* CanCommit: a client can commit on node i now (writable and serving, or an old session survives a fence). */
bool CanCommit(const World &w, int i) noexcept;

/* A parsed synchronous_standby_names "ANY k (pg_autopilot_node_<id>, ...)"; k = 0: '' (no synchronous quorum). */
struct Quorum {
	int k = 0;
	std::vector<int> nodes; /* indexes */
};
Quorum ParseQuorum(const std::string &names);

} // namespace autopilot::sim
