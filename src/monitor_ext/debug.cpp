/*
 * src/monitor_ext/debug.cpp — pg_autopilot._debug_raise, the proof of the
 * C++/PostgreSQL error boundary (PostgreSQL zone).
 *
 * 'cpp' throws std::runtime_error inside CallCpp (becomes XX000),
 * 'autopilot' throws autopilot::Error with SQLSTATE 22023 inside CallCpp,
 * 'pg' raises ereport(ERROR) directly from this zone.  The pg_regress test
 * monitor_boundary calls each and then shows the same backend still answers.
 * EXECUTE is revoked from PUBLIC.
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
}
#include "pg/compat.hpp"

#include <cstring>
#include <stdexcept>

#include "error.hpp"
#include "pg/guard.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(autopilot_debug_raise);
}

/* autopilot_debug_raise always raises: 22004 (NULL), the requested error, or 22023 (unknown kind). */
extern "C" Datum
autopilot_debug_raise(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("kind must not be NULL")));
	char *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (strcmp(kind, "cpp") == 0)
		autopilot::pgx::CallCpp([] { throw std::runtime_error("deliberate std::runtime_error from the pure zone"); });
	else if (strcmp(kind, "autopilot") == 0)
		autopilot::pgx::CallCpp([] {
			throw autopilot::Error(autopilot::sqlstate::kInvalidParameterValue,
								   "deliberate autopilot::Error from the pure zone",
								   "It was thrown by pg_autopilot._debug_raise('autopilot').",
								   "Nothing to fix: this proves the error boundary.");
		});
	else if (strcmp(kind, "pg") == 0)
		ereport(ERROR, (errcode(ERRCODE_RAISE_EXCEPTION), errmsg("deliberate error from the PostgreSQL zone"),
						errdetail("It was raised by pg_autopilot._debug_raise('pg').")));
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("unknown kind \"%s\"", kind),
					errhint("Use 'cpp', 'autopilot' or 'pg'.")));
	PG_RETURN_VOID();
}
