//! The log's writer: lines go into one in-memory buffer and reach stderr in batches, written
//! by a small flusher thread 20 ms after the first line of a batch. With nothing to write it
//! sleeps until a line arrives: an idle proxy wakes no thread for its log (it woke 50 times a
//! second when the flusher ran on a fixed beat).
//!
//! Why: one `write(2)` per request line was the largest single cost of the proxy thread
//! (benches/compare.sh with logs on and off in one run), and handing each line to a log
//! thread costs a wake-up and a context switch per line on a pinned core. A buffer behind
//! a mutex costs a `memcpy`; the mutex is held only for that, never for a write: the flusher
//! swaps the buffer out and writes it unlocked, so a slow disk (or a stalled reader of a
//! piped stderr) stalls the flusher, not a proxy thread. (The lock used to be held across the
//! write, and a proxy thread that logged meanwhile waited for it.)
//! Only when the flusher is far behind (a buffer past `HIGH_WATER`) does a logging thread
//! write itself: then the log slows the proxy rather than losing lines or growing unbounded.
//! When stderr is a file, the flusher also has the kernel start writing it to disk (see
//! `WriteBack`).

use std::io::{Stderr, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::VisitOutput;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::time::FormatTime;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A buffer this large is written by the thread that logs (the flusher is stuck).
const HIGH_WATER: usize = 4 << 20;
/// The most a batch's buffer keeps once written (20 ms of lines at 40k requests a second is
/// about 150 KB).
const KEPT_CAPACITY: usize = 1 << 20;

/// The lines not yet written.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Held while lines are written to stderr, so batches reach it in order. Taken before
/// [`PENDING`], never after.
static STDERR: Mutex<Option<Stderr>> = Mutex::new(None);

/// The flusher thread, unparked by the first line into an empty buffer.
static FLUSHER: OnceLock<Thread> = OnceLock::new();

/// A lock that a panic elsewhere does not poison: whole lines are left behind at worst.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Write what is buffered to stderr now.
pub fn flush() {
    write_pending();
}

/// Writes what is buffered; false when there was nothing.
fn write_pending() -> bool {
    thread_local! {
        /// The batch being written; its capacity is reused.
        static SPARE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        let mut out = locked(&STDERR);
        // Swapped out under the lock for the time of a pointer swap; written unlocked.
        std::mem::swap(&mut *locked(&PENDING), &mut *spare);
        let wrote = !spare.is_empty();
        if wrote {
            let _ = out.get_or_insert_with(std::io::stderr).write_all(&spare);
            spare.clear();
        }
        // A batch the flusher fell behind on is not kept around by the thread that wrote it.
        if spare.capacity() > KEPT_CAPACITY {
            *spare = Vec::new();
        }
        wrote
    })
}

/// The `tracing` writer. Start [`start_flusher`] once, and call [`flush`] before exit.
#[derive(Clone, Copy, Default)]
pub struct BatchedStderr;

/// One log line's writer: holds the buffer for the time of a `memcpy`.
pub struct Line {
    pending: Option<MutexGuard<'static, Vec<u8>>>,
    /// The buffer held no line before this one: the flusher may be asleep.
    first: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Some(pending) = self.pending.as_mut() {
            pending.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Deferred to the flusher: flushing per line is what this writer avoids.
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let len = self.pending.as_ref().map_or(0, |p| p.len());
        // Released first: `flush` takes the locks in their order.
        self.pending = None;
        if len >= HIGH_WATER {
            flush();
        } else if self.first && len > 0 {
            // A system call only if the flusher is parked, i.e. the first line after a quiet
            // spell; under load it is awake and this is an atomic swap.
            if let Some(flusher) = FLUSHER.get() {
                flusher.unpark();
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        let pending = locked(&PENDING);
        Line {
            first: pending.is_empty(),
            pending: Some(pending),
        }
    }
}

/// The binary's log is this module's writer and format with colours off, so a [`DirectLine`]
/// may go straight into the batch. Off unless set ([`write_lines_directly`]): a test's own
/// subscriber, or colours on a terminal, get every line through `tracing`.
static DIRECT: AtomicBool = AtomicBool::new(false);

/// Lets [`DirectLine`]s into the batch. Call once the global subscriber writes through
/// [`BatchedStderr`] with [`LineFormat`], [`PlainFields`] and [`SecondCachedTime`], colours
/// off: the lines it would write are then the lines a `DirectLine` writes.
pub fn write_lines_directly() {
    DIRECT.store(true, Ordering::Relaxed);
}

/// One log line composed straight into the batch, byte for byte as the binary's `tracing`
/// layer writes the same event. For the line per request: through `tracing`'s dispatch, the
/// formatter's own buffer and the field visitor, it was a tenth of a header-style request's
/// instructions (docs/performance.md). The caller asks `tracing::enabled!` first, with the
/// event's level and field names, so `RUST_LOG` governs the line as it does any other.
///
/// Fields are written in the order of the calls, after the message, as the event macros
/// write them. The buffer is held from [`DirectLine::start`] until the line is dropped.
pub struct DirectLine {
    line: Line,
}

impl DirectLine {
    /// The line's time, level, target and message (a literal: written without escapes), or
    /// `None` when lines do not go straight into the batch: the binary's set-up did not let
    /// them ([`write_lines_directly`]), or the thread is in a span, whose context only
    /// `tracing` writes.
    pub fn start(level: tracing::Level, target: &str, message: &str) -> Option<DirectLine> {
        if !DIRECT.load(Ordering::Relaxed) || !tracing::Span::current().is_none() {
            return None;
        }
        let line = tracing_subscriber::fmt::MakeWriter::make_writer(&BatchedStderr);
        Some(DirectLine::begin(line, level, target, message))
    }

    /// The line's head, into `line`'s buffer.
    fn begin(line: Line, level: tracing::Level, target: &str, message: &str) -> DirectLine {
        let mut line = DirectLine { line };
        let out = line.out();
        with_now(|second, tail| {
            out.extend_from_slice(second.as_bytes());
            out.extend_from_slice(tail);
        });
        out.extend_from_slice(level_text(level).as_bytes());
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(message.as_bytes());
        line
    }

    #[inline]
    fn out(&mut self) -> &mut Vec<u8> {
        self.line
            .pending
            .as_mut()
            .expect("a line holds the buffer until dropped")
    }

    /// ` name=`, the separator and the field's name.
    #[inline]
    fn name(&mut self, name: &str) -> &mut Vec<u8> {
        let out = self.out();
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out
    }

    /// A field written by its `Display` (`%value` in the event macros), here a `str`.
    #[inline]
    pub fn display(&mut self, name: &str, value: &str) {
        self.name(name).extend_from_slice(value.as_bytes());
    }

    /// A string field, between quotes and escaped as its `Debug` escapes it.
    #[inline]
    pub fn str(&mut self, name: &str, value: &str) {
        let out = self.name(name);
        if quotes_as_is(value) {
            out.push(b'"');
            out.extend_from_slice(value.as_bytes());
            out.push(b'"');
        } else {
            // `Vec<u8>` is an `io::Write`: writing to it cannot fail.
            let _ = write!(out, "{value:?}");
        }
    }

    /// An integer field.
    #[inline]
    pub fn u64(&mut self, name: &str, value: u64) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(value);
        self.name(name).extend_from_slice(digits.as_bytes());
    }
}

impl Drop for DirectLine {
    fn drop(&mut self) {
        self.out().push(b'\n');
        // Then the `Line` releases the buffer, and wakes the flusher if the line is the
        // batch's first.
    }
}

/// Flush 20 ms after a batch's first line (and pace the file's write-back), and before a
/// panic message (so the lines leading up to it come first).
pub fn start_flusher() {
    let write_back = WriteBack::of_stderr();
    let _ = std::thread::Builder::new()
        .name("upsbridge-log".into())
        .spawn(move || {
            // Set before the first look at the buffer: a line that finds it empty from then
            // on unparks this thread.
            let _ = FLUSHER.set(std::thread::current());
            loop {
                // Asleep until a line arrives in the empty buffer (at once if one did
                // meanwhile: unpark leaves a token). Under load one always did.
                if locked(&PENDING).is_empty() {
                    std::thread::park();
                }
                // The batch's first line waits this long, so that a batch holds many.
                std::thread::sleep(FLUSH_EVERY);
                if write_pending() {
                    if let Some(write_back) = &write_back {
                        write_back.start();
                    }
                }
            }
        });
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // try_lock: the panicking thread may be the one holding a lock.
        if let (Ok(mut out), Ok(mut pending)) = (STDERR.try_lock(), PENDING.try_lock()) {
            let _ = out.get_or_insert_with(std::io::stderr).write_all(&pending);
            pending.clear();
        }
        default_hook(info);
    }));
}

/// Starts the kernel writing the log file's new pages to disk as they are written, when
/// stderr is a regular file.
///
/// Why: left alone, the kernel writes a file's dirty pages back only once they are 30 s old
/// (`vm.dirty_expire_centisecs`), and at one line per request that is megabytes a second
/// written back in bursts on the proxy's core: POST c4's p99 in the team's harness was
/// 1.3–1.7 ms with the log in a file and 0.3–0.4 ms with it in /dev/null. Asking for
/// write-back after every flush (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not
/// wait for the disk) spreads that work evenly instead.
struct WriteBack {
    file: std::fs::File,
}

impl WriteBack {
    fn of_stderr() -> Option<WriteBack> {
        WriteBack::of(std::io::stderr().as_fd())
    }

    /// `None` unless `fd` is a regular file: a pipe, a socket (journald) or a terminal has
    /// no pages to write back.
    fn of(fd: BorrowedFd<'_>) -> Option<WriteBack> {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        file.metadata()
            .ok()?
            .is_file()
            .then_some(WriteBack { file })
    }

    fn start(&self) {
        // Offset 0 and length 0 cover the whole file; pages already clean or under write-back
        // are skipped. An error (a file system without it) leaves the kernel's own pace.
        // SAFETY: a syscall on a descriptor this value owns; it touches no memory of ours.
        unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
}

/// The log lines' timestamp, exactly as tracing-subscriber's default writes it (RFC 3339 in
/// UTC with microseconds), with the date and time of day formatted once a second per thread:
/// formatting the whole of it for every line was 1.5 % of a header-style request's CPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct SecondCachedTime;

impl tracing_subscriber::fmt::time::FormatTime for SecondCachedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        with_now(|second, tail| {
            w.write_str(second)?;
            w.write_str(std::str::from_utf8(tail).expect("ASCII digits"))
        })
    }
}

/// The time now, as [`SecondCachedTime`] writes it, in two parts: the date and time of day
/// (formatted once a second per thread) and the tail, `.`, six digits of microseconds and `Z`.
fn with_now<R>(write: impl FnOnce(&str, &[u8; 8]) -> R) -> R {
    thread_local! {
        static SECOND: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = time::OffsetDateTime::now_utc();
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != now.unix_timestamp() {
            let format =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            second.1 = now.format(&format).unwrap_or_default();
            second.0 = now.unix_timestamp();
        }
        // Without the formatting machinery.
        let mut tail = *b".000000Z";
        let mut micros = now.microsecond();
        for digit in tail[1..7].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        write(&second.1, &tail)
    })
}

/// A level as `Full` writes it between the time and the target, padded to five letters.
fn level_text(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::TRACE => " TRACE ",
        tracing::Level::DEBUG => " DEBUG ",
        tracing::Level::INFO => "  INFO ",
        tracing::Level::WARN => "  WARN ",
        tracing::Level::ERROR => " ERROR ",
    }
}

/// A string field's value needs no escape: its `Debug` is itself between quotes.
fn quotes_as_is(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// The log lines, exactly as tracing-subscriber's default (`Full`) format writes them, with
/// the level and target written directly: `Full` formats them through `core::fmt` and its
/// colour styles even when colours are off, a fifth of the request line's cost. Lines that
/// `Full` writes differently (colours on, inside a span, a `log` record) are its own.
pub struct LineFormat<T> {
    timer: T,
    full: tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Full, T>,
}

impl<T: FormatTime + Clone> LineFormat<T> {
    pub fn new(timer: T) -> LineFormat<T> {
        LineFormat {
            full: tracing_subscriber::fmt::format().with_timer(timer.clone()),
            timer,
        }
    }
}

impl<S, N, T> tracing_subscriber::fmt::FormatEvent<S, N> for LineFormat<T>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let in_span = ctx
            .event_scope()
            .is_some_and(|mut scope| scope.next().is_some());
        if writer.has_ansi_escapes() || in_span || meta.fields().field("log.target").is_some() {
            return self.full.format_event(ctx, writer, event);
        }
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_str(level_text(*meta.level()))?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        tracing_subscriber::fmt::FormatFields::format_fields(ctx, writer.by_ref(), event)?;
        writer.write_char('\n')
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
            plain: !writer.has_ansi_escapes(),
            writer,
            pending: Pending::default(),
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.flush();
        visitor.result
    }
}

/// What the plain fields wrote so far, on the stack: one write to the line's writer for all
/// of them instead of a dynamic call per piece. (What does not fit goes to the heap.)
#[derive(Default)]
struct Pending(smallvec::SmallVec<[u8; 256]>);

impl Pending {
    /// One byte (a separator or a quote) without a `memcpy` call.
    fn push_byte(&mut self, byte: u8) {
        self.0.push(byte);
    }

    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

impl std::fmt::Write for Pending {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

struct PlainVisitor<'w> {
    writer: Writer<'w>,
    /// Colours are off: plain fields are written here, not by the default visitor.
    plain: bool,
    pending: Pending,
    is_empty: bool,
    result: std::fmt::Result,
}

impl PlainVisitor<'_> {
    /// `name=` after the separating space, or `false` when the default visitor must write
    /// this field (colours on, the message, a raw identifier, log metadata).
    fn plain_name(&mut self, field: &Field) -> bool {
        let name = field.name();
        if !self.plain || name == "message" || name.starts_with("r#") || name.starts_with("log.") {
            return false;
        }
        if !std::mem::take(&mut self.is_empty) {
            self.pending.push_byte(b' ');
        }
        self.pending.push(name.as_bytes());
        self.pending.push_byte(b'=');
        true
    }

    /// Hand what is pending to the line's writer.
    fn flush(&mut self) {
        if self.pending.bytes().is_empty() || self.result.is_err() {
            return;
        }
        // Only whole `str`s are ever pushed.
        self.result = match std::str::from_utf8(self.pending.bytes()) {
            Ok(text) => self.writer.write_str(text),
            Err(_) => Err(std::fmt::Error),
        };
        self.pending.clear();
    }

    /// The field through tracing-subscriber's own visitor, continuing this line.
    fn by_default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        self.flush();
        if self.result.is_err() {
            return;
        }
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
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(value);
            self.pending.push(digits.as_bytes());
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
        if quotes_as_is(value) && self.plain_name(field) {
            self.pending.push_byte(b'"');
            self.pending.push(value.as_bytes());
            self.pending.push_byte(b'"');
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
        use std::fmt::Write as _;
        if self.plain && field.name() == "message" {
            // The message: its `Debug` alone, as the default visitor writes it.
            if !std::mem::take(&mut self.is_empty) {
                self.pending.push_byte(b' ');
            }
            self.result = write!(self.pending, "{value:?}");
        } else if self.plain_name(field) {
            self.result = write!(self.pending, "{value:?}");
        } else {
            self.by_default(field, |v| v.record_debug(field, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::SystemTime;

    #[test]
    fn write_back_is_paced_for_a_log_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("upsbridge.log")).unwrap();
        let paced = WriteBack::of(file.as_fd()).expect("a regular file");
        (&file).write_all(b"a line\n").unwrap();
        paced.start();
        assert_eq!(
            std::fs::read(dir.path().join("upsbridge.log")).unwrap(),
            b"a line\n"
        );

        let (reader, writer) = std::io::pipe().unwrap();
        assert!(
            WriteBack::of(writer.as_fd()).is_none(),
            "a pipe has no pages"
        );
        assert!(WriteBack::of(reader.as_fd()).is_none());
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(
            WriteBack::of(null.as_fd()).is_none(),
            "a device has no pages"
        );
    }

    #[test]
    fn a_line_is_one_buffered_write_and_never_waits_for_a_write() {
        use tracing_subscriber::fmt::MakeWriter;
        let w = BatchedStderr;
        let mut line = w.make_writer();
        line.write_all(b"").unwrap();
        line.flush().unwrap();
        drop(line);
        // The lock is free again once the line's writer is dropped.
        assert!(PENDING.try_lock().is_ok());
        // A batch being written (the flusher holds stderr, the disk is slow) holds up no line.
        let writing = locked(&STDERR);
        let (done, logged) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = BatchedStderr.make_writer();
            line.write_all(b"").unwrap();
            drop(line);
            done.send(()).unwrap();
        });
        assert!(
            logged.recv_timeout(Duration::from_secs(10)).is_ok(),
            "a line waited for the write in progress"
        );
        drop(writing);
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
            // Longer than the stack buffer: the rest of the line goes by the heap.
            let long = "0123456789".repeat(30);
            tracing::info!(
                first = long.as_str(),
                n = 5u64,
                then = "short",
                "after {}",
                "long"
            );
        });
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// A clock that always reads the same, so two formatters' lines can be compared.
    #[derive(Clone, Copy)]
    struct Frozen;

    impl FormatTime for Frozen {
        fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
            w.write_str("2026-11-30T12:00:00.000001Z")
        }
    }

    /// Events of every level, in a span and out of one, through `format`.
    fn formatted<E>(format: E, ansi: bool) -> String
    where
        E: for<'w> tracing_subscriber::fmt::FormatEvent<tracing_subscriber::Registry, PlainFields>
            + Send
            + Sync
            + 'static,
    {
        use tracing_subscriber::layer::SubscriberExt;
        let out = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .fmt_fields(PlainFields)
            .event_format(format)
            .with_writer(move || Sink(sink.clone()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(request_id = %"ub01", dialect = "header_json", status = 200u16, "request");
            tracing::warn!(account = "acme", "refused: \"quoted\"");
            tracing::error!(target: "upsbridge::custom", n = 1u64, "gone");
            tracing::debug!("debugging");
            tracing::trace!(x = 2i64);
            let span = tracing::info_span!("work", job = "reload");
            let _in = span.enter();
            tracing::info!(inside = true, "in a span");
        });
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_line_format_writes_what_tracing_subscribers_full_format_writes() {
        let full = || tracing_subscriber::fmt::format().with_timer(Frozen);
        for ansi in [false, true] {
            let ours = formatted(LineFormat::new(Frozen), ansi);
            let theirs = formatted(full(), ansi);
            assert_eq!(ours, theirs, "ansi {ansi}");
            assert_eq!(ours.lines().count(), 6, "{ours}");
        }
        let plain = formatted(LineFormat::new(Frozen), false);
        assert!(
            plain.starts_with("2026-11-30T12:00:00.000001Z  INFO upsbridge::logbuf::tests: request request_id=ub01 "),
            "{plain}"
        );
        assert!(
            plain.contains("Z ERROR upsbridge::custom: gone n=1\n"),
            "{plain}"
        );
        assert!(plain.contains("work{job=\"reload\"}:"), "{plain}");
    }

    #[test]
    fn the_cached_timestamp_writes_six_digits_of_microseconds() {
        let s = stamp(&super::SecondCachedTime);
        let micros = &s[20..26];
        assert!(micros.bytes().all(|b| b.is_ascii_digit()), "{s}");
        assert_eq!(s.len(), 27, "{s}");
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

    /// What the binary's own layer (colours off) writes for the events `emit` logs.
    fn through_the_layer(emit: impl FnOnce()) -> String {
        use tracing_subscriber::layer::SubscriberExt;
        let out = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(PlainFields)
            .event_format(LineFormat::new(SecondCachedTime))
            .with_writer(move || Sink(sink.clone()));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_direct_line_is_the_line_the_layer_writes_for_the_same_event() {
        static BUF: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        let long = "wh-".repeat(100);
        let accounts = [
            ("east-warehouse", 200u16, 3u64),
            ("-", 502, 0),
            ("", 401, 12_345),
            ("Acme \"East\" \\ wh\n\u{e9}t\u{e9}", 200, 1),
            (long.as_str(), 200, u64::MAX),
        ];
        for (account, status, ms) in accounts {
            let theirs = through_the_layer(|| {
                tracing::info!(target: "upsbridge::pipeline", request_id = %"ub0123456789abcdef",
                    dialect = "header_json", service = "rate", account, status, outcome = "ok",
                    ms, "request");
            });
            {
                let held = Line {
                    pending: Some(locked(&BUF)),
                    first: false,
                };
                let mut line =
                    DirectLine::begin(held, tracing::Level::INFO, "upsbridge::pipeline", "request");
                line.display("request_id", "ub0123456789abcdef");
                line.str("dialect", "header_json");
                line.str("service", "rate");
                line.str("account", account);
                line.u64("status", status.into());
                line.str("outcome", "ok");
                line.u64("ms", ms);
            }
            let ours = String::from_utf8(std::mem::take(&mut *locked(&BUF))).unwrap();
            // Stamped microseconds apart: the same from the level on, and the same shape of
            // time before it.
            assert_eq!(ours.len(), theirs.len(), "{ours}{theirs}");
            assert_eq!(ours[27..], theirs[27..]);
            assert_eq!(ours.as_bytes()[10], b'T', "{ours}");
            assert_eq!(&ours[26..27], "Z", "{ours}");
            assert_eq!(ours.lines().count(), 1, "{ours}");
        }
        let first = through_the_layer(|| {
            tracing::info!(target: "upsbridge::pipeline", request_id = %"ub01", dialect = "soap",
                service = "rate", account = "east", status = 200u16, outcome = "ok", ms = 3u64,
                "request");
        });
        assert_eq!(
            &first[27..],
            "  INFO upsbridge::pipeline: request request_id=ub01 dialect=\"soap\" service=\"rate\" account=\"east\" status=200 outcome=\"ok\" ms=3\n"
        );
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
        assert_eq!(ours.lines().count(), 7, "{ours}");
        assert!(ours.contains(&format!(
            "first=\"{}\" n=5 then=\"short\"",
            "0123456789".repeat(30)
        )));
    }
}
