/*
 * src/shared/conninfo.cpp — libpq connection strings and configuration-file
 * quoting (pure zone).
 *
 * Two quoting rules live here and must not be confused:
 *   conninfo (libpq):      'value' with \' and \\ backslash escapes
 *   configuration files:   'value' with '' and \\ (as ALTER SYSTEM writes)
 * ParseParams follows libpq's conninfo_parse() so that whatever Build
 * renders, libpq reads back unchanged (tested against PQconninfoParse).
 * Throws autopilot::Error (22023) on bad input; no server headers.
 */
#include "conninfo.hpp"

#include <cstdio>

#include "error.hpp"

namespace autopilot::conninfo {

namespace {

/* ASCII only: a backend may run with any LC_CTYPE, and libpq's own blanks are these. */
bool
IsSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool
IsAsciiAlnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A conninfo keyword or setting name: letters, digits, underscore. */
void
CheckKeyword(const std::string &key)
{
	if (key.empty())
		throw Error(sqlstate::kInvalidParameterValue, "empty keyword in connection info string");
	for (char c : key)
		if (!IsAsciiAlnum(c) && c != '_')
			throw Error(sqlstate::kInvalidParameterValue, "invalid keyword \"" + key + "\" in connection info string",
						"Keywords consist of letters, digits and underscores.");
}

} // namespace

std::string
QuoteValue(const std::string &value)
{
	std::string out;
	out.reserve(value.size() + 2);
	out += '\'';
	for (char c : value) {
		if (c == '\'' || c == '\\')
			out += '\\';
		out += c;
	}
	out += '\'';
	return out;
}

std::string
Build(const std::vector<std::pair<std::string, std::string>> &params)
{
	std::string out;
	for (const auto &[key, value] : params) {
		CheckKeyword(key);
		if (!out.empty())
			out += ' ';
		out += key;
		out += '=';
		out += QuoteValue(value);
	}
	return out;
}

/*
 * ParseParams mirrors libpq's conninfo_parse(): keyword, optional blanks, '=',
 * optional blanks, then a quoted value (backslash escapes anything, up to the
 * closing quote) or a bare value (backslash escapes anything, up to a blank).
 * Throws Error (22023) naming the keyword or offset at fault.
 */
std::vector<std::pair<std::string, std::string>>
ParseParams(const std::string &conninfo)
{
	if (conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0)
		throw Error(sqlstate::kInvalidParameterValue, "connection URIs are not supported here", "",
					"Use the keyword=value form, for example \"host=localhost port=5432 dbname=postgres\".");

	std::vector<std::pair<std::string, std::string>> out;
	std::size_t i = 0;
	const std::size_t n = conninfo.size();
	while (i < n) {
		if (IsSpace(conninfo[i])) {
			i++;
			continue;
		}
		std::size_t key_start = i;
		while (i < n && conninfo[i] != '=' && !IsSpace(conninfo[i]))
			i++;
		std::string key = conninfo.substr(key_start, i - key_start);
		while (i < n && IsSpace(conninfo[i]))
			i++;
		if (i >= n || conninfo[i] != '=')
			throw Error(sqlstate::kInvalidParameterValue,
						"missing \"=\" after \"" + key + "\" in connection info string");
		CheckKeyword(key);
		i++; /* '=' */
		while (i < n && IsSpace(conninfo[i]))
			i++;

		std::string value;
		if (i < n && conninfo[i] == '\'') {
			std::size_t quote_at = i;
			i++;
			bool closed = false;
			while (i < n) {
				if (conninfo[i] == '\\') {
					i++;
					if (i < n)
						value += conninfo[i++];
				} else if (conninfo[i] == '\'') {
					i++;
					closed = true;
					break;
				} else
					value += conninfo[i++];
			}
			if (!closed)
				throw Error(sqlstate::kInvalidParameterValue, "unterminated quoted string in connection info string",
							"The value of \"" + key + "\" opens a quote at offset " + std::to_string(quote_at) +
								" that is never closed.");
		} else {
			while (i < n && !IsSpace(conninfo[i])) {
				if (conninfo[i] == '\\') {
					i++;
					if (i < n)
						value += conninfo[i++];
				} else
					value += conninfo[i++];
			}
		}
		out.emplace_back(std::move(key), std::move(value));
	}
	return out;
}

std::string
QuoteConfigValue(const std::string &value)
{
	std::string out;
	out.reserve(value.size() + 2);
	out += '\'';
	for (char c : value) {
		if (c == '\n' || c == '\r' || c == '\0')
			throw Error(sqlstate::kInvalidParameterValue, "configuration value contains a line break or NUL character",
						"postgresql.conf and postgresql.auto.conf cannot store such a value.");
		if (c == '\'' || c == '\\')
			out += c;
		out += c;
	}
	out += '\'';
	return out;
}

void
ValidateName(const std::string &name, const char *what)
{
	if (name.empty())
		throw Error(sqlstate::kInvalidParameterValue, std::string(what) + " must not be empty");
	if (name.size() > 63)
		throw Error(sqlstate::kInvalidParameterValue,
					std::string(what) + " \"" + name.substr(0, 63) + "...\" is too long",
					"It has " + std::to_string(name.size()) + " bytes; the limit is 63.");
	for (std::size_t i = 0; i < name.size(); i++) {
		unsigned char c = static_cast<unsigned char>(name[i]);
		if (IsAsciiAlnum(name[i]))
			continue;
		if (c == '_' || c == '.' || c == '-')
			continue;
		std::string shown;
		if (c >= 0x20 && c < 0x7f)
			shown = std::string("\"") + static_cast<char>(c) + "\"";
		else {
			char buf[8];
			snprintf(buf, sizeof(buf), "0x%02x", c);
			shown = buf;
		}
		throw Error(sqlstate::kInvalidParameterValue,
					"invalid character " + shown + " in " + what + " at position " + std::to_string(i + 1),
					"Names consist of 1 to 63 letters, digits, underscores, dots and hyphens.");
	}
}

} // namespace autopilot::conninfo
