//! Watchdogs and step deadlines: conditions outside the children that the supervisor checks
//! while they run.

use std::fmt;
use std::time::{Duration, Instant};

use biojob_core::{Classify, ExitClass};

/// A condition the supervisor checks on every poll (every 1 to 100 ms) while children run,
/// e.g. the free space of the scratch filesystem.
///
/// Implementations must be cheap to call that often (rate-limit the real work inside, e.g. a
/// `statvfs(2)` every second) and safe to call from several supervisors at once: the steps of
/// a run share one watchdog.
pub trait Watchdog: Send + Sync + fmt::Debug {
    /// What the supervisor should do now.
    fn check(&self) -> WatchVerdict;
}

/// What a [`Watchdog`] asks of the supervisor.
#[derive(Debug)]
pub enum WatchVerdict {
    /// Let the children run; if they are paused, resume them (SIGCONT to each process group).
    Run,
    /// Pause the children (SIGSTOP to each process group) until a later check says
    /// [`Run`](WatchVerdict::Run). Time spent paused does not count against the per-tool
    /// timeout; it does count against a [`StepDeadline`].
    Pause,
    /// Stop the children (SIGTERM, the grace period, SIGKILL) and fail the run with
    /// [`ProcessError::Watchdog`](crate::ProcessError::Watchdog).
    Stop(WatchStop),
}

/// Why a [`Watchdog`] stopped a run: the error, with its exit class and remedy captured.
#[derive(Debug)]
pub struct WatchStop {
    /// The exit class of the failure.
    pub class: ExitClass,
    /// What the user can do about it.
    pub remedy: Option<String>,
    /// The failure itself.
    pub error: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl WatchStop {
    /// Captures `error`'s exit class and remedy.
    pub fn new<E>(error: E) -> Self
    where
        E: std::error::Error + Classify + Send + Sync + 'static,
    {
        WatchStop {
            class: error.exit_class(),
            remedy: error.remedy(),
            error: Box::new(error),
        }
    }
}

/// The time limit of a whole step (every command the step runs, and the time between them).
///
/// Unlike the per-run timeout of [`Supervisor::with_timeout`](crate::Supervisor::with_timeout),
/// it is a fixed point in time shared by the step's runs: a command started after it has
/// passed fails at once with [`ProcessError::StepTimedOut`](crate::ProcessError::StepTimedOut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDeadline {
    /// The step (`align`, `call chr20`), for messages.
    pub step: String,
    /// The limit as configured.
    pub limit: Duration,
    /// When the limit is reached.
    pub at: Instant,
}

impl StepDeadline {
    /// A deadline `limit` from now for `step`.
    pub fn starting_now(step: impl Into<String>, limit: Duration) -> Self {
        StepDeadline {
            step: step.into(),
            limit,
            at: Instant::now() + limit,
        }
    }

    /// Whether the deadline has passed at `now`.
    pub fn passed(&self, now: Instant) -> bool {
        now >= self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("scratch did not grow")]
    struct NeverGrew;

    impl Classify for NeverGrew {
        fn exit_class(&self) -> ExitClass {
            ExitClass::Scratch
        }
        fn remedy(&self) -> Option<String> {
            Some("use a larger disk".into())
        }
    }

    #[test]
    fn watch_stop_captures_class_and_remedy() {
        let stop = WatchStop::new(NeverGrew);
        assert_eq!(stop.class, ExitClass::Scratch);
        assert_eq!(stop.remedy.as_deref(), Some("use a larger disk"));
        assert_eq!(stop.error.to_string(), "scratch did not grow");
    }

    #[test]
    fn step_deadline_passes() {
        let deadline = StepDeadline::starting_now("align", Duration::from_secs(60));
        assert!(!deadline.passed(Instant::now()));
        assert!(deadline.passed(Instant::now() + Duration::from_secs(61)));
        assert_eq!(deadline.step, "align");
    }
}
