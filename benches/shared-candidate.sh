#!/usr/bin/env bash
# upsbridge as the candidate of the team's same-run harness (../shared/bench/run.sh): header
# style, one proxy thread, the harness's credentials mapped to one account whose token comes
# from the harness upstream's token endpoint.
#
#   CANDIDATE_NAME=upsbridge CANDIDATE_CMD="exec bash $PWD/benches/shared-candidate.sh" \
#     TARGETS=nginx-1w ../shared/bench/run.sh
#
# UPSBRIDGE_BIN picks the binary, for an A/B of two builds. By default it is the README's build,
# target/pgo/release/upsbridge of `bash scripts/build.sh` (run that first: the harness times the
# candidate's start, so nothing is built here), or the plain target/release/upsbridge where
# build.sh fell back to it (a rustc that cannot read the committed profile).
# upsbridge logs at its default `info`, one line per request to a file; the harness's nginx
# has `access_log off`. RUST_LOG passes through: CANDIDATE_CMD="RUST_LOG=warn exec bash …"
# runs the like-for-like job, no request line on either side.
set -euo pipefail
: "${RUN_DIR:?run by ../shared/bench/run.sh}" "${CANDIDATE_PORT:?}" "${UPSTREAM_URL:?}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
BIN=$(SKIP_BUILD=1 bench_binary 2>/dev/null)
[ -x "$BIN" ] || { say "shared-candidate.sh: no upsbridge binary at $BIN; build it first: bash scripts/build.sh"; exit 1; }
say "shared-candidate.sh: measuring $BIN"
dir=$RUN_DIR/upsbridge-$CANDIDATE_PORT
mkdir -p "$dir"
hash=$(printf '%s' benchpass | "$BIN" accounts hash-password)
cat >"$dir/accounts.toml" <<MAP
[[account]]
name = "bench"
ups_account_number = "9Y9Y9Y"
access_license_number = "BENCHKEY0001"
user_id = "benchuser"
password_hash = "$hash"
client_id = "benchclient"
client_secret_env = "UPSBRIDGE_BENCH_SECRET"
MAP
cat >"$dir/upsbridge.toml" <<CONF
[proxy]
listen = "127.0.0.1:$CANDIDATE_PORT"
threads = 1
shutdown_grace_secs = 1
[admin]
listen = "127.0.0.1:0"
[store]
path = "store"
[accounts]
file = "accounts.toml"
[ups]
base_url = "$UPSTREAM_URL"
CONF
export UPSBRIDGE_BENCH_SECRET=bench-secret
exec "$BIN" serve --config "$dir/upsbridge.toml" >"$dir/stdout" 2>"$dir/upsbridge.log"
