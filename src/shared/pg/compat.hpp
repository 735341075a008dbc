/*
 * src/shared/pg/compat.hpp — the one place for PostgreSQL version differences
 * and for the C++ fix-ups the server headers need (PostgreSQL zone).
 *
 * Include this after every server header of a file.  It:
 *  - redefines AssertVariableIsOfType*, which use the C-only
 *    __builtin_types_compatible_p and break LSN_FORMAT_ARGS, dlist_* and
 *    friends in C++ (research/bgworker-feasibility.md §9);
 *  - names the version-dependent calls the extensions use, so that no other
 *    file carries an #if on PG_VERSION_NUM.
 */
#pragma once

#include <type_traits>

#undef AssertVariableIsOfType
#define AssertVariableIsOfType(varname, typename)                                                                      \
	static_assert(std::is_same<decltype(varname), typename>::value,                                                    \
				  CppAsString(varname) " does not have type " CppAsString(typename))
#undef AssertVariableIsOfTypeMacro
#define AssertVariableIsOfTypeMacro(varname, typename) ((void) sizeof(std::is_same<decltype(varname), typename>))

#if PG_VERSION_NUM < 150000
#error "pg_autopilot needs PostgreSQL 15 or later"
#endif

/*
 * Wait events: PostgreSQL 17 lets an extension name its own
 * (WaitEventExtensionNew); before that every extension shares the
 * "Extension" event of class PG_WAIT_EXTENSION.
 */
#if PG_VERSION_NUM >= 170000
#define AUTOPILOT_WAIT_EVENT(name) WaitEventExtensionNew(name)
#else
#define AUTOPILOT_WAIT_EVENT(name) ((uint32) PG_WAIT_EXTENSION)
#endif

/* ReplicationSlotCreate gained "failover" (17) and "synced" (17) arguments. */
#if PG_VERSION_NUM >= 170000
#define AUTOPILOT_SLOT_CREATE_PHYSICAL(name) ReplicationSlotCreate((name), false, RS_PERSISTENT, false, false, false)
#else
#define AUTOPILOT_SLOT_CREATE_PHYSICAL(name) ReplicationSlotCreate((name), false, RS_PERSISTENT, false)
#endif
