/*
 * src/monitor_ext/node_api.cpp — the keeper protocol and the health-check
 * verdict: register_node, node_active, node_stopping, record_health,
 * proceed_groups (PostgreSQL zone).
 *
 * Each function validates every argument before touching anything (bad
 * input raises an ERROR with an errcode; the transaction rolls back, so
 * nothing changes), then connects to SPI, takes the formation lock, then
 * the group lock (see the SQL file, LOCKING), records what the node or the
 * health check said, and runs gather → decide → apply (group_glue.cpp).
 * Pure code (name validation, initial state, slot names) is reached only
 * through CallCpp; locals of these frames are POD or palloc'd.
 */
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/resowner.h"
#include "utils/tuplestore.h"
}
#include "pg/compat.hpp"

#include <cstring>

#include "conninfo.hpp"
#include "error.hpp"
#include "group_rules.hpp"
#include "pg/guard.hpp"
#include "states.hpp"

#include "monitor.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(autopilot_register_node);
PG_FUNCTION_INFO_V1(autopilot_node_active);
PG_FUNCTION_INFO_V1(autopilot_record_health);
PG_FUNCTION_INFO_V1(autopilot_proceed_groups);
PG_FUNCTION_INFO_V1(autopilot_node_stopping);
}

namespace autopilot::monitor {

namespace {

/* RequireArgs raises 22004 naming the first of the first n arguments that is NULL. */
void
RequireArgs(FunctionCallInfo fcinfo, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", names[i])));
}

/* ValidateNodeName raises 22023 unless conninfo::ValidateName accepts the name. */
void
ValidateNodeName(const char *name)
{
	autopilot::pgx::CallCpp([&] { autopilot::conninfo::ValidateName(name, "node name"); });
}

/*
 * ValidateHost accepts 1..255 bytes of letters, digits and ".-_:" (host
 * names, IPv4 and IPv6 literals).  Anything else — quotes, spaces, control
 * characters, "/" of socket directories that peers cannot reach, "@" or "?"
 * that would break formation_uri — raises 22023.
 */
void
ValidateHost(const char *host)
{
	size_t len = strlen(host);
	if (len == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("host must not be empty")));
	if (len > 255)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("host is too long"),
						errdetail("It has %zu bytes; the limit is 255.", len)));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = static_cast<unsigned char>(host[i]);
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
			c == '_' || c == ':')
			continue;
		if (c >= 0x20 && c < 0x7f)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("invalid character \"%c\" in host at position %zu", c, i + 1),
							errhint("A host is a host name or an IP address that the monitor and the other "
									"nodes can connect to.")));
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid character 0x%02x in host at position %zu", c, i + 1),
						errhint("A host is a host name or an IP address that the monitor and the other nodes "
								"can connect to.")));
	}
}

void
ValidatePort(int32 port)
{
	if (port < 1 || port > 65535)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("port %d is out of range", port),
						errdetail("A port is between 1 and 65535.")));
}

void
ValidatePriority(int32 priority)
{
	if (priority < 0 || priority > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("candidate priority %d is out of range", priority),
				 errdetail("A candidate priority is between 0 (never promoted) and 100.")));
}

/* ParseStateArg maps a reported state label to its value; 22023 for an unknown label. */
uint8
ParseStateArg(const char *label)
{
	int value = StateValue(label);
	if (value < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid node state \"%s\"", label),
						errhint("The states are listed by pg_autopilot.node_states().")));
	return static_cast<uint8>(value);
}

/* CheckAddressFree raises 42710 when another node (not node_id) already uses host:port. */
void
CheckAddressFree(const char *host, int32 port, int64 node_id)
{
	Oid types[3] = {TEXTOID, INT4OID, INT8OID};
	Datum values[3] = {CStringGetTextDatum(host), Int32GetDatum(port), Int64GetDatum(node_id)};
	bool isnull;

	if (SpiRun("SELECT node_name, formation_id FROM pg_autopilot.node "
			   "WHERE host = $1 AND port = $2 AND node_id <> $3",
			   3, types, values, nullptr, false) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT), errmsg("%s:%d is already used by another node", host, port),
			 errdetail("Node \"%s\" of formation \"%s\" has this address.",
					   TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
					   TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))));
}

/* AssignedStateText reads a node's goal as text (palloc'd in the current context). */
char *
AssignedStateText(int64 node_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(node_id)};
	bool isnull;

	if (SpiRun("SELECT assigned_state::text FROM pg_autopilot.node WHERE node_id = $1", 1, types, values, nullptr,
			   false) != 1)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("node " INT64_FORMAT " vanished", node_id)));
	return TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* The row of a node that node_active and record_health look up by id. */
struct NodeRow {
	char *formation;
	int32 group_id;
	char *name;
	char *reported_state;
	int16 health;
	bool healthy;
	int32 candidate_priority;
	bool replication_quorum;
	bool settings_pending;
};

/* LookupNode reads node_id; 42704 when it does not exist (or not in `formation`, when given). */
void
LookupNode(int64 node_id, const char *formation, NodeRow *row)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(node_id)};
	bool isnull;

	if (SpiRun("SELECT formation_id, group_id, node_name, reported_state::text, health, "
			   "pg_autopilot._node_healthy(report_time, health, health_check_time), "
			   "candidate_priority, replication_quorum, settings_pending "
			   "FROM pg_autopilot.node WHERE node_id = $1",
			   1, types, values, nullptr, false) != 1)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("node " INT64_FORMAT " does not exist", node_id)));
	HeapTuple tup = SPI_tuptable->vals[0];
	TupleDesc desc = SPI_tuptable->tupdesc;
	row->formation = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	row->group_id = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	row->name = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
	row->reported_state = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
	row->health = DatumGetInt16(SPI_getbinval(tup, desc, 5, &isnull));
	row->healthy = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	row->candidate_priority = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
	row->replication_quorum = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
	row->settings_pending = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
	if (formation != nullptr && strcmp(formation, row->formation) != 0)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
						errmsg("node " INT64_FORMAT " does not exist in formation \"%s\"", node_id, formation)));
}

} // namespace

} // namespace autopilot::monitor

using namespace autopilot::monitor;

/*
 * autopilot_register_node implements pg_autopilot.register_node (see the SQL
 * file).  Raises 22004 (NULL argument), 22023 (bad name, host, port,
 * priority), 42704 (unknown formation), 42710 (address used by another
 * node), 55000 (group without a primary to follow: retry later).
 */
extern "C" Datum
autopilot_register_node(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"formation",          "node_name",         "host", "port", "system_identifier",
										"candidate_priority", "replication_quorum"};
	RequireArgs(fcinfo, names, 7);

	char *formation = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char *node_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char *host = text_to_cstring(PG_GETARG_TEXT_PP(2));
	int32 port = PG_GETARG_INT32(3);
	int64 system_identifier = PG_GETARG_INT64(4);
	int32 priority = PG_GETARG_INT32(5);
	bool quorum = PG_GETARG_BOOL(6);

	ValidateNodeName(node_name);
	ValidateHost(host);
	ValidatePort(port);
	ValidatePriority(priority);

	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

	SPI_connect();
	int32 nss = LockFormation(formation, true);
	LockGroup(formation, 0);

	Oid find_types[2] = {TEXTOID, TEXTOID};
	Datum find_values[2] = {CStringGetTextDatum(formation), CStringGetTextDatum(node_name)};
	int64 node_id = 0;
	int32 group_id = 0;
	bool isnull;

	if (SpiRun("SELECT node_id, group_id FROM pg_autopilot.node WHERE formation_id = $1 AND node_name = $2", 2,
			   find_types, find_values, nullptr, false) == 1) {
		/* A known node: keep its id and goal, refresh what it may have changed. */
		node_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		group_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (group_id != 0)
			LockGroup(formation, group_id);
		CheckAddressFree(host, port, node_id);

		Oid types[6] = {INT8OID, TEXTOID, INT4OID, INT8OID, INT4OID, BOOLOID};
		Datum values[6] = {Int64GetDatum(node_id),           CStringGetTextDatum(host), Int32GetDatum(port),
						   Int64GetDatum(system_identifier), Int32GetDatum(priority),   BoolGetDatum(quorum)};
		/* Priority and quorum as in node_active: a pending monitor-side change wins until the node applies it. */
		SpiRun("UPDATE pg_autopilot.node SET host = $2, port = $3, system_identifier = $4, "
			   "candidate_priority = CASE WHEN settings_pending THEN candidate_priority ELSE $5 END, "
			   "replication_quorum = CASE WHEN settings_pending THEN replication_quorum ELSE $6 END, "
			   "settings_pending = settings_pending AND (candidate_priority <> $5 OR replication_quorum <> $6) "
			   "WHERE node_id = $1",
			   6, types, values, nullptr, false);
	} else {
		CheckAddressFree(host, port, 0);

		GatheredGroup group;
		GatherGroup(formation, group_id, nss, &group);

		/* The id is taken only once the input is known to be good (an id burnt by a later ERROR is harmless). */
		SpiRun("SELECT nextval(pg_get_serial_sequence('pg_autopilot.node', 'node_id'))", 0, nullptr, nullptr, nullptr,
			   false);
		node_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

		uint8 initial = 0;
		const char *rule = "";
		char description[1024];
		autopilot::pgx::CallCpp([&] {
			autopilot::fsm::GroupView view;
			BuildGroupView(group, view);
			auto a = autopilot::fsm::InitialState(view, node_id, node_name);
			initial = static_cast<uint8>(a.to);
			rule = a.rule;
			size_t n = a.description.size() < sizeof(description) - 1 ? a.description.size() : sizeof(description) - 1;
			memcpy(description, a.description.data(), n);
			description[n] = '\0';
		});

		Oid types[10] = {INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT4OID, INT8OID, INT4OID, BOOLOID, TEXTOID};
		Datum values[10] = {
			Int64GetDatum(node_id),
			CStringGetTextDatum(formation),
			Int32GetDatum(group_id),
			CStringGetTextDatum(node_name),
			CStringGetTextDatum(host),
			Int32GetDatum(port),
			Int64GetDatum(system_identifier),
			Int32GetDatum(priority),
			BoolGetDatum(quorum),
			CStringGetTextDatum(autopilot::fsm::StateName(static_cast<autopilot::fsm::NodeState>(initial)))};
		SpiRun("INSERT INTO pg_autopilot.node (node_id, formation_id, group_id, node_name, host, port, "
			   "system_identifier, candidate_priority, replication_quorum, assigned_state) "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::pg_autopilot.node_state)",
			   10, types, values, nullptr, false);
		RecordEvent(node_id, rule, description);
	}

	ProceedAndApply(formation, group_id, nss);

	Datum out[3] = {Int64GetDatum(node_id), Int32GetDatum(group_id), CStringGetTextDatum(AssignedStateText(node_id))};
	bool out_nulls[3] = {false, false, false};
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, out_nulls);
	SPI_finish();
	return (Datum) 0;
}

namespace autopilot::monitor {

namespace {

/*
 * RecordSettingsReport writes an event when a node's reported priority or
 * quorum differs from its row: a GUC change taken as the new truth, a
 * monitor-side change the node has now applied (settings_pending cleared),
 * or one it has not applied yet (once, when the values first differ).
 * The UPDATE of node_active decides the same way in SQL.
 */
void
RecordSettingsReport(int64 node_id, const NodeRow &row, int32 priority, bool quorum)
{
	bool same = row.candidate_priority == priority && row.replication_quorum == quorum;
	if (same && !row.settings_pending)
		return;
	if (!same && row.settings_pending)
		return; /* still waiting for the keeper to apply the wanted values: nothing new */

	StringInfoData msg;
	initStringInfo(&msg);
	if (row.settings_pending)
		appendStringInfo(&msg,
						 "%s (id " INT64_FORMAT ") applied the monitor's settings: candidate_priority %d, "
						 "replication_quorum %s",
						 row.name, node_id, priority, quorum ? "on" : "off");
	else
		appendStringInfo(&msg,
						 "%s (id " INT64_FORMAT ") reports candidate_priority %d (was %d), replication_quorum %s "
						 "(was %s) from its configuration",
						 row.name, node_id, priority, row.candidate_priority, quorum ? "on" : "off",
						 row.replication_quorum ? "on" : "off");
	RecordEvent(node_id, nullptr, msg.data);
}

/*
 * RemoveDroppedNode deletes the row of a node assigned dropped that has
 * reported dropped (its keeper idles from now on), after an event, and
 * re-runs the group rules: the primary's synchronous_standby_names and slots
 * no longer name it.
 */
void
RemoveDroppedNode(const char *formation, int64 node_id, const char *name, int32 group_id, int32 nss)
{
	StringInfoData msg;
	initStringInfo(&msg);
	appendStringInfo(&msg, "%s (id " INT64_FORMAT ") reported dropped: removed from formation \"%s\"", name, node_id,
					 formation);
	RecordEvent(node_id, "node_removed", msg.data);

	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(node_id)};
	SpiRun("DELETE FROM pg_autopilot.node WHERE node_id = $1", 1, types, values, nullptr, false);
	ProceedAndApply(formation, group_id, nss);
}

} // namespace

} // namespace autopilot::monitor

using namespace autopilot::monitor;

/*
 * autopilot_node_active implements pg_autopilot.node_active, the heartbeat
 * (see the SQL file and docs/protocol.md).  Raises 22004 (NULL argument but
 * last_error and applied_sync_names), 22023 (unknown state label, priority
 * or timeline out of range), 42704 (unknown formation, or node not in that
 * formation).  A stale call (report_seq not newer than the last recorded
 * one) changes nothing and returns the current goal.
 */
extern "C" Datum
autopilot_node_active(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {
		"formation", "node_id", "reported_state",         "pg_is_running",      "in_recovery",
		"timeline",  "lsn",     "wal_receiver_streaming", "candidate_priority", "replication_quorum"};
	RequireArgs(fcinfo, names, 10);

	char *formation = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64 node_id = PG_GETARG_INT64(1);
	char *reported = text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool pg_is_running = PG_GETARG_BOOL(3);
	bool in_recovery = PG_GETARG_BOOL(4);
	int32 timeline = PG_GETARG_INT32(5);
	XLogRecPtr lsn = PG_GETARG_LSN(6);
	bool streaming = PG_GETARG_BOOL(7);
	int32 priority = PG_GETARG_INT32(8);
	bool quorum = PG_GETARG_BOOL(9);
	bool last_error_null = PG_ARGISNULL(10);
	text *last_error = last_error_null ? nullptr : PG_GETARG_TEXT_PP(10);
	/* applied_sync_names: NULL from a keeper that does not send it (DEFAULT NULL). */
	bool applied_null = PG_NARGS() < 12 || PG_ARGISNULL(11);
	text *applied = applied_null ? nullptr : PG_GETARG_TEXT_PP(11);
	/* report_seq: the keeper's send time (µs); NULL from a keeper that does not send it: never stale. */
	bool seq_null = PG_NARGS() < 13 || PG_ARGISNULL(12);
	int64 report_seq = seq_null ? 0 : PG_GETARG_INT64(12);

	uint8 reported_value = ParseStateArg(reported);
	ValidatePriority(priority);
	if (timeline < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("timeline %d is out of range", timeline),
						errdetail("A timeline is 0 (unknown) or more.")));

	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

	SPI_connect();
	int32 nss = LockFormation(formation, false);
	NodeRow row;
	LookupNode(node_id, formation, &row);
	LockGroup(formation, row.group_id);
	/* Re-read under the group lock: a concurrent call may have changed the row. */
	LookupNode(node_id, formation, &row);

	/*
	 * A stale call (docs/protocol.md, report_seq): its keeper gave up on it
	 * and has reported since, so what it says is older than what the row
	 * holds.  It records nothing, runs no rule and leaves last_told_* alone
	 * (the keeper never reads this answer).  A report_seq more than an hour
	 * older than the stored one means the node's clock stepped back: kept.
	 */
	bool stale = false;
	GatheredGroup group; /* filled by ProceedAndApply when no rule fired, else gathered for the answer below */
	memset(&group, 0, sizeof(group));
	if (!seq_null) {
		Oid seq_types[2] = {INT8OID, INT8OID};
		Datum seq_values[2] = {Int64GetDatum(node_id), Int64GetDatum(report_seq)};
		bool isnull = true;
		if (SpiRun("SELECT last_report_seq IS NOT NULL AND $2 <= last_report_seq "
				   "AND $2 > last_report_seq - 3600000000 FROM pg_autopilot.node WHERE node_id = $1",
				   2, seq_types, seq_values, nullptr, false) == 1)
			stale = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
	}
	if (stale)
		ereport(DEBUG1, (errmsg_internal("pg_autopilot: stale node_active call of node " INT64_FORMAT
										 " (report_seq " INT64_FORMAT ") ignored: a newer report was recorded",
										 node_id, report_seq)));

	if (!stale) {
		/*
		 * Priority and quorum: the node's GUCs are the truth, unless a
		 * monitor-side change is pending; then the row keeps the wanted values
		 * until the node reports them, which clears the flag (SET expressions
		 * read the old row).
		 */
		Oid types[12] = {INT8OID, TEXTOID, BOOLOID, BOOLOID, INT4OID, PG_LSNOID,
						 BOOLOID, INT4OID, BOOLOID, TEXTOID, TEXTOID, INT8OID};
		Datum values[12] = {Int64GetDatum(node_id),      CStringGetTextDatum(reported), BoolGetDatum(pg_is_running),
							BoolGetDatum(in_recovery),   Int32GetDatum(timeline),       LSNGetDatum(lsn),
							BoolGetDatum(streaming),     Int32GetDatum(priority),       BoolGetDatum(quorum),
							PointerGetDatum(last_error), PointerGetDatum(applied),      Int64GetDatum(report_seq)};
		char nulls[12] = {' ',
						  ' ',
						  ' ',
						  ' ',
						  ' ',
						  ' ',
						  ' ',
						  ' ',
						  ' ',
						  last_error_null ? 'n' : ' ',
						  applied_null ? 'n' : ' ',
						  seq_null ? 'n' : ' '};
		SpiRun("UPDATE pg_autopilot.node SET reported_state = $2::pg_autopilot.node_state, pg_is_running = $3, "
			   "in_recovery = $4, reported_timeline = $5, reported_lsn = $6, wal_receiver_streaming = $7, "
			   "candidate_priority = CASE WHEN settings_pending THEN candidate_priority ELSE $8 END, "
			   "replication_quorum = CASE WHEN settings_pending THEN replication_quorum ELSE $9 END, "
			   "settings_pending = settings_pending AND (candidate_priority <> $8 OR replication_quorum <> $9), "
			   "last_error = $10, applied_sync_names = $11, "
			   /*
				* sync_since_lsn: the reported LSN of the first report in which the
				* applied names took their current value (NULL while ''): commits
				* acknowledged before it are not covered by the pigeonhole over
				* those names (docs/elections.md, RPO proof).
				*/
			   "sync_since_lsn = CASE WHEN coalesce($11, '') = coalesce(applied_sync_names, '') THEN sync_since_lsn "
			   "WHEN coalesce($11, '') = '' THEN NULL ELSE $6 END, "
			   "last_report_seq = COALESCE($12, last_report_seq), "
			   "report_time = now(), "
			   /* A report that ends an unhealthy period (the old row's verdict) starts a healthy one. */
			   "healthy_since = CASE WHEN healthy_since IS NULL OR "
			   "NOT pg_autopilot._node_healthy(report_time, health, health_check_time) "
			   "THEN now() ELSE healthy_since END "
			   "WHERE node_id = $1",
			   12, types, values, nulls, false);
		RecordSettingsReport(node_id, row, priority, quorum);
		if (strcmp(row.reported_state, reported) != 0) {
			StringInfoData msg;
			initStringInfo(&msg);
			appendStringInfo(&msg, "%s (id " INT64_FORMAT ") reports state %s", row.name, node_id, reported);
			RecordEvent(node_id, nullptr, msg.data);
		}

		ProceedAndApply(formation, row.group_id, nss, &group);
	}

	/* The answer: the node's goal, the group's primary, and what the node needs if it is the primary. */
	if (group.count == 0)
		GatherGroup(formation, row.group_id, nss, &group);
	int self = -1;
	int primary = -1;
	autopilot::pgx::CallCpp([&] {
		for (int i = 0; i < group.count; i++) {
			if (group.nodes[i].node_id == node_id)
				self = i;
			if (autopilot::fsm::IsWritableState(static_cast<autopilot::fsm::NodeState>(group.nodes[i].assigned)))
				primary = i;
		}
	});
	if (self < 0)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("node " INT64_FORMAT " vanished", node_id)));
	const GatheredNode &me = group.nodes[self];

	char *sync_names = primary == self ? SyncStandbyNames(group) : pstrdup("");
	StringInfoData slots;
	initStringInfo(&slots);
	for (int i = 0; i < group.count; i++) {
		if (i == self)
			continue;
		char name[64] = "";
		int64 id = group.nodes[i].node_id;
		autopilot::pgx::CallCpp([&] {
			std::string s = autopilot::fsm::StandbyName(id);
			snprintf(name, sizeof(name), "%s", s.c_str());
		});
		appendStringInfo(&slots, "%s%s", slots.len > 0 ? "," : "", name);
	}

	/* fast_forward: the election participant to stream from (docs/elections.md). */
	int upstream = -1;
	uint64 upstream_lsn = 0;
	if (me.assigned == static_cast<uint8>(autopilot::fsm::NodeState::FastForward)) {
		int64 upstream_id = 0;
		bool found = false;
		autopilot::pgx::CallCpp([&] {
			autopilot::fsm::GroupView view;
			BuildGroupView(group, view);
			int64_t id = 0;
			uint64_t at = 0;
			found = autopilot::fsm::FastForwardUpstream(view, node_id, &id, &at);
			upstream_id = id;
			upstream_lsn = at;
		});
		for (int i = 0; found && i < group.count; i++)
			if (group.nodes[i].node_id == upstream_id)
				upstream = i;
	}

	Datum out[14];
	bool out_nulls[14];
	memset(out_nulls, 0, sizeof(out_nulls));
	out[0] = CStringGetTextDatum(autopilot::fsm::StateName(static_cast<autopilot::fsm::NodeState>(me.assigned)));
	if (primary >= 0) {
		const GatheredNode &p = group.nodes[primary];
		out[1] = Int64GetDatum(p.node_id);
		out[2] = CStringGetTextDatum(p.host);
		out[3] = Int32GetDatum(p.port);
		out[4] = Int64GetDatum(p.system_identifier);
		out_nulls[4] = p.system_identifier_null;
		/* primary_timeline: its last reported timeline (a standby that has not followed it fences, diverged.cpp). */
		out[13] = Int32GetDatum((int32) p.timeline);
		out_nulls[13] = p.timeline == 0;
	} else {
		out[1] = out[2] = out[3] = out[4] = out[13] = (Datum) 0;
		out_nulls[1] = out_nulls[2] = out_nulls[3] = out_nulls[4] = out_nulls[13] = true;
	}
	out[5] = CStringGetTextDatum(sync_names);
	out[6] = CStringGetTextDatum(slots.data);
	if (upstream >= 0) {
		const GatheredNode &u = group.nodes[upstream];
		out[7] = Int64GetDatum(u.node_id);
		out[8] = CStringGetTextDatum(u.host);
		out[9] = Int32GetDatum(u.port);
		out[10] = LSNGetDatum(upstream_lsn);
	} else {
		out[7] = out[8] = out[9] = out[10] = (Datum) 0;
		out_nulls[7] = out_nulls[8] = out_nulls[9] = out_nulls[10] = true;
	}
	/* A monitor-side change the keeper has to write into its postgresql.auto.conf. */
	if (me.settings_pending) {
		out[11] = Int32GetDatum(me.candidate_priority);
		out[12] = BoolGetDatum(me.replication_quorum);
	} else {
		out[11] = out[12] = (Datum) 0;
		out_nulls[11] = out_nulls[12] = true;
	}

	if (stale) {
		/* Nothing recorded: the answer goes to a keeper that no longer waits for it. */
	} else if (me.assigned == static_cast<uint8>(autopilot::fsm::NodeState::Dropped) &&
			   reported_value == static_cast<uint8>(autopilot::fsm::NodeState::Dropped)) {
		/* Its keeper has stopped taking part: the node leaves the formation. */
		RemoveDroppedNode(formation, node_id, row.name, row.group_id, nss);
	} else {
		/*
		 * Remember what this keeper was told: the proofs of promote_candidate
		 * and election_winner hold only for what the old primary's last call
		 * returned (had it been told wait_primary, it may have cleared
		 * synchronous_standby_names; had it been told other names, it may run
		 * with those).
		 */
		/*
		 * The told names are evidence of what the keeper may run: only an
		 * answer whose goal is a writable state makes the keeper apply names,
		 * so last_told_sync_names keeps the value of the last such answer and
		 * a confirmed-down old primary keeps the names it acknowledged with
		 * (docs/elections.md, "Evidence kept").
		 */
		bool writable_goal = autopilot::fsm::IsWritableState(static_cast<autopilot::fsm::NodeState>(me.assigned));
		/* Most heartbeats tell what the last one told: no second row version then. */
		bool same = me.last_told == me.assigned && (!writable_goal || strcmp(me.told_sync_names, sync_names) == 0);
		Oid told_types[4] = {INT8OID, TEXTOID, TEXTOID, BOOLOID};
		Datum told_values[4] = {Int64GetDatum(node_id), out[0], out[5], BoolGetDatum(writable_goal)};
		if (!same)
			SpiRun("UPDATE pg_autopilot.node SET last_told_state = $2::pg_autopilot.node_state, "
				   "last_told_sync_names = CASE WHEN $4 THEN $3 ELSE last_told_sync_names END WHERE node_id = $1",
				   4, told_types, told_values, nullptr, false);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, out_nulls);
	SPI_finish();
	return (Datum) 0;
}

/*
 * autopilot_node_stopping implements pg_autopilot.node_stopping(formation,
 * node_id): the keeper announces a clean shutdown of its postmaster (smart
 * or fast: pg_ctl stop or restart).  Stores stopping_time = now() and writes
 * one event; for restart_grace after it, unless the node reports again,
 * the rules see the node as restarting and do not fail it over (a planned
 * restart keeps its role).  Nothing else changes and no rule runs: the
 * keeper calls this while its server shuts down and must not wait.  Raises
 * 22004, 42704.
 */
extern "C" Datum
autopilot_node_stopping(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"formation", "node_id"};
	RequireArgs(fcinfo, names, 2);
	char *formation = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64 node_id = PG_GETARG_INT64(1);

	SPI_connect();
	(void) LockFormation(formation, false);
	NodeRow row;
	LookupNode(node_id, formation, &row);
	LockGroup(formation, row.group_id);

	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(node_id)};
	SpiRun("UPDATE pg_autopilot.node SET stopping_time = now() WHERE node_id = $1", 1, types, values, nullptr, false);

	StringInfoData msg;
	initStringInfo(&msg);
	appendStringInfo(
		&msg, "%s (id " INT64_FORMAT ") announced a clean shutdown: no failover for %d ms unless it reports again",
		row.name, node_id, restart_grace_ms);
	RecordEvent(node_id, nullptr, msg.data);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * autopilot_record_health implements pg_autopilot.record_health: stores the
 * health-check result; when the value or the verdict changes, logs it once,
 * records an event and re-runs the group rules.  Raises 22004, 42704.
 */
extern "C" Datum
autopilot_record_health(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"node_id", "healthy"};
	RequireArgs(fcinfo, names, 2);
	int64 node_id = PG_GETARG_INT64(0);
	bool healthy = PG_GETARG_BOOL(1);
	int16 health = healthy ? 1 : 0;

	SPI_connect();
	NodeRow row;
	LookupNode(node_id, nullptr, &row);
	int32 nss = LockFormation(row.formation, false);
	LockGroup(row.formation, row.group_id);
	LookupNode(node_id, nullptr, &row);

	Oid types[2] = {INT8OID, INT2OID};
	Datum values[2] = {Int64GetDatum(node_id), Int16GetDatum(health)};
	bool isnull;
	/*
	 * healthy_since: a good check that turns the verdict healthy (a failed
	 * check had made it unhealthy while reports kept coming) starts a healthy
	 * period; SET expressions read the old row.
	 */
	SpiRun("UPDATE pg_autopilot.node SET health = $2, health_check_time = now(), "
		   "healthy_since = CASE WHEN $2 = 1 AND "
		   "NOT pg_autopilot._node_healthy(report_time, health, health_check_time) "
		   "AND pg_autopilot._node_healthy(report_time, $2, now()) THEN now() ELSE healthy_since END "
		   "WHERE node_id = $1 "
		   "RETURNING pg_autopilot._node_healthy(report_time, health, health_check_time)",
		   2, types, values, nullptr, false);
	bool verdict = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	if (row.health != health) {
		StringInfoData msg;
		initStringInfo(&msg);
		appendStringInfo(&msg, "%s (id " INT64_FORMAT ") is marked %s by the monitor", row.name, node_id,
						 healthy ? "healthy" : "unhealthy");
		RecordEvent(node_id, nullptr, msg.data);
	}
	if (row.health != health || row.healthy != verdict)
		ProceedAndApply(row.formation, row.group_id, nss);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * autopilot_proceed_groups implements pg_autopilot.proceed_groups(): re-runs
 * the group rules of every group that has nodes, each under its formation
 * lock (FOR SHARE) and group lock, and returns the number of assignments.
 * Rules depend on time (primary_demote_timeout, node_timeout), so the
 * health-check worker calls this every round: a timeout fires even when no
 * node reports.  Nothing is written unless a rule fires.  Each group runs in
 * its own subtransaction: an error in one group (logged as WARNING) does not
 * keep the others from proceeding.
 */
extern "C" Datum
autopilot_proceed_groups(PG_FUNCTION_ARGS)
{
	SPI_connect();
	uint64 rows = SpiRun("SELECT DISTINCT formation_id, group_id FROM pg_autopilot.node ORDER BY 1, 2", 0, nullptr,
						 nullptr, nullptr, true);
	/* Palloc'd in the SPI procedure context, which outlives the subtransactions below. */
	char **formations = static_cast<char **>(palloc0(sizeof(char *) * (rows + 1)));
	int32 *groups = static_cast<int32 *>(palloc0(sizeof(int32) * (rows + 1)));
	for (uint64 i = 0; i < rows; i++) {
		bool isnull;
		formations[i] = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		groups[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}

	volatile int32 total = 0;
	MemoryContext context = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	for (uint64 i = 0; i < rows; i++) {
		CHECK_FOR_INTERRUPTS();
		BeginInternalSubTransaction(nullptr);
		MemoryContextSwitchTo(context);
		PG_TRY();
		{
			int32 nss = LockFormation(formations[i], false);
			LockGroup(formations[i], groups[i]);
			total = total + ProceedAndApply(formations[i], groups[i], nss);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(context);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(context);
			ErrorData *edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(context);
			CurrentResourceOwner = owner;
			/* A cancel (statement_timeout, pg_cancel_backend) ends the whole call. */
			if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
				ReThrowError(edata);
			ereport(WARNING, (errmsg("pg_autopilot_monitor: cannot proceed group %d of formation \"%s\": %s", groups[i],
									 formations[i], edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}
	SPI_finish();
	PG_RETURN_INT32(total);
}
