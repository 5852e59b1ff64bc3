//! `biojob qc`: the QC job of an execution, after gather: the tools' reports, `qc.json` and
//! `report.html`, its timeline from the step manifests of the execution.

use std::num::NonZeroU64;

use biojob_core::{StepId, scratch_file_name};
use biojob_pipeline::{
    BAI, BAM, JobInput, KeyPolicy, QcRun, QcStep, ReferenceUse, StepJob, VCF, env, final_vcf_name,
    sibling,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{RuntimeArgs, SheetArgs, StepArgs, chunk_count};
use crate::failure::{Failure, usage};
use crate::job::{Job, parse_contigs, read_sheet};

#[derive(Debug, Args)]
pub struct QcArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// The contigs called: a JSON array (["chr20","chrM"]) or comma-separated [default: every
    /// contig of the reference].
    #[arg(long, env = env::CHROMOSOMES)]
    pub contigs: Option<String>,
    /// The calling shards' largest size in bases (0: one shard per contig).
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, default_value_t = 0)]
    pub shard_bases: u64,
    /// The alignment chunks, when the execution aligned in chunks (empty: not in chunks, what
    /// the state machine passes then).
    #[arg(long, env = env::CHUNKS)]
    pub chunks: Option<String>,
    #[command(flatten)]
    pub sheet: SheetArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages `<sample>.align.bam` and `<sample>.vcf.gz` (with their indexes) and the reference,
/// reads the execution's step manifests, and stages out the QC files and `report.html`. A
/// cohort's sample (`SAMPLESHEET`) reads and writes them under `samples/<sample>/`.
pub fn run(args: QcArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let mut job = Job::new(&args.step, &[])?;
    let chunks = match args.chunks.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(chunk_count(text.parse().map_err(|error| {
            usage(
                format!("CHUNKS {text:?}: {error}"),
                &format!(
                    "give CHUNKS from 1 to {}, or leave it empty",
                    biojob_core::MAX_CHUNKS
                ),
            )
        })?)?),
    };
    let run_id = args
        .step
        .execution_id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| job.sample.to_string());
    let contigs = args.contigs.as_deref().map(parse_contigs).transpose()?;
    let shard_bases = NonZeroU64::new(args.shard_bases);
    let cohort = match args.sheet.given() {
        Some(text) => {
            let sheet = read_sheet(text, stores)?;
            let run_prefix = job.run_prefix.clone();
            job.in_cohort(&sheet)?;
            Some(QcRun::Cohort {
                run_prefix,
                run_id: run_id.clone(),
                samples: sheet
                    .samples
                    .iter()
                    .map(|sample| (sample.sample.clone(), sample.lanes.len()))
                    .collect(),
                contigs: contigs.clone(),
                shard_bases,
            })
        }
        None => None,
    };
    let bam = job
        .run_prefix
        .join(&scratch_file_name(&job.sample, StepId::Align, None, "bam"));
    let vcf = job.run_prefix.join(&final_vcf_name(&job.sample));
    let in_cohort = cohort.is_some();
    let mut step = QcStep::new(
        job.sample.clone(),
        cohort.unwrap_or(QcRun::StepManifests {
            prefix: job.run_prefix.clone(),
            run_id,
            contigs,
            shard_bases,
            chunks: chunks.map(std::num::NonZeroUsize::get),
        }),
    );
    step.in_cohort = in_cohort;
    let remedy = "run the align (or merge) and gather jobs first";
    let step_job = StepJob {
        definition: &step,
        inputs: vec![
            JobInput::new(BAM, bam.clone(), "BAM", remedy).unkeyed(),
            JobInput::new(BAI, sibling(&bam, ".bai"), "BAM index", remedy).unkeyed(),
            JobInput::new(VCF, vcf.clone(), "VCF", remedy).unkeyed(),
            JobInput::new("tbi", sibling(&vcf, ".tbi"), "VCF index", remedy).unkeyed(),
        ],
        reference: job.reference(&args.runtime, ReferenceUse::Fasta)?,
        key: KeyPolicy::None,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
