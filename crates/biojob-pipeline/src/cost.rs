//! What a run reserved and staged, per step, and what that costs at prices the user sets
//! (docs/cost.md): vCPU-hours and GiB-hours are the resources held for the time the step's
//! tasks ran, as AWS Batch bills an instance (not the CPU time the tools used).

use biojob_core::StepId;
use serde::{Deserialize, Serialize};

use crate::{Resources, TaskRecord};

/// Default price of one vCPU for one hour, in US dollars: `0.018`. Spot instances of the C, M
/// and R families (docs/cost.md): the On-Demand prices of c5.large, m5.large and r5.large in
/// us-east-1 ($0.085, $0.096, $0.126 an hour for 2 vCPUs and 4, 8, 16 GiB) fit $0.0357 per
/// vCPU-hour and $0.00342 per GiB-hour, at half that on Spot.
pub const DEFAULT_PRICE_VCPU_HOUR: f64 = 0.018;

/// Default price of one GiB of memory for one hour, in US dollars: `0.0017` (see
/// [`DEFAULT_PRICE_VCPU_HOUR`]).
pub const DEFAULT_PRICE_GIB_HOUR: f64 = 0.0017;

/// Prices of compute for an hour, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// One vCPU for one hour.
    pub vcpu_hour: f64,
    /// One GiB of memory for one hour.
    pub gib_hour: f64,
}

impl Default for Prices {
    /// [`DEFAULT_PRICE_VCPU_HOUR`] and [`DEFAULT_PRICE_GIB_HOUR`].
    fn default() -> Self {
        Prices {
            vcpu_hour: DEFAULT_PRICE_VCPU_HOUR,
            gib_hour: DEFAULT_PRICE_GIB_HOUR,
        }
    }
}

/// Resources held, bytes staged, and their cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// vCPUs held × hours.
    pub vcpu_hours: f64,
    /// GiB of memory held × hours.
    pub gib_hours: f64,
    /// Bytes read from object stores ([`TaskRecord::bytes_staged_in`]).
    pub bytes_staged_in: u64,
    /// `vcpu_hours × vcpu_hour + gib_hours × gib_hour`, in US dollars.
    pub cost: f64,
}

impl Usage {
    /// `resources` held for `seconds`, priced at `prices`, with `bytes_staged_in`.
    pub fn held(resources: Resources, seconds: f64, bytes_staged_in: u64, prices: Prices) -> Self {
        let hours = seconds.max(0.0) / 3600.0;
        let vcpu_hours = resources.threads as f64 * hours;
        let gib_hours = resources.memory_bytes as f64 / f64::from(1u32 << 30) * hours;
        Usage {
            vcpu_hours,
            gib_hours,
            bytes_staged_in,
            cost: vcpu_hours * prices.vcpu_hour + gib_hours * prices.gib_hour,
        }
    }

    fn add(&mut self, other: &Usage) {
        self.vcpu_hours += other.vcpu_hours;
        self.gib_hours += other.gib_hours;
        self.bytes_staged_in += other.bytes_staged_in;
        self.cost += other.cost;
    }
}

/// One step's tasks (all shards or chunks of it) and their [`Usage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepUsage {
    /// The step.
    pub step: StepId,
    /// Its tasks counted.
    pub tasks: usize,
    /// What they held and staged.
    #[serde(flatten)]
    pub usage: Usage,
}

/// A run's (or one job's) usage per step and in total, at `prices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    /// The prices used.
    pub prices: Prices,
    /// Per step, in the order the steps first appear.
    pub steps: Vec<StepUsage>,
    /// The sum of the steps.
    pub total: Usage,
}

impl CostSummary {
    /// Nothing yet, at `prices`.
    pub fn new(prices: Prices) -> Self {
        CostSummary {
            prices,
            steps: Vec::new(),
            total: Usage::default(),
        }
    }

    /// One Batch job: `task` held `resources` (its vCPUs and memory) for its wall time.
    pub fn for_job(task: &TaskRecord, resources: Resources, prices: Prices) -> Self {
        let mut summary = CostSummary::new(prices);
        summary.add(StepUsage {
            step: task.step,
            tasks: 1,
            usage: Usage::held(resources, task.wall_seconds, task.bytes_staged_in, prices),
        });
        summary
    }

    /// A local run on one machine holding `resources` throughout: a step holds the machine
    /// while any of its tasks runs (the union of their intervals: shards in parallel count
    /// once), and stages what its tasks staged. Time between tasks is not counted.
    pub fn for_run(tasks: &[TaskRecord], resources: Resources, prices: Prices) -> Self {
        let mut summary = CostSummary::new(prices);
        let mut steps: Vec<StepId> = Vec::new();
        for task in tasks {
            if !steps.contains(&task.step) {
                steps.push(task.step);
            }
        }
        for step in steps {
            let of_step: Vec<&TaskRecord> = tasks.iter().filter(|t| t.step == step).collect();
            let intervals = of_step
                .iter()
                .map(|t| {
                    (
                        t.started_unix_seconds,
                        t.started_unix_seconds + t.wall_seconds,
                    )
                })
                .collect();
            let bytes = of_step.iter().map(|t| t.bytes_staged_in).sum();
            summary.add(StepUsage {
                step,
                tasks: of_step.len(),
                usage: Usage::held(resources, union_seconds(intervals), bytes, prices),
            });
        }
        summary
    }

    /// Adds `step`'s usage: to its row when the step has one, else as a new row.
    pub fn add(&mut self, step: StepUsage) {
        self.total.add(&step.usage);
        match self.steps.iter_mut().find(|row| row.step == step.step) {
            Some(row) => {
                row.tasks += step.tasks;
                row.usage.add(&step.usage);
            }
            None => self.steps.push(step),
        }
    }

    /// Adds every step of `other` (another job's summary), whatever its prices were.
    pub fn merge(&mut self, other: &CostSummary) {
        for step in &other.steps {
            self.add(step.clone());
        }
    }
}

/// The seconds covered by the union of `[start, end)` intervals.
fn union_seconds(mut intervals: Vec<(f64, f64)>) -> f64 {
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut covered = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in intervals {
        current = match current {
            Some((from, to)) if start <= to => Some((from, to.max(end))),
            Some((from, to)) => {
                covered += to - from;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((from, to)) = current {
        covered += to - from;
    }
    covered
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::TaskShard;

    fn task(step: StepId, shard: Option<usize>, start: f64, wall: f64, bytes: u64) -> TaskRecord {
        TaskRecord {
            started_unix_seconds: start,
            wall_seconds: wall,
            bytes_staged_in: bytes,
            ..TaskRecord::new(
                step,
                shard.map(|index| TaskShard::region(index, "chr20")),
                SystemTime::UNIX_EPOCH,
                Duration::ZERO,
                &[],
            )
        }
    }

    const PRICES: Prices = Prices {
        vcpu_hour: 0.04,
        gib_hour: 0.005,
    };

    #[test]
    fn a_job_holds_its_vcpus_and_memory_for_its_wall_time() {
        // 8 vCPUs and 16 GiB for 45 minutes: 6 vCPU-hours, 12 GiB-hours,
        // 6 × 0.04 + 12 × 0.005 = $0.30.
        let resources = Resources {
            threads: 8,
            memory_bytes: 16 << 30,
        };
        let summary = CostSummary::for_job(
            &task(StepId::Align, None, 100.0, 2_700.0, 7_000),
            resources,
            PRICES,
        );
        assert_eq!(
            summary.steps,
            [StepUsage {
                step: StepId::Align,
                tasks: 1,
                usage: Usage {
                    vcpu_hours: 6.0,
                    gib_hours: 12.0,
                    bytes_staged_in: 7_000,
                    cost: 0.3,
                },
            }]
        );
        assert_eq!(summary.total, summary.steps[0].usage);
    }

    #[test]
    fn a_local_run_holds_the_machine_while_a_step_runs_shards_in_parallel_counted_once() {
        // 2 vCPUs and 4 GiB. Align 0–1,800 s; three call shards 1,800–4,500, 1,800–3,000 and
        // 4,500–5,400 (4,800 s of tasks in one hour of calling: 1,800–5,400); gather
        // 5,400–5,436.
        let resources = Resources {
            threads: 2,
            memory_bytes: 4 << 30,
        };
        let tasks = [
            task(StepId::Align, None, 0.0, 1_800.0, 100),
            task(StepId::Call, Some(0), 1_800.0, 2_700.0, 10),
            task(StepId::Call, Some(1), 1_800.0, 1_200.0, 20),
            task(StepId::Call, Some(2), 4_500.0, 900.0, 30),
            task(StepId::Gather, None, 5_400.0, 36.0, 0),
        ];
        let summary = CostSummary::for_run(&tasks, resources, PRICES);
        let row = |step: StepId| summary.steps.iter().find(|r| r.step == step).unwrap();
        // Align: half an hour: 1 vCPU-hour, 2 GiB-hours, 0.04 + 0.01 = $0.05.
        assert_eq!(row(StepId::Align).usage.vcpu_hours, 1.0);
        assert_eq!(row(StepId::Align).usage.gib_hours, 2.0);
        assert!((row(StepId::Align).usage.cost - 0.05).abs() < 1e-12);
        // Call: three tasks over one hour: 2 vCPU-hours, 4 GiB-hours, $0.10, 60 bytes.
        assert_eq!(row(StepId::Call).tasks, 3);
        assert_eq!(row(StepId::Call).usage.vcpu_hours, 2.0);
        assert_eq!(row(StepId::Call).usage.gib_hours, 4.0);
        assert!((row(StepId::Call).usage.cost - 0.1).abs() < 1e-12);
        assert_eq!(row(StepId::Call).usage.bytes_staged_in, 60);
        // Gather: 36 s = 0.01 h: 0.02 vCPU-hours, 0.04 GiB-hours, $0.001.
        assert!((row(StepId::Gather).usage.vcpu_hours - 0.02).abs() < 1e-12);
        assert!((row(StepId::Gather).usage.gib_hours - 0.04).abs() < 1e-12);
        // Total: 1.51 hours of the machine: 3.02 vCPU-hours, 6.04 GiB-hours, $0.151.
        assert_eq!(
            summary.steps.iter().map(|r| r.step).collect::<Vec<_>>(),
            [StepId::Align, StepId::Call, StepId::Gather]
        );
        assert!((summary.total.vcpu_hours - 3.02).abs() < 1e-12);
        assert!((summary.total.gib_hours - 6.04).abs() < 1e-12);
        assert!((summary.total.cost - 0.151).abs() < 1e-12);
        assert_eq!(summary.total.bytes_staged_in, 160);
    }

    #[test]
    fn job_summaries_merge_by_step() {
        // Two call jobs of 4 vCPUs and 8 GiB for 30 minutes each, and a gather job of 1 vCPU
        // and 2 GiB for 6 minutes.
        let call = Resources {
            threads: 4,
            memory_bytes: 8 << 30,
        };
        let gather = Resources {
            threads: 1,
            memory_bytes: 2 << 30,
        };
        let mut summary = CostSummary::new(PRICES);
        for (index, bytes) in [(0, 1_000), (1, 2_000)] {
            summary.merge(&CostSummary::for_job(
                &task(StepId::Call, Some(index), 0.0, 1_800.0, bytes),
                call,
                PRICES,
            ));
        }
        summary.merge(&CostSummary::for_job(
            &task(StepId::Gather, None, 1_800.0, 360.0, 500),
            gather,
            PRICES,
        ));
        assert_eq!(summary.steps.len(), 2);
        // Calls: 2 × (2 vCPU-hours, 4 GiB-hours) = 4 and 8: 0.16 + 0.04 = $0.20.
        let calls = &summary.steps[0];
        assert_eq!((calls.step, calls.tasks), (StepId::Call, 2));
        assert_eq!(calls.usage.vcpu_hours, 4.0);
        assert_eq!(calls.usage.gib_hours, 8.0);
        assert!((calls.usage.cost - 0.2).abs() < 1e-12);
        assert_eq!(calls.usage.bytes_staged_in, 3_000);
        // Gather: 0.1 vCPU-hours, 0.2 GiB-hours: 0.004 + 0.001 = $0.005.
        assert!((summary.steps[1].usage.cost - 0.005).abs() < 1e-12);
        assert!((summary.total.cost - 0.205).abs() < 1e-12);
        assert_eq!(summary.total.bytes_staged_in, 3_500);
    }

    #[test]
    fn the_union_of_intervals_counts_overlaps_once() {
        assert_eq!(union_seconds(vec![]), 0.0);
        assert_eq!(union_seconds(vec![(5.0, 7.0), (0.0, 2.0), (1.0, 3.0)]), 5.0);
        assert_eq!(union_seconds(vec![(0.0, 10.0), (2.0, 3.0)]), 10.0);
    }

    #[test]
    fn the_default_prices_are_half_the_on_demand_fit() {
        // c5.large, r5.large: 2 vCPUs with 4 and 16 GiB at $0.085 and $0.126 an hour.
        let gib = (0.126 - 0.085) / 12.0;
        let vcpu = (0.085 - 4.0 * gib) / 2.0;
        assert!(
            (DEFAULT_PRICE_VCPU_HOUR - vcpu / 2.0).abs() < 0.0005,
            "{vcpu}"
        );
        assert!((DEFAULT_PRICE_GIB_HOUR - gib / 2.0).abs() < 0.0001, "{gib}");
    }
}
