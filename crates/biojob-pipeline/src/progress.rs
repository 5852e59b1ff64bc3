//! How far a running task is: counters its step updates as it goes ([`TaskProgress`]), read
//! at a fixed interval and handed to the run's observer as a [`ProgressSnapshot`] (a bar on a
//! terminal, a log line in JSON logs).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// What a task's progress counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressUnit {
    /// Bytes of the input read, of their size on disk (the FASTQ pair's compressed bytes: a
    /// local file's size, or the S3 object's, staged whole before the step runs).
    InputBytes,
    /// Reference bases of the calling shard behind the last record written.
    Bases,
}

/// Reads how far a step is when asked: `(done, pairs)` — how much of the total is done, and
/// the read pairs handed to the aligner when the step counts them.
pub type ProgressProbe = Box<dyn Fn() -> (u64, Option<u64>) + Send + Sync>;

/// The progress of one running task: what it counts, the total, and a probe that reads how
/// far it is (from the step's own counters), set once by the step
/// ([`TaskProgress::start`]); the ticker reads it ([`TaskProgress::snapshot`]).
#[derive(Default)]
pub struct TaskProgress {
    counted: Mutex<Option<(ProgressUnit, u64, ProgressProbe)>>,
}

impl std::fmt::Debug for TaskProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let started = self.counted.lock().map(|c| c.is_some()).unwrap_or(false);
        f.debug_struct("TaskProgress")
            .field("started", &started)
            .finish()
    }
}

impl TaskProgress {
    /// The task counts `unit`, of which there are `total` (0: unknown), and `probe` reads how
    /// far it is.
    pub fn start(&self, unit: ProgressUnit, total: u64, probe: ProgressProbe) {
        if let Ok(mut counted) = self.counted.lock() {
            *counted = Some((unit, total, probe));
        }
    }

    /// How far the task is now, `elapsed` after the step started; `None` before the step
    /// said what it counts.
    pub fn snapshot(&self, elapsed: Duration) -> Option<ProgressSnapshot> {
        let counted = self.counted.lock().ok()?;
        let (unit, total, probe) = counted.as_ref()?;
        let (done, pairs) = probe();
        Some(ProgressSnapshot {
            unit: *unit,
            done,
            total: *total,
            pairs,
            elapsed,
        })
    }
}

/// How far a task was at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressSnapshot {
    /// What `done` and `total` count.
    pub unit: ProgressUnit,
    /// How much is done.
    pub done: u64,
    /// How much there is (0: unknown).
    pub total: u64,
    /// Read pairs handed to the aligner (align only).
    pub pairs: Option<u64>,
    /// Time since the step started.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

impl ProgressSnapshot {
    /// The share done, from 0 to 1; `None` when the total is unknown.
    pub fn fraction(&self) -> Option<f64> {
        (self.total > 0).then(|| self.done.min(self.total) as f64 / self.total as f64)
    }

    /// Pairs per second since the start; `None` without pairs or time.
    pub fn pairs_per_second(&self) -> Option<f64> {
        let seconds = self.elapsed.as_secs_f64();
        self.pairs
            .filter(|_| seconds > 0.0)
            .map(|pairs| pairs as f64 / seconds)
    }

    /// The time left if the rest goes at the pace so far: `elapsed × (1 − f) / f` for the
    /// share done `f`; `None` before anything is done.
    pub fn eta(&self) -> Option<Duration> {
        let fraction = self.fraction().filter(|f| *f > 0.0)?;
        Some(self.elapsed.mul_f64((1.0 - fraction) / fraction))
    }

    /// One line for a person: `41,235 pairs · 12.5% of the input read · 1,203 pairs/s · about
    /// 4m 48s left`, or `37.5% of 300,000 bases · about 12s left`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(pairs) = self.pairs {
            parts.push(format!("{} pairs", thousands(pairs)));
        }
        match (self.unit, self.fraction()) {
            (ProgressUnit::InputBytes, Some(fraction)) => {
                parts.push(format!("{:.1}% of the input read", fraction * 100.0));
            }
            (ProgressUnit::Bases, Some(fraction)) => parts.push(format!(
                "{:.1}% of {} bases",
                fraction * 100.0,
                thousands(self.total)
            )),
            (_, None) => {}
        }
        if let Some(rate) = self.pairs_per_second() {
            parts.push(format!("{} pairs/s", thousands(rate.round() as u64)));
        }
        if let Some(eta) = self.eta() {
            parts.push(format!("about {} left", short_duration(eta)));
        }
        parts.join(" · ")
    }
}

/// `1234567` as `1,234,567`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A duration to the second, in its two largest units: `2h 05m`, `4m 48s`, `12s`.
fn short_duration(duration: Duration) -> String {
    let total = duration.as_secs_f64().round() as u64;
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    let mut out = String::new();
    if hours > 0 {
        let _ = write!(out, "{hours}h {minutes:02}m");
    } else if minutes > 0 {
        let _ = write!(out, "{minutes}m {seconds:02}s");
    } else {
        let _ = write!(out, "{seconds}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A probe reading `done` and `pairs`.
    fn probe(done: &Arc<AtomicU64>, pairs: Option<u64>) -> ProgressProbe {
        let done = Arc::clone(done);
        Box::new(move || (done.load(Ordering::Relaxed), pairs))
    }

    #[test]
    fn nothing_is_reported_before_the_step_says_what_it_counts() {
        assert_eq!(
            TaskProgress::default().snapshot(Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn an_alignment_reports_pairs_share_rate_and_time_left() {
        let progress = TaskProgress::default();
        let done = Arc::new(AtomicU64::new(1_000_000));
        progress.start(
            ProgressUnit::InputBytes,
            8_000_000,
            probe(&done, Some(41_235)),
        );
        let snapshot = progress.snapshot(Duration::from_secs(30)).unwrap();
        assert_eq!(snapshot.fraction(), Some(0.125));
        assert_eq!(snapshot.eta(), Some(Duration::from_secs(210)));
        assert_eq!(snapshot.pairs_per_second(), Some(1374.5));
        assert_eq!(
            snapshot.describe(),
            "41,235 pairs · 12.5% of the input read · 1,375 pairs/s · about 3m 30s left"
        );
        assert_eq!(
            serde_json::to_value(&snapshot).unwrap(),
            serde_json::json!({"unit": "input_bytes", "done": 1_000_000, "total": 8_000_000,
                "pairs": 41_235, "elapsed": 30.0})
        );
    }

    #[test]
    fn a_shard_reports_its_share_of_bases() {
        let progress = TaskProgress::default();
        let done = Arc::new(AtomicU64::new(0));
        progress.start(ProgressUnit::Bases, 300_000, probe(&done, None));
        let at = |seconds| progress.snapshot(Duration::from_secs(seconds)).unwrap();
        assert_eq!(at(3).describe(), "0.0% of 300,000 bases");
        done.store(112_500, Ordering::Relaxed);
        assert_eq!(at(3).describe(), "37.5% of 300,000 bases · about 5s left");
        // More done than the total (a last record past the shard's end) counts as all.
        done.store(400_000, Ordering::Relaxed);
        assert_eq!(at(9).fraction(), Some(1.0));
    }

    #[test]
    fn durations_and_counts_read_well() {
        assert_eq!(short_duration(Duration::from_secs(7500)), "2h 05m");
        assert_eq!(short_duration(Duration::from_secs(288)), "4m 48s");
        assert_eq!(short_duration(Duration::from_millis(11_600)), "12s");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
