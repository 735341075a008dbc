/*
 * src/bgworker/proxy.cpp — the node-side operator functions of the data-node
 * extension: pg_autopilot.perform_switchover(), show_state(),
 * enable_maintenance() and disable_maintenance() for this node, forwarded to
 * the monitor (PostgreSQL zone; issue 3, docs/failover.md).
 *
 * They run in an ordinary backend: each call opens a short-lived,
 * non-blocking libpq connection with the pg_autopilot.monitor conninfo
 * (PqConnect: deadline, CHECK_FOR_INTERRUPTS, so a cancel works), sends one
 * statement and waits for its result on the latch and the socket.  An error
 * raised by the monitor is re-raised here with the monitor's SQLSTATE,
 * message, detail and hint; an unreachable monitor is 08006.  The
 * connection is closed before any ERROR is raised (no descriptor leaks): the
 * answer is copied into palloc'd memory or an ErrorBuffer first.
 *
 * Privileges: the functions act with the keeper's monitor role, so the SQL
 * script revokes them from PUBLIC (superusers only unless granted).
 */
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "libpq-fe.h"
}
#include "pg/compat.hpp"

#include <cstring>

#include "keeper.hpp"
#include "pg/guard.hpp"
#include "pg/pq_conn.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(pg_autopilot_perform_switchover);
PG_FUNCTION_INFO_V1(pg_autopilot_show_state);
PG_FUNCTION_INFO_V1(pg_autopilot_enable_maintenance);
PG_FUNCTION_INFO_V1(pg_autopilot_disable_maintenance);
}

namespace autopilot::node {

namespace {

/* A monitor call may run the group rules under locks: allow it more than one keeper round trip. */
constexpr int kCallTimeoutMs = 60000;

/* What one monitor call produced: rows as palloc'd C strings, or an error. */
struct CallResult {
	bool ok;
	int nrows;
	int ncols;
	char **values; /* nrows * ncols, NULL for SQL NULL */
	autopilot::pgx::ErrorBuffer err;
};

/* IdentityForCall returns formation, node name and group of this node; raises when not configured. */
void
IdentityForCall(const char **formation, const char **node_name, int32 *group_id)
{
	if (!preloaded || guc_monitor == nullptr || guc_monitor[0] == '\0')
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("pg_autopilot.monitor is not set on this node"),
						errhint("Load pg_autopilot through shared_preload_libraries and set pg_autopilot.monitor.")));
	KeeperShared st;
	ReadKeeperShared(&st);
	*formation = guc_formation;
	*node_name = guc_node_name;
	*group_id = st.group_id >= 0 ? st.group_id : 0;
}

/*
 * Call runs `sql` on the monitor and fills *out (never raises for failures
 * of the monitor or the network; CHECK_FOR_INTERRUPTS may end it).  The
 * connection is closed before it returns.
 */
void
Call(const char *sql, int nparams, const char *const *params, CallResult *out)
{
	memset(out, 0, sizeof(*out));
	char errbuf[1024];
	const char *kw[] = {"dbname", "application_name", nullptr};
	const char *val[] = {guc_monitor, "pg_autopilot node proxy", nullptr};
	uint32 wait_event = PG_WAIT_EXTENSION;

	PGconn *conn = autopilot::pgx::PqConnect(kw, val, guc_monitor_timeout_ms, wait_event, errbuf, sizeof(errbuf));
	if (conn == nullptr) {
		out->err.Set("08006", "could not connect to the monitor", errbuf, "Check pg_autopilot.monitor.");
		return;
	}

	/*
	 * The kept result outlives the calls below that can raise (a cancel at
	 * CHECK_FOR_INTERRUPTS, palloc): it lives outside the PG_TRY frame and the
	 * catch block clears it.
	 */
	PGresult *volatile kept = nullptr;
	PG_TRY();
	{
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kCallTimeoutMs);
		bool sent = PQsendQueryParams(conn, sql, nparams, nullptr, params, nullptr, nullptr, 0) != 0;
		const char *failure = sent ? nullptr : PQerrorMessage(conn);
		while (failure == nullptr) {
			int flush = PQflush(conn);
			bool busy = flush == 0 && PQisBusy(conn);
			if (flush < 0) {
				failure = PQerrorMessage(conn);
				break;
			}
			if (flush == 0 && !busy) {
				PGresult *res = PQgetResult(conn);
				if (res == nullptr)
					break;
				ExecStatusType s = PQresultStatus(res);
				if ((s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) && kept == nullptr)
					kept = res;
				else if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK && !out->err.message[0]) {
					const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
					const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
					out->err.Set(code ? code : "XX000", msg ? msg : PQresultErrorMessage(res),
								 PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
								 PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
					PQclear(res);
				} else
					PQclear(res);
				continue;
			}
			long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (remaining <= 0) {
				failure = "timed out waiting for the monitor";
				break;
			}
			int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | WL_SOCKET_READABLE;
			if (flush > 0)
				events |= WL_SOCKET_WRITEABLE;
			int rc = WaitLatchOrSocket(MyLatch, events, PQsocket(conn), remaining, wait_event);
			if (rc & WL_LATCH_SET)
				ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
				failure = PQerrorMessage(conn);
		}
		if (failure != nullptr && !out->err.message[0])
			out->err.Set("08006", "lost the connection to the monitor", failure, nullptr);
		if (!out->err.message[0] && kept != nullptr) {
			out->ok = true;
			out->nrows = PQntuples(kept);
			out->ncols = PQnfields(kept);
			out->values = (char **) palloc0(sizeof(char *) * Max(1, out->nrows * out->ncols));
			for (int r = 0; r < out->nrows; r++)
				for (int c = 0; c < out->ncols; c++)
					if (!PQgetisnull(kept, r, c))
						out->values[r * out->ncols + c] = pstrdup(PQgetvalue(kept, r, c));
		}
		if (kept != nullptr) {
			PQclear(kept);
			kept = nullptr;
		}
	}
	PG_CATCH();
	{
		if (kept != nullptr)
			PQclear(kept);
		autopilot::pgx::PqFinish(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	autopilot::pgx::PqFinish(conn);
	if (!out->ok && !out->err.message[0])
		out->err.Set("XX000", "the monitor returned no result", nullptr, nullptr);
}

/* CallOrRaise runs Call and re-raises the monitor's error (with its SQLSTATE) in this backend. */
void
CallOrRaise(const char *sql, int nparams, const char *const *params, CallResult *out)
{
	Call(sql, nparams, params, out);
	if (out->ok)
		return;
	const char *c = out->err.sqlstate;
	ereport(ERROR, (errcode(MAKE_SQLSTATE(c[0], c[1], c[2], c[3], c[4])), errmsg("%s", out->err.message),
					out->err.detail[0] ? errdetail("%s", out->err.detail) : 0,
					out->err.hint[0] ? errhint("%s", out->err.hint) : 0,
					errcontext("pg_autopilot: forwarded to the monitor")));
}

} // namespace

} // namespace autopilot::node

extern "C" Datum
pg_autopilot_perform_switchover(PG_FUNCTION_ARGS)
{
	using namespace autopilot::node;
	const char *formation, *node_name;
	int32 group_id;
	IdentityForCall(&formation, &node_name, &group_id);
	char group[16];
	snprintf(group, sizeof(group), "%d", group_id);
	const char *params[] = {formation, group};
	CallResult r;
	CallOrRaise("SELECT pg_autopilot.perform_switchover($1::text, $2::int)", 2, params, &r);
	PG_RETURN_VOID();
}

static Datum
Maintenance(const char *function)
{
	using namespace autopilot::node;
	const char *formation, *node_name;
	int32 group_id;
	IdentityForCall(&formation, &node_name, &group_id);
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT pg_autopilot.%s($1::text, $2::text)", function);
	const char *params[] = {node_name, formation};
	CallResult r;
	CallOrRaise(sql, 2, params, &r);
	PG_RETURN_VOID();
}

extern "C" Datum
pg_autopilot_enable_maintenance(PG_FUNCTION_ARGS)
{
	return Maintenance("enable_maintenance");
}

extern "C" Datum
pg_autopilot_disable_maintenance(PG_FUNCTION_ARGS)
{
	return Maintenance("disable_maintenance");
}

/* pg_autopilot_show_state returns the monitor's show_state() of this node's formation (materialized). */
extern "C" Datum
pg_autopilot_show_state(PG_FUNCTION_ARGS)
{
	using namespace autopilot::node;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *formation, *node_name;
	int32 group_id;
	IdentityForCall(&formation, &node_name, &group_id);

	InitMaterializedSRF(fcinfo, 0);
	TupleDesc tupdesc = rsinfo->setDesc;
	AttInMetadata *attinmeta = TupleDescGetAttInMetadata(tupdesc);

	const char *params[] = {formation};
	CallResult r;
	CallOrRaise("SELECT node_name, node_id, group_id, host, port, lsn::text, reachable, current_state::text, "
				"assigned_state::text, candidate_priority, replication_quorum FROM pg_autopilot.show_state($1::text) "
				"ORDER BY group_id, node_id",
				1, params, &r);
	if (r.ncols != tupdesc->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the monitor's show_state() returned %d columns, expected %d", r.ncols, tupdesc->natts)));
	for (int row = 0; row < r.nrows; row++) {
		HeapTuple tuple = BuildTupleFromCStrings(attinmeta, &r.values[row * r.ncols]);
		tuplestore_puttuple(rsinfo->setResult, tuple);
	}
	return (Datum) 0;
}
