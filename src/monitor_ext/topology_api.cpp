/*
 * src/monitor_ext/topology_api.cpp — the DBA's topology functions of
 * docs/elections.md: create_formation, drop_formation,
 * set_number_sync_standbys, set_candidate_priority, set_replication_quorum,
 * drop_node (PostgreSQL zone).
 *
 * Each validates its arguments, connects to SPI and takes the locks of the
 * SQL file (LOCKING): the formation row FOR UPDATE when the formation itself
 * changes (number_sync_standbys, create/drop, drop_node which may lower
 * number_sync_standbys), FOR SHARE otherwise, then the group lock of every
 * group it reads.  The decision is the pure zone's (ValidateNumberSyncStandbys,
 * ValidateCandidatePriority, ValidateReplicationQuorum, DropNode of
 * src/shared/group_rules.hpp), reached through CallCpp; a refusal is raised
 * before anything is written, so a refused call changes nothing.  A change
 * writes an event carrying the function's name, then the group rules run
 * (settings_changed moves the primary to apply_settings when its
 * synchronous_standby_names change).  Locals are POD or palloc'd.
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
}
#include "pg/compat.hpp"

#include <cstring>
#include <string>

#include "group_rules.hpp"
#include "pg/guard.hpp"
#include "states.hpp"

#include "monitor.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(autopilot_create_formation);
PG_FUNCTION_INFO_V1(autopilot_drop_formation);
PG_FUNCTION_INFO_V1(autopilot_set_number_sync_standbys);
PG_FUNCTION_INFO_V1(autopilot_set_candidate_priority);
PG_FUNCTION_INFO_V1(autopilot_set_replication_quorum);
PG_FUNCTION_INFO_V1(autopilot_drop_node);
}

namespace autopilot::monitor {

namespace {

/* Arg* return argument i; 22004 naming it when NULL. */
char *
ArgText(FunctionCallInfo fcinfo, int i, const char *name)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

int32
ArgInt(FunctionCallInfo fcinfo, int i, const char *name)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
	return PG_GETARG_INT32(i);
}

bool
ArgBool(FunctionCallInfo fcinfo, int i, const char *name)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
	return PG_GETARG_BOOL(i);
}

/*
 * ValidateFormationName raises 22023 unless name is 1..63 bytes of
 * [a-z0-9_]: it appears in node GUCs, events and NOTIFY payloads, and the
 * advisory group lock hashes it.
 */
void
ValidateFormationName(const char *name)
{
	size_t len = strlen(name);
	if (len == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("formation name must not be empty")));
	if (len > 63)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("formation name is too long"),
						errdetail("It has %zu bytes; the limit is 63.", len)));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = static_cast<unsigned char>(name[i]);
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
			continue;
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid character 0x%02x in formation name at position %zu", c, i + 1),
						errhint("A formation name consists of 1 to 63 lower-case letters, digits and underscores.")));
	}
}

/* ValidateSyncCount raises 22023 for a negative number_sync_standbys. */
void
ValidateSyncCount(int32 n)
{
	if (n < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("number_sync_standbys %d is out of range", n),
						errdetail("number_sync_standbys is 0 (a primary may acknowledge commits alone when no "
								  "standby is available) or more.")));
}

/*
 * RecordFormationEvent inserts an event about a formation (NULL node
 * columns) with the function's name as its rule, and logs it.
 */
void
RecordFormationEvent(const char *formation, const char *rule, const char *description)
{
	Oid types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum values[3] = {CStringGetTextDatum(formation), CStringGetTextDatum(rule), CStringGetTextDatum(description)};

	SpiRun("INSERT INTO pg_autopilot.event (formation_id, rule, description) VALUES ($1, $2, $3)", 3, types, values,
		   nullptr, false);
	ereport(LOG, (errmsg("pg_autopilot_monitor: %s: %s", rule, description)));
}

/* The groups of a formation that have nodes, ascending; palloc'd. */
struct GroupList {
	int count;
	int32 *ids;
};

void
ListGroups(const char *formation, GroupList *out)
{
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(formation)};
	uint64 rows = SpiRun("SELECT DISTINCT group_id FROM pg_autopilot.node WHERE formation_id = $1 ORDER BY 1", 1, types,
						 values, nullptr, false);
	out->count = static_cast<int>(rows);
	out->ids = static_cast<int32 *>(palloc0(sizeof(int32) * (rows > 0 ? rows : 1)));
	for (uint64 i = 0; i < rows; i++) {
		bool isnull;
		out->ids[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
}

/*
 * GatherFormation locks (ascending) and gathers every group of the
 * formation that has nodes; palloc'd array of groups.count entries.
 */
GatheredGroup *
GatherFormation(const char *formation, const GroupList &groups, int32 nss)
{
	GatheredGroup *gathered = static_cast<GatheredGroup *>(palloc0(sizeof(GatheredGroup) * (groups.count + 1)));
	for (int i = 0; i < groups.count; i++) {
		LockGroup(formation, groups.ids[i]);
		GatherGroup(formation, groups.ids[i], nss, &gathered[i]);
	}
	return gathered;
}

/* BuildFormationViews builds the pure views of gathered groups, without node skip_id (0: none); inside CallCpp. */
void
BuildFormationViews(const GatheredGroup *gathered, int count, int64 skip_id,
					std::vector<autopilot::fsm::GroupView> &views)
{
	views.resize(count);
	for (int i = 0; i < count; i++) {
		BuildGroupView(gathered[i], views[i]);
		auto &nodes = views[i].nodes;
		for (size_t j = 0; j < nodes.size(); j++)
			if (nodes[j].node_id == skip_id) {
				nodes.erase(nodes.begin() + static_cast<std::ptrdiff_t>(j));
				break;
			}
	}
}

/* StoreNumberSyncStandbys writes the formation's value. */
void
StoreNumberSyncStandbys(const char *formation, int32 n)
{
	Oid types[2] = {TEXTOID, INT4OID};
	Datum values[2] = {CStringGetTextDatum(formation), Int32GetDatum(n)};
	SpiRun("UPDATE pg_autopilot.formation SET number_sync_standbys = $2 WHERE formation_id = $1", 2, types, values,
		   nullptr, false);
}

/*
 * ProceedFormation runs the group rules of every group of the formation
 * with its (new) number_sync_standbys, each under its group lock (taken in
 * ascending order, like proceed_groups; a lock already held is re-entered).
 */
void
ProceedFormation(const char *formation, int32 nss)
{
	GroupList groups;
	ListGroups(formation, &groups);
	for (int i = 0; i < groups.count; i++) {
		LockGroup(formation, groups.ids[i]);
		ProceedAndApply(formation, groups.ids[i], nss);
	}
}

/*
 * StoreWantedSettings stores a monitor-side priority/quorum as the node's
 * wanted values (settings_pending: node_active returns them until the node
 * reports them), records an event with the function's name and runs the
 * group rules (settings_changed when the primary's names change).
 */
void
StoreWantedSettings(const char *formation, const GatheredGroup &group, int self, int32 priority, bool quorum,
					const char *rule)
{
	const GatheredNode &n = group.nodes[self];
	Oid types[3] = {INT8OID, INT4OID, BOOLOID};
	Datum values[3] = {Int64GetDatum(n.node_id), Int32GetDatum(priority), BoolGetDatum(quorum)};
	SpiRun("UPDATE pg_autopilot.node SET candidate_priority = $2, replication_quorum = $3, settings_pending = true "
		   "WHERE node_id = $1",
		   3, types, values, nullptr, false);

	StringInfoData msg;
	initStringInfo(&msg);
	if (priority != n.candidate_priority)
		appendStringInfo(&msg, "candidate_priority of %s (id " INT64_FORMAT ") set to %d (was %d)", n.name, n.node_id,
						 priority, n.candidate_priority);
	else
		appendStringInfo(&msg, "replication_quorum of %s (id " INT64_FORMAT ") set to %s", n.name, n.node_id,
						 quorum ? "on" : "off");
	appendStringInfoString(&msg, "; its keeper writes it into postgresql.auto.conf");
	RecordEvent(n.node_id, rule, msg.data);
	ProceedAndApply(formation, group.group_id, group.number_sync_standbys);
}

/*
 * RemoveNodeNow deletes a node's row at once (drop_node with force), after
 * an event: its keeper, if it still runs, finds its id unknown.
 */
void
RemoveNodeNow(const char *formation, const GatheredNode &n)
{
	StringInfoData msg;
	initStringInfo(&msg);
	appendStringInfo(&msg, "%s (id " INT64_FORMAT ") removed from formation \"%s\" (force)", n.name, n.node_id,
					 formation);
	RecordEvent(n.node_id, "node_removed", msg.data);
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(n.node_id)};
	SpiRun("DELETE FROM pg_autopilot.node WHERE node_id = $1", 1, types, values, nullptr, false);
}

/*
 * LowerNumberSyncStandbys lowers the formation's number_sync_standbys to
 * what every group allows without node skip_id (pure MaxNumberSyncStandbys:
 * one less than the quorum standbys of the poorest group), so that writes
 * do not wait forever for standbys that are gone; an event says so.
 * Returns the value in force.  Caller holds the formation row FOR UPDATE.
 */
int32
LowerNumberSyncStandbys(const char *formation, int32 nss, int64 skip_id)
{
	if (nss == 0)
		return 0;
	GroupList groups;
	ListGroups(formation, &groups);
	GatheredGroup *gathered = GatherFormation(formation, groups, nss);
	int max = 0;
	autopilot::pgx::CallCpp([&] {
		std::vector<autopilot::fsm::GroupView> views;
		BuildFormationViews(gathered, groups.count, skip_id, views);
		max = autopilot::fsm::MaxNumberSyncStandbys(views);
	});
	if (max >= nss)
		return nss;
	StoreNumberSyncStandbys(formation, max);
	StringInfoData msg;
	initStringInfo(&msg);
	appendStringInfo(&msg,
					 "number_sync_standbys of formation \"%s\" lowered to %d (was %d): a group has fewer than %d "
					 "quorum standbys left",
					 formation, max, nss, nss + 1);
	RecordFormationEvent(formation, "number_sync_standbys_lowered", msg.data);
	return max;
}

} // namespace

} // namespace autopilot::monitor

using namespace autopilot::monitor;

/*
 * autopilot_create_formation implements pg_autopilot.create_formation(name,
 * number_sync_standbys).  Raises 22004, 22023 (bad name, negative n), 42710
 * (exists).
 */
extern "C" Datum
autopilot_create_formation(PG_FUNCTION_ARGS)
{
	char *name = ArgText(fcinfo, 0, "name");
	int32 n = ArgInt(fcinfo, 1, "number_sync_standbys");
	ValidateFormationName(name);
	ValidateSyncCount(n);

	SPI_connect();
	Oid types[2] = {TEXTOID, INT4OID};
	Datum values[2] = {CStringGetTextDatum(name), Int32GetDatum(n)};
	if (SpiRun("INSERT INTO pg_autopilot.formation (formation_id, number_sync_standbys) VALUES ($1, $2) "
			   "ON CONFLICT (formation_id) DO NOTHING",
			   2, types, values, nullptr, false) != 1)
		ereport(ERROR, (errcode(ERRCODE_DUPLICATE_OBJECT), errmsg("formation \"%s\" already exists", name),
						errhint("pg_autopilot.show_state('%s') lists its nodes.", name)));
	StringInfoData msg;
	initStringInfo(&msg);
	appendStringInfo(&msg, "formation \"%s\" created with number_sync_standbys %d", name, n);
	RecordFormationEvent(name, "create_formation", msg.data);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * autopilot_drop_formation implements pg_autopilot.drop_formation(name): an
 * empty formation and its events go away.  Raises 22004, 42704 (unknown),
 * 55000 ('default', or nodes left).
 */
extern "C" Datum
autopilot_drop_formation(PG_FUNCTION_ARGS)
{
	char *name = ArgText(fcinfo, 0, "name");

	SPI_connect();
	(void) LockFormation(name, true);
	if (strcmp(name, "default") == 0)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("cannot drop formation \"default\""),
						errdetail("Formation \"default\" is created with the extension and is where nodes go when "
								  "pg_autopilot.formation is not set."),
						errhint("DROP EXTENSION pg_autopilot_monitor removes everything.")));
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(name)};
	bool isnull;
	SpiRun("SELECT count(*) FROM pg_autopilot.node WHERE formation_id = $1", 1, types, values, nullptr, false);
	int64 nodes = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (nodes > 0)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("cannot drop formation \"%s\": it has nodes", name),
						errdetail("It has " INT64_FORMAT " node(s).", nodes),
						errhint("Remove them first with pg_autopilot.drop_node(node_name, '%s').", name)));
	SpiRun("DELETE FROM pg_autopilot.event WHERE formation_id = $1", 1, types, values, nullptr, false);
	SpiRun("DELETE FROM pg_autopilot.formation WHERE formation_id = $1", 1, types, values, nullptr, false);
	ereport(LOG, (errmsg("pg_autopilot_monitor: drop_formation: formation \"%s\" dropped", name)));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * autopilot_set_number_sync_standbys implements
 * pg_autopilot.set_number_sync_standbys(n, formation).  Every group of the
 * formation must allow n (pure ValidateNumberSyncStandbys: n + 1 quorum
 * standbys when n > 0); then the value is stored, an event written, and the
 * rules of every group run (settings_changed).  Raises 22004, 42704 (unknown
 * formation), 22023 (n < 0), 55000 (not enough quorum standbys).
 */
extern "C" Datum
autopilot_set_number_sync_standbys(PG_FUNCTION_ARGS)
{
	int32 n = ArgInt(fcinfo, 0, "number_sync_standbys");
	char *formation = ArgText(fcinfo, 1, "formation");

	SPI_connect();
	/* FOR UPDATE: no heartbeat of this formation runs while its groups are checked and the value changes. */
	int32 nss = LockFormation(formation, true);
	GroupList groups;
	ListGroups(formation, &groups);
	GatheredGroup *gathered = GatherFormation(formation, groups, nss);
	autopilot::pgx::CallCpp([&] {
		std::vector<autopilot::fsm::GroupView> views;
		BuildFormationViews(gathered, groups.count, 0, views);
		autopilot::fsm::ValidateNumberSyncStandbys(views, n);
	});
	if (n != nss) {
		StoreNumberSyncStandbys(formation, n);
		StringInfoData msg;
		initStringInfo(&msg);
		appendStringInfo(&msg, "number_sync_standbys of formation \"%s\" set to %d (was %d)", formation, n, nss);
		RecordFormationEvent(formation, "set_number_sync_standbys", msg.data);
		ProceedFormation(formation, n);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * autopilot_set_candidate_priority implements
 * pg_autopilot.set_candidate_priority(node_name, priority, formation).
 * Raises 22004, 42704 (unknown formation or node), 22023 (out of 0..100:
 * pure ValidateCandidatePriority).
 */
extern "C" Datum
autopilot_set_candidate_priority(PG_FUNCTION_ARGS)
{
	char *node_name = ArgText(fcinfo, 0, "node_name");
	int32 priority = ArgInt(fcinfo, 1, "priority");
	char *formation = ArgText(fcinfo, 2, "formation");

	SPI_connect();
	GatheredGroup group;
	int self = LockNodeGroup(formation, node_name, false, &group);
	autopilot::pgx::CallCpp([&] {
		autopilot::fsm::GroupView view;
		BuildGroupView(group, view);
		autopilot::fsm::ValidateCandidatePriority(view, node_name, priority);
	});
	if (group.nodes[self].candidate_priority != priority)
		StoreWantedSettings(formation, group, self, priority, group.nodes[self].replication_quorum,
							"set_candidate_priority");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * autopilot_set_replication_quorum implements
 * pg_autopilot.set_replication_quorum(node_name, quorum, formation).  Raises
 * 22004, 42704, 55000 (pure ValidateReplicationQuorum: it would leave fewer
 * quorum standbys than number_sync_standbys + 1).
 */
extern "C" Datum
autopilot_set_replication_quorum(PG_FUNCTION_ARGS)
{
	char *node_name = ArgText(fcinfo, 0, "node_name");
	bool quorum = ArgBool(fcinfo, 1, "quorum");
	char *formation = ArgText(fcinfo, 2, "formation");

	SPI_connect();
	GatheredGroup group;
	int self = LockNodeGroup(formation, node_name, false, &group);
	autopilot::pgx::CallCpp([&] {
		autopilot::fsm::GroupView view;
		BuildGroupView(group, view);
		autopilot::fsm::ValidateReplicationQuorum(view, node_name, quorum);
	});
	if (group.nodes[self].replication_quorum != quorum)
		StoreWantedSettings(formation, group, self, group.nodes[self].candidate_priority, quorum,
							"set_replication_quorum");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * autopilot_drop_node implements pg_autopilot.drop_node(node_name,
 * formation, force).  The pure DropNode decides (a standby → dropped; the
 * primary is switched or failed over first and ends in dropped, which
 * node.wants_drop remembers); with force the row goes at once.  Then
 * number_sync_standbys is lowered when a group no longer allows it, and the
 * rules run.  Raises 22004, 42704, 55000.
 */
extern "C" Datum
autopilot_drop_node(PG_FUNCTION_ARGS)
{
	char *node_name = ArgText(fcinfo, 0, "node_name");
	char *formation = ArgText(fcinfo, 1, "formation");
	bool force = ArgBool(fcinfo, 2, "force");

	SPI_connect();
	/* FOR UPDATE: the drop may lower the formation's number_sync_standbys. */
	GatheredGroup group;
	int self = LockNodeGroup(formation, node_name, true, &group);
	const GatheredNode &n = group.nodes[self];
	(void) ApplyRequest(group, Request::Drop, node_name, force);

	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(n.node_id)};
	bool isnull;
	SpiRun("UPDATE pg_autopilot.node SET wants_drop = true WHERE node_id = $1 RETURNING assigned_state::text", 1, types,
		   values, nullptr, false);
	bool dropped = strcmp(TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
						  "dropped") == 0;
	if (force && dropped)
		RemoveNodeNow(formation, n);

	int32 nss = LowerNumberSyncStandbys(formation, group.number_sync_standbys, n.node_id);
	if (nss != group.number_sync_standbys)
		ProceedFormation(formation, nss);
	else
		ProceedAndApply(formation, group.group_id, nss);
	SPI_finish();
	PG_RETURN_VOID();
}
