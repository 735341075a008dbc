#!/bin/sh
# scripts/deps.sh — install the Debian packages the build, the tests and the
# demo need (the fault campaign, bench/harness/: iproute2, nftables,
# python3-psycopg2).  Does nothing when everything is present; needs root
# otherwise.
set -e
PKGS="postgresql-15 postgresql-client-15 postgresql-server-dev-15 libpq-dev libssl-dev libkrb5-dev
libipc-run-perl cmake g++ make pkg-config googletest libgtest-dev clang-format rsync procps iproute2
nftables python3 python3-psycopg2 util-linux"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run 'make deps' as root)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
