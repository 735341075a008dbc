/*
 * src/shared/pg/guard.cpp — ereport side of the error boundary (PostgreSQL zone).
 *
 * CaptureCurrentException runs inside a catch block and touches no server
 * function; RaiseError/ReportWarning run after it and are the only places
 * here that call ereport.
 */
extern "C" {
#include "postgres.h"
#include "utils/elog.h"
}
#include "compat.hpp"

#include <cstring>

#include "guard.hpp"

namespace autopilot::pgx {

static void
CopyText(char *dst, size_t size, const char *src) noexcept
{
	if (src == nullptr)
		src = "";
	strncpy(dst, src, size - 1);
	dst[size - 1] = '\0';
}

void
ErrorBuffer::Set(const char *code, const char *msg, const char *det, const char *hnt) noexcept
{
	CopyText(sqlstate, sizeof(sqlstate), code);
	CopyText(message, sizeof(message), msg);
	CopyText(detail, sizeof(detail), det);
	CopyText(hint, sizeof(hint), hnt);
}

void
CaptureCurrentException(ErrorBuffer &err) noexcept
{
	try {
		throw;
	} catch (const autopilot::Error &e) {
		err.Set(e.sqlstate(), e.what(), e.detail().c_str(), e.hint().c_str());
	} catch (const std::bad_alloc &) {
		err.Set("53200", "out of memory in pg_autopilot", "", "");
	} catch (const std::exception &e) {
		err.Set(sqlstate::kInternalError, e.what(), "", "This is a bug in pg_autopilot: please report it.");
	} catch (...) {
		err.Set(sqlstate::kInternalError, "unknown C++ exception in pg_autopilot", "", "");
	}
}

static int
SqlstateCode(const char *s)
{
	return MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
}

void
RaiseError(const ErrorBuffer &err)
{
	ereport(ERROR,
			(errcode(SqlstateCode(err.sqlstate)), errmsg_internal("%s", err.message),
			 err.detail[0] ? errdetail_internal("%s", err.detail) : 0, err.hint[0] ? errhint("%s", err.hint) : 0));
	pg_unreachable();
}

void
ReportWarning(const ErrorBuffer &err)
{
	ereport(WARNING,
			(errcode(SqlstateCode(err.sqlstate)), errmsg_internal("%s", err.message),
			 err.detail[0] ? errdetail_internal("%s", err.detail) : 0, err.hint[0] ? errhint("%s", err.hint) : 0));
}

} // namespace autopilot::pgx
