#!/bin/sh
# Install the Debian packages that only the benchmark needs (make bench), on top of
# tests/deps.sh: twemproxy to compare with, gnuplot for the plot, jq for the report.
# Idempotent: installs only what is missing. perf (linux-perf) is used when present.
set -eu

PKGS="nutcracker gnuplot-nox jq"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "bench/deps.sh: missing packages:$missing (run as root, or install them)" >&2
	exit 1
fi

echo "bench/deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
