/*
 * src/shared/lsn.hpp — LSN text form and arithmetic (pure zone).
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace autopilot::lsn {

/* ParseLsn reads "X/Y" (hex, as pg_lsn prints); nullopt on anything else. */
std::optional<uint64_t> ParseLsn(std::string_view text) noexcept;

/* FormatLsn prints "X/Y" in upper-case hex, as pg_lsn does. */
std::string FormatLsn(uint64_t lsn);

/* LagBytes is how far `behind` trails `ahead`; 0 when it does not trail. */
constexpr uint64_t
LagBytes(uint64_t ahead, uint64_t behind) noexcept
{
	return ahead > behind ? ahead - behind : 0;
}

} // namespace autopilot::lsn
