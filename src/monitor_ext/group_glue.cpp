/*
 * src/monitor_ext/group_glue.cpp — gather → decide → apply for one group of
 * nodes (PostgreSQL zone).
 *
 * Gather: SPI reads the group into palloc'd GatheredNode structs.  Decide:
 * inside CallCpp the pure rules (src/shared/group_rules.cpp) run on a
 * GroupView built from them; the decisions are copied into pre-allocated
 * POD buffers before the lambda ends.  Apply: UPDATE node, INSERT event
 * with the rule's name, NOTIFY state (JSON), one LOG line per change.
 * ApplyRequest does the same for the operator requests (Switchover,
 * Failover, Promotion, Enable/DisableMaintenance): a refusal is thrown by
 * the pure function inside CallCpp, so it is raised before anything is
 * written.  The gathered view carries assigned_age_ms (from
 * state_change_time, which ApplyDecisions sets with every assignment),
 * report_age_ms (from report_time, for the timeout proof),
 * healthy_for_ms (from healthy_since, 0 while unhealthy: primary_failed's
 * candidate has been healthy for node_timeout), wants_maintenance and the
 * GUCs promote_lag_threshold, primary_demote_timeout and node_timeout as
 * read at gather time.
 *
 * Invariants: callers hold an SPI connection, the formation lock and the
 * group lock (see the SQL file, LOCKING) before calling ProceedAndApply;
 * no C++ object with a destructor lives on a frame that can ereport (they
 * only exist inside CallCpp lambdas).
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
}
#include "pg/compat.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "error.hpp"
#include "group_rules.hpp"
#include "pg/guard.hpp"
#include "states.hpp"

#include "monitor.hpp"

namespace autopilot::monitor {

namespace {

/* One decision of the pure rules, copied out of C++ land. */
struct Decision {
	int64 node_id;
	uint8 to;
	const char *rule; /* static string of the rule table */
	char description[1024];
};

void
CopyTruncated(char *dst, size_t size, const std::string &src) noexcept
{
	size_t n = src.size() < size - 1 ? src.size() : size - 1;
	memcpy(dst, src.data(), n);
	dst[n] = '\0';
}

/* StateFromLabel maps an enum label read from the node table to its NodeState value. */
uint8
StateFromLabel(const char *label)
{
	int value = StateValue(label);
	if (value < 0)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("pg_autopilot_monitor: node state \"%s\" is unknown to this module", label),
						errhint("The installed module and the extension's SQL do not match: reinstall both.")));
	return static_cast<uint8>(value);
}

const char *
HealthLabel(int16 health)
{
	return health == 1 ? "good" : health == 0 ? "bad" : "unknown";
}

/* NotifyState sends NOTIFY state with the node's current row as JSON (delivered at commit). */
void
NotifyState(int64 node_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(node_id)};

	if (SpiRun("SELECT formation_id, group_id, node_name, host, port, reported_state::text, "
			   "assigned_state::text, health, "
			   "pg_autopilot._node_healthy(report_time, health, health_check_time) "
			   "FROM pg_autopilot.node WHERE node_id = $1",
			   1, types, values, nullptr, false) != 1)
		return;

	HeapTuple tup = SPI_tuptable->vals[0];
	TupleDesc desc = SPI_tuptable->tupdesc;
	bool isnull;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"formation\": ");
	escape_json(&buf, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));
	appendStringInfo(&buf, ", \"group_id\": %d, \"node_id\": " INT64_FORMAT ", \"node_name\": ",
					 DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull)), node_id);
	escape_json(&buf, TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull)));
	appendStringInfoString(&buf, ", \"host\": ");
	escape_json(&buf, TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull)));
	appendStringInfo(&buf, ", \"port\": %d, \"reported_state\": ", DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull)));
	escape_json(&buf, TextDatumGetCString(SPI_getbinval(tup, desc, 6, &isnull)));
	appendStringInfoString(&buf, ", \"assigned_state\": ");
	escape_json(&buf, TextDatumGetCString(SPI_getbinval(tup, desc, 7, &isnull)));
	appendStringInfo(&buf, ", \"health\": \"%s\", \"reachable\": %s}",
					 HealthLabel(DatumGetInt16(SPI_getbinval(tup, desc, 8, &isnull))),
					 DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull)) ? "true" : "false");
	Async_Notify("state", buf.data);
	pfree(buf.data);
}

/*
 * CopyDecisions copies pure assignments into pre-allocated POD decisions; runs
 * inside CallCpp (throws XX000 when the rules move a node more than once).
 */
void
CopyDecisions(const std::vector<autopilot::fsm::Assignment> &out, int capacity, Decision *decisions, int *ndecisions)
{
	if (out.size() > static_cast<size_t>(capacity))
		throw autopilot::Error(autopilot::sqlstate::kInternalError, "group rules assigned a node twice");
	for (const auto &a : out) {
		Decision &d = decisions[(*ndecisions)++];
		d.node_id = a.node_id;
		d.to = static_cast<uint8>(a.to);
		d.rule = a.rule;
		CopyTruncated(d.description, sizeof(d.description), a.description);
	}
}

/*
 * ApplyDecisions writes each decision: the new goal with state_change_time =
 * now() (the only place an assigned state changes after registration, so
 * assigned_age_ms always measures the current goal), an event with the
 * rule's name, LOG and NOTIFY state.
 */
void
ApplyDecisions(const Decision *decisions, int ndecisions)
{
	for (int i = 0; i < ndecisions; i++) {
		Oid types[2] = {INT8OID, TEXTOID};
		Datum values[2] = {
			Int64GetDatum(decisions[i].node_id),
			CStringGetTextDatum(autopilot::fsm::StateName(static_cast<autopilot::fsm::NodeState>(decisions[i].to)))};

		SpiRun("UPDATE pg_autopilot.node SET assigned_state = $2::pg_autopilot.node_state, "
			   "state_change_time = now() WHERE node_id = $1",
			   2, types, values, nullptr, false);
		RecordEvent(decisions[i].node_id, decisions[i].rule, decisions[i].description);
	}
}

} // namespace

void
BuildGroupView(const GatheredGroup &g, autopilot::fsm::GroupView &view)
{
	view.formation = g.formation;
	view.group_id = g.group_id;
	view.number_sync_standbys = g.number_sync_standbys;
	view.promote_lag_threshold_bytes = g.promote_lag_threshold_bytes;
	view.primary_demote_timeout_ms = g.primary_demote_timeout_ms;
	view.node_timeout_ms = g.node_timeout_ms;
	view.nodes.reserve(g.count);
	for (int i = 0; i < g.count; i++) {
		const GatheredNode &n = g.nodes[i];
		autopilot::fsm::NodeView v;
		v.node_id = n.node_id;
		v.name = n.name;
		v.reported = static_cast<autopilot::fsm::NodeState>(n.reported);
		v.assigned = static_cast<autopilot::fsm::NodeState>(n.assigned);
		v.healthy = n.healthy;
		v.lsn = n.lsn;
		v.timeline = n.timeline;
		v.streaming = n.streaming;
		v.candidate_priority = n.candidate_priority;
		v.replication_quorum = n.replication_quorum;
		v.wants_maintenance = n.wants_maintenance;
		v.restarting = n.restarting;
		v.last_told = static_cast<autopilot::fsm::NodeState>(n.last_told);
		v.assigned_age_ms = static_cast<uint64_t>(n.assigned_age_ms);
		v.report_age_ms = static_cast<uint64_t>(n.report_age_ms);
		v.applied_sync_names = n.applied_sync_names;
		v.told_sync_names = n.told_sync_names;
		v.sync_since_lsn = static_cast<uint64_t>(n.sync_since_lsn);
		v.promotion_target = n.promotion_target;
		v.allow_data_loss = n.allow_data_loss;
		v.wants_drop = n.wants_drop;
		v.healthy_for_ms = static_cast<uint64_t>(n.healthy_for_ms);
		view.nodes.push_back(std::move(v));
	}
}

/*
 * StateValue maps a state label to its NodeState value, -1 when unknown.
 * ParseState is noexcept and its result trivially destructible, so no
 * boundary is needed.
 */
int
StateValue(const char *label)
{
	auto s = autopilot::fsm::ParseState(label);
	return s ? static_cast<int>(*s) : -1;
}

int32
LockFormation(const char *formation, bool exclusive)
{
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(formation)};
	const char *sql = exclusive ? "SELECT number_sync_standbys FROM pg_autopilot.formation "
								  "WHERE formation_id = $1 FOR UPDATE"
								: "SELECT number_sync_standbys FROM pg_autopilot.formation "
								  "WHERE formation_id = $1 FOR SHARE";
	bool isnull;

	if (SpiRun(sql, 1, types, values, nullptr, false) != 1)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("formation \"%s\" does not exist", formation)));
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

void
LockGroup(const char *formation, int32 group_id)
{
	LOCKTAG tag;
	uint32 hash = DatumGetUInt32(hash_any(reinterpret_cast<const unsigned char *>(formation), (int) strlen(formation)));

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, hash, (uint32) group_id, kGroupLockClass);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * LockNodeGroup locks the formation (FOR UPDATE when exclusive, else FOR
 * SHARE), finds node_name and locks and gathers its group; returns the
 * node's index.  Raises 42704 for an unknown formation or node.
 */
int
LockNodeGroup(const char *formation, const char *node_name, bool exclusive, GatheredGroup *group)
{
	int32 nss = LockFormation(formation, exclusive);
	Oid types[2] = {TEXTOID, TEXTOID};
	Datum values[2] = {CStringGetTextDatum(formation), CStringGetTextDatum(node_name)};
	bool isnull;

	/* A node never changes group: the group read before taking its lock stays right. */
	if (SpiRun("SELECT group_id FROM pg_autopilot.node WHERE formation_id = $1 AND node_name = $2", 2, types, values,
			   nullptr, false) != 1)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
						errmsg("node \"%s\" does not exist in formation \"%s\"", node_name, formation),
						errhint("pg_autopilot.show_state() lists the nodes.")));
	int32 group_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	LockGroup(formation, group_id);
	GatherGroup(formation, group_id, nss, group);
	for (int i = 0; i < group->count; i++)
		if (strcmp(group->nodes[i].name, node_name) == 0)
			return i;
	ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
					errmsg("node \"%s\" does not exist in formation \"%s\"", node_name, formation)));
	return -1; /* not reached */
}

bool
NodeHealthy(bool report_time_null, TimestampTz report_time, int16 health, bool health_check_time_null,
			TimestampTz health_check_time)
{
	if (report_time_null)
		return false;
	/*
	 * Startup grace: reports went stale while this monitor was down, not
	 * because the nodes failed.  For startup_grace after the monitor started,
	 * only a failed health check (made since the start) makes a node
	 * unhealthy, so that the keepers have time to reconnect (their backoff
	 * reaches 5 s) and a monitor restart never causes a failover nor drops
	 * synchronous replication.
	 */
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	bool in_startup_grace = !TimestampDifferenceExceeds(PgStartTime, now, startup_grace_ms);
	if (!in_startup_grace && TimestampDifferenceExceeds(report_time, now, node_timeout_ms))
		return false;
	if (health == 0 && !health_check_time_null && health_check_time > report_time)
		return false;
	return true;
}

void
GatherGroup(const char *formation, int32 group_id, int32 number_sync_standbys, GatheredGroup *out)
{
	Oid types[3] = {TEXTOID, INT4OID, INT4OID};
	Datum values[3] = {CStringGetTextDatum(formation), Int32GetDatum(group_id), Int32GetDatum(restart_grace_ms)};
	uint64 rows = SpiRun("SELECT node_id, node_name, host, port, system_identifier, reported_state::text, "
						 "assigned_state::text, "
						 "pg_autopilot._node_healthy(report_time, health, health_check_time), "
						 "reported_lsn, reported_timeline, candidate_priority, replication_quorum, "
						 "coalesce(wal_receiver_streaming, false), wants_maintenance, "
						 "greatest(0, floor(extract(epoch FROM now() - state_change_time) * 1000))::int8, "
						 "stopping_time IS NOT NULL AND (report_time IS NULL OR stopping_time >= report_time) "
						 "AND stopping_time > now() - $3::int * interval '1 millisecond', "
						 "coalesce(last_told_state::text, 'init'), "
						 "coalesce(greatest(0, floor(extract(epoch FROM now() - report_time) * 1000))::int8, "
						 "9223372036854775807), "
						 "coalesce(applied_sync_names, ''), coalesce(last_told_sync_names, ''), "
						 "promotion_target, allow_data_loss, settings_pending, wants_drop, "
						 "CASE WHEN pg_autopilot._node_healthy(report_time, health, health_check_time) "
						 "THEN coalesce(greatest(0, floor(extract(epoch FROM now() - healthy_since) * 1000))::int8, 0) "
						 "ELSE 0 END, "
						 "coalesce(sync_since_lsn, '0/0'::pg_lsn) "
						 "FROM pg_autopilot.node WHERE formation_id = $1 AND group_id = $2 ORDER BY node_id",
						 3, types, values, nullptr, false);
	SPITupleTable *tt = SPI_tuptable;

	out->formation = pstrdup(formation);
	out->group_id = group_id;
	out->number_sync_standbys = number_sync_standbys;
	out->promote_lag_threshold_bytes = static_cast<uint64>(promote_lag_threshold_bytes);
	out->primary_demote_timeout_ms = static_cast<uint64>(primary_demote_timeout_ms);
	out->node_timeout_ms = static_cast<uint64>(node_timeout_ms);
	out->count = (int) rows;
	out->nodes = static_cast<GatheredNode *>(palloc0(sizeof(GatheredNode) * (rows > 0 ? rows : 1)));
	for (uint64 i = 0; i < rows; i++) {
		HeapTuple tup = tt->vals[i];
		TupleDesc desc = tt->tupdesc;
		GatheredNode &n = out->nodes[i];
		bool isnull;

		n.node_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		n.name = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		n.host = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		n.port = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
		Datum sysid = SPI_getbinval(tup, desc, 5, &isnull);
		n.system_identifier = isnull ? 0 : DatumGetInt64(sysid);
		n.system_identifier_null = isnull;
		n.reported = StateFromLabel(TextDatumGetCString(SPI_getbinval(tup, desc, 6, &isnull)));
		n.assigned = StateFromLabel(TextDatumGetCString(SPI_getbinval(tup, desc, 7, &isnull)));
		n.healthy = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		n.lsn = DatumGetLSN(SPI_getbinval(tup, desc, 9, &isnull));
		n.timeline = (uint32) DatumGetInt32(SPI_getbinval(tup, desc, 10, &isnull));
		n.candidate_priority = DatumGetInt32(SPI_getbinval(tup, desc, 11, &isnull));
		n.replication_quorum = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
		n.streaming = DatumGetBool(SPI_getbinval(tup, desc, 13, &isnull));
		n.wants_maintenance = DatumGetBool(SPI_getbinval(tup, desc, 14, &isnull));
		n.assigned_age_ms = DatumGetInt64(SPI_getbinval(tup, desc, 15, &isnull));
		n.restarting = DatumGetBool(SPI_getbinval(tup, desc, 16, &isnull));
		n.last_told = StateFromLabel(TextDatumGetCString(SPI_getbinval(tup, desc, 17, &isnull)));
		n.report_age_ms = DatumGetInt64(SPI_getbinval(tup, desc, 18, &isnull));
		n.applied_sync_names = TextDatumGetCString(SPI_getbinval(tup, desc, 19, &isnull));
		n.told_sync_names = TextDatumGetCString(SPI_getbinval(tup, desc, 20, &isnull));
		n.promotion_target = DatumGetBool(SPI_getbinval(tup, desc, 21, &isnull));
		n.allow_data_loss = DatumGetBool(SPI_getbinval(tup, desc, 22, &isnull));
		n.settings_pending = DatumGetBool(SPI_getbinval(tup, desc, 23, &isnull));
		n.wants_drop = DatumGetBool(SPI_getbinval(tup, desc, 24, &isnull));
		n.healthy_for_ms = DatumGetInt64(SPI_getbinval(tup, desc, 25, &isnull));
		n.sync_since_lsn = DatumGetLSN(SPI_getbinval(tup, desc, 26, &isnull));
	}
}

void
RecordEvent(int64 node_id, const char *rule, const char *description)
{
	Oid types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum values[3] = {Int64GetDatum(node_id), rule ? CStringGetTextDatum(rule) : (Datum) 0,
					   CStringGetTextDatum(description)};
	char nulls[3] = {' ', rule ? ' ' : 'n', ' '};

	SpiRun("INSERT INTO pg_autopilot.event (formation_id, node_id, group_id, node_name, reported_state, "
		   "assigned_state, rule, description) "
		   "SELECT formation_id, node_id, group_id, node_name, reported_state, assigned_state, $2, $3 "
		   "FROM pg_autopilot.node WHERE node_id = $1",
		   3, types, values, nulls, false);
	if (rule)
		ereport(LOG, (errmsg("pg_autopilot_monitor: rule %s: %s", rule, description)));
	else
		ereport(LOG, (errmsg("pg_autopilot_monitor: %s", description)));
	NotifyState(node_id);
}

namespace {

/*
 * ClearEndedOperations clears the per-operation marks of a group once their
 * operation is over: promotion_target (perform_promotion) when its node is
 * assigned a writable state or no node is in a role change any more, and
 * allow_data_loss (perform_failover) when its node left draining /
 * demote_timeout.  Runs only when the gathered group has a mark, so that a
 * plain heartbeat costs no extra statement.
 */
void
ClearEndedOperations(const GatheredGroup &group)
{
	bool marked = false;
	for (int i = 0; i < group.count; i++)
		marked = marked || group.nodes[i].promotion_target || group.nodes[i].allow_data_loss;
	if (!marked)
		return;

	Oid types[2] = {TEXTOID, INT4OID};
	Datum values[2] = {CStringGetTextDatum(group.formation), Int32GetDatum(group.group_id)};
	SpiRun("UPDATE pg_autopilot.node n SET "
		   "promotion_target = n.promotion_target "
		   "AND n.assigned_state NOT IN ('single', 'wait_primary', 'primary', 'apply_settings') "
		   "AND EXISTS (SELECT 1 FROM pg_autopilot.node o WHERE o.formation_id = n.formation_id "
		   "AND o.group_id = n.group_id AND o.assigned_state IN ('draining', 'demote_timeout', "
		   "'prepare_promotion', 'stop_replication', 'report_lsn', 'fast_forward')), "
		   "allow_data_loss = n.allow_data_loss AND n.assigned_state IN ('draining', 'demote_timeout') "
		   "WHERE n.formation_id = $1 AND n.group_id = $2 AND (n.promotion_target OR n.allow_data_loss)",
		   2, types, values, nullptr, false);
}

} // namespace

int
ProceedAndApply(const char *formation, int32 group_id, int32 number_sync_standbys, GatheredGroup *unchanged)
{
	GatheredGroup group;
	GatherGroup(formation, group_id, number_sync_standbys, &group);
	if (group.count == 0)
		return 0;

	/* ProceedGroup moves every node at most once per call: count decisions suffice. */
	Decision *decisions = static_cast<Decision *>(palloc0(sizeof(Decision) * group.count));
	int ndecisions = 0;
	autopilot::pgx::CallCpp([&] {
		autopilot::fsm::GroupView view;
		BuildGroupView(group, view);
		CopyDecisions(autopilot::fsm::ProceedGroup(view), group.count, decisions, &ndecisions);
	});
	ApplyDecisions(decisions, ndecisions);
	if (ndecisions > 0)
		ClearEndedOperations(group);
	else if (unchanged != nullptr)
		*unchanged = group; /* still what the table holds: the caller need not gather it again */
	return ndecisions;
}

int
ApplyRequest(const GatheredGroup &group, Request request, const char *node_name, bool flag)
{
	/* A request moves each node once at most, like ProceedGroup. */
	int capacity = group.count > 0 ? group.count : 1;
	Decision *decisions = static_cast<Decision *>(palloc0(sizeof(Decision) * capacity));
	int ndecisions = 0;
	autopilot::pgx::CallCpp([&] {
		autopilot::fsm::GroupView view;
		BuildGroupView(group, view);
		/* perform_failover(allow_data_loss => true): the pure Failover sees the mark on the primary it fails over. */
		if (request == Request::Failover && flag)
			for (auto &v : view.nodes)
				if (autopilot::fsm::IsWritableState(v.assigned))
					v.allow_data_loss = true;
		std::string name = node_name != nullptr ? node_name : "";
		std::vector<autopilot::fsm::Assignment> out;
		switch (request) {
		case Request::Switchover:
			out = autopilot::fsm::Switchover(view);
			break;
		case Request::Failover:
			out = autopilot::fsm::Failover(view);
			break;
		case Request::Promotion:
			out = autopilot::fsm::Promotion(view, name);
			break;
		case Request::EnableMaintenance:
			out = autopilot::fsm::EnableMaintenance(view, name);
			break;
		case Request::DisableMaintenance:
			out = autopilot::fsm::DisableMaintenance(view, name);
			break;
		case Request::Drop:
			out = autopilot::fsm::DropNode(view, name, flag);
			break;
		}
		CopyDecisions(out, capacity, decisions, &ndecisions);
	});
	ApplyDecisions(decisions, ndecisions);
	return ndecisions;
}

char *
SyncStandbyNames(const GatheredGroup &group)
{
	/* "ANY k (" + per node "pg_autopilot_node_<19 digits>, " + ")": 48 bytes a node is plenty. */
	size_t size = 64 + 48 * static_cast<size_t>(group.count);
	char *result = static_cast<char *>(palloc0(size));

	autopilot::pgx::CallCpp([&] {
		autopilot::fsm::GroupView view;
		BuildGroupView(group, view);
		std::string names = autopilot::fsm::SynchronousStandbyNames(view);
		if (names.size() >= size)
			throw autopilot::Error(autopilot::sqlstate::kInternalError, "synchronous_standby_names is too long");
		memcpy(result, names.c_str(), names.size() + 1);
	});
	return result;
}

} // namespace autopilot::monitor
