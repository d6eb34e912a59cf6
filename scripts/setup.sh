#!/usr/bin/env bash
# Installs what building and testing upsbridge needs on a Debian machine that has a Rust
# toolchain: cmake (pingora's zlib-ng build); for the browser test (tests/browser.rs) Debian's
# Chromium, Node.js and the pinned playwright-core in tests/browser; for tests/legacy_clients.rs
# the pinned legacy UPS client libraries (PyPI ones in venvs under target/client-venv and
# target/client-venv2, npm ones in tests/clients/node_modules from the lock file).
# Debian's PostgreSQL server for the PostgreSQL store backend's tests (tests/store_backends.rs
# runs its own clusters in temp dirs; the distribution's own cluster is not used).
# `setup.sh bench` also installs what benches/compare.sh drives: nginx, wrk, curl, taskset
# (and valgrind for its INSTRUCTIONS=1 mode); `setup.sh pgo` that and the llvm-profdata and
# BOLT of rustc's own LLVM version, for scripts/pgo.sh (the profile-guided release build).
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
# The browser test drives Debian's Chromium (never a test tool's own browser download).
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# initdb is not on PATH in Debian's packaging: look where it installs it too.
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ "${1:-}" = bench ] || [ "${1:-}" = pgo ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  # INSTRUCTIONS=1 counts instructions per request under callgrind.
  [ "${INSTRUCTIONS:-0}" = 1 ] && ! command -v valgrind >/dev/null 2>&1 && need+=(valgrind)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v taskset >/dev/null 2>&1 || need+=(util-linux)
fi
if [ "${1:-}" = pgo ]; then
  # The profile's format is LLVM's own: merge it with the llvm-profdata rustc's LLVM matches.
  llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
  command -v "llvm-profdata-$llvm_major" >/dev/null 2>&1 || need+=("llvm-$llvm_major")
  # BOLT lays the profile-guided binary out; its instrumented copy links BOLT's runtime.
  command -v "llvm-bolt-$llvm_major" >/dev/null 2>&1 || need+=("bolt-$llvm_major")
  ls /usr/lib/llvm-"$llvm_major"/lib/libbolt_rt_instr.a >/dev/null 2>&1 || need+=("libbolt-$llvm_major-dev")
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install a Rust toolchain (rustup) first" >&2; exit 1; }

# UPS's legacy XSDs (target/legacy-xsd), against which the tests validate every SOAP answer.
bash scripts/legacy-xsd.sh

# playwright-core, pinned by tests/browser/package-lock.json.
if [ ! -d tests/browser/node_modules ]; then
  echo "setup: npm ci in tests/browser" >&2
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# Legacy UPS client libraries (tests/clients/): re-installed only when their pins change.
venv=target/client-venv
req=tests/clients/requirements.txt
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing legacy UPS client libraries (PyPI) into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" >"$venv/.requirements.sha256"
fi
# karrio (tests/clients/requirements-karrio.txt) needs a carrier.ups that conflicts with
# purplship's, so it has its own venv.
venv2=target/client-venv2
req2=tests/clients/requirements-karrio.txt
want="$(sha256sum "$req2" | cut -d' ' -f1)"
if [ ! -x "$venv2/bin/python" ] || [ "$(cat "$venv2/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing karrio (PyPI) into $venv2" >&2
  python3 -m venv "$venv2"
  "$venv2/bin/pip" install -q --disable-pip-version-check -r "$req2"
  echo "$want" >"$venv2/.requirements.sha256"
fi
lock=tests/clients/package-lock.json
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ "$(cat tests/clients/node_modules/.lock.sha256 2>/dev/null)" != "$want" ]; then
  echo "setup: installing legacy UPS client libraries (npm) into tests/clients/node_modules" >&2
  (cd tests/clients && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$want" >tests/clients/node_modules/.lock.sha256
fi
