/*
 * src/shared/hba.hpp — the keeper's managed block of pg_hba.conf (pure zone).
 *
 * When pg_autopilot.hba_method is set, a primary's keeper makes sure every
 * other node of its group may open replication connections (pg_basebackup,
 * the walreceiver) and database connections (pg_rewind --source-server) to
 * it.  The lines it owns carry a trailing "# pg_autopilot managed" comment
 * and form one block at the top of the file (pg_hba.conf is first-match, so
 * a later "reject" line of the operator cannot shadow them); every other
 * line of the file is kept byte for byte.  Rendering is pure text-to-text.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace autopilot::hba {

struct Peer {
	int64_t node_id = 0;
	std::string host; /* as registered: an IPv4/IPv6 literal or a host name */
};

/* kManagedTag ends every line the keeper owns. */
inline constexpr const char *kManagedTag = "# pg_autopilot managed";

/*
 * HbaAddress renders a host for the ADDRESS field: IPv4 literal -> a.b.c.d/32,
 * IPv6 literal -> x/128, host name -> as is.  Throws Error (22023) for
 * characters pg_hba.conf cannot hold unquoted (blanks, quotes, '#', ',').
 */
std::string HbaAddress(const std::string &host);

/* ValidateMethod accepts the methods a keeper may write; throws Error (22023) otherwise. */
void ValidateMethod(const std::string &method);

/*
 * MergeHba returns old_text with its managed block replaced by one
 * "host replication" and one "host all" line per peer for `user`, in node id
 * order.  An empty peer list removes the block.  Deterministic, so the
 * caller can compare with old_text and skip the write and the reload.
 */
std::string MergeHba(const std::string &old_text, const std::vector<Peer> &peers, const std::string &user,
					 const std::string &method);

} // namespace autopilot::hba
