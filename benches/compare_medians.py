#!/usr/bin/env python3
"""Paired ratios of `benches/compare.sh` runs to nginx, per set of runs and pooled.

Each argument is a directory `compare.sh` wrote (its `OUT`, holding `results.tsv`). For every
set, and for all of them pooled, it prints each upsbridge row's requests/s and CPU per request
as ratios to nginx doing the same row in the same run: the median, the quartiles, and how many
runs met the row's throughput target (the header rows 1.0x nginx, the body dialects 0.8x,
issue 12). compare.sh prints the median and range of one set itself; pooling several sets is
what tells a row on the line from one that misses by a little.

Then the latency target's reading: each server's added p99 over direct (the latency pass's p99
minus direct's in the same run, ms): the median over the runs, the highest, and how many
readings were above 1 ms. Set `LAT_CONNS=4` on compare.sh for issue 12's "added p99 at c4".

    python3 benches/compare_medians.py target/compare/20261204-143038 target/compare/20261204-162842

SERVER=baseline reads the rows of the binary a set measured as its BASELINE_BIN instead.
"""

import os
import statistics
import sys

CANDIDATE = os.environ.get("SERVER", "upsbridge")
BASELINE = "nginx"
# What a row's throughput must reach, as a ratio to nginx's (issue 12's targets).
TARGET = {"header": 1.0, "header_get": 1.0}
BODY_TARGET = 0.8


def results(out_dir):
    """The set's measured lines, split: (run, row, server) -> the fields of results.tsv."""
    path = f"{out_dir}/results.tsv"
    try:
        f = open(path)
    except OSError as e:
        sys.exit(f"compare_medians: {path}: {e.strerror} (a directory benches/compare.sh wrote?)")
    measured = {}
    with f:
        for line in f:
            x = line.rstrip("\n").split("\t")
            if len(x) < 7 or x[3] == "NA":
                continue  # a row upsbridge did not answer with 200 in that run
            measured[(x[0], x[1], x[2])] = x
    return measured


def runs(measured):
    """The set's paired ratios: row -> [(requests/s ratio, CPU per request ratio), ...]."""
    paired = {}
    for (run, row, server), x in sorted(measured.items()):
        base = measured.get((run, row, BASELINE))
        if server != CANDIDATE or base is None:
            continue
        rps, cpu, base_rps, base_cpu = float(x[3]), float(x[6]), float(base[3]), float(base[6])
        if base_rps <= 0 or base_cpu <= 0:
            continue
        paired.setdefault(row, []).append((rps / base_rps, cpu / base_cpu))
    return paired


# The latency target: added p99 over direct under this many ms (issue 12).
LATENCY_TARGET_MS = 1.0


def added_p99(measured):
    """The set's latency readings: (row, server) -> [added p99 over direct in ms, ...]."""
    # Field 10: the latency pass's p99, ms.
    p99 = {key: float(x[9]) for key, x in measured.items() if len(x) >= 10}
    added = {}
    for (run, row, server), value in sorted(p99.items()):
        direct = p99.get((run, "direct", "direct"))
        if row == "direct" or direct is None:
            continue
        added.setdefault((row, server), []).append(value - direct)
    return added


def latency_summary(name, added):
    if not added:
        return f"{name}: no latency readings"
    lines = [f"{name}: added p99 over direct, ms (median, highest, readings over {LATENCY_TARGET_MS:g} ms)"]
    for (row, server), values in added.items():
        over = sum(v > LATENCY_TARGET_MS for v in values)
        lines.append(
            f"  {row:<12} {server:<10} {len(values):>3} readings  median {statistics.median(values):+.3f}  "
            f"highest {max(values):+.3f}  over: {over}/{len(values)}"
        )
    return "\n".join(lines)


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def summary(name, paired):
    lines = [f"{name}:"]
    if not paired:
        return f"{name}: no paired runs"
    for row, pairs in paired.items():
        rps = [p[0] for p in pairs]
        cpu = [p[1] for p in pairs]
        target = TARGET.get(row, BODY_TARGET)
        low, high = quartiles(rps)
        hits = sum(r >= target for r in rps)
        lines.append(
            f"  {row:<12} {len(pairs):>3} runs  req/s {statistics.median(rps):.3f} "
            f"(quartiles {low:.3f}-{high:.3f}), {hits}/{len(pairs)} at >= {target}x; "
            f"CPU {statistics.median(cpu):.3f}"
        )
    return "\n".join(lines)


def main(dirs):
    if not dirs:
        sys.exit(__doc__)
    pooled = {}
    pooled_latency = {}
    for d in dirs:
        measured = results(d)
        paired = runs(measured)
        print(summary(d, paired))
        for row, pairs in paired.items():
            pooled.setdefault(row, []).extend(pairs)
        for key, values in added_p99(measured).items():
            pooled_latency.setdefault(key, []).extend(values)
    if len(dirs) > 1:
        print(summary("pooled", pooled))
    print(latency_summary("all sets" if len(dirs) > 1 else dirs[0], pooled_latency))


if __name__ == "__main__":
    main(sys.argv[1:])
