#!/bin/bash
# Benchmark in front of PostgreSQL: pgbench direct vs pgbench through pgbouncer (transaction
# pooling) vs loadgen through coalesced, on one throw-away cluster, keys drawn by Zipf.
#
# Run by `make bench` after tests/bench/run.sh (or alone: bash tests/bench/pg.sh). The cluster
# lives in a temporary directory, listens on 127.0.0.1 on a free port, runs as "nobody" when
# started as root, and is stopped by PID at the end with everything else started here.
#
# Table items: 100 000 rows (id bigint, body text of 100 bytes, flags int), holding exactly the
# values loadgen's "pattern" expects for key item:<id>, so every value coalesced serves is
# checked. Rows:
#   zipf-N        clients N in BENCH_PG_CLIENTS (50 200 1000), SELECT body FROM items WHERE id=…
#   slow-200      the same through a function costing about 1 ms of server time per row looked
#                 up (slow_body): a statement of N keys costs N ms
#   slowstmt-200  the same with about 1 ms of server time per statement (slow_once in FROM,
#                 evaluated once: a fixed cost per query, such as a join or a remote lookup)
# For each: throughput, median and p99 latency, statements executed (pg_stat_statements) and
# PostgreSQL's CPU seconds (postmaster and backends, from /proc).
#
# Environment: BENCH_SECONDS (10), BENCH_OUT (bench/results), BENCH_PG_CLIENTS ("50 200 1000"),
# BENCH_PG_ZIPF (0.99 for loadgen; pgbench takes only s > 1, so it gets 1.01 when s <= 1),
# COALESCED_BIN, LOADGEN.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${COALESCED_BIN:-$ROOT/coalesced}
LG=${LOADGEN:-$ROOT/build/bench/loadgen}
SECS=${BENCH_SECONDS:-10}
OUT=${BENCH_OUT:-$ROOT/bench/results}
CLIENTS=${BENCH_PG_CLIENTS:-50 200 1000}
ZIPF=${BENCH_PG_ZIPF:-0.99}
ROWS=100000
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

log() { printf 'bench-pg: %s\n' "$*" >&2; }
fail() {
	log "$*"
	exit 1
}
[ -n "$PGBIN" ] || fail "PostgreSQL not found: run 'sh tests/bench/deps.sh' as root"
for tool in pgbouncer jq awk; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool not found: run 'sh tests/bench/deps.sh' as root"
done
[ -x "$BIN" ] && [ -x "$LG" ] || fail "build first: make coalesced build/bench/loadgen"

if [ "$(nproc)" -ge 2 ]; then PIN_SRV="taskset -c 0" PIN_LG="taskset -c 1"; else PIN_SRV="" PIN_LG=""; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/coalesced-bench-pg.XXXXXX")
chmod 755 "$TMP"
PIDS=""
cleanup() {
	local p
	# runuser stays as a parent: stop the programs themselves, by their pid files.
	for f in "$TMP/data/postmaster.pid" "$TMP/bouncer/pgbouncer.pid"; do
		[ -f "$f" ] && PIDS="$(head -1 "$f") $PIDS"
	done
	for p in $PIDS; do kill -INT "$p" 2>/dev/null || true; done
	sleep 1
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null || true; done
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

AS=""
# setpriv, not runuser: runuser's PAM session resets the open-file limit to 1024, which left
# pgbouncer unable to accept 1000 clients (the 1000-client run completed nothing).
if [ "$(id -u)" = 0 ]; then AS="setpriv --reuid=nobody --regid=nogroup --clear-groups"; fi
# 1000 clients and their server connections: more descriptors than the usual 1024.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
free_port() { "$LG" --free-port; }

# ------------------------------------------------------------------ cluster
PGPORT=$(free_port)
mkdir -p "$TMP/data" "$TMP/sock"
[ -z "$AS" ] || chown nobody "$TMP/data" "$TMP/sock"
$AS "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$TMP/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$TMP/sock'
max_connections = 1200
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.save = off
fsync = off
synchronous_commit = off
EOF
$AS $PIN_SRV "$PGBIN/postgres" -D "$TMP/data" >"$TMP/pg.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do
	"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break
	sleep 0.1
done
PGPID=$(head -1 "$TMP/data/postmaster.pid") # the postmaster itself, not runuser
PSQL=("$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" <<EOF
CREATE EXTENSION pg_stat_statements;
CREATE TABLE items (id bigint PRIMARY KEY, body text NOT NULL, flags integer NOT NULL);
INSERT INTO items
SELECT i, left(i || ':' || (SELECT string_agg(chr(97 + ((i + j) % 26)), '' ORDER BY j)
                             FROM generate_series(length(i || ':'), 99) j), 100), i & 65535
FROM generate_series(0, $ROWS - 1) i;
-- about 1 ms of server time per lookup
CREATE FUNCTION slow_body(b text) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  WHILE clock_timestamp() - t0 < interval '1 ms' LOOP END LOOP;
  RETURN b;
END \$\$;
-- about 1 ms of server time per statement: a function scan runs once
CREATE FUNCTION slow_once() RETURNS integer LANGUAGE plpgsql VOLATILE AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  WHILE clock_timestamp() - t0 < interval '1 ms' LOOP END LOOP;
  RETURN 1;
END \$\$;
VACUUM ANALYZE items;
EOF

pg_cpu() { # seconds of CPU used by the postmaster and its children, so far
	local hz total=0 p
	hz=$(getconf CLK_TCK)
	for p in $PGPID $(pgrep -P "$PGPID" || true); do
		# utime stime cutime cstime: fields 14-17
		total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	awk -v t="$total" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'
}
calls() { # statements executed on items since the last reset
	"${PSQL[@]}" -At -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE '%FROM items%'"
}
reset() { "${PSQL[@]}" -At -c "SELECT pg_stat_statements_reset()" >/dev/null; }

# ---------------------------------------------------------------- pgbouncer
BOUNCE_PORT=$(free_port)
mkdir -p "$TMP/bouncer"
cat >"$TMP/bouncer/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=postgres user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCE_PORT
unix_socket_dir =
auth_type = trust
auth_file = $TMP/bouncer/users.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
logfile = $TMP/bouncer/pgbouncer.log
pidfile = $TMP/bouncer/pgbouncer.pid
EOF
echo '"postgres" ""' >"$TMP/bouncer/users.txt"
[ -z "$AS" ] || chown -R nobody "$TMP/bouncer"
$AS $PIN_SRV pgbouncer "$TMP/bouncer/pgbouncer.ini" >"$TMP/bouncer/stderr" 2>&1 &
PIDS="$PIDS $!"

# ---------------------------------------------------------------- coalesced
CO_PORT=$(free_port)
cat >"$TMP/coalesced.ini" <<EOF
[server]
listen = 127.0.0.1:$CO_PORT
log_level = warn
max_clients = 5000
[upstream]
protocol = postgres
connections = 2
pipeline_depth = 4
timeout_ms = 5000
[postgres]
conninfo = host=127.0.0.1 port=$PGPORT dbname=postgres user=postgres
[queries]
item = SELECT id::text, body, flags FROM items WHERE id = ANY(\$1::bigint[])
slow = SELECT id::text, slow_body(body), flags FROM items WHERE id = ANY(\$1::bigint[])
slowstmt = SELECT id::text, body, flags FROM items, slow_once() s WHERE id = ANY(\$1::bigint[])
EOF
$PIN_SRV "$BIN" -c "$TMP/coalesced.ini" 2>"$TMP/coalesced.log" &
COPID=$!
PIDS="$PIDS $COPID"
sleep 1

PGZIPF=$(awk -v s="$ZIPF" 'BEGIN { print (s > 1 ? s : 1.01) }')
printf '\\set id random_zipfian(0, %d, %s)\nSELECT body FROM items WHERE id = :id;\n' $((ROWS - 1)) "$PGZIPF" >"$TMP/fast.sql"
printf '\\set id random_zipfian(0, %d, %s)\nSELECT slow_body(body) FROM items WHERE id = :id;\n' $((ROWS - 1)) "$PGZIPF" >"$TMP/slow.sql"
printf '\\set id random_zipfian(0, %d, %s)\nSELECT body FROM items, slow_once() s WHERE id = :id;\n' $((ROWS - 1)) "$PGZIPF" >"$TMP/slowstmt.sql"

mkdir -p "$OUT"
RES="$OUT/pg.jsonl"
: >"$RES"

run_pgbench() { # label target(port) script clients
	local label=$1 port=$2 script=$3 n=$4 dir="$TMP/pgb-$1-$4" c0 c1 tps p50 p99 st req
	mkdir -p "$dir"
	reset
	c0=$(pg_cpu)
	# pgbouncer 1.18 (Debian 12) keeps no prepared statements across transactions in
	# transaction pooling: through it pgbench uses the extended protocol, unnamed.
	(cd "$dir" && timeout $((${SECS%.*} + 60)) $PIN_LG "$PGBIN/pgbench" -n -M "$([ "$port" = "$BOUNCE_PORT" ] && echo extended || echo prepared)" \
		-h 127.0.0.1 -p "$port" -U postgres \
		-c "$n" -j 1 -T "$SECS" -f "$script" -l "$( [ "$port" = "$BOUNCE_PORT" ] && echo bench || echo postgres)" \
		>"$dir/out.txt" 2>&1) || true
	sleep 0.5 # the backends exit and are reaped: their CPU moves to the postmaster
	c1=$(pg_cpu)
	st=$(calls)
	tps=$(awk '/^tps = / { print $3; exit }' "$dir/out.txt")
	req=$(awk -F': ' '/actually processed/ { print $2; exit }' "$dir/out.txt")
	read -r p50 p99 < <(cat "$dir"/pgbench_log.* 2>/dev/null | awk '{ print $3 }' | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) printf "%.0f %.0f\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1]; else print "0 0" }')
	jq -cn --arg l "$label" --argjson n "$n" --arg tps "${tps:-0}" --argjson p50 "$p50" --argjson req "${req:-0}" \
		--argjson p99 "$p99" --argjson st "$st" --arg cpu "$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}')" \
		'{label:$l, clients:$n, ops_per_s:($tps|tonumber), p50_us:$p50, p99_us:$p99, statements:$st, pg_cpu_s:($cpu|tonumber), requests:$req}' >>"$RES"
	log "$(tail -1 "$RES")"
}

run_coalesced() { # label prefix clients
	local label=$1 prefix=$2 n=$3 c0 c1 st j perfpid=""
	reset
	c0=$(pg_cpu)
	# Where coalesced's time goes, at 200 clients (perf, when there is one).
	if [ "$n" = 200 ] && [ "$prefix" = item: ] && command -v perf >/dev/null 2>&1; then
		(sleep 2 && perf record -q -g -p "$COPID" -o "$TMP/perf.data" -- sleep 5 >/dev/null 2>&1 &&
			perf report -q --stdio --no-children -i "$TMP/perf.data" 2>/dev/null |
			grep -E '^ +[0-9]' | head -40 >"$OUT/perf-pg-coalesced.txt") &
		perfpid=$!
	fi
	j=$($PIN_LG "$LG" --server "127.0.0.1:$CO_PORT" -c "$n" -n "$ROWS" -d "zipf:$ZIPF" -t "$SECS" \
		--prefix "$prefix" --label "$label" --drain-timeout 10)
	c1=$(pg_cpu)
	st=$(calls)
	[ -z "$perfpid" ] || wait "$perfpid" || true
	echo "$j" | jq -c --arg l "$label" --argjson n "$n" --argjson st "$st" \
		--arg cpu "$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}')" \
		'{label:$l, clients:$n, ops_per_s, p50_us, p99_us, statements:$st, pg_cpu_s:($cpu|tonumber), requests:.completed, errors, wrong_values}' >>"$RES"
	log "$(tail -1 "$RES")"
}

for n in $CLIENTS; do
	run_pgbench direct "$PGPORT" "$TMP/fast.sql" "$n"
	run_pgbench pgbouncer "$BOUNCE_PORT" "$TMP/fast.sql" "$n"
	run_coalesced coalesced item: "$n"
done
run_pgbench direct-slow "$PGPORT" "$TMP/slow.sql" 200
run_pgbench pgbouncer-slow "$BOUNCE_PORT" "$TMP/slow.sql" 200
run_coalesced coalesced-slow slow: 200
run_pgbench direct-slowstmt "$PGPORT" "$TMP/slowstmt.sql" 200
run_pgbench pgbouncer-slowstmt "$BOUNCE_PORT" "$TMP/slowstmt.sql" 200
run_coalesced coalesced-slowstmt slowstmt: 200

{
	echo "| run | clients | requests/s | p50 ms | p99 ms | statements | statements per request | PostgreSQL CPU s |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|"
	jq -r '[.label, .clients, (.ops_per_s|floor), (.p50_us/1000*100|round/100), (.p99_us/1000*100|round/100),
		.statements, (if .requests > 0 then (.statements / .requests * 1000 | round / 1000) else "-" end),
		.pg_cpu_s] | "| " + (map(tostring) | join(" | ")) + " |"' "$RES"
} >"$OUT/pg.md"
cat "$OUT/pg.md"
