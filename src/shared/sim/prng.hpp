/*
 * src/shared/sim/prng.hpp — the simulator's random numbers (pure zone).
 *
 * SplitMix64: tiny, fast, and the same sequence on every platform and
 * compiler (std::uniform_int_distribution is not), so a seed reproduces a
 * schedule exactly everywhere.  Never throws.
 */
#pragma once

#include <cstdint>

namespace autopilot::sim {

struct Prng {
	uint64_t s = 0;

	uint64_t
	Next() noexcept
	{
		uint64_t z = (s += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		return z ^ (z >> 31);
	}

	/* Below returns a number in [0, n); n must be > 0. */
	uint64_t
	Below(uint64_t n) noexcept
	{
		return Next() % n;
	}

	/* Range returns a number in [lo, hi]. */
	int
	Range(int lo, int hi) noexcept
	{
		return lo + static_cast<int>(Below(static_cast<uint64_t>(hi - lo + 1)));
	}

	/* Chance is true with probability percent/100. */
	bool
	Chance(int percent) noexcept
	{
		return static_cast<int>(Below(100)) < percent;
	}
};

} // namespace autopilot::sim
