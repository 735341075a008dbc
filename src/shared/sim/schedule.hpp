/*
 * src/shared/sim/schedule.hpp — a schedule: the faults, operator calls and
 * client commits of one simulated run, step by step (pure zone).
 *
 * A schedule is a pure function of (seed, config): GenerateSchedule draws it
 * up front, so it can be printed, kept as a regression and replayed exactly.
 * What happens to individual messages on a lossy link is drawn by the engine
 * from the same seed (engine.cpp), so (seed, config) reproduces a run.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/config.hpp"

namespace autopilot::sim {

enum class EventKind : uint8_t {
	Commit,             /* every node that accepts writes gets one client commit */
	CrashNode,          /* kill -9 of node a's postmaster; it starts again after arg steps (0: at heal) */
	CleanRestart,       /* pg_ctl restart of node a: its keeper announces it; down for arg steps */
	KillKeeper,         /* node a's keeper process exits; the postmaster starts it again next step */
	CutLink,            /* link a <-> b down for arg steps (b = -1: the monitor) */
	Isolate,            /* every link of node a down for arg steps */
	LossyLink,          /* half the messages between node a and the monitor are lost for arg steps */
	DelayReport,        /* node a's next report reaches the monitor arg steps late (its keeper times out) */
	MonitorDown,        /* the monitor is down for arg steps (restarts with startup grace) */
	IsolateMonitor,     /* every node <-> monitor link down for arg steps (the monitor runs on, alone) */
	Switchover,         /* perform_switchover() */
	Failover,           /* perform_failover() */
	Promotion,          /* perform_promotion(node a) */
	EnableMaintenance,  /* enable_maintenance(node a) */
	DisableMaintenance, /* disable_maintenance(node a) */
	SetNumberSync,      /* set_number_sync_standbys(arg) */
};

const char *EventName(EventKind k) noexcept;

struct Event {
	int step = 0;
	EventKind kind = EventKind::Commit;
	int a = -1;
	int b = -1;
	int arg = 0;
};

struct Schedule {
	uint64_t seed = 0;
	int nodes = 2;
	int number_sync_standbys = 0;
	std::vector<bool> quorum;  /* replication_quorum per node */
	std::vector<int> priority; /* candidate_priority per node */
	int warmup = 0;            /* steps without faults at the start: the group forms */
	std::vector<Event> events; /* sorted by step */
};

/* GenerateSchedule draws the schedule of `seed`; deterministic, never throws. */
Schedule GenerateSchedule(uint64_t seed, const SimConfig &config);

/* FormatEvent renders one event as a line of the printed schedule ("node2", "monitor", ...). */
std::string FormatEvent(const Event &e);

} // namespace autopilot::sim
