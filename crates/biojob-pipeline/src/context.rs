//! What every step runs with: the [`Engine`] (stores, tools, budget, settings) and, per job,
//! the supervisor of its tools and the watch on its scratch space ([`StepContext`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use biojob_core::{Classify, ExitClass};
use biojob_process::{CancelToken, PipelineReport, ProcessError, StepDeadline, Supervisor};
use biojob_scratch::{SpaceNeed, SpaceWatch};
use biojob_storage::Stores;
use biojob_tools::{ToolError, ToolVersions, Toolset};
use camino::Utf8Path;

use crate::{Error, Prices, Resources, ScratchSettings, SpaceWatchdog, TaskProgress};

/// Everything a run or a job needs besides its request: stores, tools, budget, cancellation.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Where inputs are read and outputs written.
    pub stores: Stores,
    /// The resolved tools.
    pub toolset: Toolset,
    /// Their versions, as probed.
    pub versions: ToolVersions,
    /// CPU and memory budget.
    pub resources: Resources,
    /// Cancelled by the binary's signal handler.
    pub cancel: CancelToken,
    /// Time between SIGTERM and SIGKILL when stopping tools.
    pub grace: Duration,
    /// Longest time any one tool may run, if limited.
    pub timeout: Option<Duration>,
    /// Longest time any one step may take (every command it runs and the time between
    /// them), if limited (see [`StepContext::for_step`]).
    pub step_timeout: Option<Duration>,
    /// Where scratch directories go and how their space is watched.
    pub scratch: ScratchSettings,
    /// How often a running task's progress is logged (JSON logs under AWS Batch; a terminal
    /// shows it as it changes).
    pub progress_interval: Duration,
    /// Whether the align step checks the FASTQs as it feeds them to bwa (the default). Off is
    /// a benchmark switch only (`benches/align-validation.sh`): bwa then reads the files
    /// itself and aligns a truncated or out-of-sync pair as far as it gets.
    pub validate_fastq: bool,
    /// Prices of a vCPU-hour and a GiB-hour, for the cost the manifests and the report give.
    pub prices: Prices,
}

impl Engine {
    /// The context for steps that log into `log_dir` and work in the scratch directory that
    /// `space` watches; the supervisor pauses and stops tools as `space` says.
    pub fn context(&self, log_dir: &Utf8Path, space: &SpaceWatch) -> StepContext {
        StepContext {
            supervisor: Supervisor::new(log_dir, self.cancel.clone())
                .with_grace(self.grace)
                .with_timeout(self.timeout)
                .with_watchdog(Some(SpaceWatchdog::shared(space))),
            space: space.clone(),
            engine: self.clone(),
            progress: Arc::default(),
        }
    }
}

/// One job's view of the [`Engine`]: the supervisor that runs its tools and its scratch watch.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The engine (its `resources` may be a share of the run's, for a chunk).
    pub engine: Engine,
    /// Runs the tools (logs, cancellation, timeouts, the scratch watchdog).
    pub supervisor: Supervisor,
    /// The free space of the job's scratch directory: each step's preflight, peak use.
    pub space: SpaceWatch,
    /// The running task's progress, which its step sets ([`TaskProgress::start`]).
    pub progress: Arc<TaskProgress>,
}

impl StepContext {
    /// The resolved tools.
    pub fn toolset(&self) -> &Toolset {
        &self.engine.toolset
    }

    /// The CPU and memory budget.
    pub fn resources(&self) -> Resources {
        self.engine.resources
    }

    /// This context with `cancel` as its cancellation token (a child token, so that one
    /// failing shard stops its siblings).
    pub fn with_cancel(&self, cancel: CancelToken) -> StepContext {
        StepContext {
            supervisor: self.supervisor.with_cancel(cancel),
            ..self.clone()
        }
    }

    /// This context with `progress` as its task's progress.
    pub fn with_progress(&self, progress: Arc<TaskProgress>) -> StepContext {
        StepContext {
            progress,
            ..self.clone()
        }
    }

    /// This context for one step (or shard) named `step`: its supervisor stops the tools once
    /// the engine's `step_timeout` has passed from now, with [`ProcessError::StepTimedOut`]
    /// (tool killed class) naming the step and the limit.
    pub fn for_step(&self, step: &str) -> StepContext {
        let deadline = self
            .engine
            .step_timeout
            .map(|limit| StepDeadline::starting_now(step, limit));
        StepContext {
            supervisor: self.supervisor.clone().with_step_deadline(deadline),
            ..self.clone()
        }
    }

    /// Checks `need` against the free scratch space (see [`SpaceWatch::preflight`]).
    ///
    /// # Errors
    /// [`Error::Scratch`] when short on a filesystem that does not grow.
    pub fn preflight(&self, need: &SpaceNeed) -> Result<(), Error> {
        self.space.preflight(need)?;
        Ok(())
    }

    /// `error`, or [`Error::ScratchFull`] around it when the step failed (a tool failed or was
    /// killed, an output failed verification, or biojob's own write of an output found the
    /// disk full) while the scratch filesystem is full: call it before removing the step's
    /// partial outputs, which hold the space.
    pub fn explain_failure(&self, error: Error) -> Error {
        let tool_side = matches!(
            error.exit_class(),
            ExitClass::ToolFailed | ExitClass::ToolKilled | ExitClass::OutputInvalid
        );
        let disk_full = match &error {
            Error::Io { source, .. }
            | Error::Storage(biojob_storage::StorageError::Io { source, .. }) => {
                biojob_scratch::is_disk_full(source)
            }
            _ => false,
        };
        if !tool_side && !disk_full {
            return error;
        }
        match self.space.full() {
            Some(full) => {
                tracing::warn!(%full, "the step failed with its scratch full");
                Error::ScratchFull {
                    full,
                    source: Box::new(error),
                }
            }
            None => error,
        }
    }

    /// Fails with [`ProcessError::Cancelled`] when the run was cancelled (SIGTERM, SIGINT) or
    /// with [`ProcessError::StepTimedOut`] when the step's time limit has passed, so that work
    /// biojob does itself between tools (staging, publishing) stops promptly. `what` names
    /// the work in the error.
    ///
    /// # Errors
    /// As above.
    pub fn check_stopped(&self, what: &str) -> Result<(), Error> {
        self.stopped(what).map_or(Ok(()), Err)
    }

    /// The error [`StepContext::check_stopped`] fails with, when the work must stop.
    pub fn stopped(&self, what: &str) -> Option<Error> {
        stop_error(self.supervisor.cancel_token(), &self.supervisor, what)
    }
}

fn stop_error(cancel: &CancelToken, supervisor: &Supervisor, what: &str) -> Option<Error> {
    let nothing = || {
        Box::new(PipelineReport {
            stages: Vec::new(),
            wall: Duration::ZERO,
        })
    };
    if let Some(reason) = cancel.reason() {
        return Some(Error::Process(ProcessError::Cancelled {
            label: what.to_owned(),
            reason,
            report: nothing(),
        }));
    }
    let deadline = supervisor.step_deadline()?;
    deadline.passed(Instant::now()).then(|| {
        Error::Process(ProcessError::StepTimedOut {
            step: deadline.step.clone(),
            limit: deadline.limit,
            label: what.to_owned(),
            report: nothing(),
        })
    })
}

/// Runs each tool's version probe.
///
/// # Errors
/// [`Error::Tool`] when a tool does not run or prints no version.
pub fn probe_tools(
    toolset: &Toolset,
    cancel: &CancelToken,
    log_dir: &Utf8Path,
) -> Result<ToolVersions, Error> {
    let supervisor = Supervisor::new(log_dir, cancel.clone());
    let mut versions = Vec::new();
    for tool in toolset.all() {
        let captured = supervisor
            .capture(tool.tool.version_probe(&tool.path))
            .map_err(|error| ToolError::NotFound {
                tool: tool.tool,
                detail: format!("{} did not run: {error}", tool.path),
            })?;
        let version = tool
            .tool
            .parse_version(&captured.stdout, &captured.stderr)
            .ok_or_else(|| ToolError::NoVersion {
                tool: tool.tool,
                path: tool.path.clone(),
                output: captured
                    .stdout
                    .chars()
                    .chain(captured.stderr.chars())
                    .take(200)
                    .collect(),
            })?;
        tracing::info!(tool = %tool.tool, path = %tool.path, version, "tool found");
        versions.push(version);
    }
    let mut versions = versions.into_iter();
    let mut next = || versions.next().unwrap_or_default();
    Ok(ToolVersions {
        bwa: next(),
        samtools: next(),
        bcftools: next(),
    })
}
