#!/bin/bash
# make soak: a bounded run of mixed load against coalesced while the upstream
# misbehaves at random (the fake upstream's chaos mode) and is killed and
# restarted now and then. Reports requests answered, errors by kind, wrong
# values (must be 0), unanswered requests (must be 0) and RSS over time (must
# level off). Not part of make check.
#
#   SOAK_SECONDS   total load time (default 180), in segments of SOAK_SEGMENT
#   SOAK_SEGMENT   seconds per segment (default 10)
#   SOAK_CHAOS     percent of upstream requests that meet a fault (default 5)
#   SOAK_LEEWAY    batch.leeway_ms (default 0.5)
#   SOAK_UP_CONNS, SOAK_UP_DEPTH  upstream connections and pipeline depth
#                  (default 1 and 1: a small pool, where batches must wait
#                  for room)
#
# Segments alternate between heavy load (100 connections, pipelined) and
# light load (3 connections, one request at a time): with a leeway, light
# traffic leaves batches to their timers instead of filling them to max_keys.
set -u
COALESCED_BIN=${COALESCED_BIN:-./coalesced}
FAKE_UPSTREAM=${FAKE_UPSTREAM:-build/fake_upstream}
LOADGEN=${LOADGEN:-build/bench/loadgen}
SOAK_SECONDS=${SOAK_SECONDS:-180}
SOAK_SEGMENT=${SOAK_SEGMENT:-10}
SOAK_CHAOS=${SOAK_CHAOS:-5}
SOAK_LEEWAY=${SOAK_LEEWAY:-0.5}
SOAK_UP_CONNS=${SOAK_UP_CONNS:-1}
SOAK_UP_DEPTH=${SOAK_UP_DEPTH:-1}

dir=$(mktemp -d /tmp/coalesced-soak.XXXXXX)
fake_pid= co_pid=
cleanup() {
	[ -n "$co_pid" ] && kill "$co_pid" 2>/dev/null
	[ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$LOADGEN" --free-port; }

start_fake() {
	"$FAKE_UPSTREAM" -p "$fake_port" >"$dir/fake.out" 2>>"$dir/fake.log" &
	fake_pid=$!
	for _ in $(seq 100); do
		grep -q PORT "$dir/fake.out" 2>/dev/null && break
		sleep 0.05
	done
	"$LOADGEN" --server "127.0.0.1:$fake_port" --command "fake_mode chaos $SOAK_CHAOS" >/dev/null
}

stat_of() { # name -> value from coalesced's stats
	"$LOADGEN" --server "127.0.0.1:$co_port" --command stats | awk -v k="$1" '$2 == k { print $3 }' | tr -d '\r'
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$co_pid/status"; }

json_num() { # field json -> number
	sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"
}

fake_port=$(free_port)
co_port=$(free_port)
start_fake
"$COALESCED_BIN" -o "server.listen=127.0.0.1:$co_port" -o "upstream.servers=127.0.0.1:$fake_port" \
	-o upstream.timeout_ms=200 -o upstream.retries=1 -o "batch.leeway_ms=$SOAK_LEEWAY" \
	-o "upstream.connections=$SOAK_UP_CONNS" -o "upstream.pipeline_depth=$SOAK_UP_DEPTH" \
	-o server.log_level=error 2>"$dir/coalesced.log" &
co_pid=$!
for _ in $(seq 100); do
	"$LOADGEN" --server "127.0.0.1:$co_port" --command version >/dev/null 2>&1 && break
	sleep 0.05
done

segments=$(( (SOAK_SECONDS + SOAK_SEGMENT - 1) / SOAK_SEGMENT ))
printf 'soak: %d segments of %d s, %d%% upstream faults, upstream killed every 3rd segment,\n' \
	"$segments" "$SOAK_SEGMENT" "$SOAK_CHAOS"
printf '      leeway %s ms, %s upstream connections of depth %s, heavy and light load alternating\n' \
	"$SOAK_LEEWAY" "$SOAK_UP_CONNS" "$SOAK_UP_DEPTH"
printf '%4s %10s %10s %8s %8s %8s %8s %8s %9s\n' seg answered ops/s srv_err wrong unansw up_err up_tmo rss_KiB
tot_answered=0 tot_wrong=0 tot_unanswered=0 tot_srv_err=0
rss=()
for seg in $(seq 1 "$segments"); do
	if (( seg % 3 == 0 )); then
		# The upstream crashes mid-segment and comes back a second later.
		( sleep $((SOAK_SEGMENT / 2)); kill -9 "$fake_pid" 2>/dev/null ) &
		killer=$!
	fi
	load="--conns 100 --pipeline 4"
	(( seg % 2 == 0 )) && load="--conns 3 --pipeline 1"
	# shellcheck disable=SC2086
	out=$("$LOADGEN" --server "127.0.0.1:$co_port" --values fake $load \
		--multi 3 --keys 5000 --dist zipf:0.99 --duration "$SOAK_SEGMENT" --seed "$seg" \
		--label "soak-$seg" 2>>"$dir/loadgen.log")
	if (( seg % 3 == 0 )); then
		wait "$killer" 2>/dev/null
		wait "$fake_pid" 2>/dev/null
		start_fake
	fi
	if ! kill -0 "$co_pid" 2>/dev/null; then
		echo "soak: coalesced died; log in $dir/coalesced.log" >&2
		exit 1
	fi
	echo "$out" >>"$dir/soak.jsonl"
	answered=$(json_num completed "$out")
	wrong=$(json_num wrong_values "$out")
	unanswered=$(json_num unanswered "$out")
	srv_err=$(json_num server_errors "$out")
	ops=$(json_num ops_per_s "$out")
	r=$(rss_kib)
	rss+=("$r")
	printf '%4d %10s %10s %8s %8s %8s %8s %8s %9s\n' "$seg" "$answered" "$ops" "$srv_err" "$wrong" \
		"$unanswered" "$(stat_of upstream_errors)" "$(stat_of upstream_timeouts)" "$r"
	tot_answered=$((tot_answered + ${answered:-0}))
	tot_wrong=$((tot_wrong + ${wrong:-0}))
	tot_unanswered=$((tot_unanswered + ${unanswered:-0}))
	tot_srv_err=$((tot_srv_err + ${srv_err:-0}))
done

# RSS levels off: the second half may not grow more than 10 % over its start.
half=$(( ${#rss[@]} / 2 ))
first=${rss[$half]} last=${rss[$((${#rss[@]} - 1))]}
grow_ok=$(( last <= first + first / 10 ))
inflight=$(stat_of inflight_keys)
printf 'total: %d requests answered, %d SERVER_ERROR replies, %d wrong values, %d unanswered\n' \
	"$tot_answered" "$tot_srv_err" "$tot_wrong" "$tot_unanswered"
printf 'coalesced: upstream_errors %s upstream_timeouts %s upstream_retries %s; RSS %s -> %s KiB over the second half; inflight_keys %s\n' \
	"$(stat_of upstream_errors)" "$(stat_of upstream_timeouts)" "$(stat_of upstream_retries)" \
	"$first" "$last" "$inflight"
status=0
(( tot_wrong == 0 )) || { echo "FAIL: wrong values delivered"; status=1; }
(( tot_unanswered == 0 )) || { echo "FAIL: requests left unanswered"; status=1; }
(( tot_answered > 0 )) || { echo "FAIL: nothing was answered"; status=1; }
(( grow_ok )) || { echo "FAIL: RSS kept growing"; status=1; }
(( status == 0 )) && echo "soak: passed (details in $dir)"
exit $status
