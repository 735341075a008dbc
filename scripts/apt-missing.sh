# shellcheck shell=sh disable=SC2034
# scripts/apt-missing.sh — sourced by scripts/deps.sh and scripts/deps-bench.sh
# (POSIX sh): install_missing NAME HINT PKG... apt-installs the packages that
# are not installed yet.  Returns 0 with installed="" when all are present, 0
# with installed=1 after installing them; exits 1 when some are missing and
# this is not root (HINT says how to get them).
install_missing() {
	_name=$1 _hint=$2
	shift 2
	installed=""
	_missing=""
	for _p in "$@"; do
		dpkg-query -W -f='${Status}' "$_p" 2>/dev/null | grep -q "ok installed" || _missing="$_missing $_p"
	done
	[ -z "$_missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "$_name: missing packages:$_missing ($_hint)" >&2
		exit 1
	fi
	echo "$_name: installing$_missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $_missing >/dev/null
	installed=1
}
