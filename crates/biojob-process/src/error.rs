//! The error of this crate and its exit class.

use std::io;
use std::time::Duration;

use biojob_core::{Classify, ExitClass};
use camino::Utf8PathBuf;
use nix::errno::Errno;

use crate::{CancelReason, PipelineReport};

/// Why running a command or pipeline failed.
///
/// Variants that follow a run carry its [`PipelineReport`] (every stage that started, with its
/// status and resource use) so that a failed step can still write its manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The command or pipeline cannot be run as given (a bug in the caller, not in the tool):
    /// an empty pipeline, a bad label, stdin on a stage other than the first, a stdout file on a
    /// stage other than the last, an inherited descriptor below 3.
    #[error("invalid command {label}: {reason}")]
    InvalidCommand {
        /// The command's label (or `(empty pipeline)`).
        label: String,
        /// What is wrong.
        reason: String,
    },

    /// The program could not be started: not found on `PATH`, not executable, …
    #[error("failed to start {label} (`{program}`)")]
    Spawn {
        /// The command's label.
        label: String,
        /// The program as given.
        program: Utf8PathBuf,
        /// The program and its arguments.
        argv: Vec<String>,
        /// What `execve` (or what came before it) said.
        source: io::Error,
    },

    /// A stage exited with a non-zero status and was the root cause of the failure.
    #[error("{label} exited with status {code}{}", tail_suffix(.stderr_tail))]
    Failed {
        /// The failing stage's label.
        label: String,
        /// Its exit status (1–255).
        code: i32,
        /// The last lines of its stderr.
        stderr_tail: String,
        /// Every stage that started.
        report: Box<PipelineReport>,
    },

    /// A stage was killed by a signal that the supervisor did not send (the OOM killer, a
    /// SIGSEGV, …) and was the root cause of the failure.
    #[error("{label} was killed by {signal_name}{}", tail_suffix(.stderr_tail))]
    Killed {
        /// The killed stage's label.
        label: String,
        /// The signal number.
        signal: i32,
        /// The signal name (`SIGKILL`).
        signal_name: String,
        /// The last lines of its stderr.
        stderr_tail: String,
        /// Every stage that started.
        report: Box<PipelineReport>,
    },

    /// The run went past the supervisor's timeout; every stage was stopped.
    #[error("{label} timed out after {}", humantime::format_duration(*.after))]
    TimedOut {
        /// The labels of the stages, joined with ` | `.
        label: String,
        /// The timeout.
        after: Duration,
        /// Every stage that started.
        report: Box<PipelineReport>,
    },

    /// The step's time limit ([`StepDeadline`](crate::StepDeadline)) passed; every stage was
    /// stopped (or, when it had passed before the run, none was started).
    #[error("step {step} went past its time limit of {}; stopped {label}", humantime::format_duration(*.limit))]
    StepTimedOut {
        /// The step.
        step: String,
        /// The limit.
        limit: Duration,
        /// The labels of the stages, joined with ` | `.
        label: String,
        /// Every stage that started.
        report: Box<PipelineReport>,
    },

    /// A [`Watchdog`](crate::Watchdog) stopped the run (e.g. scratch space never grew); every
    /// stage was stopped. The source says why; the class and remedy are the watchdog's.
    #[error("stopped {label}")]
    Watchdog {
        /// The labels of the stages, joined with ` | `.
        label: String,
        /// The exit class the watchdog gave.
        class: ExitClass,
        /// The watchdog's remedy.
        remedy: Option<String>,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
        /// Every stage that started.
        report: Box<PipelineReport>,
    },

    /// The run's cancel token was cancelled; every stage was stopped.
    #[error("{label} cancelled: {reason}")]
    Cancelled {
        /// The labels of the stages, joined with ` | `.
        label: String,
        /// Why.
        reason: CancelReason,
        /// Every stage that started (none when the token was cancelled before the run).
        report: Box<PipelineReport>,
    },

    /// A file the supervisor opens for a child (stdin, stdout, stderr log) or the log directory
    /// could not be opened or created.
    #[error("could not {action} {path}")]
    Io {
        /// What was being done (`create stdout file`, …).
        action: &'static str,
        /// The file or directory.
        path: Utf8PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// An operating-system call needed to supervise a child failed (creating a pipe, `wait4`).
    #[error("{operation} failed for {label}")]
    Os {
        /// The command's label.
        label: String,
        /// The call (`create pipe`, `wait4`).
        operation: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

/// `": <tail>"`, or nothing when the tail is empty.
fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// Whether a tool's stderr says the disk (or the quota) is full.
fn says_disk_full(stderr_tail: &str) -> bool {
    let tail = stderr_tail.to_ascii_lowercase();
    tail.contains("no space left on device") || tail.contains("disk quota exceeded")
}

fn is_disk_full(error: &io::Error) -> bool {
    error
        .raw_os_error()
        .is_some_and(|code| code == Errno::ENOSPC as i32 || code == Errno::EDQUOT as i32)
}

impl ProcessError {
    /// The report of the run, for the variants that follow one.
    pub fn report(&self) -> Option<&PipelineReport> {
        match self {
            ProcessError::Failed { report, .. }
            | ProcessError::Killed { report, .. }
            | ProcessError::TimedOut { report, .. }
            | ProcessError::StepTimedOut { report, .. }
            | ProcessError::Watchdog { report, .. }
            | ProcessError::Cancelled { report, .. } => Some(report),
            ProcessError::InvalidCommand { .. }
            | ProcessError::Spawn { .. }
            | ProcessError::Io { .. }
            | ProcessError::Os { .. } => None,
        }
    }

    /// The stderr log of the stage named in the error as `logs/<label>.stderr`: the name it has
    /// in the log directory and wherever the logs are published.
    fn stderr_log(&self) -> Option<String> {
        let report = self.report()?;
        let stage = match self {
            ProcessError::Failed { label, .. } | ProcessError::Killed { label, .. } => {
                report.stage(label)?
            }
            _ => report.stages.first()?,
        };
        let name = stage.stderr_log.file_name()?;
        Some(format!("logs/{name}"))
    }
}

impl Classify for ProcessError {
    fn exit_class(&self) -> ExitClass {
        match self {
            ProcessError::InvalidCommand { .. } => ExitClass::Usage,
            ProcessError::Spawn { .. } | ProcessError::Os { .. } => ExitClass::ToolFailed,
            ProcessError::Failed { stderr_tail, .. } if says_disk_full(stderr_tail) => {
                ExitClass::Scratch
            }
            ProcessError::Failed { .. } => ExitClass::ToolFailed,
            ProcessError::Killed { .. }
            | ProcessError::TimedOut { .. }
            | ProcessError::StepTimedOut { .. } => ExitClass::ToolKilled,
            ProcessError::Watchdog { class, .. } => *class,
            ProcessError::Cancelled { reason, .. } => reason.exit_class(),
            ProcessError::Io { source, .. } if is_disk_full(source) => ExitClass::Scratch,
            ProcessError::Io { .. } => ExitClass::ToolFailed,
        }
    }

    fn remedy(&self) -> Option<String> {
        let log = self.stderr_log();
        match self {
            ProcessError::Spawn {
                program, source, ..
            } => match source.kind() {
                io::ErrorKind::NotFound => Some(format!(
                    "install `{program}` or set PATH to include the directory that holds it"
                )),
                io::ErrorKind::PermissionDenied => Some(format!(
                    "make `{program}` executable (chmod +x) or point to the right file"
                )),
                _ => None,
            },
            ProcessError::Failed { stderr_tail, .. } if says_disk_full(stderr_tail) => {
                Some("the tool ran out of disk space: give the job a larger scratch volume".into())
            }
            ProcessError::Failed { .. } => log.map(|log| format!("see {log} for the whole stderr")),
            ProcessError::Killed { signal, .. } if *signal == libc_sigkill() => Some(format!(
                "SIGKILL not sent by biojob usually comes from the kernel's out-of-memory killer: \
                 give the job more memory{}",
                log.map(|log| format!(" (stderr in {log})"))
                    .unwrap_or_default()
            )),
            ProcessError::Killed { .. } => log.map(|log| format!("see {log} for the whole stderr")),
            ProcessError::TimedOut { .. } => Some(format!(
                "raise the timeout, or find why the tool stalled{}",
                log.map(|log| format!(" in {log}")).unwrap_or_default()
            )),
            ProcessError::StepTimedOut { step, .. } => Some(format!(
                "raise the step time limit (--timeout, BIOJOB_STEP_TIMEOUT), or find why {step} \
                 stalled{}",
                log.map(|log| format!(" in {log}")).unwrap_or_default()
            )),
            ProcessError::Watchdog { remedy, .. } => remedy.clone(),
            ProcessError::Io { source, .. } if is_disk_full(source) => {
                Some("give the job a larger scratch volume".into())
            }
            ProcessError::InvalidCommand { .. }
            | ProcessError::Cancelled { .. }
            | ProcessError::Io { .. }
            | ProcessError::Os { .. } => None,
        }
    }
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExitStatusKind, StageReport};

    fn report(label: &str) -> Box<PipelineReport> {
        Box::new(PipelineReport {
            stages: vec![StageReport {
                label: label.to_owned(),
                argv: vec!["bwa".to_owned(), "mem".to_owned()],
                pid: 42,
                status: ExitStatusKind::Exited(1),
                stop: None,
                wall: Duration::from_secs(1),
                user_cpu: Duration::ZERO,
                system_cpu: Duration::ZERO,
                max_rss_bytes: 0,
                stderr_log: Utf8PathBuf::from(format!("/logs/{label}.stderr")),
                stderr_tail: String::new(),
            }],
            wall: Duration::from_secs(1),
        })
    }

    fn failed(tail: &str) -> ProcessError {
        ProcessError::Failed {
            label: "bwa-mem".into(),
            code: 1,
            stderr_tail: tail.into(),
            report: report("bwa-mem"),
        }
    }

    #[test]
    fn failed_display_and_class() {
        let error = failed("[E::main_mem] fail to open file 'x.fq'");
        assert_eq!(
            error.to_string(),
            "bwa-mem exited with status 1: [E::main_mem] fail to open file 'x.fq'"
        );
        assert_eq!(error.exit_class(), ExitClass::ToolFailed);
        assert_eq!(
            error.remedy().as_deref(),
            Some("see logs/bwa-mem.stderr for the whole stderr")
        );
        assert_eq!(failed("").to_string(), "bwa-mem exited with status 1");
    }

    #[test]
    fn disk_full_is_scratch() {
        let error = failed("samtools sort: write failed: No space left on device");
        assert_eq!(error.exit_class(), ExitClass::Scratch);
        assert_eq!(error.exit_class().code(), 12);
        assert_eq!(
            error.remedy().as_deref(),
            Some("the tool ran out of disk space: give the job a larger scratch volume")
        );
        let io = ProcessError::Io {
            action: "create stdout file",
            path: "/scratch/x.bam".into(),
            source: io::Error::from_raw_os_error(Errno::ENOSPC as i32),
        };
        assert_eq!(
            io.to_string(),
            "could not create stdout file /scratch/x.bam"
        );
        assert_eq!(io.exit_class(), ExitClass::Scratch);
    }

    #[test]
    fn killed_display_and_class() {
        let error = ProcessError::Killed {
            label: "bwa-mem".into(),
            signal: 9,
            signal_name: "SIGKILL".into(),
            stderr_tail: "[M::process] read 10 sequences".into(),
            report: report("bwa-mem"),
        };
        assert_eq!(
            error.to_string(),
            "bwa-mem was killed by SIGKILL: [M::process] read 10 sequences"
        );
        assert_eq!(error.exit_class(), ExitClass::ToolKilled);
        assert_eq!(
            error.remedy().as_deref(),
            Some(
                "SIGKILL not sent by biojob usually comes from the kernel's out-of-memory \
                 killer: give the job more memory (stderr in logs/bwa-mem.stderr)"
            )
        );
    }

    #[test]
    fn cancelled_classes() {
        let cancelled = |reason| ProcessError::Cancelled {
            label: "bwa-mem | samtools-sort".into(),
            reason,
            report: report("bwa-mem"),
        };
        assert_eq!(
            cancelled(CancelReason::Terminate).to_string(),
            "bwa-mem | samtools-sort cancelled: SIGTERM received"
        );
        assert_eq!(cancelled(CancelReason::Terminate).exit_class().code(), 143);
        assert_eq!(cancelled(CancelReason::Interrupt).exit_class().code(), 130);
        assert_eq!(
            cancelled(CancelReason::Sibling).exit_class(),
            ExitClass::ToolFailed
        );
        assert_eq!(cancelled(CancelReason::Terminate).remedy(), None);
    }

    #[test]
    fn timed_out_display_and_class() {
        let error = ProcessError::TimedOut {
            label: "bcftools-call.chr20".into(),
            after: Duration::from_secs(5400),
            report: report("bcftools-call.chr20"),
        };
        assert_eq!(
            error.to_string(),
            "bcftools-call.chr20 timed out after 1h 30m"
        );
        assert_eq!(error.exit_class(), ExitClass::ToolKilled);
        assert_eq!(
            error.remedy().as_deref(),
            Some(
                "raise the timeout, or find why the tool stalled in \
                 logs/bcftools-call.chr20.stderr"
            )
        );
    }

    #[test]
    fn spawn_remedies() {
        let spawn = |kind| ProcessError::Spawn {
            label: "bwa-mem".into(),
            program: "bwa".into(),
            argv: vec!["bwa".into()],
            source: io::Error::from(kind),
        };
        let not_found = spawn(io::ErrorKind::NotFound);
        assert_eq!(not_found.to_string(), "failed to start bwa-mem (`bwa`)");
        assert_eq!(not_found.exit_class(), ExitClass::ToolFailed);
        assert_eq!(
            not_found.remedy().as_deref(),
            Some("install `bwa` or set PATH to include the directory that holds it")
        );
        assert_eq!(
            spawn(io::ErrorKind::PermissionDenied).remedy().as_deref(),
            Some("make `bwa` executable (chmod +x) or point to the right file")
        );
    }
}
