//! `biojob report`: a cohort execution's `report.html`, after every sample's QC.

use std::num::NonZeroU64;

use biojob_pipeline::{
    JobInput, KeyPolicy, QcRun, ReferenceUse, ReportStep, StepJob, env, sample_dir, sample_qc_role,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{RuntimeArgs, SheetArgs, StepArgs};
use crate::failure::{Failure, usage};
use crate::job::{Job, parse_contigs, read_sheet};

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub step: StepArgs,
    #[command(flatten)]
    pub sheet: SheetArgs,
    /// The contigs called: a JSON array (["chr20","chrM"]) or comma-separated [default: every
    /// contig of the reference].
    #[arg(long, env = env::CHROMOSOMES)]
    pub contigs: Option<String>,
    /// The calling shards' largest size in bases (0: one shard per contig).
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, default_value_t = 0)]
    pub shard_bases: u64,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages the reference `.fai` and each sample's `qc.json` (sheet order), reads the
/// execution's step manifests for the timeline, and stages out `<run prefix>/report.html`.
pub fn run(args: ReportArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(&args.step, &[])?;
    job.joint()?;
    let text = args.sheet.given().ok_or_else(|| {
        usage(
            "report needs the cohort's sample sheet",
            "set SAMPLESHEET (or --samplesheet)",
        )
    })?;
    let sheet = read_sheet(text, stores)?;
    let run_id = args
        .step
        .execution_id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| job.sample.to_string());
    let step = ReportStep::new(
        sheet.sample_ids(),
        QcRun::Cohort {
            run_prefix: job.run_prefix.clone(),
            run_id,
            samples: sheet
                .samples
                .iter()
                .map(|sample| (sample.sample.clone(), sample.lanes.len()))
                .collect(),
            contigs: args.contigs.as_deref().map(parse_contigs).transpose()?,
            shard_bases: NonZeroU64::new(args.shard_bases),
        },
    );
    let inputs = sheet
        .samples
        .iter()
        .enumerate()
        .map(|(position, sample)| {
            JobInput::new(
                &sample_qc_role(position),
                sample_dir(&job.run_prefix, &sample.sample).join("qc.json"),
                "qc.json",
                "run every sample's qc job first",
            )
            .unkeyed()
        })
        .collect();
    let step_job = StepJob {
        definition: &step,
        inputs,
        reference: job.reference(&args.runtime, ReferenceUse::Fai)?,
        key: KeyPolicy::None,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
