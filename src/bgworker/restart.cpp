/*
 * src/bgworker/restart.cpp — same-PID re-exec of the postmaster, the
 * pre-start hook that swaps a clone in or runs pg_rewind, and the keeper's
 * restart request (PostgreSQL zone; DESIGN.md §4,
 * research/bgworker-feasibility.md §5c, §6, §7, research/reexec-pg17-18.md).
 *
 * Invariants:
 *  - AutopilotPrestartInit does something only in the postmaster while
 *    shared_preload_libraries are loaded, i.e. before shared memory, sockets
 *    and the syslogger exist.  It never raises ERROR: a pending action that
 *    cannot start rolls back (WARNING, pending file removed, normal start);
 *    a failure after the clone was exchanged in ends the postmaster with
 *    FATAL so that the next start finishes the swap.  A pending rewind never
 *    falls through into a normal start: whether pg_rewind succeeded or not,
 *    the server re-execs as a standby (on failure without upstream, with
 *    <state dir>/needs_reclone so that the keeper re-clones it and the login
 *    fence stays up).
 *  - Every execv runs with all signals blocked: a signal that arrives in the
 *    window stays pending across execve and the new image handles it (on 16+
 *    the postmaster runs _PG_init and its exit path with signals unblocked and
 *    flag-setting handlers, whose flags an execv would lose).
 *  - The restart marker is one-shot: it is unlinked before the re-exec and at
 *    every start, so a later pg_ctl stop stops.
 *  - The exit callback only reads static POD state prepared at start-up; it
 *    never raises ERROR and logs nothing through elog once stderr has been
 *    handed back to the original file.
 *  - Pure helpers (datadir.hpp) are called only inside TryPure, which catches
 *    every exception and copies it into a POD ErrorBuffer; ereport happens
 *    outside the catch scope.
 */
extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
}
#include "pg/compat.hpp"

#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clone.hpp"
#include "datadir.hpp"
#include "pg/guard.hpp"
#include "restart.hpp"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace {

using autopilot::pgx::ErrorBuffer;
namespace datadir = autopilot::datadir;

/*
 * Environment variable carrying "<postmaster pid>:<fd>,<fd>,..." across
 * execv: the descriptors (>= 3) that were open when this postmaster first
 * loaded us, i.e. those its launcher passed in.  Only descriptors opened
 * later get FD_CLOEXEC before a re-exec.  The PID prefix makes a value
 * inherited from some other process's environment count as absent.
 */
constexpr const char *kInheritedFdsEnv = "AUTOPILOT_INHERITED_FDS";

/*
 * How long a re-exec waits for the remaining children (in practice only the
 * old syslogger, which exits when it sees EOF on its pipe — a few ms).  If it
 * is still there after this, the exec goes ahead: the old logger then ends
 * as an untracked child that exits with status 0, which is only logged.
 */
constexpr int kReapTimeoutMs = 2000;

/* The configuration files a clone must keep from the node (when they live in PGDATA). */
constexpr const char *kNodeLocalFiles[] = {"postgresql.conf", "pg_hba.conf", "pg_ident.conf", "postgresql.auto.conf"};

/* State prepared by AutopilotPrestartInit; only POD, read by the exit callback. */
bool prestart_ready = false;
char **saved_argv = nullptr;
int saved_stdout = -1;
int saved_stderr = -1;
int *inherited_fds = nullptr;
int n_inherited_fds = 0;
char state_dir_path[MAXPGPATH];
char marker_path[MAXPGPATH];
char pending_path[MAXPGPATH];
char clone_path[MAXPGPATH];
char state_file_path[MAXPGPATH];
char needs_reclone_path[MAXPGPATH];
char fenced_path[MAXPGPATH];
char exec_cwd[MAXPGPATH]; /* directory to execv from; empty: stay in PGDATA */

/* CaptureArgv reads the original argument vector from /proc/self/cmdline into malloc'd memory. */
bool
CaptureArgv(void)
{
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;

	size_t cap = 4096, len = 0;
	char *buf = static_cast<char *>(malloc(cap));
	for (;;) {
		if (buf == nullptr) {
			close(fd);
			return false;
		}
		if (len == cap) {
			cap *= 2;
			char *grown = static_cast<char *>(realloc(buf, cap));
			if (grown == nullptr)
				free(buf);
			buf = grown;
			continue;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			close(fd);
			return false;
		}
		if (n == 0)
			break;
		len += (size_t) n;
	}
	close(fd);
	if (len == 0 || buf[len - 1] != '\0') {
		free(buf);
		return false;
	}

	int argc = 0;
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			argc++;
	char **argv = static_cast<char **>(malloc(sizeof(char *) * (argc + 1)));
	if (argv == nullptr) {
		free(buf);
		return false;
	}
	int k = 0;
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		argv[k++] = buf + i;
	argv[k] = nullptr;
	saved_argv = argv;
	return true;
}

/*
 * ChooseExecCwd makes relative paths in argv (pg_ctl -D node) mean the same
 * after a re-exec, although the postmaster has moved into PGDATA by now.  The
 * launcher's directory is taken from $PWD when it is absolute and a relative
 * -D resolves from it; the exec then happens from there.  Without a usable
 * $PWD a relative -D argument is replaced by the absolute DataDir (other
 * relative paths — config_file and friends given relatively on the command
 * line — then resolve from PGDATA: start the server with absolute paths).
 */
void
ChooseExecCwd(void)
{
	int d_index = -1; /* argv index holding the -D value ("-D X" or "-DX") */
	const char *d_value = nullptr;
	for (int i = 1; saved_argv[i] != nullptr; i++) {
		if (strcmp(saved_argv[i], "-D") == 0 && saved_argv[i + 1] != nullptr) {
			d_index = i + 1;
			d_value = saved_argv[i + 1];
		} else if (strncmp(saved_argv[i], "-D", 2) == 0 && saved_argv[i][2] != '\0') {
			d_index = i;
			d_value = saved_argv[i] + 2;
		}
	}

	exec_cwd[0] = '\0';
	const char *pwd = getenv("PWD");
	struct stat st;
	if (pwd != nullptr && pwd[0] == '/' && strlen(pwd) < sizeof(exec_cwd) && stat(pwd, &st) == 0 &&
		S_ISDIR(st.st_mode)) {
		char probe[MAXPGPATH * 2];
		snprintf(probe, sizeof(probe), "%s/%s", pwd, d_value ? d_value : ".");
		if (d_value == nullptr || d_value[0] == '/' || stat(probe, &st) == 0) {
			strlcpy(exec_cwd, pwd, sizeof(exec_cwd));
			return;
		}
	}
	if (d_value != nullptr && d_value[0] != '/') {
		char *abs_d = static_cast<char *>(malloc(strlen(DataDir) + 3));
		if (abs_d == nullptr)
			return;
		if (saved_argv[d_index] == d_value)
			strcpy(abs_d, DataDir);
		else
			snprintf(abs_d, strlen(DataDir) + 3, "-D%s", DataDir);
		saved_argv[d_index] = abs_d;
	}
}

/* ListOpenFds fills fds (up to max) with the open descriptors >= 3; returns how many, or -1. */
int
ListOpenFds(int *fds, int max)
{
	DIR *dir = opendir("/proc/self/fd");
	if (dir == nullptr)
		return -1;
	int self = dirfd(dir), n = 0;
	struct dirent *de;
	while ((de = readdir(dir)) != nullptr) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		int fd = atoi(de->d_name);
		if (fd < 3 || fd == self)
			continue;
		if (n < max)
			fds[n] = fd;
		n++;
	}
	closedir(dir);
	return n;
}

/*
 * RecordInheritedFds remembers the descriptors the launcher passed in: at the
 * first start it lists them and exports kInheritedFdsEnv; after a re-exec it
 * reads that variable back (the descriptors themselves survived the exec).
 */
void
RecordInheritedFds(void)
{
	constexpr int kMaxFds = 256;
	static int fds[kMaxFds];
	int n = 0;
	const char *env = getenv(kInheritedFdsEnv);
	char *end = nullptr;

	if (env != nullptr && strtol(env, &end, 10) == (long) getpid() && *end == ':') {
		const char *p = end + 1;
		while (*p != '\0' && n < kMaxFds) {
			long fd = strtol(p, &end, 10);
			if (end == p)
				break;
			fds[n++] = (int) fd;
			p = (*end == ',') ? end + 1 : end;
		}
	} else {
		n = ListOpenFds(fds, kMaxFds);
		if (n < 0 || n > kMaxFds)
			n = (n < 0) ? 0 : kMaxFds;
		char value[16 + kMaxFds * 12];
		int off = snprintf(value, sizeof(value), "%d:", (int) getpid());
		for (int i = 0; i < n; i++)
			off += snprintf(value + off, sizeof(value) - off, "%s%d", i ? "," : "", fds[i]);
		setenv(kInheritedFdsEnv, value, 1);
	}
	inherited_fds = fds;
	n_inherited_fds = n;
}

/* MarkNewFdsCloexec sets FD_CLOEXEC on every descriptor >= 3 that was not inherited at the first start. */
void
MarkNewFdsCloexec(void) noexcept
{
	DIR *dir = opendir("/proc/self/fd");
	if (dir == nullptr)
		return;
	int self = dirfd(dir);
	struct dirent *de;
	while ((de = readdir(dir)) != nullptr) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		int fd = atoi(de->d_name);
		if (fd < 3 || fd == self)
			continue;
		bool inherited = false;
		for (int i = 0; i < n_inherited_fds && !inherited; i++)
			inherited = (inherited_fds[i] == fd);
		if (inherited)
			continue;
		int flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			(void) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	}
	closedir(dir);
}

/*
 * ReapChildren waits (bounded by kReapTimeoutMs) until the postmaster has no
 * child left (WaitChildren, clone.cpp: no sleeping; other blocked signals —
 * a pg_ctl stop — stay pending for the new image).
 */
void
ReapChildren(void) noexcept
{
	int status;
	(void) WaitChildren(-1, kReapTimeoutMs, &status);
}

/*
 * ReExec replaces the postmaster image with a fresh one, same PID and argv.
 * Order: block every signal; hand the original stdout/stderr back (dropping
 * the last write end of the old syslogger's pipe, so it exits); reap the
 * remaining children; close-on-exec whatever was opened since the first
 * start; execv.  Returns only when execv failed (errno preserved); nothing
 * may be logged through elog after the stderr hand-back.
 */
void
ReExec(void) noexcept
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, nullptr);

	if (saved_stdout >= 0)
		(void) dup2(saved_stdout, STDOUT_FILENO);
	if (saved_stderr >= 0)
		(void) dup2(saved_stderr, STDERR_FILENO);
	ReapChildren();
	MarkNewFdsCloexec();
	if (exec_cwd[0] != '\0' && chdir(exec_cwd) != 0) {
		/* Ignored: relative arguments then resolve from PGDATA, and the new image reports what it cannot find. */
	}
	fflush(nullptr);
	execv(my_exec_path, saved_argv);
}

/* FsyncPath fsyncs a file or directory; returns false with errno set on failure. */
bool
FsyncPath(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	int rc = fsync(fd);
	int save = errno;
	close(fd);
	errno = save;
	return rc == 0;
}

/* FsyncParent fsyncs the directory holding path (to make a rename durable). */
bool
FsyncParent(const char *path)
{
	char parent[MAXPGPATH];
	strlcpy(parent, path, sizeof(parent));
	get_parent_directory(parent);
	return FsyncPath(parent[0] ? parent : "/");
}

/* CopyFileDurably copies src to dst (mode of src), replacing dst through a fsynced temp file; throws Error. */
void
CopyFileDurably(const std::string &src, const std::string &dst)
{
	auto fail = [](const std::string &what) { throw autopilot::Error("58030", what + ": " + strerror(errno)); };
	int in = open(src.c_str(), O_RDONLY | O_CLOEXEC);
	if (in < 0)
		fail("could not open \"" + src + "\"");
	struct stat st;
	if (fstat(in, &st) != 0) {
		close(in);
		fail("could not stat \"" + src + "\"");
	}
	std::string tmp = dst + ".autopilot-tmp";
	int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
	if (out < 0) {
		close(in);
		fail("could not create \"" + tmp + "\"");
	}
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(in);
			close(out);
			fail("could not read \"" + src + "\"");
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				close(in);
				close(out);
				fail("could not write \"" + tmp + "\"");
			}
			off += w;
		}
	}
	close(in);
	if (fsync(out) != 0) {
		close(out);
		fail("could not fsync \"" + tmp + "\"");
	}
	if (close(out) != 0)
		fail("could not close \"" + tmp + "\"");
	if (rename(tmp.c_str(), dst.c_str()) != 0)
		fail("could not rename \"" + tmp + "\" to \"" + dst + "\"");
}

void BecomeStandbyFiles(const std::string &pgdata, std::vector<std::pair<std::string, std::string>> settings);

/*
 * PrepareClone makes the clone a standby that is this node: it keeps the
 * node's own configuration files (those in PGDATA), applies the action's
 * settings to the clone's postgresql.auto.conf (dropping
 * synchronous_standby_names, which a standby must not carry from its
 * primary) and creates standby.signal, all fsynced.  Idempotent; throws Error.
 */
void
PrepareClone(const std::string &pgdata, const std::string &clone, const datadir::PendingAction &action)
{
	for (const char *name : kNodeLocalFiles) {
		std::string src = pgdata + "/" + name;
		struct stat st;
		if (stat(src.c_str(), &st) == 0 && S_ISREG(st.st_mode))
			CopyFileDurably(src, clone + "/" + name);
	}

	BecomeStandbyFiles(clone, action.settings);
	/* Tells a later start that PGDATA holds the clone (the system identifier cannot when re-cloning). */
	datadir::WriteFileAtomic(clone + "/" + datadir::kCloneSwapMarker, "");

	if (!FsyncPath(clone.c_str()))
		throw autopilot::Error("58030", "could not fsync \"" + clone + "\": " + strerror(errno));
}

/* EndPendingAction removes the pending file durably; false with errno on failure. */
bool
RemovePendingFile(void)
{
	if (unlink(pending_path) != 0 && errno != ENOENT)
		return false;
	return FsyncPath(state_dir_path);
}

/*
 * RollBack abandons the pending action.  as_standby false: the old data
 * directory is intact and starts as it is (a clone that could not be swapped
 * in).  as_standby true (the pending file is unreadable or names an unknown
 * action, so nobody knows what the keeper wanted — maybe a rewind of a
 * former primary): the server starts as a standby without upstream
 * (standby.signal, primary_conninfo '') with the login fence up, never as a
 * writable primary; FATAL when that cannot be set up (the next start tries
 * again, the pending file is kept).
 */
void
RollBack(const char *why, const char *detail, const sigset_t *old_mask, bool as_standby)
{
	if (as_standby) {
		ErrorBuffer err;
		const char *pgdata = DataDir;
		if (!autopilot::pgx::TryCpp(err, [&] {
				BecomeStandbyFiles(pgdata, {{"primary_conninfo", ""}});
				datadir::WriteFileAtomic(fenced_path,
										 std::string("a pending pre-start action was abandoned: ") + why + "\n");
			}))
			ereport(FATAL,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("pg_autopilot: could not prepare a standby start after abandoning the pending pre-start "
							"action: %s",
							err.message),
					 errdetail("The pending action was abandoned because %s.", why),
					 errhint("The next start of the server tries again (pending file \"%s\").", pending_path)));
	}
	bool removed = RemovePendingFile();
	int save = errno;
	ereport(WARNING, (errmsg("pg_autopilot: pending pre-start action abandoned: %s", why),
					  detail && detail[0] ? errdetail_internal("%s", detail) : 0,
					  as_standby ? errhint("The server starts as a standby without upstream with the login fence up; "
										   "the keeper decides again what to do with it.")
								 : errhint("The server starts with its current data directory \"%s\"; the keeper "
										   "decides again what to do with it.",
										   DataDir)));
	if (!removed) {
		errno = save;
		ereport(WARNING,
				(errcode_for_file_access(), errmsg("pg_autopilot: could not remove \"%s\": %m", pending_path)));
	}
	sigprocmask(SIG_SETMASK, old_mask, nullptr);
}

/* FailAfterExchange ends the postmaster: the swap is half done and the next start finishes it. */
[[noreturn]] void
FailAfterExchange(const char *what)
{
	ereport(FATAL,
			(errcode(ERRCODE_INTERNAL_ERROR), errmsg("pg_autopilot: could not finish swapping in the clone: %s", what),
			 errdetail("The clone has been exchanged in at \"%s\" but the swap is not complete.", DataDir),
			 errhint("The next start of the server retries it (pending file \"%s\").", pending_path)));
	pg_unreachable();
}

/*
 * CompleteAction records that a pending action succeeded: the keeper's state
 * file gets the action's new state, the re-clone request is dropped.  Throws
 * Error (pure helpers only).
 */
void
CompleteAction(const datadir::PendingAction &action)
{
	if (!action.new_state.empty())
		datadir::WriteFileAtomic(state_file_path, action.new_state + "\n");
	if (unlink(needs_reclone_path) != 0 && errno != ENOENT)
		throw autopilot::Error("58030",
							   std::string("could not remove \"") + needs_reclone_path + "\": " + strerror(errno));
}

/*
 * FinishSwap runs once PGDATA holds the clone: it moves the old data
 * directory (now at <PGDATA>.clone) aside to <PGDATA>.old-<unix time>,
 * removes the swap marker, records the action as done, removes the pending
 * file and re-execs.  Never returns.
 */
[[noreturn]] void
FinishSwap(const datadir::PendingAction &action)
{
	struct stat st;
	if (lstat(clone_path, &st) == 0) {
		char old_path[MAXPGPATH];
		long now = (long) time(nullptr);
		snprintf(old_path, sizeof(old_path), "%s.old-%ld", DataDir, now);
		for (int i = 1; lstat(old_path, &st) == 0 && i < 100; i++)
			snprintf(old_path, sizeof(old_path), "%s.old-%ld-%d", DataDir, now, i);
		ereport(LOG, (errmsg("pg_autopilot: keeping the replaced data directory as \"%s\"", old_path)));
		if (rename(clone_path, old_path) != 0) {
			char what[MAXPGPATH * 2 + 64];
			snprintf(what, sizeof(what), "could not rename \"%s\" to \"%s\": %s", clone_path, old_path,
					 strerror(errno));
			FailAfterExchange(what);
		}
		if (!FsyncParent(DataDir)) {
			char what[MAXPGPATH + 64];
			snprintf(what, sizeof(what), "could not fsync the parent of \"%s\": %s", DataDir, strerror(errno));
			FailAfterExchange(what);
		}
	} else if (errno != ENOENT) {
		char what[MAXPGPATH + 64];
		snprintf(what, sizeof(what), "could not stat \"%s\": %s", clone_path, strerror(errno));
		FailAfterExchange(what);
	}

	char swap_marker[MAXPGPATH];
	snprintf(swap_marker, sizeof(swap_marker), "%s/%s", DataDir, datadir::kCloneSwapMarker);
	if (unlink(swap_marker) != 0 && errno != ENOENT) {
		char what[MAXPGPATH + 64];
		snprintf(what, sizeof(what), "could not remove \"%s\": %s", swap_marker, strerror(errno));
		FailAfterExchange(what);
	}
	ErrorBuffer err;
	if (!autopilot::pgx::TryCpp(err, [&] { CompleteAction(action); }))
		FailAfterExchange(err.message);

	/* A pending file we cannot remove would re-run the swap after every re-exec: stop instead. */
	if (!RemovePendingFile()) {
		char what[MAXPGPATH + 64];
		snprintf(what, sizeof(what), "could not remove \"%s\": %s", pending_path, strerror(errno));
		FailAfterExchange(what);
	}
	ereport(LOG, (errmsg("pg_autopilot: clone swapped in; re-executing postmaster %d to start as a standby",
						 (int) getpid())));
	ReExec();
	char what[MAXPGPATH + 64];
	snprintf(what, sizeof(what), "could not execute \"%s\": %s", my_exec_path, strerror(errno));
	FailAfterExchange(what);
}

/*
 * RunCloneSwap performs a pending "clone-swap" (idempotent, crash-safe; the
 * RENAME_EXCHANGE of PGDATA and <PGDATA>.clone is the commit point).  Before
 * the exchange every failure rolls back and returns; from the exchange on it
 * either re-execs or ends the postmaster with FATAL.
 */
void
RunCloneSwap(const datadir::PendingAction &action, const sigset_t *old_mask)
{
	const uint64_t expected = action.expected_system_identifier;
	std::optional<uint64_t> current = datadir::ReadSystemIdentifier(DataDir);
	char swap_marker[MAXPGPATH];
	snprintf(swap_marker, sizeof(swap_marker), "%s/%s", DataDir, datadir::kCloneSwapMarker);

	/*
	 * Exchanged already (a crash after the commit point)?  The marker says so
	 * in every case; the system identifier only when the clone is of another
	 * system (a re-clone has the same one).
	 */
	if (access(swap_marker, F_OK) == 0 || (!action.reclone && current && *current == expected)) {
		ereport(LOG, (errmsg("pg_autopilot: \"%s\" already holds the clone of system %" PRIu64 "; finishing the swap",
							 DataDir, expected)));
		FinishSwap(action);
	}

	std::optional<uint64_t> cloned = datadir::ReadSystemIdentifier(clone_path);
	if (!cloned || *cloned != expected) {
		char detail[256];
		if (cloned)
			snprintf(detail, sizeof(detail), "\"%s\" has system identifier %" PRIu64 ", expected %" PRIu64 ".",
					 clone_path, *cloned, expected);
		else
			snprintf(detail, sizeof(detail), "\"%s\" is missing or has no readable global/pg_control.", clone_path);
		RollBack("the clone to swap in is not usable", detail, old_mask, false);
		return;
	}

	ereport(LOG,
			(errmsg("pg_autopilot: swapping in the clone of system %" PRIu64 " from \"%s\"", expected, clone_path)));
	ereport(LOG, (errmsg("pg_autopilot: copying the node's configuration files and standby settings into \"%s\"",
						 clone_path)));
	ErrorBuffer err;
	if (!autopilot::pgx::TryCpp(err, [&] { PrepareClone(DataDir, clone_path, action); })) {
		RollBack("could not prepare the clone", err.message, old_mask, false);
		return;
	}

	ereport(LOG, (errmsg("pg_autopilot: exchanging \"%s\" and \"%s\"", DataDir, clone_path)));
	if (syscall(SYS_renameat2, AT_FDCWD, DataDir, AT_FDCWD, clone_path, RENAME_EXCHANGE) != 0) {
		char detail[MAXPGPATH * 2 + 128];
		snprintf(detail, sizeof(detail), "renameat2(RENAME_EXCHANGE) of \"%s\" and \"%s\" failed: %s.", DataDir,
				 clone_path, strerror(errno));
		RollBack("could not exchange the data directories", detail, old_mask, false);
		return;
	}
	if (!FsyncParent(DataDir)) {
		char what[MAXPGPATH + 64];
		snprintf(what, sizeof(what), "could not fsync the parent of \"%s\": %s", DataDir, strerror(errno));
		FailAfterExchange(what);
	}
	FinishSwap(action);
}

/*
 * SaveNodeConfig copies the node-local configuration files that live in
 * PGDATA into save_dir, once per pending rewind: a save_dir marked complete
 * is kept, because after a crash in the middle of pg_rewind PGDATA may
 * already hold the source's copies.  Throws Error.
 */
void
SaveNodeConfig(const std::string &pgdata, const std::string &save_dir)
{
	std::string complete = save_dir + "/complete";
	struct stat st;
	if (stat(complete.c_str(), &st) == 0)
		return;
	if (mkdir(save_dir.c_str(), 0700) != 0 && errno != EEXIST)
		throw autopilot::Error("58030", "could not create directory \"" + save_dir + "\": " + strerror(errno));
	for (const char *name : kNodeLocalFiles) {
		std::string src = pgdata + "/" + name;
		std::string dst = save_dir + "/" + name;
		if (stat(src.c_str(), &st) == 0 && S_ISREG(st.st_mode))
			CopyFileDurably(src, dst);
		else if (unlink(dst.c_str()) != 0 && errno != ENOENT)
			throw autopilot::Error("58030", "could not remove \"" + dst + "\": " + strerror(errno));
	}
	datadir::WriteFileAtomic(complete, "");
}

/* RestoreNodeConfig copies the saved files back into PGDATA and removes the saved copy. Throws Error. */
void
RestoreNodeConfig(const std::string &pgdata, const std::string &save_dir)
{
	struct stat st;
	for (const char *name : kNodeLocalFiles) {
		std::string saved = save_dir + "/" + name;
		if (stat(saved.c_str(), &st) == 0)
			CopyFileDurably(saved, pgdata + "/" + name);
	}
	if (!FsyncPath(pgdata.c_str()))
		throw autopilot::Error("58030", "could not fsync \"" + pgdata + "\": " + strerror(errno));
	for (const char *name : kNodeLocalFiles)
		(void) unlink((save_dir + "/" + name).c_str());
	(void) unlink((save_dir + "/complete").c_str());
	(void) rmdir(save_dir.c_str());
}

/*
 * BecomeStandbyFiles sets `settings` (plus synchronous_standby_names = '',
 * which a standby must not carry) in PGDATA's postgresql.auto.conf and
 * creates standby.signal, fsynced.  Throws Error.
 */
void
BecomeStandbyFiles(const std::string &pgdata, std::vector<std::pair<std::string, std::string>> settings)
{
	bool has_ssn = false;
	for (const auto &s : settings)
		has_ssn = has_ssn || s.first == "synchronous_standby_names";
	if (!has_ssn)
		settings.emplace_back("synchronous_standby_names", "");
	std::string auto_conf = pgdata + "/postgresql.auto.conf";
	std::string old_text = datadir::ReadSmallFile(auto_conf).value_or("");
	datadir::WriteFileAtomic(auto_conf, datadir::SetAutoConfSettings(old_text, settings));
	datadir::WriteFileAtomic(pgdata + "/standby.signal", "");
}

/*
 * RunChild forks and execs argv with output appended to log_path, and waits
 * for it (the postmaster has no children yet and all signals blocked; the
 * child gets default dispositions and an empty mask, and only execs or
 * _exits).  Returns the wait status, or -1 with errno when it could not run.
 */
int
RunChild(char *const *argv, const char *log_path) noexcept
{
	int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return -1;
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fflush(nullptr);
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, nullptr);
		if (null_fd >= 0)
			(void) dup2(null_fd, STDIN_FILENO);
		(void) dup2(log_fd, STDOUT_FILENO);
		(void) dup2(log_fd, STDERR_FILENO);
#ifdef SYS_close_range
		(void) syscall(SYS_close_range, 3, ~0U, 0);
#endif
		execv(argv[0], argv);
		_exit(127);
	}
	int save = errno;
	close(log_fd);
	if (null_fd >= 0)
		close(null_fd);
	if (pid < 0) {
		errno = save;
		return -1;
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return status;
}

/* ReadTail puts the last line(s) of a log file (at most len - 1 bytes) into out. */
void
ReadTail(const char *path, char *out, size_t len) noexcept
{
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	off_t start = size > (off_t) (len - 1) ? size - (off_t) (len - 1) : 0;
	ssize_t n = pread(fd, out, len - 1, start);
	close(fd);
	if (n <= 0)
		return;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\0'))
		n--;
	out[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (out[i] == '\n')
			out[i] = ' ';
}

/*
 * RewindFailed leaves the node a standby without upstream that the keeper
 * re-clones: node-local configuration restored, primary_conninfo '',
 * standby.signal, needs_reclone, pending file removed, re-exec.  It never
 * starts the data directory as a primary: its history may have diverged.
 * Never returns (FATAL when even that cannot be set up: the next start
 * retries the pending rewind).
 */
[[noreturn]] void
RewindFailed(const char *pgdata, const char *save_dir, const char *why)
{
	ereport(WARNING,
			(errmsg("pg_autopilot: pg_rewind of \"%s\" failed: %s", DataDir, why),
			 errdetail("The server starts as a standby without upstream and stays fenced."),
			 errhint("The keeper re-clones this node from the primary (\"%s\" requests it).", needs_reclone_path)));
	ErrorBuffer err;
	bool ok = autopilot::pgx::TryCpp(err, [&] {
		struct stat st;
		if (stat(save_dir, &st) == 0)
			RestoreNodeConfig(pgdata, save_dir);
		BecomeStandbyFiles(pgdata, {{"primary_conninfo", ""}});
		datadir::WriteFileAtomic(needs_reclone_path, std::string(why) + "\n");
	});
	if (ok && !RemovePendingFile()) {
		ok = false;
		char msg[MAXPGPATH + 256];
		snprintf(msg, sizeof(msg), "could not remove \"%s\": %s", pending_path, strerror(errno));
		err.Set("58030", msg, nullptr, nullptr);
	}
	if (!ok) {
		ereport(FATAL,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("pg_autopilot: could not prepare a standby start after a failed pg_rewind: %s", err.message),
				 errhint("The next start of the server retries the rewind (pending file \"%s\").", pending_path)));
	}
	ereport(LOG, (errmsg("pg_autopilot: re-executing postmaster %d as a standby without upstream", (int) getpid())));
	ReExec();
	ereport(FATAL,
			(errcode(ERRCODE_INTERNAL_ERROR), errmsg("pg_autopilot: could not execute \"%s\": %m", my_exec_path)));
	pg_unreachable();
}

/*
 * RunRewind performs a pending "rewind": the server was shut down cleanly
 * (the keeper's restart request), so pg_rewind may work on PGDATA while this
 * postmaster holds its lock file (pg_rewind does not look at
 * postmaster.pid).  pg_rewind copies the source's configuration files, so
 * the node's own are saved before and restored after.  Success: the standby
 * settings and standby.signal are written, the keeper's state advances, and
 * the postmaster re-execs (pg_control and the configuration must be read
 * afresh).  Failure: RewindFailed.  Never returns.
 */
[[noreturn]] void
RunRewind(const datadir::PendingAction &action)
{
	/* Plain buffers, not std::string: this frame ereports (LOG, FATAL). */
	const char *pgdata = DataDir;
	char save_dir[MAXPGPATH + 16];
	snprintf(save_dir, sizeof(save_dir), "%s/rewind-conf", state_dir_path);
	char log_path[MAXPGPATH + 16];
	snprintf(log_path, sizeof(log_path), "%s/rewind.log", state_dir_path);

	if (action.source.empty())
		RewindFailed(pgdata, save_dir, "the pending rewind names no source server");
	ErrorBuffer err;
	if (!autopilot::pgx::TryCpp(err, [&] { SaveNodeConfig(pgdata, save_dir); })) {
		char why[sizeof(err.message) + 64];
		snprintf(why, sizeof(why), "could not save the node's configuration: %s", err.message);
		RewindFailed(pgdata, save_dir, why);
	}

	char program[MAXPGPATH], target_arg[MAXPGPATH + 32];
	strlcpy(program, my_exec_path, sizeof(program));
	get_parent_directory(program);
	strlcat(program, "/pg_rewind", sizeof(program));
	snprintf(target_arg, sizeof(target_arg), "--target-pgdata=%s", DataDir);
	char *source_arg = static_cast<char *>(malloc(action.source.size() + 32));
	if (source_arg == nullptr)
		RewindFailed(pgdata, save_dir, "out of memory");
	snprintf(source_arg, action.source.size() + 32, "--source-server=%s", action.source.c_str());
	char *argv[] = {program, target_arg, source_arg, const_cast<char *>("--progress"), nullptr};

	ereport(LOG, (errmsg("pg_autopilot: running pg_rewind on \"%s\" from the new primary, output in \"%s\"", DataDir,
						 log_path)));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int status = RunChild(argv, log_path);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	free(source_arg);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;

	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char tail[512], why[MAXPGPATH + 768];
		ReadTail(log_path, tail, sizeof(tail));
		if (status == -1)
			snprintf(why, sizeof(why), "could not run \"%s\": %s", program, strerror(errno));
		else if (WIFEXITED(status))
			snprintf(why, sizeof(why), "exit code %d after %ld ms: %s", WEXITSTATUS(status), ms, tail);
		else
			snprintf(why, sizeof(why), "status %d after %ld ms: %s", status, ms, tail);
		RewindFailed(pgdata, save_dir, why);
	}

	ereport(LOG, (errmsg("pg_autopilot: pg_rewind succeeded in %ld ms; restoring the node's configuration", ms)));
	bool ok = autopilot::pgx::TryCpp(err, [&] {
		RestoreNodeConfig(pgdata, save_dir);
		BecomeStandbyFiles(pgdata, action.settings);
		CompleteAction(action);
	});
	if (!ok) {
		char why[sizeof(err.message) + 64];
		snprintf(why, sizeof(why), "could not set up the standby after pg_rewind: %s", err.message);
		RewindFailed(pgdata, save_dir, why);
	}
	if (!RemovePendingFile())
		ereport(FATAL, (errcode_for_file_access(), errmsg("pg_autopilot: could not remove \"%s\": %m", pending_path)));
	ereport(LOG, (errmsg("pg_autopilot: re-executing postmaster %d to start as a standby of the new primary",
						 (int) getpid())));
	ReExec();
	ereport(FATAL,
			(errcode(ERRCODE_INTERNAL_ERROR), errmsg("pg_autopilot: could not execute \"%s\": %m", my_exec_path)));
	pg_unreachable();
}

/*
 * RunPendingAction reads and runs <PGDATA>.autopilot/pending with all
 * signals blocked (a stop request that arrives meanwhile stays pending for
 * the new image, or for this one after a roll-back).
 */
void
RunPendingAction(void)
{
	sigset_t all, old_mask;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old_mask);

	/* Parsed action: lives in a heap object owned here, never across an ERROR (only LOG/WARNING/FATAL below). */
	datadir::PendingAction *action = nullptr;
	ErrorBuffer err;
	bool parsed = autopilot::pgx::TryCpp(err, [&] {
		std::optional<std::string> text = datadir::ReadSmallFile(pending_path);
		if (!text)
			throw autopilot::Error(autopilot::sqlstate::kDataCorrupted, "could not read the pending file");
		action = new datadir::PendingAction(datadir::PendingAction::Parse(*text));
	});
	if (!parsed) {
		char detail[sizeof(err.message) + sizeof(err.detail) + 2];
		snprintf(detail, sizeof(detail), "%s%s%s", err.message, err.detail[0] ? " " : "", err.detail);
		RollBack("the pending file is not valid", detail, &old_mask, true);
		return;
	}
	if (action->kind == "rewind") {
		RunRewind(*action); /* never returns; `action` is reclaimed by the exec */
	}
	if (action->kind != "clone-swap" || action->expected_system_identifier == 0) {
		char detail[256];
		snprintf(detail, sizeof(detail), "Kind \"%.64s\", expected system identifier %" PRIu64 ".",
				 action->kind.c_str(), action->expected_system_identifier);
		delete action;
		RollBack("unknown pending action", detail, &old_mask, true);
		return;
	}
	RunCloneSwap(*action, &old_mask);
	delete action;
}

} // namespace

/*
 * AutopilotExitCallback (on_proc_exit, postmaster): after a clean shutdown
 * (code 0) requested by RequestRestart, re-exec the postmaster.  The marker
 * is unlinked first, so this happens once per request.
 */
extern "C" void
AutopilotExitCallback(int code, Datum arg) noexcept
{
	if (code != 0 || !prestart_ready || getpid() != PostmasterPid)
		return;
	char reason[256] = "";
	int fd = open(marker_path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, reason, sizeof(reason) - 1);
		reason[n > 0 ? n : 0] = '\0';
		reason[strcspn(reason, "\n")] = '\0';
		close(fd);
	}
	if (unlink(marker_path) != 0)
		return; /* no marker: a normal stop */

	ereport(LOG, (errmsg("pg_autopilot: postmaster %d re-executing itself after a clean shutdown (%s)", (int) getpid(),
						 reason)));
	ReExec();
	write_stderr("pg_autopilot: could not re-execute \"%s\": %s; the server stays down\n", my_exec_path,
				 strerror(errno));
}

/*
 * AutopilotPrestartInit — see restart.hpp.  Must run first in _PG_init.
 * Raises nothing; may not return (re-exec) or end the postmaster (FATAL)
 * when a swap cannot be finished.
 */
void
AutopilotPrestartInit(void)
{
	if (!process_shared_preload_libraries_in_progress || IsUnderPostmaster || !IsPostmasterEnvironment ||
		DataDir == nullptr || prestart_ready)
		return;

	ErrorBuffer err;
	bool paths_ok = autopilot::pgx::TryCpp(err, [&] {
		std::string pgdata(DataDir);
		autopilot::datadir::CopyPath(state_dir_path, sizeof(state_dir_path), datadir::StateDir(pgdata));
		autopilot::datadir::CopyPath(marker_path, sizeof(marker_path), datadir::RestartMarker(pgdata));
		autopilot::datadir::CopyPath(pending_path, sizeof(pending_path), datadir::PendingFile(pgdata));
		autopilot::datadir::CopyPath(clone_path, sizeof(clone_path), datadir::CloneDir(pgdata));
		autopilot::datadir::CopyPath(state_file_path, sizeof(state_file_path), datadir::StateFile(pgdata));
		autopilot::datadir::CopyPath(needs_reclone_path, sizeof(needs_reclone_path), datadir::NeedsRecloneFile(pgdata));
		autopilot::datadir::CopyPath(fenced_path, sizeof(fenced_path), datadir::FencedFile(pgdata));
	});
	if (!paths_ok) {
		ereport(WARNING, (errmsg("pg_autopilot: same-PID restarts are disabled: %s", err.message)));
		return;
	}

	if (!CaptureArgv()) {
		ereport(WARNING, (errmsg("pg_autopilot: same-PID restarts are disabled: could not read /proc/self/cmdline")));
		return;
	}
	ChooseExecCwd();
	RecordInheritedFds();
	/* Before StartSysLogger redirects them; CLOEXEC so they never leak into children or the new image. */
	saved_stdout = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);

	if (unlink(marker_path) == 0)
		ereport(LOG, (errmsg("pg_autopilot: removed a stale restart marker \"%s\"", marker_path)));

	prestart_ready = true;
	if (access(pending_path, F_OK) == 0)
		RunPendingAction();

	on_proc_exit(AutopilotExitCallback, (Datum) 0);
}

/*
 * RequestRestart — see restart.hpp.  Keeper process.  Writes the pending
 * action (if any), then the one-shot marker, then asks the postmaster for a
 * fast shutdown; on any failure it removes what it wrote and signals nothing.
 */
bool
RequestRestart(const datadir::PendingAction *action, const char *reason, char *errbuf, size_t errlen)
{
	char pending[MAXPGPATH], marker[MAXPGPATH];
	bool wrote_pending = false, wrote_marker = false;
	ErrorBuffer err;

	bool ok = autopilot::pgx::TryCpp(err, [&] {
		std::string pgdata(DataDir);
		std::string state_dir = datadir::StateDir(pgdata);
		autopilot::datadir::CopyPath(pending, sizeof(pending), datadir::PendingFile(pgdata));
		autopilot::datadir::CopyPath(marker, sizeof(marker), datadir::RestartMarker(pgdata));
		if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST)
			throw autopilot::Error("58030",
								   "could not create directory \"" + state_dir + "\": " + std::string(strerror(errno)));
		if (action != nullptr) {
			datadir::WriteFileAtomic(pending, action->Serialize());
			wrote_pending = true;
		}
		datadir::WriteFileAtomic(marker, std::string(reason ? reason : "restart") + "\n" +
											 std::to_string((long long) time(nullptr)) + "\n");
		wrote_marker = true;
	});
	if (ok && kill(PostmasterPid, SIGINT) != 0) {
		snprintf(err.message, sizeof(err.message), "could not signal the postmaster (PID %d): %s", (int) PostmasterPid,
				 strerror(errno));
		ok = false;
	}
	if (ok)
		return true;

	if (wrote_marker)
		(void) unlink(marker);
	if (wrote_pending)
		(void) unlink(pending);
	snprintf(errbuf, errlen, "%s", err.message);
	return false;
}
