//! Progress reporting: the executor tells an observer when tasks start and end.

use std::fmt;
use std::time::Duration;

use biojob_core::StepId;

use crate::TaskShard;

/// A task of the run: a step, or one shard of a scattered step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskLabel {
    /// The step.
    pub step: StepId,
    /// The shard, for a scattered step.
    pub shard: Option<TaskShard>,
}

/// `align`, `call chr20`, `align chunk 0003`.
impl fmt::Display for TaskLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shard {
            Some(shard) => write!(f, "{} {}", self.step, shard.label()),
            None => write!(f, "{}", self.step),
        }
    }
}

/// Receives progress events. Called from worker threads; implementations must be cheap.
pub trait RunObserver: Send + Sync {
    /// The run knows its tasks (called once, before any starts).
    fn planned(&self, _tasks: &[TaskLabel]) {}
    /// A task started.
    fn started(&self, _task: &TaskLabel) {}
    /// A task ended, successfully or not, after `wall`.
    fn finished(&self, _task: &TaskLabel, _succeeded: bool, _wall: Duration) {}
    /// A task was not run: an earlier run's finished task with the same cache key is reused.
    fn reused(&self, _task: &TaskLabel) {}
}

/// An observer that only logs (for non-terminal output and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogObserver;

impl RunObserver for LogObserver {
    fn started(&self, task: &TaskLabel) {
        tracing::info!(task = %task, "started");
    }

    fn finished(&self, task: &TaskLabel, succeeded: bool, wall: Duration) {
        if succeeded {
            tracing::info!(task = %task, wall_seconds = wall.as_secs_f64(), "finished");
        } else {
            tracing::warn!(task = %task, wall_seconds = wall.as_secs_f64(), "failed");
        }
    }

    fn reused(&self, task: &TaskLabel) {
        tracing::info!(task = %task, "reused from the earlier run");
    }
}
