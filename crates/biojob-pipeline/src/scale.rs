//! Scaling a run out: calling shards cut by size (and, with chunking, alignment over FASTQ
//! chunks), with the settings that choose them.

use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use biojob_core::{ScatterPlan, StepId};
use biojob_formats::{ChunkLayout, FastqPairStats, FastqSource, SplitRequest, split_fastq_pair};
use biojob_process::{CancelReason, ProcessError, StageReport};

use crate::{
    AlignOutput, AlignRequest, Error, RunObserver, StepContext, TaskLabel, TaskRecord, align, merge,
};

/// How a run is scattered beyond one shard per contig.
///
/// The default scatters nothing more: one alignment of the whole FASTQ pair, one calling shard
/// per contig.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleOptions {
    /// Calling shards of at most this many bases ([`ScatterPlan::by_size`]); `None`: one shard
    /// per contig ([`ScatterPlan::by_contig`]).
    pub shard_bases: Option<NonZeroU64>,
    /// Read pairs per alignment chunk ([`align_in_chunks`]); `None`: the FASTQ pair is aligned
    /// whole.
    pub chunk_pairs: Option<NonZeroU64>,
    /// Chunks aligned at once; 0 or 1: one at a time with every thread.
    pub workers: usize,
}

/// The calling plan for `by_contig` (a [`ScatterPlan::by_contig`] plan of the requested
/// contigs, from [`crate::contig_plan`]): the same plan when `shard_bases` is `None`, else its
/// contigs cut and grouped into shards of at most `shard_bases` bases.
pub fn shard_plan(by_contig: ScatterPlan, shard_bases: Option<NonZeroU64>) -> ScatterPlan {
    match shard_bases {
        None => by_contig,
        Some(max) => ScatterPlan::by_size(by_contig.contigs(), max),
    }
}

/// The prefix of the chunk files of `sample`: `{sample}.split` (chunk files are
/// `{sample}.split.{chunk:04}_R1.fastq.gz` and `_R2`).
pub fn chunk_prefix(sample: &biojob_core::SampleId) -> String {
    format!("{sample}.{}", StepId::Split)
}

/// Runs `work` on every item of `items` on at most `workers` threads, items taken in the
/// order of `order` (positions in `items`); returns the results by position. After the first
/// failure (`Err`), items not yet started are not started: their slot is `None`.
fn on_workers<T: Sync, R: Send>(
    items: &[T],
    order: Vec<usize>,
    workers: usize,
    work: impl Fn(usize, &T) -> Result<R, Error> + Sync,
) -> Vec<Option<Result<R, Error>>> {
    let queue = Mutex::new(order.into_iter());
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R, Error>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    if failed.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(position) = next else { break };
                    let result = work(position, &items[position]);
                    if result.is_err() {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    if let Ok(mut slots) = results.lock() {
                        slots[position] = Some(result);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

/// Aligns a FASTQ pair in chunks: split it into consecutive chunks of `chunk_pairs` read pairs
/// ([`biojob_formats::split_fastq_pair`] with the run's threads compressing, into
/// `<work_dir>/chunks`), align each chunk
/// ([`align`], in `<work_dir>/chunks/<chunk:04>`) on `workers` threads at once, each with an
/// equal part of the CPU and memory budget, then [`merge`] the chunks' BAMs into
/// `{sample}.align.bam` in `work_dir`. One [`TaskRecord`] per task goes to `tasks`: `split`,
/// `align` per chunk (`shard`: the chunk's index), `merge`.
///
/// The merged BAM holds the same alignments as aligning the pair whole when every chunk
/// boundary is a boundary of bwa's batches (`-K`, [`crate::BWA_BATCH_BASES`]): bwa reads a
/// batch pair by pair until the batch holds at least `-K` bases of both mates together (bwa
/// 0.7.17, `bseq_read`), and estimates the insert size distribution per batch. With reads of
/// fixed length L per mate, a batch is `ceil(K / 2L)` pairs, so `chunk_pairs` must be a multiple
/// of it (49,505 pairs for 2×101, 33,113 for 2×151 at `-K 10000000`). Even then two things
/// differ, neither an alignment: `samtools merge` rewrites each record's `RG` tag, which moves
/// it to the end of the optional fields, and bwa breaks ties between equally good hits with a
/// hash of the read's position in the input, which restarts in each chunk, so the order of the
/// alternative hits in `XA` (and, for a read with equally good hits, which is primary, at
/// MAPQ 0) can differ. With chunks that do not fall on batch boundaries, pairs whose batch
/// changed get another insert size estimate: proper-pair flags, mate rescue and mapping
/// qualities can differ; the set of reads is always the same.
///
/// # Errors
/// As [`biojob_formats::split_fastq_pair`] ([`Error::Fastq`]), [`align`] and [`merge`], each
/// wrapped with its task (`split`, `align chunk 0003`, `merge`).
pub fn align_in_chunks(
    request: &AlignRequest<'_>,
    chunk_pairs: NonZeroU64,
    workers: usize,
    context: &StepContext,
    observer: &dyn RunObserver,
    tasks: &mut Vec<TaskRecord>,
) -> Result<AlignOutput, Error> {
    let record = |step: StepId,
                  shard: Option<usize>,
                  label: &TaskLabel,
                  started: SystemTime,
                  clock: Instant,
                  commands: &[StageReport],
                  result: Result<(), &Error>| {
        let wall = clock.elapsed();
        observer.finished(label, result.is_ok(), wall);
        let key = shard.map(|index| (index, ""));
        let record = TaskRecord {
            contig: None,
            ..TaskRecord::new(step, key, started, wall, commands)
        };
        match result {
            Ok(()) => record,
            Err(error) => record.failed(error),
        }
    };

    // Split.
    let chunk_dir = request.work_dir.join("chunks");
    let label = TaskLabel::step(StepId::Split);
    observer.started(&label);
    let (started, clock) = (SystemTime::now(), Instant::now());
    let split = std::fs::create_dir_all(&chunk_dir)
        .map_err(Error::io("creating", &chunk_dir))
        .and_then(|()| {
            let what = "splitting the FASTQ pair";
            context.check_stopped(what)?;
            let stop = || context.check_stopped(what).is_err();
            split_fastq_pair(
                FastqSource::file(request.fastq_1),
                FastqSource::file(request.fastq_2),
                &SplitRequest {
                    layout: ChunkLayout::Consecutive { chunk_pairs },
                    dir: &chunk_dir,
                    prefix: &chunk_prefix(request.sample),
                    threads: NonZeroUsize::new(context.resources.threads)
                        .unwrap_or(NonZeroUsize::MIN),
                    stop: &stop,
                },
            )
            .map_err(|error| {
                // Stopped: the stop (exit 143 or the time limit) is what to report.
                context
                    .check_stopped(what)
                    .err()
                    .unwrap_or(Error::from(error))
            })
        })
        .map_err(|error| error.in_task(StepId::Split.as_str()));
    tasks.push(record(
        StepId::Split,
        None,
        &label,
        started,
        clock,
        &[],
        split.as_ref().map(|_| ()),
    ));
    let chunks = split?;

    // Align each chunk.
    let workers = workers.clamp(1, chunks.len());
    let share = StepContext {
        resources: crate::Resources {
            threads: (context.resources.threads / workers).max(1),
            memory_bytes: context.resources.memory_bytes / workers as u64,
        },
        ..context.clone()
    };
    let cancel = context.supervisor.cancel_token().child();
    let share = StepContext {
        supervisor: share.supervisor.with_cancel(cancel.clone()),
        ..share
    };
    let done = Mutex::new(Vec::new());
    let results = on_workers(&chunks, (0..chunks.len()).collect(), workers, |_, chunk| {
        let name = format!("{} chunk {:04}", StepId::Align, chunk.index);
        let label = TaskLabel::shard(StepId::Align, &format!("chunk {:04}", chunk.index));
        observer.started(&label);
        let (started, clock) = (SystemTime::now(), Instant::now());
        let chunk_context = share.for_step(&name);
        let work_dir = chunk_dir.join(format!("{:04}", chunk.index));
        let aligned = align(
            &AlignRequest {
                fastq_1: &chunk.fastq_1,
                fastq_2: &chunk.fastq_2,
                work_dir: &work_dir,
                ..request.clone()
            },
            &chunk_context,
        )
        .map_err(|error| error.in_task(name));
        let (commands, result) = match &aligned {
            Ok(output) => (output.commands.clone(), Ok(())),
            Err(error) => {
                cancel.cancel(CancelReason::Sibling);
                (Vec::new(), Err(error))
            }
        };
        let task = record(
            StepId::Align,
            Some(chunk.index),
            &label,
            started,
            clock,
            &commands,
            result,
        );
        if let Ok(mut done) = done.lock() {
            done.push(task);
        }
        aligned
    });
    let mut chunk_tasks = done.into_inner().unwrap_or_default();
    chunk_tasks.sort_by_key(|task| task.shard);
    tasks.extend(chunk_tasks);
    let mut bams = Vec::with_capacity(chunks.len());
    let mut fastq = FastqPairStats::default();
    let mut first_error = None;
    for (chunk, result) in chunks.iter().zip(results) {
        match result {
            Some(Ok(output)) => {
                fastq.pairs += output.fastq.pairs;
                fastq.bases_1 += output.fastq.bases_1;
                fastq.bases_2 += output.fastq.bases_2;
                fastq.bytes_read_1 += output.fastq.bytes_read_1;
                fastq.bytes_read_2 += output.fastq.bytes_read_2;
                bams.push(output.bam);
            }
            Some(Err(error)) => {
                let by_sibling = matches!(
                    error.root(),
                    Error::Process(ProcessError::Cancelled {
                        reason: CancelReason::Sibling,
                        ..
                    })
                );
                if first_error.is_none() && !by_sibling {
                    first_error = Some(error);
                }
            }
            None => {
                let error = Error::Usage {
                    message: format!("chunk {:04} was not aligned", chunk.index),
                    remedy: None,
                };
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }

    // Merge.
    let label = TaskLabel::step(StepId::Merge);
    observer.started(&label);
    let (started, clock) = (SystemTime::now(), Instant::now());
    let merged = merge(request, &bams, &context.for_step(StepId::Merge.as_str()))
        .map_err(|error| error.in_task(StepId::Merge.as_str()));
    let commands = merged
        .as_ref()
        .map_or(&[][..], |output| output.commands.as_slice());
    tasks.push(record(
        StepId::Merge,
        None,
        &label,
        started,
        clock,
        commands,
        merged.as_ref().map(|_| ()),
    ));
    let output = merged?;
    Ok(AlignOutput {
        bam: output.bam,
        bai: output.bai,
        fastq,
        commands: Vec::new(),
    })
}
