//! The log's writer: lines go into one in-memory buffer and reach stderr in batches, from
//! the logging thread when the buffer is full and from a small flusher thread every 20 ms.
//!
//! Why: one `write(2)` per request line was the largest single cost of the proxy thread
//! (benches/compare.sh with logs on and off in one run), and handing each line to a log
//! thread costs a wake-up and a context switch per line on a pinned core. A buffer behind
//! a mutex costs a `memcpy`; the mutex is held only for that (and for a flush).

use std::io::{BufWriter, Stderr, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

static BUFFER: OnceLock<Mutex<BufWriter<Stderr>>> = OnceLock::new();

fn buffer() -> &'static Mutex<BufWriter<Stderr>> {
    BUFFER.get_or_init(|| Mutex::new(BufWriter::with_capacity(64 * 1024, std::io::stderr())))
}

fn lock() -> MutexGuard<'static, BufWriter<Stderr>> {
    // A panic while holding the lock leaves whole lines behind at worst: keep logging.
    buffer().lock().unwrap_or_else(|p| p.into_inner())
}

/// Write what is buffered to stderr now.
pub fn flush() {
    let _ = lock().flush();
}

/// The `tracing` writer. Start [`start_flusher`] once, and call [`flush`] before exit.
#[derive(Clone, Copy, Default)]
pub struct BatchedStderr;

/// One log line's writer: holds the buffer for the time of a `memcpy`.
pub struct Line(MutexGuard<'static, BufWriter<Stderr>>);

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Deferred to the flusher: flushing per line is what this writer avoids.
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(lock())
    }
}

/// Flush every 20 ms, and before a panic message (so the lines leading up to it come first).
pub fn start_flusher() {
    let _ = std::thread::Builder::new()
        .name("upsbridge-log".into())
        .spawn(|| loop {
            std::thread::sleep(FLUSH_EVERY);
            flush();
        });
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // try_lock: the panicking thread may be the one holding the buffer.
        if let Ok(mut buffer) = buffer().try_lock() {
            let _ = buffer.flush();
        }
        default_hook(info);
    }));
}

/// The log lines' timestamp, exactly as tracing-subscriber's default writes it (RFC 3339 in
/// UTC with microseconds), with the date and time of day formatted once a second per thread:
/// formatting the whole of it for every line was 1.5 % of a header-style request's CPU.
pub struct SecondCachedTime;

impl tracing_subscriber::fmt::time::FormatTime for SecondCachedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        thread_local! {
            static SECOND: std::cell::RefCell<(i64, String)> =
                const { std::cell::RefCell::new((i64::MIN, String::new())) };
        }
        let now = time::OffsetDateTime::now_utc();
        SECOND.with(|second| {
            let mut second = second.borrow_mut();
            if second.0 != now.unix_timestamp() {
                let format = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]"
                );
                second.1 = now.format(&format).unwrap_or_default();
                second.0 = now.unix_timestamp();
            }
            write!(w, "{}.{:06}Z", second.1, now.microsecond())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

    #[test]
    fn a_line_is_one_buffered_write() {
        use tracing_subscriber::fmt::MakeWriter;
        let w = BatchedStderr;
        let mut line = w.make_writer();
        line.write_all(b"").unwrap();
        line.flush().unwrap();
        drop(line);
        // The lock is free again once the line's writer is dropped.
        assert!(buffer().try_lock().is_ok());
    }

    fn stamp(timer: &impl FormatTime) -> String {
        let mut s = String::new();
        timer.format_time(&mut Writer::new(&mut s)).unwrap();
        s
    }

    #[test]
    fn the_cached_timestamp_reads_as_tracing_subscribers_own() {
        for _ in 0..3 {
            let (ours, theirs) = (stamp(&super::SecondCachedTime), stamp(&SystemTime));
            assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
            // Taken microseconds apart: the same up to the second (unless a second turned).
            if ours[..19] == theirs[..19] {
                assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
                return;
            }
        }
        panic!("three seconds turned between two clock reads");
    }
}
