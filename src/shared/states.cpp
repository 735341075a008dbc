/*
 * src/shared/states.cpp — label lookup for the generated state list (pure zone).
 */
#include "states.hpp"

namespace autopilot::fsm {

std::optional<NodeState>
ParseState(std::string_view label) noexcept
{
	for (const auto &info : kStates)
		if (label == info.label)
			return info.state;
	return std::nullopt;
}

bool
IsWritableState(NodeState s) noexcept
{
	switch (s) {
	case NodeState::Single:
	case NodeState::WaitPrimary:
	case NodeState::Primary:
	case NodeState::ApplySettings:
		return true;
	default:
		return false;
	}
}

} // namespace autopilot::fsm
