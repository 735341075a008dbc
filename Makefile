# pg_autopilot — top-level Makefile.
#
#   make            build both extensions (PGXS)
#   make install    install them into the PostgreSQL found by pg_config
#   make test       install missing packages, build, install, run every test
#                   (format check, banned calls, unit + simulator, pg_regress,
#                   TAP, a smoke run of the demo, the network fault campaign)
#   make demo       start a local monitor + two nodes and show a failover-ready group
#   make demo-stop  stop it and remove its data
#   make deps       apt-install what the build and the tests need
#   make bench      benchmarks, then the side-by-side comparison with peers (as root)
PG_CONFIG ?= pg_config
EXT_DIRS = src/monitor_ext src/bgworker

.PHONY: all install clean deps unit regress tap test lint format-check demo demo-stop bench

all:
	$(MAKE) -C tools gen_states
	for d in $(EXT_DIRS); do $(MAKE) -C $$d PG_CONFIG=$(PG_CONFIG) || exit 1; done

install: all
	for d in $(EXT_DIRS); do $(MAKE) -C $$d PG_CONFIG=$(PG_CONFIG) install || exit 1; done

clean:
	for d in $(EXT_DIRS); do $(MAKE) -C $$d clean; done
	rm -rf build tools/gen_states src/shared/*.o src/shared/pg/*.o

deps:
	scripts/deps.sh

# Unit tests of the pure zone (GoogleTest through CMake/ctest).
unit:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAUTOPILOT_WERROR=ON >/dev/null
	cmake --build build -j2
	cd build && ctest --output-on-failure

lint:
	scripts/banned-calls.sh

format-check:
	scripts/format-check.sh

# pg_regress and TAP run as an unprivileged user; see scripts/run-tests.sh.
regress:
	scripts/run-tests.sh regress

tap:
	scripts/run-tests.sh tap

test:
	scripts/deps.sh
	scripts/format-check.sh
	scripts/banned-calls.sh
	$(MAKE) WERROR=1 install
	$(MAKE) unit
	scripts/run-tests.sh all

demo:
	scripts/deps.sh
	$(MAKE) install
	scripts/demo.sh start

demo-stop:
	scripts/demo.sh stop

# bench: our own figures (bench/run.sh), then pg_autopilot, pg_auto_failover
# and Patroni side by side (bench/peers/side_by_side.sh: bench/results/).
# BENCH_ARGS is passed to the latter, e.g. BENCH_ARGS=--quick or "--runs 3".
bench:
	scripts/deps.sh
	scripts/deps-bench.sh
	$(MAKE) install
	bench/run.sh; own=$$?; bench/peers/side_by_side.sh $(BENCH_ARGS); peers=$$?; [ $$own = 0 ] && [ $$peers = 0 ]
