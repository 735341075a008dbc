#!/bin/sh
# scripts/format-check.sh — every C++ source must be formatted by .clang-format.
cd "$(dirname "$0")/.." || exit 2
files=$(git ls-files 'src/*.cpp' 'src/*.hpp' 'tools/*.cpp' 2>/dev/null)
[ -z "$files" ] && files=$(find src tools -name '*.cpp' -o -name '*.hpp')
bad=""
for f in $files; do
	clang-format --style=file "$f" | cmp -s - "$f" || bad="$bad $f"
done
if [ -n "$bad" ]; then
	echo "not formatted (run: clang-format -i$bad)"; exit 1
fi
echo "format-check: ok"
