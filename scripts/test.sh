#!/usr/bin/env bash
# The full test suite, as CI runs it: setup, formatting, lints, API docs, unit and end-to-end
# tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Broken or private intra-doc links are errors, so the module docs keep pointing somewhere.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
cargo test --workspace --all-targets --no-fail-fast
