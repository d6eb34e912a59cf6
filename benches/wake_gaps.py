#!/usr/bin/env python3
"""How long a proxy thread sleeps, and how long its wake-up takes, from a scheduler trace.

Record during a load pass (perf pinned off the proxy's core), then read:

    taskset -c 1 perf record -a -e sched:sched_waking,sched:sched_wakeup,sched:sched_switch \
        -o wake.data -- sleep 1
    perf script -i wake.data -F cpu,time,event,trace > wake.txt
    python3 benches/wake_gaps.py wake.txt [THREAD_ID]

The thread is the one that went to sleep most often on CPU 0 unless THREAD_ID names it.
For each of its sleeps that ends in a wake-up from another task, three spans:

- the gap: switch-out to `sched_waking`, traced on the waker's CPU when it decides to wake
  the thread. This is how far away the event was that the thread slept for.
- the delivery: `sched_waking` to `sched_wakeup`. A remote wake-up is queued on the sleeper's
  CPU and finished there after an interrupt, so on a VM whose halted vCPU must be kicked this
  is the kick.
- the start: `sched_wakeup` to the switch-in.

`perf sched timehist`'s "wait time" is the gap plus the delivery (docs/performance.md,
forty-fifth session). The last lines price a spin of S µs before sleeping: it would cost
min(gap, S) of CPU per sleep and avoid the sleeps whose gap is at most S.
"""
import re
import sys

EVENT = re.compile(r"\[(\d+)\]\s+([\d.]+): sched:(\w+): (.*)")
SWITCH_OUT = re.compile(r"prev_comm=(.+?) prev_pid=(\d+) .*prev_state=(\S+)")


def sleeps_on_cpu0(lines):
    """Voluntary sleeps on CPU 0 by thread id: tid -> (name, count)."""
    sleeps = {}
    for line in lines:
        if line.startswith("[000]") and "sched_switch" in line:
            m = SWITCH_OUT.search(line)
            if m and m.group(3).startswith("S") and m.group(1) != "perf":
                name, count = sleeps.get(m.group(2), (m.group(1), 0))
                sleeps[m.group(2)] = (name, count + 1)
    return sleeps


def spans(lines, tid):
    """(gap, delivery, start) in µs for each sleep of `tid` ended by a wake-up."""
    out = waking = wakeup = None
    for line in lines:
        m = EVENT.match(line)
        if not m:
            continue
        t, event, rest = float(m.group(2)) * 1e6, m.group(3), m.group(4)
        if event == "sched_switch":
            if f"prev_pid={tid} " in rest and "prev_state=S" in rest:
                out, waking, wakeup = t, None, None
            elif f"next_pid={tid} " in rest and None not in (out, waking, wakeup):
                yield waking - out, wakeup - waking, t - wakeup
                out = None
        elif f" pid={tid} " in rest and out is not None:
            if event == "sched_waking" and waking is None:
                waking = t
            elif event == "sched_wakeup" and waking is not None and wakeup is None:
                wakeup = t


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def main():
    lines = open(sys.argv[1]).read().splitlines()
    sleeps = sleeps_on_cpu0(lines)
    if not sleeps:
        sys.exit(f"no thread slept on CPU 0 in {sys.argv[1]}: was it recorded with -a?")
    tid = sys.argv[2] if len(sys.argv) > 2 else max(sleeps, key=lambda t: sleeps[t][1])
    name, count = sleeps.get(tid, ("not seen on CPU 0", 0))
    measured = list(spans(lines, tid))
    if not measured:
        sys.exit(f"no sleep of thread {tid} ended by a traced wake-up")
    print(f"thread {tid} ({name}): {count} sleeps on CPU 0, {len(measured)} ended by a wake-up")
    columns = ("gap (switch-out to waking)", "delivery (waking to wakeup)",
               "start (wakeup to running)", "timehist's wait (gap + delivery)")
    series = [[s[0] for s in measured], [s[1] for s in measured], [s[2] for s in measured],
              [s[0] + s[1] for s in measured]]
    for column, values in zip(columns, series):
        print(f"  {column:34} p10 {percentile(values, .1):5.1f}  p50 {percentile(values, .5):5.1f}"
              f"  p90 {percentile(values, .9):5.1f}  mean {sum(values) / len(values):5.1f} µs")
    times = [float(m.group(2)) for m in map(EVENT.match, lines) if m]
    trace_us = (times[-1] - times[0]) * 1e6
    gaps = series[0]
    for spin in (2, 5, 10, 20, 40):
        cost = sum(min(g, spin) for g in gaps)
        avoided = sum(1 for g in gaps if g <= spin)
        print(f"  spin {spin:2} µs: {cost / trace_us * 100:4.1f} % of the CPU's time,"
              f" {avoided / len(gaps) * 100:3.0f} % of these wake-ups avoided")


if __name__ == "__main__":
    main()
