# Shell helpers shared by benches/compare.sh, benches/tls.sh, benches/scale.sh and
# benches/shared-candidate.sh (sourced, not run): the binary to measure, process bookkeeping,
# ports, CPU ticks, and the static nginx "upstream" that answers like UPS.
# The sourcing script defines ROOT, BENCH, BIN, TMP, PIDS, NGINX, PIN_LOAD, QUIET_LOGS, STATIC_BEARER
# and die.

say() { printf '%s\n' "$*" >&2; }

# The upsbridge binary a bench measures, printed on stdout: UPSBRIDGE_BIN when set; otherwise
# the README's build (scripts/build.sh: the committed profile, incremental, 0.5 s when up to
# date), built first unless SKIP_BUILD=1 (then the one there: the profile-guided binary, or the
# plain one where build.sh fell back to it); PLAIN=1 measures plain `cargo build --release`.
# Figures are quoted for the build users run, so that is the default.
bench_binary() {
  local bin
  if [ -n "${UPSBRIDGE_BIN:-}" ]; then
    bin=$UPSBRIDGE_BIN
  elif [ "${PLAIN:-0}" = 1 ]; then
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
      say "building the plain release binary (incremental)…"
      cargo build --release --quiet --bin upsbridge
    fi
    bin=$ROOT/target/release/upsbridge
  elif [ "${SKIP_BUILD:-0}" = 1 ]; then
    bin=$ROOT/target/pgo/release/upsbridge
    [ -x "$bin" ] || bin=$ROOT/target/release/upsbridge
  else
    say "building the release binary with the committed profile (scripts/build.sh, incremental)…"
    bin=$ROOT/$(bash "$ROOT/scripts/build.sh" | tail -n 1) || return 1
  fi
  say "measuring $bin"
  printf '%s\n' "$bin"
}

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

wait_port() {
  local port=$1 i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$port"
}

# Wait for the first N lines of a file (a child's stdout); print them.
wait_lines() {
  local file=$1 n=$2 secs=${3:-30} i
  for i in $(seq $((secs * 10))); do
    if [ "$(wc -l <"$file" 2>/dev/null || echo 0)" -ge "$n" ]; then
      head -n "$n" "$file"
      return 0
    fi
    sleep 0.1
  done
  die "$file: fewer than $n lines after $secs s"
}

# utime+stime ticks of the given processes (all their threads).
cpu_ticks() {
  local total=0 pid t
  for pid in "$@"; do
    t=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    total=$((total + t))
  done
  echo "$total"
}

# User and kernel ticks of the given processes (all their threads), as "USER KERNEL".
cpu_ticks_split() {
  local user=0 kernel=0 pid u k
  for pid in "$@"; do
    read -r u k < <(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
    user=$((user + u))
    kernel=$((kernel + k))
  done
  echo "$user $kernel"
}

# Core CPU's busy ticks (user, nice, system, irq, softirq) and the interrupts it took that
# wake a thread sleeping on it from another CPU (function-call and rescheduling IPIs: this
# kernel queues a remote wake-up and sends a function-call interrupt), as "BUSY WAKES".
# "0 0" when CPU is not a single CPU number.
core_counters() {
  local cpu=$1
  case $cpu in '' | *[!0-9]*) echo "0 0"; return ;; esac
  awk -v c="cpu$cpu" -v col=$((cpu + 2)) '
    FILENAME == "/proc/stat" && $1 == c { busy = $2 + $3 + $4 + $7 + $8 }
    FILENAME == "/proc/interrupts" && ($1 == "CAL:" || $1 == "RES:") { wakes += $col }
    END { print busy + 0, wakes + 0 }' /proc/stat /proc/interrupts
}

field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# nginx_common DIR [ACCESS_LOG]: the head of an nginx.conf; ACCESS_LOG "on" (the default) writes
# an access log unless QUIET_LOGS=1, "off" never does.
nginx_common() {
  local dir=$1 access_log=${2:-on}
  mkdir -p "$dir/tmp"
  local user_line=""
  [ "$(id -u)" -eq 0 ] && user_line="user root;"
  local access="access_log $dir/access.log;"
  [ "$QUIET_LOGS" = 1 ] || [ "$access_log" = off ] && access="access_log off;"
  cat <<EOF
$user_line
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  $access
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
EOF
}

# The static "UPS" writes no access log, as the shared harness's upstream does not: UPS is not on
# this disk, and a write(2) to a log file blocks for up to 15 ms while ext4 commits its journal
# (perf sched caught the upstream worker in D state that long, core 0 and core 1 idle: every
# proxy's c4 p99 spikes then; docs/performance.md, forty-second session).
start_upstream() {
  local dir=$TMP/upstream
  UP_PORT=$(free_port)
  mkdir -p "$dir"
  {
    nginx_common "$dir" off
    cat <<EOF
  server {
    listen 127.0.0.1:$UP_PORT;
    location = /security/v1/oauth/token {
      default_type application/json;
      return 200 '$(cat "$TMP/token_answer.json")';
    }
    location /api/ {
      default_type application/json;
      return 200 '$(cat "$TMP/rate_answer.json")';
    }
  }
}
EOF
  } >"$dir/nginx.conf"
  taskset -c "$PIN_LOAD" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>>"$dir/error.log" &
  UP_MASTER=$!
  PIDS+=("$UP_MASTER")
  wait_port "$UP_PORT"
}

# A free loopback port (nothing answers a connect to it), below the ephemeral range: the
# handshake passes leave thousands of client ports in TIME_WAIT there.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p i lo=10000 span=$((EPHEMERAL_LOW - 10000))
  [ "$span" -ge 1000 ] || { lo=20000; span=40000; }
  for i in $(seq 200); do
    p=$((lo + RANDOM % span))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# An nginx master and its workers.
nginx_pids() {
  local master=$1
  # shellcheck disable=SC2046 # one PID per word
  echo "$master" $(cat /proc/"$master"/task/*/children 2>/dev/null)
}

# ---------------------------------------------------------------------------------------------
# The UPS-shaped answers: from the simulator itself.
capture_answers() {
  local port url token body
  say "capturing the simulator's RateResponse…"
  "$BIN" sim --listen 127.0.0.1:0 --client "$CLIENT_ID:$CLIENT_SECRET" >"$TMP/sim.out" 2>"$TMP/sim.log" &
  local sim=$!
  PIDS+=("$sim")
  url=$(wait_lines "$TMP/sim.out" 1 | sed 's/^listening on //')
  token=$(curl -sf -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \
    "$url/security/v1/oauth/token") || die "simulator token request failed"
  local access
  access=$(printf '%s' "$token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  [ -n "$access" ] || die "no access_token in $token"
  curl -sf -H "Authorization: Bearer $access" -H 'Content-Type: application/json' \
    -H 'transId: bench' -H 'transactionSrc: bench' --data-binary @"$BENCH/rate_rest.json" \
    "$url/api/rating/v2409/Rate" >"$TMP/rate_answer.json" || die "simulator rate request failed"
  grep -q '"RateResponse"' "$TMP/rate_answer.json" || die "unexpected rate answer: $(cat "$TMP/rate_answer.json")"
  # The same token JSON shape as the simulator's, with the bench's static token and a long life.
  printf '%s' "$token" | sed -e "s/\"access_token\":\"[^\"]*\"/\"access_token\":\"$STATIC_BEARER\"/" \
    >"$TMP/token_answer.json"
  stop_pid "$sim"
  wait "$sim" 2>/dev/null || true
  PIDS=()
  for f in rate_answer token_answer; do
    if grep -q "[\$'\\\\]" "$TMP/$f.json"; then die "$f has a character nginx's return cannot carry"; fi
  done
}

# nginx as the reverse proxy under test, one worker on CPU $PIN_SERVER, in front of the static
# upstream: the header swap (the legacy rate paths to REST Rate, the three credential headers
# dropped, the bench's bearer added). $1: words after the listen address (`ssl`); $2: more
# server lines (certificates, extra locations). Sets NGX_PORT and NGX_MASTER.
start_nginx_proxy() {
  local dir=$TMP/nginx listen_opts=${1:-} extra=${2:-}
  NGX_PORT=$(free_port)
  mkdir -p "$dir"
  : >"$dir/error.log"
  {
    nginx_common "$dir"
    cat <<EOF
  upstream ups { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX_PORT${listen_opts:+ $listen_opts};
$extra
    client_max_body_size 10m;
    location / {
      # The same path map upsbridge applies for these rows: every rate request → REST Rate.
      rewrite ^/ship/v?(\d+)/rating/(\w+)\$ /api/rating/v\$1/\$2 break;
      rewrite ^/(rest|json|webservices|ups\.app/xml)/Rate\$ /api/rating/v2409/Rate break;
      proxy_pass http://ups;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1:$UP_PORT;
      proxy_set_header AccessLicenseNumber "";
      proxy_set_header Username "";
      proxy_set_header Password "";
      proxy_set_header Authorization "Bearer $STATIC_BEARER";
    }
  }
}
EOF
  } >"$dir/nginx.conf"
  taskset -c "$PIN_SERVER" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>>"$dir/error.log" &
  NGX_MASTER=$!
  PIDS+=("$NGX_MASTER")
  wait_port "$NGX_PORT"
}

# The bench account's map in "$1", its password hashed by the upsbridge binary "$2".
write_bench_map() {
  local dir=$1 hash
  hash=$(printf '%s' "$PASSWORD" | "$2" accounts hash-password)
  cat >"$dir/accounts.toml" <<EOF
[[account]]
name = "bench"
ups_account_number = "9Y9Y9Y"
access_license_number = "$ACCESS_KEY"
user_id = "$USER_ID"
password_hash = "$hash"
client_id = "$CLIENT_ID"
client_secret_env = "UPSBRIDGE_BENCH_SECRET"
EOF
}
