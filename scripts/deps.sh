#!/bin/sh
# scripts/deps.sh — install the Debian packages the build, the tests and the
# demo need (the fault campaign, bench/harness/: iproute2, nftables,
# python3-psycopg2).  Does nothing when everything is present; needs root
# otherwise.
set -e
PKGS="postgresql-15 postgresql-client-15 postgresql-server-dev-15 libpq-dev libssl-dev libkrb5-dev
libipc-run-perl cmake g++ make pkg-config googletest libgtest-dev clang-format rsync procps iproute2
nftables python3 python3-psycopg2 util-linux"
# shellcheck source=apt-missing.sh
. "$(dirname "$0")/apt-missing.sh"
# shellcheck disable=SC2086
install_missing deps "run 'make deps' as root" $PKGS
