/*
 * src/monitor_ext/operator_api.cpp — the operator's SQL functions
 * perform_switchover, perform_failover, perform_promotion,
 * enable_maintenance, disable_maintenance (PostgreSQL zone).
 *
 * Each one validates its arguments, connects to SPI, locks the formation row
 * FOR SHARE and then the group (the same locks as node_active, see the SQL
 * file, LOCKING), gathers the group and asks the pure request function of
 * src/shared/group_rules.cpp (docs/failover.md) what to do.  A refusal is an
 * autopilot::Error that becomes the ERROR (SQLSTATE 55000 or 42704 and a
 * hint) before anything is written, so a refused request changes nothing.
 * Otherwise the assignments are applied exactly like the rules' (UPDATE
 * node, event with the rule's name, NOTIFY state), the maintenance wish is
 * stored, and the group rules run once.  Locals are POD or palloc'd.
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
}
#include "pg/compat.hpp"

#include <cstring>

#include "pg/guard.hpp"
#include "states.hpp"

#include "monitor.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(autopilot_perform_switchover);
PG_FUNCTION_INFO_V1(autopilot_perform_failover);
PG_FUNCTION_INFO_V1(autopilot_perform_promotion);
PG_FUNCTION_INFO_V1(autopilot_enable_maintenance);
PG_FUNCTION_INFO_V1(autopilot_disable_maintenance);
}

namespace autopilot::monitor {

namespace {

/* ArgText returns argument i as a C string; 22004 naming it when NULL. */
char *
ArgText(FunctionCallInfo fcinfo, int i, const char *name)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

/*
 * LockGatheredGroup takes the formation lock (FOR SHARE) and the group lock
 * and gathers the group.  Raises 42704 for an unknown formation or a group
 * without nodes.
 */
void
LockGatheredGroup(const char *formation, int32 group_id, GatheredGroup *group)
{
	int32 nss = LockFormation(formation, false);
	LockGroup(formation, group_id);
	GatherGroup(formation, group_id, nss, group);
	if (group->count == 0)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
						errmsg("group %d of formation \"%s\" has no node", group_id, formation)));
}

/* SetWantsMaintenance stores the operator's maintenance wish of a node. */
void
SetWantsMaintenance(int64 node_id, bool wants)
{
	Oid types[2] = {INT8OID, BOOLOID};
	Datum values[2] = {Int64GetDatum(node_id), BoolGetDatum(wants)};

	SpiRun("UPDATE pg_autopilot.node SET wants_maintenance = $2 WHERE node_id = $1", 2, types, values, nullptr, false);
}

/*
 * MarkDataLossAllowed stores allow_data_loss on the old primary of a group
 * that perform_failover(allow_data_loss => true) has just moved (the node
 * assigned draining or demote_timeout); cleared by the glue once it leaves
 * those states (ClearEndedOperations).
 */
void
MarkDataLossAllowed(const char *formation, int32 group_id)
{
	Oid types[2] = {TEXTOID, INT4OID};
	Datum values[2] = {CStringGetTextDatum(formation), Int32GetDatum(group_id)};

	SpiRun("UPDATE pg_autopilot.node SET allow_data_loss = true WHERE formation_id = $1 AND group_id = $2 "
		   "AND assigned_state IN ('draining', 'demote_timeout')",
		   2, types, values, nullptr, false);
}

/*
 * GroupRequest implements perform_switchover(formation, group_id) and
 * perform_failover(formation, group_id, allow_data_loss).
 */
void
GroupRequest(FunctionCallInfo fcinfo, Request request)
{
	char *formation = ArgText(fcinfo, 0, "formation");
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("group_id must not be NULL")));
	int32 group_id = PG_GETARG_INT32(1);
	bool allow_data_loss = false;
	if (request == Request::Failover && PG_NARGS() > 2) {
		if (PG_ARGISNULL(2))
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("allow_data_loss must not be NULL")));
		allow_data_loss = PG_GETARG_BOOL(2);
	}

	SPI_connect();
	GatheredGroup group;
	LockGatheredGroup(formation, group_id, &group);
	int moved = ApplyRequest(group, request, nullptr, allow_data_loss);
	if (allow_data_loss && moved > 0)
		MarkDataLossAllowed(formation, group_id);
	ProceedAndApply(formation, group_id, group.number_sync_standbys);
	SPI_finish();
}

/* MaintenanceRequest implements enable_maintenance and disable_maintenance(node_name, formation). */
void
MaintenanceRequest(FunctionCallInfo fcinfo, bool enable)
{
	char *node_name = ArgText(fcinfo, 0, "node_name");
	char *formation = ArgText(fcinfo, 1, "formation");

	SPI_connect();
	GatheredGroup group;
	int self = LockNodeGroup(formation, node_name, false, &group);
	ApplyRequest(group, enable ? Request::EnableMaintenance : Request::DisableMaintenance, node_name);
	SetWantsMaintenance(group.nodes[self].node_id, enable);
	ProceedAndApply(formation, group.group_id, group.number_sync_standbys);
	SPI_finish();
}

} // namespace

} // namespace autopilot::monitor

using namespace autopilot::monitor;

/*
 * autopilot_perform_switchover implements pg_autopilot.perform_switchover
 * (formation, group_id).  Raises 22004, 42704 (unknown formation, empty
 * group), 55000 (refused: see docs/failover.md).
 */
extern "C" Datum
autopilot_perform_switchover(PG_FUNCTION_ARGS)
{
	GroupRequest(fcinfo, Request::Switchover);
	PG_RETURN_VOID();
}

/*
 * autopilot_perform_failover implements pg_autopilot.perform_failover
 * (formation, group_id, allow_data_loss); raises as above.
 */
extern "C" Datum
autopilot_perform_failover(PG_FUNCTION_ARGS)
{
	GroupRequest(fcinfo, Request::Failover);
	PG_RETURN_VOID();
}

/*
 * autopilot_perform_promotion implements pg_autopilot.perform_promotion
 * (node_name, formation): false with a NOTICE when the node already is the
 * primary (assigned a writable state), true when a promotion started.
 * Raises 22004, 42704 (unknown formation or node), 55000 (refused).
 */
extern "C" Datum
autopilot_perform_promotion(PG_FUNCTION_ARGS)
{
	char *node_name = ArgText(fcinfo, 0, "node_name");
	char *formation = ArgText(fcinfo, 1, "formation");

	SPI_connect();
	GatheredGroup group;
	int self = LockNodeGroup(formation, node_name, false, &group);
	bool writable = false;
	autopilot::pgx::CallCpp([&] {
		writable = autopilot::fsm::IsWritableState(static_cast<autopilot::fsm::NodeState>(group.nodes[self].assigned));
	});
	if (writable) {
		ereport(NOTICE, (errmsg("node \"%s\" is already the primary of group %d of formation \"%s\"", node_name,
								group.group_id, formation)));
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	int moved = ApplyRequest(group, Request::Promotion, node_name);
	if (moved > 0) {
		/* Exactly this node takes over, even when another has a higher priority (docs/elections.md). */
		Oid types[1] = {INT8OID};
		Datum values[1] = {Int64GetDatum(group.nodes[self].node_id)};
		SpiRun("UPDATE pg_autopilot.node SET promotion_target = true WHERE node_id = $1", 1, types, values, nullptr,
			   false);
	}
	ProceedAndApply(formation, group.group_id, group.number_sync_standbys);
	SPI_finish();
	PG_RETURN_BOOL(moved > 0);
}

/*
 * autopilot_enable_maintenance implements pg_autopilot.enable_maintenance
 * (node_name, formation): stores wants_maintenance and starts what the pure
 * EnableMaintenance decides (a standby goes to maintenance at once, a
 * primary is switched over first).  Raises 22004, 42704, 55000.
 */
extern "C" Datum
autopilot_enable_maintenance(PG_FUNCTION_ARGS)
{
	MaintenanceRequest(fcinfo, true);
	PG_RETURN_VOID();
}

/*
 * autopilot_disable_maintenance implements pg_autopilot.disable_maintenance
 * (node_name, formation): clears wants_maintenance, maintenance → catchingup.
 * Raises 22004, 42704, 55000.
 */
extern "C" Datum
autopilot_disable_maintenance(PG_FUNCTION_ARGS)
{
	MaintenanceRequest(fcinfo, false);
	PG_RETURN_VOID();
}
