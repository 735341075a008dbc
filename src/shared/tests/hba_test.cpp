/*
 * src/shared/tests/hba_test.cpp — the keeper's managed pg_hba.conf block.
 */
#include <gtest/gtest.h>

#include "error.hpp"
#include "hba.hpp"

using namespace autopilot::hba;

TEST(Hba, AddressesGetTheRightMask)
{
	EXPECT_EQ(HbaAddress("127.0.0.1"), "127.0.0.1/32");
	EXPECT_EQ(HbaAddress("::1"), "::1/128");
	EXPECT_EQ(HbaAddress("db2.example"), "db2.example");
	EXPECT_THROW(HbaAddress("a b"), autopilot::Error);
	EXPECT_THROW(HbaAddress("x#y"), autopilot::Error);
	EXPECT_THROW(HbaAddress(""), autopilot::Error);
}

TEST(Hba, BlockGoesFirstAndOperatorLinesStay)
{
	const std::string old_text = "# comment\nlocal all all peer\nhost all all 0.0.0.0/0 reject\n";
	std::string merged = MergeHba(old_text, {{3, "10.0.0.3"}, {2, "127.0.0.2"}}, "postgres", "scram-sha-256");
	EXPECT_EQ(merged, "host replication postgres 127.0.0.2/32 scram-sha-256 # pg_autopilot managed (node 2)\n"
					  "host all postgres 127.0.0.2/32 scram-sha-256 # pg_autopilot managed (node 2)\n"
					  "host replication postgres 10.0.0.3/32 scram-sha-256 # pg_autopilot managed (node 3)\n"
					  "host all postgres 10.0.0.3/32 scram-sha-256 # pg_autopilot managed (node 3)\n" +
						  old_text);
}

TEST(Hba, MergeIsIdempotentAndRemovesDroppedPeers)
{
	const std::string old_text = "local all all trust\n";
	std::string once = MergeHba(old_text, {{2, "127.0.0.2"}}, "postgres", "trust");
	EXPECT_EQ(MergeHba(once, {{2, "127.0.0.2"}}, "postgres", "trust"), once);
	EXPECT_EQ(MergeHba(once, {}, "postgres", "trust"), old_text);
	/* An operator line that merely mentions us in the middle is not ours. */
	std::string mention = "host all all 127.0.0.1/32 trust # see pg_autopilot managed docs, line kept\n";
	EXPECT_EQ(MergeHba(mention, {}, "postgres", "trust"), mention);
}

TEST(Hba, RejectsUnsupportedMethodsAndUsers)
{
	EXPECT_THROW(MergeHba("", {{2, "127.0.0.2"}}, "postgres", "ident"), autopilot::Error);
	EXPECT_THROW(MergeHba("", {{2, "127.0.0.2"}}, "bad user", "trust"), autopilot::Error);
	EXPECT_NO_THROW(ValidateMethod("cert"));
}
