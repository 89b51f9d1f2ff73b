#!/bin/sh
# Install the Debian packages coalesced needs, and only those:
#
#   tests/deps.sh run          what make run needs: build the daemon, memcached,
#                              and nc for the README's example session
#   tests/deps.sh [test]       what make check needs: the above, plus the test
#                              framework, valgrind, clang and the tools and
#                              servers the tests drive
#   tests/deps.sh [test] PKG…  the same plus PKG… (tests/bench/deps.sh adds the
#                              benchmark's this way)
#
# Idempotent: installs only what is missing, and prints nothing when all is
# there, so it is safe to run on every build.
#
# libpq-dev is the client library the daemon and the tests link;
# postgresql-15 is the server the tests start throw-away clusters of (as the
# user nobody; it ships pg_stat_statements, so no postgresql-contrib).
set -eu

RUN_PKGS="build-essential pkg-config libev-dev libinih-dev libsystemd-dev libpq-dev memcached \
netcat-openbsd"
TEST_PKGS="$RUN_PKGS check valgrind clang libclang-rt-14-dev curl mandoc man-db systemd procps \
libmemcached-dev python3-pylibmc libmemcached-tools python3-pymemcache redis-server redis-tools \
prometheus postgresql-15"

mode=test
case "${1:-}" in
run | test)
	mode=$1
	shift
	;;
esac
if [ "$mode" = run ]; then
	PKGS="$RUN_PKGS $*"
else
	PKGS="$TEST_PKGS $*"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing (run 'sh tests/deps.sh $mode' as root, or install them)" >&2
	exit 1
fi

echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
