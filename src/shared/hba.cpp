/*
 * src/shared/hba.cpp — rendering the keeper's managed pg_hba.conf block
 * (pure zone; see hba.hpp).
 */
#include "hba.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <sstream>

#include "error.hpp"

namespace autopilot::hba {

namespace {

bool
EndsWith(const std::string &s, const std::string &suffix)
{
	return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/* A field of pg_hba.conf that needs no quoting: no blanks, quotes, commas or comment marks. */
void
RequirePlainField(const std::string &value, const char *what)
{
	if (value.empty())
		throw Error(sqlstate::kInvalidParameterValue, std::string(what) + " must not be empty");
	for (unsigned char c : value)
		if (c <= ' ' || c == '"' || c == '#' || c == ',' || c == 0x7f)
			throw Error(sqlstate::kInvalidParameterValue,
						std::string(what) + " \"" + value + "\" cannot be written to pg_hba.conf",
						"Blanks, quotes, commas and '#' are not allowed.");
}

} // namespace

std::string
HbaAddress(const std::string &host)
{
	RequirePlainField(host, "host");
	unsigned char buf[16];
	if (inet_pton(AF_INET, host.c_str(), buf) == 1)
		return host + "/32";
	if (inet_pton(AF_INET6, host.c_str(), buf) == 1)
		return host + "/128";
	return host;
}

void
ValidateMethod(const std::string &method)
{
	static const char *const kMethods[] = {"trust", "scram-sha-256", "md5", "password", "cert"};
	for (const char *m : kMethods)
		if (method == m)
			return;
	throw Error(sqlstate::kInvalidParameterValue, "unsupported pg_hba.conf method \"" + method + "\"", "",
				"Use trust, scram-sha-256, md5, password or cert.");
}

std::string
MergeHba(const std::string &old_text, const std::vector<Peer> &peers, const std::string &user,
		 const std::string &method)
{
	RequirePlainField(user, "user");
	ValidateMethod(method);

	std::vector<Peer> sorted = peers;
	std::sort(sorted.begin(), sorted.end(), [](const Peer &a, const Peer &b) { return a.node_id < b.node_id; });

	std::ostringstream out;
	for (const auto &p : sorted) {
		std::string addr = HbaAddress(p.host);
		std::string tag = std::string(kManagedTag) + " (node " + std::to_string(p.node_id) + ")";
		out << "host replication " << user << ' ' << addr << ' ' << method << ' ' << tag << '\n';
		out << "host all " << user << ' ' << addr << ' ' << method << ' ' << tag << '\n';
	}

	/* Keep every line that is not ours, in order. */
	std::istringstream in(old_text);
	std::string line;
	while (std::getline(in, line)) {
		std::string trimmed = line;
		while (!trimmed.empty() && (trimmed.back() == '\r' || trimmed.back() == ' '))
			trimmed.pop_back();
		if (trimmed.find(kManagedTag) != std::string::npos &&
			(EndsWith(trimmed, ")") || EndsWith(trimmed, kManagedTag)))
			continue;
		out << line << '\n';
	}
	/* A file without a final newline keeps its last line intact; we always end with one. */
	return out.str();
}

} // namespace autopilot::hba
