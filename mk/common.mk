# mk/common.mk — build settings shared by both extensions (PGXS).
#
# WERROR=1 (set by make test and CI) turns warnings into errors.
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

PG_CPPFLAGS = -I$(libpq_srcdir) -I../shared
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-register -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-cast-function-type
ifeq ($(WERROR),1)
PG_CXXFLAGS += -Werror
endif
SHLIB_LINK = -lpq -lstdc++

# No JIT bitcode: it would need clang with our C++ flags and buys nothing for
# this code.  "override" because Makefile.global sets it again.
override with_llvm = no

# Track header dependencies (.deps/*.Po): a changed shared header (say the
# keeper's shared-memory struct) must rebuild every object that includes it,
# or objects built against the old layout disagree about it at run time.
override autodepend = yes

include $(PGXS)
