//! Progress bars per step and contig on a terminal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use biojob_pipeline::{ProgressSnapshot, RunObserver, TaskLabel};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One spinner per task, created when the run plans its tasks (or when a task starts first).
pub struct ProgressObserver {
    multi: MultiProgress,
    bars: Mutex<HashMap<TaskLabel, ProgressBar>>,
}

impl ProgressObserver {
    pub fn new(multi: MultiProgress) -> Self {
        ProgressObserver {
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, task: &TaskLabel) -> ProgressBar {
        let mut bars = match self.bars.lock() {
            Ok(bars) => bars,
            Err(poisoned) => poisoned.into_inner(),
        };
        bars.entry(task.clone())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {prefix:<22} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(task.to_string());
                bar.set_message("waiting");
                bar
            })
            .clone()
    }
}

impl RunObserver for ProgressObserver {
    fn planned(&self, tasks: &[TaskLabel]) {
        for task in tasks {
            self.bar(task);
        }
    }

    fn started(&self, task: &TaskLabel) {
        let bar = self.bar(task);
        bar.set_message("running");
        bar.enable_steady_tick(Duration::from_millis(120));
    }

    fn finished(&self, task: &TaskLabel, succeeded: bool, wall: Duration) {
        let bar = self.bar(task);
        let outcome = if succeeded { "done" } else { "FAILED" };
        bar.finish_with_message(format!("{outcome} in {:.1} s", wall.as_secs_f64()));
    }

    /// Every second: the figures of [`ProgressSnapshot::describe`] after `running`.
    fn progress_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    fn progress(&self, task: &TaskLabel, progress: &ProgressSnapshot) {
        self.bar(task)
            .set_message(format!("running: {}", progress.describe()));
    }

    fn reused(&self, task: &TaskLabel) {
        self.bar(task)
            .finish_with_message("reused from the earlier run");
    }
}
