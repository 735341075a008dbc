/*
 * src/bgworker/diverged.cpp — a standby whose WAL went beyond the point
 * where the primary's timeline forked off its own is detected, fenced and
 * handed to the rewind (PostgreSQL zone, keeper process; diverged.hpp,
 * DESIGN.md §6.3, §6.5).
 *
 * How it happens: a standby left out of an election (unhealthy, cloning,
 * in maintenance) keeps streaming from the old primary, which may still
 * write for a moment after the winner stopped streaming.  The winner forks
 * timeline N+1 at its own end of WAL; the standby has more on timeline N.
 * recovery_target_timeline = 'latest' cannot help: the startup process
 * refuses the new timeline ("forked off current database system timeline
 * before current recovery point") and the walreceiver waits at the end of
 * timeline N forever.  Only pg_rewind (or a re-clone) repairs it.
 *
 * Detection, no log parsing: the walreceiver has not been in state
 * streaming for kSuspectHeartbeats heartbeats; then, at most every
 * kRecheckMs, a physical replication connection to the goal's primary runs
 * IDENTIFY_SYSTEM (system identifier, the primary's timeline) and
 * TIMELINE_HISTORY <that timeline>; the history's line for our timeline
 * gives the switch point where the primary's history left it.  Received or
 * replayed WAL beyond it (or a timeline the history does not list) means
 * diverged.  A standby only suspected never acts: an unreachable primary,
 * a refused command or a position at or before the switch point change
 * nothing.
 *
 * Invariants: never blocks — libpq non-blocking, waits only in
 * WaitLatchOrSocket with CHECK_FOR_INTERRUPTS at every wake-up, one deadline
 * (kProbeTimeoutMs) for connect and both commands; the connection is a
 * file-static handle (closed before the next probe if an ERROR interrupted
 * one), so no frame owns it; every local is POD; the history is parsed in
 * place from libpq's buffer.  Physical walsenders speak only the simple
 * query protocol, hence PQsendQuery here rather than pq_conn's PqExec
 * (extended protocol); PqConnect is used for the connect.
 */
extern "C" {
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "replication/walreceiver.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
}
#include "pg/compat.hpp"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "diverged.hpp"
#include "keeper.hpp"
#include "pg/pq_conn.hpp"

namespace autopilot::node {

/*
 * A walreceiver that is not streaming for this many heartbeats is suspect.
 * A timeline switch or a reconnect after a switchover takes one retry of
 * the walreceiver (wal_retrieve_retry_interval, 5 s by default) at worst;
 * a suspect standby costs only one replication connection, so the delay
 * favours early fencing over saving that connection.
 */
constexpr int kSuspectHeartbeats = 2;
/* While a standby stays suspect and not diverged, the primary is asked again at most this often. */
constexpr int kRecheckMs = 5000;
/*
 * Deadline of one probe (connect, IDENTIFY_SYSTEM, TIMELINE_HISTORY): plenty
 * for a LAN round trip and authentication, short next to the monitor's
 * node timeout, so an unreachable primary delays the next heartbeat little.
 * Capped by monitor_timeout.
 */
constexpr int kProbeTimeoutMs = 2000;

static const char *const kFenceReason =
	"this standby has diverged from the primary's timeline; it is rewound onto the primary";

/* Process-lifetime state (POD). */
static bool diverged_known = false; /* sticky: the rewind restart ends this process */
static TimestampTz suspect_since = 0;
static TimestampTz last_call_at = 0;
static TimestampTz next_probe_at = 0;
static int64_t probed_node = -1; /* the primary and timeline the last probe asked */
static uint32_t probed_timeline = 0;
static TimestampTz next_source_probe_at = 0; /* FetchSourceDiverged */
static PGconn *probe_conn = nullptr;

/* WalReceiverState reads, under the spinlock, whether a walreceiver is connected and in which state. */
static void
WalReceiverState(bool *connected, WalRcvState *state)
{
	*connected = false;
	*state = WALRCV_STOPPED;
	if (WalRcv == nullptr)
		return;
	SpinLockAcquire(&WalRcv->mutex);
	pid_t pid = WalRcv->pid;
	*state = WalRcv->walRcvState;
	*connected = pid != 0 && WalRcv->ready_to_display;
	SpinLockRelease(&WalRcv->mutex);
}

static bool
WalReceiverStreams(void)
{
	bool connected;
	WalRcvState state;
	WalReceiverState(&connected, &state);
	return connected && state == WALRCV_STREAMING;
}

/*
 * StreamsFrom: the walreceiver streams from host:port — the node the goal
 * names, as the monitor gave it, which is what primary_conninfo was built
 * from.  Streaming from another node (an old primary that came back while
 * primary_conninfo still names it) proves nothing (simulator seed 14200).
 */
static bool
StreamsFrom(const char *host, int port)
{
	if (WalRcv == nullptr || !WalReceiverStreams())
		return false;
	SpinLockAcquire(&WalRcv->mutex);
	bool same = WalRcv->sender_port == port && strncmp(WalRcv->sender_host, host, NI_MAXHOST) == 0;
	SpinLockRelease(&WalRcv->mutex);
	return same;
}

bool
DivergedBlocksFenceLift(void)
{
	if (diverged_known)
		return true;
	bool connected;
	WalRcvState state;
	WalReceiverState(&connected, &state);
	return connected && state != WALRCV_STREAMING;
}

/*
 * WaitSocket waits until the probe connection's socket is ready for `io`,
 * running CHECK_FOR_INTERRUPTS at every wake-up.  Returns false at the
 * deadline or when the socket is gone.
 */
static bool
WaitSocket(int io, TimestampTz deadline)
{
	for (;;) {
		long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
			return false;
		pgsocket sock = PQsocket(probe_conn);
		if (sock == PGINVALID_SOCKET)
			return false;
		int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | io, sock, remaining,
								   KeeperWaitEvent());
		if (rc & WL_LATCH_SET) {
			/* A reload request stays pending (ConfigReloadPending) for the keeper's main loop. */
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (rc & io)
			return true;
	}
}

/*
 * ReplCommand runs one replication command (simple query protocol) on
 * probe_conn and returns its tuples result (the caller PQclear()s it), or
 * nullptr with errbuf set.
 */
static PGresult *
ReplCommand(const char *cmd, TimestampTz deadline, char *errbuf, size_t errlen)
{
	if (!PQsendQuery(probe_conn, cmd)) {
		snprintf(errbuf, errlen, "%s: %s", cmd, PQerrorMessage(probe_conn));
		return nullptr;
	}
	for (;;) {
		int r = PQflush(probe_conn);
		if (r == 0)
			break;
		if (r < 0 || !WaitSocket(WL_SOCKET_WRITEABLE | WL_SOCKET_READABLE, deadline) || !PQconsumeInput(probe_conn)) {
			snprintf(errbuf, errlen, "%s: could not send: %s", cmd, PQerrorMessage(probe_conn));
			return nullptr;
		}
	}
	PGresult *tuples = nullptr;
	bool failed = false;
	for (;;) {
		while (PQisBusy(probe_conn)) {
			if (!WaitSocket(WL_SOCKET_READABLE, deadline)) {
				snprintf(errbuf, errlen, "%s: timed out waiting for the answer", cmd);
				failed = true;
				break;
			}
			if (!PQconsumeInput(probe_conn)) {
				snprintf(errbuf, errlen, "%s: %s", cmd, PQerrorMessage(probe_conn));
				failed = true;
				break;
			}
		}
		if (failed)
			break;
		PGresult *res = PQgetResult(probe_conn);
		if (res == nullptr)
			break;
		if (PQresultStatus(res) == PGRES_TUPLES_OK && tuples == nullptr && !failed) {
			tuples = res;
			continue;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK && !failed) {
			snprintf(errbuf, errlen, "%s: %s", cmd, PQresultErrorMessage(res));
			failed = true;
		}
		PQclear(res);
		if (PQstatus(probe_conn) == CONNECTION_BAD)
			break;
	}
	if (failed || tuples == nullptr) {
		if (tuples != nullptr)
			PQclear(tuples);
		if (!failed)
			snprintf(errbuf, errlen, "%s: no result", cmd);
		/* One line. */
		for (char *p = errbuf; *p != '\0'; p++)
			if (*p == '\n')
				*p = ' ';
		return nullptr;
	}
	return tuples;
}

/*
 * SwitchPoint finds in a timeline history file's text the line of timeline
 * `tli` ("<tli>\t<X/X>\t<reason>": where the history left it).  Lines that
 * are blank or comments are skipped, like readTimeLineHistory does.
 */
static bool
SwitchPoint(const char *text, int len, uint32 tli, XLogRecPtr *point)
{
	char line[256];
	int pos = 0;
	while (pos < len) {
		int end = pos;
		while (end < len && text[end] != '\n')
			end++;
		int n = end - pos < (int) sizeof(line) - 1 ? end - pos : (int) sizeof(line) - 1;
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos = end + 1;

		unsigned int line_tli, hi, lo;
		if (sscanf(line, "%u\t%X/%X", &line_tli, &hi, &lo) != 3)
			continue;
		if (line_tli == tli) {
			*point = ((XLogRecPtr) hi << 32) | lo;
			return true;
		}
	}
	return false;
}

/*
 * Position is one place of this standby's WAL: what it received, or what
 * it replayed.  Verdict compares it with the primary's history.
 */
struct Position {
	const char *what;
	XLogRecPtr lsn;
	TimeLineID tli;
};

/*
 * AskPrimary probes the goal's primary.  Returns false (errbuf set) when it
 * could not tell; otherwise *primary_tli and, when it is above ours, the
 * switch point of each position's timeline (found[i] false when the
 * history does not list it).
 */
static bool
AskPrimary(const Goal *goal, uint64_t sysid, const Position *pos, int npos, TimeLineID *primary_tli, bool *found,
		   XLogRecPtr *points, char *errbuf, size_t errlen)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", goal->primary_port);
	const char *user = guc_replication_user;
	const char *kw[] = {"host", "port", "application_name", "replication", "user", nullptr};
	const char *val[] = {goal->primary_host,
						 port,
						 "pg_autopilot divergence check",
						 "true",
						 (user != nullptr && user[0] != '\0') ? user : nullptr,
						 nullptr};
	if (val[4] == nullptr)
		kw[4] = nullptr;
	int timeout = guc_monitor_timeout_ms < kProbeTimeoutMs ? guc_monitor_timeout_ms : kProbeTimeoutMs;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout);

	if (probe_conn != nullptr) {
		/* An ERROR interrupted the previous probe. */
		autopilot::pgx::PqFinish(probe_conn);
		probe_conn = nullptr;
	}
	probe_conn = autopilot::pgx::PqConnect(kw, val, timeout, KeeperWaitEvent(), errbuf, errlen);
	if (probe_conn == nullptr)
		return false;

	bool ok = false;
	PGresult *res = ReplCommand("IDENTIFY_SYSTEM", deadline, errbuf, errlen);
	if (res != nullptr) {
		if (PQntuples(res) != 1 || PQnfields(res) < 2 || PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1))
			snprintf(errbuf, errlen, "IDENTIFY_SYSTEM: unexpected result");
		else if (strtoull(PQgetvalue(res, 0, 0), nullptr, 10) != sysid)
			snprintf(errbuf, errlen, "the primary is another database system (%s)", PQgetvalue(res, 0, 0));
		else {
			*primary_tli = (TimeLineID) strtoul(PQgetvalue(res, 0, 1), nullptr, 10);
			ok = *primary_tli != 0;
			if (!ok)
				snprintf(errbuf, errlen, "IDENTIFY_SYSTEM: invalid timeline \"%s\"", PQgetvalue(res, 0, 1));
		}
		PQclear(res);
	}
	bool need_history = false;
	for (int i = 0; i < npos; i++)
		need_history = need_history || pos[i].tli < *primary_tli;
	if (ok && need_history) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "TIMELINE_HISTORY %u", *primary_tli);
		res = ReplCommand(cmd, deadline, errbuf, errlen);
		ok = false;
		if (res != nullptr) {
			if (PQntuples(res) != 1 || PQnfields(res) < 2 || PQgetisnull(res, 0, 1))
				snprintf(errbuf, errlen, "%s: unexpected result", cmd);
			else {
				for (int i = 0; i < npos; i++)
					found[i] = pos[i].tli < *primary_tli &&
							   SwitchPoint(PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1), pos[i].tli, &points[i]);
				ok = true;
			}
			PQclear(res);
		}
	}
	autopilot::pgx::PqFinish(probe_conn);
	probe_conn = nullptr;
	return ok;
}

/*
 * FenceUnchecked: the history check could not run (primary down or
 * unreachable, refused command), but the monitor names a primary on a
 * later timeline than every position of this standby: a promotion
 * happened that this standby has not followed, and its WAL may go past
 * the fork (it kept streaming from the old primary, simulator seeds 892,
 * 159).  It must not serve those reads (DESIGN.md §6.3): the login fence
 * goes up, without marking it diverged, and comes down as usual once it
 * streams from the primary (LiftFenceIfProven).  A standby on the
 * primary's timeline (its primary crashed, nobody was promoted) keeps
 * serving.  Election participants (report_lsn) come here once the monitor
 * names the new primary: the winner fetched the WAL of the most advanced
 * participant before its promotion, but one that kept receiving from the
 * old primary afterwards went past the fork (simulator seed 673).  May
 * raise ERROR only from SetFence.
 */
static void
FenceUnchecked(const Goal *goal, const Position *pos, int npos, const char *err)
{
	if (IsFenced() || goal->primary_timeline == 0)
		return;
	for (int i = 0; i < npos; i++)
		if (pos[i].tli >= goal->primary_timeline)
			return;
	ereport(LOG, (errmsg("pg_autopilot keeper: this standby does not stream and cannot check its history against "
						 "the primary at %s:%d on timeline %u: %s",
						 goal->primary_host, goal->primary_port, goal->primary_timeline, err),
				  errdetail("Logins are refused until it streams from the primary.")));
	SetFence(true, "this standby does not stream and cannot check its history against the primary's later timeline");
}

/* ReadPositions: this standby's received and replayed positions that are known (0, 1 or 2 of them). */
static int
ReadPositions(Position pos[2])
{
	TimeLineID replay_tli = 0, recv_tli = 0;
	pos[0] = {"received", GetWalRcvFlushRecPtr(nullptr, &recv_tli), 0};
	pos[0].tli = recv_tli;
	pos[1] = {"replayed", GetXLogReplayRecPtr(&replay_tli), 0};
	pos[1].tli = replay_tli;
	int npos = 0;
	for (int i = 0; i < 2; i++)
		if (pos[i].lsn != InvalidXLogRecPtr && pos[i].tli != 0)
			pos[npos++] = pos[i];
	return npos;
}

/*
 * Diverges: given the answer of AskPrimary for the node at host:port, true
 * when a position of ours lies beyond the point where that node's history
 * left our timeline (or on a timeline its history does not list); the
 * decision is logged with both LSNs.  `what` names the role of that node.
 */
static bool
Diverges(const Position *pos, int npos, TimeLineID primary_tli, const bool *found, const XLogRecPtr *points,
		 const char *what, const char *host, int port)
{
	for (int i = 0; i < npos; i++) {
		const Position &p = pos[i];
		if (p.tli >= primary_tli)
			continue; /* its own timeline (or a later one: not a fork the history can show) */
		if (found[i] && p.lsn <= points[i])
			continue; /* a prefix of its history: this node can follow it */
		if (found[i])
			ereport(LOG, (errmsg("pg_autopilot keeper: this standby has diverged from the %s: it %s WAL up to %X/%X "
								 "on timeline %u, but the %s's timeline %u left timeline %u at %X/%X",
								 what, p.what, LSN_FORMAT_ARGS(p.lsn), p.tli, what, primary_tli, p.tli,
								 LSN_FORMAT_ARGS(points[i])),
						  errdetail("The standby cannot follow the %s; logins are refused and it is rewound onto "
									"the %s at %s:%d.",
									what, what, host, port)));
		else
			ereport(LOG, (errmsg("pg_autopilot keeper: this standby has diverged from the %s: it %s WAL up to "
								 "%X/%X on timeline %u, which is not in the history of the %s's timeline %u",
								 what, p.what, LSN_FORMAT_ARGS(p.lsn), p.tli, what, primary_tli),
						  errdetail("The standby cannot follow the %s; logins are refused and it is rewound onto "
									"the %s at %s:%d.",
									what, what, host, port)));
		return true;
	}
	return false;
}

bool
StandbyDiverged(const Goal *goal, uint64_t system_identifier)
{
	if (diverged_known)
		return true;

	TimestampTz now = GetCurrentTimestamp();
	/* Not called for a while (another state in between): the suspicion starts again. */
	bool fresh = last_call_at == 0 ||
				 TimestampDifferenceExceeds(last_call_at, now, (kSuspectHeartbeats + 1) * guc_heartbeat_interval_ms);
	last_call_at = now;
	Position pos[2];
	int npos = ReadPositions(pos);
	/*
	 * The monitor names a primary on a later timeline than every position
	 * of ours: a promotion happened that this standby has not followed yet.
	 * It is checked at once, without the suspicion delay (its WAL may go
	 * past the fork, and it serves reads meanwhile: simulator seeds 159, 478).
	 */
	bool behind = goal->primary_timeline != 0 && npos > 0;
	for (int i = 0; i < npos; i++)
		if (pos[i].tli >= goal->primary_timeline)
			behind = false;
	bool streams = StreamsFrom(goal->primary_host, goal->primary_port);
	/*
	 * Streaming from another node (the old primary came back) while the
	 * primary is on a later timeline: whatever a check finds now, the next
	 * record may go past the fork.  No reads until it streams from the
	 * primary (LiftFenceIfProven; simulator seed 14200).
	 */
	if (behind && !streams && WalReceiverStreams() && !IsFenced()) {
		ereport(LOG, (errmsg("pg_autopilot keeper: this standby streams from another node than the primary at "
							 "%s:%d, which is on a later timeline (%u)",
							 goal->primary_host, goal->primary_port, goal->primary_timeline),
					  errdetail("Logins are refused until it streams from the primary.")));
		SetFence(true, "this standby streams from another node than the primary, which is on a later timeline");
	}
	if (streams || (fresh && !behind)) {
		suspect_since = streams ? 0 : now;
		return false;
	}
	if (suspect_since == 0)
		suspect_since = now;
	/* Another primary, or a new timeline of it, is asked at once (seed 253). */
	bool new_target = goal->primary_node_id != probed_node || goal->primary_timeline != probed_timeline;
	if ((!behind && !TimestampDifferenceExceeds(suspect_since, now, kSuspectHeartbeats * guc_heartbeat_interval_ms)) ||
		(now < next_probe_at && !new_target))
		return false;
	next_probe_at = TimestampTzPlusMilliseconds(now, kRecheckMs);
	probed_node = goal->primary_node_id;
	probed_timeline = goal->primary_timeline;
	if (npos == 0)
		return false;

	TimeLineID primary_tli = 0;
	bool found[2] = {false, false};
	XLogRecPtr points[2] = {InvalidXLogRecPtr, InvalidXLogRecPtr};
	char err[1024] = "";
	if (!AskPrimary(goal, system_identifier, pos, npos, &primary_tli, found, points, err, sizeof(err))) {
		ereport(DEBUG1, (errmsg_internal("pg_autopilot keeper: could not check whether this standby diverged from "
										 "the primary at %s:%d: %s",
										 goal->primary_host, goal->primary_port, err)));
		FenceUnchecked(goal, pos, npos, err);
		return false;
	}
	if (Diverges(pos, npos, primary_tli, found, points, "primary", goal->primary_host, goal->primary_port)) {
		diverged_known = true;
		SetFence(true, kFenceReason);
		return true;
	}
	ereport(DEBUG1, (errmsg_internal("pg_autopilot keeper: this standby is not streaming but has not diverged from "
									 "the primary (primary timeline %u)",
									 primary_tli)));
	return false;
}

bool
FetchSourceDiverged(const Goal *goal, uint64_t system_identifier)
{
	if (!goal->has_upstream || StreamsFrom(goal->upstream_host, goal->upstream_port))
		return false;
	TimestampTz now = GetCurrentTimestamp();
	if (now < next_source_probe_at)
		return false;
	next_source_probe_at = TimestampTzPlusMilliseconds(now, kRecheckMs);
	Position pos[2];
	int npos = ReadPositions(pos);
	if (npos == 0)
		return false;

	/* AskPrimary asks goal->primary_*: a copy naming the source instead. */
	Goal source;
	UpstreamAsPrimary(goal, &source);
	TimeLineID source_tli = 0;
	bool found[2] = {false, false};
	XLogRecPtr points[2] = {InvalidXLogRecPtr, InvalidXLogRecPtr};
	char err[1024] = "";
	if (!AskPrimary(&source, system_identifier, pos, npos, &source_tli, found, points, err, sizeof(err))) {
		ereport(DEBUG1, (errmsg_internal("pg_autopilot keeper: fast_forward: could not check this node's history "
										 "against the source at %s:%d: %s",
										 goal->upstream_host, goal->upstream_port, err)));
		return false;
	}
	return Diverges(pos, npos, source_tli, found, points, "node it must fetch WAL from", goal->upstream_host,
					goal->upstream_port);
}

} // namespace autopilot::node
