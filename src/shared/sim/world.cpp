/*
 * src/shared/sim/world.cpp — small queries on the simulated group shared by
 * the models and the checks (pure zone).  Never throws except ParseQuorum's
 * std::stoi on a malformed value the monitor could not have produced.
 */
#include "sim/world.hpp"

#include <cstring>

namespace autopilot::sim {

std::string
NodeName(int i)
{
	return "node" + std::to_string(i + 1);
}

bool
IsPrefix(const std::vector<uint32_t> &a, const std::vector<uint32_t> &b) noexcept
{
	if (a.size() > b.size())
		return false;
	/* Histories share their first records: compare from the end, where they differ. */
	for (std::size_t i = a.size(); i-- > 0;)
		if (a[i] != b[i])
			return false;
	return true;
}

bool
Streaming(const World &w, int s) noexcept
{
	const Server &me = w.servers[s];
	if (!me.up || !me.in_recovery || me.pristine || me.upstream < 0 || me.upstream == s)
		return false;
	const Server &up = w.servers[me.upstream];
	if (!up.up || up.pristine || !w.LinkUp(s, me.upstream))
		return false;
	/*
	 * A walreceiver follows its upstream's timeline switches only when its
	 * own WAL is a prefix of the upstream's history; otherwise PostgreSQL
	 * refuses to stream ("requested starting point ... is ahead of the WAL
	 * flush position" / timeline fork) and the standby stays where it is.
	 */
	return IsPrefix(me.wal, up.wal);
}

bool
CanCommit(const World &w, int i) noexcept
{
	const Server &s = w.servers[i];
	return s.up && !s.pristine && !s.in_recovery && (!s.fenced || s.sessions);
}

Quorum
ParseQuorum(const std::string &names)
{
	Quorum q;
	if (names.empty())
		return q;
	static const char kAny[] = "ANY ";
	static const char kPrefix[] = "pg_autopilot_node_";
	std::size_t pos = 0;
	if (names.compare(0, sizeof(kAny) - 1, kAny) == 0) {
		pos = sizeof(kAny) - 1;
		q.k = std::stoi(names.substr(pos));
	} else
		q.k = 1; /* a bare list: FIRST 1 semantics are close enough (the monitor never produces it) */
	while ((pos = names.find(kPrefix, pos)) != std::string::npos) {
		pos += sizeof(kPrefix) - 1;
		q.nodes.push_back(std::stoi(names.substr(pos)) - 1);
	}
	return q;
}

} // namespace autopilot::sim
