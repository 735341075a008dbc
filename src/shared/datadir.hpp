/*
 * src/shared/datadir.hpp — facts about data directories and the keeper's
 * files beside them, read with plain file I/O (pure zone; usable from the
 * postmaster's pre-start hook, where no shared memory exists yet).
 *
 * The keeper keeps everything that must survive a clone or a rewind OUTSIDE
 * PGDATA, in sibling paths of the data directory:
 *   <PGDATA>.autopilot/         state directory (created 0700)
 *       state                   keeper's current state, one label (atomic rename)
 *       pending                 a pending pre-start action (see PendingAction)
 *       restart                 one-shot re-exec marker, written right before SIGINT
 *       fenced                  the login fence is up (survives crash restarts; keeper.cpp)
 *       needs_reclone           a pg_rewind failed: the node must be re-cloned before it serves
 *       rewind.log              output of the last pg_rewind run by the pre-start hook
 *       rewind-conf/            node-local configuration saved around a pg_rewind
 *   <PGDATA>.clone              pg_basebackup target while cloning
 *   <PGDATA>.old-<unix time>    the data directory a clone replaced
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace autopilot::datadir {

std::string StateDir(const std::string &pgdata);    /* <PGDATA>.autopilot */
std::string CloneDir(const std::string &pgdata);    /* <PGDATA>.clone */
std::string PendingFile(const std::string &pgdata); /* <PGDATA>.autopilot/pending */
std::string RestartMarker(const std::string &pgdata);
std::string StateFile(const std::string &pgdata);
std::string FencedFile(const std::string &pgdata);       /* <PGDATA>.autopilot/fenced */
std::string NeedsRecloneFile(const std::string &pgdata); /* <PGDATA>.autopilot/needs_reclone */

/* Name of the marker file a clone carries inside its data directory from the exchange until the swap is finished. */
constexpr const char *kCloneSwapMarker = "autopilot_clone_swap";

/* CopyPath copies a path into a fixed buffer (MAXPGPATH-sized in the callers); throws Error (22023) when it does not
 * fit. */
void CopyPath(char *dst, size_t size, const std::string &src);

/* ReadSystemIdentifier reads the first 8 bytes of <dir>/global/pg_control; nullopt if unreadable. */
std::optional<uint64_t> ReadSystemIdentifier(const std::string &dir) noexcept;

/*
 * IsPristine tells whether a data directory holds nothing but what initdb
 * made: only the template0/template1/postgres databases under base/, no
 * relation file numbered >= 16384 (FirstNormalObjectId) in any of them, and
 * no tablespace link.  Such a node may be overwritten by a clone; anything
 * else is somebody's data (DESIGN.md §6.4).  `why` receives the first reason
 * it is not pristine.
 */
bool IsPristine(const std::string &dir, std::string *why);

/* Atomic small-file helpers: write to <path>.tmp, fsync, rename, fsync dir. Throw Error on failure. */
void WriteFileAtomic(const std::string &path, const std::string &content);
std::optional<std::string> ReadSmallFile(const std::string &path);

/*
 * A pre-start action, stored as "key=value" lines in the pending file.
 * kind "clone-swap": swap <PGDATA>.clone in for PGDATA, keep the node's own
 * postgresql.conf, pg_hba.conf, pg_ident.conf and postgresql.auto.conf, set
 * the listed settings in postgresql.auto.conf, create standby.signal.  With
 * `reclone` the clone has the same system identifier as PGDATA (a former
 * member whose history diverged is re-cloned, DESIGN.md §6.4).
 * kind "rewind": run pg_rewind --source-server=`source` on PGDATA (the
 * server was shut down cleanly), keeping the node-local configuration files,
 * then set the settings and create standby.signal.
 * Both write `new_state` (when not empty) into the keeper's state file once
 * they have succeeded: the action the keeper requested is then done.
 */
struct PendingAction {
	std::string kind;                                          /* "clone-swap" or "rewind" */
	uint64_t expected_system_identifier = 0;                   /* the clone's system identifier */
	std::vector<std::pair<std::string, std::string>> settings; /* name, value for postgresql.auto.conf */
	std::string source;                                        /* rewind: libpq conninfo of the source server */
	std::string new_state;                                     /* state label to persist on success ("" none) */
	bool reclone = false;                                      /* clone-swap of the same system */

	std::string Serialize() const;
	static PendingAction Parse(const std::string &text); /* throws Error (XX001) on a malformed file */
};

/*
 * SetAutoConfSettings rewrites the text of a postgresql.auto.conf: every
 * `name` in `settings` replaces its old line (or is appended); an empty value
 * removes the setting.  Keeps the header comment ALTER SYSTEM writes.  Pure
 * text-to-text; throws Error (22023) for values that cannot be stored.
 */
std::string SetAutoConfSettings(const std::string &old_text,
								const std::vector<std::pair<std::string, std::string>> &settings);

} // namespace autopilot::datadir
