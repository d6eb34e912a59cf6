#!/usr/bin/env python3
"""Where each core's time went in the team's harness rounds, per target and scenario.

The harness pins the proxy to core 0 and wrk with the upstream to core 1, and each round's
`<time>.tsv` records both cores' busy shares (`core_busy`, "core0/core1"). When core 1 is
nearly saturated, requests/s is its busy share over its CPU per request, so the two say
whether a proxy is ahead because it keeps core 1 busier or because it costs core 1 less per
request (docs/performance.md, forty-fifth session). For every target and scenario this
prints the medians over all rounds given: requests/s, the proxy's CPU per request, both
cores' busy shares, core 1's CPU per request (its busy share over the requests served), and
the range of requests/s.

    python3 benches/harness_cores.py /tmp/h45a/r* /tmp/h45b/r*
"""

import glob
import statistics
import sys


def main(dirs):
    rows = {}
    for results_dir in dirs:
        for path in sorted(glob.glob(f"{results_dir}/*.tsv")):
            with open(path) as tsv:
                header = tsv.readline().rstrip("\n").split("\t")
                for line in tsv:
                    row = dict(zip(header, line.rstrip("\n").split("\t")))
                    rps = float(row["rps"])
                    core0, core1 = (int(share) for share in row["core_busy"].split("/"))
                    key = (row["target"], f"{row['scenario']} c{row['conns']}")
                    rows.setdefault(key, []).append(
                        (rps, float(row["cpu_us_per_req"]), core0, core1, core1 / 100 * 1e6 / rps)
                    )
    if not rows:
        sys.exit("no harness rounds (<time>.tsv) in " + " ".join(dirs))
    print(f"{'target':<12} {'scenario':<9} {'rounds':>6} {'req/s':>8} {'cpu µs':>7}"
          f" {'core0':>6} {'core1':>6} {'core1 µs':>9}  req/s range")
    for (target, scenario), values in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = [statistics.median(v[i] for v in values) for i in range(5)]
        low, high = min(v[0] for v in values), max(v[0] for v in values)
        print(f"{target:<12} {scenario:<9} {len(values):>6} {med[0]:>8.0f} {med[1]:>7.1f}"
              f" {med[2]:>5.0f}% {med[3]:>5.0f}% {med[4]:>9.1f}  {low:.0f}-{high:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:] or sys.exit(__doc__))
