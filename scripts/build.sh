#!/usr/bin/env bash
# The release build to run: upsbridge guided by the profile committed in pgo/, without the
# training run. Prints the binary's path last.
#
#   bash scripts/build.sh           # target/pgo/release/upsbridge
#   bash scripts/build.sh --check   # only: can this rustc use the committed profile?
#   bash scripts/build.sh --cpu-flag   # only: the -Ctarget-cpu it builds for (scripts/pgo.sh's too)
#
# pgo/upsbridge.profdata.gz is what scripts/pgo.sh recorded while benches/compare.sh drove rate
# requests in every dialect through an instrumented proxy (`SAVE_PROFILE=1 bash
# scripts/pgo.sh` records it again). Built with it, a request runs 16-24 % fewer instructions
# than in `cargo build --release`, and a body-dialect request takes about an eighth less CPU
# (docs/performance.md, thirty-first session); the build takes as long as that one, with no
# nginx, wrk or llvm-profdata.
#
# A profile is LLVM's. A rustc whose LLVM is older than the one that wrote it cannot read it:
# the build is then the plain one (target/release/upsbridge), and this says so. Functions
# changed since the profile was recorded are built as if there were no profile: correct,
# only not laid out for speed, so the profile is recorded again after changes to the paths a
# request takes.
#
# Environment: PROFILE (pgo/upsbridge.profdata.gz; gzipped or not; one named here that cannot
# be used stops the build instead of falling back), TARGET_CPU (x86-64-v3 where this CPU has
# AVX2, as scripts/pgo.sh: the machine that builds it is taken to be the kind that runs it;
# TARGET_CPU=x86-64 for any x86-64 CPU, since a v3 binary stops with SIGILL without AVX2).
set -euo pipefail
cd "$(dirname "$0")/.."

# -Ctarget-cpu for this machine: x86-64-v3 where it has AVX2, unless TARGET_CPU says.
cpu_flag() {
  [ "$(uname -m)" = x86_64 ] || return 0
  local target_cpu=${TARGET_CPU:-x86-64-v3}
  if [ -z "${TARGET_CPU:-}" ] && ! grep -qw avx2 /proc/cpuinfo; then
    echo "build: this CPU has no AVX2: building for any x86-64 CPU" >&2
    target_cpu=x86-64
  fi
  echo "-Ctarget-cpu=$target_cpu"
}
case "${1:-}" in
  "" | --check | --cpu-flag) ;;
  *)
    sed -n '5,7s/^#   //p' "$0" >&2
    exit 2
    ;;
esac
if [ "${1:-}" = --cpu-flag ]; then
  cpu_flag
  exit 0
fi
check_only=0
[ "${1:-}" = --check ] && check_only=1
profile=${PROFILE:-$PWD/pgo/upsbridge.profdata.gz}
command -v cargo >/dev/null 2>&1 || { echo "build: cargo not found; install a Rust toolchain (rustup) first" >&2; exit 1; }
[ $check_only = 1 ] || command -v cmake >/dev/null 2>&1 || {
  echo "build: cmake not found (pingora's zlib-ng needs it): bash scripts/setup.sh, or apt-get install cmake" >&2
  exit 1
}

# The profile as rustc reads it, under target/pgo-profiles/ by the hash of its content: a new
# profile is a new path in RUSTFLAGS, which rebuilds every crate, and the same one (gzipped or
# not) rebuilds nothing.
why_not=""
use=""
if [ ! -s "$profile" ]; then
  why_not="$profile is missing"
else
  mkdir -p target/pgo-profiles
  incoming=target/pgo-profiles/incoming.$$
  case $profile in
    *.gz) gzip -dc "$profile" >"$incoming" 2>/dev/null || why_not="$profile is not a whole gzip file" ;;
    *) cp "$profile" "$incoming" ;;
  esac
  if [ -z "$why_not" ]; then
    use=$PWD/target/pgo-profiles/$(sha256sum "$incoming" | cut -c1-16).profdata
    # Left as it is when there: rustc lists the profile among each crate's inputs, so a new
    # copy's time would rebuild them all.
    [ -s "$use" ] || mv "$incoming" "$use"
  fi
  rm -f "$incoming"
fi

# rustc takes a profile it cannot read with a warning and builds without it: try it on an
# empty program first, so that a build without the profile is a decision, said out loud.
if [ -z "$why_not" ]; then
  probe=$(mktemp -d)
  trap 'rm -rf "$probe"' EXIT
  echo 'fn main() {}' >"$probe/probe.rs"
  if ! rustc -O -Cprofile-use="$use" -o "$probe/probe" "$probe/probe.rs" >"$probe/out" 2>&1 ||
    grep -q . "$probe/out"; then
    llvm=$(rustc -vV | sed -n 's/^LLVM version: //p')
    why_not="$(rustc -V | cut -d' ' -f1-2) (LLVM $llvm) cannot read $profile: $(grep -m1 . "$probe/out")"
    rm -f "$use"
  fi
fi

# A profile asked for by name (scripts/pgo.sh's) is used or nothing is built; only the
# committed one falls back to the plain build.
if [ -n "$why_not" ] && { [ $check_only = 1 ] || [ -n "${PROFILE:-}" ]; }; then
  echo "build: the profile cannot be used: $why_not" >&2
  exit 1
fi
if [ $check_only = 1 ]; then
  echo "build: $(rustc -V) reads $profile" >&2
  exit 0
fi
if [ -n "$why_not" ]; then
  echo "build: building without a profile ($why_not); for a profile-guided binary: bash scripts/setup.sh pgo && bash scripts/pgo.sh" >&2
  cargo build --release --locked --bin upsbridge
  echo target/release/upsbridge
  exit 0
fi

# Functions changed since the profile was recorded are built without it: say how much changed.
recorded=$(sed -n 's/^code: \([0-9a-f]*\).*/\1/p' pgo/RECORDED 2>/dev/null || true)
if [ -z "${PROFILE:-}" ] && [ -n "$recorded" ] &&
  git rev-parse -q --verify "$recorded^{commit}" >/dev/null 2>&1; then
  changed=$(git diff --name-only "$recorded" -- src Cargo.lock | wc -l)
  files=files
  [ "$changed" = 1 ] && files=file
  [ "$changed" = 0 ] || echo "build: $changed $files of src/ and Cargo.lock changed since the profile was recorded on $recorded; what changed is built as without a profile (SAVE_PROFILE=1 bash scripts/pgo.sh records it again)" >&2
fi
cpu=$(cpu_flag)
echo "build: guided by ${profile#"$PWD"/} (${use#"$PWD"/}), ${cpu:-for this CPU} (target/pgo)" >&2
RUSTFLAGS="${RUSTFLAGS:-} $cpu -Cprofile-use=$use" \
  cargo build --release --locked --bin upsbridge --target-dir target/pgo
echo target/pgo/release/upsbridge
