//! `biojob sample-vcf`: a cohort sample's VCF from the joint `cohort.vcf.gz`.

use biojob_pipeline::{
    JobInput, KeyPolicy, ReferenceUse, SampleVcfStep, StepJob, VCF, cohort_stem, final_vcf_name,
    sibling,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{RuntimeArgs, SheetArgs, StepArgs};
use crate::failure::{Failure, usage};
use crate::job::{Job, read_sheet};

#[derive(Debug, Args)]
pub struct SampleVcfArgs {
    #[command(flatten)]
    pub step: StepArgs,
    #[command(flatten)]
    pub sheet: SheetArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages the reference `.fai` and `<run prefix>/cohort.vcf.gz` with its `.tbi`, keeps the
/// sample's column where its genotype holds a non-reference allele, and stages out
/// `<run prefix>/samples/<sample>/<sample>.vcf.gz` and its `.tbi`.
pub fn run(args: SampleVcfArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let mut job = Job::new(&args.step, &[])?;
    let text = args.sheet.given().ok_or_else(|| {
        usage(
            "sample-vcf needs the cohort's sample sheet",
            "set SAMPLESHEET (or --samplesheet)",
        )
    })?;
    let sheet = read_sheet(text, stores)?;
    let cohort_vcf = job.run_prefix.join(&final_vcf_name(&cohort_stem()?));
    job.in_cohort(&sheet)?;
    let step = SampleVcfStep {
        sample: job.sample.clone(),
    };
    let remedy = "run the cohort's gather job first";
    let step_job = StepJob {
        definition: &step,
        inputs: vec![
            JobInput::new(VCF, cohort_vcf.clone(), "VCF", remedy),
            JobInput::new("tbi", sibling(&cohort_vcf, ".tbi"), "VCF index", remedy).unkeyed(),
        ],
        reference: job.reference(&args.runtime, ReferenceUse::Fai)?,
        key: KeyPolicy::Own,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
