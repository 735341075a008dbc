/*
 * src/bgworker/slots.cpp — the primary's physical replication slots, one per
 * other node of the group, named pg_autopilot_node_<id> (PostgreSQL zone).
 *
 * Does what pg_create_physical_replication_slot(name, true) and
 * pg_drop_replication_slot(name) do, without a transaction: the keeper is
 * connection-less.  Each slot is handled in its own PG_TRY so that one
 * failure (a slot still in use, no free slot left) neither stops the others
 * nor the keeper; the failure is logged once per distinct message.  Only
 * slots whose name starts with pg_autopilot_node_ are ever dropped: slots of
 * the operator are not ours.
 *
 * Locks: ReplicationSlotControlLock (shared) only while copying slot names.
 */
extern "C" {
#include "postgres.h"

#include "replication/slot.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"
}
#include "pg/compat.hpp"

#include <cstring>

#include "keeper.hpp"

namespace autopilot::node {

static char last_slot_error[512];

/* LogSlotError logs the error being handled once per distinct message and cleans up after it. */
static void
LogSlotError(MemoryContext ctx, const char *what, const char *name)
{
	MemoryContextSwitchTo(ctx);
	ErrorData *edata = CopyErrorData();
	FlushErrorState();
	LWLockReleaseAll();
	if (MyReplicationSlot != nullptr)
		ReplicationSlotRelease();

	char msg[sizeof(last_slot_error)];
	snprintf(msg, sizeof(msg), "could not %s replication slot \"%s\": %s", what, name,
			 edata->message ? edata->message : "");
	if (strcmp(msg, last_slot_error) != 0) {
		ereport(LOG, (errmsg("pg_autopilot: %s", msg)));
		strlcpy(last_slot_error, msg, sizeof(last_slot_error));
	}
	FreeErrorData(edata);
}

/* CreateSlot makes one persistent physical slot that reserves WAL now. */
static void
CreateSlot(const char *name)
{
	MemoryContext ctx = CurrentMemoryContext;

	PG_TRY();
	{
		CheckSlotRequirements();
		AUTOPILOT_SLOT_CREATE_PHYSICAL(name);
		ReplicationSlotReserveWal();
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
		ReplicationSlotRelease();
		ereport(LOG, (errmsg("pg_autopilot: created replication slot \"%s\"", name)));
	}
	PG_CATCH();
	{
		LogSlotError(ctx, "create", name);
	}
	PG_END_TRY();
}

static void
DropSlot(const char *name)
{
	MemoryContext ctx = CurrentMemoryContext;

	PG_TRY();
	{
		/* nowait: a slot still used by a walsender fails now and is retried next tick. */
		ReplicationSlotDrop(name, true);
		ereport(LOG, (errmsg("pg_autopilot: dropped replication slot \"%s\" of a node no longer in the group", name)));
	}
	PG_CATCH();
	{
		LogSlotError(ctx, "drop", name);
	}
	PG_END_TRY();
}

/* InList tells whether `name` is one of the comma-separated names of `list` (spaces ignored). */
static bool
InList(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p = list;

	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		const char *start = p;
		while (*p != '\0' && *p != ',' && *p != ' ')
			p++;
		if ((size_t) (p - start) == len && strncmp(start, name, len) == 0)
			return true;
	}
	return false;
}

void
EnsureSlots(const char *wanted)
{
	size_t prefix_len = strlen(kStandbyPrefix);

	if (wanted == nullptr || max_replication_slots <= 0)
		return;

	/* Create the missing ones. */
	const char *p = wanted;
	while (*p != '\0') {
		char name[NAMEDATALEN];
		while (*p == ' ' || *p == ',')
			p++;
		const char *start = p;
		while (*p != '\0' && *p != ',' && *p != ' ')
			p++;
		size_t len = p - start;
		if (len == 0 || len >= sizeof(name))
			continue;
		memcpy(name, start, len);
		name[len] = '\0';
		/* Only names of our scheme: the monitor never asks for anything else. */
		if (strncmp(name, kStandbyPrefix, prefix_len) != 0)
			continue;
		if (SearchNamedReplicationSlot(name, true) == nullptr)
			CreateSlot(name);
	}

	/* Drop ours that are no longer wanted; copy the names first, drop without the lock. */
	int n = 0;
	NameData *names = (NameData *) palloc(sizeof(NameData) * max_replication_slots);
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots; i++) {
		ReplicationSlot *s = &ReplicationSlotCtl->replication_slots[i];
		if (!s->in_use || strncmp(NameStr(s->data.name), kStandbyPrefix, prefix_len) != 0)
			continue;
		if (s->data.database != InvalidOid)
			continue; /* logical: not one of ours */
		memcpy(&names[n++], &s->data.name, sizeof(NameData));
	}
	LWLockRelease(ReplicationSlotControlLock);

	for (int i = 0; i < n; i++)
		if (!InList(wanted, NameStr(names[i])))
			DropSlot(NameStr(names[i]));
	pfree(names);
}

} // namespace autopilot::node
