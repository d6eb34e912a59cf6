#!/usr/bin/env bash
# A profile-guided (PGO) release build of upsbridge: target/pgo/release/upsbridge.
#
#   bash scripts/setup.sh pgo   # what benches/compare.sh drives, llvm-profdata and BOLT
#   bash scripts/pgo.sh
#
# 1. builds an instrumented binary (target/pgo-gen; RUSTFLAGS change every crate's build, so
#    it has its own target dir and leaves target/release alone);
# 2. trains it with benches/compare.sh's rows (header style POST and GET, legacy JSON, SOAP and
#    old-XML rates against the static upstream, nginx beside it as always; PGO_SECS seconds
#    each under load, default 5), which writes a profile when the proxy exits;
# 3. merges the profile with the llvm-profdata of rustc's own LLVM version and builds again
#    with it (target/pgo), as scripts/build.sh builds with the committed profile; with
#    SAVE_PROFILE=1 the profile becomes the committed one (pgo/upsbridge.profdata.gz);
# 4. with BOLT=1 only, lays that binary's code out by where the same training spends its time,
#    with LLVM's BOLT: the binary is linked with its relocations kept, an instrumented copy is
#    trained as in 2, and `llvm-bolt` reorders blocks and functions and splits cold code out.
#    The profile-guided binary before it is kept as target/pgo/release/upsbridge.pgo, for A/B.
#    Off by default: callgrind's model counts 10-13 % fewer instruction-cache misses, but the
#    time it saves was not measurable on a busy host (docs/performance.md, fourteenth session).
#
# Both builds are for x86-64-v3 CPUs (AVX2, BMI2, FMA: Intel Haswell and AMD Zen onwards; 6-7 %
# fewer instructions per request through the proxy than for plain x86-64, legacy JSON 2.4 %),
# as the machine it is built on is assumed to be the kind it runs on. TARGET_CPU=x86-64 builds
# for any x86-64 CPU (a v3 binary stops with SIGILL on one without AVX2), TARGET_CPU=native for
# this very CPU (valgrind, and so compare.sh's INSTRUCTIONS=1, cannot run AVX-512 code).
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
cpu=$(bash scripts/build.sh --cpu-flag)
bolt_step=${BOLT:-0}
bolt=$(command -v "llvm-bolt-$llvm_major" || true)
merge_fdata=$(command -v "merge-fdata-$llvm_major" || true)
if [ "$bolt_step" != 0 ] && { [ ! -x "$bolt" ] || [ ! -x "$merge_fdata" ]; }; then
  echo "pgo: llvm-bolt-$llvm_major not found: bash scripts/setup.sh pgo (or leave BOLT unset)" >&2
  exit 1
fi

# Trains the binary $1 with benches/compare.sh's rows; $2 names the run's output dir.
train() {
  SKIP_BUILD=1 UPSBRIDGE_BIN=$1 RUNS=1 DURATION=${PGO_SECS:-5} \
    LAT_DURATION=1 FLOORS=0 OUT=$PWD/target/$2 bash benches/compare.sh >&2
}

data=$PWD/target/pgo-data
rm -rf "$data"
mkdir -p "$data"
echo "pgo: building the instrumented binary (target/pgo-gen)" >&2
RUSTFLAGS="${RUSTFLAGS:-} $cpu -Cprofile-generate=$data" \
  cargo build --release --bin upsbridge --target-dir target/pgo-gen

# Build scripts and proc macros ran instrumented during the build: only the proxy's profile.
rm -f "$data"/*.profraw
echo "pgo: training it with benches/compare.sh's rows" >&2
train "$PWD/target/pgo-gen/release/upsbridge" pgo-train
ls "$data"/*.profraw >/dev/null 2>&1 || {
  echo "pgo: the instrumented proxy wrote no profile (did it exit cleanly?)" >&2
  exit 1
}
# Not sparse: a function the training never ran is in the profile with a count of zero, so it
# is built small and out of the way (with `--sparse` it is built as without a profile, and the
# binary's code grew by a quarter).
"$profdata" merge -o "$PWD/target/pgo.profdata" "$data"
if [ "${SAVE_PROFILE:-0}" = 1 ]; then
  gzip -9 -n -c "$PWD/target/pgo.profdata" >pgo/upsbridge.profdata.gz
  {
    echo "# What recorded pgo/upsbridge.profdata.gz (written by scripts/pgo.sh with SAVE_PROFILE=1)."
    echo "code: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' plus uncommitted changes')"
    echo "rustc: $(rustc -V)"
    echo "target cpu: ${cpu#-Ctarget-cpu=}"
    echo "training: benches/compare.sh's rows, ${PGO_SECS:-5} s each"
  } >pgo/RECORDED
  echo "pgo: recorded pgo/upsbridge.profdata.gz (commit it with the code it was recorded on)" >&2
fi

# Every crate is built against the profile (pingora's and tokio's hot paths are most of a
# request), by scripts/build.sh as from the committed profile.
# For BOLT, the relocations are kept: they let it move functions, not only blocks in each.
relocs=""
if [ "$bolt_step" != 0 ]; then
  relocs="-Clink-arg=-Wl,--emit-relocs"
  # BOLT rewrites the binary cargo built in place, through its hard link into deps/, and cargo
  # would take that for up to date: without the bin crate's outputs, cargo links it again.
  rm -f target/pgo/release/upsbridge target/pgo/release/deps/upsbridge-*
fi
PROFILE=$PWD/target/pgo.profdata RUSTFLAGS="${RUSTFLAGS:-} $relocs" bash scripts/build.sh >/dev/null
bin=target/pgo/release/upsbridge
if [ "$bolt_step" = 0 ]; then
  echo "pgo: $bin" >&2
  exit 0
fi
cp "$bin" "$bin.pgo"

# BOLT's instrumented copy writes one profile per process, when it exits (as in 2).
bolt_data=$PWD/target/bolt-data
rm -rf "$bolt_data"
mkdir -p "$bolt_data"
echo "pgo: laying the code out with BOLT (log: target/bolt.log)" >&2
"$bolt" "$bin.pgo" -instrument -instrumentation-file="$bolt_data/upsbridge" \
  -instrumentation-file-append-pid -o target/pgo/upsbridge.bolt-gen >target/bolt.log 2>&1
train "$PWD/target/pgo/upsbridge.bolt-gen" bolt-train
ls "$bolt_data"/*.fdata >/dev/null 2>&1 || {
  echo "pgo: the instrumented proxy wrote no BOLT profile (did it exit cleanly?)" >&2
  exit 1
}
"$merge_fdata" "$bolt_data"/*.fdata >"$bolt_data/merged.fdata" 2>>target/bolt.log
# The layout BOLT's own documentation recommends; the line tables are rewritten so that
# backtraces keep their file:line.
"$bolt" "$bin.pgo" -o "$bin" -data="$bolt_data/merged.fdata" -reorder-blocks=ext-tsp \
  -reorder-functions=cdsort -split-functions -split-all-cold -split-eh -icf=1 \
  -use-gnu-stack -update-debug-sections -dyno-stats >>target/bolt.log 2>&1
echo "pgo: $bin (profile-guided, laid out by BOLT; $bin.pgo before BOLT)" >&2
