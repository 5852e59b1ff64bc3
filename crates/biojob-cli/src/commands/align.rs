//! `biojob align`: the align job, of the whole FASTQ pair or of one chunk written by split.

use biojob_pipeline::{
    AlignStep, FASTQ_1, FASTQ_2, JobInput, KeyPolicy, ReferenceUse, StepJob, chunk_fastq_names,
    env, fastq_remedy,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{FastqPairArgs, ReadGroupArgs, RuntimeArgs, StepArgs};
use crate::engine::validate_fastq;
use crate::failure::Failure;
use crate::job::Job;

#[derive(Debug, Args)]
pub struct AlignArgs {
    #[command(flatten)]
    pub step: StepArgs,
    #[command(flatten)]
    pub fastqs: FastqPairArgs,
    #[command(flatten)]
    pub read_group: ReadGroupArgs,
    /// Align one chunk written by the split step instead: its index; the FASTQs are
    /// <run prefix>/<sample>.split.<chunk>_R1/_R2.fastq.gz, the BAM <sample>.align.<chunk>.bam.
    #[arg(long, env = env::CHUNK)]
    pub chunk: Option<usize>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages the FASTQ pair (or the chunk's) and the reference with the `.fai` and bwa index that
/// exist beside it, builds what is missing, aligns, and stages out the BAM and its index.
pub fn run(args: AlignArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let mut overrides = args.fastqs.overrides().to_vec();
    overrides.extend(args.read_group.overrides());
    let job = Job::new(&args.step, &overrides)?;
    let read_group = job.environment.read_group(&job.sample)?;
    let (fastq_1, fastq_2) = match args.chunk {
        Some(chunk) => {
            let (name_1, name_2) = chunk_fastq_names(&job.sample, chunk);
            (job.run_prefix.join(&name_1), job.run_prefix.join(&name_2))
        }
        None => job.environment.fastqs(&job.sample)?,
    };
    let remedy = fastq_remedy(&job.sample);
    let step = AlignStep {
        sample: job.sample.clone(),
        read_group,
        chunk: args.chunk,
        chunk_pairs: None,
        validate_fastq: validate_fastq(),
    };
    let step_job = StepJob {
        definition: &step,
        inputs: vec![
            JobInput::new(FASTQ_1, fastq_1, "FASTQ_1", &remedy),
            JobInput::new(FASTQ_2, fastq_2, "FASTQ_2", &remedy),
        ],
        reference: job.reference(&args.runtime, ReferenceUse::FastaAndBwaIndex)?,
        key: KeyPolicy::Own,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
