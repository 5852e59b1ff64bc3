//! The manifests: what ran, with which tools and resources, and what it produced — one
//! [`TaskRecord`] per task, in a [`StepManifest`] (a Batch job's) or in a [`RunManifest`] (a
//! local run's `manifest.json`: the run's facts and its tasks). Written and read by the same
//! types, whether the task succeeded or failed.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use biojob_core::{Classify, ExitClass, Region, StepId};
use biojob_formats::{BamRecordCounts, BamStaging, StagedBam};
use biojob_process::StageReport;
use biojob_scratch::ScratchUsage;
use biojob_storage::{ObjectUri, Stores, TransferReport};
use biojob_tools::{ToolVersions, Toolset};
use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

use crate::{CostSummary, Error, Resources};

/// Version of the manifest's layout; bumped when a field changes meaning.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// One command a step ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Peak resident set size in bytes: `ru_maxrss` from `wait4(2)` (docs/manifest.md says
    /// what Linux folds into it for a small tool).
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
    /// What was read back of the published object before the step reported success: its size
    /// and the checksum S3 holds (`crc32c:BASE64`), or its size alone when S3 keeps no
    /// checksum; a local file's size and SHA-256; for an output reused from an earlier run,
    /// its size and SHA-256, checked before reuse. Empty in manifests written before biojob
    /// read outputs back.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verified: String,
}

impl OutputRecord {
    /// The record of `name` published to `uri`.
    pub fn new(name: impl Into<String>, uri: impl Into<String>, transfer: &TransferReport) -> Self {
        let uri = uri.into();
        let verified = match (&transfer.checksum, uri.starts_with("s3://")) {
            (Some(checksum), _) => format!("read back: {} bytes, {checksum}", transfer.bytes),
            (None, true) => format!(
                "read back: {} bytes (the store keeps no checksum)",
                transfer.bytes
            ),
            (None, false) => format!("read back: {} bytes, SHA-256", transfer.bytes),
        };
        OutputRecord {
            name: name.into(),
            uri,
            bytes: transfer.bytes,
            sha256: transfer.sha256.clone(),
            verified,
        }
    }
}

/// How a task staged a BAM held by an object store for its regions only
/// ([`biojob_formats::StoredBam::stage_regions`]; docs/staging.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BamSliceRecord {
    /// The stored BAM.
    pub uri: String,
    /// The regions asked for (a calling shard's pileup regions).
    pub regions: Vec<String>,
    /// `method`: `regions` (the blocks holding their records), or `whole` with the `reason`
    /// the stored index could not be used.
    #[serde(flatten)]
    pub staging: BamStaging,
    /// The stored BAM's size in bytes.
    pub object_bytes: u64,
    /// Bytes fetched in all: the BAM's byte ranges and its index.
    pub bytes_fetched: u64,
    /// Of those, the stored index's.
    pub index_bytes: u64,
    /// Byte ranges of the BAM fetched.
    pub ranges: usize,
}

impl BamSliceRecord {
    /// The record of `staged`, staged from `uri` for `regions`.
    pub fn new(uri: &ObjectUri, regions: &[Region], staged: &StagedBam) -> Self {
        BamSliceRecord {
            uri: uri.to_string(),
            regions: regions.iter().map(ToString::to_string).collect(),
            staging: staged.staging.clone(),
            object_bytes: staged.object_bytes,
            bytes_fetched: staged.bytes_fetched,
            index_bytes: staged.index_bytes,
            ranges: staged.ranges.len(),
        }
    }
}

/// The records that crossed a task's boundary, as the task counted them (docs/reliability.md:
/// record accounting). Kept in the task's record so that the step after it, or a resume,
/// checks its own counts against them without reading the files again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Read pairs biojob fed to the aligner (align), or wrote into a chunk (split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_pairs: Option<u64>,
    /// The records of the BAM the task wrote (align, merge), by kind: counted as the bytes
    /// went to the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bam: Option<BamRecordCounts>,
    /// The records of the VCF the task wrote (call, gather).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcf_records: Option<u64>,
}

impl RecordCounts {
    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        *self == RecordCounts::default()
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A run's status while it runs: its manifest is written as each task finishes, so a run
    /// that was killed leaves this status with the tasks it finished (a resume reuses them).
    Running,
}

impl TaskStatus {
    /// Succeeded or cached: the task's outputs exist.
    pub fn finished(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Cached)
    }
}

/// The shard of a scattered task: a calling shard (its contigs or regions) or an alignment
/// chunk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskShard {
    /// Its index: a calling shard's position in its scatter plan, or the chunk's number.
    pub index: usize,
    /// What a calling shard covers (`chr20`, `chr20:1-37500`, `chr22,chrM`); `None` for a
    /// chunk.
    pub contig: Option<String>,
}

impl TaskShard {
    /// A calling shard.
    pub fn region(index: usize, region: &str) -> Self {
        TaskShard {
            index,
            contig: Some(region.to_owned()),
        }
    }

    /// An alignment chunk.
    pub fn chunk(index: usize) -> Self {
        TaskShard {
            index,
            contig: None,
        }
    }

    /// What it covers, or `chunk 0003`.
    pub fn label(&self) -> String {
        match &self.contig {
            Some(contig) => contig.clone(),
            None => format!("chunk {:04}", self.index),
        }
    }
}

/// One task: a step, or one shard of a scattered step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The step.
    pub step: StepId,
    /// The shard index, for scattered steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<usize>,
    /// The contigs or region, for calling shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contig: Option<String>,
    /// The sample a task of a cohort run works for (none for the cohort's joint steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
    /// The lane, for a cohort's task of one lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// How it ended.
    pub status: TaskStatus,
    /// The exit class (`ok` when it succeeded).
    pub exit_class: ExitClass,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Start time in seconds since the Unix epoch, with millisecond precision (for timelines:
    /// `started_at` has whole seconds only).
    #[serde(default)]
    pub started_unix_seconds: f64,
    /// Wall time in seconds.
    #[serde(default)]
    pub wall_seconds: f64,
    /// User + system CPU seconds of the commands it ran.
    #[serde(default)]
    pub cpu_seconds: f64,
    /// The largest peak RSS of its commands, in bytes.
    #[serde(default)]
    pub peak_rss_bytes: u64,
    /// Each input's local path as the task's tools read it, by role (`fastq_1`, `reference`,
    /// `bam`, `vcf.0000`): what the placeholders of `--dry-run` and of the cache key stand for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// Bytes the task read from object stores: its reference and inputs, copied in or streamed
    /// (local files, read in place, count nothing; a BAM staged for its regions counts what
    /// was fetched).
    #[serde(default)]
    pub bytes_staged_in: u64,
    /// How each of the task's BAMs held by an object store was staged for its regions, in
    /// input order (a call task: one; a cohort's joint call: one per sample).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bam_slices: Vec<BamSliceRecord>,
    /// The commands, in the order they started.
    #[serde(default)]
    pub commands: Vec<CommandRecord>,
    /// The outputs it published (or, when cached, reused).
    #[serde(default)]
    pub outputs: Vec<OutputRecord>,
    /// The records it counted (or, when cached, that the reused task counted).
    #[serde(default, skip_serializing_if = "RecordCounts::is_empty")]
    pub records: RecordCounts,
    /// The cache key (`sha256:` and 64 hex digits) of a step that can be reused; see
    /// [`crate::CacheKeyMaterial`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// Why a resumed run ran this step instead of reusing it ([`crate::RerunReason`]); absent
    /// when the run did not resume or the step was reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_reason: Option<String>,
    /// Read pairs a cohort sample's lanes fed to the aligner, on the sample's merge task (kept
    /// when it is reused): the cohort's `read_pairs` is their sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_pairs: Option<u64>,
    /// The error chain, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TaskRecord {
    /// A record for a task that started at `started` and ran `commands`.
    pub fn new(
        step: StepId,
        shard: Option<TaskShard>,
        started: SystemTime,
        wall: Duration,
        commands: &[StageReport],
    ) -> Self {
        let commands: Vec<CommandRecord> = commands.iter().map(CommandRecord::from).collect();
        TaskRecord {
            step,
            shard: shard.as_ref().map(|shard| shard.index),
            contig: shard.and_then(|shard| shard.contig),
            sample: None,
            lane: None,
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
            inputs: BTreeMap::new(),
            bytes_staged_in: 0,
            bam_slices: Vec::new(),
            commands,
            outputs: Vec::new(),
            records: RecordCounts::default(),
            cache_key: None,
            rerun_reason: None,
            read_pairs: None,
            error: None,
        }
    }

    /// A task reused from an earlier run: status `cached`, no commands, `outputs` as checked.
    pub fn cached(
        step: StepId,
        shard: Option<TaskShard>,
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

    /// A task that was not run because another failed first or the run was stopped.
    pub fn skipped(step: StepId, shard: Option<TaskShard>) -> Self {
        TaskRecord {
            status: TaskStatus::Skipped,
            ..TaskRecord::new(step, shard, SystemTime::now(), Duration::ZERO, &[])
        }
    }

    /// Marks the task failed with `error`.
    pub fn failed(mut self, error: &Error) -> Self {
        self.status = TaskStatus::Failed;
        self.exit_class = error.exit_class();
        self.error = Some(error_chain(error));
        self
    }

    /// Whether it finished (succeeded or cached) with `key`: an entry a resume may reuse.
    pub fn finished_with(&self, key: &str) -> bool {
        self.status.finished() && self.cache_key.as_deref() == Some(key)
    }

    /// Whether it finished with a cache key: an entry worth carrying into a new manifest.
    pub fn reusable(&self) -> bool {
        self.status.finished() && self.cache_key.is_some()
    }

    /// `align`, `call chr20`, `align chunk 0003`: the task as the summary and logs name it
    /// (as [`crate::TaskLabel`] does: `merge NA12878`, `align NA12878 lane 3` in a cohort).
    pub fn label(&self) -> String {
        let shard = match (&self.contig, self.shard) {
            (Some(contig), _) => Some(TaskShard::region(self.shard.unwrap_or(0), contig)),
            (None, Some(index)) => Some(TaskShard::chunk(index)),
            (None, None) => None,
        };
        crate::TaskLabel::new(self.step, shard)
            .of(self.member())
            .to_string()
    }

    /// The sample (and lane) of a cohort run's task.
    pub fn member(&self) -> Option<crate::CohortMember> {
        self.sample.as_ref().map(|sample| crate::CohortMember {
            sample: sample.clone(),
            lane: self.lane.clone(),
        })
    }

    /// Records the task as `member`'s.
    pub fn of(mut self, member: Option<&crate::CohortMember>) -> Self {
        self.sample = member.map(|m| m.sample.clone());
        self.lane = member.and_then(|m| m.lane.clone());
        self
    }
}

/// A tool as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRecord {
    /// `bwa`, `samtools`, `bcftools`.
    pub tool: String,
    /// The program run.
    pub path: String,
    /// Its version.
    pub version: String,
}

impl ToolRecord {
    /// Every tool of `toolset` with its version.
    pub fn list(toolset: &Toolset, versions: &ToolVersions) -> Vec<ToolRecord> {
        toolset
            .all()
            .into_iter()
            .map(|tool| ToolRecord {
                tool: tool.tool.name().to_owned(),
                path: tool.path.to_string(),
                version: versions.of(tool.tool).to_owned(),
            })
            .collect()
    }
}

/// One step job's manifest, `<sample>.<step>[.<shard>].manifest.json` under the run prefix
/// (docs/batch-contract.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepManifest {
    /// [`MANIFEST_FORMAT_VERSION`].
    pub format_version: u32,
    /// biojob's version.
    pub biojob_version: String,
    /// The sample.
    pub sample: String,
    /// The resource budget used.
    pub resources: Resources,
    /// The tools and their versions.
    pub tools: Vec<ToolRecord>,
    /// Scratch use: peak bytes of the scratch directory, free space, waits for growth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<ScratchUsage>,
    /// The task.
    pub task: TaskRecord,
    /// The finished task of the manifest this one replaced, when this task did not finish:
    /// kept for a later resume, which checks its outputs before reusing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_task: Option<TaskRecord>,
    /// What the job held (its `resources` for the task's wall time) and staged, and its cost
    /// (docs/cost.md); the QC job's report sums those of an execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostSummary>,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Read pairs aligned (the align step's count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_pairs: Option<u64>,
    /// Every task, in workflow then reference order.
    pub tasks: Vec<TaskRecord>,
    /// Finished tasks of earlier runs written to the same place, as their manifests recorded
    /// them, for each step and shard that this run did not finish: a failed run keeps them for
    /// a later resume, which checks their outputs before reusing any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_tasks: Vec<TaskRecord>,
    /// The final VCF, when the run succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcf: Option<String>,
    /// Scratch use: peak bytes of the scratch directory, free space, waits for growth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<ScratchUsage>,
    /// What each step held and staged, and its cost (docs/cost.md): a local run holds
    /// `resources` while a step's tasks run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostSummary>,
}

impl Default for RunManifest {
    /// A run that has not started: no tasks, status `failed` until it finishes.
    fn default() -> Self {
        RunManifest {
            format_version: MANIFEST_FORMAT_VERSION,
            biojob_version: env!("CARGO_PKG_VERSION").to_owned(),
            run_id: String::new(),
            sample: String::new(),
            read_group: String::new(),
            inputs: ManifestInputs::default(),
            output_prefix: String::new(),
            resources: Resources {
                threads: 1,
                memory_bytes: 0,
            },
            tools: Vec::new(),
            started_at: String::new(),
            finished_at: String::new(),
            wall_seconds: 0.0,
            status: TaskStatus::Failed,
            exit_class: ExitClass::Ok,
            exit_code: 0,
            error: None,
            read_pairs: None,
            tasks: Vec::new(),
            earlier_tasks: Vec::new(),
            vcf: None,
            scratch: None,
            cost: None,
        }
    }
}

/// The run's inputs, as given or resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInputs {
    /// Read 1.
    pub fastq_1: String,
    /// Read 2.
    pub fastq_2: String,
    /// The reference FASTA.
    pub reference: String,
    /// The contigs called, in reference order.
    pub contigs: Vec<String>,
    /// A cohort run's sample sheet (its FASTQs are there; `fastq_1` and `fastq_2` are empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samplesheet: Option<String>,
}

/// Writes `manifest` as pretty JSON to `prefix/name` (through a local temporary file).
///
/// # Errors
/// [`Error::Io`] when the temporary file cannot be written; a storage error (output staging
/// class) when publishing fails.
pub fn publish_json(
    stores: &Stores,
    manifest: &impl Serialize,
    prefix: &ObjectUri,
    name: &str,
) -> Result<OutputRecord, Error> {
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::io("serialising", name)(std::io::Error::other(e)))?;
    let dir = tempfile::tempdir().map_err(Error::io("creating", "a temporary directory"))?;
    let path = Utf8PathBuf::from_path_buf(dir.path().join(name)).map_err(|p| {
        Error::io("writing", p.to_string_lossy().into_owned())(std::io::Error::other(
            "non-UTF-8 path",
        ))
    })?;
    std::fs::write(&path, json).map_err(Error::io("writing", &path))?;
    crate::publish_file(stores, &path, prefix)
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
