#!/bin/bash
# scripts/run-tests.sh — run pg_regress and TAP suites as an unprivileged user.
#
#   scripts/run-tests.sh regress|tap|campaign|all [t/NNN_file.pl ...]
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
cleanup() {
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
trap cleanup EXIT INT TERM

rsync -a --exclude .git --exclude build "$src"/ "$scratch"/tree/
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
