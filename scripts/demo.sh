#!/usr/bin/env bash
# One command from a fresh clone: install what is missing, build, run the demo
# (a UPS simulator + the proxy with a demo account; prints a curl line to paste).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --quiet -- demo
