//! Linger before sleeping: when a proxy thread runs out of work, it keeps polling its
//! sockets without blocking for a few microseconds before it lets the thread sleep.
//!
//! Why: on a virtual machine a sleeping vCPU halts, and waking it costs the waker a VM exit
//! and the request 10-25 µs before the proxy runs again. Under load at a few connections the
//! proxy runs out of work between almost every two events, for 3 µs in the median, so most
//! of those wake-ups were for events microseconds away (docs/performance.md, forty-fifth
//! session). HAProxy's `busy-polling` and the kernel's `cpuidle-haltpoll` answer the same
//! cost the same way.
//!
//! How: one task per proxy thread yields while the thread has been out of work for less
//! than its window. tokio runs a yielded task only after polling the driver without
//! blocking, so while it lingers the thread polls epoll instead of sleeping in it. Past the
//! window the task waits for the next piece of work and the thread sleeps as before.
//!
//! The window adapts as `cpuidle-haltpoll`'s does, so lingering costs nothing where it
//! cannot pay: a thread that then slept longer than [`SHORT_SLEEP`] halves it (to nothing
//! after a few such sleeps, as with UPS's own answers, which take tens of milliseconds), and
//! one whose sleep was short doubles it back up to the configured budget.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// A sleep this short (the wake-up's own 10-25 µs included) is one a longer window would
/// have spared; the kernel's haltpoll governor uses the same bound by default.
const SHORT_SLEEP: Duration = Duration::from_micros(200);

thread_local! {
    static LINGER: Linger = const {
        Linger {
            work: Cell::new(0),
            asleep: RefCell::new(None),
            started: Cell::new(false),
        }
    };
}

struct Linger {
    /// Pieces of work this thread has done, as counted by [`worked`].
    work: Cell<u64>,
    /// The lingering task, while it waits for work.
    asleep: RefCell<Option<Waker>>,
    /// Whether this thread's runtime has its lingering task.
    started: Cell<bool>,
}

/// Count a piece of work (a request arrived or ended) on this thread, and wake the
/// lingering task if it waits for one.
pub(super) fn worked() {
    LINGER.with(|linger| {
        linger.work.set(linger.work.get().wrapping_add(1));
        if let Some(waker) = linger.asleep.borrow_mut().take() {
            waker.wake();
        }
    });
}

/// Start this thread's lingering task on its (current-thread) runtime, once; a zero
/// `budget` turns lingering off.
pub(super) fn start(budget: Duration) {
    if budget.is_zero() || LINGER.with(|linger| linger.started.replace(true)) {
        return;
    }
    tokio::spawn(linger(budget));
}

async fn linger(budget: Duration) {
    let work_done = || LINGER.with(|linger| linger.work.get());
    let mut window = Window::new(budget);
    let mut seen = work_done();
    let mut idle_since = Instant::now();
    loop {
        let now = Instant::now();
        let done = work_done();
        if done != seen {
            seen = done;
            idle_since = now;
        }
        if now.duration_since(idle_since) < window.open {
            tokio::task::yield_now().await;
            continue;
        }
        next_work().await;
        window.after_sleep(idle_since.elapsed());
        seen = work_done();
        idle_since = Instant::now();
    }
}

/// Pending until [`worked`] is called on this thread.
async fn next_work() {
    let mut waiting = false;
    poll_fn(|cx| {
        if waiting {
            return Poll::Ready(());
        }
        waiting = true;
        LINGER.with(|linger| *linger.asleep.borrow_mut() = Some(cx.waker().clone()));
        Poll::Pending
    })
    .await
}

/// How long a thread lingers now: at most the budget, nothing once sleeps run long.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    open: Duration,
    budget: Duration,
}

impl Window {
    fn new(budget: Duration) -> Window {
        Window {
            open: budget,
            budget,
        }
    }

    /// The thread was out of work for `idle` (lingering, then asleep): a short sleep
    /// widens the window, a long one narrows it.
    fn after_sleep(&mut self, idle: Duration) {
        let smallest = self.budget / 8;
        self.open = if idle <= SHORT_SLEEP {
            (self.open * 2).clamp(smallest, self.budget)
        } else if self.open / 2 < smallest {
            Duration::ZERO
        } else {
            self.open / 2
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_micros(10);

    #[test]
    fn long_sleeps_close_the_window_in_four_and_short_ones_reopen_it() {
        let mut window = Window::new(BUDGET);
        let mut opens = Vec::new();
        for _ in 0..5 {
            window.after_sleep(Duration::from_millis(80)); // a UPS answer's wait
            opens.push(window.open.as_nanos());
        }
        assert_eq!(opens, [5_000, 2_500, 1_250, 0, 0]);
        opens.clear();
        for _ in 0..5 {
            window.after_sleep(Duration::from_micros(40)); // a loopback round trip's
            opens.push(window.open.as_nanos());
        }
        assert_eq!(opens, [1_250, 2_500, 5_000, 10_000, 10_000]);
    }

    /// The CPU time this thread has used.
    fn thread_cpu() -> Duration {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a pointer to a timespec we own.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) },
            0
        );
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }

    /// Real time on a real current-thread runtime, as pingora runs each proxy thread: the
    /// thread stays on the CPU while the window is open and sleeps once it has closed.
    #[test]
    fn a_thread_lingers_on_the_cpu_for_its_window_then_sleeps() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Long enough to tell lingering from sleeping on a busy machine.
        let budget = Duration::from_millis(40);
        rt.block_on(async {
            start(budget);
            tokio::task::yield_now().await; // the task's first poll: its clock starts
            worked();
            let before = thread_cpu();
            tokio::time::sleep(Duration::from_millis(20)).await;
            let lingering = thread_cpu() - before;
            assert!(
                lingering >= Duration::from_millis(10),
                "the thread used {lingering:?} of the CPU in 20 ms of an open window"
            );

            tokio::time::sleep(Duration::from_millis(40)).await; // the window closes
            let before = thread_cpu();
            tokio::time::sleep(Duration::from_millis(40)).await;
            let asleep = thread_cpu() - before;
            assert!(
                asleep < Duration::from_millis(5),
                "the thread used {asleep:?} of the CPU in 40 ms past its window"
            );
        });
    }
}
