/*
 * src/bgworker/clone.cpp — pg_basebackup of the primary into <PGDATA>.clone
 * while this server runs (PostgreSQL zone, keeper process only).
 *
 * Invariants:
 *  - At most one pg_basebackup runs; its PID lives in clone_pid until it has
 *    been reaped.  It is our child (the keeper's), not the postmaster's, so
 *    the postmaster never reaps it: ClonePoll and CloneCancel always do.
 *  - The child only execs or _exits.  Everything it needs (argv, paths, the
 *    log descriptor) is prepared before fork.  It runs in its own process
 *    group, so signals the postmaster sends to the keeper's group do not
 *    reach it, and CloneCancel stops pg_basebackup together with the WAL
 *    streaming process it forks; PR_SET_PDEATHSIG ends it if the keeper dies.
 *  - Only the exact path <PGDATA>.clone is ever removed, never while a
 *    pending action exists (it may be about to be swapped in, or be the old
 *    data directory in the middle of a swap) and never when it holds a
 *    postmaster.pid (pg_basebackup never copies one: such a directory has
 *    been some server's data directory).
 *  - Nothing here raises ERROR: failures come back in errbuf; no C++ object
 *    outlives TryPure.
 */
extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
}
#include "pg/compat.hpp"

#include <cerrno>
#include <cstdarg>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clone.hpp"
#include "datadir.hpp"
#include "pg/guard.hpp"

namespace {

using autopilot::pgx::ErrorBuffer;
namespace datadir = autopilot::datadir;

/*
 * How long CloneCancel waits for pg_basebackup to exit after SIGTERM before
 * it sends SIGKILL; pg_basebackup has no SIGTERM handler, so it normally dies
 * at once.
 */
constexpr int kTermTimeoutMs = 1000;

/* How much of the end of clone.log ClonePoll reads to explain a failure. */
constexpr size_t kLogTail = 4096;

pid_t clone_pid = 0;
CloneStatus last_status = CloneStatus::Idle;
char last_error[1024];

/* SetError formats into errbuf; truncation is expected and fine (the tail of a message is dropped). */
pg_attribute_printf(3, 4) void SetError(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

struct ClonePaths {
	char pgdata[MAXPGPATH];
	char clone[MAXPGPATH];
	char state_dir[MAXPGPATH];
	char pending[MAXPGPATH];
	char log[MAXPGPATH];
};

/* GetPaths fills the paths around DataDir; false with errbuf on failure. */
bool
GetPaths(ClonePaths *p, char *errbuf, size_t errlen) noexcept
{
	ErrorBuffer err;
	bool ok = autopilot::pgx::TryCpp(err, [&] {
		std::string pgdata(DataDir);
		autopilot::datadir::CopyPath(p->pgdata, sizeof(p->pgdata), pgdata);
		autopilot::datadir::CopyPath(p->clone, sizeof(p->clone), datadir::CloneDir(pgdata));
		autopilot::datadir::CopyPath(p->state_dir, sizeof(p->state_dir), datadir::StateDir(pgdata));
		autopilot::datadir::CopyPath(p->pending, sizeof(p->pending), datadir::PendingFile(pgdata));
		autopilot::datadir::CopyPath(p->log, sizeof(p->log), datadir::StateDir(pgdata) + "/clone.log");
	});
	if (!ok)
		SetError(errbuf, errlen, "%s", err.message);
	return ok;
}

int
RemoveEntry(const char *path, const struct stat *sb, int typeflag, struct FTW *ftwbuf)
{
	int rc = (typeflag == FTW_DP) ? rmdir(path) : unlink(path);
	return (rc != 0 && errno != ENOENT) ? -1 : 0;
}

/*
 * RemoveCloneDir removes <PGDATA>.clone recursively (like rm -rf, without
 * following symlinks or crossing mount points), refusing when it may hold
 * somebody's data (see the file comment).  Returns false with errbuf set.
 */
bool
RemoveCloneDir(const ClonePaths &p, char *errbuf, size_t errlen) noexcept
{
	struct stat st;
	if (p.clone[0] == '\0' || strcmp(p.clone, p.pgdata) == 0) {
		SetError(errbuf, errlen, "refusing to remove \"%s\"", p.clone);
		return false;
	}
	if (lstat(p.clone, &st) != 0) {
		if (errno == ENOENT)
			return true;
		SetError(errbuf, errlen, "could not stat \"%s\": %s", p.clone, strerror(errno));
		return false;
	}
	if (access(p.pending, F_OK) == 0) {
		SetError(errbuf, errlen, "not removing \"%s\": a pending pre-start action (\"%s\") may use it", p.clone,
				 p.pending);
		return false;
	}
	char pidfile[MAXPGPATH + 32];
	snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", p.clone);
	if (access(pidfile, F_OK) == 0) {
		SetError(errbuf, errlen,
				 "not removing \"%s\": it holds a postmaster.pid, so it was a server's data directory, not a clone",
				 p.clone);
		return false;
	}
	if (nftw(p.clone, RemoveEntry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0) {
		SetError(errbuf, errlen, "could not remove \"%s\": %s", p.clone, strerror(errno));
		return false;
	}
	return true;
}

/* ReadLogTail puts the last lines of clone.log (at most errlen bytes) into errbuf. */
void
ReadLogTail(const char *log_path, char *errbuf, size_t errlen) noexcept
{
	char buf[kLogTail + 1];
	int fd = open(log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		SetError(errbuf, errlen, "no output (could not open \"%s\")", log_path);
		return;
	}
	off_t size = lseek(fd, 0, SEEK_END);
	off_t start = size > (off_t) kLogTail ? size - (off_t) kLogTail : 0;
	ssize_t n = pread(fd, buf, kLogTail, start);
	close(fd);
	if (n <= 0) {
		SetError(errbuf, errlen, "no output in \"%s\"", log_path);
		return;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
		n--;
	buf[n] = '\0';
	/* Keep the last few lines that fit, newest last. */
	const char *tail = buf;
	size_t fit = errlen > 1 ? errlen - 1 : 0;
	int lines = 0;
	for (ssize_t i = n - 1; i >= 0; i--) {
		if (buf[i] == '\n' && (++lines == 3 || (size_t) (n - i - 1) > fit)) {
			tail = buf + i + 1;
			break;
		}
	}
	if (strlen(tail) > fit)
		tail += strlen(tail) - fit;
	SetError(errbuf, errlen, "%s", tail);
}

/* Describe puts an exit status into words. */
void
Describe(int status, char *out, size_t len)
{
	if (WIFEXITED(status))
		snprintf(out, len, "exit code %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(out, len, "status %d", status);
}

/* CmdlineNamesClone: /proc/<pid>/cmdline is a pg_basebackup writing into `clone`. */
bool
CmdlineNamesClone(const char *pid_dir, const char *clone) noexcept
{
	char path[64];
	char buf[4096];
	snprintf(path, sizeof(path), "/proc/%s/cmdline", pid_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false; /* gone, or a zombie */
	buf[n] = '\0';
	const char *base = strrchr(buf, '/');
	if (strcmp(base != nullptr ? base + 1 : buf, "pg_basebackup") != 0)
		return false;
	for (const char *arg = buf; arg < buf + n; arg += strlen(arg) + 1)
		if (strcmp(arg, clone) == 0)
			return true;
	return false;
}

/* SignalOrphans sends SIGKILL to every pg_basebackup writing into `clone`; returns how many it found. */
int
SignalOrphans(const char *clone) noexcept
{
	int found = 0;
	DIR *proc = opendir("/proc");
	if (proc == nullptr)
		return 0;
	while (struct dirent *de = readdir(proc)) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (!CmdlineNamesClone(de->d_name, clone))
			continue;
		pid_t pid = (pid_t) atoi(de->d_name);
		if (pid == clone_pid || pid == getpid())
			continue;
		(void) kill(pid, SIGKILL);
		found++;
	}
	closedir(proc);
	return found;
}

/*
 * KillOrphanedBaseBackups: a keeper that was killed in the middle of a clone
 * leaves its pg_basebackup behind — PR_SET_PDEATHSIG ends pg_basebackup
 * itself, but not the WAL streaming process it forked, which goes on
 * writing into <PGDATA>.clone/pg_wal and would corrupt the next attempt
 * ("write-ahead log file ... has N bytes").  Before a new clone, every
 * process whose command line is a pg_basebackup into this very clone
 * directory is killed, and we wait (bounded, interruptible) until they are
 * gone.  False with errbuf set when some survive: the caller retries later.
 */
bool
KillOrphanedBaseBackups(const char *clone, char *errbuf, size_t errlen)
{
	if (SignalOrphans(clone) == 0)
		return true;
	ereport(LOG, (errmsg("pg_autopilot: killed what was left of an interrupted pg_basebackup into \"%s\"", clone)));
	for (int waited = 0; waited < kTermTimeoutMs; waited += 20) {
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (SignalOrphans(clone) == 0)
			return true;
	}
	SetError(errbuf, errlen, "an interrupted pg_basebackup into \"%s\" does not go away", clone);
	return false;
}

} // namespace

/*
 * CloneStart — see clone.hpp.  Removes a stale clone directory, then forks
 * and execs <bindir>/pg_basebackup -D <clone> -X stream -c fast --no-password
 * -d <conninfo> with output to <state dir>/clone.log.  No -R: the pre-start
 * swap writes the standby settings.  Raises nothing.
 */
bool
CloneStart(const char *source_conninfo, char *errbuf, size_t errlen)
{
	if (clone_pid > 0) {
		SetError(errbuf, errlen, "a base backup is already running (PID %d)", (int) clone_pid);
		return false;
	}
	ClonePaths p;
	if (!GetPaths(&p, errbuf, errlen))
		return false;
	if (!KillOrphanedBaseBackups(p.clone, errbuf, errlen))
		return false;
	if (!RemoveCloneDir(p, errbuf, errlen))
		return false;
	if (mkdir(p.state_dir, 0700) != 0 && errno != EEXIST) {
		SetError(errbuf, errlen, "could not create directory \"%s\": %s", p.state_dir, strerror(errno));
		return false;
	}

	char program[MAXPGPATH];
	strlcpy(program, my_exec_path, sizeof(program));
	get_parent_directory(program);
	strlcat(program, "/pg_basebackup", sizeof(program));
	if (access(program, X_OK) != 0) {
		SetError(errbuf, errlen, "cannot execute \"%s\": %s", program, strerror(errno));
		return false;
	}

	int log_fd = open(p.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		SetError(errbuf, errlen, "could not open \"%s\": %s", p.log, strerror(errno));
		return false;
	}
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	char *argv[] = {program,
					const_cast<char *>("-D"),
					p.clone,
					const_cast<char *>("-X"),
					const_cast<char *>("stream"),
					const_cast<char *>("-c"),
					const_cast<char *>("fast"),
					const_cast<char *>("--no-password"),
					const_cast<char *>("--verbose"),
					const_cast<char *>("-d"),
					const_cast<char *>(source_conninfo),
					nullptr};

	fflush(nullptr);
	pid_t pid = fork();
	if (pid == 0) {
		/* Child: only async-signal-safe calls, then exec or _exit. */
		sigset_t none;
		sigemptyset(&none);
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL); /* the keeper ignores SIGPIPE, SIGINT, ...: ignoring survives exec */
		sigprocmask(SIG_SETMASK, &none, nullptr);
		(void) setpgid(0, 0);
		(void) prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (null_fd >= 0)
			(void) dup2(null_fd, STDIN_FILENO);
		(void) dup2(log_fd, STDOUT_FILENO);
		(void) dup2(log_fd, STDERR_FILENO);
#ifdef SYS_close_range
		(void) syscall(SYS_close_range, 3, ~0U, 0);
#endif
		execv(program, argv);
		_exit(127);
	}
	int fork_errno = errno;
	close(log_fd);
	if (null_fd >= 0)
		close(null_fd);
	if (pid < 0) {
		SetError(errbuf, errlen, "could not fork pg_basebackup: %s", strerror(fork_errno));
		return false;
	}
	(void) setpgid(pid, pid); /* also here: CloneCancel may signal the group before the child ran setpgid */
	clone_pid = pid;
	last_status = CloneStatus::Running;
	last_error[0] = '\0';
	ereport(LOG, (errmsg("pg_autopilot: cloning into \"%s\" with pg_basebackup (PID %d), output in \"%s\"", p.clone,
						 (int) pid, p.log)));
	return true;
}

/*
 * ClonePoll — see clone.hpp.  Never blocks.  Done and Failed stay reported
 * (Failed with the same errbuf text) until the next CloneStart or CloneCancel.
 */
CloneStatus
ClonePoll(char *errbuf, size_t errlen)
{
	if (clone_pid > 0) {
		int status = 0;
		pid_t r = waitpid(clone_pid, &status, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR))
			return CloneStatus::Running;
		ClonePaths p;
		char how[96];
		if (r < 0)
			snprintf(how, sizeof(how), "lost track of it: %s", strerror(errno));
		else
			Describe(status, how, sizeof(how));
		clone_pid = 0;
		if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			last_status = CloneStatus::Done;
			ereport(LOG, (errmsg("pg_autopilot: pg_basebackup finished")));
		} else {
			last_status = CloneStatus::Failed;
			char tail[sizeof(last_error)] = "";
			if (GetPaths(&p, tail, sizeof(tail)))
				ReadLogTail(p.log, tail, sizeof(tail));
			if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127)
				SetError(last_error, sizeof(last_error), "pg_basebackup could not be executed (%s): %s", how, tail);
			else
				SetError(last_error, sizeof(last_error), "pg_basebackup failed (%s): %s", how, tail);
		}
	}
	if (last_status == CloneStatus::Failed)
		SetError(errbuf, errlen, "%s", last_error);
	return last_status;
}

/*
 * CloneCancel — see clone.hpp.  Terminates a running pg_basebackup (its
 * whole process group), reaps it (SIGKILL after kTermTimeoutMs) and removes
 * the partial clone.  A finished clone (Done) is left alone: the keeper may
 * have asked for it to be swapped in.  noexcept, raises nothing; usable from
 * exit callbacks.
 */
void
CloneCancel(void)
{
	bool was_running = clone_pid > 0;
	if (was_running) {
		int status;
		(void) kill(-clone_pid, SIGTERM);
		(void) kill(clone_pid, SIGTERM);
		if (!WaitChildren(clone_pid, kTermTimeoutMs, &status)) {
			(void) kill(-clone_pid, SIGKILL);
			(void) kill(clone_pid, SIGKILL);
			(void) WaitChildren(clone_pid, kTermTimeoutMs, &status);
		}
		clone_pid = 0;
	}
	if (was_running || last_status == CloneStatus::Failed) {
		ClonePaths p;
		char err[1024];
		if (!GetPaths(&p, err, sizeof(err)) || !RemoveCloneDir(p, err, sizeof(err)))
			ereport(LOG, (errmsg("pg_autopilot: could not remove the partial clone: %s", err)));
	}
	last_status = CloneStatus::Idle;
	last_error[0] = '\0';
}

/*
 * WaitChildren — see clone.hpp.  SIGCHLD is blocked meanwhile and waited for
 * with sigtimedwait instead of sleeping: a child that exits between waitpid
 * and sigtimedwait leaves SIGCHLD pending and the wait returns at once.  The
 * caller's signal mask is restored (a caller that blocked everything, like
 * the re-exec, keeps every other signal pending).
 */
bool
WaitChildren(pid_t pid, int timeout_ms, int *status) noexcept
{
	sigset_t chld, old_mask;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old_mask);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	bool reaped = false;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r > 0 && pid > 0) { /* the one child we wait for */
			reaped = true;
			break;
		}
		if (r > 0 || (r < 0 && errno == EINTR)) /* one of all children: look for more */
			continue;
		if (r < 0) {
			reaped = errno == ECHILD; /* nobody (left) to wait for */
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		long elapsed_ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (elapsed_ms >= timeout_ms)
			break;
		long left_ms = timeout_ms - elapsed_ms;
		struct timespec timeout = {left_ms / 1000, (left_ms % 1000) * 1000000};
		(void) sigtimedwait(&chld, nullptr, &timeout);
	}
	sigprocmask(SIG_SETMASK, &old_mask, nullptr);
	return reaped;
}
