#!/bin/bash
# scripts/run-tests.sh — run pg_regress and TAP suites as an unprivileged user.
#
#   scripts/run-tests.sh regress|tap|demo|campaign|all [t/NNN_file.pl ...]
#
# demo: a smoke run of `make demo` (scripts/demo.sh start, then stop) from
# the scratch copy, on three free ports (DEMO_PORT_BASE if free, else the
# first free base of 5000, 5010, ... 5090, 5500, ... 5590: never the bench's
# 5100-5499 nor the TAP framework's range): the start output shows the
# primary, the secondary and the formation URI, a row written through the
# URI is read back on the standby, and after the stop no demo server is left
# and the demo's data is gone.  A failed run stops the demo in the cleanup.
#
# campaign: the small fault campaign (bench/campaign, bench/harness/README.md):
# a three-node group in network namespaces under faults; needs root and runs
# as root (it starts the servers as postgres itself and removes every
# namespace, mount, process and folder it made); skipped, not failed, without
# root or namespace support.  --cover: the first rounds meet every fault kind
# once.  CAMPAIGN_ROUNDS (16, every kind once on a kernel without netem),
# CAMPAIGN_SEED (fixed, so that CI draws the same faults every run) and
# CAMPAIGN_ARGS change it.
#
# PostgreSQL refuses to run as root, and CI's clone may sit where the postgres
# user cannot read.  As root we therefore copy the tree into a world-readable
# scratch folder owned by postgres and run the suites there as postgres; as
# any other user we run in a scratch copy too, so that test output never lands
# in the source tree.  Every process started from the scratch folder and the
# folder itself are removed on exit, whatever happened.
set -u
what=${1:-all}
shift || true
src=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=$(pg_config --bindir)
PGXS_DIR=$(dirname "$(pg_config --pgxs)")/../..
run_user=${AUTOPILOT_TEST_USER:-postgres}

scratch=$(mktemp -d /tmp/pg_autopilot-test.XXXXXX)
chmod 755 "$scratch"
# scratch_pids: processes started from the scratch folder: those naming it on
# their command line, and those whose working directory is in it (a server
# started as "postgres -D tmp_check/..." names only a relative path).
scratch_pids() {
	pgrep -f "$scratch" 2>/dev/null
	for d in /proc/[0-9]*; do
		case "$(readlink "$d/cwd" 2>/dev/null)" in
		"$scratch"/* | "$scratch") echo "${d#/proc/}" ;;
		esac
	done
}
# demo_started: set while the demo smoke run may have servers up.
demo_started=
cleanup() {
	# A demo the smoke run started stops first, with its own stop (it knows
	# where its data lives); the loop below catches anything left.
	if [ -n "$demo_started" ]; then
		DEMO_USER="$run_user" "$scratch/tree/scripts/demo.sh" stop >/dev/null 2>&1
	fi
	# Stop every server a failed test left behind (also one a test froze with
	# SIGSTOP), then remove the folder.
	for pid in $(scratch_pids | sort -u); do kill -QUIT "$pid" 2>/dev/null; kill -CONT "$pid" 2>/dev/null; done
	sleep 0.5
	for pid in $(scratch_pids | sort -u); do kill -KILL "$pid" 2>/dev/null; done
	if [ -n "${KEEP_TEST_OUTPUT:-}" ]; then
		echo "test output kept in $scratch"
	else
		rm -rf "$scratch"
	fi
}
# A signal ends the run (the EXIT trap cleans up) rather than letting it go
# on in a removed folder.
trap cleanup EXIT
trap 'exit 1' INT TERM

# Not /demo: the data of a demo running from the source tree (git-ignored).
rsync -a --exclude .git --exclude build --exclude /demo "$src"/ "$scratch"/tree/
if [ "$(id -u)" = 0 ]; then
	chown -R "$run_user" "$scratch"
	as_user() { runuser -u "$run_user" -- env PATH="$PGBIN:$PATH" "$@"; }
else
	as_user() { env PATH="$PGBIN:$PATH" "$@"; }
fi

status=0
if [ "$what" = regress ] || [ "$what" = all ]; then
	echo "== pg_regress (monitor)"
	as_user bash -c "cd '$scratch/tree' && mkdir -p tmp_check && '$PGXS_DIR/src/test/regress/pg_regress' \
		--temp-instance=tmp_check/monitor --temp-config=test/monitor.conf \
		--bindir='$PGBIN' --inputdir=. --outputdir=tmp_check/monitor_out \
		--schedule=test/monitor.schedule" || status=1
	echo "== pg_regress (node)"
	as_user bash -c "cd '$scratch/tree' && mkdir -p tmp_check && '$PGXS_DIR/src/test/regress/pg_regress' \
		--temp-instance=tmp_check/node --temp-config=test/node.conf \
		--bindir='$PGBIN' --inputdir=. --outputdir=tmp_check/node_out \
		--schedule=test/node.schedule" || status=1
	# A crash the expected output cannot show (a background worker dying,
	# an assertion after the last query) is only in the servers' logs.
	crashes=$(grep -HnE 'terminated by signal|TRAP:|PANIC' "$scratch"/tree/tmp_check/*_out/log/postmaster.log 2>/dev/null)
	if [ -n "$crashes" ]; then
		echo "==== crash markers in the pg_regress server logs:"
		echo "$crashes" | head -40 | sed "s|^$scratch/tree/||"
		status=1
	fi
	if [ $status != 0 ]; then
		cat "$scratch"/tree/tmp_check/*_out/regression.diffs 2>/dev/null | head -200
	fi
fi
if [ "$what" = tap ] || [ "$what" = all ]; then
	echo "== TAP"
	tests="$*"
	[ -z "$tests" ] && tests=$(cd "$src" && echo t/*.pl)
	as_user bash -c "cd '$scratch/tree' && PG_REGRESS='$PGXS_DIR/src/test/regress/pg_regress' \
		prove --timer -I '$PGXS_DIR/src/test/perl' -I t/lib $tests" 2>&1 | tee "$scratch/prove.out"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	if [ $status != 0 ]; then
		# Only the failing files: their TAP log tail and any crash in their server logs.
		failed=$(sed -n 's/^\(t\/[0-9A-Za-z_]*\)\.pl  *(Wstat.*/\1/p' "$scratch/prove.out" | sort -u)
		for t in $failed; do
			base=$(basename "$t")
			f="$scratch/tree/tmp_check/log/regress_log_$base"
			[ -f "$f" ] && { echo "---- tail of $f"; tail -80 "$f"; }
			for g in "$scratch"/tree/tmp_check/log/"$base"_*.log; do
				[ -f "$g" ] || continue
				grep -nE 'TRAP:|PANIC|ERROR|FATAL|WARNING' "$g" | tail -15 | sed "s|^|$(basename "$g"): |"
			done
		done
		# Last, so that a truncated CI log still shows it.
		echo "==== TAP summary"
		sed -n '/^Test Summary Report/,$p' "$scratch/prove.out"
		echo "==== failed TAP files: ${failed:-none found}"
	fi
fi
# port_busy PORT: something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# demo_smoke: the demo part (see the header).  Returns non-zero on failure.
demo_smoke() {
	local tree="$scratch/tree" out="$scratch/demo.out" base="" b p busy rc uri got sport dir i pids
	for b in ${DEMO_PORT_BASE:-} $(seq 5000 10 5090) $(seq 5500 10 5590); do
		busy=""
		for p in "$b" $((b + 1)) $((b + 2)); do port_busy "$p" && busy=1; done
		if [ -z "$busy" ]; then
			base=$b
			break
		fi
	done
	if [ -z "$base" ]; then
		echo "demo: no three free ports found"
		return 1
	fi
	local start=$SECONDS
	demo_started=1
	# demo.sh handles root itself (servers run as DEMO_USER), as `make demo` runs it.
	DEMO_USER="$run_user" DEMO_PORT_BASE=$base DEMO_TIMEOUT=${DEMO_TIMEOUT:-60} \
		timeout 300 "$tree/scripts/demo.sh" start >"$out" 2>&1
	rc=$?
	echo "demo: start exited with $rc after $((SECONDS - start)) s (ports $base-$((base + 2)))"
	dir="$tree/demo"
	[ -f "$tree/demo/location" ] && dir=$(cat "$tree/demo/location")
	demo_fail() {
		echo "==== demo smoke run FAILED: $*"
		echo "---- tail of the demo output"
		tail -60 "$out"
		return 1
	}
	[ $rc = 0 ] || { demo_fail "scripts/demo.sh start failed"; return 1; }
	# The start output: the ready group's show_state and the formation URI.
	grep -Eq '^ *node[12] +\|.*\| primary +\| primary +\|' "$out" ||
		{ demo_fail "no settled primary in the demo output"; return 1; }
	grep -Eq '^ *node[12] +\|.*\| secondary +\| secondary +\|' "$out" ||
		{ demo_fail "no settled secondary in the demo output"; return 1; }
	# The line after "formation URI ...:" is the URI over both nodes.
	uri=$(sed -n '/^formation URI/{n;s/^ *//;p;q}' "$out")
	[[ "$uri" =~ ^postgres://127\.0\.0\.1:$((base + 1)),127\.0\.0\.1:$((base + 2))/postgres\?target_session_attrs=read-write$ ]] ||
		{ demo_fail "the demo output shows no formation URI over ports $((base + 1)),$((base + 2)) (got '$uri')"; return 1; }
	# The group as the monitor sees it now: one primary, one secondary, settled.
	got=$(as_user psql -X -Atq -h 127.0.0.1 -p "$base" -d pg_autopilot -c \
		"SELECT string_agg(current_state || '/' || assigned_state, ',' ORDER BY current_state) FROM pg_autopilot.show_state()")
	[ "$got" = "primary/primary,secondary/secondary" ] ||
		{ demo_fail "the monitor shows '$got', not a settled primary and secondary"; return 1; }
	sport=$(as_user psql -X -Atq -h 127.0.0.1 -p "$base" -d pg_autopilot -c \
		"SELECT port FROM pg_autopilot.show_state() WHERE current_state = 'secondary'")
	# A row written through the URI (to the primary) is read back on the standby.
	as_user psql -X -Atq -v ON_ERROR_STOP=1 "$uri" \
		-c 'CREATE TABLE demo_smoke(id int)' -c 'INSERT INTO demo_smoke VALUES (42)' ||
		{ demo_fail "no write through the formation URI $uri"; return 1; }
	got=""
	for ((i = 0; i < 300; i++)); do
		got=$(as_user psql -X -Atq -h 127.0.0.1 -p "$sport" -d postgres \
			-c 'SELECT pg_is_in_recovery()::text || id FROM demo_smoke' 2>/dev/null)
		[ "$got" = true42 ] && break
		sleep 0.1
	done
	[ "$got" = true42 ] || { demo_fail "the row is not on the standby (port $sport): '$got'"; return 1; }
	echo "demo: the group is primary/secondary; a row written through $uri is on the standby (port $sport)"
	DEMO_USER="$run_user" "$tree/scripts/demo.sh" stop >>"$out" 2>&1 || { demo_fail "scripts/demo.sh stop failed"; return 1; }
	# What demo-stop promises: the servers stopped, their data removed.
	pids=$(pgrep -f "$dir/" 2>/dev/null)
	[ -z "$pids" ] || { demo_fail "demo processes left after the stop: $(ps -o pid=,args= -p "${pids//$'\n'/,}")"; return 1; }
	for p in "$base" $((base + 1)) $((base + 2)); do
		port_busy "$p" && { demo_fail "port $p still in use after the stop"; return 1; }
	done
	[ ! -e "$tree/demo" ] && [ ! -e "$dir" ] || { demo_fail "demo data left after the stop: $(ls -d "$tree/demo" "$dir" 2>/dev/null)"; return 1; }
	demo_started=""
	echo "demo: stopped, no server left, $dir removed ($((SECONDS - start)) s in all)"
	return 0
}
if [ "$what" = demo ] || [ "$what" = all ]; then
	echo "== demo (smoke run of make demo)"
	demo_smoke || status=1
fi
if [ "$what" = campaign ] || [ "$what" = all ]; then
	echo "== fault campaign"
	if [ "$(id -u)" != 0 ]; then
		echo "campaign: skipped: needs root (network namespaces)"
	else
		# From the source tree, not the scratch copy: the cleanup above kills
		# whatever names the scratch folder, and the campaign must be left to
		# tear its namespaces down itself.  --timeout bounds a hung run.
		# shellcheck disable=SC2086
		"$src/bench/campaign" --cover --rounds "${CAMPAIGN_ROUNDS:-16}" --seed "${CAMPAIGN_SEED:-20261127}" \
			--timeout 1200 ${CAMPAIGN_ARGS:-}
		rc=$?
		if [ $rc = 77 ]; then
			echo "campaign: skipped"
		elif [ $rc != 0 ]; then
			echo "==== fault campaign FAILED (exit $rc)"
			status=1
		fi
	fi
fi
exit $status
