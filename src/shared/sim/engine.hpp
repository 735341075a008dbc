/*
 * src/shared/sim/engine.hpp — runs one schedule against the simulated group
 * and reports what broke (pure zone).
 */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim/config.hpp"
#include "sim/schedule.hpp"
#include "sim/world.hpp"

namespace autopilot::sim {

struct RunResult {
	std::vector<Violation> violations;
	std::vector<std::string> trace; /* only with config.trace */
	int steps_run = 0;
	uint64_t promotions = 0, acks = 0, requests = 0, refusals = 0;
	std::map<std::string, uint64_t> rules_fired; /* monitor rule name -> firings */
	int nodes = 0;                               /* group size actually simulated */

	bool
	Ok() const
	{
		return violations.empty();
	}
};

/* RunSchedule executes `schedule`; deterministic for (schedule, config); never throws. */
RunResult RunSchedule(const Schedule &schedule, const SimConfig &config);

/* RunSeed draws the schedule of `seed` and runs it (nodes capped to MaxGroupSize()). */
RunResult RunSeed(uint64_t seed, SimConfig config);

/* FormatFailure prints a failing run: the seed, the command that reproduces it, the schedule and the trace. */
std::string FormatFailure(uint64_t seed, const SimConfig &config);

} // namespace autopilot::sim
