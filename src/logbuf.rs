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

#[cfg(test)]
mod tests {
    use super::*;

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
}
