//! `biojob align`: the align job, of the whole FASTQ pair or of one chunk written by split.

use biojob_pipeline::{
    AlignStep, FASTQ_1, FASTQ_2, JobInput, KeyPolicy, ReferenceUse, StepJob, chunk_fastq_names,
    env, fastq_remedy, lane_split_manifests, read_group_of_lane,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{
    FastqPairArgs, LaneArgs, MarkDuplicatesArgs, ReadGroupArgs, RuntimeArgs, SheetArgs, StepArgs,
};
use crate::engine::validate_fastq;
use crate::failure::{Failure, usage};
use crate::job::{Job, lane_chunks, read_sheet};

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
    /// With --samplesheet: one of the lane's chunks (--lane-chunks), its number among the
    /// sample's.
    #[arg(long, env = env::CHUNK)]
    pub chunk: Option<usize>,
    #[command(flatten)]
    pub sheet: SheetArgs,
    #[command(flatten)]
    pub lane: LaneArgs,
    #[command(flatten)]
    pub duplicates: MarkDuplicatesArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages the FASTQ pair (or the chunk's, or a cohort lane's) and the reference with the `.fai`
/// and bwa index that exist beside it, builds what is missing, aligns, and stages out the BAM
/// and its index.
pub fn run(args: AlignArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let mut overrides = args.fastqs.overrides().to_vec();
    overrides.extend(args.read_group.overrides());
    let job = Job::new(&args.step, &overrides)?;
    if let Some(text) = args.sheet.given() {
        return align_lane(job, text, &args, cancel, stores);
    }
    args.lane.refuse_without_sheet()?;
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
        chunking: None,
        validate_fastq: validate_fastq()?,
        lane: None,
        mark_duplicates: false,
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

/// One lane of a cohort's sample (`SAMPLESHEET`, `LANE`): the lane's FASTQ pair (or, for a
/// lane split into several chunks, chunk `CHUNK` of `LANE_CHUNKS`, written by the lane's
/// split) and read group from the sheet, `samtools fixmate -m` when duplicates are marked,
/// the BAM `<sample>.align.<chunk>.bam` (the chunk's number among the sample's) under the
/// sample's directory.
fn align_lane(
    mut job: Job,
    sheet: &str,
    args: &AlignArgs,
    cancel: &CancelToken,
    stores: &Stores,
) -> Result<(), Failure> {
    let index = args.lane.index("align", "aligns")?;
    let given = args.lane.chunks_given();
    let chunks = lane_chunks(given, index)?;
    // The chunk aligned, and whether it is a split lane's (read from the split's FASTQs).
    let (chunk, split) = match (given, args.chunk) {
        (None, Some(chunk)) => {
            return Err(usage(
                format!(
                    "CHUNK is {chunk}: one of a split lane's chunks, and LANE_CHUNKS (the lane's \
                     chunks) is not set"
                ),
                "set LANE_CHUNKS with CHUNK (the state machine does), or leave CHUNK out to \
                 align the lane whole",
            ));
        }
        (None, None) => (chunks.start, false),
        (Some(_), None) if chunks.len() == 1 => (chunks.start, false),
        (Some(text), None) => {
            return Err(usage(
                format!(
                    "lane {index} of sample {} is split into chunks {} to {} (LANE_CHUNKS \
                     {text}), and CHUNK is not set",
                    job.sample,
                    chunks.start,
                    chunks.end - 1
                ),
                "set CHUNK to the chunk to align, one of LANE_CHUNKS",
            ));
        }
        (Some(text), Some(chunk)) if chunks.len() == 1 => {
            return Err(usage(
                format!(
                    "CHUNK is {chunk}, and lane {index} of sample {} is one chunk (LANE_CHUNKS \
                     {text}): it is aligned whole",
                    job.sample
                ),
                "leave CHUNK out for a lane of one chunk",
            ));
        }
        (Some(text), Some(chunk)) if !chunks.contains(&chunk) => {
            return Err(usage(
                format!(
                    "CHUNK is {chunk}, not one of the chunks of lane {index} of sample {} \
                     (LANE_CHUNKS {text})",
                    job.sample
                ),
                "set CHUNK to one of LANE_CHUNKS",
            ));
        }
        (Some(_), Some(chunk)) => (chunk, true),
    };
    let sheet = read_sheet(sheet, stores)?;
    let sample = job.in_cohort(&sheet)?;
    let lane = sample.lane(index)?;
    if given.is_none()
        && let Some(split) = lane_split_manifests(stores, &job.run_prefix, &job.sample)?.first()
    {
        // Without LANE_CHUNKS the lane's BAM is numbered by its index, which is another
        // chunk's number once a lane before it was split.
        return Err(usage(
            format!(
                "LANE_CHUNKS is not set, and lanes of sample {} were split ({split}): lane {index}'s chunk number is not its index",
                job.sample
            ),
            "set LANE_CHUNKS to the lane's chunks, as biojob plan-cohort lists them",
        ));
    }
    let read_group = read_group_of_lane(
        stores,
        &sheet.uri,
        &job.sample,
        lane,
        &job.environment.platform()?,
    )?;
    let step = AlignStep {
        sample: job.sample.clone(),
        read_group,
        chunk: Some(chunk),
        chunking: None,
        validate_fastq: validate_fastq()?,
        lane: Some(lane.lane.clone()),
        mark_duplicates: args.duplicates.mark_duplicates,
    };
    let (fastq_1, fastq_2, remedy) = if split {
        let (name_1, name_2) = chunk_fastq_names(&job.sample, chunk);
        (
            job.run_prefix.join(&name_1),
            job.run_prefix.join(&name_2),
            "run the lane's split job first",
        )
    } else {
        (
            lane.fastq_1.clone(),
            lane.fastq_2.clone(),
            "fix the sample sheet's path",
        )
    };
    let step_job = StepJob {
        definition: &step,
        inputs: vec![
            JobInput::new(FASTQ_1, fastq_1, "FASTQ_1", remedy),
            JobInput::new(FASTQ_2, fastq_2, "FASTQ_2", remedy),
        ],
        reference: job.reference(&args.runtime, ReferenceUse::FastaAndBwaIndex)?,
        key: KeyPolicy::Own,
    };
    job.run(step_job, &args.runtime, cancel, stores)
        .map_err(|failure| failure.of_lane(lane, "align", &job.sample, &sheet.uri))
}
