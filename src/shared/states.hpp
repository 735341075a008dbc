/*
 * src/shared/states.hpp — node states generated from states.def (pure zone).
 *
 * No server headers.  NodeState values follow the declaration order of
 * states.def, which is also the order of the SQL enum pg_autopilot.node_state.
 */
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace autopilot::fsm {

enum class NodeState : uint8_t {
#define AUTOPILOT_STATE(name, label, doc) name,
#include "states.def"
#undef AUTOPILOT_STATE
};

struct StateInfo {
	NodeState state;
	const char *label;
	const char *doc;
};

inline constexpr std::array kStates = {
#define AUTOPILOT_STATE(name, label, doc) StateInfo{NodeState::name, label, doc},
#include "states.def"
#undef AUTOPILOT_STATE
};

inline constexpr std::size_t kStateCount = kStates.size();

/* StateName returns the SQL label of a state; never throws. */
constexpr const char *
StateName(NodeState s) noexcept
{
	return kStates[static_cast<std::size_t>(s)].label;
}

/* ParseState maps a SQL label back to its state; nullopt when unknown. */
std::optional<NodeState> ParseState(std::string_view label) noexcept;

/* States in which a node is a writable primary (single, wait_primary, primary, apply_settings). */
bool IsWritableState(NodeState s) noexcept;

} // namespace autopilot::fsm
