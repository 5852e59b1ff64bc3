//! The germline workflow, FASTQ → BAM → VCF: its steps and the local executor.
//!
//! Steps (each also a `biojob` subcommand and an AWS Batch job):
//! 1. [`prepare_reference`]: the FASTA index and the bwa index, built once, atomically.
//! 2. [`align`]: `bwa mem | samtools sort`, `samtools index`, with the FASTQs checked on the way in.
//! 3. [`call`]: `bcftools mpileup | bcftools call` for one shard (a contig, or regions cut by
//!    size: [`ScaleOptions`]).
//! 4. [`gather`]: `bcftools concat` of the shards' VCFs in reference order.
//! 5. [`qc`]: `samtools flagstat`/`stats` and `bcftools stats` for MultiQC, native depth and
//!    variant statistics (`qc.json`); [`run_workflow`] adds `report.html` ([`render_report`]).
//!
//! [`run_workflow`] runs them all for one sample from a [`WorkflowInput`] (the reference
//! design's Step Functions execution input), calling contigs in parallel within the CPU budget,
//! publishing each step's outputs as it succeeds and a [`RunManifest`] at the end, whether the
//! run succeeded or not.
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

mod cache;
mod context;
mod error;
mod input;
mod manifest;
mod observer;
mod publish;
mod reference;
mod report;
mod resources;
mod scale;
mod space;
mod steps;
mod workflow;

pub use cache::{
    AlignInputDigests, CacheKeyMaterial, EarlierTasks, RecordedTask, RerunReason, ReusedOutput,
    STEP_FORMAT_VERSION, align_key, bwa_index_sha256, call_key, carry_forward, earlier_step_task,
    fastq_pair_sha256, file_sha256, files_sha256, gather_key, reference_sha256, reuse_outputs,
    try_reuse,
};
pub use context::StepContext;
pub use error::Error;
pub use input::{JobEnvironment, REFERENCE_EXTENSIONS, WorkflowInput, keys, resolve_reference};
pub use manifest::{
    CommandRecord, MANIFEST_FORMAT_VERSION, ManifestInputs, OutputRecord, RunManifest, TaskRecord,
    TaskStatus, ToolRecord, error_chain, seconds, timestamp,
};
pub use observer::{LogObserver, RunObserver, TaskLabel};
pub use publish::{publish_file, publish_logs, stage_input};
pub use reference::{PreparedReference, ReferenceOptions, bwa_index_mismatch, prepare_reference};
pub use report::{REPORT_FIGURES, REPORT_MAX_CONTIGS, html_escape, render_report};
pub use resources::{CpuQuota, Resources, parse_cpu_max, parse_memory_size};
pub use scale::{ScaleOptions, align_in_chunks, chunk_prefix, shard_plan};
pub use space::{
    ScratchSettings, SpaceWatchdog, align_space_need, call_space_need, estimated_bam_bytes,
    file_bytes, gather_space_need, split_space_need,
};
pub use steps::{
    AlignOutput, AlignRequest, BWA_BATCH_BASES, CallOutput, CallRequest, ContigQc, GatherOutput,
    GatherRequest, MergeOutput, QC_FORMAT_VERSION, QcFiles, QcOutput, QcRequest, QcSummary,
    ReadsQc, VariantsQc, align, call, gather, merge, order_for_gather, qc, qc_file_names,
};
pub use workflow::{
    Engine, RunOptions, RunOutcome, contig_plan, new_run_id, probe_tools, run_workflow,
};
