#!/bin/bash
# Benchmark: memcached direct vs twemproxy (nutcracker) vs coalesced, driven by loadgen.
#
# Run by `make bench` (which builds ./coalesced, build/fake_upstream and build/bench/loadgen
# first). Everything listens on 127.0.0.1, on free ports; every process started here is
# stopped by its PID at the end, also on failure or Ctrl-C.
#
# Environment:
#   BENCH_SECONDS=10      seconds of load per run (BENCH_SECONDS=2 for a smoke run)
#   BENCH_OUT=bench/results   where results.md, results.jsonl, scaling.png go
#   BENCH_ONLY=REGEX      run only the scenarios whose name matches (e.g. 'uniform|hot')
#   BENCH_TARGETS="direct nutcracker coalesced"   (also coalesced-t2: [server] threads = 2)
#   BENCH_KEYS=100000 BENCH_VALUE_SIZE=100 BENCH_SEED=1
#   BENCH_SET_RATIO=0.1   share of sets in the mixed scenario (keys mix:<i>, stored afresh before each run)
#   BENCH_IDLE_CONNS=10000  connections held in the idle scenario (50 of them loaded)
#   BENCH_PERF=auto|0|1   profile coalesced with perf in extra runs (uniform, hot)
#   COALESCED_BIN, FAKE_UPSTREAM, LOADGEN   the binaries (defaults under the repository)
#
# Pinning (2-core machine): memcached, the fake upstream and the proxy on CPU 0, loadgen and
# the samplers on CPU 1. With fewer than 2 CPUs, or BENCH_PIN=0, nothing is pinned.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${COALESCED_BIN:-$ROOT/coalesced}
FAKE=${FAKE_UPSTREAM:-$ROOT/build/fake_upstream}
LG=${LOADGEN:-$ROOT/build/bench/loadgen}
SECS=${BENCH_SECONDS:-10}
OUT=${BENCH_OUT:-$ROOT/bench/results}
ONLY=${BENCH_ONLY:-}
TARGETS=${BENCH_TARGETS:-direct nutcracker coalesced}
KEYS=${BENCH_KEYS:-100000}
VSIZE=${BENCH_VALUE_SIZE:-100}
SEED=${BENCH_SEED:-1}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
SET_RATIO=${BENCH_SET_RATIO:-0.1}
MIX_PREFIX=mix:
PERF=${BENCH_PERF:-auto}

log() { printf 'bench: %s\n' "$*" >&2; }
fail() {
	log "$*"
	exit 1
}

for tool in memcached nutcracker jq gnuplot taskset awk; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool not found: run 'sh tests/bench/deps.sh' as root"
done
for f in "$BIN" "$FAKE" "$LG"; do
	[ -x "$f" ] || fail "$f is missing: run 'make bench' (or make $f)"
done
case $SECS in '' | *[!0-9.]*) fail "BENCH_SECONDS must be a number of seconds" ;; esac

if [ "$(nproc)" -ge 2 ] && [ "${BENCH_PIN:-1}" != 0 ]; then
	PIN_SRV="taskset -c 0"
	PIN_LG="taskset -c 1"
	PINNED=yes
else
	PIN_SRV=""
	PIN_LG=""
	PINNED=no
	log "fewer than 2 CPUs, or BENCH_PIN=0: nothing is pinned"
fi

# ---------------------------------------------------------------- processes

PIDS=""
TMP=$(mktemp -d "${TMPDIR:-/tmp}/coalesced-bench.XXXXXX")

track() { PIDS="$PIDS $1"; }
untrack() {
	local p keep=""
	for p in $PIDS; do [ "$p" = "$1" ] || keep="$keep $p"; done
	PIDS=$keep
}
# alive PID: running and not a zombie
alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL; reaps it. Sets STOP_STATUS.
stop_pid() {
	local pid=$1 i
	STOP_STATUS=0
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
	wait "$pid" 2>/dev/null || STOP_STATUS=$?
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

# wait_port PORT PID: until 127.0.0.1:PORT accepts (PID must stay alive), at most 10 s
wait_port() {
	local i
	for ((i = 0; i < 200; i++)); do
		alive "$2" || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	return 1
}

free_port() { "$LG" --free-port; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# thread_ticks PID: a JSON object, thread id -> user+system ticks of that thread
thread_ticks() {
	local f out="" tid
	for f in /proc/"$1"/task/*/stat; do
		[ -r "$f" ] || continue
		tid=${f%/stat}
		tid=${tid##*/}
		# the name field may hold spaces: count from the end of ")"
		out="$out,\"$tid\":$(sed 's/^.*) //' "$f" | awk '{print $12 + $13}')"
	done
	echo "{${out#,}}"
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)
# cpu_all: "busy steal" ticks of all CPUs (busy = user nice system irq softirq), from /proc/stat
cpu_all() { awk '/^cpu[0-9]/ { b += $2 + $3 + $4 + $7 + $8; s += $9 } END { print b, s }' /proc/stat; }

# rss_sampler PID FILE: the largest VmRSS seen, every 0.2 s, written to FILE
rss_sampler() {
	local pid=$1 f=$2 max=0 k v rest
	while [ -r "/proc/$pid/status" ]; do
		while read -r k v rest; do
			if [ "$k" = VmRSS: ]; then
				if [ "$v" -gt "$max" ]; then
					max=$v
					echo "$max" >"$f"
				fi
				break
			fi
		done <"/proc/$pid/status" 2>/dev/null || break
		sleep 0.2
	done
}

# stat_lines PORT COMMAND: "name value" pairs of a STAT reply
stat_lines() {
	"$LG" --server "127.0.0.1:$1" --command "$2" 2>/dev/null | tr -d '\r' |
		awk '$1 == "STAT" { print $2, $3 }'
}
stat_get() { awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }' <<<"$1"; }

# ---------------------------------------------------------------- limits

HARD=$(ulimit -Hn)
[ "$HARD" = unlimited ] && HARD=1048576
ulimit -n 65536 2>/dev/null || ulimit -n "$HARD"
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
MAXC=$((NOFILE - 100))
[ "$MAXC" -gt 1000000 ] && MAXC=1000000
if [ "$NOFILE" -lt $((IDLE_CONNS + 100)) ]; then
	log "open-file limit $NOFILE (hard $HARD) is too low for $IDLE_CONNS connections: the idle scenario will fail"
fi

# ---------------------------------------------------------------- upstreams

mkdir -p "$OUT"
MC_USER=()
[ "$(id -u)" -eq 0 ] && MC_USER=(-u root)

MC_PORT=$(free_port)
# shellcheck disable=SC2086
$PIN_SRV memcached -U 0 -l 127.0.0.1 -p "$MC_PORT" -m 1024 -c "$MAXC" -t 1 "${MC_USER[@]}" \
	>"$TMP/memcached.log" 2>&1 &
MC_PID=$!
track "$MC_PID"
wait_port "$MC_PORT" "$MC_PID" || fail "memcached did not start: $(head -c 500 "$TMP/memcached.log")"

log "preloading $KEYS keys of $VSIZE bytes into memcached on 127.0.0.1:$MC_PORT"
PRELOAD=$("$LG" --server "127.0.0.1:$MC_PORT" --preload -n "$KEYS" -s "$VSIZE") ||
	fail "preload failed: $PRELOAD"
log "$PRELOAD"

# The mixed scenario writes new versions of its keys (MIX_PREFIX, apart from the read-only
# scenarios' keys); each run starts from the preloaded version 0, as its loadgen expects.
preload_mix() {
	local r
	r=$("$LG" --server "127.0.0.1:$MC_PORT" --preload --prefix "$MIX_PREFIX" -n "$KEYS" -s "$VSIZE") ||
		fail "preload of $MIX_PREFIX keys failed: $r"
}

FAKE_PORT=""
FAKE_PID=""
start_fake() {
	$PIN_SRV "$FAKE" -p 0 >"$TMP/fake.out" 2>"$TMP/fake.log" &
	FAKE_PID=$!
	track "$FAKE_PID"
	local i
	for ((i = 0; i < 100; i++)); do
		FAKE_PORT=$(awk '/^PORT /{print $2}' "$TMP/fake.out" 2>/dev/null)
		[ -n "$FAKE_PORT" ] && break
		alive "$FAKE_PID" || break
		sleep 0.05
	done
	[ -n "$FAKE_PORT" ] || fail "fake upstream did not start: $(head -c 500 "$TMP/fake.log")"
	local r
	r=$("$LG" --server "127.0.0.1:$FAKE_PORT" --command 'fake_mode serial 1' | tr -d '\r')
	[ "$r" = OK ] || fail "fake_mode serial 1: '$r'"
}

# ---------------------------------------------------------------- proxies

EMPTY_INI=$TMP/coalesced.ini
echo "# empty: built-in defaults, overridden with -o" >"$EMPTY_INI"
"$BIN" -c "$EMPTY_INI" -t >/dev/null 2>&1 || fail "$BIN -t refuses an empty configuration"

PROXY_PID=""
PROXY_PORT=""
PROXY_STATS_PORT=""
PROXY_LOG=""

# start_coalesced UPSTREAM_PORT [-o ...]...
start_coalesced() {
	local up=$1
	shift
	PROXY_PORT=$(free_port)
	PROXY_LOG=$TMP/coalesced.log
	# shellcheck disable=SC2086
	$PIN_SRV "$BIN" -c "$EMPTY_INI" -o "server.listen=127.0.0.1:$PROXY_PORT" \
		-o "upstream.servers=127.0.0.1:$up" -o "server.max_clients=$MAXC" \
		-o server.log_level=warn "$@" >"$PROXY_LOG" 2>&1 &
	PROXY_PID=$!
	track "$PROXY_PID"
	wait_port "$PROXY_PORT" "$PROXY_PID"
}

# start_nutcracker UPSTREAM_PORT: a YAML pool with the same upstream settings as coalesced's
# defaults (2 server connections, 1000 ms timeout)
start_nutcracker() {
	local up=$1
	PROXY_PORT=$(free_port)
	PROXY_STATS_PORT=$(free_port)
	PROXY_LOG=$TMP/nutcracker.log
	cat >"$TMP/nutcracker.yml" <<EOF
bench:
  listen: 127.0.0.1:$PROXY_PORT
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
	nutcracker -t -c "$TMP/nutcracker.yml" >/dev/null 2>&1 || fail "nutcracker rejects $TMP/nutcracker.yml"
	$PIN_SRV nutcracker -c "$TMP/nutcracker.yml" -s "$PROXY_STATS_PORT" -a 127.0.0.1 -i 100 \
		>"$PROXY_LOG" 2>&1 &
	PROXY_PID=$!
	track "$PROXY_PID"
	wait_port "$PROXY_PORT" "$PROXY_PID"
}

# ---------------------------------------------------------------- one run

# run_one SCENARIO TARGET CONNS "LOADGEN ARGS" UPSTREAM(mc|fake) "PROXY -o ARGS" [perf]
# Appends one JSON line to results.jsonl (or, with perf, writes a profile instead).
run_one() {
	local sc=$1 tg=$2 conns=$3 args=$4 up=$5 popts=$6 mode=${7:-}
	local up_port up_pid port pid started=yes
	if [ "$up" = fake ]; then
		[ -n "$FAKE_PID" ] || start_fake
		up_port=$FAKE_PORT
		up_pid=$FAKE_PID
	else
		up_port=$MC_PORT
		up_pid=$MC_PID
	fi
	PROXY_PID=""
	PROXY_STATS_PORT=""
	PROXY_LOG=""
	case $tg in
	direct)
		port=$up_port
		pid=$up_pid
		;;
	nutcracker)
		start_nutcracker "$up_port" || started=no
		port=$PROXY_PORT
		pid=$PROXY_PID
		;;
	coalesced | coalesced-t2)
		local topt=""
		[ "$tg" = coalesced-t2 ] && topt="-o server.threads=2"
		# shellcheck disable=SC2086
		start_coalesced "$up_port" $topt $popts || started=no
		port=$PROXY_PORT
		pid=$PROXY_PID
		;;
	*) fail "unknown target $tg" ;;
	esac
	local base
	base=$(jq -cn --arg s "$sc" --arg t "$tg" --arg u "$up" --arg o "$popts" --argjson secs "$SECS" \
		'{scenario: $s, target: $t, upstream: $u, proxy_opts: $o, bench_seconds: $secs}')
	if [ "$started" = no ]; then
		log "$sc/$tg: $tg did not start: $(tail -n 3 "$PROXY_LOG" 2>/dev/null | tr '\n' ' ')"
		jq -c --arg l "$(tail -n 5 "$PROXY_LOG" 2>/dev/null)" '. + {failed: "target did not start", proxy_log: $l}' \
			<<<"$base" >>"$OUT/results.jsonl"
		[ -n "$PROXY_PID" ] && stop_pid "$PROXY_PID"
		return 0
	fi

	local upcmd=stats
	[ "$up" = fake ] && upcmd=fake_stats
	local us0 us1 cpu0 cpu1 tcpu0 tcpu1 ucpu0 ucpu1 rss0 rss1 rsspeak sampler perfpid="" statpid=""
	local all0 all1 steal0 steal1
	us0=$(stat_lines "$up_port" "$upcmd")
	cpu0=$(cpu_ticks "$pid")
	tcpu0=$(thread_ticks "$pid")
	ucpu0=$(cpu_ticks "$up_pid")
	rss0=$(rss_kb "$pid")
	read -r all0 steal0 <<<"$(cpu_all)"
	echo "$rss0" >"$TMP/rss"
	rss_sampler "$pid" "$TMP/rss" &
	sampler=$!
	track "$sampler"
	taskset -pc 1 "$sampler" >/dev/null 2>&1 || true

	if [ "$mode" = perf ]; then
		$PIN_LG perf record -F 999 -p "$pid" -o "$TMP/perf.data" -- sleep "$SECS" \
			>"$TMP/perf-record.log" 2>&1 &
		perfpid=$!
		track "$perfpid"
		$PIN_LG perf stat -e raw_syscalls:sys_enter -x, -o "$TMP/perf-stat.txt" -p "$pid" \
			-- sleep "$SECS" >/dev/null 2>&1 &
		statpid=$!
		track "$statpid"
	fi

	local extra_lg=()
	case $sc in idle*) extra_lg=(--connect-timeout 60) ;; esac
	local json
	# shellcheck disable=SC2086
	json=$($PIN_LG "$LG" --server "127.0.0.1:$port" -c "$conns" $args -n "$KEYS" -s "$VSIZE" \
		-t "$SECS" --seed "$SEED" --label "$sc/$tg" "${extra_lg[@]}" 2>"$TMP/loadgen.err" | tail -n 1) || true

	read -r all1 steal1 <<<"$(cpu_all)"
	stop_pid "$sampler"
	if [ -n "$perfpid" ]; then
		wait "$perfpid" 2>/dev/null || true
		untrack "$perfpid"
		wait "$statpid" 2>/dev/null || true
		untrack "$statpid"
	fi
	rsspeak=$(cat "$TMP/rss" 2>/dev/null || echo 0)
	[ "$tg" = nutcracker ] && sleep 0.3 # its stats are aggregated every 100 ms
	us1=$(stat_lines "$up_port" "$upcmd")
	cpu1=$(cpu_ticks "$pid")
	tcpu1=$(thread_ticks "$pid")
	ucpu1=$(cpu_ticks "$up_pid")
	rss1=$(rss_kb "$pid")

	local pstats="" nreq=null alive_flag=true exit_status=null plog=""
	alive "$pid" || alive_flag=false
	case $tg in
	coalesced*) pstats=$(stat_lines "$port" stats) ;;
	nutcracker)
		nreq=$("$LG" --server "127.0.0.1:$PROXY_STATS_PORT" --dump 2>/dev/null |
			jq '[.bench | to_entries[] | select(.value | type == "object") | .value.requests] | add // 0' 2>/dev/null) || nreq=null
		[ -n "$nreq" ] || nreq=null
		;;
	esac
	if [ -n "$PROXY_PID" ]; then
		stop_pid "$PROXY_PID"
		exit_status=$STOP_STATUS
		if [[ $tg == coalesced* ]]; then
			# The threads bench pins both threads to one core on purpose (threads.sh).
			plog=$(grep -v -e 'running as root' -e 'take turns' "$PROXY_LOG" | head -n 5 || true)
		else
			plog=$(grep -iE 'error|fail|timed ?out|eject' "$PROXY_LOG" | head -n 5 || true)
		fi
	fi

	if [ -z "$json" ] || ! jq -e . >/dev/null 2>&1 <<<"$json"; then
		log "$sc/$tg: loadgen produced no result: $(head -c 400 "$TMP/loadgen.err")"
		jq -c --arg e "$(head -c 400 "$TMP/loadgen.err")" '. + {failed: ("loadgen: " + $e)}' \
			<<<"$base" >>"$OUT/results.jsonl"
		return 0
	fi

	if [ "$mode" = perf ]; then
		local f="$OUT/perf-$sc-$tg.txt" sys
		sys=$(awk -F, '/raw_syscalls/ {print $1}' "$TMP/perf-stat.txt" 2>/dev/null | head -n 1)
		{
			echo "# perf profile of $tg, scenario $sc ($(jq -r '"\(.conns) conns, \(.dist), \(.ops_per_s) ops/s"' <<<"$json"))"
			echo "# extra run (not in results.md), perf record -F 999 on CPU 1, $SECS s"
			echo "# syscalls by $tg during the run: ${sys:-?}; client requests: $(jq .completed <<<"$json")"
			if [ -f "$TMP/perf.data" ]; then
				echo
				echo "## by shared object"
				perf report -i "$TMP/perf.data" --stdio --no-children --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 12 || true
				echo
				echo "## by symbol (top 60)"
				perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 60 || true
			else
				echo "(perf record failed: $(head -c 300 "$TMP/perf-record.log"))"
			fi
		} >"$f"
		rm -f "$TMP/perf.data"
		log "$sc/$tg (profiled): $(jq -r '"\(.ops_per_s) ops/s"' <<<"$json"), syscalls ${sys:-?} -> $f"
		return 0
	fi

	jq -c --argjson base "$base" \
		--arg us0 "$us0" --arg us1 "$us1" --arg ps "$pstats" --argjson nreq "$nreq" \
		--argjson cpu0 "$cpu0" --argjson cpu1 "$cpu1" --argjson tcpu0 "$tcpu0" --argjson tcpu1 "$tcpu1" --argjson ucpu0 "$ucpu0" --argjson ucpu1 "$ucpu1" \
		--argjson tck "$CLK_TCK" --argjson rss0 "${rss0:-0}" --argjson rss1 "${rss1:-0}" \
		--argjson rsspeak "${rsspeak:-0}" --argjson alive "$alive_flag" --argjson exit "$exit_status" \
		--argjson busy "$((all1 - all0))" --argjson steal "$((steal1 - steal0))" \
		--arg plog "$plog" '
		def stats($s): [$s | split("\n")[] | select(length > 0) | split(" ") | {key: .[0], value: (.[1] as $v | $v | tonumber? // $v)}] | from_entries;
		(stats($us0)) as $a | (stats($us1)) as $b | (stats($ps)) as $p |
		(if $base.upstream == "fake" then
			{up_req: (($b.requests // 0) - ($a.requests // 0)), up_keys: (($b.keys // 0) - ($a.keys // 0)), up_hits: null, up_sets: null}
		 else
			{up_sets: (($b.cmd_set // 0) - ($a.cmd_set // 0)),
			 up_req: (if $base.target == "direct" then .requests - (.sets // 0)
			          elif ($base.target | startswith("coalesced")) then ($p.upstream_batches // null)
			          elif $nreq == null then null
			          else $nreq - (.sets // 0) end),
			 up_keys: (($b.cmd_get // 0) - ($a.cmd_get // 0)),
			 up_hits: (($b.get_hits // 0) - ($a.get_hits // 0))}
		 end) as $u |
		((($cpu1 - $cpu0) / $tck)) as $cpu |
		. + $base + {
			upstream_requests: $u.up_req, upstream_keys: $u.up_keys, upstream_hits: $u.up_hits, upstream_sets: $u.up_sets,
			upstream_requests_per_key: (if .keys > 0 and $u.up_req != null then $u.up_req / .keys else null end),
			upstream_keys_per_key: (if .keys > 0 then $u.up_keys / .keys else null end),
			proxy_cpu_s: $cpu, upstream_cpu_s: (($ucpu1 - $ucpu0) / $tck),
			proxy_thread_cpu_s: [$tcpu1 | to_entries | sort_by(.key | tonumber)[] | (.value - ($tcpu0[.key] // 0)) / $tck],
			cpu_s_per_mkeys: (if .keys > 0 then $cpu / (.keys / 1e6) else null end),
			rss_kb_before: $rss0, rss_kb_peak: ([$rsspeak, $rss1] | max), rss_kb_after: $rss1,
			rss_kb_per_idle_conn: (if .idle_ok > 0 then ((([$rsspeak, $rss1] | max) - $rss0) / .idle_ok) else null end),
			proxy_alive: $alive, proxy_exit: $exit, proxy_log: $plog,
			steal_s: ($steal / $tck),
			other_cpu_s: ([0, ($busy / $tck) - $cpu - (if $base.target == "direct" then 0 else (($ucpu1 - $ucpu0) / $tck) end) - (.cpu_s // 0)] | max)
		} + (if ($base.target | startswith("coalesced")) then
			{coalesced: ($p | {cmd_get, cmd_set, get_keys, keys_coalesced, upstream_batches, upstream_keys, upstream_errors, upstream_timeouts, upstream_retries, get_hits, get_misses, backpressure_pauses})}
		 else {} end)' <<<"$json" >>"$OUT/results.jsonl"
	log "$(tail -n 1 "$OUT/results.jsonl" | jq -r '"\(.scenario)/\(.target): \(.ops_per_s) ops/s p50 \(.p50_us) us p99 \(.p99_us) us, errors \(.errors), wrong \(.wrong_values), up req/key \(.upstream_requests_per_key | . * 1000 | round / 1000), cpu \(.proxy_cpu_s) s, loadgen cpu \(.cpu_s) s, other cpu \(.other_cpu_s | . * 100 | round / 100) s"')"
	return 0
}

# ---------------------------------------------------------------- scenarios

# name|conns|loadgen args|upstream|targets (all or a list)|coalesced -o options|description
SCENARIOS=(
	"uniform|50|-d uniform|mc|all||uniform keys, 50 connections"
	"zipf|200|-d zipf:0.99|mc|all||Zipf 0.99, 200 connections"
	"mixed|200|-d zipf:0.99 --set-ratio $SET_RATIO --prefix $MIX_PREFIX|mc|all||Zipf 0.99, 200 connections, $(awk -v r="$SET_RATIO" 'BEGIN { printf "%g %% gets, %g %% sets", 100 - r * 100, r * 100 }') of $VSIZE-byte values (every get checked for its key and a version that is possible)"
	"hot|500|-d hot:10|mc|all||10 hot keys, 500 connections"
	"multiget|50|-d uniform -m 10|mc|all||10-key gets (uniform), 50 connections"
	"pipelined|50|-d uniform -P 16|mc|all||uniform, 50 connections x 16 pipelined requests"
	"slow|200|-d uniform --values fake|fake|all||slow upstream (1 request at a time, 1 ms each), uniform, 200 connections"
	"idle|50|-d uniform --idle $((IDLE_CONNS - 50)) --idle-interval 5|mc|all||$IDLE_CONNS connections, $((IDLE_CONNS - 50)) idle (1 get per 5 s), 50 loaded"
	"uniform-10|10|-d uniform|mc|all||uniform, 10 connections (scaling)"
	"uniform-200|200|-d uniform|mc|all||uniform, 200 connections (scaling)"
	"uniform-500|500|-d uniform|mc|all||uniform, 500 connections (scaling)"
)
# Scaling plot: uniform keys at these scenarios' connection counts.
SCALING="uniform-10 uniform uniform-200 uniform-500"

# Natural batching: upstream.pipeline_depth on the Zipf scenario; and the
# leeway's price and effect on the hot-key storm.
PIPELINE_DEPTH=yes
for d in 1 4 32; do
	SCENARIOS+=("zipf-pd$d|200|-d zipf:0.99|mc|coalesced|-o upstream.pipeline_depth=$d|Zipf 0.99, 200 connections, upstream.pipeline_depth=$d")
done
for l in 0.2 1; do
	SCENARIOS+=("hot-leeway$l|500|-d hot:10|mc|coalesced|-o batch.leeway_ms=$l|10 hot keys, 500 connections, batch.leeway_ms=$l")
done

: >"$OUT/results.jsonl"
rm -f "$OUT"/perf-*.txt
T_BEGIN=$(date -u +%FT%TZ)
for spec in "${SCENARIOS[@]}"; do
	IFS='|' read -r name conns args up targets popts desc <<<"$spec"
	if [ -n "$ONLY" ] && ! [[ $name =~ ^($ONLY)$ ]]; then continue; fi
	log "== $name: $desc"
	for tg in $TARGETS; do
		[ "$targets" = all ] || [[ " $targets " == *" $tg "* ]] || continue
		case $args in *--set-ratio*) preload_mix ;; esac
		run_one "$name" "$tg" "$conns" "$args" "$up" "$popts"
	done
done

# Profiles: extra runs of the proxies with perf attached (not part of the table).
PROFILED=no
if [ "$PERF" != 0 ] && command -v perf >/dev/null 2>&1; then
	if perf stat -e cpu-clock -- true >/dev/null 2>&1; then
		PROFILED=yes
		for spec in "${SCENARIOS[@]}"; do
			IFS='|' read -r name conns args up targets popts desc <<<"$spec"
			case $name in uniform | hot) ;; *) continue ;; esac
			if [ -n "$ONLY" ] && ! [[ $name =~ ^($ONLY)$ ]]; then continue; fi
			for tg in nutcracker coalesced coalesced-t2; do
				[[ " $TARGETS " == *" $tg "* ]] || continue
				run_one "$name" "$tg" "$conns" "$args" "$up" "$popts" perf
			done
		done
	elif [ "$PERF" = 1 ]; then
		log "perf does not work here: no profiles"
	fi
fi

# ---------------------------------------------------------------- report

EVICTIONS=$(stat_get "$(stat_lines "$MC_PORT" stats)" evictions)
MD=$OUT/results.md
{
	echo "# Benchmark results"
	echo
	echo "Generated by \`make bench\` (tests/bench/run.sh) on $T_BEGIN, $SECS s per run."
	echo
	echo "## Machine"
	echo
	echo "* CPUs: $(nproc) ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo))"
	echo "* memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	# shellcheck disable=SC1091
	echo "* kernel: $(uname -sr); $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
	echo "* $(memcached -V), $(nutcracker -V 2>&1 | head -n 1 | sed 's/^This is //'), $("$BIN" -V)$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null | sed 's/^/ (commit /; s/$/)/')"
	echo "* pinned: $PINNED (memcached, the fake upstream and the proxy on CPU 0; loadgen on CPU 1); open-file limit $NOFILE"
	echo
	echo "## Setup"
	echo
	echo "* $KEYS keys \`key:<i>\` of $VSIZE bytes preloaded into one memcached (\`-t 1 -m 1024\`, evictions at the end: $EVICTIONS);"
	echo "  the slow scenario uses the fake upstream (\`fake_mode serial 1\`: one request at a time, 1 ms each) instead."
	echo "* loadgen: one request outstanding per connection unless stated, seed $SEED; every value is checked."
	echo "* nutcracker: one pool, \`server_connections: 2\`, \`timeout: 1000\` (as coalesced's defaults); coalesced: defaults plus \`max_clients\`."
	echo "* Targets: **direct** = loadgen talks to the upstream itself; then the CPU and RSS columns are the upstream's own."
	echo "* upstream req/key: upstream get commands per key asked by clients (memcached direct: loadgen's requests; nutcracker: its"
	echo "  per-server \`requests\` statistic; coalesced: its \`upstream_batches\`; slow scenario: the fake upstream's own count)."
	echo "  upstream keys/key: keys the upstream was asked for (memcached \`cmd_get\` delta, which counts keys) per client key."
	echo "* CPU s/M keys: user+system CPU of the proxy (/proc/PID/stat) per million client keys. RSS: peak VmRSS during the run."
	echo "* other load %: CPU time used on the machine during the run by anything but loadgen, the proxy and its upstream"
	echo "  (/proc/stat busy time minus theirs, including interrupt time), as a share of all CPUs: a high value marks a disturbed run."
	echo
	echo "## Results"
	echo
	echo "| scenario | target | conns | ops/s | keys/s | p50 ms | p99 ms | p99.9 ms | upstream req/key | upstream keys/key | CPU s/M keys | RSS MiB | errors | wrong values | other load % |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	jq -r --argjson ncpu "$(nproc)" '
		def f($n; $d): if $n == null then "–" else ($n * pow(10; $d) | round / pow(10; $d) | tostring) end;
		if .failed then "| \(.scenario) | \(.target) | | **failed: \(.failed | gsub("\\|"; "/") | gsub("\n"; " "))** | | | | | | | | | | | |"
		else "| \(.scenario) | \(.target)\(if .proxy_opts != "" then " (" + (.proxy_opts | sub("-o upstream\\."; "")) + ")" else "" end) | \(.conns + .idle)\(if .pipeline > 1 then "×" + (.pipeline | tostring) else "" end) | \(.ops_per_s) | \(.keys_per_s) | \(f(.p50_us / 1000; 2)) | \(f(.p99_us / 1000; 2)) | \(f(.p999_us / 1000; 2)) | \(f(.upstream_requests_per_key; 3)) | \(f(.upstream_keys_per_key; 3)) | \(f(.cpu_s_per_mkeys; 2)) | \(f(.rss_kb_peak / 1024; 1)) | \(.errors) | \(.wrong_values) | \(if .elapsed_s > 0 then f(.other_cpu_s / (.elapsed_s * $ncpu) * 100; 0) else "–" end) |" end
	' "$OUT/results.jsonl"
	echo
	echo "Scenarios:"
	echo
	for spec in "${SCENARIOS[@]}"; do
		IFS='|' read -r name conns args up targets popts desc <<<"$spec"
		if [ -n "$ONLY" ] && ! [[ $name =~ ^($ONLY)$ ]]; then continue; fi
		echo "* \`$name\`: $desc (\`loadgen -c $conns $args\`)"
	done
	echo
	if jq -se 'any(.[]; .scenario == "idle")' "$OUT/results.jsonl" >/dev/null 2>&1; then
		echo "## Idle connections"
		echo
		echo "| target | connections held | failed | closed by the server | errors | RSS before MiB | RSS peak MiB | KiB per idle connection |"
		echo "|---|--:|--:|--:|--:|--:|--:|--:|"
		jq -r 'select(.scenario == "idle" and (.failed | not)) |
			"| \(.target) | \(.conns_ok) | \(.conns_failed) | \(.conns_closed) | \(.errors) | \(.rss_kb_before / 1024 * 10 | round / 10) | \(.rss_kb_peak / 1024 * 10 | round / 10) | \(if .rss_kb_per_idle_conn then (.rss_kb_per_idle_conn * 100 | round / 100) else "–" end) |"' "$OUT/results.jsonl"
		echo
	fi
	if jq -se 'any(.[]; (.sets // 0) > 0)' "$OUT/results.jsonl" >/dev/null 2>&1; then
		echo "## Mixed reads and writes"
		echo
		echo "Reads per client get: keys memcached was asked for (\`cmd_get\` delta) per client get; for coalesced also its"
		echo "\`upstream_batches\` (get commands sent upstream) per client get. Sets upstream: memcached's \`cmd_set\` delta."
		echo "A get is wrong unless it returns a well-formed value of its key of a version already sent and not older than"
		echo "the key's floor when the get was sent (stale); see tests/bench/loadgen.c."
		echo
		echo "| scenario | target | ops/s | gets/s | sets/s | p50 ms | p99 ms | p99.9 ms | upstream keys / client get | upstream gets / client get | sets upstream / client sets | errors | wrong values | stale |"
		echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
		jq -r 'def f($n; $d): if $n == null then "–" else ($n * pow(10; $d) | round / pow(10; $d) | tostring) end;
			select((.sets // 0) > 0 and (.failed | not)) |
			"| \(.scenario) | \(.target) | \(.ops_per_s) | \(.gets_per_s) | \(if .elapsed_s > 0 then (.sets / .elapsed_s | round) else "–" end) | \(f(.p50_us / 1000; 2)) | \(f(.p99_us / 1000; 2)) | \(f(.p999_us / 1000; 2)) | \(f(if .gets > 0 then .upstream_keys / .gets else null end; 3)) | \(f(if .gets > 0 and .upstream_requests != null then .upstream_requests / .gets else null end; 4)) | \(.upstream_sets) / \(.sets) | \(.errors) | \(.wrong_values) | \(.stale_values) |"' "$OUT/results.jsonl"
		echo
		jq -rs 'group_by(.scenario)[] | select(.[0].sets > 0) |
			(map(select(.target == "coalesced" and (.failed | not)))[0]) as $c |
			(map(select(.target == "nutcracker" and (.failed | not)))[0]) as $n |
			select($c != null) |
			"* \($c.scenario): coalesced / twemproxy throughput \(if $n then ($c.ops_per_s / $n.ops_per_s * 100 | round / 100 | tostring) + "×" else "–" end) (target ≥ 1.5×); " +
			"client gets per upstream key \(if $c.upstream_keys > 0 then ($c.gets / $c.upstream_keys * 100 | round / 100 | tostring) + "×" else "–" end), " +
			"per upstream get command \(if ($c.upstream_requests // 0) > 0 then ($c.gets / $c.upstream_requests * 10 | round / 10 | tostring) + "×" else "–" end) (target ≥ 5× fewer upstream reads); " +
			"p99 \($c.p99_us / 1000 * 100 | round / 100) ms vs twemproxy \(if $n then ($n.p99_us / 1000 * 100 | round / 100 | tostring) else "–" end) ms (target: no worse)."' "$OUT/results.jsonl"
		echo
	fi
	if [ "$PIPELINE_DEPTH" = no ]; then
		echo "upstream.pipeline_depth comparison: not run (this coalesced does not know the key; see the HOOK in tests/bench/run.sh)."
		echo
	fi
	echo "## Problems"
	echo
	problems=$(jq -r '
		if .failed then "* \(.scenario)/\(.target): \(.failed)"
		else
			[ (if .errors > 0 then "\(.errors) errors (server_errors \(.server_errors), client_errors \(.client_errors), ERROR \(.error_lines), protocol \(.protocol_errors), lost \(.lost_requests), unanswered \(.unanswered))" else empty end),
			  (if .wrong_values > 0 then "\(.wrong_values) wrong values\(if (.stale_values // 0) > 0 then " (\(.stale_values) stale)" else "" end)" else empty end),
			  (if (.sets // 0) > 0 and .upstream_sets != null and .upstream_sets != .sets then "memcached counted \(.upstream_sets) sets, loadgen sent \(.sets)" else empty end),
			  (if .conns_failed > 0 then "\(.conns_failed) connections failed" else empty end),
			  (if .conns_closed > 0 then "\(.conns_closed) connections closed by the server" else empty end),
			  (if .misses > 0 and .upstream != "fake" then "\(.misses) misses" else empty end),
			  (if .proxy_alive == false then "the target died during the run (exit status \(.proxy_exit))" else empty end),
			  (if (.target | startswith("coalesced")) and .proxy_exit != null and .proxy_exit != 0 then "coalesced exited with status \(.proxy_exit) on SIGTERM" else empty end),
			  (if .first_problem != "" then "loadgen: \(.first_problem)" else empty end),
			  (if .upstream == "mc" and .upstream_hits != null and .upstream_hits != .upstream_keys then "memcached missed \(.upstream_keys - .upstream_hits) of \(.upstream_keys) keys" else empty end),
			  (if .coalesced and .upstream == "mc" and .coalesced.upstream_keys != .upstream_keys then "coalesced reports upstream_keys \(.coalesced.upstream_keys) but memcached counted \(.upstream_keys)" else empty end),
			  (if .coalesced and .coalesced.get_hits != .hits then "coalesced reports get_hits \(.coalesced.get_hits) but loadgen counted \(.hits) hits" else empty end),
			  (if (.proxy_log // "") != "" then "log: \(.proxy_log | gsub("\n"; " / "))" else empty end)
			] as $p | if ($p | length) > 0 then "* \(.scenario)/\(.target): " + ($p | join("; ")) else empty end
		end' "$OUT/results.jsonl")
	if [ -n "$problems" ]; then echo "$problems"; else echo "None: no errors, no wrong values, no lost connections."; fi
	echo
	echo "## Files"
	echo
	echo "* results.jsonl: one JSON line per run (loadgen's line plus the upstream and proxy measurements)."
	echo "* scaling.png: throughput and p99 against connection count (uniform keys), per target."
	if [ "$PROFILED" = yes ]; then
		echo "* perf-*.txt: flat perf profiles of nutcracker and coalesced in extra runs of the uniform and hot scenarios."
	fi
} >"$MD"

# Scaling plot
plot_title() { if [ "$1" = direct ]; then echo "memcached direct"; else echo "$1"; fi; }
PLOT=()
for tg in $TARGETS; do
	jq -r --arg t "$tg" --arg s " $SCALING " '.scenario as $sc | select((.failed | not) and .target == $t and ($s | contains(" " + $sc + " "))) |
		"\(.conns) \(.ops_per_s) \(.p99_us / 1000)"' "$OUT/results.jsonl" | sort -n >"$TMP/scale-$tg.dat"
	[ -s "$TMP/scale-$tg.dat" ] && PLOT+=("$tg")
done
if [ "${#PLOT[@]}" -gt 0 ]; then
	{
		echo "set terminal pngcairo size 1200,480 font ',10'"
		echo "set output '$OUT/scaling.png'"
		echo "set multiplot layout 1,2 title 'uniform keys over $KEYS keys, 1 request outstanding per connection, $SECS s per point'"
		xs=$(sort -nu "$TMP"/scale-*.dat | awk '{print $1}' | sort -nu | paste -sd, -)
		echo "set logscale x; set xtics ($xs); set xrange [${xs%%,*} * 0.7 : ${xs##*,} * 1.4]"
		echo "set grid; set key top left"
		echo "set xlabel 'client connections'; set ylabel 'requests/s'; set yrange [0:*]"
		printf "plot "
		sep=""
		for tg in "${PLOT[@]}"; do
			printf "%s'%s' using 1:2 with linespoints lw 2 title '%s'" "$sep" "$TMP/scale-$tg.dat" "$(plot_title "$tg")"
			sep=", "
		done
		echo
		echo "set ylabel 'p99 latency (ms)'; set key top left"
		printf "plot "
		sep=""
		for tg in "${PLOT[@]}"; do
			printf "%s'%s' using 1:3 with linespoints lw 2 title '%s'" "$sep" "$TMP/scale-$tg.dat" "$(plot_title "$tg")"
			sep=", "
		done
		echo
		echo "unset multiplot"
	} >"$TMP/scaling.gp"
	gnuplot "$TMP/scaling.gp" || log "gnuplot failed"
fi

log "results: $MD, $OUT/results.jsonl$([ "${#PLOT[@]}" -gt 0 ] && echo ", $OUT/scaling.png")"
bad=$(jq -s '[.[] | select(.failed or .wrong_values > 0 or .proxy_alive == false)] | length' "$OUT/results.jsonl")
if [ "$bad" -gt 0 ]; then
	log "$bad run(s) failed, died or returned wrong values: see the Problems section of $MD"
fi
exit 0
