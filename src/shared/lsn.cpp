/*
 * src/shared/lsn.cpp — LSN text form (pure zone).
 *
 * Same syntax as PostgreSQL's pg_lsn_in: two groups of 1 to 8 hex digits
 * separated by '/', nothing before or after.  No server headers, never throws
 * from ParseLsn.
 */
#include "lsn.hpp"

#include <cstdio>

namespace autopilot::lsn {

namespace {

/* ParseHalf reads 1..8 hex digits from text[*pos]; false when there are none or too many. */
bool
ParseHalf(std::string_view text, std::size_t *pos, uint32_t *out) noexcept
{
	uint32_t value = 0;
	std::size_t start = *pos;
	while (*pos < text.size()) {
		char c = text[*pos];
		uint32_t digit;
		if (c >= '0' && c <= '9')
			digit = static_cast<uint32_t>(c - '0');
		else if (c >= 'a' && c <= 'f')
			digit = static_cast<uint32_t>(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			digit = static_cast<uint32_t>(c - 'A' + 10);
		else
			break;
		if (*pos - start == 8)
			return false; /* a ninth digit: does not fit in 32 bits */
		value = (value << 4) | digit;
		(*pos)++;
	}
	if (*pos == start)
		return false;
	*out = value;
	return true;
}

} // namespace

std::optional<uint64_t>
ParseLsn(std::string_view text) noexcept
{
	std::size_t pos = 0;
	uint32_t hi, lo;
	if (!ParseHalf(text, &pos, &hi))
		return std::nullopt;
	if (pos >= text.size() || text[pos] != '/')
		return std::nullopt;
	pos++;
	if (!ParseHalf(text, &pos, &lo))
		return std::nullopt;
	if (pos != text.size())
		return std::nullopt;
	return (static_cast<uint64_t>(hi) << 32) | lo;
}

std::string
FormatLsn(uint64_t lsn)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%X/%X", static_cast<unsigned>(lsn >> 32), static_cast<unsigned>(lsn & 0xFFFFFFFFu));
	return buf;
}

} // namespace autopilot::lsn
