#!/usr/bin/env python3
"""Medians of the team's harness rounds against nginx-1w, per set of rounds and pooled.

Each argument is a RESULTS_DIR that `../shared/bench/run.sh` wrote its rounds into (one
`<time>.tsv` per round). For every set, and for all of them pooled, it prints upsbridge's
requests/s and CPU per request as ratios to nginx-1w's in the same round, the median over
the rounds of each of the three scenarios (POST and GET at 32 connections, POST at four,
unless SCENARIOS names others),
how many rounds met both halves of the header target (>= 1.0x the requests/s, <= 1.0x the
CPU), and how many met them in all three scenarios at once. For the pooled rounds it also
prints a 95 % bootstrap interval of each median: a single round moves by +-10 % on a shared
host, so a median of 1.01 over eight rounds does not by itself say the target holds.

    python3 benches/harness_medians.py /tmp/h8-a /tmp/h8-b
    CANDIDATE=nginx-copy python3 benches/harness_medians.py /tmp/aa/r*    # an A/A set
    SCENARIOS=post:4 python3 benches/harness_medians.py /tmp/c4/r*         # one scenario
"""

import glob
import os
import random
import statistics
import sys

# The harness's own variable and format: SCENARIOS=post:4 reads rounds that ran only that one.
SCENARIOS = [
    tuple(sc.split(":", 1)) for sc in os.environ.get("SCENARIOS", "post:32 get:32 post:4").split()
]
ALL = {1: "the scenario", 2: "both scenarios", 3: "all three"}.get(
    len(SCENARIOS), f"all {len(SCENARIOS)} scenarios"
)
# CANDIDATE=nginx-copy reads an A/A set (benches/nginx-candidate.sh).
CANDIDATE = os.environ.get("CANDIDATE", "upsbridge")
BASELINE = "nginx-1w"


def rounds(results_dir):
    """Each complete round of the set: (target, scenario, conns) -> (rps, cpu us per request)."""
    found = []
    for path in sorted(glob.glob(f"{results_dir}/*.tsv")):
        with open(path) as f:
            header, *lines = f.read().splitlines()
        cols = header.split("\t")
        rps, cpu = cols.index("rps"), cols.index("cpu_us_per_req")
        row = {}
        for line in lines:
            x = line.split("\t")
            row[(x[0], x[1], x[2])] = (float(x[rps]), float(x[cpu]))
        if all((t, s, c) in row for t in (CANDIDATE, BASELINE) for s, c in SCENARIOS):
            found.append(row)
    return found


def ratios(row, scenario, conns):
    (rps, cpu), (base_rps, base_cpu) = (row[(t, scenario, conns)] for t in (CANDIDATE, BASELINE))
    return rps / base_rps, cpu / base_cpu


def meets(throughput, cpu):
    """Both halves of the header target, as ratios to nginx-1w."""
    return throughput >= 1.0 and cpu <= 1.0


def met(row, scenario, conns):
    return meets(*ratios(row, scenario, conns))


def by_scenario(rows):
    """Each scenario with its rounds' (requests/s ratio, CPU ratio) pairs."""
    return [(s, c, [ratios(r, s, c) for r in rows]) for s, c in SCENARIOS]


def summary(name, rows):
    if not rows:
        return f"{name}: no complete rounds"
    parts = [f"{name}: {len(rows)} rounds"]
    for s, c, pairs in by_scenario(rows):
        throughput = statistics.median(p[0] for p in pairs)
        cpu = statistics.median(p[1] for p in pairs)
        hits = sum(meets(*p) for p in pairs)
        parts.append(f"{s.upper()} c{c} {throughput:.3f} / {cpu:.3f} ({hits}/{len(rows)})")
    all_three = sum(all(met(r, s, c) for s, c in SCENARIOS) for r in rows)
    parts.append(f"{ALL} met in {all_three}")
    return "; ".join(parts)


def interval(values, resamples=10_000, seed=12):
    """The 2.5th and 97.5th percentiles of the median over bootstrap resamples of `values`
    (fixed seed, so a set of rounds always prints the same interval)."""
    rng = random.Random(seed)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def intervals(name, rows):
    parts = [f"{name}, 95 % bootstrap interval of each median"]
    for s, c, pairs in by_scenario(rows):
        (t_lo, t_hi), (c_lo, c_hi) = (interval([p[i] for p in pairs]) for i in (0, 1))
        parts.append(f"{s.upper()} c{c} {t_lo:.3f}-{t_hi:.3f} / {c_lo:.3f}-{c_hi:.3f}")
    return "; ".join(parts)


def main(dirs):
    if not dirs:
        sys.exit(__doc__)
    pooled = []
    for d in dirs:
        rows = rounds(d)
        print(summary(d, rows))
        pooled += rows
    if len(dirs) > 1:
        print(summary("pooled", pooled))
    if pooled:
        print(intervals("pooled" if len(dirs) > 1 else dirs[0], pooled))


if __name__ == "__main__":
    main(sys.argv[1:])
