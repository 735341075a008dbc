/*
 * src/shared/tests/lsn_test.cpp — LSN text form and lag arithmetic.
 */
#include <gtest/gtest.h>

#include <initializer_list>

#include "lsn.hpp"

using namespace autopilot::lsn;

TEST(Lsn, ParsesWhatPgLsnPrints)
{
	EXPECT_EQ(ParseLsn("0/0"), 0u);
	EXPECT_EQ(ParseLsn("0/16B3748"), 0x16B3748u);
	EXPECT_EQ(ParseLsn("1/0"), 1ull << 32);
	EXPECT_EQ(ParseLsn("a/bc"), (0xAull << 32) | 0xBC);
	EXPECT_EQ(ParseLsn("FFFFFFFF/FFFFFFFF"), UINT64_MAX);
	EXPECT_EQ(ParseLsn("00000001/00000002"), (1ull << 32) | 2);
}

TEST(Lsn, RejectsBadInput)
{
	for (const char *bad : {"", "1", "/", "1/", "/1", "G/0", "0/G", "1/2/3", "123456789/0", "0/123456789", " 0/1",
							"0/1 ", "0x1/2", "-1/2", "1 /2", "1/ 2"})
		EXPECT_FALSE(ParseLsn(bad).has_value()) << "[" << bad << "]";
}

TEST(Lsn, FormatsUpperCaseAndRoundTrips)
{
	EXPECT_EQ(FormatLsn(0), "0/0");
	EXPECT_EQ(FormatLsn(0x16B3748), "0/16B3748");
	EXPECT_EQ(FormatLsn((0xABull << 32) | 0xCDEF), "AB/CDEF");
	EXPECT_EQ(FormatLsn(UINT64_MAX), "FFFFFFFF/FFFFFFFF");
	for (uint64_t v : std::initializer_list<uint64_t>{0, 1, 0xFFFFFFFF, 0x100000000, 0x123456789ABCDEF, UINT64_MAX})
		EXPECT_EQ(ParseLsn(FormatLsn(v)), v);
}

TEST(Lsn, LagBytes)
{
	EXPECT_EQ(LagBytes(100, 40), 60u);
	EXPECT_EQ(LagBytes(40, 100), 0u);
	EXPECT_EQ(LagBytes(7, 7), 0u);
	static_assert(LagBytes(UINT64_MAX, 0) == UINT64_MAX);
}
