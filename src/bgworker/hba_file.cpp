/*
 * src/bgworker/hba_file.cpp — the primary's keeper lets its group's other nodes in
 * through pg_hba.conf (PostgreSQL zone, keeper process).
 *
 * Off unless pg_autopilot.hba_method is set: authentication is the DBA's
 * decision, and the loopback demo's initdb defaults already allow everything.
 * When set, the keeper asks the monitor for the group's other nodes, renders
 * the managed block (src/shared/hba.cpp, pure), and if the file changes
 * rewrites it through a .tmp file and durable_rename and sends SIGHUP to the
 * postmaster, which reloads pg_hba.conf.  Peers are re-read only when the
 * monitor's list of standby slots changes (a node joined or left), so the
 * steady state costs nothing.
 */
extern "C" {
#include "postgres.h"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/fd.h"
#include "utils/guc.h"
}
#include "pg/compat.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "datadir.hpp"
#include "hba_file.hpp"
#include "hba.hpp"
#include "keeper.hpp"
#include "pg/guard.hpp"
#include "pg/pq_conn.hpp"

namespace autopilot::node {

char *guc_hba_method = nullptr;

/* Last standby_slots value for which the block was made right; "" = never. */
static char hba_done_for[2048];

static bool
CheckHbaMethod(char **newval, void **extra, GucSource source)
{
	if (*newval == nullptr || (*newval)[0] == '\0')
		return true;
	bool ok = autopilot::pgx::CallCppNoThrow([&] { autopilot::hba::ValidateMethod(*newval); });
	if (!ok)
		GUC_check_errdetail("Use trust, scram-sha-256, md5, password or cert, or '' to leave pg_hba.conf alone.");
	return ok;
}

static void
AssignHbaMethod(const char *newval, void *extra)
{
	/* A new method means new lines: render again at the next chance. */
	hba_done_for[0] = '\0';
}

void
DefineHbaGucs(void)
{
	DefineCustomStringVariable("pg_autopilot.hba_method",
							   "Authentication method of the pg_hba.conf lines the primary's keeper adds for the "
							   "other nodes of its group.",
							   "Empty (the default) leaves pg_hba.conf to the operator.", &guc_hba_method, "",
							   PGC_SIGHUP, 0, CheckHbaMethod, AssignHbaMethod, nullptr);
}

/* HbaUser is the role the other nodes connect as: replication_user, else this OS user. */
static const char *
HbaUser(void)
{
	if (guc_replication_user != nullptr && guc_replication_user[0] != '\0')
		return guc_replication_user;
	struct passwd *pw = getpwuid(geteuid());
	return pw != nullptr ? pw->pw_name : "postgres";
}

/* ReadWholeFile returns the palloc'd contents of path, or nullptr (errno set). */
static char *
ReadWholeFile(const char *path)
{
	FILE *f = AllocateFile(path, "r");
	if (f == nullptr)
		return nullptr;
	StringInfoData buf;
	initStringInfo(&buf);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		appendBinaryStringInfo(&buf, chunk, (int) n);
	FreeFile(f);
	return buf.data;
}

static bool
WriteHbaFile(const char *path, const char *content)
{
	char tmp[MAXPGPATH];
	snprintf(tmp, sizeof(tmp), "%s.pg_autopilot.tmp", path);
	FILE *f = AllocateFile(tmp, "w");
	if (f == nullptr)
		return false;
	size_t len = strlen(content);
	bool ok = fwrite(content, 1, len, f) == len && fflush(f) == 0 && pg_fsync(fileno(f)) == 0;
	if (FreeFile(f) != 0)
		ok = false;
	if (!ok || durable_rename(tmp, path, LOG) != 0) {
		unlink(tmp);
		return false;
	}
	return true;
}

/*
 * EnsureHba makes the managed block match the group's other nodes.  Returns
 * false with errbuf set when the monitor could not be asked or the file not
 * written (the caller retries next tick).  Never raises ERROR.
 */
bool
EnsureHba(PGconn *monitor, int64_t node_id, int32_t group_id, const char *standby_slots, uint32 wait_event,
		  char *errbuf, size_t errlen)
{
	if (guc_hba_method == nullptr || guc_hba_method[0] == '\0')
		return true;
	if (strcmp(hba_done_for, standby_slots) == 0 && hba_done_for[0] != '\0')
		return true;

	char group_text[16], node_text[24];
	snprintf(group_text, sizeof(group_text), "%d", group_id);
	snprintf(node_text, sizeof(node_text), "%lld", (long long) node_id);
	const char *params[] = {guc_formation, group_text, node_text};
	PGresult *res = autopilot::pgx::PqExec(monitor,
										   "SELECT node_id, host FROM pg_autopilot.show_state($1) "
										   "WHERE group_id = $2::int AND node_id <> $3::bigint ORDER BY node_id",
										   3, params, guc_monitor_timeout_ms, wait_event, errbuf, errlen);
	if (res == nullptr)
		return false;

	int rows = PQntuples(res);
	int64_t *ids = static_cast<int64_t *>(palloc0(sizeof(int64_t) * (rows + 1)));
	char **hosts = static_cast<char **>(palloc0(sizeof(char *) * (rows + 1)));
	for (int i = 0; i < rows; i++) {
		ids[i] = strtoll(PQgetvalue(res, i, 0), nullptr, 10);
		hosts[i] = pstrdup(PQgetvalue(res, i, 1));
	}
	PQclear(res);

	char *old_text = ReadWholeFile(HbaFileName);
	if (old_text == nullptr) {
		snprintf(errbuf, errlen, "could not read \"%s\": %m", HbaFileName);
		return false;
	}

	/* Render in the pure zone; copy the result out before leaving the lambda. */
	char *new_text = nullptr;
	size_t new_len = 0;
	const char *user = HbaUser();
	std::string *rendered = nullptr;
	bool ok = autopilot::pgx::CallCppNoThrow([&] {
		std::vector<autopilot::hba::Peer> peers;
		for (int i = 0; i < rows; i++)
			peers.push_back({ids[i], hosts[i]});
		rendered = new std::string(autopilot::hba::MergeHba(old_text, peers, user, guc_hba_method));
	});
	if (!ok || rendered == nullptr) {
		snprintf(errbuf, errlen, "could not render the pg_hba.conf lines for the other nodes (see the warning above)");
		return false;
	}
	new_len = rendered->size();
	new_text = static_cast<char *>(palloc(new_len + 1));
	memcpy(new_text, rendered->data(), new_len + 1);
	delete rendered; /* std::string's destructor is noexcept */

	if (strcmp(new_text, old_text) != 0) {
		if (!WriteHbaFile(HbaFileName, new_text)) {
			snprintf(errbuf, errlen, "could not rewrite \"%s\": %m", HbaFileName);
			return false;
		}
		ereport(LOG, (errmsg("pg_autopilot: pg_hba.conf now admits the %d other node(s) of group %d (method %s)", rows,
							 group_id, guc_hba_method)));
		if (kill(PostmasterPid, SIGHUP) != 0) {
			snprintf(errbuf, errlen, "could not signal the postmaster to reload pg_hba.conf: %m");
			return false;
		}
	}
	strlcpy(hba_done_for, standby_slots, sizeof(hba_done_for));
	return true;
}

} // namespace autopilot::node
