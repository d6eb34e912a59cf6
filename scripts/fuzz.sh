#!/usr/bin/env bash
# Coverage-guided fuzzing of the body parsers and the account map (cargo-fuzz, libFuzzer).
# Run by hand or nightly; CI keeps the short proptest run (tests/fuzz_dialects.rs).
#
#   bash scripts/fuzz.sh [TARGET|all] [SECONDS] [-- LIBFUZZER_ARGS...]
#
#   TARGET   legacy_json | soap | old_xml | account_map | all (default: all, one after another)
#   SECONDS  libFuzzer's -max_total_time per target (default: 60)
#   e.g.     bash scripts/fuzz.sh old_xml 600 -- -timeout=5 -jobs=2
#
# Each target's corpus is fuzz/corpus/<target>/ (git-ignored; it grows from run to run); the
# committed seeds in fuzz/seeds/<target>/ are copied in first. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes this script exit non-zero (after the other targets ran).
# Reproduce or minimise one with the same flags as below, e.g.
#   CARGO_TARGET_DIR=target/fuzz cargo fuzz run --sanitizer none old_xml fuzz/artifacts/old_xml/crash-…
#   CARGO_TARGET_DIR=target/fuzz cargo fuzz tmin --sanitizer none old_xml fuzz/artifacts/old_xml/crash-…
#
# Toolchain: only stable Rust is here. cargo-fuzz's coverage instrumentation
# (-Cpasses=sancov-module, -Cllvm-args=-sanitizer-coverage-*, --cfg fuzzing) is all stable
# rustc; only its default AddressSanitizer needs a nightly flag (-Zsanitizer=address). So the
# default is `--sanitizer none`, which builds and runs on stable as is, and loses little: the
# parsers are safe Rust (the crate's few `unsafe` blocks are FFI calls outside them), so what
# the fuzzer finds is panics, overflows (debug assertions are on), hangs and memory blow-ups.
# FUZZ_SANITIZER=address (or leak) works on stable too: the script then sets
# RUSTC_BOOTSTRAP=1, which makes stable rustc accept -Z flags (stable ships the ASan runtime;
# a build-time escape hatch, not a supported channel). It rebuilds everything (new RUSTFLAGS).
#
# The build lands in target/fuzz/ (CARGO_TARGET_DIR, honoured: cargo-fuzz runs `cargo run`),
# beside the main build and under the already git-ignored target/. fuzz/ is its own workspace,
# so the main package's profiles (fat LTO) do not apply and its build never includes fuzz/.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
all_targets=(legacy_json soap old_xml account_map)

target=${1:-all}
seconds=${2:-60}
shift $(($# < 2 ? $# : 2))
[[ ${1:-} == -- ]] && shift
extra=("$@")

if [[ $target == all ]]; then
    targets=("${all_targets[@]}")
elif [[ " ${all_targets[*]} " == *" $target "* ]]; then
    targets=("$target")
else
    echo "usage: $0 [$(IFS='|'; echo "${all_targets[*]}")|all] [SECONDS] [-- LIBFUZZER_ARGS...]" >&2
    exit 2
fi
[[ $seconds =~ ^[0-9]+$ ]] || { echo "SECONDS must be a whole number, not '$seconds'" >&2; exit 2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/fuzz}
sanitizer=${FUZZ_SANITIZER:-none}
if [[ $sanitizer != none ]] && ! rustc --version | grep -q -- -nightly; then
    export RUSTC_BOOTSTRAP=1
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    cp -- fuzz/seeds/"$t"/* "fuzz/corpus/$t/"
    echo "== fuzzing $t for ${seconds}s (sanitizer: $sanitizer, corpus: fuzz/corpus/$t)" >&2
    if ! cargo fuzz run --sanitizer "$sanitizer" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" "${extra[@]}"; then
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "== FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
echo "== no crash in: ${targets[*]}" >&2
