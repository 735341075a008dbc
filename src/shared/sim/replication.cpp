/*
 * src/shared/sim/replication.cpp — commits, streaming and synchronous
 * acknowledgement (pure zone).
 *
 * Clients are adversarial: they reach every node and commit wherever
 * PostgreSQL would let them (CanCommit), including an old primary that is
 * still writable, so that a split brain shows as two acknowledging nodes.
 * A standby counts for the quorum only while it streams from the committing
 * node (its walsender there reports its flush position), exactly like
 * PostgreSQL's SyncRepGetSyncRecPtr.  Never throws.
 */
#include "sim/replication.hpp"

#include "sim/invariants.hpp"

namespace autopilot::sim {

uint32_t
AppendRecord(World &w, int i)
{
	uint32_t id = w.next_record++;
	w.servers[i].wal.push_back(id);
	return id;
}

void
WriteCommits(World &w)
{
	for (int i = 0; i < w.n; i++) {
		if (!CanCommit(w, i))
			continue;
		Server &s = w.servers[i];
		if (!s.fenced)
			s.sessions = true;
		Commit c;
		c.id = AppendRecord(w, i);
		c.lsn = s.Lsn();
		c.node = i;
		w.commits.push_back(c);
	}
}

void
Replicate(World &w, bool partial)
{
	/* Two passes so that a cascading standby (fast_forward) may pass on what it just received. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < w.n; i++) {
			if (!Streaming(w, i))
				continue;
			Server &s = w.servers[i];
			const Server &up = w.servers[s.upstream];
			std::size_t target = up.wal.size();
			if (partial && target > s.wal.size() + 1)
				target = s.wal.size() + (target - s.wal.size()) / 2;
			s.wal.insert(s.wal.end(), up.wal.begin() + static_cast<long>(s.wal.size()),
						 up.wal.begin() + static_cast<long>(target));
			s.timeline = up.timeline;
		}
}

void
FlushToStandbys(World &w, int i)
{
	for (int j = 0; j < w.n; j++)
		if (j != i && w.servers[j].upstream == i && Streaming(w, j)) {
			w.servers[j].wal = w.servers[i].wal;
			w.servers[j].timeline = w.servers[i].timeline;
		}
}

void
AckCommits(World &w)
{
	for (auto &c : w.commits) {
		if (!c.pending)
			continue;
		const Server &s = w.servers[c.node];
		if (!s.epoch_open)
			continue;
		Quorum q = ParseQuorum(s.sync_names);
		int have = 0;
		for (int j : q.nodes) {
			if (j < 0 || j >= w.n || j == c.node)
				continue;
			const Server &sb = w.servers[j];
			if (sb.upstream == c.node && Streaming(w, j) && c.lsn < sb.wal.size() && sb.wal[c.lsn] == c.id)
				have++;
		}
		if (have < q.k)
			continue;
		c.durable = w.monitor.number_sync_standbys >= 1 || (w.config.strict_sync && q.k > 0);
		OnAck(w, c.node, c);
		w.Trace(NodeName(c.node) + " acknowledges commit " + std::to_string(c.id) + " at lsn " + std::to_string(c.lsn) +
				(q.k > 0 ? " (" + s.sync_names + ")" : " (alone)"));
	}
}

} // namespace autopilot::sim
