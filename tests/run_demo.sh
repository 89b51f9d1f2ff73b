#!/bin/sh
# make run: a local memcached with a few demo keys, and coalesced in front of
# it in the foreground. Ctrl-C stops both.
set -eu
BIN=${1:-./coalesced}
MC_PORT=${MC_PORT:-11211}
PORT=${PORT:-11311}

if ! command -v memcached >/dev/null 2>&1; then
	echo "memcached is not installed: run 'sh tests/deps.sh' as root" >&2
	exit 1
fi

memcached -U 0 -l 127.0.0.1 -p "$MC_PORT" -u "$(id -un)" -m 64 &
MC_PID=$!
CO_PID=
cleanup() {
	[ -n "$CO_PID" ] && kill "$CO_PID" 2>/dev/null
	kill "$MC_PID" 2>/dev/null
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait for memcached, then store the demo keys (no nc needed: bash /dev/tcp).
i=0
until bash -c "exec 3<>/dev/tcp/127.0.0.1/$MC_PORT" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -gt 50 ] && { echo "memcached did not start" >&2; exit 1; }
	sleep 0.1
done
bash -c "exec 3<>/dev/tcp/127.0.0.1/$MC_PORT
printf 'set greeting 0 0 5\r\nhello\r\nset user:1 0 0 14\r\n{\"name\":\"ada\"}\r\nset user:2 0 0 16\r\n{\"name\":\"grace\"}\r\nquit\r\n' >&3
cat <&3 >/dev/null"

cat <<MSG
memcached on 127.0.0.1:$MC_PORT with keys greeting, user:1, user:2.
coalesced on 127.0.0.1:$PORT; try, from another terminal:
  printf 'get greeting user:1 user:2\\r\\n' | nc -q1 127.0.0.1 $PORT
  printf 'stats\\r\\n' | nc -q1 127.0.0.1 $PORT
MSG
# In the background so that a signal reaches the trap at once.
"$BIN" -o "server.listen=127.0.0.1:$PORT" -o "upstream.servers=127.0.0.1:$MC_PORT" \
	-o server.log_level=debug &
CO_PID=$!
wait "$CO_PID"
