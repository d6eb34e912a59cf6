#!/usr/bin/env bash
# Re-make tests/fixtures/clients/<lib>-<step>.http: run every driver against capture_server.py
# (a canned stand-in for old UPS on 127.0.0.1) and keep each request exactly as sent.
# Credentials are the EAST test account of tests/common (synthetic), so a fixture can be
# replayed against a test proxy as is. Needs `bash scripts/setup.sh` first.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=target/client-venv/bin/python
OUT=tests/fixtures/clients
[ -x "$PY" ] || { echo "capture: $PY missing; run bash scripts/setup.sh" >&2; exit 1; }
[ -d tests/clients/node_modules/shipping-ups ] || { echo "capture: shipping-ups missing; run bash scripts/setup.sh" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'kill "${srv:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

capture() { # lib driver step...
  local lib=$1 driver=$2; shift 2
  rm -rf "$tmp/req" && mkdir -p "$tmp/req"
  "$PY" tests/clients/capture_server.py "$tmp/req" >"$tmp/srv.out" &
  srv=$!
  for _ in $(seq 50); do [ -s "$tmp/srv.out" ] && break; sleep 0.1; done
  local url; url=$(sed -n 's/^listening on //p' "$tmp/srv.out")
  "$@" "tests/clients/$driver" "$url" ACCESSKEY123 legacyuser legacypass-Xq7 9Y9Y9Y >"$tmp/$lib.json"
  kill "$srv"; wait "$srv" 2>/dev/null || true
  echo "capture: $lib parsed $(cat "$tmp/$lib.json")" >&2
}

steps() { # lib step1 step2 ...: rename NNN.http in order
  local lib=$1 i=1; shift
  for step in "$@"; do
    cp "$tmp/req/$(printf %03d $i).http" "$OUT/$lib-$step.http"; i=$((i + 1))
  done
  [ ! -e "$tmp/req/$(printf %03d $i).http" ] || { echo "capture: $lib sent more requests than expected" >&2; exit 1; }
}

mkdir -p "$OUT"
capture classicups3 classicups3_driver.py "$PY"; steps classicups3 shipconfirm shipaccept
capture purplship purplship_driver.py "$PY"; steps purplship rate ship
capture shipping-ups shipping_ups_driver.js node; steps shipping-ups rate shipconfirm shipaccept
ls -l "$OUT" >&2
