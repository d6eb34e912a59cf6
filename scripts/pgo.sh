#!/usr/bin/env bash
# A profile-guided (PGO) release build of upsbridge: target/pgo/release/upsbridge.
#
#   bash scripts/setup.sh pgo   # what benches/compare.sh drives, and llvm-profdata
#   bash scripts/pgo.sh
#
# 1. builds an instrumented binary (target/pgo-gen; RUSTFLAGS change every crate's build, so
#    it has its own target dir and leaves target/release alone);
# 2. trains it with benches/compare.sh's rows (header style POST and GET, legacy JSON, SOAP and
#    old-XML rates against the static upstream, nginx beside it as always; PGO_SECS seconds
#    each under load, default 5), which writes a profile when the proxy exits;
# 3. merges the profile with the llvm-profdata of rustc's own LLVM version and builds again
#    with it (target/pgo).
#
# What the profile does not cover (other services, refusals, the admin page, TLS) is compiled
# as cold code: correct, only not laid out for speed. Each build is a fat-LTO release build of
# every crate: 10-15 minutes each on 2 cores. Both builds read the working tree as it is when
# cargo gets to each file: to build one commit while editing, run this in a `git worktree`.
set -euo pipefail
cd "$(dirname "$0")/.."

llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=${LLVM_PROFDATA:-$(command -v "llvm-profdata-$llvm_major" || true)}
[ -x "$profdata" ] || {
  echo "pgo: llvm-profdata-$llvm_major not found (rustc uses LLVM $llvm_major): bash scripts/setup.sh pgo" >&2
  exit 1
}

data=$PWD/target/pgo-data
rm -rf "$data"
mkdir -p "$data"
echo "pgo: building the instrumented binary (target/pgo-gen)" >&2
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$data" \
  cargo build --release --bin upsbridge --target-dir target/pgo-gen

# Build scripts and proc macros ran instrumented during the build: only the proxy's profile.
rm -f "$data"/*.profraw
echo "pgo: training it with benches/compare.sh's rows" >&2
SKIP_BUILD=1 UPSBRIDGE_BIN=$PWD/target/pgo-gen/release/upsbridge RUNS=1 DURATION=${PGO_SECS:-5} \
  LAT_DURATION=1 FLOORS=0 OUT=$PWD/target/pgo-train bash benches/compare.sh >&2
ls "$data"/*.profraw >/dev/null 2>&1 || {
  echo "pgo: the instrumented proxy wrote no profile (did it exit cleanly?)" >&2
  exit 1
}
"$profdata" merge -o "$PWD/target/pgo.profdata" "$data"

# Every crate is built against the profile (pingora's and tokio's hot paths are most of a
# request), so a new profile means a clean build: cargo does not see the file change.
rm -rf target/pgo/release
echo "pgo: building with the profile (target/pgo)" >&2
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PWD/target/pgo.profdata" \
  cargo build --release --bin upsbridge --target-dir target/pgo
echo "pgo: target/pgo/release/upsbridge" >&2
