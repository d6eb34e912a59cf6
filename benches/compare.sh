#!/usr/bin/env bash
# upsbridge against nginx and against talking to the upstream directly, on loopback, with the
# same load for each (design §8). One command from a clean clone:
#
#     bash benches/compare.sh
#
# What runs (all on 127.0.0.1, ports picked free):
#   upstream  nginx answering like UPS from static bodies: POST /security/v1/oauth/token gives a
#             UPS token JSON, anything under /api/ gives the RateResponse the simulator
#             (`upsbridge sim`) answers for the bench's rate request (captured at start).
#   direct    the load generator talking REST to that upstream with a bearer (no proxy).
#   nginx     nginx as a reverse proxy doing the header swap with a static bearer: path mapped
#             to /api/rating/v2409/Rate, AccessLicenseNumber/Username/Password removed,
#             Authorization added, body forwarded untouched; the floor of proxy overhead.
#   upsbridge `upsbridge serve` (release build) with [ups] base_url = the upstream: it fetches
#             its token from the upstream's token endpoint, verifies the legacy credentials,
#             translates, and calls the same /api/ the other two reach.
#
# Rows: header-style JSON (header: a rate POST; header_get: the shared harness's GET, a track
# lookup with no body, answered by the same static upstream), legacy JSON, SOAP rate and old
# XML rate. SOAP and old XML run only when upsbridge answers them with 200 (those dialects are
# being built); otherwise the row says "not available".
#
# Load: wrk, one thread, CONNS connections for DURATION seconds after a WARMUP (throughput,
# p50/p99 under load), then LAT_CONNS connections (default one) for LAT_DURATION seconds (latency without queueing:
# the added p99 over direct of design §8 is read from this pass).
#
# CPU pinning on a 2-core machine: the server under test (nginx proxy or upsbridge, each with
# one worker thread) alone on CPU $PIN_SERVER (default 0); the load generator and the static
# upstream share CPU $PIN_LOAD (default 1). For the direct row the upstream is the server under
# test and stays on CPU $PIN_LOAD with wrk. Override with PIN_SERVER / PIN_LOAD.
#
# Reported per row: requests/s, p50/p99 at CONNS connections, p50/p99 at one connection, CPU
# seconds per 10,000 requests of the server-under-test processes (utime+stime from
# /proc/PID/stat, all threads; also as user and kernel µs per request: the kernel's share,
# mostly loopback TCP, is about the same for every proxy), peak RSS (VmHWM, reset before each measurement through
# /proc/PID/clear_refs; nginx: master + workers), each with ratios against nginx (same request)
# and against direct. Two readings of the cores around the server, per request of the
# throughput pass: "load µs", CPU $PIN_LOAD's busy time (wrk and the upstream: where requests/s
# is set when the server idles), and "wakes", the interrupts CPU $PIN_SERVER took to wake a
# sleeping server thread from the other core (function-call and rescheduling IPIs; a server
# that sleeps more is woken more, and the waker pays). Raw numbers go to $OUT (default
# target/compare/<time>).
#
# Environment: ROWS ("header header_get legacy_json soap xml"), RUNS (2), DURATION (10), WARMUP (2), CONNS (64), LAT_DURATION (5),
# PIN_SERVER (0), PIN_LOAD (1), PROXY_THREADS (1: upsbridge's [proxy] threads), UPSBRIDGE_BIN (the README's build:
# target/pgo/release/upsbridge of scripts/build.sh, built first unless SKIP_BUILD=1), QUIET_LOGS (0: upsbridge logs at its default level `info` and
# nginx writes its default access log, each to a file; 1: both off), SKIP_BUILD (0),
# PLAIN (0; 1: measure plain `cargo build --release` instead, target/release/upsbridge),
# PGO (0; 1: measure a profile-guided build trained here by scripts/pgo.sh, target/pgo/release/upsbridge,
# built first unless SKIP_BUILD=1),
# PERF_RECORD (0; 1: `perf record` of upsbridge and the floors during their throughput passes, reports in $OUT;
# PERF_CALLGRAPH picks the call-graph mode: fp (default), dwarf (sees through our inlined frames)
# or none (a flat profile, for a high PERF_FREQ: samples per second, 499 by default)),
# BASELINE_BIN (unset; another upsbridge binary, e.g. the previous commit's, measured in the same
# run as "baseline": the A/B of a change), FLOORS (1: also measure benches/floors/ hyper_floor and
# pingora_floor on the header row: the bare header swap on hyper and on pingora's proxy loop),
# STRACE (0; 1: `strace -c` of each server, nginx's worker included, during its throughput pass:
# syscalls per request).
#
# INSTRUCTIONS=1 measures something else: instructions per request, counted by valgrind's
# callgrind, for upsbridge and BASELINE_BIN on the same requests (wrk, INSTR_CONNS connections
# for INSTR_SECS seconds after a warm-up; the counters are zeroed before and dumped after). The
# count does not depend on what else the host runs, so it shows a change of a few per cent in
# user-space work that req/s and CPU time on a shared host cannot; it says nothing of kernel
# time or cache misses. Valgrind's CPU hides SHA-NI, so the password tag's HMAC-SHA256 runs
# sha2's portable code under it: about 7.1k instructions per request that a CPU with SHA-NI
# does in a few hundred (the same in every build: ratios are unaffected). Dumps (for
# callgrind_annotate; each row's dump names its functions in full, so it reads alone) go to
# $OUT. INSTR_SIM=1 adds callgrind's model of the caches and the branch predictor:
# instruction-cache misses (first level, last level) and mispredicted branches per request,
# beside the instructions. A model, not this CPU; it shows a change in code layout
# (scripts/pgo.sh's BOLT step) that the count does not, where a shared host's noise hides it.
#
# Odd runs measure nginx first and even runs last (each row); with RUNS > 1 the table ends with
# each row's ratio to nginx paired within its run: the median and range over the runs.
#
# Every process started here is stopped by its PID on exit, including on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

RUNS=${RUNS:-2}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
LAT_DURATION=${LAT_DURATION:-5}
# The latency pass's connections: 1 (no queueing), or 4 for issue 12's "added p99 at c4".
LAT_CONNS=${LAT_CONNS:-1}
PIN_SERVER=${PIN_SERVER:-0}
PIN_LOAD=${PIN_LOAD:-1}
QUIET_LOGS=${QUIET_LOGS:-0}
ROWS=${ROWS:-header header_get legacy_json soap xml}
OUT=${OUT:-$ROOT/target/compare/$(date +%Y%m%d-%H%M%S)}
BENCH=$ROOT/benches/compare

# Bench credentials (match the bodies in benches/compare/).
ACCESS_KEY=BENCHKEY0001
USER_ID=benchuser
PASSWORD=bench-pass-Q7
CLIENT_ID=bench-client
CLIENT_SECRET=bench-client-secret
STATIC_BEARER=bench-static-token-0123456789abcdef0123456789abcdef

die() { say "compare.sh: $*"; exit 1; }

bash scripts/setup.sh bench
if [ "${PGO:-0}" = 1 ]; then
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    say "building the profile-guided release binary (scripts/pgo.sh: two release builds)…"
    bash scripts/setup.sh pgo
    bash scripts/pgo.sh
  fi
  BIN=${UPSBRIDGE_BIN:-$ROOT/target/pgo/release/upsbridge}
else
  BIN=$(bench_binary)
fi
FLOORS=${FLOORS:-1}
FLOOR_DIR=$ROOT/target/release/examples
if [ "$FLOORS" = 1 ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "building the floors (hyper_floor, pingora_floor)…"
  cargo build --release --quiet --example hyper_floor --example pingora_floor --example raw_floor
fi
if [ "$FLOORS" = 1 ] && ! [ -x "$FLOOR_DIR/hyper_floor" ]; then
  say "no floor binaries in $FLOOR_DIR: floor rows skipped"
  FLOORS=0
fi
[ -x "$BIN" ] || die "no $BIN"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx not found"
command -v wrk >/dev/null || die "wrk not found"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
CPUS=$(nproc)
if [ "$PIN_SERVER" -ge "$CPUS" ] || [ "$PIN_LOAD" -ge "$CPUS" ]; then
  say "only $CPUS CPU(s): everything shares CPU 0"
  PIN_SERVER=0
  PIN_LOAD=0
fi

mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/upsbridge-compare.XXXXXX")
PIDS=()

cleanup() {
  trap - EXIT INT TERM
  stop_all
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'exit 143' TERM

reset_hwm() {
  local pid
  for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
}

# Sum of VmHWM in kB.
hwm_kb() {
  local total=0 pid k
  for pid in "$@"; do
    k=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    total=$((total + k))
  done
  echo "$total"
}

# start_upsbridge [BIN [NAME]]: sets UB_PORT, UB_PID, UB_ADMIN.
start_upsbridge() {
  local bin=${1:-$BIN} name=${2:-upsbridge}
  local dir=$TMP/$name
  mkdir -p "$dir"
  write_bench_map "$dir" "$bin"
  cat >"$dir/upsbridge.toml" <<EOF
[proxy]
listen = "127.0.0.1:0"
threads = ${PROXY_THREADS:-1}
shutdown_grace_secs = 1
[admin]
listen = "127.0.0.1:0"
# Loopback only: the run's end reads the token counter without logging in.
metrics_public = true
[store]
path = "store"
[accounts]
file = "accounts.toml"
[ups]
base_url = "http://127.0.0.1:$UP_PORT"
EOF
  local log_level=${RUST_LOG:-info}
  [ "$QUIET_LOGS" = 1 ] && log_level=off
  # UB_WRAP: a command to run upsbridge under (valgrind, for INSTRUCTIONS=1).
  # shellcheck disable=SC2086 # UB_WRAP is words
  UPSBRIDGE_BENCH_SECRET=$CLIENT_SECRET RUST_LOG=$log_level \
    taskset -c "$PIN_SERVER" ${UB_WRAP:-} "$bin" serve --config "$dir/upsbridge.toml" >"$dir/stdout" 2>"$dir/upsbridge.log" &
  UB_PID=$!
  PIDS+=("$UB_PID")
  local lines
  lines=$(wait_lines "$dir/stdout" 2)
  UB_PORT=$(printf '%s\n' "$lines" | sed -n 's#^proxy listening on http://127.0.0.1:##p')
  UB_ADMIN=$(printf '%s\n' "$lines" | sed -n 's#^admin listening on ##p')
  local i
  for i in $(seq 600); do
    curl -sf "$UB_ADMIN/readyz" >/dev/null && break
    sleep 0.1
  done
  wait_port "$UB_PORT"
}

# start_floor NAME: one of the floor binaries (benches/floors/), on the server CPU.
start_floor() {
  local name=$1 port
  port=$(free_port)
  CANDIDATE_PORT=$port UPSTREAM_PORT=$UP_PORT BENCH_TOKEN=$STATIC_BEARER \
    taskset -c "$PIN_SERVER" "$FLOOR_DIR/$name" >"$TMP/$name.log" 2>&1 &
  FLOOR_PID=$!
  PIDS+=("$FLOOR_PID")
  wait_port "$port"
  FLOOR_PORT=$port
}

# ---------------------------------------------------------------------------------------------
# Requests: method path body content-type extra-headers (wrk's "A: b|C: d" form).
LEGACY_HEADERS="AccessLicenseNumber: $ACCESS_KEY|Username: $USER_ID|Password: $PASSWORD"
request_spec() {
  case $1 in
    direct) echo "/api/rating/v2409/Rate|$BENCH/rate_rest.json|Content-Type: application/json|Authorization: Bearer $STATIC_BEARER|transId: bench-1|transactionSrc: bench" ;;
    floor) echo "/api/rating/v2409/Rate|$BENCH/rate_rest.json|Content-Type: application/json|$LEGACY_HEADERS|transId: bench-1|transactionSrc: bench" ;;
    header) echo "/ship/v2409/rating/Rate|$BENCH/rate_rest.json|Content-Type: application/json|$LEGACY_HEADERS|transId: bench-1|transactionSrc: bench" ;;
    # The shared harness's GET scenario: a track lookup, no body ("-").
    header_get) echo "/api/track/v1/details/1Z12345E0205271688|-|$LEGACY_HEADERS|transId: bench-1|transactionSrc: bench" ;;
    legacy_json) echo "/rest/Rate|$BENCH/rate_legacy.json|Content-Type: application/json" ;;
    soap) echo "/webservices/Rate|$BENCH/rate_soap.xml|Content-Type: text/xml; charset=utf-8|SOAPAction: http://onlinetools.ups.com/webservices/RateBinding/v1.1" ;;
    xml) echo "/ups.app/xml/Rate|$BENCH/rate_xml.xml|Content-Type: application/x-www-form-urlencoded" ;;
  esac
}

# The method a row's request uses.
request_method() {
  case $1 in
    header_get) echo GET ;;
    *) echo POST ;;
  esac
}

dialect_label() {
  case $1 in
    direct) echo "REST (direct)" ;;
    header) echo "header JSON" ;;
    header_get) echo "header GET" ;;
    legacy_json) echo "legacy JSON" ;;
    soap) echo "SOAP rate" ;;
    xml) echo "old XML rate" ;;
  esac
}

# What a successful answer of this dialect contains.
answer_marker() {
  case $1 in
    # The static upstream answers every /api/ path with the rate answer, the track GET too.
    direct | floor | header | header_get | legacy_json) echo '"RateResponse"' ;;
    soap) echo 'RateResponse' ;;
    xml) echo '<RatingServiceSelectionResponse' ;;
  esac
}

# One request with curl; prints the HTTP status, leaves the body in $TMP/probe.body.
probe() {
  local port=$1 dialect=$2 spec path body rest hdrs args=()
  spec=$(request_spec "$dialect")
  IFS='|' read -r path body rest <<<"$spec"
  IFS='|' read -ra hdrs <<<"$rest"
  local h
  for h in "${hdrs[@]}"; do args+=(-H "$h"); done
  [ "$body" = - ] || args+=(--data-binary @"$body")
  curl -s -o "$TMP/probe.body" -w '%{http_code}' -X "$(request_method "$dialect")" "${args[@]}" \
    --max-time 10 "http://127.0.0.1:$port$path" || echo 000
}

# wrk against a port with a dialect's request: prints the RESULT fields.
run_wrk() {
  local port=$1 dialect=$2 conns=$3 secs=$4 spec path body rest
  spec=$(request_spec "$dialect")
  IFS='|' read -r path body rest <<<"$spec"
  [ "$body" = - ] && body=
  WRK_METHOD=$(request_method "$dialect") WRK_PATH=$path WRK_BODY_FILE=$body WRK_HEADERS=$rest \
    taskset -c "$PIN_LOAD" wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s -s "$BENCH/wrk.lua" \
    "http://127.0.0.1:$port" | sed -n 's/^RESULT //p'
}

# measure RUN DIALECT SERVER PORT PID... → one TSV line in $OUT/results.tsv
measure() {
  local run=$1 dialect=$2 server=$3 port=$4 spec_of=${SPEC_OF:-$2}
  shift 4
  local pids=("$@")
  if [ "$WARMUP" -gt 0 ]; then run_wrk "$port" "$spec_of" "$CONNS" "$WARMUP" >/dev/null; fi
  reset_hwm "${pids[@]}"
  local c0 c1 r perf_pid=""
  if [ "${PERF_RECORD:-0}" = 1 ] && [ "$server" != nginx ] && [ "$server" != direct ] && [ "$server" != baseline ] && command -v perf >/dev/null; then
    local tag=$dialect
    [ "$server" = upsbridge ] || tag=$server
    local graph=(--call-graph "${PERF_CALLGRAPH:-fp}")
    [ "${PERF_CALLGRAPH:-fp}" = none ] && graph=()
    perf record -F "${PERF_FREQ:-499}" "${graph[@]}" -p "${pids[0]}" -o "$OUT/perf-$tag-run$run.data" -- sleep "$DURATION" \
      >/dev/null 2>&1 &
    perf_pid=$!
  fi
  local strace_pid=""
  if [ "${STRACE:-0}" = 1 ] && command -v strace >/dev/null; then
    # Every process of the server: nginx's worker is a child of the master, already running.
    local traced=() pid
    for pid in "${pids[@]}"; do traced+=(-p "$pid"); done
    timeout -s INT "$DURATION" strace -c -f "${traced[@]}" -o "$OUT/strace-$dialect-$server-run$run.txt" &
    strace_pid=$!
  fi
  local u0 k0 u1 k1 load0 load1 wakes0 wakes1 ignored
  read -r u0 k0 < <(cpu_ticks_split "${pids[@]}")
  read -r load0 ignored < <(core_counters "$PIN_LOAD")
  read -r ignored wakes0 < <(core_counters "$PIN_SERVER")
  r=$(run_wrk "$port" "$spec_of" "$CONNS" "$DURATION")
  read -r load1 ignored < <(core_counters "$PIN_LOAD")
  read -r ignored wakes1 < <(core_counters "$PIN_SERVER")
  if [ -n "$strace_pid" ]; then
    wait "$strace_pid" 2>/dev/null || true
    say "  syscalls: $OUT/strace-$dialect-$server-run$run.txt (requests: ${r%% *})"
  fi
  read -r u1 k1 < <(cpu_ticks_split "${pids[@]}")
  c0=$((u0 + k0))
  c1=$((u1 + k1))
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" 2>/dev/null || true
    perf report -i "$OUT/perf-$tag-run$run.data" --stdio --no-children --percent-limit 1 \
      --sort dso,symbol 2>/dev/null | grep -v '^$' | head -80 >"$OUT/perf-$tag-run$run.txt" || true
    say "  profile: $OUT/perf-$tag-run$run.txt"
  fi
  local hwm
  hwm=$(hwm_kb "${pids[@]}")
  local l
  l=$(run_wrk "$port" "$spec_of" "$LAT_CONNS" "$LAT_DURATION")
  [ -n "$r" ] && [ -n "$l" ] || die "wrk printed no result for $dialect/$server"
  local tck
  tck=$(getconf CLK_TCK)
  awk -v run="$run" -v d="$dialect" -v s="$server" -v req="$(field "$r" requests)" \
    -v dur="$(field "$r" duration_us)" -v p50="$(field "$r" p50_us)" -v p99="$(field "$r" p99_us)" \
    -v err="$(($(field "$r" status_errors) + $(field "$r" socket_errors) + $(field "$l" status_errors) + $(field "$l" socket_errors)))" \
    -v ticks="$((c1 - c0))" -v uticks="$((u1 - u0))" -v kticks="$((k1 - k0))" -v tck="$tck" -v hwm="$hwm" \
    -v lreq="$(field "$l" requests)" -v l50="$(field "$l" p50_us)" -v l99="$(field "$l" p99_us)" \
    -v lticks="$((load1 - load0))" -v wakes="$((wakes1 - wakes0))" \
    'BEGIN {
       rps = req / (dur / 1e6);
       cpu = (ticks / tck) / req * 10000;
       printf "%s\t%s\t%s\t%.0f\t%.3f\t%.3f\t%.3f\t%.1f\t%.3f\t%.3f\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.3f\n",
         run, d, s, rps, p50 / 1000, p99 / 1000, cpu, hwm / 1024, l50 / 1000, l99 / 1000, err, req,
         (uticks / tck) / req * 1e6, (kticks / tck) / req * 1e6, (lticks / tck) / req * 1e6, wakes / req
     }' >>"$OUT/results.tsv"
  tail -n 1 "$OUT/results.tsv" | awk -F'\t' '{printf "  %-12s %-9s %8s req/s  p99 %s ms  1-conn p99 %s ms  CPU %s s/10k (user %s + kernel %s µs per request)  RSS %s MB  errors %s\n", $2, $3, $4, $6, $10, $7, $13, $14, $8, $11}' >&2
}

one_run() {
  local run=$1
  say "run $run: starting upstream, nginx proxy and upsbridge"
  start_upstream
  start_nginx_proxy
  start_upsbridge
  if [ -n "${BASELINE_BIN:-}" ]; then
    local ub=($UB_PORT $UB_PID $UB_ADMIN)
    start_upsbridge "$BASELINE_BIN" baseline
    BASE_PORT=$UB_PORT BASE_PID=$UB_PID
    UB_PORT=${ub[0]} UB_PID=${ub[1]} UB_ADMIN=${ub[2]}
  fi
  local code
  code=$(probe "$UP_PORT" direct)
  [ "$code" = 200 ] || die "upstream answered $code"
  measure "$run" direct direct "$UP_PORT" $(nginx_pids "$UP_MASTER")
  local d
  for d in $ROWS; do
    code=$(probe "$UB_PORT" "$d")
    if [ "$code" != 200 ] || ! grep -q -- "$(answer_marker "$d")" "$TMP/probe.body"; then
      case $d in
        soap | xml)
          say "  $d: upsbridge answered HTTP $code: not available"
          printf '%s\t%s\tupsbridge\tNA\t%s\n' "$run" "$d" "$code" >>"$OUT/results.tsv"
          continue
          ;;
        *) die "upsbridge answered $d with HTTP $code: $(head -c 400 "$TMP/probe.body"); log: $(tail -n 5 "$TMP/upsbridge/upsbridge.log")" ;;
      esac
    fi
    code=$(probe "$NGX_PORT" "$d")
    [ "$code" = 200 ] || die "nginx answered $d with HTTP $code"
    # Odd runs measure nginx first, even runs last: on a shared host the load drifts within a
    # run, and a fixed order would give that drift to one side of every ratio.
    local servers=(nginx upsbridge) s
    [ -n "${BASELINE_BIN:-}" ] && servers+=(baseline)
    if [ $((run % 2)) = 0 ]; then
      local i reversed=()
      for ((i = ${#servers[@]} - 1; i >= 0; i--)); do reversed+=("${servers[i]}"); done
      servers=("${reversed[@]}")
    fi
    for s in "${servers[@]}"; do
      case $s in
        nginx) measure "$run" "$d" nginx "$NGX_PORT" $(nginx_pids "$NGX_MASTER") ;;
        upsbridge) measure "$run" "$d" upsbridge "$UB_PORT" "$UB_PID" ;;
        baseline) measure "$run" "$d" baseline "$BASE_PORT" "$BASE_PID" ;;
      esac
    done
    if [ "$d" = header ] && [ "$FLOORS" = 1 ]; then
      local f
      for f in hyper_floor pingora_floor raw_floor; do
        start_floor "$f"
        code=$(probe "$FLOOR_PORT" floor)
        [ "$code" = 200 ] || die "$f answered HTTP $code"
        SPEC_OF=floor measure "$run" header "$f" "$FLOOR_PORT" "$FLOOR_PID"
        # SIGINT: pingora's fast shutdown (SIGTERM would wait out its grace period).
        kill -INT "$FLOOR_PID" 2>/dev/null || true
        stop_pid "$FLOOR_PID"
      done
    fi
  done
  local tokens
  tokens=$(curl -s "$UB_ADMIN/metrics" | awk '/^upsbridge_token_requests_total/ {print $2}')
  say "  upsbridge token requests during run $run: $tokens"
  stop_all
}

print_table() {
  local run=$1
  awk -F'\t' -v run="$run" -v lat_conns="$LAT_CONNS" '
    function r(a, b) { return (b > 0) ? sprintf("%.2f", a / b) : "-" }
    function label(d) {
      return (d == "direct") ? "REST direct" : (d == "header") ? "header JSON" : (d == "header_get") ? "header GET" : (d == "legacy_json") ? "legacy JSON" : (d == "soap") ? "SOAP rate" : "old XML rate"
    }
    $1 != run { next }
    $4 == "NA" { order[++n] = $2 "\tNA"; na[$2] = $5; next }
    {
      key = $2 "\t" $3
      for (f = 4; f <= 16; f++) v[key, f] = $f
      order[++n] = key
    }
    END {
      dk = "direct\tdirect"
      hdr = "%-13s %-13s %8s %7s %7s %9s %7s %7s %7s %6s %7s %7s %7s %6s\n"
      printf hdr, "row", "server", "req/s", "p50 ms", "p99 ms", "CPU s/10k", "RSS MB", "1c p50", "1c p99", "errors", "user µs", "kern µs", "load µs", "wakes"
      for (i = 1; i <= n; i++) {
        split(order[i], k, "\t")
        d = k[1]; s = k[2]
        if (s == "NA") { printf "%-13s %-13s not available (upsbridge answered HTTP %s)\n", label(d), "upsbridge", na[d]; continue }
        key = order[i]; nk = d "\tnginx"
        printf "%-13s %-13s %8d %7.2f %7.2f %9.3f %7.1f %7.3f %7.3f %6d %7.1f %7.1f %7.1f %6.3f\n", label(d), s,
          v[key, 4], v[key, 5], v[key, 6], v[key, 7], v[key, 8], v[key, 9], v[key, 10], v[key, 11], v[key, 13], v[key, 14],
          v[key, 15], v[key, 16]
        if (s != "nginx" && s != "direct")
          printf "%-13s %-13s %8s %7s %7s %9s %7s %7s %7s %6s %7s %7s %7s %6s\n", "", "  x nginx",
            r(v[key, 4], v[nk, 4]), r(v[key, 5], v[nk, 5]), r(v[key, 6], v[nk, 6]), r(v[key, 7], v[nk, 7]),
            r(v[key, 8], v[nk, 8]), r(v[key, 9], v[nk, 9]), r(v[key, 10], v[nk, 10]), "",
            r(v[key, 13], v[nk, 13]), r(v[key, 14], v[nk, 14]), r(v[key, 15], v[nk, 15]), r(v[key, 16], v[nk, 16])
        if (s != "direct")
          printf "%-13s %-13s %8s %7s %7s %9s %7s %7s %7s\n", "", "  x direct",
            r(v[key, 4], v[dk, 4]), r(v[key, 5], v[dk, 5]), r(v[key, 6], v[dk, 6]), r(v[key, 7], v[dk, 7]),
            r(v[key, 8], v[dk, 8]), r(v[key, 9], v[dk, 9]), r(v[key, 10], v[dk, 10])
      }
      printf "added latency over direct at %s connection(s) (p50 / p99, ms):", lat_conns
      for (i = 1; i <= n; i++) {
        split(order[i], k, "\t")
        if (k[2] == "NA" || k[2] == "direct") continue
        key = order[i]
        printf "  %s %s %+.3f / %+.3f", label(k[1]), k[2], v[key, 9] - v[dk, 9], v[key, 10] - v[dk, 10]
      }
      printf "\n"
    }' "$OUT/results.tsv"
}

# INSTRUCTIONS=1: instructions per request of each build, row by row (see the top).
count_instructions() {
  command -v valgrind >/dev/null || die "valgrind not found (INSTRUCTIONS=1 bash scripts/setup.sh bench)"
  local secs=${INSTR_SECS:-5} conns=${INSTR_CONNS:-4} sim=""
  [ "${INSTR_SIM:-0}" = 1 ] && sim="--cache-sim=yes --branch-sim=yes"
  start_upstream
  local builds=("upsbridge|$BIN")
  [ -n "${BASELINE_BIN:-}" ] && builds+=("baseline|$BASELINE_BIN")
  local build name bin d code r reqs total dump events counts
  for build in "${builds[@]}"; do
    IFS='|' read -r name bin <<<"$build"
    UB_WRAP="valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind-$name.out --dump-instr=no --compress-strings=no $sim" \
      start_upsbridge "$bin" "$name"
    for d in $ROWS; do
      code=$(probe "$UB_PORT" "$d")
      [ "$code" = 200 ] || die "$name answered $d with HTTP $code"
      run_wrk "$UB_PORT" "$d" "$conns" 2 >/dev/null
      callgrind_control -z "$UB_PID" >/dev/null 2>&1
      r=$(run_wrk "$UB_PORT" "$d" "$conns" "$secs")
      callgrind_control -d "$d" "$UB_PID" >/dev/null 2>&1
      reqs=$(field "$r" requests)
      [ "$(($(field "$r" status_errors) + $(field "$r" socket_errors)))" = 0 ] || die "$name: errors on $d: $r"
      dump=$(ls -t "$OUT/callgrind-$name.out"* | head -n 1)
      # One number per event, in the order of the dump's `events:` line (Ir first).
      events=$(sed -n 's/^events: //p' "$dump" | head -n 1)
      counts=$(sed -n 's/^summary: //p; s/^totals: //p' "$dump" | head -n 1)
      total=${counts%% *}
      [ -n "$total" ] && [ "${reqs:-0}" -gt 0 ] || die "no count in $dump"
      printf '%s\t%s\t%s\t%s\n' "$d" "$name" "$reqs" "$total" >>"$OUT/instructions.tsv"
      say "  $d $name: $reqs requests, $((total / reqs)) instructions per request ($dump)"
      if [ -n "$sim" ]; then
        awk -v d="$d" -v name="$name" -v reqs="$reqs" -v ev="$events" -v c="$counts" 'BEGIN {
          n = split(ev, e, " "); split(c, v, " ")
          for (i = 1; i <= n; i++) per[e[i]] = v[i] / reqs
          printf "%s\t%s\t%.1f\t%.1f\t%.1f\n", d, name, per["I1mr"], per["ILmr"], per["Bcm"] + per["Bim"]
        }' >>"$OUT/simulated.tsv"
      fi
    done
    stop_pid "$UB_PID"
  done
  awk -F'\t' '
    { per[$1, $2] = $4 / $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    END {
      printf "%-12s %14s %14s %8s\n", "row", "upsbridge", "baseline", "ratio"
      for (i = 1; i <= n; i++) {
        d = order[i]; a = per[d, "upsbridge"]; b = per[d, "baseline"]
        printf "%-12s %14.0f %14s %8s\n", d, a, b ? sprintf("%.0f", b) : "-", b ? sprintf("%.3f", a / b) : "-"
      }
    }' "$OUT/instructions.tsv" | tee "$OUT/instructions.txt"
  say "instructions per request (callgrind, all of upsbridge's threads): $OUT/instructions.txt"
  if [ -n "$sim" ]; then
    awk -F'\t' 'BEGIN { printf "%-12s %-10s %16s %16s %16s\n", "row", "build", "I1 misses/req", "LL i-misses/req", "mispredicts/req" }
      { printf "%-12s %-10s %16s %16s %16s\n", $1, $2, $3, $4, $5 }' "$OUT/simulated.tsv" | tee "$OUT/simulated.txt"
    say "callgrind's cache and branch model, per request: $OUT/simulated.txt"
  fi
}

# ---------------------------------------------------------------------------------------------
# The verdict over several runs: each run's ratio to nginx (same row, same run), then the
# median and range of those ratios. On a shared host the absolute figures move by tens of per
# cent between runs while nginx and upsbridge, measured seconds apart, move together; a median
# of paired ratios is what that noise leaves readable.
paired_ratios() {
  echo "ratio to nginx, paired within each run, over $RUNS runs: median (min-max)"
  awk -F'\t' '
    $4 == "NA" { next }
    { rps[$1, $2, $3] = $4; cpu[$1, $2, $3] = $7; runs[$1] = 1
      key = $2 "\t" $3
      if ($3 != "nginx" && $3 != "direct" && !(key in seen)) { seen[key] = 1; order[++n] = key } }
    function median(a, m,   i, j, t) {
      for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
      printf "%-13s %-13s %24s %24s\n", "row", "server", "req/s x nginx", "CPU/request x nginx"
      for (i = 1; i <= n; i++) {
        split(order[i], k, "\t"); m = 0
        delete q; delete c
        for (r in runs)
          if (((r, k[1], k[2]) in rps) && ((r, k[1], "nginx") in rps) && rps[r, k[1], "nginx"] > 0 && cpu[r, k[1], "nginx"] > 0) {
            m++; q[m] = rps[r, k[1], k[2]] / rps[r, k[1], "nginx"]; c[m] = cpu[r, k[1], k[2]] / cpu[r, k[1], "nginx"]
          }
        if (m == 0) continue
        lo = hi = q[1]; clo = chi = c[1]
        for (j = 2; j <= m; j++) { if (q[j] < lo) lo = q[j]; if (q[j] > hi) hi = q[j]; if (c[j] < clo) clo = c[j]; if (c[j] > chi) chi = c[j] }
        printf "%-13s %-13s %10.2f (%.2f-%.2f) %10.2f (%.2f-%.2f)\n", k[1], k[2], median(q, m), lo, hi, median(c, m), clo, chi
      }
    }' "$OUT/results.tsv"
}

say "machine: $CPUS CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
say "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)  (other work on the machine skews results)"
say "pinning: server under test on CPU $PIN_SERVER; wrk and the static upstream on CPU $PIN_LOAD"
say "load: wrk -t1 -c$CONNS -d${DURATION}s after ${WARMUP}s warm-up, then -c$LAT_CONNS -d${LAT_DURATION}s"
capture_answers
if [ "${INSTRUCTIONS:-0}" = 1 ]; then
  : >"$OUT/instructions.tsv"
  count_instructions
  exit 0
fi
: >"$OUT/results.tsv"
for run in $(seq "$RUNS"); do
  one_run "$run"
done

{
  echo "upsbridge compare: $(date -u +%Y-%m-%dT%H:%M:%SZ), $CPUS CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wrk -t1 -c$CONNS -d${DURATION}s (req/s, p50, p99, CPU, RSS) and -c$LAT_CONNS -d${LAT_DURATION}s (1c p50/p99); server on CPU $PIN_SERVER, wrk+upstream on CPU $PIN_LOAD; logs $([ "$QUIET_LOGS" = 1 ] && echo off || echo 'on (defaults)')"
  echo "x nginx: ratio to nginx doing the header swap for the same request; x direct: ratio to REST straight to the upstream"
  echo "CPU s/10k: CPU seconds of the server under test per 10,000 requests, split into user and kernel µs per request; RSS: peak (VmHWM) during the run; 1c: the latency pass ($LAT_CONNS connection(s)); load µs: CPU $PIN_LOAD's busy time per request; wakes: wake-up interrupts of CPU $PIN_SERVER per request"
  for run in $(seq "$RUNS"); do
    echo
    echo "run $run"
    print_table "$run"
  done
  if [ "$RUNS" -gt 1 ]; then
    echo
    paired_ratios
    echo
    echo "run-to-run spread ((max-min)/mean over $RUNS runs)"
    awk -F'\t' '
      $4 == "NA" { next }
      {
        key = $2 "/" $3
        if (!(key in seen)) { seen[key] = 1; order[++n] = key }
        cnt[key]++
        for (f = 4; f <= 10; f++) {
          v = $f + 0
          sum[key, f] += v
          if (cnt[key] == 1 || v < mn[key, f]) mn[key, f] = v
          if (cnt[key] == 1 || v > mx[key, f]) mx[key, f] = v
        }
      }
      function spread(k, f) { m = sum[k, f] / cnt[k]; return (m > 0) ? sprintf("%.1f%%", 100 * (mx[k, f] - mn[k, f]) / m) : "-" }
      END {
        printf "%-22s %8s %8s %8s %8s %8s %8s %8s\n", "row", "req/s", "p50", "p99", "CPU", "RSS", "1c p50", "1c p99"
        for (i = 1; i <= n; i++) {
          k = order[i]
          printf "%-22s %8s %8s %8s %8s %8s %8s %8s\n", k, spread(k, 4), spread(k, 5), spread(k, 6), spread(k, 7), spread(k, 8), spread(k, 9), spread(k, 10)
        }
      }' "$OUT/results.tsv"
  fi
} | tee "$OUT/table.txt"
say "raw results: $OUT/results.tsv"
