/*
 * src/shared/pg/pq_conn.hpp — libpq inside a backend process without ever
 * blocking (PostgreSQL zone; used by the keeper and the monitor's
 * health-check worker).
 *
 * Both calls drive libpq non-blockingly (PQconnectStartParams/PQconnectPoll,
 * PQsetnonblocking, PQsendQueryParams + PQflush, PQconsumeInput/PQisBusy/
 * PQgetResult) and wait only in WaitLatchOrSocket on the process latch, the
 * connection's socket (re-read before every wait), postmaster death and our
 * own deadline (libpq's connect_timeout is not honoured by PQconnectPoll).
 * Every wake-up runs CHECK_FOR_INTERRUPTS(), so SIGTERM ends the process
 * within milliseconds even in the middle of a connect, and processes a
 * pending SIGHUP (ProcessConfigFile).  Descriptors are accounted with
 * AcquireExternalFD/ReleaseExternalFD.
 *
 * Failures (refused, timed out, broken connection, SQL error) are not
 * ereport'ed: they return nullptr with a one-line message in errbuf, because
 * for a keeper an unreachable peer is an everyday event, not an error.
 */
#pragma once

extern "C" {
#include "libpq-fe.h"
}

namespace autopilot::pgx {

/*
 * PqConnect opens a connection from parallel keyword/value arrays (NULL
 * terminated, as PQconnectStartParams takes them), within timeout_ms.
 * Returns a connection in CONNECTION_OK and non-blocking mode, or nullptr
 * with errbuf set.  wait_event is reported in pg_stat_activity while waiting.
 */
PGconn *PqConnect(const char *const *keywords, const char *const *values, int timeout_ms, uint32_t wait_event,
				  char *errbuf, size_t errlen);

/*
 * PqExec sends one statement with text parameters and waits for its last
 * result within timeout_ms.  Returns the result (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK) — the caller PQclear()s it — or nullptr with errbuf set
 * (SQL error: the server's message; timeout or broken connection: the caller
 * should PqFinish the connection).
 */
PGresult *PqExec(PGconn *conn, const char *sql, int nparams, const char *const *params, int timeout_ms,
				 uint32_t wait_event, char *errbuf, size_t errlen);

/* PqFinish closes a connection opened by PqConnect (nullptr is fine). */
void PqFinish(PGconn *conn);

} // namespace autopilot::pgx
