#!/usr/bin/env bash
# upsbridge's TLS listener against nginx terminating TLS with the same certificate and key, in
# the same run, on loopback. Figures are ratios (upsbridge ÷ nginx), never absolute targets.
# One command from a clean clone:
#
#     bash benches/tls.sh
#
# What runs (all on 127.0.0.1, ports picked free):
#   upstream  nginx answering like UPS from static bodies (as in benches/compare.sh: the token
#             JSON and the RateResponse captured from `upsbridge sim` at start).
#   nginx     nginx terminating TLS with the leaf `upsbridge tls init` made (leaf.pem +
#             leaf.key, ECDSA P-256), 1 worker, TLSv1.2 + TLSv1.3, ssl_session_cache
#             shared:SSL:10m (tickets on, nginx's default), the key-exchange groups rustls
#             offers, and compare.sh's header swap to the upstream (AccessLicenseNumber,
#             Username, Password dropped, Authorization: Bearer added).
#   upsbridge `upsbridge serve` with [proxy] tls_listen, [tls] dir = that same directory and
#             [ups] base_url = the upstream.
#
# Measurements, each against both servers (odd runs nginx first, even runs upsbridge first):
#   1. full handshakes/s, TLS 1.3 and TLS 1.2: `openssl s_time -new`, HS_CLIENTS processes.
#   2. resumed handshakes/s: TLS 1.2 with `s_time -reuse` (ticket from the first connection);
#      TLS 1.3 with `s_time -reuse -www /tls-probe`. s_time never reads from a connection
#      without -www, so it never receives the NewSessionTicket TLS 1.3 sends after the
#      handshake and nothing resumes (the script checks this and prints what it saw); with
#      -www every connection also sends `GET /tls-probe HTTP/1.0` and reads a small 404 (nginx:
#      `return 404`; upsbridge: its "unknown service" 404). Every handshake row counts the
#      connections s_time reports as resumed (`r`): below 90 % the row is "not resumed".
#      The "log warnings" column counts upsbridge's "TLS handshake failed" lines per pass: none
#      is expected (a client that hangs up right after the handshake is a debug line since
#      252826e; before, each s_time connection was a warning blaming the CA).
#   3. keep-alive throughput: wrk -t1 -cCONNS over https, compare.sh's header-style request
#      (benches/compare/wrk.lua) with `Host: onlinetools.ups.com`: requests/s, p50/p99.
# Every row also gives the server's CPU seconds per 10,000 handshakes or requests (utime+stime
# from /proc/PID/stat, all threads; nginx: master + worker) and its CPU use in % of one core.
# openssl's handshake costs the client about as much as the server (the client also verifies
# the ECDSA chain), so with one load core the handshake rates are often bound by the client:
# read "CPU s/10k" for the servers' cost, and "server CPU %" for how close to saturation each
# server was. A row's ratio of rates only measures the server when both ran near 100 %.
#
# Names: s_time sends no SNI; wrk sends the URL's host (127.0.0.1) as SNI, which rustls
# ignores (one "Illegal SNI extension" warning per connection in upsbridge's log); both
# servers then answer with their only certificate, the leaf for onlinetools.ups.com. The
# requests are checked first with curl against the name (SNI onlinetools.ups.com via
# --resolve, CA verified) on both servers. s_time verifies against ca.pem (-CAfile).
#
# CPU pinning on a 2-core machine: the server under test alone on CPU $PIN_SERVER (default 0);
# the load generators and the static upstream on CPU $PIN_LOAD (default 1), as compare.sh.
#
# Environment: RUNS (2), DURATION (10, seconds per measurement; s_time takes whole seconds),
# WARMUP (2, seconds of the same load before each measurement; 0: none), CONNS (32, wrk
# connections), HS_CLIENTS (4, parallel s_time processes), PIN_SERVER (0), PIN_LOAD (1),
# QUIET_LOGS (0: upsbridge logs at `info` and nginx writes its access log, each to a file, as
# in compare.sh; 1: both off), UPSBRIDGE_BIN (the README's build: target/pgo/release/upsbridge
# of scripts/build.sh, built first unless SKIP_BUILD=1; copied for the run so a rebuild
# meanwhile does not swap it), SKIP_BUILD (0), PLAIN (0; 1: measure plain `cargo build
# --release` instead, target/release/upsbridge), OUT (target/compare/tls-<time>: raw
# s_time/wrk output, results.tsv, log excerpts, report.md).
#
# Needs nginx, wrk (built with OpenSSL), curl and taskset (`bash scripts/setup.sh bench` installs
# them) and the openssl command. Loopback connection churn relies on net.ipv4.tcp_tw_reuse
# (Linux default 2: on for loopback). upsbridge's output goes to a folder of its own, not
# beside accounts.toml (upsbridge watches the map's folder; a log there wakes the watcher).
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
CONNS=${CONNS:-32}
HS_CLIENTS=${HS_CLIENTS:-4}
PIN_SERVER=${PIN_SERVER:-0}
PIN_LOAD=${PIN_LOAD:-1}
QUIET_LOGS=${QUIET_LOGS:-0}
OUT=${OUT:-$ROOT/target/compare/tls-$(date +%Y%m%d-%H%M%S)}
BENCH=$ROOT/benches/compare
SNI=onlinetools.ups.com

# Bench credentials (match the bodies in benches/compare/, as compare.sh).
ACCESS_KEY=BENCHKEY0001
USER_ID=benchuser
PASSWORD=bench-pass-Q7
CLIENT_ID=bench-client
CLIENT_SECRET=bench-client-secret
STATIC_BEARER=bench-static-token-0123456789abcdef0123456789abcdef

die() { say "tls.sh: $*"; exit 1; }

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx not found (bash scripts/setup.sh bench)"
for tool in wrk openssl curl taskset; do
  command -v "$tool" >/dev/null || die "$tool not found (bash scripts/setup.sh bench)"
done
case $DURATION in '' | *[!0-9]* | 0) die "DURATION must be whole seconds ≥ 1 (s_time -time)" ;; esac
case $WARMUP in '' | *[!0-9]*) die "WARMUP must be whole seconds" ;; esac

BIN_SRC=$(bench_binary)
[ -x "$BIN_SRC" ] || die "no $BIN_SRC"
"$BIN_SRC" tls --help >/dev/null 2>&1 || die "$BIN_SRC has no tls subcommand (rebuild, or unset SKIP_BUILD)"
CPUS=$(nproc)
if [ "$PIN_SERVER" -ge "$CPUS" ] || [ "$PIN_LOAD" -ge "$CPUS" ]; then
  say "only $CPUS CPU(s): everything shares CPU 0"
  PIN_SERVER=0
  PIN_LOAD=0
fi
[ "$(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo 2)" != 0 ] ||
  say "warning: net.ipv4.tcp_tw_reuse = 0: the handshake passes may run out of loopback ports"

mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/upsbridge-tls.XXXXXX")
PIDS=()
LOAD_PIDS=()

cleanup() {
  trap - EXIT INT TERM
  local pid
  # Background s_time processes ignore SIGINT (no job control): stop them by PID.
  for pid in "${LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${LOAD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_all
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'exit 143' TERM

# The binary under test, copied: a rebuild during the run cannot swap it between runs.
mkdir -p "$TMP/bin"
BIN=$TMP/bin/upsbridge
cp "$BIN_SRC" "$BIN"

now_ns() { date +%s%N; }

# Busy ticks of the server's CPU (user, nice, system, irq, softirq, steal), whoever ran there:
# minus the server's own ticks, what else used its core during a pass (other work on the
# machine, loopback softirq).
core_busy() { awk -v c="cpu$PIN_SERVER" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# Lines matching a pattern in a file (0 when absent).
count_lines() { grep -c -- "$2" "$1" 2>/dev/null || true; }

# The upsbridge config (also read by `tls init`) and its account map.
write_upsbridge_config() {
  local dir=$TMP/upsbridge
  mkdir -p "$dir"
  [ -f "$dir/accounts.toml" ] || write_bench_map "$dir" "$BIN"
  cat >"$dir/upsbridge.toml" <<EOF
[proxy]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
threads = 1
shutdown_grace_secs = 1
[admin]
listen = "127.0.0.1:0"
[store]
path = "store"
[accounts]
file = "accounts.toml"
[ups]
base_url = "http://127.0.0.1:${1:-9}"
[tls]
dir = "$TMP/tls"
EOF
}

# `upsbridge tls init`: the CA and the leaf both servers use. Sets CA, LEAF_PEM, LEAF_KEY.
make_certificates() {
  write_upsbridge_config
  CA=$("$BIN" tls init --config "$TMP/upsbridge/upsbridge.toml" 2>"$TMP/tls-init.log" | tail -n 1)
  [ -f "$CA" ] || die "tls init printed no CA path: $(cat "$TMP/tls-init.log")"
  LEAF_PEM=$(dirname "$CA")/leaf.pem
  LEAF_KEY=$(dirname "$CA")/leaf.key
  [ -f "$LEAF_PEM" ] && [ -f "$LEAF_KEY" ] || die "no leaf.pem/leaf.key beside $CA"
  openssl x509 -in "$LEAF_PEM" -noout -subject -ext subjectAltName -dates >"$OUT/leaf.txt" 2>&1 || true
}

# nginx terminating TLS with upsbridge's leaf; the header swap of compare.sh's nginx row.
start_nginx_tls() {
  start_nginx_proxy ssl "$(
    cat <<EOF
    server_name onlinetools.ups.com wwwcie.ups.com;
    ssl_certificate $LEAF_PEM;
    ssl_certificate_key $LEAF_KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    # The groups rustls (ring) offers, in its order.
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    # For s_time -www (TLS 1.3 resumption): a small 404, as upsbridge answers an unknown path.
    location = /tls-probe { return 404; }
EOF
  )"
}

# `upsbridge serve` with the TLS listener: sets UB_PORT (TLS), UB_PID, UB_ADMIN. Its output goes
# to $UB_LOGS, not beside accounts.toml (see the header).
UB_LOGS=$TMP/upsbridge-logs
start_upsbridge() {
  local dir=$TMP/upsbridge
  write_upsbridge_config "$UP_PORT"
  local log_level=${RUST_LOG:-info}
  [ "$QUIET_LOGS" = 1 ] && log_level=off
  mkdir -p "$UB_LOGS"
  : >"$UB_LOGS/upsbridge.log"
  : >"$UB_LOGS/stdout"
  UPSBRIDGE_BENCH_SECRET=$CLIENT_SECRET RUST_LOG=$log_level \
    taskset -c "$PIN_SERVER" "$BIN" serve --config "$dir/upsbridge.toml" >"$UB_LOGS/stdout" 2>>"$UB_LOGS/upsbridge.log" &
  UB_PID=$!
  PIDS+=("$UB_PID")
  local lines
  lines=$(wait_lines "$UB_LOGS/stdout" 3)
  UB_PORT=$(printf '%s\n' "$lines" | sed -n 's#^tls listening on https://127.0.0.1:##p')
  UB_ADMIN=$(printf '%s\n' "$lines" | sed -n 's#^admin listening on ##p')
  [ -n "$UB_PORT" ] || die "upsbridge printed no TLS listener: $lines"
  local i
  for i in $(seq 100); do
    curl -sf "$UB_ADMIN/readyz" >/dev/null && break
    sleep 0.1
  done
  wait_port "$UB_PORT"
}

# ---------------------------------------------------------------------------------------------
# The header-style request (compare.sh's "header" row), with the Host legacy clients send.
REQ_PATH=/ship/v2409/rating/Rate
REQ_BODY=$BENCH/rate_rest.json
REQ_HEADERS="Host: $SNI|Content-Type: application/json|AccessLicenseNumber: $ACCESS_KEY|Username: $USER_ID|Password: $PASSWORD|transId: bench-1|transactionSrc: bench"

# One request by name (SNI onlinetools.ups.com, certificate verified against the CA); prints
# the HTTP status, leaves the body in $TMP/probe.body.
probe() {
  local port=$1 hdrs h args=()
  IFS='|' read -ra hdrs <<<"$REQ_HEADERS"
  for h in "${hdrs[@]}"; do
    case $h in Host:*) ;; *) args+=(-H "$h") ;; esac
  done
  curl -s -o "$TMP/probe.body" -w '%{http_code}' -X POST "${args[@]}" --data-binary @"$REQ_BODY" \
    --cacert "$CA" --resolve "$SNI:$port:127.0.0.1" --max-time 10 "https://$SNI:$port$REQ_PATH" || echo 000
}

# What each server negotiates with openssl's defaults (one line per version).
tls_params() {
  local server=$1 port=$2 v out
  for v in tls1_3 tls1_2; do
    out=$(openssl s_client -connect "127.0.0.1:$port" -servername "$SNI" -CAfile "$CA" "-$v" \
      </dev/null 2>&1 || true)
    printf '%s\t%s\t%s\n' "$server" "$v" "$(printf '%s\n' "$out" | awk '
      /^(New|Reused), TLS/ { sub(/^(New|Reused), /, ""); proto = $0 }
      /^Server Temp Key:/ { sub(/^Server Temp Key: /, ""); kx = $0 }
      /^Peer signature type:/ { sig = $4 }
      /^ *Verify return code:/ { sub(/^ *Verify return code: /, ""); vr = $0 }
      END { printf "%s; key exchange %s; signature %s; verify %s", proto, kx, sig, vr }')"
  done
}

# s_time passes. hs_load PORT MODE VER SECS WWW TAG: HS_CLIENTS processes on the load CPU; waits
# for them; leaves their output in $OUT/TAG.N.
hs_load() {
  local port=$1 mode=$2 ver=$3 secs=$4 www=$5 tag=$6 i rc=0 args
  args=(-connect "127.0.0.1:$port" "-$mode" "-$ver" -CAfile "$CA" -time "$secs")
  [ -n "$www" ] && args+=(-www "$www")
  LOAD_PIDS=()
  for i in $(seq "$HS_CLIENTS"); do
    taskset -c "$PIN_LOAD" openssl s_time "${args[@]}" >"$OUT/$tag.$i" 2>"$OUT/$tag.$i.err" &
    LOAD_PIDS+=($!)
  done
  HS_FAILED=0
  for i in "${LOAD_PIDS[@]}"; do
    wait "$i" || rc=$?
    [ "$rc" = 0 ] || HS_FAILED=$((HS_FAILED + 1))
    rc=0
  done
  LOAD_PIDS=()
}

# Connections timed, and those s_time marked resumed (`r`), over the files of a pass.
hs_counts() {
  local tag=$1 i
  for i in $(seq "$HS_CLIENTS"); do cat "$OUT/$tag.$i" 2>/dev/null || true; done | awk '
    /^[0-9]+ connections in [0-9.]+s;/ { n += $1 }
    /^[*rt3]+$/ { r += gsub(/r/, "r") }
    END { printf "%d %d\n", n, r }'
}

# log_warnings SERVER: upsbridge's "TLS handshake failed" lines; nginx's error.log lines.
log_warnings() {
  case $1 in
    upsbridge) count_lines "$UB_LOGS/upsbridge.log" 'TLS handshake failed' ;;
    nginx) wc -l <"$TMP/nginx/error.log" 2>/dev/null || echo 0 ;;
  esac
}

# measure_hs RUN TABLE VARIANT SERVER PORT MODE VER WWW PID... → a line in $OUT/results.tsv
measure_hs() {
  local run=$1 table=$2 variant=$3 server=$4 port=$5 mode=$6 ver=$7 www=$8
  shift 8
  local pids=("$@") tag="$table-$variant-$server-run$run"
  if [ "$WARMUP" -gt 0 ]; then hs_load "$port" "$mode" "$ver" "$WARMUP" "$www" "warmup-$tag"; fi
  local w0 w1 c0 c1 t0 t1 b0 b1 counts
  w0=$(log_warnings "$server")
  b0=$(core_busy)
  c0=$(cpu_ticks "${pids[@]}")
  t0=$(now_ns)
  hs_load "$port" "$mode" "$ver" "$DURATION" "$www" "$tag"
  t1=$(now_ns)
  c1=$(cpu_ticks "${pids[@]}")
  b1=$(core_busy)
  w1=$(log_warnings "$server")
  counts=$(hs_counts "$tag")
  local n=${counts% *} r=${counts#* }
  local status=ok
  if [ "$mode" = reuse ] && [ $((r * 10)) -lt $((n * 9)) ]; then status="not resumed ($r of $n)"; fi
  [ "$n" -gt 0 ] || status="no connection (see $OUT/$tag.1.err)"
  awk -v run="$run" -v t="$table" -v v="$variant" -v s="$server" -v n="$n" -v r="$r" \
    -v ns="$((t1 - t0))" -v ticks="$((c1 - c0))" -v tck="$(getconf CLK_TCK)" \
    -v failed="$HS_FAILED" -v warns="$((w1 - w0))" -v status="$status" -v other="$((b1 - b0 - (c1 - c0)))" \
    'BEGIN {
       secs = ns / 1e9; cpu = ticks / tck
       printf "%s\t%s\t%s\t%s\t%.0f\t%.3f\t%.0f\t%d\t%d/%d\t-\t-\t%d\t%d\t%s\t%.0f\n",
         run, t, v, s, n / secs, (n > 0) ? cpu / n * 10000 : 0, 100 * cpu / secs, failed, r, n, n, warns, status,
         (other > 0) ? 100 * other / tck / secs : 0
     }' >>"$OUT/results.tsv"
  tail -n 1 "$OUT/results.tsv" | awk -F'\t' '{printf "  %-8s %-10s %-9s %7s /s  CPU %s s/10k (%s %%, others %s %%)  resumed %s  failed %s  log warnings %s  %s\n", $2, $3, $4, $5, $6, $7, $15, $9, $8, $13, ($14 == "ok") ? "" : $14}' >&2
}

# wrk over https with the header-style request: prints the RESULT fields.
run_wrk() {
  local port=$1 secs=$2
  WRK_METHOD=POST WRK_PATH=$REQ_PATH WRK_BODY_FILE=$REQ_BODY WRK_HEADERS=$REQ_HEADERS \
    taskset -c "$PIN_LOAD" wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 5s -s "$BENCH/wrk.lua" \
    "https://127.0.0.1:$port" | tee -a "$OUT/$3" | sed -n 's/^RESULT //p'
}

measure_wrk() {
  local run=$1 server=$2 port=$3
  shift 3
  local pids=("$@") tag="wrk-$server-run$run" r c0 c1 w0 w1 b0 b1
  if [ "$WARMUP" -gt 0 ]; then run_wrk "$port" "$WARMUP" "warmup-$tag" >/dev/null; fi
  w0=$(log_warnings "$server")
  b0=$(core_busy)
  c0=$(cpu_ticks "${pids[@]}")
  r=$(run_wrk "$port" "$DURATION" "$tag")
  c1=$(cpu_ticks "${pids[@]}")
  b1=$(core_busy)
  w1=$(log_warnings "$server")
  [ -n "$r" ] || die "wrk printed no result for $server (see $OUT/$tag)"
  awk -v run="$run" -v s="$server" -v req="$(field "$r" requests)" \
    -v dur="$(field "$r" duration_us)" -v p50="$(field "$r" p50_us)" -v p99="$(field "$r" p99_us)" \
    -v err="$(($(field "$r" status_errors) + $(field "$r" socket_errors)))" \
    -v ticks="$((c1 - c0))" -v tck="$(getconf CLK_TCK)" -v warns="$((w1 - w0))" -v other="$((b1 - b0 - (c1 - c0)))" \
    'BEGIN {
       secs = dur / 1e6; cpu = ticks / tck
       printf "%s\twrk\tkeep-alive\t%s\t%.0f\t%.3f\t%.0f\t%d\t-\t%.3f\t%.3f\t%d\t%d\tok\t%.0f\n",
         run, s, req / secs, cpu / req * 10000, 100 * cpu / secs, err, p50 / 1000, p99 / 1000, req, warns,
         (other > 0) ? 100 * other / tck / secs : 0
     }' >>"$OUT/results.tsv"
  tail -n 1 "$OUT/results.tsv" | awk -F'\t' '{printf "  wrk      %-10s %-9s %7s req/s  p50 %s ms  p99 %s ms  CPU %s s/10k (%s %%, others %s %%)  errors %s\n", "", $4, $5, $10, $11, $6, $7, $15, $8}' >&2
}

one_run() {
  local run=$1 code s
  say "run $run: starting upstream, nginx (TLS) and upsbridge (TLS)"
  start_upstream
  start_nginx_tls
  start_upsbridge
  for s in nginx upsbridge; do
    local port=$NGX_PORT
    [ "$s" = upsbridge ] && port=$UB_PORT
    code=$(probe "$port")
    if [ "$code" != 200 ] || ! grep -q '"RateResponse"' "$TMP/probe.body"; then
      die "$s answered the header request over TLS with HTTP $code: $(head -c 300 "$TMP/probe.body"); upsbridge log: $(tail -n 5 "$UB_LOGS/upsbridge.log")"
    fi
    if [ "$run" = 1 ]; then
      tls_params "$s" "$port" >>"$OUT/params.tsv"
      # What s_time -reuse does with TLS 1.3 when it reads nothing (see the header).
      LOAD_PIDS=()
      taskset -c "$PIN_LOAD" openssl s_time -connect "127.0.0.1:$port" -reuse -tls1_3 -CAfile "$CA" \
        -time 1 >"$OUT/check-tls13-reuse-nowww-$s.1" 2>&1 || true
      printf '%s\t%s\n' "$s" "$(hs_counts check-tls13-reuse-nowww-"$s")" >>"$OUT/tls13-nowww.tsv"
    fi
  done
  # Odd runs measure nginx first, even runs upsbridge first (drift during a run evens out).
  local order="nginx upsbridge" row
  [ $((run % 2)) = 0 ] && order="upsbridge nginx"
  for row in "full TLS1.3 new tls1_3 -" "full TLS1.2 new tls1_2 -" "resumed TLS1.2 reuse tls1_2 -" \
    "resumed TLS1.3+GET reuse tls1_3 /tls-probe" wrk; do
    for s in $order; do
      # The port, then the server's PIDs.
      if [ "$s" = nginx ]; then
        # shellcheck disable=SC2046 # one PID per word
        set -- "$NGX_PORT" $(nginx_pids "$NGX_MASTER")
      else
        set -- "$UB_PORT" "$UB_PID"
      fi
      if [ "$row" = wrk ]; then
        measure_wrk "$run" "$s" "$@"
      else
        local table variant mode ver www
        read -r table variant mode ver www <<<"$row"
        [ "$www" = - ] && www=""
        measure_hs "$run" "$table" "$variant" "$s" "$1" "$mode" "$ver" "$www" "${@:2}"
      fi
    done
  done
  # Kept for reading: the logs' warnings and errors by kind.
  {
    echo "# run $run: upsbridge WARN/ERROR lines by message (timestamps and fields dropped)"
    grep -E ' (WARN|ERROR) ' "$UB_LOGS/upsbridge.log" | sed -E 's/^[^ ]+ +//; s/ (peer|request_id|error)=.*//' |
      sort | uniq -c | sort -rn | head -20 || true
    echo "# error= values of 'TLS handshake failed'"
    grep 'TLS handshake failed' "$UB_LOGS/upsbridge.log" | sed -n 's/.* error=//p' | sort | uniq -c | sort -rn | head || true
    echo "# nginx error.log"
    sed -E 's/^[0-9/]+ [0-9:]+ //' "$TMP/nginx/error.log" | sort | uniq -c | sort -rn | head -20 || true
  } >>"$OUT/logs.txt"
  stop_all
}

# ---------------------------------------------------------------------------------------------
# Markdown tables from results.tsv. Fields: 1 run, 2 table, 3 variant, 4 server, 5 rate,
# 6 CPU s/10k, 7 CPU %, 8 failed/errors, 9 resumed r/n, 10 p50 ms, 11 p99 ms, 12 count,
# 13 log warnings, 14 status, 15 others' CPU % on the server's core.
print_tables() {
  awk -F'\t' -v runs="$RUNS" '
    function ratio(a, b) { return (a != "" && b != "" && b + 0 > 0) ? sprintf("%.2f", a / b) : "-" }
    function get(t, v, run, s, f) { k = t SUBSEP v SUBSEP run SUBSEP s; return (k in st) ? val[k, f] : "" }
    function ok(t, v, run, s) { k = t SUBSEP v SUBSEP run SUBSEP s; return (k in st) && st[k] == "ok" }
    function shown(t, v, run, s, f, fmt) {
      k = t SUBSEP v SUBSEP run SUBSEP s
      if (!(k in st)) return "-"
      if (st[k] != "ok") return st[k]
      return sprintf(fmt, val[k, f])
    }
    {
      k = $2 SUBSEP $3 SUBSEP $1 SUBSEP $4
      st[k] = $14
      for (f = 5; f <= 15; f++) if (f != 14) val[k, f] = $f
      if (!(($2 SUBSEP $3) in seen)) { seen[$2 SUBSEP $3] = 1; vars[$2, ++nv[$2]] = $3 }
    }
    # The mean over runs of one figure, only when every run has it.
    function mean(t, v, s, f,   run, sum) {
      sum = 0
      for (run = 1; run <= runs; run++) { if (!ok(t, v, run, s)) return ""; sum += get(t, v, run, s, f) }
      return sum / runs
    }
    function hs_row(t, v, run,   nr, ur, nc, uc) {
      if (run == "mean") {
        nr = mean(t, v, "nginx", 5); ur = mean(t, v, "upsbridge", 5); nc = mean(t, v, "nginx", 6); uc = mean(t, v, "upsbridge", 6)
        if (nr == "" || ur == "") { printf "| mean | %s | - | - | - | - | - | - | | | | | |\n", v; return }
        printf "| mean | %s | %.0f | %.0f | **%s** | %.3f | %.3f | **%s** | | | | | |\n", v, nr, ur, ratio(ur, nr), nc, uc, ratio(uc, nc)
        return
      }
      nr = ok(t, v, run, "nginx") ? get(t, v, run, "nginx", 5) : ""
      ur = ok(t, v, run, "upsbridge") ? get(t, v, run, "upsbridge", 5) : ""
      nc = ok(t, v, run, "nginx") ? get(t, v, run, "nginx", 6) : ""
      uc = ok(t, v, run, "upsbridge") ? get(t, v, run, "upsbridge", 6) : ""
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s |\n", run, v,
        shown(t, v, run, "nginx", 5, "%d"), shown(t, v, run, "upsbridge", 5, "%d"), ratio(ur, nr),
        shown(t, v, run, "nginx", 6, "%.3f"), shown(t, v, run, "upsbridge", 6, "%.3f"), ratio(uc, nc),
        get(t, v, run, "nginx", 7), get(t, v, run, "upsbridge", 7),
        get(t, v, run, "nginx", 15), get(t, v, run, "upsbridge", 15),
        get(t, v, run, "nginx", 9), get(t, v, run, "upsbridge", 9),
        get(t, v, run, "nginx", 8), get(t, v, run, "upsbridge", 8),
        get(t, v, run, "nginx", 13), get(t, v, run, "upsbridge", 13)
    }
    function hs_table(t, title,   i, run) {
      if (!(t in nv)) return
      print ""; print title; print ""
      print "| run | TLS | nginx hs/s | upsbridge hs/s | ÷ | nginx CPU s/10k | upsbridge CPU s/10k | ÷ | server CPU % (n / u) | others on its core % (n / u) | resumed (n / u) | s_time failed (n / u) | log warnings (n / u) |"
      print "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
      low = 0
      for (i = 1; i <= nv[t]; i++) {
        for (run = 1; run <= runs; run++) {
          hs_row(t, vars[t, i], run)
          if (get(t, vars[t, i], run, "nginx", 7) + 0 < 90 || get(t, vars[t, i], run, "upsbridge", 7) + 0 < 90) low = 1
        }
        if (runs > 1) hs_row(t, vars[t, i], "mean")
      }
      if (low) {
        print ""
        print "Server CPU below 90 % in some rows: there the load generator (s_time on one core), not the server, set the"
        print "rate, and the hs/s ratio says little about the servers; compare their CPU s/10k."
      }
    }
    function wrk_row(run,   n, u) {
      if (run == "mean") {
        printf "| mean | %.0f | %.0f | **%s** | %.2f / %.2f | %s | %.2f / %.2f | %s | %.3f / %.3f | **%s** | | | |\n",
          mean("wrk", "keep-alive", "nginx", 5), mean("wrk", "keep-alive", "upsbridge", 5),
          ratio(mean("wrk", "keep-alive", "upsbridge", 5), mean("wrk", "keep-alive", "nginx", 5)),
          mean("wrk", "keep-alive", "nginx", 10), mean("wrk", "keep-alive", "upsbridge", 10),
          ratio(mean("wrk", "keep-alive", "upsbridge", 10), mean("wrk", "keep-alive", "nginx", 10)),
          mean("wrk", "keep-alive", "nginx", 11), mean("wrk", "keep-alive", "upsbridge", 11),
          ratio(mean("wrk", "keep-alive", "upsbridge", 11), mean("wrk", "keep-alive", "nginx", 11)),
          mean("wrk", "keep-alive", "nginx", 6), mean("wrk", "keep-alive", "upsbridge", 6),
          ratio(mean("wrk", "keep-alive", "upsbridge", 6), mean("wrk", "keep-alive", "nginx", 6))
        return
      }
      n = "wrk" SUBSEP "keep-alive" SUBSEP run SUBSEP "nginx"; u = "wrk" SUBSEP "keep-alive" SUBSEP run SUBSEP "upsbridge"
      printf "| %s | %d | %d | %s | %.2f / %.2f | %s | %.2f / %.2f | %s | %.3f / %.3f | %s | %s / %s | %s / %s | %s / %s |\n", run,
        val[n, 5], val[u, 5], ratio(val[u, 5], val[n, 5]),
        val[n, 10], val[u, 10], ratio(val[u, 10], val[n, 10]),
        val[n, 11], val[u, 11], ratio(val[u, 11], val[n, 11]),
        val[n, 6], val[u, 6], ratio(val[u, 6], val[n, 6]),
        val[n, 7], val[u, 7], val[n, 15], val[u, 15], val[n, 8], val[u, 8]
    }
    END {
      hs_table("full", "### 1. Full handshakes (openssl s_time -new, new session each connection)")
      hs_table("resumed", "### 2. Resumed handshakes (openssl s_time -reuse; TLS 1.3 with -www /tls-probe: one GET + small 404 per connection)")
      if ("wrk" in nv) {
        print ""; print "### 3. Keep-alive requests over TLS (wrk, header-style rate request)"; print ""
        print "| run | nginx req/s | upsbridge req/s | ÷ | p50 ms (n / u) | ÷ | p99 ms (n / u) | ÷ | CPU s/10k (n / u) | ÷ | server CPU % (n / u) | others on its core % (n / u) | errors (n / u) |"
        print "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        for (run = 1; run <= runs; run++) wrk_row(run)
        if (runs > 1) wrk_row("mean")
      }
    }' "$OUT/results.tsv"
}

# ---------------------------------------------------------------------------------------------
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | awk '{print $2}' | paste -sd, -)
# A binary older than HEAD's commit may not hold HEAD's code (SKIP_BUILD, or UPSBRIDGE_BIN): say
# so, with the newest commit older than the binary.
BIN_TIME=$(stat -c %Y "$BIN_SRC")
STALE=""
if [ "$BIN_TIME" -lt "$(git log -1 --format=%ct 2>/dev/null || echo 0)" ]; then
  STALE=" — older than commit $COMMIT; newest commit before the build: $(git log -1 --format=%h --before="@$BIN_TIME" 2>/dev/null || echo unknown)"
fi
say "machine: $CPUS CPUs, $CPU_MODEL, kernel $(uname -r)"
say "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)  (other work on the machine skews results)"
say "pinning: server under test on CPU $PIN_SERVER; s_time/wrk and the static upstream on CPU $PIN_LOAD"
say "raw output: $OUT"
capture_answers
make_certificates
: >"$OUT/results.tsv"
: >"$OUT/params.tsv"
: >"$OUT/tls13-nowww.tsv"
: >"$OUT/logs.txt"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$RUNS"); do
  one_run "$run"
done

{
  echo "# upsbridge TLS listener vs nginx, same certificate and key"
  echo
  echo "- $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $COMMIT${DIRTY:+ (uncommitted changes: $DIRTY)}; binary $(basename "$BIN_SRC") sha256 $(sha256sum "$BIN" | cut -c1-12), built $(date -u -r "$BIN_SRC" +%Y-%m-%dT%H:%MZ)$STALE"
  echo "- $CPUS CPUs, $CPU_MODEL, kernel $(uname -r); load before/after ${LOAD_START} / $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $(openssl version | cut -d' ' -f1-2), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
  echo "- server on CPU $PIN_SERVER (nginx: 1 worker; upsbridge: threads = 1); s_time, wrk and the static upstream on CPU $PIN_LOAD"
  echo "- RUNS=$RUNS DURATION=${DURATION}s WARMUP=${WARMUP}s HS_CLIENTS=$HS_CLIENTS (parallel s_time) CONNS=$CONNS (wrk -t1); logs $([ "$QUIET_LOGS" = 1 ] && echo off || echo 'on (upsbridge info, nginx access log)')"
  echo "- ÷ = upsbridge ÷ nginx. CPU s/10k: server CPU seconds per 10,000 handshakes or requests (lower is better);"
  echo "  server CPU %: of one core during the pass (below ~90 % the client, not the server, set the rate);"
  echo "  others on its core %: busy time of the server's CPU not spent by the server (other work on the machine, loopback softirq)."
  echo "- log warnings: upsbridge's \"TLS handshake failed\" lines / nginx error.log lines (level warn) during the pass"
  echo
  echo "Negotiated with openssl s_client defaults (SNI $SNI):"
  awk -F'\t' '{printf "- %s %s: %s\n", $1, $2, $3}' "$OUT/params.tsv"
  awk '{printf "- s_time -reuse -tls1_3 without -www, 1 s: %s resumed %d of %d connections\n", $1, $3, $2}' "$OUT/tls13-nowww.tsv"
  echo "  (s_time reads nothing, so it never gets TLS 1.3's NewSessionTicket: the TLS 1.3 resumed row uses -www)"
  print_tables
} | tee "$OUT/report.md"
say "raw results: $OUT/results.tsv; log summary: $OUT/logs.txt"
