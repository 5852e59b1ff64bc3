//! Draining a child's output on a thread: log file, `tracing` events, tail, optional capture.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// Lines kept in a stderr tail.
pub(crate) const TAIL_LINES: usize = 40;
/// Bytes kept in a stderr tail (lines joined with `\n`).
pub(crate) const TAIL_BYTES: usize = 4096;
/// Longest line, in bytes, passed to `tracing` and the tail; the log file gets everything.
const MAX_LINE_BYTES: usize = 4096;
/// Most bytes kept in memory when capturing.
pub(crate) const CAPTURE_BYTES: usize = 1 << 20;
/// Read size, in bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// The last lines of a stream: at most [`TAIL_LINES`] lines and [`TAIL_BYTES`] bytes.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    lines: VecDeque<String>,
    /// Sum of the lengths of `lines`, in bytes.
    bytes: usize,
}

impl Tail {
    pub(crate) fn push(&mut self, mut line: String) {
        if line.len() > TAIL_BYTES {
            let mut end = TAIL_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > TAIL_LINES
            || (self.lines.len() > 1 && self.bytes + self.lines.len() - 1 > TAIL_BYTES)
        {
            if let Some(dropped) = self.lines.pop_front() {
                self.bytes -= dropped.len();
            }
        }
    }

    /// The lines joined with `\n`, no final newline.
    pub(crate) fn text(&self) -> String {
        let mut text = String::with_capacity(self.bytes + self.lines.len());
        for (index, line) in self.lines.iter().enumerate() {
            if index > 0 {
                text.push('\n');
            }
            text.push_str(line);
        }
        text
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`] bytes.
#[derive(Debug, Default)]
struct LineSplitter {
    current: Vec<u8>,
    truncated: bool,
}

impl LineSplitter {
    fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(String)) {
        while !bytes.is_empty() {
            let (part, rest, ends_line) = match bytes.iter().position(|&byte| byte == b'\n') {
                Some(newline) => (&bytes[..newline], &bytes[newline + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(self.current.len());
            if part.len() > room {
                self.truncated = true;
            }
            self.current
                .extend_from_slice(&part[..part.len().min(room)]);
            if ends_line {
                emit(self.take());
            }
            bytes = rest;
        }
    }

    fn finish(&mut self, emit: impl FnOnce(String)) {
        if !self.current.is_empty() || self.truncated {
            emit(self.take());
        }
    }

    fn take(&mut self) -> String {
        let mut line = String::from_utf8_lossy(&self.current).into_owned();
        if line.ends_with('\r') {
            line.pop();
        }
        if self.truncated {
            line.push_str(" [line truncated]");
        }
        self.current.clear();
        self.truncated = false;
        line
    }
}

/// What to do with the drained bytes besides keeping the tail.
pub(crate) struct DrainOptions {
    /// The command's label, for `tracing` events.
    pub(crate) label: String,
    /// Where to copy every byte.
    pub(crate) log: Option<File>,
    /// Emit each line as a `tracing::debug!` event with a `tool` field.
    pub(crate) trace_lines: bool,
    /// Keep the first [`CAPTURE_BYTES`] bytes in memory.
    pub(crate) capture: bool,
}

#[derive(Debug, Default)]
struct Shared {
    tail: Tail,
    captured: Vec<u8>,
}

/// A running drain thread.
pub(crate) struct Drain {
    label: String,
    shared: Arc<Mutex<Shared>>,
    done: mpsc::Receiver<()>,
    thread: thread::JoinHandle<()>,
}

/// What a drain collected.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    pub(crate) tail: String,
    pub(crate) captured: Vec<u8>,
}

impl Drain {
    /// Starts a thread that reads `source` to its end.
    pub(crate) fn start(
        source: impl Read + Send + 'static,
        options: DrainOptions,
    ) -> io::Result<Self> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (done_tx, done) = mpsc::channel();
        let label = options.label.clone();
        let thread = thread::Builder::new()
            .name(format!("drain {label}"))
            .spawn({
                let shared = Arc::clone(&shared);
                move || {
                    drain(source, options, &shared);
                    // The receiver may be gone if the supervisor stopped waiting.
                    let _ = done_tx.send(());
                }
            })?;
        Ok(Self {
            label,
            shared,
            done,
            thread,
        })
    }

    /// Waits up to `wait` for the stream to end, then returns what was collected.
    ///
    /// The stream ends when every process holding its write end has exited. When a descendant
    /// of the child still holds it after `wait`, the thread is left running (it ends with that
    /// descendant) and what was collected so far is returned.
    pub(crate) fn finish(self, wait: Duration) -> Drained {
        match self.done.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if self.thread.join().is_err() {
                    tracing::warn!(tool = %self.label, "output drain thread panicked");
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    tool = %self.label,
                    "output still open {wait:?} after the child exited (held by a descendant); \
                     its tail may be incomplete"
                );
            }
        }
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        Drained {
            tail: shared.tail.text(),
            captured: std::mem::take(&mut shared.captured),
        }
    }
}

fn drain(mut source: impl Read, options: DrainOptions, shared: &Mutex<Shared>) {
    let DrainOptions {
        label,
        log,
        trace_lines,
        capture,
    } = options;
    // Unbuffered: each chunk read is written at once, so the log can be followed live.
    let mut log = log;
    let mut splitter = LineSplitter::default();
    let mut buffer = vec![0_u8; CHUNK_BYTES];
    let mut emit = |line: String| {
        if trace_lines {
            tracing::debug!(tool = %label, "{line}");
        }
        shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tail
            .push(line);
    };
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::warn!(tool = %label, %error, "reading the child's output failed");
                break;
            }
        };
        let bytes = &buffer[..read];
        if let Some(writer) = &mut log
            && let Err(error) = writer.write_all(bytes)
        {
            // Keep draining: a full log disk must not stall the child.
            tracing::warn!(tool = %label, %error, "writing the stderr log failed; not logging the rest");
            log = None;
        }
        if capture {
            let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
            let room = CAPTURE_BYTES.saturating_sub(guard.captured.len());
            guard
                .captured
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        splitter.feed(bytes, &mut emit);
    }
    splitter.finish(emit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        for chunk in input {
            splitter.feed(chunk, |line| out.push(line));
        }
        splitter.finish(|line| out.push(line));
        out
    }

    #[test]
    fn splits_across_chunks() {
        assert_eq!(
            lines(&[b"ab", b"c\nd", b"e\r\n\nf"]),
            ["abc", "de", "", "f"]
        );
        assert_eq!(lines(&[b"x\n"]), ["x"]);
        assert!(lines(&[b""]).is_empty());
    }

    #[test]
    fn long_lines_are_truncated() {
        let long = vec![b'a'; MAX_LINE_BYTES + 10];
        let out = lines(&[&long, b"\nnext\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            format!("{} [line truncated]", "a".repeat(MAX_LINE_BYTES))
        );
        assert_eq!(out[1], "next");
    }

    #[test]
    fn tail_keeps_last_40_lines() {
        let mut tail = Tail::default();
        for index in 0..100 {
            tail.push(format!("line {index}"));
        }
        let expected: Vec<String> = (60..100).map(|index| format!("line {index}")).collect();
        assert_eq!(tail.text(), expected.join("\n"));
    }

    #[test]
    fn tail_keeps_at_most_4_kib() {
        let mut tail = Tail::default();
        for index in 0..10 {
            tail.push(format!("{index}{}", "x".repeat(999)));
        }
        // Four 1000-byte lines and three newlines are 4003 bytes; a fifth would make 5004.
        let text = tail.text();
        assert_eq!(text.len(), 4 * 1000 + 3);
        assert!(text.starts_with("6xxx"));
        assert!(text.ends_with('x'));
    }

    #[test]
    fn tail_truncates_a_huge_line_at_a_char_boundary() {
        let mut tail = Tail::default();
        tail.push("é".repeat(TAIL_BYTES));
        assert_eq!(tail.text(), "é".repeat(TAIL_BYTES / 2));
    }

    #[test]
    fn drain_logs_captures_and_tails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.stderr");
        let log = File::create(&path).expect("log file");
        let drain = Drain::start(
            &b"one\ntwo\nthree"[..],
            DrainOptions {
                label: "x".into(),
                log: Some(log),
                trace_lines: true,
                capture: true,
            },
        )
        .expect("drain thread");
        let drained = drain.finish(Duration::from_secs(10));
        assert_eq!(drained.tail, "one\ntwo\nthree");
        assert_eq!(drained.captured, b"one\ntwo\nthree");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read log"),
            "one\ntwo\nthree"
        );
    }
}
