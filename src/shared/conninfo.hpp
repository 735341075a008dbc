/*
 * src/shared/conninfo.hpp — building libpq connection strings and quoting
 * configuration values (pure zone).
 */
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace autopilot::conninfo {

/*
 * QuoteValue quotes one conninfo value: single quotes around it, backslash
 * before every ' and \ (libpq's rule).  Empty values become ''.
 */
std::string QuoteValue(const std::string &value);

/* Build renders key=value pairs into "k1='v1' k2='v2'" with QuoteValue. */
std::string Build(const std::vector<std::pair<std::string, std::string>> &params);

/*
 * ParseParams splits a conninfo string ("k=v k2='v 2'") into pairs, as libpq
 * does; throws autopilot::Error (22023) on malformed input, naming where.
 * URIs (postgres://...) are rejected with a hint to use key=value form.
 */
std::vector<std::pair<std::string, std::string>> ParseParams(const std::string &conninfo);

/*
 * QuoteConfigValue renders a value for postgresql.auto.conf / postgresql.conf:
 * single quotes, ' doubled, \ doubled (as ALTER SYSTEM writes them).  Throws
 * Error (22023) when the value contains a newline or NUL, which the
 * configuration file format cannot hold.
 */
std::string QuoteConfigValue(const std::string &value);

/*
 * ValidateName checks a node or formation name: 1..63 bytes of [a-zA-Z0-9_-.];
 * throws Error (22023) naming the offending character otherwise.  `what` is
 * used in the message ("node name", "formation name").
 */
void ValidateName(const std::string &name, const char *what);

} // namespace autopilot::conninfo
