/*
 * src/bgworker/status.cpp — SQL function pg_autopilot.status() of the
 * data-node extension (PostgreSQL zone).
 *
 * Reads the keeper's status struct from shared memory under its spinlock:
 * it answers on a primary, on a hot standby and while the keeper is idle.
 * Without shared_preload_libraries there is no keeper and no struct; the
 * row then says so in last_error.  Before the keeper has published
 * anything, last_error shows this backend's own check of the settings, so a
 * missing setting is visible from the first moment.  A pg_autopilot.*
 * value in the configuration files that PostgreSQL refused (out of range,
 * wrong type: it keeps the previous or default value and only logs it) is
 * appended from pg_file_settings, when the caller may read it
 * (pg_read_all_settings).
 */
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
}
#include "pg/compat.hpp"

#include <cstring>

#include "keeper.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(pg_autopilot_status);
}

/*
 * RefusedSettings: "pg_autopilot.x = 'v' (file:line): error" for every
 * pg_autopilot.* line of the configuration files PostgreSQL could not
 * apply, joined with "; "; "" when there is none or the caller may not read
 * pg_file_settings.  palloc'd.
 */
static const char *
RefusedSettings(void)
{
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS))
		return "";
	StringInfoData buf;
	initStringInfo(&buf);
	if (SPI_connect() != SPI_OK_CONNECT)
		return "";
	int rc = SPI_execute("SELECT format('%s = %L (%s:%s): %s', name, setting, sourcefile, sourceline, error) "
						 "FROM pg_catalog.pg_file_settings "
						 "WHERE name LIKE 'pg\\_autopilot.%' AND error IS NOT NULL ORDER BY seqno",
						 true, 0);
	if (rc == SPI_OK_SELECT)
		for (uint64 i = 0; i < SPI_processed; i++) {
			char *line = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			if (line == nullptr)
				continue;
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? "; " : "", line);
		}
	/* buf lives in the caller's context (SPI_connect switched to its own only for the query results). */
	SPI_finish();
	return buf.data;
}

extern "C" Datum
pg_autopilot_status(PG_FUNCTION_ARGS)
{
	using namespace autopilot::node;

	TupleDesc tupdesc;
	if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("function returning record called in context that cannot accept type record")));
	tupdesc = BlessTupleDesc(tupdesc);

	KeeperShared st;
	ReadKeeperShared(&st);

	char cfg[kErrorLen] = "";
	const char *last_error = st.last_error;
	if (!preloaded || keeper_shared == nullptr)
		last_error = "pg_autopilot is not in shared_preload_libraries: the keeper is not running";
	else if (st.keeper_pid == 0 && !ValidateSettings(cfg, sizeof(cfg)))
		last_error = cfg;

	const char *refused = preloaded ? RefusedSettings() : "";
	if (refused[0] != '\0')
		last_error = psprintf("%s%sinvalid settings ignored (the previous or default value is in effect): %s",
							  last_error, last_error[0] ? "; " : "", refused);

	Datum values[9];
	bool nulls[9];
	memset(nulls, 0, sizeof(nulls));

	const char *node_name = st.node_name[0] ? st.node_name : (preloaded ? guc_node_name : "");
	const char *formation = st.formation[0] ? st.formation : (preloaded ? guc_formation : "");

	values[0] = CStringGetTextDatum(node_name ? node_name : "");
	nulls[0] = node_name == nullptr || node_name[0] == '\0';
	values[1] = Int64GetDatum(st.node_id);
	nulls[1] = st.node_id == 0;
	values[2] = CStringGetTextDatum(formation ? formation : "");
	nulls[2] = formation == nullptr || formation[0] == '\0';
	values[3] = Int32GetDatum(st.group_id);
	nulls[3] = st.group_id < 0;
	values[4] = CStringGetTextDatum(st.current_state);
	nulls[4] = st.current_state[0] == '\0';
	values[5] = CStringGetTextDatum(st.assigned_state);
	nulls[5] = st.assigned_state[0] == '\0';
	values[6] = BoolGetDatum(st.monitor_reachable);
	values[7] = CStringGetTextDatum(last_error);
	nulls[7] = last_error[0] == '\0';
	values[8] = Int32GetDatum((int32) st.keeper_pid);
	nulls[8] = st.keeper_pid == 0;

	HeapTuple tuple = heap_form_tuple(tupdesc, values, nulls);
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
