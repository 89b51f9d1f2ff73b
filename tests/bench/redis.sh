#!/bin/bash
# Redis side by side: Redis directly, twemproxy (nutcracker, redis: true) in
# front of it, and coalesced ([upstream] protocol = redis, RESP clients on
# redis_listen) in front of it, driven by redis-benchmark (an independent
# RESP client). Not part of make check; `make bench-redis` runs it.
#
# For every scenario and target: requests/s and p99 as redis-benchmark
# reports them, and the commands the upstream executed (INFO commandstats,
# GET + MGET calls, reset before each run). The slow-upstream scenario puts
# build/fake_redis with a 1 ms delay per command behind both proxies.
#
# Knobs: BENCH_N (requests per run, default 200000), BENCH_OUT (directory of
# redis.md, default bench/results). Every process it starts is stopped by PID.
set -euo pipefail

COALESCED_BIN=${COALESCED_BIN:-$PWD/coalesced}
FAKE_REDIS=${FAKE_REDIS:-$PWD/build/fake_redis}
N=${BENCH_N:-200000}
OUT=${BENCH_OUT:-bench/results}
TMP=$(mktemp -d)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "nothing listening on $1" >&2
	return 1
}

# Servers on CPU 0, the load generator on CPU 1, as the memcached bench does.
start() {
	taskset -c 0 "$@" >>"$TMP/log" 2>&1 &
	PIDS+=($!)
	LAST=$!
}

stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

RPORT=$(free_port)
start redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP"
wait_port "$RPORT"
# The key space redis-benchmark's -r uses: key:000000000000 ... (3-byte values).
python3 - "$RPORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
buf = b"".join(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n" % i for i in range(100000))
buf += b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n"
s.sendall(buf)
need, got = 100001 * 5, 0
while got < need:
    d = s.recv(1 << 20)
    if not d:
        break
    got += len(d)
EOF

FPORT=$(free_port)
start "$FAKE_REDIS" -p "$FPORT" -d 1
wait_port "$FPORT"

upstream_cmds() { # port: GET + MGET calls since the last reset
	if [ "$1" = "$FPORT" ]; then
		echo "-"
		return
	fi
	redis-cli -p "$1" info commandstats | tr -d '\r' |
		awk -F'[=,:]' '/^cmdstat_(get|mget):/ {n += $3} END {print n + 0}'
}

proxy() { # kind upstream_port -> sets PPORT, PPID_
	local kind=$1 up=$2
	PPORT=$(free_port)
	case $kind in
	direct) PPORT=$up PPID_= ;;
	twemproxy)
		cat >"$TMP/nc.yml" <<EOF
pool:
  listen: 127.0.0.1:$PPORT
  redis: true
  hash: fnv1a_64
  distribution: ketama
  timeout: 2000
  servers:
    - 127.0.0.1:$up:1
EOF
		start nutcracker -c "$TMP/nc.yml" -s "$(free_port)"
		PPID_=$LAST
		wait_port "$PPORT"
		;;
	coalesced)
		start "$COALESCED_BIN" -o server.listen=127.0.0.1:"$(free_port)" \
			-o server.redis_listen=127.0.0.1:"$PPORT" -o upstream.protocol=redis \
			-o upstream.servers=127.0.0.1:"$up" -o upstream.connections=4 \
			-o server.max_clients=10000 -o server.log_level=warn
		PPID_=$LAST
		wait_port "$PPORT"
		;;
	esac
}

mkdir -p "$OUT"
REPORT="$OUT/redis.md"
{
	echo "# Redis: direct, twemproxy, coalesced (redis-benchmark, $N requests per run)"
	echo
	echo "| scenario | target | requests/s | p99 ms | upstream GET+MGET | errors |"
	echo "|---|---|---:|---:|---:|---:|"
} >"$REPORT"

run() { # name test clients keyspace upstream_port targets...
	local name=$1 test=$2 c=$3 r=$4 up=$5
	shift 5
	for t in "$@"; do
		proxy "$t" "$up"
		[ "$up" = "$FPORT" ] || redis-cli -p "$up" config resetstat >/dev/null
		local n=$N
		[ "$up" = "$FPORT" ] && n=$((N / 20))
		local csv
		# redis-benchmark has no MGET test of its own: a command of ten
		# random keys (each __rand_int__ is drawn apart).
		local what=(-t "$test")
		[ "$test" = mget ] && what=(MGET $(printf 'key:__rand_int__ %.0s' $(seq 10)))
		csv=$(taskset -c 1 redis-benchmark -p "$PPORT" -c "$c" -r "$r" -n "$n" --csv \
			"${what[@]}" 2>"$TMP/err" | tail -1)
		local errs
		errs=$(grep -ci err "$TMP/err" || true)
		local rps p99
		rps=$(echo "$csv" | awk -F'"' '{print $4}')
		p99=$(echo "$csv" | awk -F'"' '{print $14}')
		echo "| $name | $t | $rps | $p99 | $(upstream_cmds "$up") | $errs |" >>"$REPORT"
		[ -n "${PPID_:-}" ] && stop "$PPID_"
	done
}

run "uniform GET, 50 conns" get 50 100000 "$RPORT" direct twemproxy coalesced
run "uniform GET, 200 conns" get 200 100000 "$RPORT" direct twemproxy coalesced
run "10 hot keys GET, 500 conns" get 500 10 "$RPORT" direct twemproxy coalesced
run "MGET of 10 keys, 50 conns" mget 50 100000 "$RPORT" direct twemproxy coalesced
run "1 ms upstream GET (fake), 200 conns" get 200 1000 "$FPORT" twemproxy coalesced

cat "$REPORT"
