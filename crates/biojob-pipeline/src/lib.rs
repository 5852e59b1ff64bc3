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
mod context;
mod dry_run;
pub mod env;
mod error;
mod input;
mod job;
mod lock;
mod manifest;
mod observer;
mod plan;
mod publish;
mod reference;
mod report;
mod resources;
mod scheduler;
mod space;
mod steps;

pub use batch::{BatchJob, BatchOutcome, run_batch_job, run_prefix, step_manifest_name};
pub use biojob_core::StepId;
pub use cache::{
    CacheKeyMaterial, EarlierTasks, RerunReason, ReusedOutput, STEP_FORMAT_VERSION,
    bwa_index_sha256, carry_forward, earlier_step_task, file_sha256, files_sha256,
    reference_sha256, reuse_outputs, try_reuse,
};
pub use context::{Engine, StepContext, probe_tools};
pub use dry_run::render_run_plan;
pub use error::Error;
pub use input::{JobEnvironment, REFERENCE_EXTENSIONS, WorkflowInput, resolve_reference};
pub use job::{
    Earlier, Executed, InputDigest, JobInput, JobOutcome, JobOutput, JobTarget, KeyPolicy,
    REFERENCE, ReferenceInput, ReferenceUse, StagedInputs, StepDefinition, StepJob, object_size,
    sibling,
};
pub use lock::{LEASE, LOCK_NAME, LockRecord, RENEW_EVERY, RunLock};
pub use manifest::{
    CommandRecord, MANIFEST_FORMAT_VERSION, ManifestInputs, OutputRecord, RunManifest,
    StepManifest, TaskRecord, TaskShard, TaskStatus, ToolRecord, error_chain, publish_json,
    seconds, timestamp,
};
pub use observer::{LogObserver, RunObserver, TaskLabel};
pub use plan::{
    KEY_RESOURCES, PlanContext, PlanPaths, PlannedCommand, PlannedFile, PlannedOutput,
    SCRATCH_PLACEHOLDER, StepPlan, partial, shell_words,
};
pub use publish::{check_input, publish_file, publish_logs, stage_input};
pub use reference::{
    PreparedReference, ReferenceOptions, StaleIndex, bwa_index_mismatch, prepare_reference,
    reference_index_plan,
};
pub use report::{REPORT_FIGURES, REPORT_MAX_CONTIGS, html_escape, render_report};
pub use resources::{CpuQuota, Resources, parse_cpu_max, parse_memory_size};
pub use scheduler::{
    RunOptions, RunOutcome, ScaleOptions, contig_plan, fastq_remedy, new_run_id, run_workflow,
    shard_plan,
};
pub use space::{
    ScratchSettings, SpaceWatchdog, align_space_need, call_space_need, estimated_bam_bytes,
    file_bytes, gather_space_need, split_space_need,
};
pub use steps::{
    AlignStep, BAI, BAM, BWA_BATCH_BASES, CallStep, ContigQc, FASTQ_1, FASTQ_2, GatherInputs,
    GatherStep, MergeStep, QC_FORMAT_VERSION, QcFiles, QcRun, QcStep, QcSummary,
    REGION_PILEUP_PAD_BASES, ReadsQc, ShardRequest, SplitStep, VCF, VariantsQc, chunk_bam_role,
    chunk_fastq_names, chunk_prefix, final_vcf_name, order_for_gather, qc_file_names, tbi_role,
    vcf_role,
};
