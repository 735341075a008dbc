/*
 * src/shared/tests/datadir_test.cpp — sibling paths, pristine check on fake
 * data directories, pg_control's system identifier, atomic files, the
 * pending-action file and postgresql.auto.conf rewriting.
 */
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.hpp"
#include "error.hpp"

using namespace autopilot::datadir;
using autopilot::Error;

namespace {

class TempDir : public ::testing::Test {
  protected:
	std::string root;

	void
	SetUp() override
	{
		char tmpl[] = "/tmp/autopilot-datadir-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
		root = tmpl;
	}

	void
	TearDown() override
	{
		std::string cmd = "rm -rf '" + root + "'";
		ASSERT_EQ(std::system(cmd.c_str()), 0);
	}

	void
	MkDir(const std::string &rel)
	{
		ASSERT_EQ(mkdir((root + "/" + rel).c_str(), 0700), 0) << rel << ": " << std::strerror(errno);
	}

	void
	Touch(const std::string &rel, const std::string &content = "")
	{
		int fd = open((root + "/" + rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		ASSERT_GE(fd, 0) << rel;
		ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
		close(fd);
	}

	/* A data directory as initdb of PostgreSQL 15 leaves it (the parts IsPristine looks at). */
	void
	MakeInitdbLayout()
	{
		MkDir("base");
		for (const char *db : {"1", "4", "5"}) {
			MkDir(std::string("base/") + db);
			for (const char *f :
				 {"112", "1247", "1247_fsm", "1247_vm", "2619.1", "PG_VERSION", "pg_filenode.map", "pg_internal.init"})
				Touch(std::string("base/") + db + "/" + f);
		}
		MkDir("global");
		MkDir("pg_tblspc");
		Touch("PG_VERSION", "15\n");
	}
};

} // namespace

TEST(DatadirPaths, SiblingsOfPgdata)
{
	EXPECT_EQ(StateDir("/srv/pg/data"), "/srv/pg/data.autopilot");
	EXPECT_EQ(StateDir("/srv/pg/data/"), "/srv/pg/data.autopilot") << "never inside PGDATA";
	EXPECT_EQ(CloneDir("/srv/pg/data//"), "/srv/pg/data.clone");
	EXPECT_EQ(PendingFile("/srv/pg/data"), "/srv/pg/data.autopilot/pending");
	EXPECT_EQ(RestartMarker("/srv/pg/data"), "/srv/pg/data.autopilot/restart");
	EXPECT_EQ(StateFile("/srv/pg/data"), "/srv/pg/data.autopilot/state");
}

using Pristine = TempDir;

TEST_F(Pristine, FreshInitdbIsPristine)
{
	MakeInitdbLayout();
	std::string why = "unset";
	EXPECT_TRUE(IsPristine(root, &why)) << why;
	EXPECT_EQ(why, "");
	MkDir("base/pgsql_tmp");
	EXPECT_TRUE(IsPristine(root, &why)) << why;
	EXPECT_TRUE(IsPristine(root, nullptr));
}

TEST_F(Pristine, UserDatabaseIsNotPristine)
{
	MakeInitdbLayout();
	MkDir("base/16384");
	std::string why;
	EXPECT_FALSE(IsPristine(root, &why));
	EXPECT_NE(why.find("base/16384"), std::string::npos) << why;
}

TEST_F(Pristine, UserRelationIsNotPristine)
{
	for (const char *file : {"16384", "16385_fsm", "20000.1", "99999999999999"}) {
		MakeInitdbLayout();
		Touch(std::string("base/5/") + file);
		std::string why;
		EXPECT_FALSE(IsPristine(root, &why)) << file;
		EXPECT_NE(why.find(file), std::string::npos) << why;
		ASSERT_EQ(std::system(("rm -rf '" + root + "'/*").c_str()), 0);
	}
}

TEST_F(Pristine, SystemRelationBelowTheLimitIsPristine)
{
	MakeInitdbLayout();
	Touch("base/5/16383");
	Touch("base/1/16383_vm");
	std::string why;
	EXPECT_TRUE(IsPristine(root, &why)) << why;
}

TEST_F(Pristine, TablespaceIsNotPristine)
{
	MakeInitdbLayout();
	ASSERT_EQ(symlink("/tmp", (root + "/pg_tblspc/16400").c_str()), 0);
	std::string why;
	EXPECT_FALSE(IsPristine(root, &why));
	EXPECT_NE(why.find("16400"), std::string::npos) << why;
}

TEST_F(Pristine, MissingOrStrangeBaseIsNotPristine)
{
	std::string why;
	EXPECT_FALSE(IsPristine(root, &why)) << "no base directory";
	EXPECT_NE(why.find("base"), std::string::npos) << why;
	EXPECT_FALSE(IsPristine(root + "/does-not-exist", &why));
	MakeInitdbLayout();
	MkDir("base/mydb");
	EXPECT_FALSE(IsPristine(root, &why));
	EXPECT_NE(why.find("mydb"), std::string::npos) << why;
}

using SystemIdentifier = TempDir;

TEST_F(SystemIdentifier, ReadsFirstEightBytesOfPgControl)
{
	EXPECT_FALSE(ReadSystemIdentifier(root).has_value()) << "no global/pg_control";
	MkDir("global");
	Touch("global/pg_control", "1234");
	EXPECT_FALSE(ReadSystemIdentifier(root).has_value()) << "truncated pg_control";

	uint64_t id = 7312345678901234567ull;
	std::string bytes(reinterpret_cast<const char *>(&id), sizeof(id));
	bytes += std::string(8192 - sizeof(id), '\x55');
	Touch("global/pg_control", bytes);
	auto read_back = ReadSystemIdentifier(root);
	ASSERT_TRUE(read_back.has_value());
	EXPECT_EQ(*read_back, id);
}

using AtomicFile = TempDir;

TEST_F(AtomicFile, WriteReplaceRead)
{
	std::string path = root + "/state";
	EXPECT_FALSE(ReadSmallFile(path).has_value());
	WriteFileAtomic(path, "single\n");
	EXPECT_EQ(ReadSmallFile(path), std::string("single\n"));
	WriteFileAtomic(path, "wait_primary\n");
	EXPECT_EQ(ReadSmallFile(path), std::string("wait_primary\n"));
	EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0) << "no temporary file left behind";
	struct stat st;
	ASSERT_EQ(stat(path.c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 0777, 0600u);
	WriteFileAtomic(path, "");
	EXPECT_EQ(ReadSmallFile(path), std::string(""));
}

TEST_F(AtomicFile, FailureThrowsIoErrorNamingThePath)
{
	std::string path = root + "/missing-dir/state";
	try {
		WriteFileAtomic(path, "x");
		FAIL();
	} catch (const Error &e) {
		EXPECT_STREQ(e.sqlstate(), "58030");
		EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
		EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
	}
}

TEST(PendingActionFile, RoundTrip)
{
	PendingAction a;
	a.kind = "clone-swap";
	a.expected_system_identifier = 18446744073709551615ull;
	a.settings = {{"primary_conninfo", "host='127.0.0.1' port=5432 options='-c a=b'"},
				  {"primary_slot_name", "pg_autopilot_node_2"},
				  {"empty", ""}};
	std::string text = a.Serialize();
	EXPECT_EQ(text.rfind("kind=clone-swap\nsystem_identifier=18446744073709551615\n", 0), 0u) << text;
	PendingAction b = PendingAction::Parse(text);
	EXPECT_EQ(b.kind, a.kind);
	EXPECT_EQ(b.expected_system_identifier, a.expected_system_identifier);
	EXPECT_EQ(b.settings, a.settings);

	PendingAction c = PendingAction::Parse("kind=clone-swap\n");
	EXPECT_EQ(c.expected_system_identifier, 0u);
	EXPECT_TRUE(c.settings.empty());
}

TEST(PendingActionFile, RewindAndRecloneRoundTrip)
{
	PendingAction a;
	a.kind = "rewind";
	a.source = "host='127.0.0.1' port=5433 dbname=postgres";
	a.new_state = "demoted";
	a.settings = {{"primary_conninfo", "host='127.0.0.1' port=5433"}, {"synchronous_standby_names", ""}};
	PendingAction b = PendingAction::Parse(a.Serialize());
	EXPECT_EQ(b.kind, "rewind");
	EXPECT_EQ(b.source, a.source);
	EXPECT_EQ(b.new_state, "demoted");
	EXPECT_FALSE(b.reclone);
	EXPECT_EQ(b.settings, a.settings);

	PendingAction c;
	c.kind = "clone-swap";
	c.expected_system_identifier = 7;
	c.reclone = true;
	PendingAction d = PendingAction::Parse(c.Serialize());
	EXPECT_TRUE(d.reclone);
	EXPECT_TRUE(d.source.empty());
	EXPECT_TRUE(d.new_state.empty());
	EXPECT_THROW(PendingAction::Parse("kind=clone-swap\nreclone=2\n"), Error);
	EXPECT_EQ(FencedFile("/d/pg"), "/d/pg.autopilot/fenced");
	EXPECT_EQ(NeedsRecloneFile("/d/pg/"), "/d/pg.autopilot/needs_reclone");
}

TEST(PendingActionFile, SerializeRejectsLineBreaks)
{
	PendingAction a;
	a.kind = "clone-swap";
	a.settings = {{"primary_conninfo", "a\nkind=evil"}};
	EXPECT_THROW(a.Serialize(), Error);
	a.settings = {{"bad=name", "x"}};
	EXPECT_THROW(a.Serialize(), Error);
}

TEST(PendingActionFile, MalformedInputNamesTheLine)
{
	const std::vector<std::pair<std::string, std::string>> cases = {
		{"kind=clone-swap\nbogus\n", "bogus"},
		{"kind=clone-swap\ncolor=blue\n", "color=blue"},
		{"kind=clone-swap\nsystem_identifier=12x\n", "system_identifier=12x"},
		{"kind=clone-swap\nsystem_identifier=-1\n", "system_identifier=-1"},
		{"kind=clone-swap\nsystem_identifier=99999999999999999999\n", "system_identifier=99999999999999999999"},
		{"kind=clone-swap\nsetting=novalue\n", "setting=novalue"},
		{"kind=clone-swap\nsetting==x\n", "setting==x"},
		{"kind=a\nkind=b\n", "kind=b"},
	};
	for (const auto &[text, line] : cases) {
		try {
			PendingAction::Parse(text);
			FAIL() << "accepted " << text;
		} catch (const Error &e) {
			EXPECT_STREQ(e.sqlstate(), "XX001");
			EXPECT_NE(std::string(e.what()).find(line), std::string::npos) << e.what();
		}
	}
	EXPECT_THROW(PendingAction::Parse(""), Error) << "no kind";
	EXPECT_THROW(PendingAction::Parse("system_identifier=1\n"), Error) << "no kind";
}

namespace {
const std::string kHeader =
	"# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n";
}

TEST(AutoConf, AppendToEmptyAndReplace)
{
	std::string text = SetAutoConfSettings("", {{"primary_slot_name", "pg_autopilot_node_2"}});
	EXPECT_EQ(text, kHeader + "primary_slot_name = 'pg_autopilot_node_2'\n");

	text = SetAutoConfSettings(kHeader + "port = '5433'\nprimary_slot_name = 'old'\nwork_mem = '4MB'\n",
							   {{"primary_slot_name", "new"}, {"synchronous_standby_names", "ANY 1 (a, b)"}});
	EXPECT_EQ(text, kHeader + "port = '5433'\nprimary_slot_name = 'new'\nwork_mem = '4MB'\n"
							  "synchronous_standby_names = 'ANY 1 (a, b)'\n");
}

TEST(AutoConf, RemoveAndCaseInsensitiveNames)
{
	std::string old = kHeader + "port = '5433'\nPrimary_Conninfo = 'host=x'\nprimary_conninfo = 'host=y'\n";
	EXPECT_EQ(SetAutoConfSettings(old, {{"primary_conninfo", ""}}), kHeader + "port = '5433'\n");
	EXPECT_EQ(SetAutoConfSettings(old, {{"primary_conninfo", "host=z"}}),
			  kHeader + "port = '5433'\nprimary_conninfo = 'host=z'\n")
		<< "duplicates collapse into one line";
	EXPECT_EQ(SetAutoConfSettings(old, {{"not_there", ""}}), kHeader + "port = '5433'\nPrimary_Conninfo = 'host=x'\n"
																	   "primary_conninfo = 'host=y'\n");
}

TEST(AutoConf, QuotingAndParsingOfExistingValues)
{
	std::string old = "# Do not edit this file manually!\n"
					  "# It will be overwritten by the ALTER SYSTEM command.\n"
					  "a = 'it''s \\\\ here # not a comment'\n"
					  "b='x'   # trailing comment\n"
					  "c 5\n"
					  "custom.setting = on\n"
					  "\n"
					  "# a remark\n";
	std::string text = SetAutoConfSettings(old, {{"primary_conninfo", "host='127.0.0.1' password='it\\'s'"}});
	EXPECT_EQ(text, kHeader + "a = 'it''s \\\\ here # not a comment'\nb='x'   # trailing comment\nc 5\n"
							  "custom.setting = on\n# a remark\n"
							  "primary_conninfo = 'host=''127.0.0.1'' password=''it\\\\''s'''\n");
	EXPECT_EQ(SetAutoConfSettings(text, {{"custom.setting", "off"}, {"a", ""}}),
			  kHeader + "b='x'   # trailing comment\nc 5\ncustom.setting = 'off'\n# a remark\n"
						"primary_conninfo = 'host=''127.0.0.1'' password=''it\\\\''s'''\n");
}

TEST(AutoConf, RejectsWhatCannotBeStored)
{
	try {
		SetAutoConfSettings("", {{"primary_conninfo", "host=x\nport=1"}});
		FAIL();
	} catch (const Error &e) {
		EXPECT_STREQ(e.sqlstate(), "22023");
	}
	EXPECT_THROW(SetAutoConfSettings("", {{"bad name", "x"}}), Error);
	EXPECT_THROW(SetAutoConfSettings("", {{"", "x"}}), Error);
	EXPECT_THROW(SetAutoConfSettings("", {{"x=y", "1"}}), Error);
	try {
		SetAutoConfSettings("port = '5433\n", {});
		FAIL();
	} catch (const Error &e) {
		EXPECT_STREQ(e.sqlstate(), "F0000");
		EXPECT_NE(std::string(e.what()).find("line 1"), std::string::npos) << e.what();
	}
	EXPECT_THROW(SetAutoConfSettings("port = '1' junk\n", {}), Error);
	EXPECT_THROW(SetAutoConfSettings("= '1'\n", {}), Error);
	EXPECT_THROW(SetAutoConfSettings("port =\n", {}), Error);
}
