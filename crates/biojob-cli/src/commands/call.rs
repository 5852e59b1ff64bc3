//! `biojob call`: the call job of one contig (`CHROMOSOME`) or of one shard of a plan cut by
//! size (`SHARD` with `CHROMOSOMES` and `BIOJOB_CALL_SHARD_BASES`).

use std::num::NonZeroU64;

use biojob_core::{StepId, scratch_file_name};
use biojob_pipeline::{
    BAI, BAM, CallStep, JobInput, KeyPolicy, ReferenceUse, ShardRequest, StepJob, cohort_bai_role,
    cohort_bam_role, env, published_output, sample_bam, sample_dir, sibling, step_manifest_name,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use clap::Args;

use crate::args::{RuntimeArgs, SheetArgs, StepArgs};
use crate::failure::{Failure, parse_uri, usage};
use crate::job::{Job, parse_contigs, read_sheet};

#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// The coordinate-sorted BAM, with its .bai beside it (from S3, only the shard's records
    /// are fetched) [default: <run prefix>/<sample>.align.bam].
    #[arg(long, conflicts_with = "samplesheet")]
    pub bam: Option<String>,
    /// The contig to call.
    #[arg(long, env = env::CHROMOSOME, required_unless_present = "shard", conflicts_with = "shard")]
    pub contig: Option<String>,
    /// The shard to call instead: its index in the plan of --contigs cut into shards of at most
    /// --shard-bases bases.
    #[arg(long, env = env::SHARD, requires_all = ["contigs", "shard_bases"])]
    pub shard: Option<usize>,
    /// The contigs of the run, for --shard: a JSON array (["chr20","chrM"]) or comma-separated.
    #[arg(long, env = env::CHROMOSOMES)]
    pub contigs: Option<String>,
    /// Largest shard in bases, for --shard.
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_bases: Option<u64>,
    /// Minimum mapping quality of the alignments used (bcftools mpileup -q), 0 to 255
    /// [default: bcftools' own, 0].
    #[arg(long, env = env::MIN_MAPPING_QUALITY)]
    pub min_mapping_quality: Option<String>,
    #[command(flatten)]
    pub sheet: SheetArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Stages the reference FASTA and `.fai` (never the bwa index) and the records of the BAM
/// that the shard's pileup reads (an S3 BAM: only the blocks its `.bai` points to, the whole
/// object when the index is missing or older than the BAM; a local BAM is read in place with
/// its `.bai`), calls the shard, and stages out `<sample>.call.<shard>.vcf.gz` and its `.tbi`.
/// With a sample sheet (`SAMPLESHEET`, `SAMPLE_ID` `cohort`), calls every sample of the cohort
/// jointly from `samples/<sample>/<sample>.align.bam` (each staged for the shard's regions, as
/// one sample's BAM is), into `cohort.call.<shard>.vcf.gz`.
pub fn run(args: CallArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(
        &args.step,
        &[(env::MIN_MAPPING_QUALITY, args.min_mapping_quality.as_ref())],
    )?;
    let min_mapping_quality = job.environment.min_mapping_quality()?;
    let request = match (
        &args.contig,
        args.shard,
        args.shard_bases.and_then(NonZeroU64::new),
    ) {
        (Some(contig), _, _) => ShardRequest::Contig(contig.clone()),
        (None, Some(index), Some(shard_bases)) => ShardRequest::OfPlan {
            index,
            contigs: args.contigs.as_deref().map(parse_contigs).transpose()?,
            shard_bases,
        },
        _ => {
            return Err(usage(
                "give --contig, or --shard with --contigs and --shard-bases",
                "set CHROMOSOME, or SHARD, CHROMOSOMES and BIOJOB_CALL_SHARD_BASES",
            ));
        }
    };
    if let Some(text) = args.sheet.given() {
        // A cohort's joint call: every sample's BAM, one column each, in sheet order.
        job.joint()?;
        let samples = read_sheet(text, stores)?.sample_ids();
        let remedy = "run the cohort's align and merge jobs of every sample first";
        let mut inputs = Vec::with_capacity(2 * samples.len());
        for (position, sample) in samples.iter().enumerate() {
            let bam = sample_bam(&job.run_prefix, sample);
            // Each sample's BAM is checked against what its merge job recorded, and staged,
            // like a single sample's, for the shard's regions only (docs/staging.md).
            let manifest = sample_dir(&job.run_prefix, sample).join(&step_manifest_name(
                sample,
                StepId::Merge,
                None,
            ));
            let name = scratch_file_name(sample, StepId::Align, None, "bam");
            let published = published_output(stores, &[manifest], &name);
            inputs.push(
                JobInput::new(&cohort_bam_role(position), bam.clone(), "BAM", remedy)
                    .published(published)
                    .bam_regions(),
            );
            if bam.local_path().is_some() {
                inputs.push(
                    JobInput::new(
                        &cohort_bai_role(position),
                        sibling(&bam, ".bai"),
                        "BAM index",
                        remedy,
                    )
                    .unkeyed(),
                );
            }
        }
        let step = CallStep::new(job.sample.clone(), request, min_mapping_quality).jointly(samples);
        let step_job = StepJob {
            definition: &step,
            inputs,
            reference: job.reference(&args.runtime, ReferenceUse::Fasta)?,
            key: KeyPolicy::Own,
        };
        return job.run(step_job, &args.runtime, cancel, stores);
    }
    // The run's own BAM is checked against what the align (or merge) job recorded when it
    // published it.
    let (bam, published) = match &args.bam {
        Some(text) => (parse_uri(text, "fix --bam")?, None),
        None => {
            let name = scratch_file_name(&job.sample, StepId::Align, None, "bam");
            let manifests = [StepId::Align, StepId::Merge].map(|step| {
                job.run_prefix
                    .join(&step_manifest_name(&job.sample, step, None))
            });
            (
                job.run_prefix.join(&name),
                published_output(stores, &manifests, &name),
            )
        }
    };
    let step = CallStep::new(job.sample.clone(), request, min_mapping_quality);
    let mut inputs = vec![
        JobInput::new(
            BAM,
            bam.clone(),
            "BAM",
            "run the align step first, or give --bam",
        )
        .published(published)
        .bam_regions(),
    ];
    if bam.local_path().is_some() {
        // A stored BAM brings its own index, built for the records staged; a local one is
        // read in place with the .bai beside it.
        inputs.push(
            JobInput::new(
                BAI,
                sibling(&bam, ".bai"),
                "BAM index",
                "index the BAM with samtools index (the .bai must sit beside it)",
            )
            .unkeyed(),
        );
    }
    let step_job = StepJob {
        definition: &step,
        inputs,
        reference: job.reference(&args.runtime, ReferenceUse::Fasta)?,
        key: KeyPolicy::Own,
    };
    job.run(step_job, &args.runtime, cancel, stores)
}
