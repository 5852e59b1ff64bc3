//! `biojob split`: the split job, the FASTQ pair (or a cohort lane's) into chunks for align
//! jobs of one chunk each.

use std::num::{NonZeroU64, NonZeroUsize};

use biojob_formats::ChunkLayout;
use biojob_pipeline::{
    FASTQ_1, FASTQ_2, JobInput, KeyPolicy, SplitLane, SplitStep, StepJob, env, fastq_remedy,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{FastqPairArgs, LaneArgs, RuntimeArgs, SheetArgs, StepArgs, chunk_count};
use crate::failure::{Failure, usage};
use crate::job::{Job, lane_chunks, read_sheet};

#[derive(Debug, Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub step: StepArgs,
    #[command(flatten)]
    pub fastqs: FastqPairArgs,
    /// Read pairs per block; block k goes to chunk k mod --chunks (a lane's: mod the number of
    /// its chunks).
    #[arg(long, env = env::BIOJOB_ALIGN_CHUNK_PAIRS, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_pairs: u64,
    /// How many chunks, 1 to 9999 (chunk names have four digits); not with --samplesheet,
    /// whose lane's chunks are --lane-chunks.
    #[arg(long, env = env::CHUNKS, value_parser = clap::value_parser!(u64).range(1..=biojob_core::MAX_CHUNKS as u64), required_unless_present = "samplesheet")]
    pub chunks: Option<u64>,
    #[command(flatten)]
    pub sheet: SheetArgs,
    #[command(flatten)]
    pub lane: LaneArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Streams the FASTQ pair from where it is (an S3 object is read as it downloads, never
/// copied to scratch whole), deals blocks of `BIOJOB_ALIGN_CHUNK_PAIRS` read pairs in turn
/// into `CHUNKS` chunks, and stages out `<sample>.split.<chunk>_R1.fastq.gz` and `_R2` for
/// each chunk: to an S3 run prefix as they are compressed (multipart uploads, never a whole
/// chunk in scratch), to a local one as files. A cohort's lane (`SAMPLESHEET`, `LANE`,
/// `LANE_CHUNKS`) is split alike into its chunks, named by their numbers among the sample's,
/// under the sample's directory.
pub fn run(args: SplitArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(&args.step, &args.fastqs.overrides())?;
    let block_pairs = NonZeroU64::new(args.chunk_pairs)
        .ok_or_else(|| usage("BIOJOB_ALIGN_CHUNK_PAIRS is 0", "give it from 1"))?;
    if let Some(sheet) = args.sheet.given() {
        return split_lane(job, sheet, &args, block_pairs, cancel, stores);
    }
    args.lane.refuse_without_sheet()?;
    let chunks = chunk_count(args.chunks.unwrap_or(0))?;
    let (fastq_1, fastq_2) = job.environment.fastqs(&job.sample)?;
    let remedy = fastq_remedy(&job.sample);
    let step = SplitStep {
        sample: job.sample.clone(),
        layout: ChunkLayout::InTurn {
            block_pairs,
            chunks,
        },
        upload_to: job.upload_prefix(),
        lane: None,
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

/// One lane of a cohort's sample (`SAMPLESHEET`, `LANE`, `LANE_CHUNKS`): the lane's FASTQ pair
/// from the sheet, dealt into the lane's chunks under the sample's directory.
fn split_lane(
    mut job: Job,
    sheet: &str,
    args: &SplitArgs,
    block_pairs: NonZeroU64,
    cancel: &CancelToken,
    stores: &Stores,
) -> Result<(), Failure> {
    let index = args.lane.index("split", "splits")?;
    if args.chunks.is_some() {
        return Err(usage(
            "CHUNKS is set with SAMPLESHEET: a cohort lane's split deals its read pairs into the \
             lane's chunks, LANE_CHUNKS",
            "leave CHUNKS out and set LANE_CHUNKS",
        ));
    }
    let Some(text) = args.lane.chunks_given() else {
        return Err(usage(
            "a cohort's split job deals the lane into its chunks, and LANE_CHUNKS is not set",
            "set LANE_CHUNKS to the lane's chunk numbers among its sample's chunks, as biojob \
             plan-cohort lists them",
        ));
    };
    let chunks = lane_chunks(Some(text), index)?;
    let count = NonZeroUsize::new(chunks.len())
        .ok_or_else(|| usage("LANE_CHUNKS lists no chunk", "give at least one chunk"))?;
    let sheet = read_sheet(sheet, stores)?;
    let sample = job.in_cohort(&sheet)?;
    let lane = sample.lane(index)?;
    let step = SplitStep {
        sample: job.sample.clone(),
        layout: ChunkLayout::InTurn {
            block_pairs,
            chunks: count,
        },
        upload_to: job.upload_prefix(),
        lane: Some(SplitLane {
            name: lane.lane.clone(),
            first_chunk: chunks.start,
        }),
    };
    let remedy = "fix the sample sheet's path";
    let step_job = StepJob {
        definition: &step,
        inputs: vec![
            JobInput::new(FASTQ_1, lane.fastq_1.clone(), "FASTQ_1", remedy).streamed(),
            JobInput::new(FASTQ_2, lane.fastq_2.clone(), "FASTQ_2", remedy).streamed(),
        ],
        reference: None,
        key: KeyPolicy::None,
    };
    job.run(step_job, &args.runtime, cancel, stores)
        .map_err(|failure| failure.of_lane(lane, "split", &job.sample, &sheet.uri))
}
