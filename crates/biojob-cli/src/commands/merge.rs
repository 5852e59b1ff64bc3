//! `biojob merge`: the merge job, the chunks' BAMs (or a cohort sample's lanes') into
//! `<sample>.align.bam`.

use biojob_core::{StepId, scratch_file_name};
use biojob_pipeline::{
    JobInput, KeyPolicy, MergeStep, ReferenceUse, StepJob, check_split_lanes, check_split_sample,
    chunk_bam_role, env, published_output, sample_read_groups, step_manifest_name,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{
    MarkDuplicatesArgs, ReadGroupArgs, RuntimeArgs, SheetArgs, StepArgs, chunk_count,
};
use crate::failure::{Failure, usage};
use crate::job::{Job, read_sheet};

#[derive(Debug, Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// How many chunks were aligned, 1 to 9999; with --samplesheet, the sample's chunks, its
    /// lanes' numbered across the sample (at least one per lane of the sheet; default: one per
    /// lane, as when no lane is split).
    #[arg(long, env = env::CHUNKS, value_parser = clap::value_parser!(u64).range(1..=biojob_core::MAX_CHUNKS as u64), required_unless_present = "samplesheet")]
    pub chunks: Option<u64>,
    #[command(flatten)]
    pub read_group: ReadGroupArgs,
    #[command(flatten)]
    pub sheet: SheetArgs,
    #[command(flatten)]
    pub duplicates: MarkDuplicatesArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages the reference `.fai`, reads `<sample>.align.<chunk>.bam` of each chunk (a cohort
/// sample's: of its lanes, numbered across the sample), merges them (marking duplicates, for
/// a cohort's sample), and publishes `<sample>.align.bam` and its `.bai`, the names the call
/// job reads. In an object store the chunks are streamed in and the BAM uploaded as it is
/// written: scratch holds neither.
pub fn run(args: MergeArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let mut job = Job::new(&args.step, &args.read_group.overrides())?;
    let mut step = match args.sheet.given() {
        Some(text) => {
            let sheet = read_sheet(text, stores)?;
            let sample = job.in_cohort(&sheet)?;
            let lanes = sample.lanes.len();
            let chunks = match args.chunks {
                None => lanes,
                Some(chunks) => match usize::try_from(chunks) {
                    Ok(chunks) if chunks >= lanes => chunks,
                    _ => {
                        return Err(usage(
                            format!(
                                "CHUNKS is {chunks}, and sample {} has {lanes} lanes in the sample sheet {}: each lane is at least one chunk",
                                job.sample, sheet.uri
                            ),
                            "make params.samples again with biojob plan-cohort from the sheet the execution reads",
                        ));
                    }
                },
            };
            // Each split lane's read pairs are those its chunks aligned.
            let lane_names: Vec<&str> =
                sample.lanes.iter().map(|lane| lane.lane.as_str()).collect();
            check_split_lanes(stores, &job.run_prefix, &job.sample, &lane_names, chunks)
                .map_err(|error| error.in_task(format!("merge {}", job.sample)))?;
            MergeStep {
                sample: job.sample.clone(),
                read_groups: sample_read_groups(
                    stores,
                    &sheet.uri,
                    sample,
                    &job.environment.platform()?,
                )?,
                chunks,
                mark_duplicates: args.duplicates.mark_duplicates,
                in_cohort: true,
                chunk_records: None,
                upload_to: job.upload_prefix(),
            }
        }
        None => MergeStep {
            sample: job.sample.clone(),
            read_groups: vec![job.environment.read_group(&job.sample)?],
            chunks: chunk_count(args.chunks.unwrap_or(0))?.get(),
            mark_duplicates: false,
            in_cohort: false,
            chunk_records: None,
            upload_to: job.upload_prefix(),
        },
    };
    // Each chunk's (or lane's) BAM is checked against what its align job recorded when it
    // published it; the records it counted then are not counted again. When every chunk's
    // record is known, the chunks in an object store are streamed to samtools (keyed by their
    // published SHA-256, checked as they are read), never copied to scratch; else they are
    // staged and counted, as a chunk without its record must be.
    let published: Vec<_> = (0..step.chunks)
        .map(|chunk| {
            let name = scratch_file_name(&job.sample, StepId::Align, Some(chunk), "bam");
            let manifest =
                job.run_prefix
                    .join(&step_manifest_name(&job.sample, StepId::Align, Some(chunk)));
            let published = published_output(stores, &[manifest], &name);
            (name, published)
        })
        .collect();
    if !step.in_cohort {
        // The split's read pairs are those its chunks aligned, every chunk merged.
        let aligned_pairs: Vec<Option<u64>> = published
            .iter()
            .map(|(_, published)| published.as_ref().and_then(|p| p.read_pairs))
            .collect();
        check_split_sample(stores, &job.run_prefix, &job.sample, &aligned_pairs)
            .map_err(|error| error.in_task("merge"))?;
    }
    step.chunk_records = published
        .iter()
        .map(|(_, published)| published.as_ref().and_then(|p| p.bam_records))
        .sum();
    let stream = step.upload_to.is_some() && step.chunk_records.is_some();
    let inputs = published
        .into_iter()
        .enumerate()
        .map(|(chunk, (name, published))| {
            let sha256 = published.as_ref().map(|p| p.sha256.clone());
            let input = JobInput::new(
                &chunk_bam_role(chunk),
                job.run_prefix.join(&name),
                "chunk BAM",
                "run the align job for every chunk first",
            )
            .published(published);
            match sha256 {
                Some(sha256) if stream => input.known(Some(sha256)).streamed(),
                _ => input,
            }
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
