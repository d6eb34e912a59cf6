//! Clocks: wall-clock seconds as the store and the tokens record them, and a coarse
//! monotonic clock for what is measured in seconds (a token's freshness, an idle
//! connection's age).
//!
//! Why coarse: the precise clocks (`Instant::now`, `SystemTime::now`) cost about 25 ns each
//! on this machine's TSC, and a header-style request read them ten times: 2 % of its CPU
//! (perf, cpu-clock). The kernel's coarse clocks are its last tick (at most 4 ms old at
//! `HZ=250`), read from the vDSO in about 5 ns. A request's own timing (its latency, UPS's
//! deadline, the log's microseconds) stays on the precise clocks.
//!
//! Read through glibc, which finds the vDSO itself and falls back to the system call where
//! there is none. (rustix's own vDSO lookup faults under valgrind, which leaves the
//! vDSO's auxv entry pointing at nothing: `INSTRUCTIONS=1 benches/compare.sh` runs us there.)

use std::time::Duration;

/// One of the kernel's clocks.
fn read(clock: libc::clockid_t) -> libc::timespec {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; the clock ids used here exist on every
    // Linux since 2.6.32, and on failure `t` stays zero.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t
}

/// Seconds since the Unix epoch (0 if the clock is set before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// [`unix_now`] as of the kernel's last tick: never later than it, at most a tick earlier.
/// For what only needs the second (when an account was last used, a traffic minute).
pub fn unix_now_coarse() -> u64 {
    u64::try_from(read(libc::CLOCK_REALTIME_COARSE).tv_sec).unwrap_or(0)
}

/// A monotonic instant as of the kernel's last tick (`CLOCK_MONOTONIC_COARSE`), for
/// deadlines of seconds. Compare only with other `Tick`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(Duration);

impl Tick {
    pub fn now() -> Tick {
        let t = read(libc::CLOCK_MONOTONIC_COARSE);
        // The monotonic clock counts from boot: never negative.
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
        Tick(Duration::new(secs, nanos))
    }

    /// How long after `earlier` this is (zero if it is not after it).
    pub fn since(self, earlier: Tick) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for Tick {
    type Output = Tick;
    fn add(self, d: Duration) -> Tick {
        Tick(self.0.saturating_add(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clocks_agree_with_the_precise_ones_to_a_tick() {
        let before = std::time::Instant::now();
        let tick = Tick::now();
        std::thread::sleep(Duration::from_millis(60));
        let later = Tick::now();
        // At least the sleep less one tick (HZ=100 at worst: 10 ms), at most what passed.
        assert!(
            later.since(tick) >= Duration::from_millis(50),
            "{later:?} {tick:?}"
        );
        assert!(later.since(tick) <= before.elapsed() + Duration::from_millis(10));
        assert_eq!(tick.since(later), Duration::ZERO, "saturates");
        assert_eq!(
            (tick + Duration::from_secs(2)).since(tick),
            Duration::from_secs(2)
        );

        let precise = unix_now();
        let coarse = unix_now_coarse();
        assert!(
            coarse <= unix_now() && coarse + 1 >= precise,
            "{coarse} {precise}"
        );
    }
}
