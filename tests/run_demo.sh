#!/bin/sh
# make run: a demo memcached holding three keys, and coalesced in front of it
# on 127.0.0.1:$COALESCED_PORT (default 11311), in the foreground.
#
# The demo memcached listens on a unix socket in a fresh private directory,
# not on a TCP port: a memcached already on the machine (Debian starts
# memcached.service on 11211 as soon as the package is installed) neither
# stops the demo nor receives its keys. If the coalesced port is taken, the
# demo stops before starting anything, saying so.
#
# Ctrl-C (or SIGTERM/SIGHUP to this script) stops both processes, waits for
# them, and removes the directory.
#
#   run_demo.sh [COALESCED-BINARY]     environment: COALESCED_PORT, TMPDIR
set -eu
BIN=${1:-./coalesced}
PORT=${COALESCED_PORT:-11311}

fail() {
	echo "make run: $*" >&2
	exit 1
}

for tool in memcached nc; do
	command -v "$tool" >/dev/null 2>&1 ||
		fail "$tool is not installed: run 'sh tests/deps.sh run' as root"
done
[ -x "$BIN" ] || fail "$BIN is not built: run 'make'"
case $PORT in
'' | *[!0-9]*) fail "COALESCED_PORT=$PORT is not a port number" ;;
esac
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || fail "COALESCED_PORT=$PORT is not a port number"

in_use() {
	echo "make run: 127.0.0.1:$PORT is in use (another 'make run', or a coalesced" \
		"already running?); stop it, or run 'make run COALESCED_PORT=<free port>'" \
		"and use that port in the example" >&2
	exit 1
}
# Checked before anything starts; coalesced's own bind (exit 3) covers a
# port taken between this check and its start.
nc -z 127.0.0.1 "$PORT" 2>/dev/null && in_use

tmp=${TMPDIR:-/tmp}
DIR=$(mktemp -d "$tmp/coalesced-demo.XXXXXX")
SOCK=$DIR/memcached.sock
MC_PID=
CO_PID=
cleanup() {
	set +e
	trap - EXIT INT TERM HUP
	[ -n "$CO_PID" ] && kill "$CO_PID" 2>/dev/null
	[ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null
	wait
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'echo "make run: stopping" >&2; exit 0' INT TERM HUP

# -s disables TCP; -U 0 UDP. -u matters only when started as root.
memcached -U 0 -s "$SOCK" -a 0700 -m 64 -u "$(id -un)" 2>"$DIR/memcached.log" &
MC_PID=$!
i=0
until printf 'version\r\n' | nc -N -U "$SOCK" 2>/dev/null | grep -q '^VERSION'; do
	kill -0 "$MC_PID" 2>/dev/null || fail "memcached did not start: $(cat "$DIR/memcached.log")"
	i=$((i + 1))
	[ "$i" -le 50 ] || fail "memcached did not answer on $SOCK within 5 s"
	sleep 0.1
done
stored=$(printf 'set greeting 0 0 5\r\nhello\r\nset user:1 0 0 14\r\n{"name":"ada"}\r\nset user:2 0 0 16\r\n{"name":"grace"}\r\n' |
	nc -N -U "$SOCK" | grep -c '^STORED') || true
[ "$stored" = 3 ] || fail "memcached did not store the demo keys"

# In the background so that a signal reaches the trap at once.
"$BIN" -o "server.listen=127.0.0.1:$PORT" -o "upstream.servers=unix:$SOCK" \
	-o server.log_level=debug &
CO_PID=$!
# Ready when the coalesced on the port is this one (its pid in stats).
i=0
until printf 'stats\r\n' | nc -N -w 1 127.0.0.1 "$PORT" 2>/dev/null | grep -q "^STAT pid $CO_PID"; do
	if ! kill -0 "$CO_PID" 2>/dev/null; then
		st=0
		wait "$CO_PID" || st=$?
		CO_PID=
		[ "$st" = 3 ] && nc -z 127.0.0.1 "$PORT" 2>/dev/null && in_use
		fail "coalesced exited with status $st (its message is above)"
	fi
	i=$((i + 1))
	[ "$i" -le 100 ] || fail "coalesced did not answer on 127.0.0.1:$PORT within 10 s"
	sleep 0.1
done

cat <<MSG
make run: memcached with keys greeting, user:1, user:2 on unix:$SOCK
make run: coalesced on 127.0.0.1:$PORT; from another terminal, try
  printf 'get greeting user:1 nosuch greeting\\r\\n' | nc -N 127.0.0.1 $PORT
  printf 'stats\\r\\n' | nc -N 127.0.0.1 $PORT
make run: Ctrl-C stops both.
MSG
st=0
wait "$CO_PID" || st=$?
CO_PID=
exit "$st"
