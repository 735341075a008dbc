/*
 * src/shared/pg/guard.hpp — the C++/PostgreSQL error boundary (PostgreSQL zone).
 *
 * Every entry point PostgreSQL calls reaches pure C++ only through CallCpp:
 *
 *     CallCpp([&] { result = autopilot::fsm::Something(args); });
 *
 * CallCpp catches every exception, copies SQLSTATE, message, detail and hint
 * into a plain buffer on its own frame, and raises ereport(ERROR) only after
 * the catch scope has ended, so no C++ destructor is skipped by the longjmp and
 * no exception ever crosses a C frame (an escaping exception aborts the
 * backend and crash-restarts the whole cluster).
 *
 * The lambda must not call anything that can ereport: it is pure code.  What
 * it hands back must be trivially destructible or live in palloc'd memory.
 *
 * CallCppNoThrow is the variant for callbacks in which ERROR is forbidden
 * (exit callbacks, signal-adjacent code): it reports at WARNING and returns
 * false.
 */
#pragma once

#include <exception>
#include <new>

#include "../error.hpp"

namespace autopilot::pgx {

/* Plain-old-data copy of an error, safe to keep across a longjmp. */
struct ErrorBuffer {
	char sqlstate[6];
	char message[1024];
	char detail[1024];
	char hint[512];

	void Set(const char *code, const char *msg, const char *det, const char *hnt) noexcept;
};

/* RaiseError ereports ERROR from an ErrorBuffer; never returns. */
[[noreturn]] void RaiseError(const ErrorBuffer &err);

/* ReportWarning logs an ErrorBuffer at WARNING; returns normally. */
void ReportWarning(const ErrorBuffer &err);

/* CaptureCurrentException fills err from the exception being handled. */
void CaptureCurrentException(ErrorBuffer &err) noexcept;

template <typename Fn>
inline void
CallCpp(Fn &&fn)
{
	ErrorBuffer err;
	bool failed = false;
	try {
		fn();
	} catch (...) {
		CaptureCurrentException(err);
		failed = true;
	}
	/* The catch scope has ended: the exception object is gone. */
	if (failed)
		RaiseError(err);
}

/*
 * TryCpp runs pure code and captures any exception into err without
 * reporting it, for callers that decide themselves what a failure means
 * (the pre-start hook, exit paths, the clone child's set-up).
 */
template <typename Fn>
inline bool
TryCpp(ErrorBuffer &err, Fn &&fn) noexcept
{
	try {
		fn();
		return true;
	} catch (...) {
		CaptureCurrentException(err);
		return false;
	}
}

template <typename Fn>
inline bool
CallCppNoThrow(Fn &&fn) noexcept
{
	ErrorBuffer err;
	if (TryCpp(err, fn))
		return true;
	ReportWarning(err);
	return false;
}

} // namespace autopilot::pgx
