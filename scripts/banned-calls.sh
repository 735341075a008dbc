#!/bin/sh
# scripts/banned-calls.sh — fail on calls the house style bans in backend code
# (../shared/STYLE.md): blocking libpq, raw poll/select/sleep, threads,
# sprintf, libpq large objects, and server headers in the pure zone.
cd "$(dirname "$0")/.." || exit 2
status=0
hits=$(grep -rnE '\bPQexec\(|\bPQconnectdb|[^a-zA-Z_]poll\(|[^a-zA-Z_]select\(|[^a-zA-Z_]u?sleep\(|std::thread|std::async|[^a-zA-Z_]sprintf\(|\blo_(read|write|import|export|open)\(' \
	--include='*.cpp' --include='*.hpp' --include='*.c' --include='*.h' src)
if [ -n "$hits" ]; then
	echo "banned calls in backend code:"; echo "$hits"; status=1
fi
pure=$(grep -rlE '#include *[<"](postgres|postgres_fe|fmgr)\.h' src/shared --include='*.cpp' --include='*.hpp' | grep -v '^src/shared/pg/')
if [ -n "$pure" ]; then
	echo "server headers in the pure zone:"; echo "$pure"; status=1
fi
[ $status = 0 ] && echo "banned-calls: ok"
exit $status
