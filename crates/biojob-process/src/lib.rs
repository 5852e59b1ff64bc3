//! Supervised child processes and pipelines for biojob's tools.
//!
//! This crate spawns and supervises children; it knows no tool (`biojob-tools` builds the
//! argv). Every child runs in its own process group, with stdin `/dev/null` unless set and its
//! stderr drained on a thread into `<log_dir>/<label>.stderr` (and `tracing::debug!` events).
//! Cancellation, a timeout, or a failed pipeline stage stops the children that are still running:
//! SIGTERM to each process group, a grace period, then SIGKILL. Every child also gets SIGKILL
//! from the kernel when biojob dies, even by SIGKILL (`PR_SET_PDEATHSIG`; see [`Supervisor`]).
//!
//! - [`CommandSpec`]: label, program, typed argv, cwd, env, stdin, stdout file or pipe,
//!   inherited fds.
//! - [`Supervisor`]: [`run`](Supervisor::run) one command,
//!   [`run_pipeline`](Supervisor::run_pipeline) stages joined by OS pipes with pipefail
//!   semantics, [`capture`](Supervisor::capture) a `--version` probe's output.
//! - [`CancelToken`]: cancelled by the binary's SIGTERM/SIGINT handler or by a failed sibling.
//! - [`Watchdog`]: an outside condition checked while children run; it can pause them
//!   (SIGSTOP/SIGCONT to their process groups, e.g. while scratch space is short) or stop them.
//! - [`StepDeadline`]: the time limit of a whole step, across the commands it runs.
//! - [`StageReport`] / [`PipelineReport`]: exit status, wall and CPU time, peak RSS in bytes,
//!   stderr log and tail, for the run manifest.
//! - [`ProcessError`]: which stage failed and how; it implements [`biojob_core::Classify`].
//!
//! ```no_run
//! use biojob_process::{CancelToken, CommandSpec, Supervisor};
//!
//! let cancel = CancelToken::new();
//! let supervisor = Supervisor::new("/scratch/job/logs", cancel.clone());
//! let report = supervisor.run_pipeline(vec![
//!     CommandSpec::new("bwa-mem", "bwa").args(["mem", "-t", "8", "ref.fa", "r1.fq", "r2.fq"]),
//!     CommandSpec::new("samtools-sort", "samtools")
//!         .args(["sort", "-o", "/dev/stdout", "-"])
//!         .stdout_file("/scratch/job/NA12878.align.bam.partial"),
//! ])?;
//! for stage in &report.stages {
//!     tracing::info!(
//!         tool = %stage.label,
//!         max_rss_bytes = stage.max_rss_bytes,
//!         "{} in {:?}",
//!         stage.status,
//!         stage.wall
//!     );
//! }
//! # Ok::<(), biojob_process::ProcessError>(())
//! ```

mod cancel;
mod command;
mod drain;
mod error;
mod report;
mod supervisor;
mod watch;

pub use cancel::{CancelReason, CancelToken};
pub use command::{CommandSpec, StdinSource, is_withheld_variable};
pub use error::ProcessError;
pub use report::{Captured, ExitStatusKind, PipelineReport, StageReport, StopReason, signal_name};
pub use supervisor::{DEFAULT_GRACE, Supervisor};
pub use watch::{StepDeadline, WatchStop, WatchVerdict, Watchdog};
