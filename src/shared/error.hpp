/*
 * src/shared/error.hpp — the one exception type of the pure zone.
 *
 * Pure code reports a failure a DBA should see by throwing autopilot::Error
 * with a five-character SQLSTATE; the error boundary (src/shared/pg/guard.hpp)
 * turns it into ereport(ERROR) after the catch scope has ended.  Any other
 * std::exception becomes an internal error (XX000).
 */
#pragma once

#include <stdexcept>
#include <string>

namespace autopilot {

/* SQLSTATEs used by the pure zone, spelled as in PostgreSQL's errcodes.txt. */
namespace sqlstate {
inline constexpr const char *kInvalidParameterValue = "22023";
inline constexpr const char *kNullValueNotAllowed = "22004";
inline constexpr const char *kUndefinedObject = "42704";
inline constexpr const char *kObjectNotInPrerequisiteState = "55000";
inline constexpr const char *kConfigFileError = "F0000";
inline constexpr const char *kIoError = "58030";
inline constexpr const char *kInternalError = "XX000";
inline constexpr const char *kDataCorrupted = "XX001";
} // namespace sqlstate

class Error : public std::runtime_error {
  public:
	Error(const char *sqlstate, const std::string &message, std::string detail = {}, std::string hint = {})
		: std::runtime_error(message), detail_(std::move(detail)), hint_(std::move(hint))
	{
		for (int i = 0; i < 5; i++)
			sqlstate_[i] = sqlstate[i];
		sqlstate_[5] = '\0';
	}

	const char *
	sqlstate() const noexcept
	{
		return sqlstate_;
	}
	const std::string &
	detail() const noexcept
	{
		return detail_;
	}
	const std::string &
	hint() const noexcept
	{
		return hint_;
	}

  private:
	char sqlstate_[6];
	std::string detail_;
	std::string hint_;
};

} // namespace autopilot
