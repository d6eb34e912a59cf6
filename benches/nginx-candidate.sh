#!/usr/bin/env bash
# nginx-1w as the candidate of the team's same-run harness (../shared/bench/run.sh): the
# harness's own nginx config, one worker, on the candidate's port. An A/A run: the candidate
# is the baseline, so its ratios show how far the harness moves when nothing differs.
#
#   CANDIDATE_NAME=nginx-copy CANDIDATE_CMD="exec bash $PWD/benches/nginx-candidate.sh" \
#     TARGETS=nginx-1w bash ../shared/bench/run.sh
#   CANDIDATE=nginx-copy python3 benches/harness_medians.py RESULTS_DIRS…
set -euo pipefail
: "${RUN_DIR:?run by ../shared/bench/run.sh}" "${CANDIDATE_PORT:?}" "${UPSTREAM_PORT:?}" "${BENCH_TOKEN:?}"
# The harness beside this repository, as its README has it (HARNESS_DIR to name another).
HARNESS=${HARNESS_DIR:-$(cd "$(dirname "$0")/../../shared/bench" && pwd)}
name=nginx-copy
mkdir -p "$RUN_DIR/$name-tmp"
# The harness's render(): every @KEY@ of the template, outside comments.
sed -e "/^[[:space:]]*#/!{s|@WORKERS@|1|g; s|@PROXY_PORT@|$CANDIDATE_PORT|g; s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g}" \
    -e "/^[[:space:]]*#/!{s|@TOKEN@|$BENCH_TOKEN|g; s|@RUN_DIR@|$RUN_DIR|g; s|@NAME@|$name|g}" \
    "$HARNESS/nginx.conf.tmpl" >"$RUN_DIR/$name.conf"
if grep -v '^[[:space:]]*#' "$RUN_DIR/$name.conf" | grep -q '@[A-Z_]*@'; then
    echo "nginx-candidate.sh: the harness's nginx.conf.tmpl has a placeholder this script does not fill" >&2
    exit 1
fi
exec nginx -c "$RUN_DIR/$name.conf"
