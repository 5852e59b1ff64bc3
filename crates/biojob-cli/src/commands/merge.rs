//! `biojob merge`: the merge job, the chunks' BAMs into `<sample>.align.bam`.

use biojob_core::{StepId, scratch_file_name};
use biojob_pipeline::{JobInput, KeyPolicy, MergeStep, ReferenceUse, StepJob, chunk_bam_role, env};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{ReadGroupArgs, RuntimeArgs, StepArgs, chunk_count};
use crate::failure::Failure;
use crate::job::Job;

#[derive(Debug, Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// How many chunks were aligned, 1 to 9999.
    #[arg(long, env = env::CHUNKS, value_parser = clap::value_parser!(u64).range(1..10000))]
    pub chunks: u64,
    #[command(flatten)]
    pub read_group: ReadGroupArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages the reference `.fai` and `<sample>.align.<chunk>.bam` of each chunk, merges them,
/// and stages out `<sample>.align.bam` and its `.bai`, the names the call job reads.
pub fn run(args: MergeArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(&args.step, &args.read_group.overrides())?;
    let chunks = chunk_count(args.chunks)?.get();
    let step = MergeStep {
        sample: job.sample.clone(),
        read_group: job.environment.read_group(&job.sample)?,
        chunks,
    };
    let inputs = (0..chunks)
        .map(|chunk| {
            let bam = job.run_prefix.join(&scratch_file_name(
                &job.sample,
                StepId::Align,
                Some(chunk),
                "bam",
            ));
            JobInput::new(
                &chunk_bam_role(chunk),
                bam,
                "chunk BAM",
                "run the align job for every chunk first",
            )
        })
        .collect();
    let step_job = StepJob {
        definition: &step,
        inputs,
        reference: job.reference(&args.runtime, ReferenceUse::Fai)?,
        key: KeyPolicy::Own,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
