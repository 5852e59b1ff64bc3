//! The run manifest: what ran, with which tools and resources, and what it produced.
//!
//! Written as `manifest.json` beside a run's outputs, whether the run succeeded or failed.

use std::time::{Duration, SystemTime};

use biojob_core::{Classify, ExitClass, StepId};
use biojob_process::StageReport;
use biojob_scratch::ScratchUsage;
use biojob_storage::TransferReport;
use serde::{Deserialize, Serialize};

use crate::{Error, Resources};

/// Version of the manifest's layout; bumped when a field changes meaning.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// One command a step ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandRecord {
    /// The label (`bwa-mem`, `bcftools-call.chr20`).
    pub label: String,
    /// Program and arguments, exactly as run.
    pub argv: Vec<String>,
    /// `exited 0`, `exited 1`, `killed by SIGKILL`, …
    pub exit: String,
    /// Wall time in seconds.
    pub wall_seconds: f64,
    /// User CPU time in seconds.
    pub user_cpu_seconds: f64,
    /// System CPU time in seconds.
    pub system_cpu_seconds: f64,
    /// Peak resident set size in bytes: `ru_maxrss` from `wait4(2)`. Linux folds the memory
    /// map the child replaced at `exec` into this figure (`exec_mmap` keeps its high-water
    /// mark), and a spawned child starts out sharing biojob's, so a tool smaller than biojob
    /// reads as biojob's own resident set at that moment (tens of MiB) rather than its own.
    pub max_rss_bytes: u64,
    /// The stderr log file, relative to the run's `logs/`.
    pub stderr_log: String,
}

impl From<&StageReport> for CommandRecord {
    fn from(report: &StageReport) -> Self {
        CommandRecord {
            label: report.label.clone(),
            argv: report.argv.clone(),
            exit: report.status.to_string(),
            wall_seconds: seconds(report.wall),
            user_cpu_seconds: seconds(report.user_cpu),
            system_cpu_seconds: seconds(report.system_cpu),
            max_rss_bytes: report.max_rss_bytes,
            stderr_log: report.stderr_log.file_name().unwrap_or_default().to_owned(),
        }
    }
}

/// One published output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// The file name.
    pub name: String,
    /// Where it was published.
    pub uri: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

impl OutputRecord {
    /// The record of `name` published to `uri`.
    pub fn new(name: impl Into<String>, uri: impl Into<String>, transfer: &TransferReport) -> Self {
        OutputRecord {
            name: name.into(),
            uri: uri.into(),
            bytes: transfer.bytes,
            sha256: transfer.sha256.clone(),
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Finished and published its outputs.
    Succeeded,
    /// Failed; see `error`.
    Failed,
    /// Not run because another task failed first or the run was stopped.
    Skipped,
    /// Not run: an earlier run's finished task with the same cache key is reused, its outputs
    /// checked (see the `cache` module).
    Cached,
}

/// One step, or one shard of a scattered step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRecord {
    /// The step.
    pub step: StepId,
    /// The shard index, for scattered steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<usize>,
    /// The contig, for scattered steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contig: Option<String>,
    /// How it ended.
    pub status: TaskStatus,
    /// The exit class (`ok` when it succeeded).
    pub exit_class: ExitClass,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Start time in seconds since the Unix epoch, with millisecond precision (for timelines:
    /// `started_at` has whole seconds only).
    pub started_unix_seconds: f64,
    /// Wall time in seconds.
    pub wall_seconds: f64,
    /// User + system CPU seconds of the commands it ran.
    pub cpu_seconds: f64,
    /// The largest peak RSS of its commands, in bytes (see [`CommandRecord::max_rss_bytes`]
    /// for what it includes).
    pub peak_rss_bytes: u64,
    /// The commands, in the order they started.
    pub commands: Vec<CommandRecord>,
    /// The outputs it published (or, when cached, reused).
    pub outputs: Vec<OutputRecord>,
    /// The cache key (`sha256:` and 64 hex digits) of a step that can be reused; see
    /// [`crate::CacheKeyMaterial`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// Why a resumed run ran this step instead of reusing it ([`crate::RerunReason`]); absent
    /// when the run did not resume or the step was reused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_reason: Option<String>,
    /// The error chain, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TaskRecord {
    /// A record for a task that started at `started` and ran `commands`.
    pub fn new(
        step: StepId,
        shard: Option<(usize, &str)>,
        started: SystemTime,
        wall: Duration,
        commands: &[StageReport],
    ) -> Self {
        let commands: Vec<CommandRecord> = commands.iter().map(CommandRecord::from).collect();
        TaskRecord {
            step,
            shard: shard.map(|(index, _)| index),
            contig: shard.map(|(_, contig)| contig.to_owned()),
            status: TaskStatus::Succeeded,
            exit_class: ExitClass::Ok,
            started_at: timestamp(started),
            started_unix_seconds: started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, seconds),
            wall_seconds: seconds(wall),
            // A fold from +0.0: `f64`'s `Sum` starts at -0.0, which prints as "-0.00".
            cpu_seconds: commands.iter().fold(0.0, |sum, c| {
                sum + c.user_cpu_seconds + c.system_cpu_seconds
            }),
            peak_rss_bytes: commands.iter().map(|c| c.max_rss_bytes).max().unwrap_or(0),
            commands,
            outputs: Vec::new(),
            cache_key: None,
            rerun_reason: None,
            error: None,
        }
    }

    /// A task reused from an earlier run: status `cached`, no commands, `outputs` as checked.
    pub fn cached(
        step: StepId,
        shard: Option<(usize, &str)>,
        started: SystemTime,
        wall: Duration,
        cache_key: String,
        outputs: Vec<OutputRecord>,
    ) -> Self {
        TaskRecord {
            status: TaskStatus::Cached,
            outputs,
            cache_key: Some(cache_key),
            ..TaskRecord::new(step, shard, started, wall, &[])
        }
    }

    /// Marks the task failed with `error`.
    pub fn failed(mut self, error: &Error) -> Self {
        self.status = TaskStatus::Failed;
        self.exit_class = error.exit_class();
        self.error = Some(error_chain(error));
        self
    }
}

/// A tool as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolRecord {
    /// `bwa`, `samtools`, `bcftools`.
    pub tool: String,
    /// The program run.
    pub path: String,
    /// Its version.
    pub version: String,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunManifest {
    /// [`MANIFEST_FORMAT_VERSION`].
    pub format_version: u32,
    /// biojob's version.
    pub biojob_version: String,
    /// The run id (the last part of the output prefix).
    pub run_id: String,
    /// The sample.
    pub sample: String,
    /// The `@RG` header line written to the BAM.
    pub read_group: String,
    /// The inputs, as URIs.
    pub inputs: ManifestInputs,
    /// Where outputs were published.
    pub output_prefix: String,
    /// The resource budget used.
    pub resources: Resources,
    /// The tools and their versions.
    pub tools: Vec<ToolRecord>,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// End time, RFC 3339 UTC.
    pub finished_at: String,
    /// Wall time in seconds.
    pub wall_seconds: f64,
    /// `succeeded` or `failed`.
    pub status: TaskStatus,
    /// The exit class of the run.
    pub exit_class: ExitClass,
    /// The process exit code.
    pub exit_code: u8,
    /// The error chain, when the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// FASTQ counts from the align step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_pairs: Option<u64>,
    /// Every task, in workflow then reference order.
    pub tasks: Vec<TaskRecord>,
    /// Finished tasks (`succeeded` or `cached`) of earlier runs written to the same place, as
    /// their manifests recorded them, for each step and shard that this run did not finish (it
    /// failed, was skipped or did not get that far): a failed run thus keeps them for a later
    /// resume, which checks their outputs before reusing any. Absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier_tasks: Vec<serde_json::Value>,
    /// The final VCF, when the run succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcf: Option<String>,
    /// Scratch use: peak bytes of the scratch directory, free space, waits for growth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch: Option<ScratchUsage>,
}

/// The run's inputs, as given or resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestInputs {
    /// Read 1.
    pub fastq_1: String,
    /// Read 2.
    pub fastq_2: String,
    /// The reference FASTA.
    pub reference: String,
    /// The contigs called, in reference order.
    pub contigs: Vec<String>,
}

/// `error` and its sources joined with `: `, one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Seconds as a float with millisecond precision.
pub fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

/// RFC 3339 UTC with seconds precision.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_without_commands_used_zero_cpu_not_minus_zero() {
        let record = TaskRecord::new(
            StepId::PrepareReference,
            None,
            SystemTime::UNIX_EPOCH,
            Duration::ZERO,
            &[],
        );
        assert_eq!(format!("{:.2}", record.cpu_seconds), "0.00");
        assert_eq!(record.peak_rss_bytes, 0);
    }
}
