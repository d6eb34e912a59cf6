#!/usr/bin/env bash
# A 3-second benches/compare.sh, run by CI so the benchmark cannot rot: every row must be
# measured (upsbridge answering each dialect with its rate answer, through the same harness
# as the real comparison) with no errors. A smoke test, not a gate on ratios: it uses the
# debug build the test run already made, and a busy CI machine says nothing about speed.
#
#     bash benches/smoke.sh            # after `cargo test` (or any debug build)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${UPSBRIDGE_BIN:-target/debug/upsbridge}
[ -x "$BIN" ] || cargo build --quiet --bin upsbridge
OUT=$(mktemp -d "${TMPDIR:-/tmp}/upsbridge-smoke.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

SKIP_BUILD=1 UPSBRIDGE_BIN=$BIN FLOORS=0 RUNS=1 DURATION=3 WARMUP=0 LAT_DURATION=1 CONNS=8 \
  QUIET_LOGS=1 OUT=$OUT bash benches/compare.sh >"$OUT/compare.log" 2>&1 || {
  cat "$OUT/compare.log" >&2
  echo "smoke: benches/compare.sh failed" >&2
  exit 1
}

# results.tsv: run, row, server, req/s, …, errors in column 11.
fail=0
for row in header header_get legacy_json soap xml; do
  line=$(awk -F'\t' -v r="$row" '$2 == r && $3 == "upsbridge"' "$OUT/results.tsv")
  rate=$(printf '%s\n' "$line" | cut -f4)
  errors=$(printf '%s\n' "$line" | cut -f11)
  if [ -z "$line" ] || [ "$rate" = NA ] || [ "${errors:-1}" != 0 ] || [ "${rate%%.*}" -lt 1 ] 2>/dev/null; then
    echo "smoke: row $row not measured cleanly: ${line:-missing}" >&2
    fail=1
  else
    echo "smoke: $row: $rate req/s, 0 errors"
  fi
done
if [ "$fail" != 0 ]; then
  cat "$OUT/compare.log" >&2
  exit 1
fi
