/*
 * src/shared/tests/states_test.cpp — the generated state list.
 */
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "states.hpp"

using autopilot::fsm::kStates;
using autopilot::fsm::NodeState;
using autopilot::fsm::ParseState;
using autopilot::fsm::StateName;

TEST(States, LabelsRoundTripAndAreUnique)
{
	std::set<std::string> seen;
	for (std::size_t i = 0; i < kStates.size(); i++) {
		EXPECT_EQ(static_cast<std::size_t>(kStates[i].state), i) << "states.def order is the enum order";
		EXPECT_TRUE(seen.insert(kStates[i].label).second) << "duplicate label " << kStates[i].label;
		auto parsed = ParseState(kStates[i].label);
		ASSERT_TRUE(parsed.has_value());
		EXPECT_EQ(*parsed, kStates[i].state);
	}
	EXPECT_EQ(kStates.size(), 20u) << "the DESIGN.md §3 vocabulary has 20 states";
}

TEST(States, UnknownLabelsAreRejected)
{
	EXPECT_FALSE(ParseState("").has_value());
	EXPECT_FALSE(ParseState("Primary").has_value());
	EXPECT_FALSE(ParseState("primary ").has_value());
	EXPECT_STREQ(StateName(NodeState::WaitPrimary), "wait_primary");
}
