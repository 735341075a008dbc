/*
 * src/shared/sim/monitor_model.cpp — the simulated monitor around the real
 * rules (pure zone).
 *
 * Health is the monitor's verdict as _node_healthy computes it: a report
 * within node_timeout (not required during startup_grace after a monitor
 * restart) and no failed probe after the last report.  A probe that cannot
 * reach the node counts after health_check_max_retries; a node whose
 * postmaster is down is bad at once (connection refused).  assigned_age_ms,
 * report_age_ms, healthy_for_ms and `restarting` come from the same
 * timestamps the glue uses (state_change_time, report_time, healthy_since,
 * stopping_time), in logical
 * time; "after" comparisons use the sequence number so that a report and an
 * assignment in the same step are ordered like the transactions would be.
 * Catches autopilot::Error from the rules (a violation) and from the
 * requests (a refusal); never throws.
 */
#include "sim/monitor_model.hpp"

#include "error.hpp"
#include "sim/invariants.hpp"

/*
 * FastForwardUpstream is declared by group_rules.hpp but lands with the
 * election code (issue 4); a weak reference lets the simulator build before
 * and use the real one after.
 */
namespace autopilot::fsm {
bool FastForwardUpstream(const GroupView &group, int64_t node_id, int64_t *upstream_id, uint64_t *upstream_lsn)
	__attribute__((weak));
}

namespace autopilot::sim {

namespace {

bool
Healthy(const World &w, int i)
{
	const Row &r = w.monitor.rows[i];
	if (!r.has_report)
		return false;
	bool grace = w.now_ms - w.monitor.started_ms < w.config.startup_grace_ms;
	if (!grace && w.now_ms - r.report_ms >= w.config.node_timeout_ms)
		return false;
	if (r.health == 0 && r.health_check_seq > r.report_seq)
		return false;
	return true;
}

bool
Restarting(const World &w, int i)
{
	const Row &r = w.monitor.rows[i];
	return r.has_stopping && (!r.has_report || r.stopping_seq >= r.report_seq) &&
		   w.now_ms - r.stopping_ms < w.config.restart_grace_ms;
}

void
Assign(World &w, int i, NodeState to, const char *rule, const std::string &description)
{
	Row &r = w.monitor.rows[i];
	w.Trace("monitor: " + NodeName(i) + " " + fsm::StateName(r.assigned) + " -> " + fsm::StateName(to) + " (" + rule +
			": " + description + ")");
	r.assigned = to;
	w.rules_fired[rule]++;
	r.state_change_ms = w.now_ms;
	r.state_change_seq = w.seq++;
	if (fsm::IsWritableState(to))
		r.promotion_target = false;
	if (to == NodeState::StopReplication)
		w.promotions++;
}

void
ApplyAll(World &w, const std::vector<fsm::Assignment> &out)
{
	for (const auto &a : out)
		Assign(w, static_cast<int>(a.node_id - 1), a.to, a.rule, a.description);
}

/*
 * ElectionUpstream restates docs/elections.md for the fast_forward answer
 * while fsm::FastForwardUpstream is missing: the most advanced settled
 * report_lsn participant (timeline, then LSN), lowest id among equals.
 */
int
ElectionUpstream(const World &w, uint64_t *lsn)
{
	int best = -1;
	for (int i = 0; i < w.n; i++) {
		const Row &r = w.monitor.rows[i];
		if (!r.exists || r.assigned != NodeState::ReportLsn || r.reported != NodeState::ReportLsn)
			continue;
		const Row *b = best < 0 ? nullptr : &w.monitor.rows[best];
		if (b == nullptr || r.timeline > b->timeline || (r.timeline == b->timeline && r.lsn > b->lsn))
			best = i;
	}
	if (best >= 0)
		*lsn = w.monitor.rows[best].lsn;
	return best;
}

} // namespace

fsm::GroupView
BuildView(const World &w)
{
	fsm::GroupView g;
	g.formation = "default";
	g.group_id = 0;
	g.number_sync_standbys = w.monitor.number_sync_standbys;
	g.sync_lag_threshold_bytes = w.config.sync_lag_threshold;
	g.promote_lag_threshold_bytes = w.config.promote_lag_threshold;
	g.primary_demote_timeout_ms = w.config.primary_demote_timeout_ms;
	g.node_timeout_ms = w.config.node_timeout_ms;
	g.nodes.reserve(static_cast<std::size_t>(w.n));
	for (int i = 0; i < w.n; i++) {
		const Row &r = w.monitor.rows[i];
		if (!r.exists)
			continue;
		fsm::NodeView v;
		v.node_id = i + 1;
		v.name = NodeName(i);
		v.reported = r.reported;
		v.assigned = r.assigned;
		v.last_told = r.last_told;
		v.healthy = Healthy(w, i);
		v.healthy_for_ms = v.healthy ? w.now_ms - r.healthy_since_ms : 0;
		v.lsn = r.lsn;
		v.timeline = r.timeline;
		v.streaming = r.streaming;
		v.candidate_priority = r.priority;
		v.replication_quorum = r.quorum;
		v.assigned_age_ms = w.now_ms - r.state_change_ms;
		v.wants_maintenance = r.wants_maintenance;
		v.restarting = Restarting(w, i);
		v.report_age_ms = r.has_report ? w.now_ms - r.report_ms : UINT64_MAX;
		v.applied_sync_names = r.applied_names;
		v.told_sync_names = r.told_names;
		v.sync_since_lsn = r.sync_since_lsn;
		v.promotion_target = r.promotion_target;
		g.nodes.push_back(std::move(v));
	}
	return g;
}

void
ProceedAndApply(World &w)
{
	if (!w.monitor.up)
		return;
	std::vector<fsm::Assignment> out;
	try {
		out = fsm::ProceedGroup(BuildView(w));
	} catch (const Error &e) {
		AddViolation(w, "rules_error", std::string("ProceedGroup threw: ") + e.what());
		return;
	}
	ApplyAll(w, out);
}

bool
RegisterNode(World &w, int node)
{
	fsm::Assignment a;
	try {
		a = fsm::InitialState(BuildView(w), node + 1, NodeName(node));
	} catch (const Error &) {
		return false;
	}
	Row &r = w.monitor.rows[node];
	r.exists = true;
	r.reported = r.last_told = NodeState::Init;
	Assign(w, node, a.to, a.rule, a.description);
	ProceedAndApply(w);
	return true;
}

namespace {

/*
 * StaleReport (node_api.cpp, docs/protocol.md "report_seq"): the call
 * carries a send time not newer than the newest report already processed
 * for this node, and less than kClockStepBackUs older (a larger gap means
 * the node's clock stepped back: accepted).  A NULL report_seq (an old
 * keeper) is never stale.
 */
constexpr uint64_t kClockStepBackUs = 3600ull * 1000 * 1000;

bool
StaleReport(const Row &r, const Report &rep)
{
	return rep.report_seq != 0 && r.last_report_seq != 0 && rep.report_seq <= r.last_report_seq &&
		   r.last_report_seq - rep.report_seq < kClockStepBackUs;
}

/* CurrentGoal: the row node_active returns for `node` (assigned state, primary, names, upstream). */
Answer
CurrentGoal(World &w, int node)
{
	const Row &r = w.monitor.rows[node];
	Answer a;
	a.assigned = r.assigned;
	for (int i = 0; i < w.n; i++)
		if (w.monitor.rows[i].exists && fsm::IsWritableState(w.monitor.rows[i].assigned))
			a.primary = i;
	if (a.primary >= 0 && w.monitor.rows[a.primary].has_report)
		a.primary_timeline = w.monitor.rows[a.primary].timeline;
	if (a.primary == node)
		a.names = fsm::SynchronousStandbyNames(BuildView(w));
	if (r.assigned == NodeState::FastForward) {
		if (&fsm::FastForwardUpstream != nullptr) {
			int64_t id = 0;
			uint64_t lsn = 0;
			if (fsm::FastForwardUpstream(BuildView(w), node + 1, &id, &lsn)) {
				a.upstream = static_cast<int>(id - 1);
				a.upstream_lsn = lsn;
			}
		} else
			a.upstream = ElectionUpstream(w, &a.upstream_lsn);
	}
	return a;
}

} // namespace

Answer
NodeActive(World &w, const Report &rep)
{
	Row &r = w.monitor.rows[rep.node];
	if (StaleReport(r, rep)) {
		/* A call its keeper gave up on, overtaken by a newer one: nothing recorded, no rule, no last_told. */
		w.Trace("monitor: " + NodeName(rep.node) + " stale report ignored (" + fsm::StateName(rep.current) + ", sent " +
				std::to_string(r.last_report_seq - rep.report_seq) + " us before the newest)");
		return CurrentGoal(w, rep.node);
	}
	if (rep.report_seq != 0)
		r.last_report_seq = rep.report_seq;
	if (r.reported != rep.current)
		w.Trace("monitor: " + NodeName(rep.node) + " reports " + fsm::StateName(rep.current) + " (lsn " +
				std::to_string(rep.lsn) + ", timeline " + std::to_string(rep.timeline) +
				(rep.streaming ? ", streaming" : "") + ")");
	/* healthy_since (node_active): a report that ends an unhealthy period (or the first one) starts a new one. */
	if (!Healthy(w, rep.node))
		r.healthy_since_ms = w.now_ms;
	r.reported = rep.current;
	r.lsn = rep.lsn;
	r.timeline = rep.timeline;
	r.streaming = rep.streaming;
	/* sync_since_lsn (node_active): the names took their current value in this report ('' → 0). */
	if (rep.applied_names != r.applied_names)
		r.sync_since_lsn = rep.applied_names.empty() ? 0 : rep.lsn;
	r.applied_names = rep.applied_names;
	r.has_report = true;
	r.report_ms = w.now_ms;
	r.report_seq = w.seq++;
	ProceedAndApply(w);

	Answer a = CurrentGoal(w, rep.node);
	/* Remembered even when the answer is lost on the way back: the sync proof depends on it. */
	r.last_told = r.assigned;
	/*
	 * The told names are evidence of what the keeper may run: only an
	 * answer with a writable goal makes it apply names, so the glue keeps
	 * the value of the last such answer (docs/elections.md).
	 */
	if (fsm::IsWritableState(r.assigned))
		r.told_names = a.names;
	return a;
}

void
NodeStopping(World &w, int node)
{
	Row &r = w.monitor.rows[node];
	if (!w.monitor.up || !r.exists)
		return;
	r.has_stopping = true;
	r.stopping_ms = w.now_ms;
	r.stopping_seq = w.seq++;
	w.Trace("monitor: " + NodeName(node) + " announced a clean shutdown");
}

void
HealthRound(World &w)
{
	if (!w.monitor.up)
		return;
	for (int i = 0; i < w.n; i++) {
		Row &r = w.monitor.rows[i];
		if (!r.exists)
			continue;
		int health;
		if (!w.LinkUp(i, -1)) {
			if (++r.failures <= w.config.health_check_max_retries)
				continue;
			health = 0;
		} else {
			r.failures = 0;
			health = w.servers[i].up ? 1 : 0;
		}
		if (health != r.health)
			w.Trace("monitor: health check of " + NodeName(i) + ": " + (health ? "good" : "bad"));
		bool was_healthy = Healthy(w, i);
		r.health = health;
		r.health_check_ms = w.now_ms;
		r.health_check_seq = w.seq++;
		/* healthy_since (record_health): a good check that turns the verdict healthy starts a healthy period. */
		if (!was_healthy && Healthy(w, i))
			r.healthy_since_ms = w.now_ms;
	}
	ProceedAndApply(w);
}

void
OperatorCall(World &w, const Event &e)
{
	if (!w.monitor.up)
		return;
	w.requests++;
	std::vector<fsm::Assignment> out;
	std::string name = e.a >= 0 ? NodeName(e.a) : "";
	try {
		fsm::GroupView g = BuildView(w);
		switch (e.kind) {
		case EventKind::Switchover:
			out = fsm::Switchover(g);
			break;
		case EventKind::Failover:
			out = fsm::Failover(g);
			break;
		case EventKind::Promotion:
			out = fsm::Promotion(g, name);
			break;
		case EventKind::EnableMaintenance:
			out = fsm::EnableMaintenance(g, name);
			break;
		case EventKind::DisableMaintenance:
			out = fsm::DisableMaintenance(g, name);
			break;
		case EventKind::SetNumberSync: {
			/* docs/elections.md: n > 0 needs n + 1 quorum standbys (the primary does not count). */
			int quorum_nodes = 0;
			bool primary_counted = false;
			for (const auto &v : g.nodes)
				if (v.replication_quorum) {
					quorum_nodes++;
					primary_counted = primary_counted || fsm::IsWritableState(v.assigned);
				}
			/* Whichever node is (or becomes) the primary is not a standby of its own quorum. */
			int quorum_standbys = quorum_nodes - (primary_counted || quorum_nodes == static_cast<int>(g.nodes.size()));
			if (e.arg < 0 || (e.arg > 0 && e.arg + 1 > quorum_standbys)) {
				w.refusals++;
				w.Trace("operator: set_number_sync_standbys(" + std::to_string(e.arg) + ") refused");
				return;
			}
			/*
			 * Lowering number_sync_standbys to 0 is the operator choosing
			 * availability for every failover from now on
			 * (docs/elections.md): a primary that acknowledged commits
			 * alone may then be failed over without them, including
			 * commits acknowledged while the value was higher.  RPO 0 is
			 * promised again for commits acknowledged after it is raised.
			 */
			if (e.arg == 0 && w.monitor.number_sync_standbys > 0 && !w.config.strict_sync)
				for (auto &c : w.commits)
					c.durable = false;
			w.monitor.number_sync_standbys = e.arg;
			break;
		}
		default:
			return;
		}
	} catch (const Error &err) {
		w.refusals++;
		w.Trace(std::string("operator: ") + EventName(e.kind) + " " + name + " refused: " + err.what());
		return;
	}
	w.Trace(std::string("operator: ") + EventName(e.kind) + " " + name + " accepted");
	ApplyAll(w, out);
	if (e.kind == EventKind::EnableMaintenance)
		w.monitor.rows[e.a].wants_maintenance = true;
	if (e.kind == EventKind::DisableMaintenance)
		w.monitor.rows[e.a].wants_maintenance = false;
	if (e.kind == EventKind::Promotion && !out.empty())
		w.monitor.rows[e.a].promotion_target = true;
	ProceedAndApply(w);
}

int
MaxGroupSize()
{
	fsm::GroupView g;
	g.formation = "default";
	for (int i = 1; i <= 2; i++) {
		fsm::NodeView v;
		v.node_id = i;
		v.name = NodeName(i - 1);
		v.assigned = v.reported = v.last_told = i == 1 ? NodeState::Primary : NodeState::Secondary;
		v.timeline = 1;
		g.nodes.push_back(v);
	}
	try {
		(void) fsm::InitialState(g, 3, NodeName(2));
	} catch (const Error &) {
		return 2;
	}
	return 5;
}

} // namespace autopilot::sim
