/*
 * src/bgworker/local_state.cpp — what the keeper reports about its own
 * server, read straight from shared memory (PostgreSQL zone).
 *
 * No database connection and no transaction: this works on a primary, on a
 * standby before consistency and during crash recovery
 * (research/bgworker-feasibility.md §2).  Locks: GetFlushRecPtr,
 * GetXLogReplayRecPtr and GetWalRcvFlushRecPtr take their own spinlocks;
 * WalRcv and each WalSnd slot are copied under their spinlock, as
 * pg_stat_get_wal_receiver / pg_stat_get_wal_senders do.  Only memcpy-like
 * work happens while a spinlock is held.
 */
extern "C" {
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "replication/walreceiver.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/spin.h"
}
#include "pg/compat.hpp"

#include <cstring>

#include "keeper.hpp"

namespace autopilot::node {

/* ReadWalSenders counts streaming walsenders and those with a synchronous priority. */
static void
ReadWalSenders(LocalState *st)
{
	if (WalSndCtl == nullptr)
		return;
	for (int i = 0; i < max_wal_senders; i++) {
		WalSnd *walsnd = &WalSndCtl->walsnds[i];
		pid_t pid;
		WalSndState state;
		int priority;
		TimestampTz reply;

		SpinLockAcquire(&walsnd->mutex);
		pid = walsnd->pid;
		state = walsnd->state;
		priority = walsnd->sync_standby_priority;
		reply = walsnd->replyTime;
		SpinLockRelease(&walsnd->mutex);

		if (pid == 0 || state != WALSNDSTATE_STREAMING)
			continue;
		st->streaming_walsenders++;
		if (reply > st->last_standby_reply)
			st->last_standby_reply = reply;
		/* Priority 0 means "not listed in synchronous_standby_names": async. */
		if (priority > 0)
			st->sync_candidates++;
	}
}

/*
 * ReadWalReceiver copies the walreceiver's status.
 *
 * wal_receiver_streaming is what the keeper reports as `streaming`, and the
 * monitor's sync proof (docs/failover.md) trusts streaming=false: "this
 * standby can no longer acknowledge a commit".  A false "false" would be
 * unsafe, a false "true" only delays a failover, so any doubt counts as
 * true.  WALRCV_STREAMING alone is too weak the other way round: the
 * walreceiver sets it (PG15 WalReceiverMain) before walrcv_connect, so a
 * walreceiver stuck connecting to a frozen or unreachable primary looked
 * like a streaming one.  WalReceiverMain clears ready_to_display when it
 * starts and sets it (with sender_host/sender_port) right after the
 * connection is established, before IDENTIFY_SYSTEM and START_REPLICATION;
 * WalRcvDie clears it together with pid.  A standby can only acknowledge WAL
 * (flush feedback) after START_REPLICATION, i.e. after ready_to_display.
 * Hence: streaming = a walreceiver process exists and has an established
 * connection, in any state but STOPPED/STARTING — STOPPING (asked to stop,
 * may still send feedback until it exits), WAITING and RESTARTING (end of a
 * timeline: the connection stays open and may resume) count as streaming.
 * flushedUpto or lastMsgReceiptTime were not used: an idle primary sends
 * nothing new for a while, so "no progress" does not prove "not connected".
 */
static void
ReadWalReceiver(LocalState *st)
{
	if (WalRcv == nullptr)
		return;
	WalRcvState state;
	pid_t pid;
	bool connected;

	SpinLockAcquire(&WalRcv->mutex);
	pid = WalRcv->pid;
	state = WalRcv->walRcvState;
	connected = WalRcv->ready_to_display;
	strlcpy(st->sender_host, WalRcv->sender_host, sizeof(st->sender_host));
	st->sender_port = WalRcv->sender_port;
	SpinLockRelease(&WalRcv->mutex);

	st->wal_receiver_streaming = pid != 0 && connected && state != WALRCV_STOPPED && state != WALRCV_STARTING;
	st->wal_receiver_running = pid != 0 && state != WALRCV_STOPPED && state != WALRCV_WAITING;
	if (!st->wal_receiver_streaming) {
		st->sender_host[0] = '\0';
		st->sender_port = 0;
	}
}

void
ReadLocalState(LocalState *st)
{
	memset(st, 0, sizeof(*st));
	st->system_identifier = GetSystemIdentifier();
	st->in_recovery = RecoveryInProgress();

	if (!st->in_recovery) {
		/* GetFlushRecPtr asserts that recovery is over: only called on this branch. */
		TimeLineID tli = 0;
		st->lsn = GetFlushRecPtr(&tli);
		st->timeline = tli;
		ReadWalSenders(st);
	} else {
		TimeLineID replay_tli = 0;
		TimeLineID receive_tli = 0;
		XLogRecPtr chunk_start = InvalidXLogRecPtr;
		XLogRecPtr replay = GetXLogReplayRecPtr(&replay_tli);
		XLogRecPtr received = GetWalRcvFlushRecPtr(&chunk_start, &receive_tli);

		if (received > replay) {
			st->lsn = received;
			st->timeline = receive_tli != 0 ? receive_tli : replay_tli;
		} else {
			st->lsn = replay;
			st->timeline = replay_tli;
		}
		ReadWalReceiver(st);
	}
}

} // namespace autopilot::node
