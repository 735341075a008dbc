/*
 * src/shared/tests/conninfo_test.cpp — conninfo quoting round trips through
 * our parser and libpq's own PQconninfoParse, configuration value quoting,
 * name validation.
 */
#include <gtest/gtest.h>

#include <libpq-fe.h>

#include <map>
#include <string>

#include "conninfo.hpp"
#include "error.hpp"

using namespace autopilot::conninfo;
using autopilot::Error;

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

const std::vector<std::string> kNastyValues = {
	"",           "plain", "it's",      "back\\slash", "with space",        "'", "\\", "\\'", "''", "a = b",
	"trailing\\", " lead", "tab\there", "x'y\\z 'w'",  "\xc3\xa9t\xc3\xa9",
};

/* LibpqParse runs libpq's parser; returns keyword -> value for the keywords that are set. */
std::map<std::string, std::string>
LibpqParse(const std::string &conninfo, std::string *error)
{
	char *err = nullptr;
	PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), &err);
	std::map<std::string, std::string> out;
	if (opts == nullptr) {
		if (error != nullptr)
			*error = err ? err : "out of memory";
		PQfreemem(err);
		return out;
	}
	for (PQconninfoOption *o = opts; o->keyword != nullptr; o++)
		if (o->val != nullptr)
			out[o->keyword] = o->val;
	PQconninfoFree(opts);
	return out;
}

} // namespace

TEST(Conninfo, QuoteValueEscapesQuotesAndBackslashes)
{
	EXPECT_EQ(QuoteValue(""), "''");
	EXPECT_EQ(QuoteValue("abc"), "'abc'");
	EXPECT_EQ(QuoteValue("it's"), "'it\\'s'");
	EXPECT_EQ(QuoteValue("a\\b"), "'a\\\\b'");
	EXPECT_EQ(Build({{"host", "localhost"}, {"port", "5432"}}), "host='localhost' port='5432'");
	EXPECT_EQ(Build({}), "");
	EXPECT_THROW(Build({{"bad key", "x"}}), Error);
	EXPECT_THROW(Build({{"", "x"}}), Error);
}

TEST(Conninfo, RoundTripThroughOurParser)
{
	for (const auto &v : kNastyValues) {
		Params in = {{"host", "localhost"}, {"password", v}, {"application_name", v + "x"}};
		EXPECT_EQ(ParseParams(Build(in)), in) << "value [" << v << "] rendered as " << Build(in);
	}
}

TEST(Conninfo, RoundTripThroughLibpq)
{
	for (const auto &v : kNastyValues) {
		Params in = {{"host", "localhost"}, {"password", v}, {"application_name", v + "x"}};
		std::string text = Build(in);
		std::string error;
		auto parsed = LibpqParse(text, &error);
		ASSERT_TRUE(error.empty()) << text << ": " << error;
		EXPECT_EQ(parsed["host"], "localhost");
		EXPECT_EQ(parsed["password"], v) << text;
		EXPECT_EQ(parsed["application_name"], v + "x") << text;
	}
}

TEST(Conninfo, ParseParamsAgreesWithLibpqOnHandWrittenStrings)
{
	const std::vector<std::string> inputs = {
		"host=a port=5432",         "  host = a   port=  5432  ", "dbname=x\\ y user='a b'",
		"password=a\\'b",           "host='' dbname=''",          "application_name='it\\'s' options='-c x=1'",
		"host=a\tport=1\ndbname=d",
	};
	for (const auto &text : inputs) {
		std::string error;
		auto libpq = LibpqParse(text, &error);
		ASSERT_TRUE(error.empty()) << text << ": " << error;
		auto ours = ParseParams(text);
		ASSERT_FALSE(ours.empty()) << text;
		for (const auto &[k, v] : ours) {
			ASSERT_TRUE(libpq.count(k)) << text << ": libpq did not set " << k;
			EXPECT_EQ(libpq[k], v) << text << " keyword " << k;
		}
	}
	EXPECT_EQ(ParseParams(""), Params{});
	EXPECT_EQ(ParseParams("   "), Params{});
	EXPECT_EQ(ParseParams("dbname=x\\ y"), (Params{{"dbname", "x y"}}));
}

TEST(Conninfo, ParseParamsRejectsWhatLibpqRejects)
{
	const std::vector<std::string> bad = {"host", "host 'x'", "password='abc", "host=a port", "=x"};
	for (const auto &text : bad) {
		EXPECT_THROW(ParseParams(text), Error) << text;
		std::string error;
		LibpqParse(text, &error);
		EXPECT_FALSE(error.empty()) << "libpq accepted " << text;
	}
	try {
		ParseParams("password='abc");
		FAIL();
	} catch (const Error &e) {
		EXPECT_STREQ(e.sqlstate(), "22023");
		EXPECT_NE(e.detail().find("password"), std::string::npos) << e.detail();
	}
	try {
		ParseParams("postgres://localhost/db");
		FAIL();
	} catch (const Error &e) {
		EXPECT_STREQ(e.sqlstate(), "22023");
		EXPECT_NE(e.hint().find("keyword=value"), std::string::npos);
	}
	EXPECT_THROW(ParseParams("postgresql://localhost"), Error);
}

TEST(Conninfo, QuoteConfigValueDoublesQuotesAndBackslashes)
{
	EXPECT_EQ(QuoteConfigValue(""), "''");
	EXPECT_EQ(QuoteConfigValue("on"), "'on'");
	EXPECT_EQ(QuoteConfigValue("it's"), "'it''s'");
	EXPECT_EQ(QuoteConfigValue("a\\b"), "'a\\\\b'");
	EXPECT_EQ(QuoteConfigValue("host='x' password='it\\'s'"), "'host=''x'' password=''it\\\\''s'''");
	EXPECT_THROW(QuoteConfigValue("a\nb"), Error);
	EXPECT_THROW(QuoteConfigValue("a\rb"), Error);
	EXPECT_THROW(QuoteConfigValue(std::string("a\0b", 3)), Error);
}

TEST(Conninfo, ValidateName)
{
	EXPECT_NO_THROW(ValidateName("node-1.a_B", "node name"));
	EXPECT_NO_THROW(ValidateName(std::string(63, 'x'), "node name"));
	const std::vector<std::string> bad = {"", std::string(64, 'x'), "a'b", "a b", "a\nb", "\xc3\xa9", "a;b", "a\"b"};
	for (const auto &name : bad) {
		try {
			ValidateName(name, "formation name");
			FAIL() << "accepted [" << name << "]";
		} catch (const Error &e) {
			EXPECT_STREQ(e.sqlstate(), "22023");
			EXPECT_NE(std::string(e.what()).find("formation name"), std::string::npos) << e.what();
			EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "message must not echo a newline";
		}
	}
	try {
		ValidateName("ab'c", "node name");
		FAIL();
	} catch (const Error &e) {
		EXPECT_STREQ(e.what(), "invalid character \"'\" in node name at position 3");
	}
}
