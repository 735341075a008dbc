/*
 * src/monitor_ext/spi_run.cpp — SpiRun: one parameterised statement through
 * SPI, with its plan prepared once per backend (PostgreSQL zone).
 *
 * Why: every keeper calls node_active once per heartbeat, and each call
 * runs about eight statements; parsing and planning them on every call was
 * most of the monitor's CPU per heartbeat (bench/monitor_scale.sh).  The
 * plans are kept with SPI_keepplan in a per-backend cache keyed by the SQL
 * text and the argument types; the plan cache revalidates them after DDL
 * (DROP/CREATE EXTENSION, ALTER TABLE) as for any prepared statement.
 *
 * Invariants: callers hold an SPI connection; the cache is bounded
 * (kMaxPlans): beyond it, statements run unprepared, as before; cache
 * entries live in TopMemoryContext and are never freed (a backend has a
 * fixed set of statements); no C++ object lives across a call that can
 * raise.
 */
extern "C" {
#include "postgres.h"

#include "executor/spi.h"
#include "utils/memutils.h"
}
#include "pg/compat.hpp"

#include <cstring>

#include "monitor.hpp"

namespace autopilot::monitor {

namespace {

constexpr int kMaxPlans = 64;
constexpr int kMaxArgs = 16;

struct CachedPlan {
	const char *sql; /* TopMemoryContext copy */
	int nargs;
	Oid types[kMaxArgs];
	SPIPlanPtr plan;
};

CachedPlan plans[kMaxPlans];
int nplans = 0;

/* FindPlan returns the kept plan of (sql, types), preparing it on first use; nullptr when it cannot be cached. */
SPIPlanPtr
FindPlan(const char *sql, int nargs, const Oid *types)
{
	if (nargs > kMaxArgs)
		return nullptr;
	for (int i = 0; i < nplans; i++)
		if (plans[i].nargs == nargs && strcmp(plans[i].sql, sql) == 0 &&
			(nargs == 0 || memcmp(plans[i].types, types, sizeof(Oid) * nargs) == 0))
			return plans[i].plan;
	if (nplans >= kMaxPlans)
		return nullptr;
	SPIPlanPtr plan = SPI_prepare(sql, nargs, const_cast<Oid *>(types));
	if (plan == nullptr)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("pg_autopilot_monitor: SPI_prepare failed: %s", SPI_result_code_string(SPI_result)),
						errdetail("The statement was: %s", sql)));
	if (SPI_keepplan(plan) != 0)
		return nullptr;
	CachedPlan &c = plans[nplans];
	c.sql = MemoryContextStrdup(TopMemoryContext, sql);
	c.nargs = nargs;
	if (nargs > 0)
		memcpy(c.types, types, sizeof(Oid) * nargs);
	c.plan = plan;
	nplans++;
	return plan;
}

} // namespace

uint64
SpiRun(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, bool read_only)
{
	SPIPlanPtr plan = FindPlan(sql, nargs, types);
	int rc = plan != nullptr ? SPI_execute_plan(plan, values, nulls, read_only, 0)
							 : SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
	if (rc < 0)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("pg_autopilot_monitor: SPI failed: %s", SPI_result_code_string(rc)),
						errdetail("The statement was: %s", sql)));
	return SPI_processed;
}

} // namespace autopilot::monitor
