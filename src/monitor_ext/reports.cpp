/*
 * src/monitor_ext/reports.cpp — read-only SQL functions written in C:
 * _node_healthy, synchronous_standby_names, group_rules, node_states
 * (PostgreSQL zone).
 *
 * No locks: these read committed rows only.  The rule table and the state
 * list are static data of the pure zone, fetched through CallCpp and then
 * read as plain C strings.
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}
#include "pg/compat.hpp"

#include "group_rules.hpp"
#include "pg/guard.hpp"
#include "states.hpp"

#include "monitor.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(autopilot_node_healthy);
PG_FUNCTION_INFO_V1(autopilot_synchronous_standby_names);
PG_FUNCTION_INFO_V1(autopilot_group_rules);
PG_FUNCTION_INFO_V1(autopilot_node_states);
}

using namespace autopilot::monitor;

/* autopilot_node_healthy implements pg_autopilot._node_healthy(report_time, health, health_check_time). */
extern "C" Datum
autopilot_node_healthy(PG_FUNCTION_ARGS)
{
	bool report_null = PG_ARGISNULL(0);
	TimestampTz report_time = report_null ? 0 : PG_GETARG_TIMESTAMPTZ(0);
	int16 health = PG_ARGISNULL(1) ? -1 : PG_GETARG_INT16(1);
	bool check_null = PG_ARGISNULL(2);
	TimestampTz check_time = check_null ? 0 : PG_GETARG_TIMESTAMPTZ(2);

	PG_RETURN_BOOL(NodeHealthy(report_null, report_time, health, check_null, check_time));
}

/*
 * autopilot_synchronous_standby_names implements
 * pg_autopilot.synchronous_standby_names(formation, group_id).  Raises 22004
 * (NULL argument), 42704 (unknown formation).  '' for an empty group.
 */
extern "C" Datum
autopilot_synchronous_standby_names(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("formation must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("group_id must not be NULL")));
	char *formation = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32 group_id = PG_GETARG_INT32(1);
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(formation)};
	bool isnull;
	if (SpiRun("SELECT number_sync_standbys FROM pg_autopilot.formation WHERE formation_id = $1", 1, types, values,
			   nullptr, true) != 1)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("formation \"%s\" does not exist", formation)));
	int32 nss = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	GatheredGroup group;
	GatherGroup(formation, group_id, nss, &group);
	char *names = SyncStandbyNames(group);

	MemoryContext spi = MemoryContextSwitchTo(caller);
	text *result = cstring_to_text(names);
	MemoryContextSwitchTo(spi);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/* autopilot_group_rules implements pg_autopilot.group_rules(): the rule table in evaluation order. */
extern "C" Datum
autopilot_group_rules(PG_FUNCTION_ARGS)
{
	const autopilot::fsm::RuleInfo *rules = nullptr;
	size_t count = 0;

	autopilot::pgx::CallCpp([&] {
		const auto &table = autopilot::fsm::GroupRules();
		rules = table.data();
		count = table.size();
	});

	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	for (size_t i = 0; i < count; i++) {
		Datum values[4] = {
			CStringGetTextDatum(rules[i].name), CStringGetTextDatum(autopilot::fsm::StateName(rules[i].from)),
			CStringGetTextDatum(autopilot::fsm::StateName(rules[i].to)), CStringGetTextDatum(rules[i].description)};
		bool nulls[4] = {false, false, false, false};
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* autopilot_node_states implements pg_autopilot.node_states(): the compiled-in state labels in order. */
extern "C" Datum
autopilot_node_states(PG_FUNCTION_ARGS)
{
	/* SETOF text is not a row type: use the descriptor the executor expects. */
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	for (const auto &s : autopilot::fsm::kStates) {
		Datum value = CStringGetTextDatum(s.label);
		bool null = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &null);
	}
	return (Datum) 0;
}
