//! The shard a call job works on: a contig (`CHROMOSOME`), or a shard of a plan cut by size
//! (`SHARD` with `CHROMOSOMES` and `BIOJOB_CALL_SHARD_BASES`); `biojob plan-shards`, which
//! prints that plan for the execution input; the split and merge jobs around align jobs of
//! one chunk each.

use std::num::NonZeroU64;

use biojob_core::Shard;
use biojob_pipeline::{Error, PreparedReference, contig_plan, shard_plan};

use std::num::NonZeroUsize;
use std::time::{Instant, SystemTime};

use biojob_core::{StepId, scratch_file_name};
use biojob_formats::{ChunkLayout, SplitRequest, fastq_chunk_names, split_fastq_pair};
use biojob_pipeline::{AlignRequest, chunk_prefix};
use biojob_process::CancelToken;
use biojob_storage::{ObjectUri, Stores};
use camino::{Utf8Path, Utf8PathBuf};

use crate::Failure;
use crate::cli::{CallArgs, MergeArgs, PlanShardsArgs, SplitArgs};
use crate::steps::{Job, StepDone, StepRun};

/// The shard `args` name: `--contig`'s by-contig shard (its index the contig's line in the
/// `.fai`), or shard `--shard` of the plan of `requested` contigs cut into shards of at most
/// `--shard-bases` bases ([`biojob_core::ScatterPlan::by_size`]), the same plan `biojob run`
/// and gather make from the same settings.
///
/// # Errors
/// [`Error::Input`] when a contig is not in the reference; [`Error::Usage`] when the shard index
/// is beyond the plan, or the flags name no shard.
pub fn call_shard(
    args: &CallArgs,
    requested: Option<&[String]>,
    reference: &PreparedReference,
) -> Result<Shard, Error> {
    let (contigs, fai) = (&reference.contigs, &reference.fai);
    if let Some(contig) = &args.contig {
        let plan = contig_plan(contigs, Some(std::slice::from_ref(contig)), fai)?;
        return plan.shards().first().cloned().ok_or_else(|| Error::Usage {
            message: format!("contig {contig} gives no shard"),
            remedy: None,
        });
    }
    let (Some(index), Some(bases)) = (args.shard, args.shard_bases.and_then(NonZeroU64::new))
    else {
        return Err(Error::Usage {
            message: "give --contig, or --shard with --contigs and --shard-bases".into(),
            remedy: Some(
                "set CHROMOSOME, or SHARD, CHROMOSOMES and BIOJOB_CALL_SHARD_BASES".into(),
            ),
        });
    };
    let plan = shard_plan(contig_plan(contigs, requested, fai)?, Some(bases));
    let count = plan.shards().len();
    plan.shards()
        .get(index)
        .cloned()
        .ok_or_else(|| Error::Usage {
            message: format!(
                "shard {index} is not in the plan: {count} shards of at most {bases} bases"
            ),
            remedy: Some(format!(
                "give a shard from 0 to {}",
                count.saturating_sub(1)
            )),
        })
}

/// `biojob plan-shards`: prints `{"shardBases": N, "shards": [0, 1, …], "regions": [...]}`, the
/// plan of the contigs cut into shards of at most `--shard-bases` bases, read from the
/// reference's `.fai` (`shards` and `shardBases` are the execution input's `params.shards` and
/// `params.shardBases`; `regions` says what each shard covers).
///
/// # Errors
/// [`Failure`] when the `.fai` cannot be read, a contig is not in it, or the contig list does
/// not parse.
pub fn plan_shards(args: &PlanShardsArgs) -> Result<(), Failure> {
    let fai = camino::Utf8PathBuf::from(format!("{}.fai", args.reference));
    let contigs =
        biojob_formats::read_fai(&fai).map_err(|error| Failure::Pipeline(error.into()))?;
    let requested = args
        .contigs
        .as_deref()
        .map(crate::steps::parse_contigs)
        .transpose()?;
    let bases = NonZeroU64::new(args.shard_bases)
        .ok_or_else(|| Failure::Usage(anyhow::anyhow!("--shard-bases must be at least 1"), None))?;
    let plan = shard_plan(
        contig_plan(&contigs, requested.as_deref(), &fai)?,
        Some(bases),
    );
    let shards: Vec<usize> = plan.shards().iter().map(|shard| shard.index).collect();
    let regions: Vec<&str> = plan.shards().iter().map(Shard::region).collect();
    let json = serde_json::json!({
        "shardBases": bases.get(),
        "shards": shards,
        "regions": regions,
    });
    #[allow(clippy::print_stdout, reason = "the plan is the command's output")]
    {
        println!("{json}");
    }
    Ok(())
}

/// The FASTQ pair of chunk `chunk` under the run prefix, as the split job wrote it.
pub fn chunk_fastqs(job: &Job, chunk: usize) -> (ObjectUri, ObjectUri) {
    let (name_1, name_2) = fastq_chunk_names(&chunk_prefix(&job.sample), chunk);
    (job.run_prefix.join(&name_1), job.run_prefix.join(&name_2))
}

/// Renames an align job's outputs to chunk `chunk`'s names, `<sample>.align.<chunk>.bam` and
/// its `.bai`, for the merge job; returns them.
///
/// # Errors
/// [`biojob_pipeline::Error::Io`] when a rename fails.
pub fn chunk_bam(
    job: &Job,
    chunk: usize,
    aligned_bam: &Utf8Path,
    aligned_bai: &Utf8Path,
) -> Result<Vec<Utf8PathBuf>, Error> {
    let dir = aligned_bam
        .parent()
        .map(ToOwned::to_owned)
        .unwrap_or_default();
    let bam = dir.join(scratch_file_name(
        &job.sample,
        StepId::Align,
        Some(chunk),
        "bam",
    ));
    let bai = Utf8PathBuf::from(format!("{bam}.bai"));
    std::fs::rename(aligned_bam, &bam).map_err(Error::io("renaming to", &bam))?;
    std::fs::rename(aligned_bai, &bai).map_err(Error::io("renaming to", &bai))?;
    Ok(vec![bam, bai])
}

fn chunk_count(chunks: u64) -> Result<NonZeroUsize, Failure> {
    usize::try_from(chunks)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| {
            crate::steps::usage(
                format!("CHUNKS {chunks} is not a chunk count"),
                "give CHUNKS from 1",
            )
        })
}

/// The split job: streams the FASTQ pair from where it is (an S3 object is read as it
/// downloads, never copied to scratch whole), deals blocks of `BIOJOB_ALIGN_CHUNK_PAIRS` read
/// pairs in turn into `CHUNKS` chunks ([`biojob_formats::split_fastq_pair`] with
/// [`ChunkLayout::InTurn`], the job's threads compressing), and stages out
/// `<sample>.split.<chunk>_R1.fastq.gz` and `_R2` for each chunk. A transfer that fails or
/// does not verify fails the job with the staging class, and nothing is published.
pub fn split(args: SplitArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(&args.step, &args.fastqs.overrides())?;
    let chunks = chunk_count(args.chunks)?;
    let block_pairs = NonZeroU64::new(args.chunk_pairs)
        .ok_or_else(|| crate::steps::usage("BIOJOB_ALIGN_CHUNK_PAIRS is 0", "give it from 1"))?;
    let (fastq_1, fastq_2) = job.environment.fastqs(&job.sample)?;
    let run = StepRun::new(&args.runtime, cancel, stores, StepId::Split)?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let result = (|| {
        let fastq_bytes = run
            .size_of(&fastq_1)?
            .saturating_add(run.size_of(&fastq_2)?);
        context.preflight(&biojob_pipeline::split_space_need(fastq_bytes))?;
        let what = "splitting the FASTQ pair";
        context.check_stopped(what)?;
        let stop = || context.check_stopped(what).is_err();
        let (source_1, failure_1) = run.fastq_source(&fastq_1)?;
        let (source_2, failure_2) = run.fastq_source(&fastq_2)?;
        let written = split_fastq_pair(
            source_1,
            source_2,
            &SplitRequest {
                layout: ChunkLayout::InTurn {
                    block_pairs,
                    chunks,
                },
                dir: &run.work_dir,
                prefix: &chunk_prefix(&job.sample),
                threads: NonZeroUsize::new(context.resources.threads).unwrap_or(NonZeroUsize::MIN),
                stop: &stop,
            },
        )
        .map_err(|error| {
            // Stopped: the stop is what to report. A stream that failed shows through the
            // FASTQ reader as a read error; the transfer's own error carries the right class
            // (staging, retryable).
            let streamed = [failure_1, failure_2]
                .into_iter()
                .flatten()
                .find_map(|failure| failure.take());
            context
                .check_stopped(what)
                .err()
                .or(streamed.map(Error::from))
                .unwrap_or(Error::from(error))
        })?;
        let files = written
            .into_iter()
            .flat_map(|chunk| [chunk.fastq_1, chunk.fastq_2])
            .collect();
        Ok(StepDone::ran_uncached(Vec::new(), files))
    })();
    run.finish(
        StepId::Split,
        None,
        &job.sample,
        &job.run_prefix,
        started,
        clock,
        result,
    )
}

/// The merge job: stages the reference `.fai` and `<sample>.align.<chunk>.bam` for each of the
/// `CHUNKS` chunks, merges them ([`biojob_pipeline::merge`]), and stages out
/// `<sample>.align.bam` and its `.bai`, the names the call job reads.
pub fn merge(args: MergeArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(&args.step, &args.read_group.overrides())?;
    let chunks = chunk_count(args.chunks)?;
    let read_group = job.environment.read_group(&job.sample)?;
    let run = StepRun::new(&args.runtime, cancel, stores, StepId::Merge)?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let result = (|| {
        let bams: Vec<ObjectUri> = (0..chunks.get())
            .map(|chunk| {
                job.run_prefix.join(&scratch_file_name(
                    &job.sample,
                    StepId::Align,
                    Some(chunk),
                    "bam",
                ))
            })
            .collect();
        let bam_bytes = bams.iter().try_fold(0u64, |sum, uri| {
            Ok::<u64, Error>(sum.saturating_add(run.size_of(uri)?))
        })?;
        run.preflight(&bams.iter().collect::<Vec<_>>(), |staged| {
            biojob_pipeline::gather_space_need(staged, bam_bytes.saturating_mul(2))
        })?;
        let mut local = Vec::with_capacity(bams.len());
        for bam in &bams {
            local.push(run.stage(bam, "chunk BAM", "run the align job for every chunk first")?);
        }
        let (reference, mut commands) =
            run.reference(&job, &[".fai"], &args.runtime, false, &context)?;
        // The request's FASTQ fields are not read by merge.
        let output = biojob_pipeline::merge(
            &AlignRequest {
                sample: &job.sample,
                read_group: &read_group,
                reference: &reference,
                fastq_1: &run.work_dir,
                fastq_2: &run.work_dir,
                work_dir: &run.work_dir,
            },
            &local,
            &context,
        )?;
        commands.extend(output.commands);
        Ok(StepDone::ran_uncached(
            commands,
            vec![output.bam, output.bai],
        ))
    })();
    run.finish(
        StepId::Merge,
        None,
        &job.sample,
        &job.run_prefix,
        started,
        clock,
        result,
    )
}
