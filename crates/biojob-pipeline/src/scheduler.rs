//! `biojob run`: a small local scheduler over the same step jobs that AWS Batch runs one by
//! one ([`StepJob`]): prepare-reference, align (or split, align per chunk, merge), call per
//! shard in parallel, gather, qc, in one scratch directory, each task's outputs published as
//! it succeeds and the run manifest written at the end whatever happened.

use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use biojob_core::{
    Classify, Contig, ExitClass, ScatterPlan, Shard, StepId, suggest_contig_mapping,
};
use biojob_formats::ChunkLayout;
use biojob_scratch::{Attempt, JobId, JobScratch};
use biojob_storage::{ObjectUri, Stores};
use camino::{Utf8Path, Utf8PathBuf};
use tracing::{info_span, warn};

use crate::cache::{
    EarlierTasks, carry_forward, carry_forward_from, earlier_run_manifest, try_reuse,
};
use crate::job::{cancelled_by_sibling, reports_of};
use crate::lock::RunLock;
use crate::manifest::{error_chain, publish_json, seconds, timestamp};
use crate::{
    AlignStep, BAI, BAM, CallStep, CostSummary, Earlier, Engine, Error, FASTQ_1, FASTQ_2,
    GatherInputs, GatherStep, JobInput, JobOutcome, JobOutput, JobTarget, KeyPolicy,
    ManifestInputs, MergeStep, QcRun, QcStep, ReferenceInput, ReferenceOptions, ReferenceUse,
    RunManifest, RunObserver, ShardRequest, SplitStep, StepContext, StepDefinition, StepJob,
    TaskLabel, TaskRecord, TaskShard, TaskStatus, ToolRecord, VCF, WorkflowInput, check_input,
    chunk_bam_role, object_size, prepare_reference, publish_logs, stage_input, tbi_role, vcf_role,
};

/// How a run is scattered beyond one shard per contig. The default scatters nothing more:
/// one alignment of the whole FASTQ pair, one calling shard per contig.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleOptions {
    /// Calling shards of at most this many bases ([`ScatterPlan::by_size`]); `None`: one shard
    /// per contig ([`ScatterPlan::by_contig`]), unless `balance_shards`.
    pub shard_bases: Option<NonZeroU64>,
    /// Without `shard_bases`: cut the calling into shards of the size
    /// [`balanced_shard_bases`] picks for the run's threads, when one shard per contig would
    /// leave threads idle at the end of calling.
    pub balance_shards: bool,
    /// Read pairs per alignment chunk (split, align each chunk, merge); `None`: the FASTQ pair
    /// is aligned whole.
    pub chunk_pairs: Option<NonZeroU64>,
    /// With `chunk_pairs`, one sample's pair is cut as an AWS split job cuts it: blocks of
    /// `chunk_pairs` read pairs dealt in turn into this many chunks (`params.chunks` of the
    /// execution input); `None`: consecutive chunks of `chunk_pairs` read pairs.
    pub chunks: Option<NonZeroUsize>,
    /// Chunks aligned at once; 0 or 1: one at a time with every thread.
    pub workers: usize,
    /// With `shard_bases`, the shards the execution input lists (`params.shards`): the run
    /// refuses a plan of another number of shards, as the state machine's gather would fail.
    pub shards: Option<NonZeroUsize>,
}

impl ScaleOptions {
    /// How one sample's FASTQ pair is cut into chunks (`chunk_pairs`, `chunks`), or `None`
    /// when it is aligned whole.
    pub fn chunk_layout(&self) -> Option<ChunkLayout> {
        self.chunk_pairs.map(|chunk_pairs| match self.chunks {
            Some(chunks) => ChunkLayout::InTurn {
                block_pairs: chunk_pairs,
                chunks,
            },
            None => ChunkLayout::Consecutive { chunk_pairs },
        })
    }
}

/// The calling plan for `by_contig` (a [`ScatterPlan::by_contig`] plan of the requested
/// contigs, from [`contig_plan`]): the same plan when `shard_bases` is `None`, else its
/// contigs cut and grouped into shards of at most `shard_bases` bases.
pub fn shard_plan(by_contig: ScatterPlan, shard_bases: Option<NonZeroU64>) -> ScatterPlan {
    match shard_bases {
        None => by_contig,
        Some(max) => ScatterPlan::by_size(by_contig.contigs(), max),
    }
}

/// The fewest bases of a calling shard that [`balanced_shard_bases`] cuts: below this, a
/// shard costs about as much in starting `bcftools mpileup` and `call`, and in the pileup
/// before its region ([`crate::REGION_PILEUP_PAD_BASES`]), as it saves in idle time.
pub const BALANCED_SHARD_MIN_BASES: u64 = 500_000;

/// How far over an even share of the bases the busiest worker may finish for a calling plan
/// to count as balanced, in percent.
const BALANCE_TOLERANCE_PERCENT: u64 = 5;

/// Bases the busiest of `workers` calls when `shards` (their bases) run as a local run runs
/// them: most bases first, each on the first worker free.
fn busiest_worker_bases(shards: impl IntoIterator<Item = u64>, workers: usize) -> u64 {
    let mut shards: Vec<u64> = shards.into_iter().collect();
    shards.sort_unstable_by(|a, b| b.cmp(a));
    let mut loads = vec![0u64; workers.max(1)];
    for bases in shards {
        if let Some(least) = loads.iter_mut().min() {
            *least += bases;
        }
    }
    loads.into_iter().max().unwrap_or(0)
}

/// The calling shard size for `plan` (one shard per contig) on `workers` workers, when it
/// is given none: `None` (keep one shard per contig) when the contigs, most bases first,
/// already end within 5 % of an even share of the bases on every worker; else the largest
/// `bases ÷ (k × workers)` (k = 1 to 8) whose shards ([`ScatterPlan::by_size`]) do, or, when
/// none does, the one that ends soonest if it ends sooner than the contigs. Sizes below
/// [`BALANCED_SHARD_MIN_BASES`] are not tried. The plan's records are those of one shard per
/// contig (docs/scaling.md).
pub fn balanced_shard_bases(plan: &ScatterPlan, workers: usize) -> Option<NonZeroU64> {
    let workers = workers.max(1);
    let total: u64 = plan.shards().iter().map(Shard::bases).sum();
    let even = total.div_ceil(workers as u64);
    let balanced = |busiest: u64| busiest * 100 <= even * (100 + BALANCE_TOLERANCE_PERCENT);
    let by_contig = busiest_worker_bases(plan.shards().iter().map(Shard::bases), workers);
    if workers == 1 || balanced(by_contig) {
        return None;
    }
    let contigs = plan.contigs();
    let mut best: Option<(u64, NonZeroU64)> = None;
    for k in 1..=8u64 {
        let size = total.div_ceil(k * workers as u64);
        let Some(size) = NonZeroU64::new(size).filter(|s| s.get() >= BALANCED_SHARD_MIN_BASES)
        else {
            break;
        };
        let sized = ScatterPlan::by_size(contigs.iter().cloned(), size);
        let busiest = busiest_worker_bases(sized.shards().iter().map(Shard::bases), workers);
        if balanced(busiest) {
            return Some(size);
        }
        if best.is_none_or(|(fewest, _)| busiest < fewest) {
            best = Some((busiest, size));
        }
    }
    best.filter(|(busiest, _)| *busiest < by_contig)
        .map(|(_, size)| size)
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run id: the last part of the output location.
    pub run_id: String,
    /// The job whose scratch directory the run uses: `AWS_BATCH_JOB_ID` under AWS Batch, else
    /// the run id.
    pub job_id: JobId,
    /// The attempt: `AWS_BATCH_JOB_ATTEMPT` under AWS Batch, else 1.
    pub attempt: Attempt,
    /// Where reference indexes go when the reference's directory is read-only.
    pub cache_dir: Utf8PathBuf,
    /// Reuse the finished steps that the output directory's `manifest.json` records with the
    /// same cache key (docs/resume.md); the others run.
    pub resume: bool,
    /// Shards cut by size, chunks of reads (default: neither).
    pub scale: ScaleOptions,
}

/// A run id from the current time: `YYYYMMDDTHHMMSSZ-` and four hex digits from the process
/// id and the clock, e.g. `20261129T181012Z-3fa1`.
pub fn new_run_id() -> String {
    let now = SystemTime::now();
    let stamp: String = timestamp(now)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mix = (std::process::id() ^ nanos) & 0xffff;
    format!("{stamp}-{mix:04x}")
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The manifest, as published.
    pub manifest: RunManifest,
    /// `<JOB_OUTPUT_PREFIX>/<sample>/<run id>`.
    pub output_dir: ObjectUri,
    /// The final VCF, when the run succeeded.
    pub vcf: Option<ObjectUri>,
    /// Why the run failed.
    pub error: Option<Error>,
    /// The scratch directory, when kept.
    pub kept_scratch: Option<Utf8PathBuf>,
    /// Whether `manifest.json` (and with it the logs) was published under `output_dir`.
    pub manifest_published: bool,
}

/// The shards for the requested contigs, in reference order.
///
/// # Errors
/// [`Error::Input`] naming the first missing contig, the available ones and, when a `chr`
/// prefix (or `MT`/`M`) difference explains it, the name that would match.
pub fn contig_plan(
    contigs: &[Contig],
    requested: Option<&[String]>,
    fai: &Utf8Path,
) -> Result<ScatterPlan, Error> {
    let plan = ScatterPlan::by_contig(contigs.iter().cloned());
    let Some(requested) = requested else {
        return Ok(plan);
    };
    plan.restricted_to(requested).map_err(|missing| {
        let names: Vec<&str> = contigs.iter().map(|c| c.name.as_str()).collect();
        let shown: Vec<&str> = names.iter().take(25).copied().collect();
        let more = names
            .len()
            .checked_sub(shown.len())
            .filter(|n| *n > 0)
            .map_or(String::new(), |n| format!(" and {n} more"));
        let first = &missing[0];
        let mapped: Vec<String> = missing
            .iter()
            .filter_map(|m| suggest_contig_mapping(m, names.iter().copied()).map(|s| format!("{m:?} → {s:?}")))
            .collect();
        let remedy = if mapped.is_empty() {
            "use contig names from the reference's .fai in params.chromosomes".to_owned()
        } else {
            format!(
                "the reference names contigs differently; use {} in params.chromosomes",
                mapped.join(", ")
            )
        };
        Error::Input {
            message: format!(
                "contig {first:?} is not in the reference {fai} (requested but missing: {}); available: {}{more}",
                missing.join(", "),
                shown.join(", ")
            ),
            remedy: Some(remedy),
        }
    })
}

/// The remedy for a FASTQ that is missing.
pub fn fastq_remedy(sample: &biojob_core::SampleId) -> String {
    format!(
        "check SOURCE_DATA_PREFIX and SAMPLE_ID (files are named {sample}_R1.fastq.gz and {sample}_R2.fastq.gz), or give FASTQ_1 and FASTQ_2"
    )
}

/// Runs the whole workflow for one sample; see the module documentation. Preflight, before
/// any tool other than the version probes runs: the reference, both FASTQs and the
/// requested contigs exist (contigs are checked against the `.fai` before the bwa index is
/// built or anything is aligned), and a local output directory can be written.
pub fn run_workflow(
    input: &WorkflowInput,
    options: &RunOptions,
    engine: &Engine,
    observer: &dyn RunObserver,
) -> RunOutcome {
    let started = SystemTime::now();
    let clock = Instant::now();
    let output_dir = input.output_dir(&options.run_id);
    let _span = info_span!("run", sample = %input.sample, run_id = %options.run_id).entered();
    let manifest = RunManifest {
        run_id: options.run_id.clone(),
        sample: input.sample.to_string(),
        read_group: input.read_group.to_header_line(),
        inputs: ManifestInputs {
            fastq_1: input.fastq_1.to_string(),
            fastq_2: input.fastq_2.to_string(),
            reference: String::new(),
            contigs: Vec::new(),
            samplesheet: None,
        },
        output_prefix: output_dir.to_string(),
        resources: engine.resources,
        tools: ToolRecord::list(&engine.toolset, &engine.versions),
        started_at: timestamp(started),
        ..RunManifest::default()
    };

    in_output_dir(
        manifest,
        output_dir,
        options,
        engine,
        clock,
        |manifest, setup| {
            setup
                .run(input, options, engine, observer)
                .execute(manifest)
        },
    )
}

/// What a run's body gets from [`in_output_dir`]: the job's scratch and the earlier run's
/// records.
pub(crate) struct RunSetup<'a> {
    pub(crate) context: &'a StepContext,
    pub(crate) work_dir: &'a Utf8Path,
    pub(crate) output_dir: &'a ObjectUri,
    /// The earlier runs' finished tasks, when resuming.
    pub(crate) earlier: Option<&'a EarlierTasks>,
    /// The earlier run's manifest in this output directory, read before this run writes its
    /// own there.
    pub(crate) carried: Option<&'a RunManifest>,
}

impl<'a> RunSetup<'a> {
    /// The run of `input` in this setup, its manifest checkpointed as tasks finish.
    pub(crate) fn run(
        &self,
        input: &'a WorkflowInput,
        options: &'a RunOptions,
        engine: &'a Engine,
        observer: &'a dyn RunObserver,
    ) -> Run<'a> {
        Run {
            input,
            options,
            engine,
            context: self.context,
            work_dir: self.work_dir,
            output_dir: self.output_dir,
            earlier: self.earlier,
            carried: self.carried,
            checkpoints: true,
            observer,
        }
    }
}

/// Runs `body` (a single-sample run or a cohort's) in `output_dir`: checks that it can be
/// written, takes the run lock (a run refused here writes nothing there, not even its
/// manifest: it would replace the other run's), opens the job's scratch, reads the earlier
/// runs' records, then [`finish`]es with `body`'s result and releases the lock.
pub(crate) fn in_output_dir(
    mut manifest: RunManifest,
    output_dir: ObjectUri,
    options: &RunOptions,
    engine: &Engine,
    clock: Instant,
    body: impl FnOnce(&mut RunManifest, &RunSetup<'_>) -> Result<ObjectUri, Error>,
) -> RunOutcome {
    if let Err(error) = check_output_dir(&output_dir) {
        return finish(manifest, output_dir, None, Err(error), None, engine, clock);
    }
    let lock = match RunLock::acquire(
        &engine.stores,
        &output_dir,
        &options.run_id,
        &options.job_id,
        options.attempt,
    ) {
        Ok(lock) => lock,
        Err(error) => {
            manifest.status = TaskStatus::Failed;
            manifest.exit_class = error.exit_class();
            manifest.exit_code = manifest.exit_class.code();
            manifest.error = Some(error_chain(&error));
            return RunOutcome {
                manifest,
                output_dir,
                vcf: None,
                error: Some(error),
                kept_scratch: None,
                manifest_published: false,
            };
        }
    };
    let (scratch, space) = match engine.scratch.open(&options.job_id, options.attempt) {
        Ok(opened) => opened,
        Err(error) => {
            let outcome = finish(manifest, output_dir, None, Err(error), None, engine, clock);
            lock.release();
            return outcome;
        }
    };
    let work_dir = scratch.dir().to_owned();
    let context = engine.context(&work_dir.join("logs"), &space);
    let earlier = if options.resume {
        earlier_tasks(&engine.stores, &output_dir)
    } else {
        EarlierTasks::default()
    };
    let carried = earlier_run_manifest(&engine.stores, &output_dir.join("manifest.json"));
    let setup = RunSetup {
        context: &context,
        work_dir: &work_dir,
        output_dir: &output_dir,
        earlier: options.resume.then_some(&earlier),
        carried: carried.as_ref(),
    };
    let result = body(&mut manifest, &setup);
    manifest.scratch = Some(space.usage());
    let outcome = finish(
        manifest,
        output_dir.clone(),
        Some(scratch),
        result,
        carried.as_ref(),
        engine,
        clock,
    );
    lock.release();
    outcome
}

/// Checks, before any work, that a local output directory can be created and written to (a
/// probe file is created and removed). `s3://` prefixes are not probed: that would need a
/// write, and the job role may lack the right to delete.
///
/// # Errors
/// [`Error::Usage`] (not retryable: permissions and paths do not fix themselves) naming the
/// directory and the operating system's reason.
pub(crate) fn check_output_dir(output_dir: &ObjectUri) -> Result<(), Error> {
    let Some(dir) = output_dir.local_path() else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .and_then(|()| {
            tempfile::Builder::new()
                .prefix(".biojob-write-probe")
                .tempfile_in(dir)
                .map(drop)
        })
        .map_err(|error| Error::Usage {
            message: format!("the output directory {dir} cannot be written: {error}"),
            remedy: Some(
                "give a JOB_OUTPUT_PREFIX (or --output-prefix) in a directory you can write to"
                    .to_owned(),
            ),
        })
}

/// Publishes the logs, removes the scratch directory (unless kept: it may be the disk that
/// ran out, and the manifest is written outside it), then publishes the manifest, with the
/// finished tasks of the manifest it replaces (`carried`, read when the run started; read now
/// when `None`). A manifest that cannot be published fails a run that otherwise succeeded
/// (output staging, exit 30).
pub(crate) fn finish(
    mut manifest: RunManifest,
    output_dir: ObjectUri,
    scratch: Option<JobScratch>,
    result: Result<ObjectUri, Error>,
    carried: Option<&RunManifest>,
    engine: &Engine,
    clock: Instant,
) -> RunOutcome {
    let (mut vcf, mut error) = match result {
        Ok(vcf) => (Some(vcf), None),
        Err(error) => (None, Some(error)),
    };
    let mut kept_scratch = None;
    if let Some(scratch) = scratch {
        let log_dir = scratch.dir().join("logs");
        if let Err(publish_error) = publish_logs(&engine.stores, &log_dir, &output_dir) {
            warn!(error = %error_chain(&publish_error), "could not publish the logs");
        }
        match scratch.finish(engine.scratch.keep) {
            Ok(kept) => kept_scratch = kept,
            Err(error) => {
                warn!(error = %error_chain(&error), "could not remove the scratch directory")
            }
        }
    }
    let manifest_uri = output_dir.join("manifest.json");
    match carried {
        Some(earlier) => carry_forward_from(earlier, &mut manifest),
        None => carry_forward(&engine.stores, &manifest_uri, &mut manifest),
    }
    let settle = |manifest: &mut RunManifest, error: &Option<Error>| {
        manifest.finished_at = timestamp(SystemTime::now());
        manifest.wall_seconds = seconds(clock.elapsed());
        match error {
            None => {
                manifest.status = TaskStatus::Succeeded;
                manifest.exit_class = ExitClass::Ok;
                manifest.error = None;
            }
            Some(error) => {
                manifest.status = TaskStatus::Failed;
                manifest.exit_class = error.exit_class();
                manifest.error = Some(error_chain(error));
            }
        }
        manifest.exit_code = manifest.exit_class.code();
    };
    settle(&mut manifest, &error);
    manifest.vcf = vcf.as_ref().map(ToString::to_string);
    manifest.cost = Some(CostSummary::for_run(
        &manifest.tasks,
        manifest.resources,
        engine.prices,
    ));
    if let Err(remove_error) = remove_unrecorded(&engine.stores, &output_dir, &manifest)
        && error.is_none()
    {
        error = Some(remove_error.in_task("removing files the manifest does not record"));
        vcf = None;
        settle(&mut manifest, &error);
        manifest.vcf = None;
    }
    let manifest_published = match publish_json(
        &engine.stores,
        &manifest,
        &output_dir,
        "manifest.json",
    ) {
        Ok(_) => true,
        Err(publish_error) => {
            warn!(uri = %manifest_uri, error = %error_chain(&publish_error), "could not publish the manifest");
            if error.is_none() {
                error = Some(publish_error.in_task("publishing manifest.json"));
                vcf = None;
                settle(&mut manifest, &error);
                manifest.vcf = None;
            }
            false
        }
    };
    RunOutcome {
        manifest,
        output_dir,
        vcf,
        error,
        kept_scratch,
        manifest_published,
    }
}

/// Removes from `output_dir` (one level: not `logs/`) every file that `manifest` does not
/// record as an output of one of its tasks or earlier tasks, but the manifest itself and the
/// run lock: an earlier run's final VCF or QC files, a `.partial` left by a crash. Whatever sits
/// under a final name in a run's directory is what its manifest vouches for (with its size and
/// SHA-256).
///
/// # Errors
/// A storage error (output staging class) when the directory cannot be listed or a file
/// removed.
fn remove_unrecorded(
    stores: &Stores,
    output_dir: &ObjectUri,
    manifest: &RunManifest,
) -> Result<(), Error> {
    let recorded: std::collections::BTreeSet<&str> = manifest
        .tasks
        .iter()
        .chain(&manifest.earlier_tasks)
        .flat_map(|task| &task.outputs)
        .map(|output| output.name.as_str())
        .chain(["manifest.json", crate::lock::LOCK_NAME])
        .collect();
    let store = stores.for_uri(output_dir)?;
    for name in store.list(output_dir)? {
        if !recorded.contains(name.as_str()) {
            let uri = output_dir.join(&name);
            warn!(%uri, "removing a file the run's manifest does not record");
            store.delete(&uri)?;
        }
    }
    Ok(())
}

/// The tasks that the run manifest at `<output_dir>/manifest.json` records; none (with a
/// warning) when it cannot be read: resuming never fails a run.
pub(crate) fn earlier_tasks(stores: &Stores, output_dir: &ObjectUri) -> EarlierTasks {
    let uri = output_dir.join("manifest.json");
    EarlierTasks::from_run_manifest(stores, &uri).unwrap_or_else(|error| {
        warn!(%uri, error = %error_chain(&error), "could not read the earlier manifest; every step runs");
        EarlierTasks::default()
    })
}

/// One run in progress.
pub(crate) struct Run<'a> {
    pub(crate) input: &'a WorkflowInput,
    pub(crate) options: &'a RunOptions,
    pub(crate) engine: &'a Engine,
    pub(crate) context: &'a StepContext,
    pub(crate) work_dir: &'a Utf8Path,
    pub(crate) output_dir: &'a ObjectUri,
    pub(crate) earlier: Option<&'a EarlierTasks>,
    /// The manifest this run's replaces, as it was when the run started.
    pub(crate) carried: Option<&'a RunManifest>,
    /// Whether the manifest of the run so far is written over `output_dir/manifest.json` as
    /// tasks finish ([`Run::checkpoint`]): not for a cohort's per-sample runs, whose
    /// directories hold no run manifest.
    pub(crate) checkpoints: bool,
    pub(crate) observer: &'a dyn RunObserver,
}

/// The BAM of the run and its index.
pub(crate) struct Aligned {
    pub(crate) bam: JobOutput,
    pub(crate) bai: JobOutput,
}

impl Run<'_> {
    /// Where `context` runs a task: the run's scratch directory, outputs to the output
    /// directory, intermediates kept in scratch.
    pub(crate) fn target<'b>(&'b self, context: &'b StepContext) -> JobTarget<'b> {
        JobTarget {
            context,
            work_dir: self.work_dir,
            prefix: self.output_dir,
            publish_intermediates: false,
            earlier: self.earlier.map(Earlier::Tasks),
            observer: self.observer,
        }
    }

    /// Writes the manifest of the run so far over the run's `manifest.json`: status
    /// `running`, the tasks recorded so far, the finished tasks of the manifest it replaces
    /// carried forward. Written whole through a temporary name and a rename in a local
    /// directory, by one `PUT` on S3: a reader (a resume after biojob itself was killed) finds
    /// the last manifest written whole. A failed write is logged, not fatal: the final
    /// manifest is the one that must be written.
    pub(crate) fn checkpoint(&self, manifest: &RunManifest) {
        if !self.checkpoints {
            return;
        }
        let mut snapshot = manifest.clone();
        if let Some(earlier) = self.carried {
            carry_forward_from(earlier, &mut snapshot);
        }
        snapshot.status = TaskStatus::Running;
        if let Err(error) = publish_json(
            &self.engine.stores,
            &snapshot,
            self.output_dir,
            "manifest.json",
        ) {
            warn!(error = %error_chain(&error), "could not write the manifest of the run so far");
        }
    }

    /// Runs `job` as a task: its own time limit, its record in `manifest`, written out.
    pub(crate) fn task(
        &self,
        job: &StepJob<'_>,
        manifest: &mut RunManifest,
    ) -> Result<JobOutcome, Error> {
        let context = self.context.for_step(&job.label().to_string());
        let outcome = job.run(&self.target(&context));
        manifest.tasks.push(outcome.record.clone());
        self.checkpoint(manifest);
        match outcome.error {
            Some(error) => Err(error),
            None => Ok(outcome),
        }
    }

    fn execute(&self, manifest: &mut RunManifest) -> Result<ObjectUri, Error> {
        let input = self.input;
        let stores = &self.engine.stores;
        let reference_uri = input.resolve_reference(stores)?;
        manifest.inputs.reference = reference_uri.to_string();
        self.preflight(&reference_uri)?;
        let (reference, plan) = self.prepare_reference(&reference_uri, manifest)?;
        self.checkpoint(manifest);
        manifest.inputs.contigs = plan.contigs().into_iter().map(|c| c.name).collect();
        let mut planned = vec![
            TaskLabel::new(StepId::PrepareReference, None),
            TaskLabel::new(StepId::Align, None),
        ];
        planned.extend(
            plan.shards().iter().map(|s| {
                TaskLabel::new(StepId::Call, Some(TaskShard::region(s.index, s.region())))
            }),
        );
        planned.push(TaskLabel::new(StepId::Gather, None));
        planned.push(TaskLabel::new(StepId::Qc, None));
        self.observer.planned(&planned);

        let aligned = match self.options.scale.chunk_layout() {
            None => self.align(&reference, manifest)?,
            Some(layout) => self.align_in_chunks(&reference, layout, manifest)?,
        };
        // QC's BAM part (flagstat, samtools stats, the native pass) does not need the VCF: it
        // runs beside calling and gather, on the threads they leave idle (the tail of the
        // calling shards, gather's single thread), and the QC task then does the VCF's part.
        let qc_cancel = self.context.supervisor.cancel_token().child();
        let qc_context = self
            .context
            .for_step(StepId::Qc.as_str())
            .with_cancel(qc_cancel.clone());
        let early_qc = QcStep::new(input.sample.clone(), QcRun::Given(Box::default()));
        let (gathered, bam_part) = std::thread::scope(|scope| {
            let bam_part = scope.spawn(|| {
                early_qc.bam_part(&aligned.bam.path, &reference, self.work_dir, &qc_context)
            });
            let gathered = self.call_and_gather(&plan, &reference, &aligned, manifest);
            if gathered.is_err() {
                qc_cancel.cancel(biojob_process::CancelReason::Sibling);
            }
            let bam_part = bam_part
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (gathered, bam_part)
        });
        let gathered = gathered?;
        let (Some(vcf), Some(tbi)) = (gathered.output(".vcf.gz"), gathered.output(".tbi")) else {
            return Err(missing_output("gather", "VCF"));
        };
        let mut qc = QcStep::new(
            input.sample.clone(),
            QcRun::Given(Box::new(manifest.clone())),
        );
        match bam_part {
            Ok(part) => qc = qc.with_bam_part(part),
            // The QC task does the whole, and fails the same way when the BAM is at fault.
            Err(error) => {
                warn!(error = %error_chain(&error), "QC's BAM part failed beside calling; the QC task reads the BAM again");
            }
        }
        self.task(
            &StepJob {
                definition: &qc,
                inputs: vec![
                    local_input(BAM, &aligned.bam, "BAM").unkeyed(),
                    local_input(BAI, &aligned.bai, "BAM index").unkeyed(),
                    local_input(VCF, vcf, "VCF").unkeyed(),
                    local_input("tbi", tbi, "VCF index").unkeyed(),
                ],
                reference: Some((ReferenceInput::Prepared(reference), ReferenceUse::Fasta)),
                key: KeyPolicy::None,
            },
            manifest,
        )?;
        Ok(self.output_dir.join(&vcf.name))
    }

    /// Calls every shard, then gathers their VCFs; returns gather's outcome.
    fn call_and_gather(
        &self,
        plan: &ScatterPlan,
        reference: &crate::PreparedReference,
        aligned: &Aligned,
        manifest: &mut RunManifest,
    ) -> Result<JobOutcome, Error> {
        let vcfs = self.call_shards(plan, reference, aligned, manifest)?;
        let gather = GatherStep::new(self.input.sample.clone(), GatherInputs::Given(vcfs.len()));
        let mut inputs = Vec::new();
        for (position, (vcf, tbi)) in vcfs.iter().enumerate() {
            inputs.push(local_input(&vcf_role(position), vcf, "VCF").known(vcf.sha256.clone()));
            inputs.push(local_input(&tbi_role(position), tbi, "VCF index").unkeyed());
        }
        self.task(
            &StepJob {
                definition: &gather,
                inputs,
                reference: Some((
                    ReferenceInput::Prepared(reference.clone()),
                    ReferenceUse::Fai,
                )),
                key: KeyPolicy::Own,
            },
            manifest,
        )
    }

    /// Before any tool runs: the FASTQs exist, and scratch holds the largest step, align,
    /// with the inputs copied in that are not local files.
    fn preflight(&self, reference_uri: &ObjectUri) -> Result<(), Error> {
        let stores = &self.engine.stores;
        let staging = self.work_dir.join("inputs");
        let remedy = fastq_remedy(&self.input.sample);
        let mut staged = 0u64;
        let mut sizes = Vec::new();
        for (uri, what) in [
            (&self.input.fastq_1, "FASTQ_1"),
            (&self.input.fastq_2, "FASTQ_2"),
        ] {
            check_input(stores, uri, what, &remedy)?;
            let size = object_size(stores, uri, &staging)?;
            if uri.local_path().is_none() {
                staged = staged.saturating_add(size);
            }
            sizes.push((uri.to_string(), size));
        }
        if reference_uri.local_path().is_none() {
            staged = staged.saturating_add(object_size(stores, reference_uri, &staging)?);
        }
        self.context
            .preflight(&self.align_step(None, None).space_need(staged, &sizes))
            .map_err(|error| error.in_task(StepId::Align.as_str()))
    }

    /// The prepare-reference task: stages the reference when it is not local, builds its
    /// `.fai` first (usually present) to check the requested contigs before the slow bwa
    /// index, then the bwa index.
    pub(crate) fn prepare_reference(
        &self,
        reference_uri: &ObjectUri,
        manifest: &mut RunManifest,
    ) -> Result<(crate::PreparedReference, ScatterPlan), Error> {
        let label = TaskLabel::new(StepId::PrepareReference, None);
        self.observer.started(&label);
        let (started, clock) = (SystemTime::now(), Instant::now());
        let context = self.context.for_step(StepId::PrepareReference.as_str());
        let mut reports = Vec::new();
        let prepared = (|| {
            let local = stage_input(
                &self.engine.stores,
                reference_uri,
                &self.work_dir.join("inputs"),
                "reference",
                "check REFERENCE_NAME and the reference prefix",
            )?;
            let fai_only = ReferenceOptions {
                cache_dir: self.options.cache_dir.clone(),
                bwa_index: false,
                stale_index: crate::StaleIndex::Rebuild,
            };
            let (reference, mut ran) = prepare_reference(&local, &fai_only, &context)?;
            reports.append(&mut ran);
            let plan = contig_plan(
                &reference.contigs,
                self.input.contigs.as_deref(),
                &reference.fai,
            )?;
            let scale = &self.options.scale;
            let shard_bases = scale.shard_bases.or_else(|| {
                let workers = self.engine.resources.threads;
                let balanced = scale
                    .balance_shards
                    .then(|| balanced_shard_bases(&plan, workers))
                    .flatten();
                if let Some(bases) = balanced {
                    tracing::info!(
                        shard_bases = bases.get(),
                        workers,
                        "calling in shards of at most {bases} bases: one shard per contig would leave threads idle"
                    );
                }
                balanced
            });
            let plan = shard_plan(plan, shard_bases);
            let with_bwa = ReferenceOptions {
                bwa_index: true,
                ..fai_only
            };
            let (reference, mut ran) = prepare_reference(&local, &with_bwa, &context)?;
            reports.append(&mut ran);
            Ok::<_, Error>((reference, plan))
        })();
        let wall = clock.elapsed();
        let record = TaskRecord::new(StepId::PrepareReference, None, started, wall, &reports);
        self.observer.finished(&label, prepared.is_ok(), wall);
        match prepared {
            Ok(prepared) => {
                manifest.tasks.push(record);
                // The input's shards are those of its plan, else the state machine's gather
                // would fail after calling (a mismatch is the input's, not the reference's).
                let shards = prepared.1.shards().len();
                if let (Some(listed), Some(bases)) =
                    (self.options.scale.shards, self.options.scale.shard_bases)
                    && listed.get() != shards
                {
                    return Err(Error::Usage {
                        message: format!(
                            "params.shards lists {listed} shards, and the contigs called cut into shards of at most {bases} bases are {shards}"
                        ),
                        remedy: Some(
                            "make params.shards and params.shardBases again with biojob plan-shards for the reference and contigs of this input".into(),
                        ),
                    });
                }
                Ok(prepared)
            }
            Err(error) => {
                let error = error.in_task(StepId::PrepareReference.as_str());
                let mut reports = reports;
                reports.extend(reports_of(&error));
                manifest.tasks.push(
                    TaskRecord::new(StepId::PrepareReference, None, started, wall, &reports)
                        .failed(&error),
                );
                Err(error)
            }
        }
    }

    fn fastq_inputs(&self) -> Vec<JobInput> {
        let remedy = fastq_remedy(&self.input.sample);
        vec![
            JobInput::new(FASTQ_1, self.input.fastq_1.clone(), "FASTQ_1", &remedy),
            JobInput::new(FASTQ_2, self.input.fastq_2.clone(), "FASTQ_2", &remedy),
        ]
    }

    fn align_step(&self, chunk: Option<usize>, chunking: Option<ChunkLayout>) -> AlignStep {
        AlignStep {
            sample: self.input.sample.clone(),
            read_group: self.input.read_group.clone(),
            chunk,
            chunking,
            validate_fastq: self.engine.validate_fastq,
            lane: None,
            mark_duplicates: false,
        }
    }

    fn align(
        &self,
        reference: &crate::PreparedReference,
        manifest: &mut RunManifest,
    ) -> Result<Aligned, Error> {
        let step = self.align_step(None, None);
        let outcome = self.task(
            &StepJob {
                definition: &step,
                inputs: self.fastq_inputs(),
                reference: Some((
                    ReferenceInput::Prepared(reference.clone()),
                    ReferenceUse::FastaAndBwaIndex,
                )),
                key: KeyPolicy::Own,
            },
            manifest,
        )?;
        manifest.read_pairs = match outcome.read_pairs {
            Some(pairs) => Some(pairs),
            None => self.earlier.and_then(|earlier| earlier.read_pairs),
        };
        aligned(&outcome)
    }

    /// Split, align each chunk (`workers` at once, each with its share of the threads and
    /// memory), merge. The whole is reusable under one key: the align key of the whole pair
    /// with the `layout`'s parameters, carried by the merge task.
    fn align_in_chunks(
        &self,
        reference: &crate::PreparedReference,
        layout: ChunkLayout,
        manifest: &mut RunManifest,
    ) -> Result<Aligned, Error> {
        let whole = self.align_step(None, Some(layout));
        let reference_input = || {
            Some((
                ReferenceInput::Prepared(reference.clone()),
                ReferenceUse::FastaAndBwaIndex,
            ))
        };
        let group = StepJob {
            definition: &whole,
            inputs: self.fastq_inputs(),
            reference: reference_input(),
            key: KeyPolicy::Own,
        };
        let context = self.context.for_step(StepId::Align.as_str());
        let (staged, key) = group
            .stage_and_key(&self.target(&context))
            .map_err(|error| error.in_task(StepId::Align.as_str()))?;
        let mut rerun_reason = None;
        if let (Some(key), Some(earlier)) = (&key, self.earlier) {
            match try_reuse(
                &self.engine.stores,
                earlier,
                key,
                self.output_dir,
                &self.work_dir.join("reused"),
            ) {
                Ok(reused) => {
                    let label = TaskLabel::new(StepId::Align, None);
                    self.observer.reused(&label);
                    let outputs: Vec<JobOutput> = reused
                        .iter()
                        .map(|o| JobOutput {
                            name: o.record.name.clone(),
                            path: o.path.clone(),
                            sha256: Some(o.record.sha256.clone()),
                        })
                        .collect();
                    manifest.tasks.push(TaskRecord::cached(
                        StepId::Align,
                        None,
                        SystemTime::now(),
                        Duration::ZERO,
                        key.clone(),
                        reused.into_iter().map(|o| o.record).collect(),
                    ));
                    manifest.read_pairs = earlier.read_pairs;
                    return aligned_from(&outputs);
                }
                Err(reason) => rerun_reason = Some(reason.to_string()),
            }
        }

        // Split.
        let split = SplitStep {
            sample: self.input.sample.clone(),
            layout,
            upload_to: None,
            lane: None,
        };
        let local = |role: &str| {
            staged
                .paths
                .get(role)
                .map(|path| ObjectUri::Local(path.clone()))
                .ok_or_else(|| missing_output("align", role))
        };
        let remedy = fastq_remedy(&self.input.sample);
        let split = self.task(
            &StepJob {
                definition: &split,
                inputs: vec![
                    JobInput::new(FASTQ_1, local(FASTQ_1)?, "FASTQ_1", &remedy).streamed(),
                    JobInput::new(FASTQ_2, local(FASTQ_2)?, "FASTQ_2", &remedy).streamed(),
                ],
                reference: None,
                key: KeyPolicy::None,
            },
            manifest,
        )?;
        let chunks: Vec<(usize, &JobOutput, &JobOutput)> = chunk_files(&split.outputs)
            .enumerate()
            .map(|(chunk, (one, two))| (chunk, one, two))
            .collect();

        // Align each chunk.
        let workers = self.options.scale.workers.clamp(1, chunks.len().max(1));
        let mut share = self.context.clone();
        share.engine.resources = chunk_share(self.engine.resources, workers);
        let steps: Vec<AlignStep> = chunks
            .iter()
            .map(|(chunk, _, _)| self.align_step(Some(*chunk), None))
            .collect();
        let jobs: Vec<StepJob<'_>> = steps
            .iter()
            .zip(&chunks)
            .map(|(step, (_, one, two))| StepJob {
                definition: step,
                inputs: vec![
                    local_input(FASTQ_1, one, "FASTQ_1"),
                    local_input(FASTQ_2, two, "FASTQ_2"),
                ],
                reference: reference_input(),
                key: KeyPolicy::None,
            })
            .collect();
        let outcomes =
            self.in_parallel(&jobs, (0..jobs.len()).collect(), workers, &share, manifest);
        let mut bams = Vec::with_capacity(jobs.len());
        let mut read_pairs = 0u64;
        let mut chunk_records = Some(0u64);
        let mut first_error = None;
        for (job, outcome) in jobs.iter().zip(outcomes) {
            let outcome = outcome.unwrap_or_else(|| skipped(job));
            manifest.tasks.push(outcome.record.clone());
            chunk_records = chunk_records
                .zip(outcome.record.records.bam.map(|counts| counts.records))
                .map(|(sum, records)| sum + records);
            let bam = outcome.output(".bam").cloned();
            match (outcome.error, bam) {
                (Some(error), _) => {
                    if !cancelled_by_sibling(&error) {
                        first_error.get_or_insert(error);
                    }
                }
                (None, Some(bam)) => {
                    read_pairs += outcome.read_pairs.unwrap_or(0);
                    bams.push(bam);
                }
                (None, None) => {
                    first_error.get_or_insert(missing_output("align", "BAM"));
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        if bams.len() != jobs.len() {
            return Err(missing_output("align", "chunk BAM"));
        }
        check_split_accounting(
            self.engine.validate_fastq,
            self.work_dir,
            read_pairs,
            split.read_pairs,
            jobs.len(),
        )
        .map_err(|error| error.in_task(StepId::Align.as_str()))?;
        manifest.read_pairs = Some(read_pairs);

        // Merge, carrying the key of the whole.
        let merge = MergeStep {
            sample: self.input.sample.clone(),
            read_groups: vec![self.input.read_group.clone()],
            chunks: bams.len(),
            mark_duplicates: false,
            in_cohort: false,
            chunk_records,
            upload_to: None,
        };
        let job = StepJob {
            definition: &merge,
            inputs: bams
                .iter()
                .enumerate()
                .map(|(chunk, bam)| local_input(&chunk_bam_role(chunk), bam, "chunk BAM"))
                .collect(),
            reference: Some((
                ReferenceInput::Prepared(reference.clone()),
                ReferenceUse::Fai,
            )),
            key: key.map_or(KeyPolicy::None, KeyPolicy::Given),
        };
        let context = self.context.for_step(StepId::Merge.as_str());
        let mut target = self.target(&context);
        target.earlier = None;
        let mut outcome = job.run(&target);
        outcome.record.rerun_reason = rerun_reason;
        manifest.tasks.push(outcome.record.clone());
        self.checkpoint(manifest);
        if let Some(error) = outcome.error.take() {
            return Err(error);
        }
        aligned(&outcome)
    }

    /// Calls every shard: at most `threads` at once, most bases first; after the first
    /// failure, shards not yet started are skipped (reusable ones are still reused). Returns
    /// each shard's VCF and index, in plan order.
    fn call_shards(
        &self,
        plan: &ScatterPlan,
        reference: &crate::PreparedReference,
        aligned: &Aligned,
        manifest: &mut RunManifest,
    ) -> Result<Vec<(JobOutput, JobOutput)>, Error> {
        let steps: Vec<CallStep> = plan
            .shards()
            .iter()
            .map(|shard: &Shard| {
                CallStep::new(
                    self.input.sample.clone(),
                    ShardRequest::Shard(shard.clone()),
                    self.input.min_mapping_quality,
                )
            })
            .collect();
        let jobs: Vec<StepJob<'_>> = steps
            .iter()
            .map(|step| StepJob {
                definition: step,
                inputs: vec![
                    local_input(BAM, &aligned.bam, "BAM").known(aligned.bam.sha256.clone()),
                    local_input(BAI, &aligned.bai, "BAM index").unkeyed(),
                ],
                reference: Some((
                    ReferenceInput::Prepared(reference.clone()),
                    ReferenceUse::Fasta,
                )),
                key: KeyPolicy::Own,
            })
            .collect();
        let workers = self.engine.resources.threads;
        let outcomes =
            self.in_parallel(&jobs, plan.longest_first(), workers, self.context, manifest);
        shard_vcfs(&jobs, outcomes, manifest)
    }

    /// Runs `jobs` on at most `workers` threads, taken in `order` (positions in `jobs`), each
    /// with `context`'s child cancellation token: the first failure stops the others (their
    /// tools are stopped; not yet started ones give `None`, unless reusable). Each record is
    /// added to the run manifest `so_far` as its job ends, in the order they end, and
    /// checkpointed ([`Run::checkpoint`]). Outcomes by position.
    pub(crate) fn in_parallel(
        &self,
        jobs: &[StepJob<'_>],
        order: Vec<usize>,
        workers: usize,
        context: &StepContext,
        so_far: &RunManifest,
    ) -> Vec<Option<JobOutcome>> {
        let so_far = Mutex::new(so_far.clone());
        let finished = |record: &TaskRecord| {
            if let Ok(mut so_far) = so_far.lock() {
                so_far.tasks.push(record.clone());
                self.checkpoint(&so_far);
            }
        };
        let queue = Mutex::new(order.into_iter());
        let results: Mutex<Vec<Option<JobOutcome>>> =
            Mutex::new((0..jobs.len()).map(|_| None).collect());
        let cancel = context.supervisor.cancel_token().child();
        let shared = context.with_cancel(cancel.clone());
        std::thread::scope(|scope| {
            for _ in 0..workers.clamp(1, jobs.len().max(1)) {
                scope.spawn(|| {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some(position) = next else { break };
                        let job = &jobs[position];
                        let context = shared.for_step(&job.label().to_string());
                        let mut target = self.target(&context);
                        if cancel.is_cancelled() {
                            // Stopped: only a reusable task is still taken (recorded cached).
                            if job.key == KeyPolicy::None || self.earlier.is_none() {
                                continue;
                            }
                            target.observer = &crate::LogObserver;
                        }
                        let outcome = job.run(&target);
                        finished(&outcome.record);
                        if let Some(error) = &outcome.error
                            && !cancelled_by_sibling(error)
                        {
                            cancel.cancel(biojob_process::CancelReason::Sibling);
                        }
                        if let Ok(mut slots) = results.lock() {
                            slots[position] = Some(outcome);
                        }
                    }
                });
            }
        });
        results.into_inner().unwrap_or_default()
    }
}

/// What each of `workers` chunks aligned at once gets of `resources`: an equal share of the
/// threads (at least one) and of the memory.
pub(crate) fn chunk_share(resources: crate::Resources, workers: usize) -> crate::Resources {
    let workers = workers.max(1);
    crate::Resources {
        threads: (resources.threads / workers).max(1),
        memory_bytes: resources.memory_bytes / workers as u64,
    }
}

/// The chunk files a split wrote (its outputs: read 1 and read 2 of each chunk in turn), as
/// `(read 1, read 2)` in chunk order.
pub(crate) fn chunk_files(outputs: &[JobOutput]) -> impl Iterator<Item = (&JobOutput, &JobOutput)> {
    outputs.chunks(2).filter_map(|pair| match pair {
        [one, two] => Some((one, two)),
        _ => None,
    })
}

/// Record accounting between a split and its chunks' alignments, when the FASTQ check is on
/// (each chunk's align then counts the pairs it feeds bwa): the `aligned` read pairs of the
/// `chunks` chunks equal the pairs the split `written`. A chunk file cut at a gzip member
/// boundary would still read as a shorter, valid FASTQ.
///
/// # Errors
/// [`Error::Verification`] (output invalid) on `work_dir`, where the split wrote the chunks,
/// naming both counts.
pub(crate) fn check_split_accounting(
    validate_fastq: bool,
    work_dir: &Utf8Path,
    aligned: u64,
    written: Option<u64>,
    chunks: usize,
) -> Result<(), Error> {
    match (validate_fastq, written) {
        (true, Some(written)) => crate::steps::check_records(
            work_dir,
            aligned,
            "read pairs aligned in chunks",
            written,
            &format!("the split wrote {written} into {chunks} chunks"),
        ),
        _ => Ok(()),
    }
}

/// The VCF and index of each call shard of `jobs` from their `outcomes` (by position), each
/// record added to `manifest` (a shard stopped because another failed: skipped).
///
/// # Errors
/// The first shard's failure; [`Error::Usage`] when a shard that succeeded gave no VCF.
pub(crate) fn shard_vcfs(
    jobs: &[StepJob<'_>],
    outcomes: Vec<Option<JobOutcome>>,
    manifest: &mut RunManifest,
) -> Result<Vec<(JobOutput, JobOutput)>, Error> {
    let mut vcfs = Vec::with_capacity(jobs.len());
    let mut first_error = None;
    for (job, outcome) in jobs.iter().zip(outcomes) {
        let mut outcome = outcome.unwrap_or_else(|| skipped(job));
        if let Some(error) = outcome.error.take() {
            if cancelled_by_sibling(&error) {
                outcome.record.status = TaskStatus::Skipped;
            } else {
                first_error.get_or_insert(error);
            }
        } else if let (Some(vcf), Some(tbi)) = (outcome.output(".vcf.gz"), outcome.output(".tbi")) {
            vcfs.push((vcf.clone(), tbi.clone()));
        }
        manifest.tasks.push(outcome.record);
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    if vcfs.len() != jobs.len() {
        return Err(Error::Usage {
            message: format!(
                "{} of {} shards produced no VCF",
                jobs.len() - vcfs.len(),
                jobs.len()
            ),
            remedy: None,
        });
    }
    Ok(vcfs)
}

/// A task that was never started: skipped.
pub(crate) fn skipped(job: &StepJob<'_>) -> JobOutcome {
    JobOutcome {
        record: TaskRecord::skipped(job.definition.step(), job.definition.shard()),
        outputs: Vec::new(),
        reference: None,
        read_pairs: None,
        error: None,
    }
}

/// An earlier task's output, read in place, as an input of another task.
pub(crate) fn local_input(role: &str, output: &JobOutput, what: &str) -> JobInput {
    JobInput::new(
        role,
        ObjectUri::Local(output.path.clone()),
        what,
        "an earlier step of the run wrote it",
    )
}

pub(crate) fn missing_output(step: &str, what: &str) -> Error {
    Error::Usage {
        message: format!("the {step} task ended without its {what}"),
        remedy: None,
    }
}

pub(crate) fn aligned(outcome: &JobOutcome) -> Result<Aligned, Error> {
    aligned_from(&outcome.outputs)
}

pub(crate) fn aligned_from(outputs: &[JobOutput]) -> Result<Aligned, Error> {
    let find = |suffix: &str| outputs.iter().find(|o| o.name.ends_with(suffix)).cloned();
    match (find(".bam"), find(".bai")) {
        (Some(bam), Some(bai)) => Ok(Aligned { bam, bai }),
        _ => Err(missing_output("align", "BAM")),
    }
}

impl TaskLabel {
    /// A task of `step`, for `shard` when it is scattered.
    pub fn new(step: StepId, shard: Option<TaskShard>) -> Self {
        TaskLabel {
            step,
            shard,
            member: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(lengths: &[u64]) -> ScatterPlan {
        ScatterPlan::by_contig(
            lengths
                .iter()
                .enumerate()
                .map(|(i, length)| Contig::new(format!("c{i}"), *length)),
        )
    }

    #[test]
    fn the_busiest_worker_takes_the_longest_first_schedule_s_bases() {
        // 2, 1, 1, 0.5 Mb on two workers: {2, 0.5} and {1, 1}.
        assert_eq!(
            busiest_worker_bases([1_000_000, 2_000_000, 500_000, 1_000_000], 2),
            2_500_000
        );
        assert_eq!(busiest_worker_bases([3, 3, 2, 2, 2], 2), 7);
        assert_eq!(busiest_worker_bases([5], 0), 5);
        assert_eq!(busiest_worker_bases([], 4), 0);
    }

    #[test]
    fn balanced_shards_are_cut_only_when_contigs_leave_a_worker_idle() {
        // The bench reference (make-bench-data.sh): 2, 1, 1 and 0.5 Mb on 2 threads end at
        // 2.5 Mb against an even 2.25 Mb; shards of 2.25 and 1.125 Mb end there too, shards of
        // 750 kb at 2.33 Mb (3.7 % over).
        let bench = plan(&[2_000_000, 1_000_000, 1_000_000, 500_000]);
        assert_eq!(balanced_shard_bases(&bench, 2), NonZeroU64::new(750_000));
        // One worker, or contigs that already spread evenly: one shard per contig.
        assert_eq!(balanced_shard_bases(&bench, 1), None);
        assert_eq!(
            balanced_shard_bases(&plan(&[1_000_000, 1_000_000, 500_000, 520_000]), 2),
            None
        );
        // The test data (329 kb): no shard of 500 kb or more evens it out.
        assert_eq!(
            balanced_shard_bases(&plan(&[300_000, 12_356, 16_571]), 2),
            None
        );
        // GRCh38's primary contigs (chr1-22, X, Y, M): on 8 threads they spread evenly; on 16,
        // chr1 alone is more than an even share.
        let grch38 = plan(&[
            248_956_422,
            242_193_529,
            198_295_559,
            190_214_555,
            181_538_259,
            170_805_979,
            159_345_973,
            145_138_636,
            138_394_717,
            133_797_422,
            135_086_622,
            133_275_309,
            114_364_328,
            107_043_718,
            101_991_189,
            90_338_345,
            83_257_441,
            80_373_285,
            58_617_616,
            64_444_167,
            46_709_983,
            50_818_468,
            156_040_895,
            57_227_415,
            16_569,
        ]);
        assert_eq!(balanced_shard_bases(&grch38, 8), None);
        assert!(balanced_shard_bases(&grch38, 16).is_some());
        // One long contig on 4 threads: a quarter each.
        assert_eq!(
            balanced_shard_bases(&plan(&[8_000_000, 100_000]), 4),
            NonZeroU64::new(2_025_000)
        );
    }
}
