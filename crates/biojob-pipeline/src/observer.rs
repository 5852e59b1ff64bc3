//! Progress reporting: the executor tells an observer when tasks start and end.

use std::fmt;
use std::time::Duration;

use biojob_core::{SampleId, StepId};

use crate::{ProgressSnapshot, TaskShard};

/// The sample (and lane) of a cohort run that a task works for; a cohort's joint steps (call,
/// gather) and a single-sample run's tasks have none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CohortMember {
    /// The sample.
    pub sample: String,
    /// The lane, for a task of one lane.
    pub lane: Option<String>,
}

impl CohortMember {
    /// A task of `sample` as a whole.
    pub fn sample(sample: &SampleId) -> Self {
        CohortMember {
            sample: sample.to_string(),
            lane: None,
        }
    }

    /// A task of one lane of `sample`.
    pub fn lane(sample: &SampleId, lane: &str) -> Self {
        CohortMember {
            sample: sample.to_string(),
            lane: Some(lane.to_owned()),
        }
    }
}

/// `NA12878`, `NA12878 lane 3`.
impl fmt::Display for CohortMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.lane {
            Some(lane) => write!(f, "{} lane {lane}", self.sample),
            None => f.write_str(&self.sample),
        }
    }
}

/// A task of the run: a step, or one shard of a scattered step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskLabel {
    /// The step.
    pub step: StepId,
    /// The shard, for a scattered step.
    pub shard: Option<TaskShard>,
    /// The sample (and lane) of a cohort run's task.
    pub member: Option<CohortMember>,
}

impl TaskLabel {
    /// The same task, of `member` of a cohort.
    pub fn of(mut self, member: Option<CohortMember>) -> Self {
        self.member = member;
        self
    }
}

/// `align`, `call chr20`, `align chunk 0003`; in a cohort `merge NA12878`, `align NA12878
/// lane 3` (the unit's number across the sample is left out: every chunk of a split lane is
/// `align NA12878 lane 3`), `split NA12878 lane 3`.
impl fmt::Display for TaskLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.member, &self.shard) {
            (Some(member), Some(shard)) if member.lane.is_none() => {
                write!(f, "{} {member} {}", self.step, shard.label())
            }
            (Some(member), _) => write!(f, "{} {member}", self.step),
            (None, Some(shard)) => write!(f, "{} {}", self.step, shard.label()),
            (None, None) => write!(f, "{}", self.step),
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
    /// How often this observer wants a running task's progress; `None`: the engine's
    /// [`crate::Engine::progress_interval`].
    fn progress_interval(&self) -> Option<Duration> {
        None
    }
    /// How far a running task is (at each interval, once it has said what it counts).
    fn progress(&self, _task: &TaskLabel, _progress: &ProgressSnapshot) {}
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

    /// One line per interval: the figures as fields (`done`, `total`, `unit`, `pairs`,
    /// `fraction`, `pairs_per_second`, `eta_seconds`, `elapsed_seconds`), and as words.
    fn progress(&self, task: &TaskLabel, progress: &ProgressSnapshot) {
        tracing::info!(
            task = %task,
            unit = ?progress.unit,
            done = progress.done,
            total = progress.total,
            pairs = progress.pairs,
            fraction = progress.fraction(),
            pairs_per_second = progress.pairs_per_second(),
            eta_seconds = progress.eta().map(|eta| eta.as_secs_f64()),
            elapsed_seconds = progress.elapsed.as_secs_f64(),
            "progress: {}",
            progress.describe()
        );
    }
}
