/*
 * src/bgworker/auto_conf.cpp — the keeper's own postgresql.auto.conf writer
 * with a confirmed reload (PostgreSQL zone; research/bgworker-feasibility.md
 * §3, approach 4).
 *
 * ALTER SYSTEM is not usable from a connection-less worker (SPI refuses it;
 * AlterSystemSetConfigFile needs catalog access), so this replicates it minus
 * the privilege checks: every value is validated by the GUC machinery
 * (set_config_option with changeVal = false runs the check hooks), the file
 * is rewritten under AutoFileLock (which serialises us with a concurrent
 * ALTER SYSTEM) through a .tmp file and durable_rename, and the postmaster is
 * sent SIGHUP, as pg_reload_conf() does.  The postmaster reloads before it
 * forwards SIGHUP to its children, so once this process has processed its own
 * SIGHUP and GetConfigOption shows the new values, the server runs with them.
 *
 * Only PGC_SIGHUP settings belong here (synchronous_standby_names,
 * primary_conninfo, primary_slot_name).  On PostgreSQL 17+, allow_alter_system
 * governs users' ALTER SYSTEM only; the keeper owns these replication
 * settings either way.
 */
extern "C" {
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "lib/stringinfo.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}
#include "pg/compat.hpp"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "datadir.hpp"
#include "keeper.hpp"
#include "pg/guard.hpp"

namespace autopilot::node {

/* InEffect tells whether every setting already shows its wanted value in this process. */
static bool
InEffect(int n, const char *const *names, const char *const *values)
{
	for (int i = 0; i < n; i++) {
		const char *cur = GetConfigOption(names[i], true, false);
		if (strcmp(cur ? cur : "", values[i] ? values[i] : "") != 0)
			return false;
	}
	return true;
}

/* ReadAutoConf returns the file's text (palloc'd, "" when it does not exist). May raise ERROR. */
static char *
ReadAutoConf(void)
{
	StringInfoData buf;
	initStringInfo(&buf);

	FILE *f = AllocateFile(PG_AUTOCONF_FILENAME, "r");
	if (f == nullptr) {
		if (errno == ENOENT)
			return buf.data;
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not open file \"%s\": %m", PG_AUTOCONF_FILENAME)));
	}
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		appendBinaryStringInfo(&buf, chunk, (int) got);
	if (ferror(f)) {
		FreeFile(f);
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not read file \"%s\": %m", PG_AUTOCONF_FILENAME)));
	}
	FreeFile(f);
	return buf.data;
}

/* WriteAutoConf replaces the file with `text` through a .tmp file and durable_rename. May raise ERROR. */
static void
WriteAutoConf(const char *text)
{
	const char *tmp = PG_AUTOCONF_FILENAME ".tmp";
	size_t len = strlen(text);

	int fd = OpenTransientFile(tmp, O_CREAT | O_RDWR | O_TRUNC);
	if (fd < 0)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not open file \"%s\": %m", tmp)));
	errno = 0;
	if (write(fd, text, len) != (ssize_t) len) {
		int save = errno ? errno : ENOSPC;
		CloseTransientFile(fd);
		unlink(tmp);
		errno = save;
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not write file \"%s\": %m", tmp)));
	}
	if (pg_fsync(fd) != 0) {
		int save = errno;
		CloseTransientFile(fd);
		unlink(tmp);
		errno = save;
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not fsync file \"%s\": %m", tmp)));
	}
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not close file \"%s\": %m", tmp)));
	durable_rename(tmp, PG_AUTOCONF_FILENAME, ERROR);
}

void
SetAutoConf(int n, const char *const *names, const char *const *values, int timeout_ms)
{
	/* Take in a reload that was already pending, so the confirmation below is about our write. */
	if (ConfigReloadPending) {
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	if (InEffect(n, names, values))
		return;

	/* Validate every value through its GUC's check hook; raises ERROR with the GUC's own message. */
	size_t extra = 1024;
	for (int i = 0; i < n; i++) {
		if (strchr(values[i], '\n') != nullptr || strchr(values[i], '\r') != nullptr)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("value of \"%s\" must not contain a newline", names[i])));
		(void) set_config_option(names[i], values[i], PGC_SIGHUP, PGC_S_FILE, GUC_ACTION_SET, false, ERROR, false);
		extra += 2 * (strlen(names[i]) + strlen(values[i])) + 16;
	}

	LWLockAcquire(AutoFileLock, LW_EXCLUSIVE);
	{
		char *old_text = ReadAutoConf();
		size_t cap = strlen(old_text) + extra;
		char *new_text = (char *) palloc(cap);
		bool too_long = false;

		autopilot::pgx::CallCpp([&] {
			std::vector<std::pair<std::string, std::string>> settings;
			for (int i = 0; i < n; i++)
				settings.emplace_back(names[i], values[i]);
			std::string out = autopilot::datadir::SetAutoConfSettings(old_text, settings);
			if (out.size() + 1 > cap) {
				too_long = true;
				return;
			}
			memcpy(new_text, out.c_str(), out.size() + 1);
		});
		if (too_long)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR), errmsg("new %s is unexpectedly long", PG_AUTOCONF_FILENAME)));
		if (strcmp(old_text, new_text) != 0)
			WriteAutoConf(new_text);
		pfree(old_text);
		pfree(new_text);
	}
	LWLockRelease(AutoFileLock);

	/*
	 * Signal even when the file was already right: the values are not in
	 * effect, so somebody wrote it without reloading.
	 */
	if (kill(PostmasterPid, SIGHUP) != 0)
		ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not send SIGHUP to the postmaster: %m")));
	/* timeout_ms <= 0: written and signalled, not confirmed (the self-fence, which cannot wait; fence.cpp). */
	if (timeout_ms <= 0)
		return;

	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	for (;;) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (InEffect(n, names, values))
				return;
		}
		long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0) {
			const char *cur = GetConfigOption(names[0], true, false);
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							errmsg("reload after changing \"%s\" was not confirmed within %d ms", names[0], timeout_ms),
							errdetail("The value in effect is \"%s\"; another configuration file may override "
									  "postgresql.auto.conf.",
									  cur ? cur : "")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, remaining, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

} // namespace autopilot::node
