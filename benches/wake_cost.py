#!/usr/bin/env python3
"""What waking a thread on a halted vCPU costs the waker, on this machine.

A sender pinned to core 1 writes 64 bytes over loopback TCP every GAP µs, busy-waiting
in between so that its own core never halts. A receiver pinned to core 0 either sleeps in
epoll_wait (its core halts, and each write has to wake it) or polls epoll without blocking
(it never sleeps, so a write wakes nobody). The difference in the sender's send() time is
what a wake-up costs the waker's core; in a virtual machine whose vCPU exits to the host on
an interprocessor interrupt it is several microseconds.

It also times timer naps on core 0 (nanosleep of 1, 20, 50 and 200 µs, timer slack 1 ns):
what a thread that sleeps on a timer instead of on its sockets, so that nobody has to wake
it, would pay per nap, in wall time and in CPU time.

    python3 benches/wake_cost.py [ROUNDS] [GAP_US]
"""
import ctypes
import os
import select
import socket
import statistics
import signal
import sys
import time

N = 20000


def receiver(sock, polling):
    os.sched_setaffinity(0, {0})
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN)
    timeout = 0 if polling else 0.1
    while True:
        if ep.poll(timeout):
            try:
                sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass


def one_pass(polling, gap_us):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    sender = socket.create_connection(listener.getsockname())
    sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer, _ = listener.accept()
    # The receiver is a process of its own: a thread would share the sender's GIL.
    child = os.fork()
    if child == 0:
        sender.close()
        receiver(peer, polling)
        os._exit(0)
    peer.close()
    os.sched_setaffinity(0, {1})
    time.sleep(0.1)
    msg = bytes(64)
    clock = time.perf_counter_ns
    took = []
    for _ in range(N):
        until = clock() + gap_us * 1000
        while clock() < until:
            pass
        t0 = clock()
        sender.send(msg)
        took.append(clock() - t0)
    os.kill(child, signal.SIGTERM)
    os.waitpid(child, 0)
    for s in (sender, listener):
        s.close()
    took.sort()
    return took[len(took) // 2] / 1000, took[len(took) * 9 // 10] / 1000


def nap_cost(nap_us, naps=3000):
    """Wall and CPU µs per nanosleep of nap_us on core 0, in a child process."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.sched_setaffinity(0, {0})
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_timerslack = 29
        libc.prctl(pr_set_timerslack, 1, 0, 0, 0)
        cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
        for _ in range(naps):
            time.sleep(nap_us / 1e6)
        cpu, wall = time.process_time_ns() - cpu0, time.perf_counter_ns() - wall0
        os.write(write, f"{wall / naps / 1000:.1f} {cpu / naps / 1000:.1f}".encode())
        os._exit(0)
    os.close(write)
    out = os.read(read, 100).decode().split()
    os.waitpid(child, 0)
    os.close(read)
    return float(out[0]), float(out[1])


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    gap = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    if os.cpu_count() < 2:
        sys.exit("wake_cost.py needs two cores (sender on 1, receiver on 0)")
    asleep, polling = [], []
    for _ in range(rounds):
        asleep.append(one_pass(False, gap))
        polling.append(one_pass(True, gap))
    for name, runs in (("receiver asleep (core 0 halts)", asleep), ("receiver polling", polling)):
        print(f"{name:32} send() p50 " + ", ".join(f"{p50:.2f}" for p50, _ in runs)
              + " µs; p90 " + ", ".join(f"{p90:.2f}" for _, p90 in runs))
    cost = statistics.median(a for a, _ in asleep) - statistics.median(p for p, _ in polling)
    print(f"a wake-up costs the waker {cost:.2f} µs (median of p50s, asleep minus polling)")
    for nap_us in (1, 20, 50, 200):
        wall, cpu = nap_cost(nap_us)
        print(f"a {nap_us}-µs timer nap on core 0 takes {wall:.1f} µs and costs {cpu:.1f} µs of CPU")


if __name__ == "__main__":
    main()
