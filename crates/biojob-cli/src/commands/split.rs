//! `biojob split`: the split job, the FASTQ pair into `CHUNKS` chunks for align jobs of one
//! chunk each.

use std::num::NonZeroU64;

use biojob_formats::ChunkLayout;
use biojob_pipeline::{
    FASTQ_1, FASTQ_2, JobInput, KeyPolicy, SplitStep, StepJob, env, fastq_remedy,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{FastqPairArgs, RuntimeArgs, StepArgs, chunk_count};
use crate::failure::{Failure, usage};
use crate::job::Job;

#[derive(Debug, Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub step: StepArgs,
    #[command(flatten)]
    pub fastqs: FastqPairArgs,
    /// Read pairs per block; block k goes to chunk k mod --chunks.
    #[arg(long, env = env::BIOJOB_ALIGN_CHUNK_PAIRS, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_pairs: u64,
    /// How many chunks, 1 to 9999 (chunk names have four digits).
    #[arg(long, env = env::CHUNKS, value_parser = clap::value_parser!(u64).range(1..10000))]
    pub chunks: u64,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Streams the FASTQ pair from where it is (an S3 object is read as it downloads, never
/// copied to scratch whole), deals blocks of `BIOJOB_ALIGN_CHUNK_PAIRS` read pairs in turn
/// into `CHUNKS` chunks, and stages out `<sample>.split.<chunk>_R1.fastq.gz` and `_R2` for
/// each chunk.
pub fn run(args: SplitArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(&args.step, &args.fastqs.overrides())?;
    let chunks = chunk_count(args.chunks)?;
    let block_pairs = NonZeroU64::new(args.chunk_pairs)
        .ok_or_else(|| usage("BIOJOB_ALIGN_CHUNK_PAIRS is 0", "give it from 1"))?;
    let (fastq_1, fastq_2) = job.environment.fastqs(&job.sample)?;
    let remedy = fastq_remedy(&job.sample);
    let step = SplitStep {
        sample: job.sample.clone(),
        layout: ChunkLayout::InTurn {
            block_pairs,
            chunks,
        },
    };
    let step_job = StepJob {
        definition: &step,
        inputs: vec![
            JobInput::new(FASTQ_1, fastq_1, "FASTQ_1", &remedy).streamed(),
            JobInput::new(FASTQ_2, fastq_2, "FASTQ_2", &remedy).streamed(),
        ],
        reference: None,
        key: KeyPolicy::None,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
