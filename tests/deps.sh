#!/bin/sh
# Install the Debian packages coalesced needs to build, test and run, plus any
# named as arguments (tests/bench/deps.sh adds the benchmark's).
# Idempotent: installs only what is missing; safe to run on every build.
# postgresql-15 is the server the tests start throw-away clusters of (as the
# user nobody; it ships pg_stat_statements, so no postgresql-contrib);
# libpq-dev is the client library the daemon and the tests link.
set -eu

PKGS="$* build-essential pkg-config libev-dev libinih-dev libsystemd-dev check memcached \
valgrind clang libclang-rt-14-dev curl mandoc man-db systemd procps \
libmemcached-dev python3-pylibmc libmemcached-tools python3-pymemcache redis-server redis-tools \
prometheus postgresql-15 libpq-dev"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing (run as root, or install them)" >&2
	exit 1
fi

echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
