//! `biojob align`: the align job, of the whole FASTQ pair or of one chunk written by split.

use biojob_pipeline::{
    AlignStep, FASTQ_1, FASTQ_2, JobInput, KeyPolicy, ReferenceUse, StepJob, chunk_fastq_names,
    env, fastq_remedy, read_group_of_lane,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{
    FastqPairArgs, MarkDuplicatesArgs, ReadGroupArgs, RuntimeArgs, SheetArgs, StepArgs,
};
use crate::engine::validate_fastq;
use crate::failure::{Failure, usage};
use crate::job::{Job, read_sheet};

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
    #[arg(long, env = env::CHUNK, conflicts_with = "lane")]
    pub chunk: Option<usize>,
    #[command(flatten)]
    pub sheet: SheetArgs,
    /// With --samplesheet: the lane to align, its 0-based index among the sample's rows of the
    /// sheet; the BAM is <run prefix>/samples/<sample>/<sample>.align.<lane>.bam, with the
    /// lane's read group.
    #[arg(long, env = env::LANE)]
    pub lane: Option<usize>,
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
    if args.lane.is_some() {
        return Err(usage(
            "LANE names a lane of a sample sheet, and no sheet is given",
            "set SAMPLESHEET with LANE, or leave LANE out",
        ));
    }
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

/// One lane of a cohort's sample (`SAMPLESHEET`, `LANE`): the lane's FASTQ pair and read
/// group from the sheet, `samtools fixmate -m` when duplicates are marked, the BAM under the
/// sample's directory.
fn align_lane(
    mut job: Job,
    sheet: &str,
    args: &AlignArgs,
    cancel: &CancelToken,
    stores: &Stores,
) -> Result<(), Failure> {
    let index = args.lane.ok_or_else(|| {
        usage(
            "a cohort's align job aligns one lane, and LANE is not set",
            "set LANE to the lane's 0-based index among the sample's rows of the sheet",
        )
    })?;
    let sheet = read_sheet(sheet, stores)?;
    let sample = job.in_cohort(&sheet)?;
    let lane = sample.lane(index)?;
    let read_group = read_group_of_lane(stores, &job.sample, lane, &job.environment.platform()?)?;
    let step = AlignStep {
        sample: job.sample.clone(),
        read_group,
        chunk: Some(index),
        chunk_pairs: None,
        validate_fastq: validate_fastq(),
        lane: Some(lane.lane.clone()),
        mark_duplicates: args.duplicates.mark_duplicates,
    };
    let remedy = "fix the sample sheet's path";
    let step_job = StepJob {
        definition: &step,
        inputs: vec![
            JobInput::new(FASTQ_1, lane.fastq_1.clone(), "FASTQ_1", remedy),
            JobInput::new(FASTQ_2, lane.fastq_2.clone(), "FASTQ_2", remedy),
        ],
        reference: job.reference(&args.runtime, ReferenceUse::FastaAndBwaIndex)?,
        key: KeyPolicy::Own,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
