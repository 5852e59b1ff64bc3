//! What a finished child did: exit status, resource use, stderr.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use camino::Utf8PathBuf;
use nix::sys::signal::Signal;

use crate::CancelReason;

/// How a child ended, as reported by `wait4(2)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitStatusKind {
    /// The child exited with this status code (0–255).
    Exited(i32),
    /// The child was killed by a signal.
    Signaled {
        /// The signal number (9 for SIGKILL).
        signal: i32,
        /// The signal's name (`SIGKILL`), or `signal N` for one without a name.
        name: String,
    },
}

impl ExitStatusKind {
    /// Whether the child exited with status 0.
    pub fn success(&self) -> bool {
        *self == ExitStatusKind::Exited(0)
    }

    /// A killed-by-signal status with the signal's name filled in.
    pub fn signaled(signal: i32) -> Self {
        ExitStatusKind::Signaled {
            signal,
            name: signal_name(signal),
        }
    }

    /// The signal number, if the child was killed by one.
    pub fn signal(&self) -> Option<i32> {
        match self {
            ExitStatusKind::Signaled { signal, .. } => Some(*signal),
            ExitStatusKind::Exited(_) => None,
        }
    }

    pub(crate) fn from_std(status: ExitStatus) -> Self {
        if let Some(code) = status.code() {
            ExitStatusKind::Exited(code)
        } else if let Some(signal) = status.signal() {
            ExitStatusKind::signaled(signal)
        } else {
            // Only stopped/continued statuses have neither, and we never ask for those.
            ExitStatusKind::Exited(status.into_raw())
        }
    }
}

impl fmt::Display for ExitStatusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatusKind::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatusKind::Signaled { name, .. } => write!(f, "killed by {name}"),
        }
    }
}

/// The name of signal number `signal` (`SIGKILL`), or `signal N` when it has none.
pub fn signal_name(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(known) => known.as_str().to_owned(),
        Err(_) => format!("signal {signal}"),
    }
}

/// Why the supervisor stopped a child that was still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The run's [`CancelToken`](crate::CancelToken) was cancelled.
    Cancelled(CancelReason),
    /// The run went past the supervisor's timeout.
    TimedOut,
    /// The step went past its [`StepDeadline`](crate::StepDeadline).
    StepTimedOut,
    /// A [`Watchdog`](crate::Watchdog) asked to stop.
    Watchdog,
    /// Another stage of the same pipeline failed (or could not start), so this one was doomed.
    StageFailed,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Cancelled(reason) => write!(f, "cancelled ({reason})"),
            StopReason::TimedOut => f.write_str("timed out"),
            StopReason::StepTimedOut => f.write_str("the step went past its time limit"),
            StopReason::Watchdog => f.write_str("stopped by a watchdog"),
            StopReason::StageFailed => f.write_str("another stage failed"),
        }
    }
}

/// What one child did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageReport {
    /// The command's label.
    pub label: String,
    /// The program and its arguments, as given (lossy UTF-8).
    pub argv: Vec<String>,
    /// The child's process id, which was also its process group id.
    pub pid: u32,
    /// How the child ended.
    pub status: ExitStatusKind,
    /// Set when the supervisor signalled the child (SIGTERM, then SIGKILL after the grace
    /// period) before it ended: the child did not end on its own, and its status says how it
    /// reacted to the signals.
    pub stop: Option<StopReason>,
    /// Wall-clock time from start to exit.
    pub wall: Duration,
    /// CPU time in user mode, including descendants the child waited for.
    pub user_cpu: Duration,
    /// CPU time in kernel mode, including descendants the child waited for.
    pub system_cpu: Duration,
    /// Peak resident set size in bytes (of the child or its largest waited-for descendant).
    pub max_rss_bytes: u64,
    /// The file holding the child's whole stderr: `<log_dir>/<label>.stderr`.
    pub stderr_log: Utf8PathBuf,
    /// The last lines of stderr (at most 40 lines and 4 KiB), without a final newline.
    pub stderr_tail: String,
}

impl StageReport {
    /// Whether the child exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// What the stages of a pipeline (or the one command of a run) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    /// One report per stage that started, in pipeline order.
    pub stages: Vec<StageReport>,
    /// Wall-clock time from the first start to the last exit.
    pub wall: Duration,
}

impl PipelineReport {
    /// The report of the stage labelled `label`.
    pub fn stage(&self, label: &str) -> Option<&StageReport> {
        self.stages.iter().find(|stage| stage.label == label)
    }
}

/// The output of [`Supervisor::capture`](crate::Supervisor::capture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// What the child did; its stderr is also in the log file as for any run.
    pub report: StageReport,
    /// Standard output (lossy UTF-8; the first 1 MiB, the rest is read and dropped).
    pub stdout: String,
    /// Standard error (lossy UTF-8; the first 1 MiB, the rest is read and dropped).
    pub stderr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(13), "SIGPIPE");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(64), "signal 64");
    }

    #[test]
    fn from_std_statuses() {
        assert_eq!(
            ExitStatusKind::from_std(ExitStatus::from_raw(1 << 8)),
            ExitStatusKind::Exited(1)
        );
        assert_eq!(
            ExitStatusKind::from_std(ExitStatus::from_raw(9)),
            ExitStatusKind::Signaled {
                signal: 9,
                name: "SIGKILL".to_owned()
            }
        );
    }

    #[test]
    fn display() {
        assert_eq!(
            ExitStatusKind::Exited(3).to_string(),
            "exited with status 3"
        );
        assert_eq!(
            ExitStatusKind::signaled(15).to_string(),
            "killed by SIGTERM"
        );
        assert_eq!(
            StopReason::Cancelled(CancelReason::Terminate).to_string(),
            "cancelled (SIGTERM received)"
        );
        assert!(ExitStatusKind::Exited(0).success());
        assert!(!ExitStatusKind::signaled(9).success());
        assert_eq!(ExitStatusKind::signaled(9).signal(), Some(9));
    }
}
