#!/bin/sh
# scripts/deps-bench.sh — install the Debian packages the side-by-side
# benchmarks (bench/peers/) need on top of scripts/deps.sh: the peers
# (pg_auto_failover 2.0, Patroni with etcd), gnuplot for the plots, curl for
# Patroni's REST API, nftables and iproute2 for the network namespaces of the
# isolation scenario (bench/harness/netlab.py).  Does nothing when everything
# is present; needs root otherwise.
# Services the packages ship (etcd) are not started here: where the package
# would start one (systemd machine), it is stopped and disabled again, the
# benchmark starts its own instances on ports 7500-7699.
set -e
PKGS="pg-auto-failover-cli postgresql-15-auto-failover patroni etcd-server etcd-client
python3-psycopg2 python3-etcd gnuplot-nox curl iproute2 nftables procps util-linux libipc-run-perl"
# shellcheck source=apt-missing.sh
. "$(dirname "$0")/apt-missing.sh"
# shellcheck disable=SC2086
install_missing deps-bench "run as root" $PKGS
[ -z "$installed" ] && exit 0
# Debian starts etcd as a service on systemd machines: the benchmark runs its own.
if [ -d /run/systemd/system ]; then
	systemctl disable --now etcd.service >/dev/null 2>&1 || true
	systemctl disable --now patroni.service >/dev/null 2>&1 || true
fi
exit 0
