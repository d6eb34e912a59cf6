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
use tracing::field::{Field, Visit};
use tracing_subscriber::field::VisitOutput;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

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

/// The log lines' fields, written exactly as tracing-subscriber's `DefaultFields` writes them,
/// with plain strings and integers written directly instead of through `core::fmt`, and
/// other values without the colour styles: the request line's fields through `fmt` were
/// 4.4 % of a header-style request's CPU. Anything else (the message, escapes, colours,
/// log metadata) is written by `DefaultFields`' own visitor.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'w> {
    writer: Writer<'w>,
    is_empty: bool,
    result: std::fmt::Result,
}

impl PlainVisitor<'_> {
    /// `name=` after the separating space, or `false` when the default visitor must write
    /// this field (colours on, the message, a raw identifier, log metadata).
    fn plain_name(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.writer.has_ansi_escapes()
            || name == "message"
            || name.starts_with("r#")
            || name.starts_with("log.")
        {
            return false;
        }
        if !std::mem::take(&mut self.is_empty) {
            self.result = self.writer.write_char(' ');
        }
        if self.result.is_ok() {
            self.result = self.writer.write_str(name).and(self.writer.write_char('='));
        }
        true
    }

    /// The field through tracing-subscriber's own visitor, continuing this line.
    fn by_default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut default);
        self.result = default.finish();
        // The default visitor pads and writes the field unless it is log metadata.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }

    fn integer(
        &mut self,
        field: &Field,
        value: impl itoa::Integer,
        fallback: impl FnOnce(&mut DefaultVisitor<'_>),
    ) {
        if self.result.is_err() {
            return;
        }
        if self.plain_name(field) {
            if self.result.is_ok() {
                self.result = self.writer.write_str(itoa::Buffer::new().format(value));
            }
        } else {
            self.by_default(field, fallback);
        }
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        // `Debug` of a string is itself between quotes when it needs no escape.
        let plain = value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        if plain && self.plain_name(field) {
            if self.result.is_ok() {
                self.result = self
                    .writer
                    .write_char('"')
                    .and(self.writer.write_str(value))
                    .and(self.writer.write_char('"'));
            }
        } else {
            self.by_default(field, |v| v.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, value, |v| v.record_u64(field, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, value, |v| v.record_i64(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.by_default(field, |v| v.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        // `name=` and the value's `Debug`, as the default writes it without colours (its
        // styles cost a formatting pass per piece even when off).
        if self.plain_name(field) {
            if self.result.is_ok() {
                self.result = write!(self.writer, "{value:?}");
            }
        } else {
            self.by_default(field, |v| v.record_debug(field, value));
        }
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

    /// The same events through a formatter with `fields`, one line each.
    fn lines<F>(fields: F) -> String
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        use tracing_subscriber::layer::SubscriberExt;
        let out = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .without_time()
            .with_ansi(false)
            .fmt_fields(fields)
            .with_writer(move || Sink(sink.clone()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let id = "0f3c-request";
            let name = String::from("Acme \"East\" \\ warehouse\n\u{e9}t\u{e9}");
            tracing::info!(request_id = %id, dialect = "header_json", service = "rate", account = name.as_str(), status = 200u16, outcome = "ok", ms = 3u64, "request");
            tracing::info!(
                plain = "it's ~ fine",
                empty = "",
                negative = -7i64,
                yes = true,
                "a {} message",
                "formatted"
            );
            tracing::warn!(error = %std::io::Error::other("gone"), r#type = "x", dbg = ?Some(3), "message \"quoted\"");
            tracing::info!(only = 1u64);
            tracing::info!(first = "a", r#type = "b", n = 0u64);
            tracing::info!("just a message");
        });
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_fields_write_what_tracing_subscribers_default_writes() {
        let ours = lines(PlainFields);
        let theirs = lines(tracing_subscriber::fmt::format::DefaultFields::new());
        assert_eq!(ours, theirs);
        // The cases above did take both paths: escapes by the default, plain ones by ours.
        assert!(
            ours.contains(r#"account="Acme \"East\" \\ warehouse\nété""#),
            "{ours}"
        );
        assert!(ours.contains(r#"status=200 outcome="ok" ms=3"#), "{ours}");
        assert_eq!(ours.lines().count(), 6, "{ours}");
    }
}
