/*
 * src/shared/sim/invariants.cpp — the safety and liveness checks (pure zone).
 *
 * 1. Split brain.  A node's acknowledgement epoch is the interval in which
 *    a client can commit on it (CanCommit: up, not in recovery, and either
 *    not fenced or holding a session opened before the fence went up).  The
 *    violation is two different nodes that both acknowledged a commit in
 *    the overlap of their epochs: then clients saw two writable histories at
 *    once.  A node merely *being* writable while another is promoted is not
 *    a violation (the sync proof of docs/failover.md allows exactly that:
 *    the old primary can no longer acknowledge).  Checked at every
 *    acknowledgement (OnAck).
 * 2. Lost commit.  A commit is durable when acknowledged while
 *    number_sync_standbys >= 1 (DESIGN.md §6.2), or with --strict-sync
 *    also when acknowledged through a non-empty synchronous quorum (a
 *    stronger check than the design promises).  A
 *    node whose epoch opens must hold every durable commit acknowledged
 *    before it: otherwise the group's history from now on lacks it.
 * 3. Diverged reads.  The leader is the node whose epoch opened last; its
 *    WAL is the group's history.  A standby that serves clients (up, not
 *    fenced) must hold a prefix of it.  (A writable old primary in the sync
 *    proof window is covered by 1, not here.)  Lead's decision: a standby
 *    cannot know of a promotion before it hears from the monitor, so reads
 *    of a history that left the group's at a promotion are not counted
 *    until its keeper has had an answer after that promotion plus the
 *    detection delay of diverged.cpp (NotYetKnowable).  A node promoted
 *    after the leader's epoch opened, not yet accepting commits (fenced
 *    until the monitor confirms it), holds the history to come: a prefix
 *    of its WAL is not diverged either (PromotedHistory).
 * 5. Liveness (Live): checked by the engine after the heal.
 * The monitor's own consistency (ProceedGroup throwing "two primaries") is
 * reported as rules_error by monitor_model.cpp.
 */
#include "sim/invariants.hpp"

#include <algorithm>

namespace autopilot::sim {

void
AddViolation(World &w, const char *invariant, const std::string &detail)
{
	/* One violation of each kind is enough to fail and print the schedule. */
	for (const auto &v : w.violations)
		if (v.invariant == invariant)
			return;
	w.violations.push_back(Violation{invariant, detail, w.step});
	w.Trace(std::string("VIOLATION ") + invariant + ": " + detail);
}

void
RefreshEpochs(World &w)
{
	for (int i = 0; i < w.n; i++) {
		Server &s = w.servers[i];
		bool can = CanCommit(w, i);
		if (can == s.epoch_open)
			continue;
		s.epoch_open = can;
		if (!can) {
			/* Sessions died with the server or the fence: their commits were never acknowledged. */
			for (auto &c : w.commits)
				if (c.pending && c.node == i)
					c.pending = false;
			w.Trace(NodeName(i) + " stops accepting commits");
			continue;
		}
		s.epoch_start = w.seq++;
		s.last_ack = 0;
		w.leader = i;
		w.Trace(NodeName(i) + " accepts commits (timeline " + std::to_string(s.timeline) + ", lsn " +
				std::to_string(s.Lsn()) + ")");
		for (const auto &c : w.commits)
			if (c.acked && c.durable && !(c.lsn < s.wal.size() && s.wal[c.lsn] == c.id)) {
				AddViolation(w, "lost_commit",
							 NodeName(i) + " accepts commits on timeline " + std::to_string(s.timeline) +
								 " without commit " + std::to_string(c.id) + " (lsn " + std::to_string(c.lsn) +
								 ", acknowledged by " + NodeName(c.node) + " at step " + std::to_string(c.ack_step) +
								 ")");
				break;
			}
	}
}

void
OnAck(World &w, int node, Commit &c)
{
	Server &me = w.servers[node];
	c.pending = false;
	c.acked = true;
	c.ack_seq = w.seq++;
	c.ack_step = w.step;
	w.acks++;
	for (int j = 0; j < w.n; j++) {
		if (j == node)
			continue;
		const Server &other = w.servers[j];
		if (!other.epoch_open || other.last_ack == 0)
			continue;
		if (other.last_ack >= std::max(me.epoch_start, other.epoch_start))
			AddViolation(w, "split_brain",
						 NodeName(node) + " acknowledged commit " + std::to_string(c.id) + " while " + NodeName(j) +
							 " had acknowledged commits in the same interval (both accept writes)");
	}
	me.last_ack = c.ack_seq;
}

/*
 * NotYetKnowable (invariant 3's window, docs/simulator.md): standby i's
 * history leaves `history` at the end-of-recovery record of a promotion,
 * and its keeper has not yet had the chance to learn it: no node_active
 * answer naming a primary received after that promotion (while the group
 * has none, primary_* is NULL: nothing to check against), or the first one less than
 * diverged_suspect_heartbeats heartbeats ago (StandbyDiverged's detection
 * delay: suspected at that heartbeat, checked at the second after it).
 * Any other divergence (no promotion record at the fork) never qualifies.
 */
bool
NotYetKnowable(const World &w, int i, const std::vector<uint32_t> &history, std::string *why)
{
	const std::vector<uint32_t> &mine = w.servers[i].wal;
	std::size_t f = 0;
	while (f < mine.size() && f < history.size() && mine[f] == history[f])
		f++;
	if (f >= history.size()) {
		*why = "longer than the leader's history";
		return false;
	}
	const World::Moment *promotion = nullptr;
	for (const auto &[id, when] : w.promotion_records)
		if (id == history[f])
			promotion = &when;
	if (promotion == nullptr) {
		*why = "no promotion at the fork (lsn " + std::to_string(f) + ")";
		return false;
	}
	for (const auto &contact : w.monitor_contacts[i])
		if (contact.seq > promotion->seq) {
			*why = "forked at the promotion of step " + std::to_string(promotion->ms / w.config.step_ms) +
				   ", first answer naming a primary at step " + std::to_string(contact.ms / w.config.step_ms);
			return w.now_ms <
				   contact.ms + static_cast<uint64_t>(w.config.diverged_suspect_heartbeats) * w.config.step_ms;
		}
	return true;
}

/*
 * PromotedHistory: a node promoted after the leader's epoch opened whose
 * clients cannot commit yet (its fence waits for the monitor's
 * confirmation) already holds the history to come: reading a prefix of it
 * is not reading a diverged history (simulator seeds 4888, 12073).
 * nullptr when there is none.
 */
const std::vector<uint32_t> *
PromotedHistory(const World &w)
{
	if (w.promoted < 0 || w.promoted == w.leader || w.promoted_seq < w.servers[w.leader].epoch_start)
		return nullptr;
	/* Also while it is restarted as a standby (self-fence): its WAL keeps the history until a rewind replaces it. */
	const Server &p = w.servers[w.promoted];
	if (p.pristine)
		return nullptr;
	return &p.wal;
}

void
CheckStep(World &w)
{
	const std::vector<uint32_t> &history = w.servers[w.leader].wal;
	const std::vector<uint32_t> *to_come = PromotedHistory(w);
	for (int i = 0; i < w.n; i++) {
		const Server &s = w.servers[i];
		if (i == w.leader || !s.up || s.pristine || !s.in_recovery || s.fenced)
			continue;
		if (to_come != nullptr && IsPrefix(s.wal, *to_come))
			continue;
		std::string why;
		if (!IsPrefix(s.wal, history) && !NotYetKnowable(w, i, history, &why))
			AddViolation(w, "diverged_reads",
						 NodeName(i) + " serves reads at lsn " + std::to_string(s.Lsn()) + " on timeline " +
							 std::to_string(s.timeline) + " but its history is not a prefix of leader " +
							 NodeName(w.leader) + "'s (its keeper is in " + fsm::StateName(w.keepers[i].current) +
							 ", upstream " + (s.upstream < 0 ? std::string("none") : NodeName(s.upstream)) + "; " +
							 why + ")");
	}
}

bool
Live(const World &w, std::string *why)
{
	int primary = -1;
	for (int i = 0; i < w.n; i++) {
		const Row &r = w.monitor.rows[i];
		if (r.exists && fsm::IsWritableState(r.assigned)) {
			if (primary >= 0) {
				*why = "two nodes are assigned a writable state";
				return false;
			}
			primary = i;
		}
	}
	if (primary < 0) {
		*why = "no node is assigned a writable state";
		return false;
	}
	const Row &p = w.monitor.rows[primary];
	if (p.reported != p.assigned || !CanCommit(w, primary) || w.servers[primary].fenced) {
		*why = NodeName(primary) + " is assigned " + fsm::StateName(p.assigned) + " but reports " +
			   fsm::StateName(p.reported) + (CanCommit(w, primary) ? "" : " and does not accept commits");
		return false;
	}
	for (int i = 0; i < w.n; i++) {
		if (i == primary)
			continue;
		const Row &r = w.monitor.rows[i];
		if (r.exists && (r.wants_maintenance || r.assigned == NodeState::Maintenance))
			continue;
		if (!r.exists || r.assigned != NodeState::Secondary || r.reported != NodeState::Secondary) {
			*why = NodeName(i) + (r.exists ? std::string(" is assigned ") + fsm::StateName(r.assigned) +
												 " and reports " + fsm::StateName(r.reported)
										   : std::string(" is not registered"));
			return false;
		}
		if (!Streaming(w, i) || w.servers[i].upstream != primary) {
			*why = NodeName(i) + " is secondary but does not stream from " + NodeName(primary);
			return false;
		}
	}
	return true;
}

} // namespace autopilot::sim
