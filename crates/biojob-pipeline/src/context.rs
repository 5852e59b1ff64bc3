//! What every step runs with.

use std::time::{Duration, Instant};

use biojob_core::{Classify, ExitClass};
use biojob_process::{CancelToken, PipelineReport, ProcessError, StepDeadline, Supervisor};
use biojob_scratch::{SpaceNeed, SpaceWatch};
use biojob_tools::{ToolVersions, Toolset};

use crate::{Error, Resources};

/// The tools, the supervisor that runs them, the job's resource budget and its scratch watch.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The resolved tools.
    pub toolset: Toolset,
    /// Their versions, as probed.
    pub versions: ToolVersions,
    /// Runs the tools (logs, cancellation, timeouts, the scratch watchdog).
    pub supervisor: Supervisor,
    /// CPU and memory budget.
    pub resources: Resources,
    /// The free space of the job's scratch directory: each step's preflight, peak use.
    pub space: SpaceWatch,
    /// The time limit of each step (every command it runs and the time between them), if any.
    pub step_timeout: Option<Duration>,
    /// Whether the align step checks the FASTQs as it feeds them to bwa (the default). Off is
    /// a benchmark switch only (`benches/align-validation.sh` measures the check's cost): bwa
    /// then reads the files itself and aligns a truncated or out-of-sync pair as far as it gets.
    pub validate_fastq: bool,
}

impl StepContext {
    /// This context for one step (or shard) named `step`: its supervisor stops the tools once
    /// [`step_timeout`](Self::step_timeout) has passed from now, with
    /// [`ProcessError::StepTimedOut`] (tool killed class) naming the step and the limit.
    pub fn for_step(&self, step: &str) -> StepContext {
        let deadline = self
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
    /// killed, or an output failed verification) while the scratch filesystem is full: call
    /// it before removing the step's partial outputs, which hold the space.
    pub fn explain_failure(&self, error: Error) -> Error {
        let tool_side = matches!(
            error.exit_class(),
            ExitClass::ToolFailed | ExitClass::ToolKilled | ExitClass::OutputInvalid
        );
        if !tool_side {
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
        stop_error(self.supervisor.cancel_token(), &self.supervisor, what).map_or(Ok(()), Err)
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
