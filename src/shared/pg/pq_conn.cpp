/*
 * src/shared/pg/pq_conn.cpp — libpq inside a backend process without ever
 * blocking (PostgreSQL zone; see pq_conn.hpp for the contract).
 *
 * Models: PostgreSQL's libpqwalreceiver.c (connect loop) and
 * libpq/libpq-be-fe-helpers.h (descriptor accounting, result draining), with
 * the changes of research/bgworker-feasibility.md §1.1: our own deadline
 * (PQconnectPoll ignores connect_timeout), non-blocking mode and a PQflush
 * loop, PQsocket re-read before every wait, SIGHUP handled inside the wait.
 *
 * Invariants:
 *  - every PGconn returned by PqConnect holds one AcquireExternalFD()
 *    reservation, released by PqFinish (and on every failure path here);
 *  - the only calls that can ereport are WaitLatchOrSocket (rare failures),
 *    CHECK_FOR_INTERRUPTS (SIGTERM -> FATAL) and ProcessConfigFile; the frames
 *    around them hold only POD locals, and PqConnect's PG_TRY releases the
 *    half-open connection before re-throwing;
 *  - libpq's notice output never reaches stderr: a notice receiver logs it.
 */
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}
#include "compat.hpp"

#include <cstring>

#include "pq_conn.hpp"

namespace autopilot::pgx {

/*
 * TCP settings added in front of the caller's keywords, so that a caller (or
 * the expanded dbname conninfo) that sets them wins.  Keepalives detect a
 * silently dead peer of an idle session; tcp_user_timeout bounds how long
 * unacknowledged data may sit in the send queue (pg_auto_failover uses 10 s
 * for its monitor connection, POSTGRES_MONITOR_TCP_USER_TIMEOUT).  GSS
 * encryption is off by default because the Kerberos handshake can block.
 */
static const char *const kDefaultKeywords[] = {"keepalives",       "keepalives_idle",  "keepalives_interval",
											   "keepalives_count", "tcp_user_timeout", "gssencmode"};
static const char *const kDefaultValues[] = {"1", "10", "5", "3", "10000", "disable"};
static constexpr int kDefaultCount = sizeof(kDefaultKeywords) / sizeof(kDefaultKeywords[0]);

static void
SetErr(char *errbuf, size_t errlen, const char *prefix, const char *msg)
{
	if (errbuf == nullptr || errlen == 0)
		return;
	snprintf(errbuf, errlen, "%s%s", prefix, msg ? msg : "");
	/* libpq messages end with a newline; keep one line. */
	size_t n = strlen(errbuf);
	while (n > 0 && (errbuf[n - 1] == '\n' || errbuf[n - 1] == '\r'))
		errbuf[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (errbuf[i] == '\n' || errbuf[i] == '\t')
			errbuf[i] = ' ';
}

/* NoticeToLog is libpq's notice receiver: the server's notices go to our log, never to stderr. */
static void
NoticeToLog(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorMessage(res);
	int level = DEBUG1;

	if (severity != nullptr && strcmp(severity, "WARNING") == 0)
		level = LOG;
	ereport(level, (errmsg_internal("pg_autopilot: remote server: %s", msg ? msg : "")));
}

/* RemainingMs is how many milliseconds are left until deadline (>= 0). */
static long
RemainingMs(TimestampTz deadline)
{
	return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
}

/*
 * WaitForSocket waits until the socket is ready for `io_flags`, the latch is
 * set or the deadline passes; it runs CHECK_FOR_INTERRUPTS and a pending
 * configuration reload at every wake-up.  Returns the WaitLatchOrSocket
 * result (0 when the deadline has passed).  May raise FATAL (SIGTERM) or, in
 * rare cases, ERROR from the wait machinery.
 */
static int
WaitForSocket(PGconn *conn, int io_flags, TimestampTz deadline, uint32_t wait_event)
{
	for (;;) {
		long remaining = RemainingMs(deadline);
		if (remaining <= 0)
			return 0;

		/* The socket can change between polls (several hosts, SSL/GSS fallback). */
		pgsocket sock = PQsocket(conn);
		int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
		if (sock != PGINVALID_SOCKET)
			events |= io_flags;
		int rc = WaitLatchOrSocket(MyLatch, events, sock, remaining, wait_event);

		if (rc & WL_LATCH_SET) {
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			/*
			 * A reload is cheap and must not wait for the end of a long
			 * connect.  Inside a transaction (a SQL function calling us) the
			 * backend reloads when it is idle again, as usual.
			 */
			if (ConfigReloadPending && !IsTransactionState()) {
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
		}
		if (rc & io_flags)
			return rc;
		/* Latch only or timeout: the loop head re-checks the deadline. */
	}
}

PGconn *
PqConnect(const char *const *keywords, const char *const *values, int timeout_ms, uint32_t wait_event, char *errbuf,
		  size_t errlen)
{
	int ncaller = 0;
	while (keywords[ncaller] != nullptr)
		ncaller++;

	if (!AcquireExternalFD()) {
		SetErr(errbuf, errlen, "", "too many open files on the local server (max_files_per_process)");
		return nullptr;
	}

	/* Defaults first: later keywords (the caller's) override them. */
	const char **kw = (const char **) palloc0(sizeof(char *) * (kDefaultCount + ncaller + 1));
	const char **val = (const char **) palloc0(sizeof(char *) * (kDefaultCount + ncaller + 1));
	for (int i = 0; i < kDefaultCount; i++) {
		kw[i] = kDefaultKeywords[i];
		val[i] = kDefaultValues[i];
	}
	for (int i = 0; i < ncaller; i++) {
		kw[kDefaultCount + i] = keywords[i];
		val[kDefaultCount + i] = values[i];
	}

	/* expand_dbname = 1: a dbname holding a conninfo string or URI is expanded in place. */
	PGconn *conn = PQconnectStartParams(kw, val, 1);
	pfree(kw);
	pfree(val);
	if (conn == nullptr) {
		ReleaseExternalFD();
		SetErr(errbuf, errlen, "", "out of memory allocating a libpq connection");
		return nullptr;
	}
	PQsetNoticeReceiver(conn, NoticeToLog, nullptr);
	if (PQstatus(conn) == CONNECTION_BAD) {
		SetErr(errbuf, errlen, "", PQerrorMessage(conn));
		ReleaseExternalFD();
		PQfinish(conn);
		return nullptr;
	}

	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	bool ok = false;
	bool timed_out = false;

	PG_TRY();
	{
		/* Per PQconnectPoll's contract, first wait until the socket is writeable. */
		PostgresPollingStatusType status = PGRES_POLLING_WRITING;
		while (status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED) {
			int io_flag = status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
			int rc = WaitForSocket(conn, io_flag, deadline, wait_event);
			if (rc == 0) {
				timed_out = true;
				break;
			}
			status = PQconnectPoll(conn);
		}
		ok = status == PGRES_POLLING_OK;
	}
	PG_CATCH();
	{
		/* FATAL does not come here (proc_exit); ERROR does: do not leak the descriptor. */
		ReleaseExternalFD();
		PQfinish(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!ok) {
		if (timed_out) {
			char msg[64];
			snprintf(msg, sizeof(msg), "connection timed out after %d ms", timeout_ms);
			SetErr(errbuf, errlen, "", msg);
		} else
			SetErr(errbuf, errlen, "", PQerrorMessage(conn));
		ReleaseExternalFD();
		PQfinish(conn);
		return nullptr;
	}
	if (PQsetnonblocking(conn, 1) != 0) {
		SetErr(errbuf, errlen, "could not set non-blocking mode: ", PQerrorMessage(conn));
		ReleaseExternalFD();
		PQfinish(conn);
		return nullptr;
	}
	return conn;
}

PGresult *
PqExec(PGconn *conn, const char *sql, int nparams, const char *const *params, int timeout_ms, uint32_t wait_event,
	   char *errbuf, size_t errlen)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
		SetErr(errbuf, errlen, "", "connection is not open");
		return nullptr;
	}
	if (!PQsendQueryParams(conn, sql, nparams, nullptr, params, nullptr, nullptr, 0)) {
		SetErr(errbuf, errlen, "", PQerrorMessage(conn));
		return nullptr;
	}

	/* Push the query out; while the send buffer is full, also read so the server can make progress. */
	for (;;) {
		int r = PQflush(conn);
		if (r == 0)
			break;
		if (r < 0) {
			SetErr(errbuf, errlen, "", PQerrorMessage(conn));
			return nullptr;
		}
		int rc = WaitForSocket(conn, WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE, deadline, wait_event);
		if (rc == 0) {
			SetErr(errbuf, errlen, "", "timed out sending a query to the server");
			return nullptr;
		}
		if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn)) {
			SetErr(errbuf, errlen, "", PQerrorMessage(conn));
			return nullptr;
		}
	}

	/* Drain every result; keep the last one, or the first error. */
	PGresult *last = nullptr;
	bool failed = false;
	for (;;) {
		while (PQisBusy(conn)) {
			int rc = WaitForSocket(conn, WL_SOCKET_READABLE, deadline, wait_event);
			if (rc == 0) {
				if (last != nullptr)
					PQclear(last);
				SetErr(errbuf, errlen, "", "timed out waiting for the server's answer");
				return nullptr;
			}
			if (!PQconsumeInput(conn)) {
				if (last != nullptr)
					PQclear(last);
				SetErr(errbuf, errlen, "", PQerrorMessage(conn));
				return nullptr;
			}
		}
		PGresult *res = PQgetResult(conn);
		if (res == nullptr)
			break;
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			if (last != nullptr)
				PQclear(last);
			last = res;
			continue;
		}
		if (!failed) {
			/* One line: the server's primary message, then its detail and hint if any. */
			const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
			const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
			char msg[1024];
			if (primary == nullptr)
				primary = PQresultErrorMessage(res);
			snprintf(msg, sizeof(msg), "%s%s%s%s%s", (primary && *primary) ? primary : PQresStatus(st),
					 detail ? " " : "", detail ? detail : "", hint ? " " : "", hint ? hint : "");
			SetErr(errbuf, errlen, "", msg);
			failed = true;
		}
		PQclear(res);
		if (PQstatus(conn) == CONNECTION_BAD)
			break;
	}
	if (failed) {
		if (last != nullptr)
			PQclear(last);
		return nullptr;
	}
	if (last == nullptr)
		SetErr(errbuf, errlen, "", PQstatus(conn) == CONNECTION_BAD ? PQerrorMessage(conn) : "no result");
	return last;
}

void
PqFinish(PGconn *conn)
{
	if (conn == nullptr)
		return;
	ReleaseExternalFD();
	PQfinish(conn);
}

} // namespace autopilot::pgx
