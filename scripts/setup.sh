#!/usr/bin/env bash
# Installs what building and testing upsbridge needs on a Debian machine that has a Rust
# toolchain: cmake (pingora's zlib-ng build), and for the browser test (tests/browser.rs)
# Debian's Chromium, Node.js and the pinned playwright-core in tests/browser.
# `setup.sh bench` also installs what benches/compare.sh drives: nginx, wrk, curl, taskset.
# Idempotent: installs only what is missing.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
# The browser test drives Debian's Chromium (never a test tool's own browser download).
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${1:-}" = bench ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v taskset >/dev/null 2>&1 || need+=(util-linux)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install a Rust toolchain (rustup) first" >&2; exit 1; }

# playwright-core, pinned by tests/browser/package-lock.json.
browser_dir="$(dirname "$0")/../tests/browser"
if [ ! -d "$browser_dir/node_modules" ]; then
  echo "setup: npm ci in tests/browser" >&2
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
