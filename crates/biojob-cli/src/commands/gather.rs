//! `biojob gather`: the gather job, every shard's VCF of the run's plan (or the `--vcf`
//! files given) into `<sample>.vcf.gz`.

use std::num::NonZeroU64;

use biojob_pipeline::{
    GatherInputs, GatherStep, JobInput, KeyPolicy, ReferenceUse, StepJob, env, sibling, tbi_role,
    vcf_role,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{RuntimeArgs, SheetArgs, StepArgs};
use crate::failure::{Failure, parse_uri};
use crate::job::{Job, parse_contigs, read_sheet};

#[derive(Debug, Args)]
pub struct GatherArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// A per-contig VCF (bgzipped, .tbi beside it); repeat, in any order [default: the call
    /// step's outputs under the run prefix for --contigs].
    #[arg(long = "vcf")]
    pub vcfs: Vec<String>,
    /// The contigs called: a JSON array (["chr20","chrM"]) or comma-separated.
    #[arg(long, env = env::CHROMOSOMES, required_unless_present = "vcfs")]
    pub contigs: Option<String>,
    /// The shards were cut by size, at most this many bases each (the call jobs' --shard-bases):
    /// gather every shard of that plan of --contigs (0: one shard per contig).
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, default_value_t = 0)]
    pub shard_bases: u64,
    #[command(flatten)]
    pub sheet: SheetArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages the reference `.fai` (the FASTA only when there is no `.fai` beside it, to build
/// one) and the VCFs with their `.tbi`, concatenates them in reference order and stages out
/// `<sample>.vcf.gz` and its `.tbi` (with a sample sheet, `SAMPLE_ID` `cohort`: the joint calls
/// into `cohort.vcf.gz`).
pub fn run(args: GatherArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(&args.step, &[])?;
    let explicit = args
        .vcfs
        .iter()
        .map(|text| parse_uri(text, "fix --vcf"))
        .collect::<Result<Vec<_>, _>>()?;
    let (gather_inputs, inputs) = match (&args.contigs, explicit.is_empty()) {
        (Some(text), true) => (
            GatherInputs::Plan {
                prefix: job.run_prefix.clone(),
                contigs: parse_contigs(text)?,
                shard_bases: NonZeroU64::new(args.shard_bases),
            },
            Vec::new(),
        ),
        _ => {
            let mut inputs = Vec::new();
            for (position, vcf) in explicit.iter().enumerate() {
                inputs.push(JobInput::new(
                    &vcf_role(position),
                    vcf.clone(),
                    "VCF",
                    "run the call step for every contig first",
                ));
                inputs.push(
                    JobInput::new(
                        &tbi_role(position),
                        sibling(vcf, ".tbi"),
                        "VCF index",
                        "index each VCF with bcftools index -t (the .tbi must sit beside it)",
                    )
                    .unkeyed(),
                );
            }
            (GatherInputs::Given(explicit.len()), inputs)
        }
    };
    let mut step = GatherStep::new(job.sample.clone(), gather_inputs);
    if let Some(text) = args.sheet.given() {
        // A cohort's joint calls: one column per sample, in sheet order.
        job.joint()?;
        step = step.jointly(read_sheet(text, stores)?.sample_ids());
    }
    let step_job = StepJob {
        definition: &step,
        inputs,
        reference: job.reference(&args.runtime, ReferenceUse::Fai)?,
        key: KeyPolicy::Own,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
