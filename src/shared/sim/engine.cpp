/*
 * src/shared/sim/engine.cpp — the step loop (pure zone).
 *
 * One step: restarts that are due; the schedule's events (faults, operator
 * calls); client commits; replication; synchronous acknowledgements; every
 * keeper ticks (in an order drawn per step: message races differ); late
 * reports reach the monitor; the monitor's health-check round re-runs the
 * rules; the invariants are checked.  After `steps` steps every fault heals
 * (links, servers, keepers, monitor; nodes left in maintenance are taken
 * out of it) and the group must settle (invariants.cpp, Live) for three
 * consecutive steps within heal_steps.  Everything random comes from the
 * seed, so a seed replays exactly.  Never throws.
 */
#include "sim/engine.hpp"

#include <algorithm>

#include "sim/invariants.hpp"
#include "sim/keeper_model.hpp"
#include "sim/monitor_model.hpp"
#include "sim/replication.hpp"

namespace autopilot::sim {

namespace {

void
Init(World &w, const Schedule &s, const SimConfig &c)
{
	w.config = c;
	w.schedule = s;
	w.n = s.nodes;
	w.rng = Prng{s.seed ^ 0x5deece66dull};
	w.servers.assign(w.n, Server());
	w.keepers.assign(w.n, Keeper());
	for (int i = 0; i < w.n; i++) {
		Server &sv = w.servers[i];
		sv.up = true;
		sv.in_recovery = false;
		sv.standby_signal = false;
		/* Node 1 holds the group's data (initdb, record 1); the others are empty clusters of their own. */
		sv.pristine = i != 0;
		if (i == 0)
			sv.wal.push_back(1);
		StartKeeper(w, i);
		/* The other keepers start a little later, so that node 1 registers first and becomes single. */
		if (i != 0) {
			w.keepers[i].alive = false;
			w.keepers[i].restart_at = 2 * i;
		}
	}
	w.monitor.number_sync_standbys = s.number_sync_standbys;
	w.monitor.rows.assign(w.n, Row());
	for (int i = 0; i < w.n; i++) {
		w.monitor.rows[i].priority = s.priority[i];
		w.monitor.rows[i].quorum = s.quorum[i];
	}
	w.link_down_until.assign(w.n + 1, std::vector<int>(w.n + 1, 0));
	w.lossy_until.assign(w.n, 0);
	w.monitor_contacts.assign(w.n, {});
	RefreshEpochs(w);
}

void
CutLink(World &w, int a, int b, int until)
{
	int bb = b < 0 ? w.n : b;
	w.link_down_until[a][bb] = std::max(w.link_down_until[a][bb], until);
}

void
ApplyEvent(World &w, const Event &e)
{
	if (e.kind != EventKind::Commit)
		w.Trace("EVENT " + FormatEvent(e));
	int until = w.step + e.arg;
	switch (e.kind) {
	case EventKind::Commit:
		WriteCommits(w);
		break;
	case EventKind::CrashNode:
		StopServer(w, e.a, false);
		w.servers[e.a].restart_at = e.arg == 0 ? -2 : until;
		break;
	case EventKind::CleanRestart:
		if (!w.servers[e.a].up)
			break;
		/* The keeper announces the shutdown (AnnounceStopping) when it reaches the monitor. */
		if (w.keepers[e.a].alive && w.LinkUp(e.a, -1))
			NodeStopping(w, e.a);
		StopServer(w, e.a, true);
		w.servers[e.a].restart_at = until;
		break;
	case EventKind::KillKeeper:
		if (!w.keepers[e.a].alive || !w.servers[e.a].up)
			break;
		/* SIGTERM: FATAL exit code 1, which announces a clean shutdown; the postmaster restarts it in 1 s. */
		if (w.LinkUp(e.a, -1))
			NodeStopping(w, e.a);
		w.keepers[e.a].alive = false;
		w.keepers[e.a].restart_at = w.step + 1;
		break;
	case EventKind::CutLink:
		CutLink(w, e.a, e.b, until);
		break;
	case EventKind::Isolate:
		for (int j = -1; j < w.n; j++)
			if (j != e.a)
				CutLink(w, e.a, j, until);
		break;
	case EventKind::IsolateMonitor:
		for (int j = 0; j < w.n; j++)
			CutLink(w, j, -1, until);
		break;
	case EventKind::LossyLink:
		w.lossy_until[e.a] = std::max(w.lossy_until[e.a], until);
		break;
	case EventKind::DelayReport:
		w.keepers[e.a].delay_reports = e.arg;
		break;
	case EventKind::MonitorDown:
		if (!w.monitor.up)
			break;
		w.monitor.up = false;
		w.monitor.restart_at = until;
		break;
	default:
		OperatorCall(w, e);
		break;
	}
	RefreshEpochs(w);
}

void
Heal(World &w)
{
	w.healing = true;
	w.Trace("HEAL: every link, server, keeper and the monitor are back; no more faults");
	for (auto &row : w.link_down_until)
		std::fill(row.begin(), row.end(), 0);
	std::fill(w.lossy_until.begin(), w.lossy_until.end(), 0);
	for (int i = 0; i < w.n; i++) {
		if (!w.servers[i].up)
			w.servers[i].restart_at = w.step;
		if (!w.keepers[i].alive)
			w.keepers[i].restart_at = w.step;
		w.keepers[i].delay_reports = 0;
	}
	if (!w.monitor.up)
		w.monitor.restart_at = w.step;
}

void
Restarts(World &w)
{
	if (!w.monitor.up && w.monitor.restart_at == w.step) {
		w.monitor.up = true;
		w.monitor.started_ms = w.now_ms;
		for (auto &r : w.monitor.rows)
			r.failures = 0;
		w.Trace("monitor starts (startup grace)");
	}
	for (int i = 0; i < w.n; i++) {
		if (!w.servers[i].up && w.servers[i].restart_at == w.step) {
			StartServer(w, i);
			w.Trace(NodeName(i) + " starts" + (w.servers[i].in_recovery ? " in recovery" : " as a primary") +
					(w.servers[i].fenced ? ", fenced" : ""));
		} else if (w.servers[i].up && !w.keepers[i].alive && w.keepers[i].restart_at == w.step)
			StartKeeper(w, i);
	}
	RefreshEpochs(w);
}

/* In the heal phase the operator takes nodes out of the maintenance it asked for. */
void
EndMaintenance(World &w)
{
	for (int i = 0; i < w.n; i++) {
		const Row &r = w.monitor.rows[i];
		if (r.exists && r.assigned == NodeState::Maintenance && r.reported == NodeState::Maintenance)
			OperatorCall(w, Event{w.step, EventKind::DisableMaintenance, i, -1, 0});
	}
}

} // namespace

RunResult
RunSchedule(const Schedule &schedule, const SimConfig &config)
{
	World w;
	Init(w, schedule, config);
	const int heal_at = schedule.warmup + config.steps;
	const int total = heal_at + config.heal_steps;
	std::size_t next = 0;
	int settled = 0;
	bool live = false;
	std::string why;

	for (w.step = 0; w.step < total && w.violations.empty(); w.step++) {
		w.now_ms = static_cast<uint64_t>(w.step) * config.step_ms;
		if (w.step == heal_at)
			Heal(w);
		Restarts(w);
		bool commit = w.healing;
		while (next < schedule.events.size() && schedule.events[next].step == w.step) {
			const Event &e = schedule.events[next++];
			if (e.kind == EventKind::Commit)
				commit = true;
			else if (!w.healing)
				ApplyEvent(w, e);
		}
		if (w.healing)
			EndMaintenance(w);
		if (commit)
			ApplyEvent(w, Event{w.step, EventKind::Commit, -1, -1, 0});
		Replicate(w, w.rng.Chance(20));
		AckCommits(w);

		int first = static_cast<int>(w.rng.Below(static_cast<uint64_t>(w.n)));
		for (int k = 0; k < w.n; k++)
			KeeperTick(w, (first + k) % w.n);

		for (std::size_t d = 0; d < w.delayed.size();) {
			if (w.delayed[d].deliver_at <= w.step) {
				if (w.monitor.up)
					(void) NodeActive(w, w.delayed[d].report);
				w.delayed.erase(w.delayed.begin() + static_cast<long>(d));
			} else
				d++;
		}
		HealthRound(w);
		CheckStep(w);

		if (w.healing) {
			settled = Live(w, &why) ? settled + 1 : 0;
			if (settled >= 3) {
				live = true;
				w.step++;
				break;
			}
		}
	}
	if (w.violations.empty() && !live)
		AddViolation(w, "liveness",
					 "the group did not settle within " + std::to_string(config.heal_steps) +
						 " steps after the heal: " + why);

	RunResult r;
	r.violations = std::move(w.violations);
	r.trace = std::move(w.trace);
	r.steps_run = w.step;
	r.promotions = w.promotions;
	r.rules_fired = w.rules_fired;
	r.acks = w.acks;
	r.requests = w.requests;
	r.refusals = w.refusals;
	r.nodes = w.n;
	return r;
}

RunResult
RunSeed(uint64_t seed, SimConfig config)
{
	config.nodes = std::min(config.nodes, MaxGroupSize());
	return RunSchedule(GenerateSchedule(seed, config), config);
}

std::string
FormatFailure(uint64_t seed, const SimConfig &config_in)
{
	SimConfig config = config_in;
	config.nodes = std::min(config.nodes, MaxGroupSize());
	config.trace = true;
	Schedule s = GenerateSchedule(seed, config);
	RunResult r = RunSchedule(s, config);
	std::string out;
	out += "seed " + std::to_string(seed) + ", " + std::to_string(config.nodes) + " nodes, " +
		   std::to_string(config.steps) + " steps\n";
	out += "reproduce: autopilot-sim --seed " + std::to_string(seed) + " --schedules 1 --nodes " +
		   std::to_string(config.nodes) + " --steps " + std::to_string(config.steps) + " --trace\n";
	for (const auto &v : r.violations)
		out += "VIOLATED " + v.invariant + " at step " + std::to_string(v.step) + ": " + v.detail + "\n";
	out += "setup: number_sync_standbys " + std::to_string(s.number_sync_standbys) + ", warmup " +
		   std::to_string(s.warmup) + " steps;";
	for (int i = 0; i < s.nodes; i++)
		out += " " + NodeName(i) + " priority " + std::to_string(s.priority[i]) + (s.quorum[i] ? " quorum" : " async") +
			   (i + 1 < s.nodes ? "," : "\n");
	out += "schedule:\n";
	for (const auto &e : s.events)
		if (e.kind != EventKind::Commit && e.step < s.warmup + config.steps)
			out += "  " + FormatEvent(e) + "\n";
	out += "trace:\n";
	for (const auto &t : r.trace)
		out += "  " + t + "\n";
	return out;
}

} // namespace autopilot::sim
