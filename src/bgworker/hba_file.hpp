/*
 * src/bgworker/hba_file.hpp — pg_hba.conf lines for the group's other nodes
 * (PostgreSQL zone, keeper process; see hba_file.cpp).
 */
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
#include "libpq-fe.h"
}

namespace autopilot::node {

extern char *guc_hba_method;

/* DefineHbaGucs defines pg_autopilot.hba_method; called from _PG_init. */
void DefineHbaGucs(void);

/*
 * EnsureHba (primary only) makes pg_hba.conf admit the group's other nodes
 * when pg_autopilot.hba_method is set; cheap no-op when standby_slots (the
 * monitor's list of the other nodes) has not changed since the last success.
 * Returns false with errbuf set on failure; never raises ERROR.
 */
bool EnsureHba(PGconn *monitor, int64_t node_id, int32_t group_id, const char *standby_slots, uint32_t wait_event,
			   char *errbuf, size_t errlen);

} // namespace autopilot::node
