/*
 * src/shared/sim/main.cpp — autopilot-sim, the command-line simulator
 * (pure zone).
 *
 *   autopilot-sim [--schedules N] [--seed S] [--nodes K] [--steps M]
 *                 [--heal-steps H] [--nss n] [--mix] [--list] [--no-keeper-kills] [--strict-sync]
 *                 [--trace]
 *
 * Runs seeds S, S+1, ..., S+N-1 (each a random schedule of M steps in a
 * group of K nodes), prints the first failing schedule in full (the events
 * and a trace of what the monitor, the keepers and the clients did), the
 * other failing seeds, and a summary per invariant.  Exit status 1 when any
 * schedule failed, 2 on bad usage.  --mix spreads the seeds over group
 * sizes 2..K; --list prints one line per failing seed (no full trace).  `--trace` with one schedule prints the
 * trace even when it passes.
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "sim/engine.hpp"
#include "sim/monitor_model.hpp"

using namespace autopilot::sim;

namespace {

[[noreturn]] void
Usage(const char *why)
{
	std::fprintf(stderr,
				 "autopilot-sim: %s\nusage: autopilot-sim [--schedules N] [--seed S] [--nodes K] [--steps M] "
				 "[--heal-steps H] [--nss n] [--mix] [--list] [--no-keeper-kills] [--strict-sync] [--trace]\n",
				 why);
	std::exit(2);
}

long long
Number(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		Usage("missing value");
	char *end = nullptr;
	long long v = std::strtoll(argv[++*i], &end, 10);
	if (end == nullptr || *end != '\0' || v < 0)
		Usage("bad number");
	return v;
}

} // namespace

int
main(int argc, char **argv)
{
	SimConfig config;
	uint64_t schedules = 1000, seed = 1;
	bool mix = false;      /* --mix: seed s runs a group of 2 + s % (K - 1) nodes */
	bool list_all = false; /* --list: one line per failing seed, no full failure */
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--schedules")
			schedules = static_cast<uint64_t>(Number(argc, argv, &i));
		else if (a == "--seed")
			seed = static_cast<uint64_t>(Number(argc, argv, &i));
		else if (a == "--nodes")
			config.nodes = static_cast<int>(Number(argc, argv, &i));
		else if (a == "--steps")
			config.steps = static_cast<int>(Number(argc, argv, &i));
		else if (a == "--heal-steps")
			config.heal_steps = static_cast<int>(Number(argc, argv, &i));
		else if (a == "--nss")
			config.number_sync_standbys = static_cast<int>(Number(argc, argv, &i));
		else if (a == "--no-keeper-kills")
			config.keeper_kills = false;
		else if (a == "--mix")
			mix = true;
		else if (a == "--list")
			list_all = true;
		else if (a == "--strict-sync")
			config.strict_sync = true;
		else if (a == "--trace")
			config.trace = true;
		else
			Usage(("unknown option " + a).c_str());
	}
	std::string bad = CheckTiming(config);
	if (!bad.empty())
		Usage(bad.c_str());
	int max_nodes = MaxGroupSize();
	if (config.nodes > max_nodes) {
		std::printf("note: the rules accept at most %d nodes per group (InitialState); simulating %d\n", max_nodes,
					max_nodes);
		config.nodes = max_nodes;
	}

	bool trace_one = config.trace && schedules == 1;
	config.trace = false;
	auto start = std::chrono::steady_clock::now();
	std::map<std::string, uint64_t> by_invariant;
	std::vector<uint64_t> failed;
	uint64_t promotions = 0, acks = 0, requests = 0, refusals = 0;
	for (uint64_t s = seed; s < seed + schedules; s++) {
		SimConfig c = config;
		if (mix)
			c.nodes = 2 + static_cast<int>(s % static_cast<uint64_t>(config.nodes - 1));
		RunResult r = RunSeed(s, c);
		promotions += r.promotions;
		acks += r.acks;
		requests += r.requests;
		refusals += r.refusals;
		if (r.Ok())
			continue;
		by_invariant[r.violations.front().invariant]++;
		if (failed.empty() && !list_all)
			std::printf("%s\n", FormatFailure(s, c).c_str());
		if (failed.size() < 30 || list_all)
			std::printf("seed %llu (%d nodes): %s at step %d: %s\n", static_cast<unsigned long long>(s), c.nodes,
						r.violations.front().invariant.c_str(), r.violations.front().step,
						r.violations.front().detail.c_str());
		failed.push_back(s);
	}
	if (trace_one && failed.empty())
		std::printf("%s\n", FormatFailure(seed, config).c_str());
	double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

	std::printf("%llu schedules of %d nodes x %d steps (seeds %llu..%llu) in %.1f s: %zu failed\n",
				static_cast<unsigned long long>(schedules), config.nodes, config.steps,
				static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed + schedules - 1), secs,
				failed.size());
	std::printf("promotions %llu, acknowledged commits %llu, operator calls %llu (%llu refused)\n",
				static_cast<unsigned long long>(promotions), static_cast<unsigned long long>(acks),
				static_cast<unsigned long long>(requests), static_cast<unsigned long long>(refusals));
	for (const auto &[inv, count] : by_invariant)
		std::printf("  %s: %llu schedule(s)\n", inv.c_str(), static_cast<unsigned long long>(count));
	if (!failed.empty()) {
		std::printf("failing seeds:");
		for (std::size_t i = 0; i < failed.size() && i < 30; i++)
			std::printf(" %llu", static_cast<unsigned long long>(failed[i]));
		std::printf("%s\n", failed.size() > 30 ? " ..." : "");
	}
	return failed.empty() ? 0 : 1;
}
