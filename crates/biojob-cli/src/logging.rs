//! The tracing subscriber: JSON under AWS Batch, text elsewhere, progress bars on a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::{LogFormat, LoggingArgs};
use biojob_pipeline::env;

use crate::environment;

/// Whether [`init`] chose JSON logs (read by the step metrics, which are written only then).
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Whether logs are JSON lines (CloudWatch), as chosen by [`init`].
pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// Sets the global subscriber. Returns the progress display when stderr is a terminal and
/// logs are text; log lines are then printed above the bars.
pub fn init(args: &LoggingArgs) -> Option<MultiProgress> {
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => environment::under_batch(),
    };
    JSON_LOGS.store(json, Ordering::Relaxed);
    let terminal = !json && std::io::stderr().is_terminal();
    let default_level = match (args.quiet, args.verbose) {
        (true, _) => "warn",
        (false, 0) if terminal => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // A BIOJOB_LOG that is not a filter is said once logging is up, not ignored silently.
    let mut refused = None;
    let filter = match environment::var(env::BIOJOB_LOG) {
        Some(text) => EnvFilter::try_new(&text).unwrap_or_else(|error| {
            refused = Some((text, error));
            EnvFilter::new(default_level)
        }),
        None => EnvFilter::new(default_level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let progress = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .init();
        None
    } else if terminal {
        let progress = MultiProgress::new();
        builder
            .compact()
            .with_writer(ProgressWriter(progress.clone()))
            .init();
        Some(progress)
    } else {
        // Not a terminal (a file, a pipe, CloudWatch): no colour codes in the text.
        builder
            .compact()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
        None
    };
    if let Some((text, error)) = refused {
        tracing::warn!(
            "{} {text:?} is not a log filter ({error}): logging at {default_level}",
            env::BIOJOB_LOG
        );
    }
    progress
}

/// Writes log lines above the progress bars.
#[derive(Clone)]
struct ProgressWriter(MultiProgress);

struct SuspendingWriter<'a>(&'a MultiProgress);

impl Write for SuspendingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for ProgressWriter {
    type Writer = SuspendingWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SuspendingWriter(&self.0)
    }
}
