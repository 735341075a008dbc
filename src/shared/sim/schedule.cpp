/*
 * src/shared/sim/schedule.cpp — drawing and printing schedules (pure zone).
 *
 * The weights below favour what breaks failover designs: crashes and
 * partitions of the primary, lossy and slow monitor links, and operator
 * calls in the middle of an operation.  Faults are transient (each lasts a
 * few steps, or until the heal at the end), so a schedule keeps moving the
 * group through its states instead of leaving it stuck after the first
 * fault.  Never throws.
 */
#include "sim/schedule.hpp"

#include <algorithm>

#include "sim/prng.hpp"

namespace autopilot::sim {

const char *
EventName(EventKind k) noexcept
{
	switch (k) {
	case EventKind::Commit:
		return "commit";
	case EventKind::CrashNode:
		return "crash";
	case EventKind::CleanRestart:
		return "clean_restart";
	case EventKind::KillKeeper:
		return "kill_keeper";
	case EventKind::CutLink:
		return "cut_link";
	case EventKind::Isolate:
		return "isolate";
	case EventKind::LossyLink:
		return "lossy_link";
	case EventKind::DelayReport:
		return "delay_report";
	case EventKind::MonitorDown:
		return "monitor_down";
	case EventKind::IsolateMonitor:
		return "isolate_monitor";
	case EventKind::Switchover:
		return "perform_switchover";
	case EventKind::Failover:
		return "perform_failover";
	case EventKind::Promotion:
		return "perform_promotion";
	case EventKind::EnableMaintenance:
		return "enable_maintenance";
	case EventKind::DisableMaintenance:
		return "disable_maintenance";
	case EventKind::SetNumberSync:
		return "set_number_sync_standbys";
	}
	return "unknown";
}

namespace {

std::string
Who(int i)
{
	return i < 0 ? "monitor" : "node" + std::to_string(i + 1);
}

/* Weighted choice of the next fault or request (weights sum to 100). */
EventKind
DrawKind(Prng &r, bool keeper_kills)
{
	struct W {
		EventKind k;
		int w;
	};
	static constexpr W kWeights[] = {
		{EventKind::CrashNode, 14},         {EventKind::CleanRestart, 5},  {EventKind::KillKeeper, 3},
		{EventKind::CutLink, 18},           {EventKind::Isolate, 8},       {EventKind::LossyLink, 6},
		{EventKind::DelayReport, 5},        {EventKind::MonitorDown, 4},   {EventKind::Switchover, 8},
		{EventKind::Failover, 5},           {EventKind::Promotion, 6},     {EventKind::EnableMaintenance, 6},
		{EventKind::DisableMaintenance, 6}, {EventKind::SetNumberSync, 6},
	};
	for (;;) {
		int x = static_cast<int>(r.Below(100));
		for (const auto &w : kWeights) {
			if (x < w.w) {
				if (w.k == EventKind::KillKeeper && !keeper_kills)
					break;
				return w.k;
			}
			x -= w.w;
		}
	}
}

} // namespace

Schedule
GenerateSchedule(uint64_t seed, const SimConfig &config)
{
	Prng r{seed * 0x2545f4914f6cdd1dull + 17};
	Schedule s;
	s.seed = seed;
	s.nodes = config.nodes;
	s.warmup = 6 + 3 * config.nodes;

	/* Node 1 starts as the primary; at most one standby is asynchronous or never a candidate (n >= 3). */
	s.quorum.assign(config.nodes, true);
	s.priority.assign(config.nodes, 50);
	if (config.nodes >= 3) {
		if (config.async_standbys && r.Chance(30))
			s.quorum[r.Range(1, config.nodes - 1)] = false;
		if (r.Chance(30))
			s.priority[r.Range(1, config.nodes - 1)] = 0;
	}
	for (int i = 1; i < config.nodes; i++)
		if (s.priority[i] != 0 && r.Chance(40))
			s.priority[i] = r.Chance(50) ? 100 : 30;
	int quorum_nodes = static_cast<int>(std::count(s.quorum.begin(), s.quorum.end(), true));
	if (config.number_sync_standbys >= 0)
		s.number_sync_standbys = config.number_sync_standbys;
	else if (config.nodes == 2)
		s.number_sync_standbys = r.Chance(50) ? 1 : 0; /* two nodes: issue 3 allows writes to wait for the standby */
	else
		s.number_sync_standbys = r.Range(0, std::max(0, quorum_nodes - 2));

	/*
	 * Monitor isolations come from a stream of their own, so that adding
	 * them left every other event of a seed unchanged (kept seeds keep
	 * their schedule): 2 % of the fault steps, 1..12 steps each.
	 */
	Prng iso{seed * 0x9e3779b97f4a7c15ull + 101};
	for (int step = 0; step < s.warmup + config.steps; step++) {
		if (step >= s.warmup && iso.Chance(2))
			s.events.push_back(Event{step, EventKind::IsolateMonitor, -1, -1, iso.Range(1, 12)});
		if (r.Chance(70))
			s.events.push_back(Event{step, EventKind::Commit, -1, -1, 0});
		if (step < s.warmup || !r.Chance(30))
			continue;
		Event e;
		e.step = step;
		e.kind = DrawKind(r, config.keeper_kills);
		e.a = r.Range(0, config.nodes - 1);
		/* Node 1 starts as the primary: aim a third of the node faults at it. */
		if (r.Chance(33))
			e.a = 0;
		switch (e.kind) {
		case EventKind::CrashNode:
			e.arg = r.Chance(15) ? 0 : r.Range(1, 10);
			break;
		case EventKind::CleanRestart:
			e.arg = r.Range(1, 4);
			break;
		case EventKind::CutLink:
			e.b = r.Chance(50) ? -1 : r.Range(0, config.nodes - 1);
			if (e.b == e.a)
				e.b = -1;
			e.arg = r.Range(1, 20);
			break;
		case EventKind::Isolate:
		case EventKind::LossyLink:
			e.arg = r.Range(1, 20);
			break;
		case EventKind::DelayReport:
			e.arg = r.Range(1, 4);
			break;
		case EventKind::MonitorDown:
			e.arg = r.Range(1, 10);
			break;
		case EventKind::SetNumberSync:
			e.arg = r.Range(0, std::min(2, config.nodes - 1));
			break;
		default:
			break;
		}
		s.events.push_back(e);
	}
	return s;
}

std::string
FormatEvent(const Event &e)
{
	std::string out = "step " + std::to_string(e.step) + ": " + EventName(e.kind);
	switch (e.kind) {
	case EventKind::Commit:
	case EventKind::Switchover:
	case EventKind::Failover:
		break;
	case EventKind::CutLink:
		out += " " + Who(e.a) + " <-> " + Who(e.b) + " for " + std::to_string(e.arg) + " steps";
		break;
	case EventKind::CrashNode:
		out += " " + Who(e.a) + (e.arg == 0 ? " until the heal" : " for " + std::to_string(e.arg) + " steps");
		break;
	case EventKind::MonitorDown:
	case EventKind::IsolateMonitor:
		out += " for " + std::to_string(e.arg) + " steps";
		break;
	case EventKind::SetNumberSync:
		out += "(" + std::to_string(e.arg) + ")";
		break;
	case EventKind::KillKeeper:
	case EventKind::Promotion:
	case EventKind::EnableMaintenance:
	case EventKind::DisableMaintenance:
		out += " " + Who(e.a);
		break;
	default:
		out += " " + Who(e.a) + " for " + std::to_string(e.arg) + " steps";
		break;
	}
	return out;
}

} // namespace autopilot::sim
