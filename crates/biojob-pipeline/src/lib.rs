//! The germline workflow, FASTQ → BAM → VCF: its steps, defined once, and the two ways they
//! run — one step as an AWS Batch job ([`run_batch_job`]) and a whole sample locally
//! ([`run_workflow`]).
//!
//! Each step is a [`StepDefinition`]: one `plan` function gives the typed argv of every tool it
//! runs, its outputs and resources ([`StepPlan`]); the same plan runs, is hashed into the
//! cache key ([`CacheKeyMaterial::for_plan`]) and is printed by `--dry-run`
//! ([`render_run_plan`]). [`StepJob`] drives one step through its lifecycle (preflight, stage
//! in, key, reuse, run, verify, publish, record). The steps: prepare-reference
//! ([`prepare_reference`]), [`SplitStep`], [`AlignStep`], [`MergeStep`], [`CallStep`],
//! [`GatherStep`], [`QcStep`]. docs/steps.md tells how to add one.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use biojob_pipeline::WorkflowInput;
//!
//! let input = WorkflowInput::from_json(&std::fs::read_to_string("input.json")?)?;
//! println!("sample {}, output under {}", input.sample, input.output_prefix);
//! # Ok(())
//! # }
//! ```

mod batch;
mod cache;
mod cohort;
mod context;
mod cost;
mod dry_run;
pub mod env;
mod error;
mod input;
mod job;
mod lock;
mod manifest;
mod observer;
mod pipes;
mod plan;
mod progress;
mod publish;
mod reference;
mod report;
mod resources;
mod samplesheet;
mod scheduler;
mod space;
mod steps;

pub use batch::{
    BatchJob, BatchOutcome, check_split_lanes, check_split_sample, lane_split_manifests,
    run_batch_job, run_prefix, step_manifest_name,
};
pub use biojob_core::StepId;
pub use cache::{
    CacheKeyMaterial, EarlierTasks, RerunReason, ReusedOutput, STEP_FORMAT_VERSION,
    bwa_index_sha256, carry_forward, earlier_step_task, file_sha256, files_sha256,
    reference_sha256, reuse_outputs, try_reuse,
};
pub use cohort::{COHORT_STEM, cohort_stem, run_cohort, sample_bam, sample_dir};
pub use context::{Engine, StepContext, probe_tools};
pub use cost::{
    CostSummary, DEFAULT_PRICE_GIB_HOUR, DEFAULT_PRICE_VCPU_HOUR, Prices, StepUsage, Usage,
};
pub use dry_run::{render_cohort_plan, render_run_plan};
pub use error::Error;
pub use input::{
    CohortInput, InputScatter, JobEnvironment, MIN_CHUNK_PAIRS, PlannedSample,
    REFERENCE_EXTENSIONS, RunInput, WorkflowInput, check_chunk_pairs, contradicts_input,
    resolve_reference,
};
pub use job::{
    Earlier, Executed, InputDigest, JobInput, JobOutcome, JobOutput, JobTarget, KeyPolicy,
    Published, REFERENCE, ReferenceInput, ReferenceUse, StagedInputs, Staging, StepDefinition,
    StepJob, object_size, published_output, sibling,
};
pub use lock::{LEASE, LOCK_NAME, LockRecord, RENEW_EVERY, RunLock};
pub use manifest::{
    BamSliceRecord, CommandRecord, MANIFEST_FORMAT_VERSION, ManifestInputs, OutputRecord,
    RecordCounts, RunManifest, StepManifest, TaskRecord, TaskShard, TaskStatus, ToolRecord,
    error_chain, publish_json, seconds, timestamp,
};
pub use observer::{CohortMember, LogObserver, RunObserver, TaskLabel};
pub use pipes::input_pipe_path;
pub use plan::{
    KEY_RESOURCES, PlanContext, PlanPaths, PlannedCommand, PlannedFile, PlannedOutput,
    SCRATCH_PLACEHOLDER, StepPlan, partial, shell_words,
};
pub use progress::{ProgressProbe, ProgressSnapshot, ProgressUnit, TaskProgress};
pub use publish::{check_input, publish_file, publish_logs, stage_input};
pub use reference::{
    PreparedReference, ReferenceOptions, StaleIndex, bwa_index_mismatch, prepare_reference,
    reference_index_plan,
};
pub use report::{
    REPORT_FIGURES, REPORT_MAX_CONTIGS, html_escape, render_cohort_report, render_report,
};
pub use resources::{CpuQuota, Resources, parse_cpu_max, parse_memory_size};
pub use samplesheet::{
    SAMPLESHEET_COLUMNS, SAMPLESHEET_OPTIONAL_COLUMNS, SampleSheet, SheetLane, SheetSample,
    fastq_first_read_name, lane_read_group, read_group_of_lane, sample_read_groups,
};
pub use scheduler::{
    BALANCED_SHARD_MIN_BASES, RunOptions, RunOutcome, ScaleOptions, balanced_shard_bases,
    contig_plan, fastq_remedy, new_run_id, run_workflow, shard_plan,
};
pub use space::{
    SPOOL_PART_BYTES, ScratchSettings, SpaceWatchdog, align_space_need, call_space_need,
    estimated_bam_bytes, file_bytes, gather_space_need, merge_space_need, split_space_need,
    split_upload_space_need,
};
pub use steps::{
    AlignStep, BAI, BAM, BWA_BATCH_BASES, BamQc, CallStep, ContigQc, FASTQ_1, FASTQ_2,
    GatherInputs, GatherStep, MarkdupStats, MergeStep, QC_FORMAT_VERSION, QcFiles, QcRun, QcStep,
    QcSummary, REGION_PILEUP_PAD_BASES, ReadsQc, ReportStep, SampleVcfStep, ShardRequest,
    SplitLane, SplitStep, VCF, VariantsQc, chunk_bam_role, chunk_fastq_names, chunk_prefix,
    cohort_bai_role, cohort_bam_role, final_vcf_name, markdup_json_name, markdup_stats_name,
    order_for_gather, pileup_regions, qc_file_names, sample_qc_role, tbi_role, vcf_role,
};
