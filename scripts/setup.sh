#!/usr/bin/env bash
# Installs what building and testing upsbridge needs on a Debian machine that has a Rust
# toolchain: cmake (pingora's zlib-ng build). Idempotent: installs only what is missing.
# `setup.sh bench` also installs what benches/compare.sh drives: nginx, wrk, curl, taskset.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
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
