#!/bin/bash
# Redis side by side: Redis directly, twemproxy (nutcracker, redis: true) in front of it, and
# coalesced ([upstream] protocol = redis, RESP clients on redis_listen) in front of it, driven
# by two independent RESP clients: redis-benchmark, and build/bench/loadgen --protocol resp,
# which checks every value it gets and can draw Zipf keys. Not part of make check;
# `make bench-redis` runs it.
#
# Both proxies get the same upstream settings, as tests/bench/run.sh gives them in front of
# memcached: 2 server connections (coalesced's default upstream.connections, nutcracker's
# server_connections: 2) and a 1000 ms timeout. The slow-upstream scenario puts
# build/fake_redis, which answers one command at a time, each 1 ms late, behind both proxies.
#
# For every scenario and target: throughput, p50, p99, the commands the upstream executed
# (Redis: GET + MGET calls of INFO commandstats, reset before each run; the fake: the GET and
# MGET lines of its record file), those per client request, errors, wrong values (loadgen),
# "other load" (the busy time of both CPUs minus that of the upstream, the proxy and the
# client, as a share of 2 CPUs: what else ran on the machine meanwhile) and coalesced's ratios
# to twemproxy, then the ratios against the targets of issue 11.
#
# Knobs: BENCH_SECONDS (seconds per loadgen run, default 10), BENCH_N (requests per
# redis-benchmark run, default 200000; a twentieth of it against the slow fake), BENCH_KEYS
# (loadgen key space, default 100000), BENCH_VALUE_SIZE (default 100), BENCH_OUT (directory of
# redis.md, default bench/results), COALESCED_BIN, FAKE_REDIS, LOADGEN (the binaries).
# Servers run on CPU 0, the clients on CPU 1. Every process started here is stopped by its
# PID, also on failure or Ctrl-C.
set -euo pipefail

COALESCED_BIN=${COALESCED_BIN:-$PWD/coalesced}
FAKE_REDIS=${FAKE_REDIS:-$PWD/build/fake_redis}
LG=${LOADGEN:-$PWD/build/bench/loadgen}
N=${BENCH_N:-200000}
SECS=${BENCH_SECONDS:-10}
KEYS=${BENCH_KEYS:-100000}
VSIZE=${BENCH_VALUE_SIZE:-100}
OUT=${BENCH_OUT:-bench/results}

log() { printf 'bench-redis: %s\n' "$*" >&2; }
fail() {
	log "$*"
	exit 1
}

for tool in redis-server redis-cli redis-benchmark nutcracker jq taskset awk python3; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool not found: run 'make bench-deps' as root"
done
for f in "$COALESCED_BIN" "$FAKE_REDIS" "$LG"; do
	[ -x "$f" ] || fail "$f is missing: run 'make bench-redis'"
done
case $SECS in '' | *[!0-9.]*) fail "BENCH_SECONDS must be a number of seconds" ;; esac
[ "$(nproc)" -ge 2 ] || log "fewer than 2 CPUs: taskset -c 1 will fail"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/coalesced-bench-redis.XXXXXX")
PIDS=""

track() { PIDS="$PIDS $1"; }
untrack() {
	local p keep=""
	for p in $PIDS; do [ "$p" = "$1" ] || keep="$keep $p"; done
	PIDS=$keep
}
alive() { # PID: running and not a zombie
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
stop_pid() { # PID: SIGTERM, up to 5 s, then SIGKILL; reaps it
	local pid=$1 i
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			alive "$pid" || break
			sleep 0.05
		done
		if alive "$pid"; then
			log "pid $pid did not stop on SIGTERM: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
	untrack "$pid"
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$? p
	trap - EXIT INT TERM HUP
	for p in $PIDS; do stop_pid "$p"; done
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

free_port() { "$LG" --free-port; }

wait_port() { # PORT PID: until 127.0.0.1:PORT accepts (PID staying alive), at most 10 s
	local i
	for ((i = 0; i < 200; i++)); do
		alive "$2" || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	return 1
}

start() { # COMMAND...: in the background on CPU 0; its PID in LAST
	taskset -c 0 "$@" >>"$TMP/log" 2>&1 &
	LAST=$!
	track "$LAST"
}

# ---------------------------------------------------------------- CPU accounting

CLK_TCK=$(getconf CLK_TCK)
all_ticks() { awk '/^cpu[0-9]/ { b += $2 + $3 + $4 + $7 + $8 } END { print b + 0 }' /proc/stat; }
proc_ticks() { # PID (or nothing): its user + system ticks
	local s
	if [ -z "$1" ] || ! s=$(cat "/proc/$1/stat" 2>/dev/null); then
		echo 0
		return
	fi
	awk '{print $12 + $13}' <<<"${s##*) }"
}
# children_s: CHILD_S = user + system seconds of the children this shell has waited for (not
# in a subshell: a forked shell starts with none)
children_s() {
	times >"$TMP/times"
	CHILD_S=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
		print t }' "$TMP/times")
}
# window_begin UPSTREAM_PID PROXY_PID / window_end ...: sets OTHER, the CPU share (%) of
# both CPUs used by processes outside the run (the client is a child of this shell).
window_begin() {
	W_T0=$EPOCHREALTIME W_A0=$(all_ticks) W_U0=$(proc_ticks "$1") W_P0=$(proc_ticks "$2")
	children_s
	W_C0=$CHILD_S
}
window_end() {
	local t1=$EPOCHREALTIME a1 u1 p1 c1
	a1=$(all_ticks) u1=$(proc_ticks "$1") p1=$(proc_ticks "$2")
	children_s
	c1=$CHILD_S
	OTHER=$(awk -v t0="$W_T0" -v t1="$t1" -v a="$((a1 - W_A0))" -v u="$((u1 - W_U0))" \
		-v p="$((p1 - W_P0))" -v c0="$W_C0" -v c1="$c1" -v hz="$CLK_TCK" -v n="$(nproc)" '
		BEGIN { o = (a - u - p - (c1 - c0) * hz) / ((t1 - t0) * hz * n) * 100
			if (o < 0) o = 0; printf "%.0f %%", o }')
}

# ---------------------------------------------------------------- upstreams

HARD=$(ulimit -Hn)
[ "$HARD" = unlimited ] && HARD=1048576
ulimit -n 65536 2>/dev/null || ulimit -n "$HARD"

RPORT=$(free_port)
start redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP"
RPID=$LAST
wait_port "$RPORT" "$RPID" || fail "redis-server did not start: $(tail -c 500 "$TMP/log")"

log "preloading redis-benchmark's key space (key:000000000000 .. 100000, 3 bytes)"
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
log "preloading loadgen's key space (key:0 .. key:$((KEYS - 1)), $VSIZE bytes)"
r=$("$LG" --protocol resp --server "127.0.0.1:$RPORT" --preload -n "$KEYS" -s "$VSIZE") ||
	fail "loadgen --preload failed: $r"

FPORT=$(free_port)
start "$FAKE_REDIS" -p "$FPORT" -d 1 -r "$TMP/fake.rec"
FPID=$LAST
wait_port "$FPORT" "$FPID" || fail "fake_redis did not start: $(tail -c 500 "$TMP/log")"

fake_cmds() { grep -ciE '^m?get ' "$TMP/fake.rec" || true; }
upstream_reset() { # redis|fake
	if [ "$1" = fake ]; then
		FAKE_MARK=$(fake_cmds)
	else
		redis-cli -p "$RPORT" config resetstat >/dev/null
	fi
}
upstream_cmds() { # redis|fake: GET + MGET commands since upstream_reset
	if [ "$1" = fake ]; then
		echo $(($(fake_cmds) - FAKE_MARK))
		return
	fi
	redis-cli -p "$RPORT" info commandstats | tr -d '\r' |
		awk -F'[=,:]' '/^cmdstat_(get|mget):/ {n += $3} END {print n + 0}'
}

# ---------------------------------------------------------------- proxies

echo "# empty: built-in defaults, overridden with -o" >"$TMP/coalesced.ini"

proxy() { # TARGET UPSTREAM_PORT: sets PPORT and PPID_ (empty for direct)
	local up=$2
	PPID_=""
	case $1 in
	direct) PPORT=$up ;;
	twemproxy)
		PPORT=$(free_port)
		cat >"$TMP/nc.yml" <<EOF
bench:
  listen: 127.0.0.1:$PPORT
  redis: true
  hash: fnv1a_64
  distribution: ketama
  timeout: 1000
  backlog: 1024
  preconnect: true
  auto_eject_hosts: false
  server_connections: 2
  servers:
   - 127.0.0.1:$up:1 upstream
EOF
		nutcracker -t -c "$TMP/nc.yml" >/dev/null 2>&1 || fail "nutcracker rejects $TMP/nc.yml"
		start nutcracker -c "$TMP/nc.yml" -s "$(free_port)" -a 127.0.0.1
		PPID_=$LAST
		wait_port "$PPORT" "$PPID_" || fail "nutcracker did not start: $(tail -c 500 "$TMP/log")"
		;;
	coalesced)
		PPORT=$(free_port)
		start "$COALESCED_BIN" -c "$TMP/coalesced.ini" -o server.listen=127.0.0.1:"$(free_port)" \
			-o server.redis_listen=127.0.0.1:"$PPORT" -o upstream.protocol=redis \
			-o upstream.servers=127.0.0.1:"$up" -o server.max_clients=10000 \
			-o server.log_level=warn
		PPID_=$LAST
		wait_port "$PPORT" "$PPID_" || fail "coalesced did not start: $(tail -c 500 "$TMP/log")"
		;;
	esac
}

# ---------------------------------------------------------------- report

times_() { if [ "$1" = - ]; then echo -; else echo "$1×"; fi; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b > 0 && a != "") printf f, a / b; else printf "-" }'; }

declare -A OPS P99 UPR
# ratios SCENARIO: coalesced/twemproxy as "×ops, p99 ×r, ÷upstream per request" (or "-")
ratios() {
	local k=$1
	if [ -z "${OPS[$k/twemproxy]:-}" ] || [ -z "${OPS[$k/coalesced]:-}" ]; then
		echo "-"
		return
	fi
	echo "×$(div "${OPS[$k/coalesced]}" "${OPS[$k/twemproxy]}"), p99 ×$(div "${P99[$k/coalesced]}" \
		"${P99[$k/twemproxy]}"), upstream ÷$(div "${UPR[$k/twemproxy]}" "${UPR[$k/coalesced]}" %.1f)"
}

mkdir -p "$OUT"
REPORT="$OUT/redis.md"
{
	echo "# Redis: direct, twemproxy, coalesced"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)),"
	echo "Linux $(uname -r); redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2),"
	echo "nutcracker $(nutcracker -V 2>&1 | awk 'NR == 1 {sub(/^nutcracker-/, "", $NF); print $NF}'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Redis, the fake and the proxies on CPU 0, the client on CPU 1. Both proxies keep 2"
	echo "connections to the upstream. \"other load\": busy time of both CPUs not spent by the"
	echo "upstream, the proxy or the client, as a share of the 2 CPUs (the machine is shared)."
	echo
	echo "## redis-benchmark ($N requests per run, $((N / 20)) against the 1 ms fake; keys key:%012d, 3 bytes)"
	echo
	echo "| scenario | target | requests/s | p50 ms | p99 ms | upstream GET+MGET | per request | errors | other load |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
} >"$REPORT"

rb_run() { # NAME TEST CLIENTS KEYSPACE redis|fake TARGETS...
	local name=$1 test=$2 c=$3 r=$4 up=$5 t port upid csv errs rps p50 p99 cmds n
	shift 5
	port=$RPORT upid=$RPID
	[ "$up" = fake ] && port=$FPORT upid=$FPID
	n=$N
	[ "$up" = fake ] && n=$((N / 20))
	# redis-benchmark has no MGET test of its own: a command of ten random keys (each
	# __rand_int__ is drawn apart).
	local what=(-t "$test")
	if [ "$test" = mget ]; then
		what=(MGET)
		for _ in 1 2 3 4 5 6 7 8 9 10; do what+=(key:__rand_int__); done
	fi
	for t in "$@"; do
		proxy "$t" "$port"
		upstream_reset "$up"
		window_begin "$upid" "$PPID_"
		csv=$(taskset -c 1 redis-benchmark -p "$PPORT" -c "$c" -r "$r" -n "$n" --csv \
			"${what[@]}" 2>"$TMP/err" | tail -1)
		window_end "$upid" "$PPID_"
		cmds=$(upstream_cmds "$up")
		[ -n "$PPID_" ] && stop_pid "$PPID_"
		errs=$(grep -ci err "$TMP/err" || true)
		rps=$(awk -F'"' '{print $4}' <<<"$csv")
		p50=$(awk -F'"' '{print $10}' <<<"$csv")
		p99=$(awk -F'"' '{print $14}' <<<"$csv")
		echo "| $name | $t | $rps | $p50 | $p99 | $cmds | $(div "$cmds" "$n" %.3f) | $errs | $OTHER |" >>"$REPORT"
		log "redis-benchmark $name / $t: $rps requests/s, p99 $p99 ms, upstream $cmds, other $OTHER"
	done
}

rb_run "uniform GET, 50 conns" get 50 100000 redis direct twemproxy coalesced
rb_run "uniform GET, 200 conns" get 200 100000 redis direct twemproxy coalesced
rb_run "10 hot keys GET, 500 conns" get 500 10 redis direct twemproxy coalesced
rb_run "MGET of 10 keys, 50 conns" mget 50 100000 redis direct twemproxy coalesced
rb_run "1 ms upstream GET (fake), 200 conns" get 200 1000 fake twemproxy coalesced

{
	echo
	echo "## loadgen --protocol resp ($SECS s per run, $KEYS keys of $VSIZE bytes, every value checked)"
	echo
	echo "| scenario | target | ops/s | p50 ms | p99 ms | upstream GET+MGET | per request | errors | wrong values | other load | coalesced / twemproxy |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
} >"$TMP/lg.md"

SCEN=()
lg_run() { # NAME CONNS "LOADGEN ARGS" redis|fake TARGETS...
	local name=$1 c=$2 args=$3 up=$4 t port upid json cmds ops p50 p99 req
	shift 4
	SCEN+=("$name")
	port=$RPORT upid=$RPID
	[ "$up" = fake ] && port=$FPORT upid=$FPID
	for t in "$@"; do
		proxy "$t" "$port"
		upstream_reset "$up"
		window_begin "$upid" "$PPID_"
		# shellcheck disable=SC2086 # args is a list of options
		json=$(taskset -c 1 "$LG" --protocol resp --server "127.0.0.1:$PPORT" -c "$c" $args \
			-n "$KEYS" -s "$VSIZE" -t "$SECS" --label "$name/$t" 2>"$TMP/lg.err" | tail -n 1) || true
		window_end "$upid" "$PPID_"
		cmds=$(upstream_cmds "$up")
		[ -n "$PPID_" ] && stop_pid "$PPID_"
		if ! jq -e . >/dev/null 2>&1 <<<"$json"; then
			log "loadgen $name / $t produced no result: $(head -c 300 "$TMP/lg.err")"
			echo "| $name | $t | failed: $(head -c 100 "$TMP/lg.err" | tr '|\n' '  ') | | | | | | | | |" >>"$TMP/lg.md"
			continue
		fi
		read -r ops p50 p99 req < <(jq -r '"\(.ops_per_s) \(.p50_us / 1000) \(.p99_us / 1000) \(.completed)"' <<<"$json")
		OPS[$name/$t]=$ops P99[$name/$t]=$p99 UPR[$name/$t]=$(div "$cmds" "$req" %.6f)
		local ratio=""
		[ "$t" = coalesced ] && ratio=$(ratios "$name")
		printf '| %s | %s | %s | %.3f | %.3f | %s | %s | %s | %s | %s | %s |\n' "$name" "$t" "$ops" \
			"$p50" "$p99" "$cmds" "$(div "$cmds" "$req" %.3f)" "$(jq .errors <<<"$json")" \
			"$(jq .wrong_values <<<"$json")" "$OTHER" "$ratio" >>"$TMP/lg.md"
		log "loadgen $name / $t: $ops ops/s, p99 $(printf %.3f "$p99") ms, upstream $cmds, other $OTHER"
	done
}

lg_run "uniform GET, 50 conns" 50 "-d uniform" redis direct twemproxy coalesced
lg_run "uniform GET, 200 conns" 200 "-d uniform" redis direct twemproxy coalesced
lg_run "Zipf 0.99 GET, 50 conns" 50 "-d zipf:0.99" redis direct twemproxy coalesced
lg_run "Zipf 0.99 GET, 200 conns" 200 "-d zipf:0.99" redis direct twemproxy coalesced
lg_run "10 hot keys GET, 500 conns" 500 "-d hot:10" redis direct twemproxy coalesced
lg_run "MGET of 10 keys, 50 conns" 50 "-m 10" redis direct twemproxy coalesced
lg_run "1 ms upstream GET (fake), 200 conns" 200 "--values fake" fake twemproxy coalesced

# Issue 11's targets, from the loadgen table.
target() { # SCENARIO -> "want_ops want_fewer p99" (0: no such target)
	case $1 in
	uniform*) echo "1.3 0 p99" ;;
	Zipf* | *hot*) echo "1.5 5 -" ;;
	"1 ms"*) echo "20 0 -" ;;
	*) echo "0 0 -" ;;
	esac
}
{
	cat "$TMP/lg.md"
	echo
	echo "## Against issue 11's targets (loadgen rows, coalesced / twemproxy)"
	echo
	echo "| scenario | ops/s | p99 | upstream commands per request, twemproxy / coalesced | target | met |"
	echo "|---|---:|---:|---:|---|---|"
	for s in "${SCEN[@]}"; do
		read -r wo wf wp < <(target "$s")
		o=$(div "${OPS[$s/coalesced]:-}" "${OPS[$s/twemproxy]:-}")
		p=$(div "${P99[$s/coalesced]:-}" "${P99[$s/twemproxy]:-}")
		f=$(div "${UPR[$s/twemproxy]:-}" "${UPR[$s/coalesced]:-}" %.1f)
		want="-" met="-"
		if [ "$wo" != 0 ]; then
			want="≥ ${wo}× ops/s"
			[ "$wf" != 0 ] && want="$want, ≥ ${wf}× fewer upstream commands"
			[ "$wp" = p99 ] && want="$want, p99 no worse"
			met=$(awk -v o="$o" -v p="$p" -v f="$f" -v wo="$wo" -v wf="$wf" -v wp="$wp" 'BEGIN {
				ok = (o != "-" && o + 0 >= wo)
				if (wf > 0) ok = ok && f != "-" && f + 0 >= wf
				if (wp == "p99") ok = ok && p != "-" && p + 0 <= 1
				print ok ? "yes" : "no" }')
		fi
		echo "| $s | $(times_ "$o") | $(times_ "$p") | $(times_ "$f") | $want | $met |"
	done
	echo
	echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} >>"$REPORT"

cat "$REPORT"
