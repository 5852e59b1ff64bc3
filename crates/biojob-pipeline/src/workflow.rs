//! The local executor: every step of one sample's run, contigs in parallel.

mod qc_task;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use biojob_core::{Classify, Contig, ExitClass, ScatterPlan, StepId, suggest_contig_mapping};
use biojob_process::{CancelReason, CancelToken, ProcessError, StageReport, Supervisor};
use biojob_scratch::{Attempt, JobId, JobScratch, SpaceWatch};
use biojob_storage::{ObjectUri, Stores};
use biojob_tools::{ToolError, ToolVersions, Toolset};
use camino::{Utf8Path, Utf8PathBuf};
use tracing::{info, info_span, warn};

use crate::cache::{AlignInputDigests, EarlierTasks, ReusedOutput, bwa_index_sha256, try_reuse};
use crate::manifest::{MANIFEST_FORMAT_VERSION, error_chain, seconds, timestamp};
use crate::{
    AlignRequest, CallRequest, Error, GatherRequest, ManifestInputs, OutputRecord,
    PreparedReference, ReferenceOptions, Resources, RunManifest, RunObserver, ScratchSettings,
    SpaceWatchdog, StepContext, TaskLabel, TaskRecord, TaskStatus, ToolRecord, WorkflowInput,
    align, align_key, align_space_need, call, call_key, fastq_pair_sha256, file_sha256, gather,
    gather_key, prepare_reference, publish_file, publish_logs, reference_sha256, stage_input,
};

/// Everything a run needs besides its input: stores, tools, budget, cancellation.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Where inputs are read and outputs written.
    pub stores: Stores,
    /// The resolved tools.
    pub toolset: Toolset,
    /// Their versions.
    pub versions: ToolVersions,
    /// CPU and memory budget.
    pub resources: Resources,
    /// Cancelled by the binary's signal handler.
    pub cancel: CancelToken,
    /// Time between SIGTERM and SIGKILL when stopping tools.
    pub grace: Duration,
    /// Longest time any one tool may run, if limited.
    pub timeout: Option<Duration>,
    /// Longest time any one step may take, if limited (see [`StepContext::for_step`]).
    pub step_timeout: Option<Duration>,
    /// Where scratch directories go and how their space is watched.
    pub scratch: ScratchSettings,
    /// See [`StepContext::validate_fastq`].
    pub validate_fastq: bool,
}

impl Engine {
    /// The context for steps that log into `log_dir` and work in the scratch directory that
    /// `space` watches; the supervisor pauses and stops tools as `space` says.
    pub fn context(&self, log_dir: &Utf8Path, space: &SpaceWatch) -> StepContext {
        StepContext {
            toolset: self.toolset.clone(),
            versions: self.versions.clone(),
            supervisor: Supervisor::new(log_dir, self.cancel.clone())
                .with_grace(self.grace)
                .with_timeout(self.timeout)
                .with_watchdog(Some(SpaceWatchdog::shared(space))),
            resources: self.resources,
            space: space.clone(),
            step_timeout: self.step_timeout,
            validate_fastq: self.validate_fastq,
        }
    }
}

/// Runs each tool's version probe.
///
/// # Errors
/// [`Error::Tool`] when a tool does not run or prints no version.
pub fn probe_tools(
    toolset: &Toolset,
    cancel: &CancelToken,
    log_dir: &Utf8Path,
) -> Result<ToolVersions, Error> {
    let supervisor = Supervisor::new(log_dir, cancel.clone());
    let mut versions = Vec::new();
    for tool in toolset.all() {
        let captured = supervisor
            .capture(tool.tool.version_probe(&tool.path))
            .map_err(|error| ToolError::NotFound {
                tool: tool.tool,
                detail: format!("{} did not run: {error}", tool.path),
            })?;
        let version = tool
            .tool
            .parse_version(&captured.stdout, &captured.stderr)
            .ok_or_else(|| ToolError::NoVersion {
                tool: tool.tool,
                path: tool.path.clone(),
                output: captured
                    .stdout
                    .chars()
                    .chain(captured.stderr.chars())
                    .take(200)
                    .collect(),
            })?;
        info!(tool = %tool.tool, path = %tool.path, version, "tool found");
        versions.push(version);
    }
    let mut versions = versions.into_iter();
    let mut next = || versions.next().unwrap_or_default();
    Ok(ToolVersions {
        bwa: next(),
        samtools: next(),
        bcftools: next(),
    })
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
    /// same cache key (see the `cache` module); the others run.
    pub resume: bool,
    /// Shards cut by size, chunks of reads (default: neither).
    pub scale: crate::ScaleOptions,
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

/// Runs the whole workflow for one sample: preflight, prepare-reference, align, call per
/// contig (in parallel, longest contig first, at most `threads` at once), gather, qc. Each step's
/// outputs are published to `<output prefix>/<sample>/<run id>/` as soon as the step has
/// succeeded; the logs and `manifest.json` are published whatever happens.
///
/// Preflight, before any tool other than the version probes runs: the reference, both FASTQs
/// and the requested contigs exist (contigs are checked against the `.fai` before the bwa index
/// is built or anything is aligned).
pub fn run_workflow(
    input: &WorkflowInput,
    options: &RunOptions,
    engine: &Engine,
    observer: &dyn RunObserver,
) -> RunOutcome {
    let started = SystemTime::now();
    let clock = Instant::now();
    let output_dir = input
        .output_prefix
        .join(input.sample.as_str())
        .join(&options.run_id);
    let _span = info_span!("run", sample = %input.sample, run_id = %options.run_id).entered();
    let mut manifest = RunManifest {
        format_version: MANIFEST_FORMAT_VERSION,
        biojob_version: env!("CARGO_PKG_VERSION").to_owned(),
        run_id: options.run_id.clone(),
        sample: input.sample.to_string(),
        read_group: input.read_group.to_header_line(),
        inputs: ManifestInputs {
            fastq_1: input.fastq_1.to_string(),
            fastq_2: input.fastq_2.to_string(),
            reference: String::new(),
            contigs: Vec::new(),
        },
        output_prefix: output_dir.to_string(),
        resources: engine.resources,
        tools: engine
            .toolset
            .all()
            .into_iter()
            .zip([
                &engine.versions.bwa,
                &engine.versions.samtools,
                &engine.versions.bcftools,
            ])
            .map(|(tool, version)| ToolRecord {
                tool: tool.tool.name().to_owned(),
                path: tool.path.to_string(),
                version: version.clone(),
            })
            .collect(),
        started_at: timestamp(started),
        finished_at: String::new(),
        wall_seconds: 0.0,
        status: TaskStatus::Failed,
        exit_class: ExitClass::Ok,
        exit_code: 0,
        error: None,
        read_pairs: None,
        tasks: Vec::new(),
        earlier_tasks: Vec::new(),
        vcf: None,
        scratch: None,
    };

    if let Err(error) = check_output_dir(&output_dir) {
        return finish(manifest, output_dir, None, Err(error), engine, clock);
    }
    let (scratch, space) = match engine.scratch.open(&options.job_id, options.attempt) {
        Ok(opened) => opened,
        Err(error) => return finish(manifest, output_dir, None, Err(error), engine, clock),
    };
    let work_dir = scratch.dir().to_owned();
    let log_dir = work_dir.join("logs");
    let context = engine.context(&log_dir, &space);
    let rerun_reasons = Mutex::new(BTreeMap::new());
    let result = execute(
        input,
        options,
        engine,
        &context,
        &work_dir,
        &output_dir,
        &mut manifest,
        observer,
        &rerun_reasons,
    );
    let rerun_reasons = rerun_reasons.into_inner().unwrap_or_default();
    for task in &mut manifest.tasks {
        if task.status != TaskStatus::Cached
            && let Some(key) = &task.cache_key
        {
            task.rerun_reason = rerun_reasons.get(key).cloned();
        }
    }
    manifest.scratch = Some(space.usage());
    finish(manifest, output_dir, Some(scratch), result, engine, clock)
}

/// Checks, before any work, that a local output directory can be created and written to (a
/// probe file is created and removed), so that a run does not align for an hour and then fail
/// to publish. `s3://` prefixes are not probed: that would need a write, and the job role may
/// lack the right to delete.
///
/// # Errors
/// [`Error::Usage`] (not retryable: permissions and paths do not fix themselves) naming the
/// directory and the operating system's reason.
fn check_output_dir(output_dir: &ObjectUri) -> Result<(), Error> {
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
/// ran out, and the manifest is written outside it), then publishes the manifest.
fn finish(
    mut manifest: RunManifest,
    output_dir: ObjectUri,
    scratch: Option<JobScratch>,
    result: Result<ObjectUri, Error>,
    engine: &Engine,
    clock: Instant,
) -> RunOutcome {
    let (vcf, error) = match result {
        Ok(vcf) => (Some(vcf), None),
        Err(error) => (None, Some(error)),
    };
    manifest.finished_at = timestamp(SystemTime::now());
    manifest.wall_seconds = seconds(clock.elapsed());
    match &error {
        None => {
            manifest.status = TaskStatus::Succeeded;
            manifest.exit_class = ExitClass::Ok;
        }
        Some(error) => {
            manifest.status = TaskStatus::Failed;
            manifest.exit_class = error.exit_class();
            manifest.error = Some(error_chain(error));
        }
    }
    manifest.exit_code = manifest.exit_class.code();
    manifest.vcf = vcf.as_ref().map(ToString::to_string);
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
    crate::cache::carry_forward(&engine.stores, &manifest_uri, &mut manifest);
    let written = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::io("serialising", "manifest.json")(std::io::Error::other(e)))
        .and_then(|json| {
            let dir =
                tempfile::tempdir().map_err(Error::io("creating", "a temporary directory"))?;
            let path =
                Utf8PathBuf::from_path_buf(dir.path().join("manifest.json")).map_err(|p| {
                    Error::io("writing", p.to_string_lossy().into_owned())(std::io::Error::other(
                        "non-UTF-8 path",
                    ))
                })?;
            std::fs::write(&path, json).map_err(Error::io("writing", &path))?;
            publish_file(&engine.stores, &path, &output_dir)
        });
    let manifest_published = match written {
        Ok(_) => true,
        Err(publish_error) => {
            warn!(uri = %manifest_uri, error = %error_chain(&publish_error), "could not publish the manifest");
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

struct Task<'a> {
    label: TaskLabel,
    started: SystemTime,
    clock: Instant,
    observer: &'a dyn RunObserver,
}

impl<'a> Task<'a> {
    fn start(label: TaskLabel, observer: &'a dyn RunObserver) -> Self {
        observer.started(&label);
        Task {
            label,
            started: SystemTime::now(),
            clock: Instant::now(),
            observer,
        }
    }

    fn record(
        self,
        shard: Option<(usize, &str)>,
        commands: &[StageReport],
        result: Result<Vec<OutputRecord>, &Error>,
    ) -> TaskRecord {
        let wall = self.clock.elapsed();
        self.observer.finished(&self.label, result.is_ok(), wall);
        let record = TaskRecord::new(self.label.step, shard, self.started, wall, commands);
        match result {
            Ok(outputs) => TaskRecord { outputs, ..record },
            Err(error) => record.failed(error),
        }
    }
}

/// The reports carried by a failed step's error, so a failed task's manifest entry still lists
/// what ran.
fn reports_of(error: &Error) -> Vec<StageReport> {
    match error.root() {
        Error::Process(process) => process
            .report()
            .map(|report| report.stages.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn execute(
    input: &WorkflowInput,
    options: &RunOptions,
    engine: &Engine,
    context: &StepContext,
    work_dir: &Utf8Path,
    output_dir: &ObjectUri,
    manifest: &mut RunManifest,
    observer: &dyn RunObserver,
    rerun_reasons: &Mutex<BTreeMap<String, String>>,
) -> Result<ObjectUri, Error> {
    let stores = &engine.stores;
    // Preflight: inputs exist, before any tool runs.
    let reference_uri = input.resolve_reference(stores)?;
    manifest.inputs.reference = reference_uri.to_string();
    // Scratch space for the largest step, align, with the inputs that will be copied in.
    let mut staged = 0u64;
    let mut fastq_bytes = 0u64;
    for uri in [&input.fastq_1, &input.fastq_2, &reference_uri] {
        let size = stores.for_uri(uri)?.head(uri)?.map_or(0, |meta| meta.size);
        if uri.local_path().is_none() {
            staged = staged.saturating_add(size);
        }
        if uri != &reference_uri {
            fastq_bytes = fastq_bytes.saturating_add(size);
        }
    }
    context
        .preflight(&align_space_need(
            staged,
            fastq_bytes,
            &input.fastq_1.to_string(),
        ))
        .map_err(|error| error.in_task(StepId::Align.as_str()))?;
    let staging = work_dir.join("inputs");
    let fastq_remedy = format!(
        "check SOURCE_DATA_PREFIX and SAMPLE_ID (files are named {0}_R1.fastq.gz and {0}_R2.fastq.gz), or give FASTQ_1 and FASTQ_2",
        input.sample
    );
    let fastq_1 = stage_input(stores, &input.fastq_1, &staging, "FASTQ_1", &fastq_remedy)?;
    let fastq_2 = stage_input(stores, &input.fastq_2, &staging, "FASTQ_2", &fastq_remedy)?;
    let reference_path = stage_input(
        stores,
        &reference_uri,
        &staging,
        "reference",
        "check REFERENCE_NAME and the reference prefix",
    )?;
    // The FASTQs' content checksums, for the cache keys (computed whether or not this run
    // resumes: the manifest records the keys for a later resume).
    let mut fastq_digests =
        fastq_pair_sha256(&fastq_1, &fastq_2, &input.fastq_1, &input.fastq_2)?.into_iter();
    let earlier = if options.resume {
        earlier_tasks(stores, output_dir)
    } else {
        EarlierTasks::default()
    };
    let reused_dir = work_dir.join("reused");
    let reuse = |key: &str| {
        if !options.resume {
            return None;
        }
        try_reuse(stores, &earlier, key, output_dir, &reused_dir)
            .inspect_err(|reason| {
                if let Ok(mut reasons) = rerun_reasons.lock() {
                    reasons.insert(key.to_owned(), reason.to_string());
                }
            })
            .ok()
    };

    // The .fai first (usually present), to check the contigs before the slow bwa index.
    let task = Task::start(TaskLabel::step(StepId::PrepareReference), observer);
    let mut reports = Vec::new();
    let prepared = (|| {
        let context = &context.for_step(StepId::PrepareReference.as_str());
        let fai_only = ReferenceOptions {
            cache_dir: options.cache_dir.clone(),
            bwa_index: false,
        };
        let (reference, mut ran) = prepare_reference(&reference_path, &fai_only, context)?;
        reports.append(&mut ran);
        let plan = contig_plan(&reference.contigs, input.contigs.as_deref(), &reference.fai)?;
        let plan = crate::shard_plan(plan, options.scale.shard_bases);
        let with_bwa = ReferenceOptions {
            bwa_index: true,
            ..fai_only
        };
        let (reference, mut ran) = prepare_reference(&reference_path, &with_bwa, context)?;
        reports.append(&mut ran);
        Ok::<_, Error>((reference, plan))
    })();
    let (reference, plan) = match prepared {
        Ok(prepared) => {
            manifest
                .tasks
                .push(task.record(None, &reports, Ok(Vec::new())));
            prepared
        }
        Err(error) => {
            let error = error.in_task(StepId::PrepareReference.as_str());
            manifest
                .tasks
                .push(task.record(None, &reports, Err(&error)));
            return Err(error);
        }
    };
    manifest.inputs.contigs = plan.contigs().into_iter().map(|c| c.name).collect();
    let mut planned = vec![
        TaskLabel::step(StepId::PrepareReference),
        TaskLabel::step(StepId::Align),
    ];
    planned.extend(
        plan.shards()
            .iter()
            .map(|s| TaskLabel::shard(StepId::Call, s.region())),
    );
    planned.push(TaskLabel::step(StepId::Gather));
    planned.push(TaskLabel::step(StepId::Qc));
    observer.planned(&planned);

    // Align.
    let digests = AlignInputDigests {
        fastq_1: fastq_digests.next().unwrap_or_default(),
        fastq_2: fastq_digests.next().unwrap_or_default(),
        reference: reference_sha256(&reference)?,
        bwa_index: bwa_index_sha256(&reference)?,
    };
    let mut align_material = align_key(
        &engine.toolset,
        &engine.versions,
        &input.sample,
        &input.read_group,
        &digests,
    );
    if let Some(chunk_pairs) = options.scale.chunk_pairs {
        // Chunked alignment differs from a whole one in tie-breaks (README "Scaling out").
        align_material = align_material.parameter("chunk_pairs", chunk_pairs);
    }
    let align_key = align_material.key();
    let reused_bam = reuse(&align_key).and_then(|outputs| {
        let bam = output_with_suffix(&outputs, ".bam")?;
        Some((bam.path.clone(), bam.record.sha256.clone(), outputs))
    });
    let (bam, bam_sha256) = if let Some((bam, sha256, outputs)) = reused_bam {
        let label = TaskLabel::step(StepId::Align);
        observer.reused(&label);
        manifest.read_pairs = earlier.read_pairs;
        manifest
            .tasks
            .push(cached_record(StepId::Align, None, align_key, outputs));
        (bam, sha256)
    } else {
        let task = Task::start(TaskLabel::step(StepId::Align), observer);
        let align_context = context.for_step(StepId::Align.as_str());
        let align_request = AlignRequest {
            sample: &input.sample,
            read_group: &input.read_group,
            reference: &reference,
            fastq_1: &fastq_1,
            fastq_2: &fastq_2,
            work_dir,
        };
        let aligned = match options.scale.chunk_pairs {
            None => align(&align_request, &align_context),
            Some(chunk_pairs) => crate::align_in_chunks(
                &align_request,
                chunk_pairs,
                options.scale.workers,
                &align_context,
                observer,
                &mut manifest.tasks,
            ),
        }
        .and_then(|output| {
            align_context.check_stopped("publishing the BAM")?;
            let outputs = vec![
                publish_file(stores, &output.bam, output_dir)?,
                publish_file(stores, &output.bai, output_dir)?,
            ];
            Ok((output, outputs))
        });
        match aligned {
            Ok((output, outputs)) => {
                manifest.read_pairs = Some(output.fastq.pairs);
                let sha256 = outputs
                    .first()
                    .map(|o| o.sha256.clone())
                    .unwrap_or_default();
                manifest.tasks.push(TaskRecord {
                    cache_key: Some(align_key),
                    ..task.record(None, &output.commands, Ok(outputs))
                });
                (output.bam, sha256)
            }
            Err(error) => {
                let error = error.in_task(StepId::Align.as_str());
                manifest
                    .tasks
                    .push(task.record(None, &reports_of(&error), Err(&error)));
                return Err(error);
            }
        }
    };

    // Call, per contig, in parallel.
    let shard_cache = ShardCache {
        bam_sha256: &bam_sha256,
        reference_sha256: &digests.reference,
        reuse: &reuse,
    };
    let (vcfs, records, first_error) = call_shards(
        &plan,
        &reference,
        &bam,
        input,
        engine,
        context,
        work_dir,
        output_dir,
        observer,
        &shard_cache,
    );
    let vcf_digests: Vec<(usize, String)> = records
        .iter()
        .filter_map(|record| {
            let vcf = record
                .outputs
                .iter()
                .find(|o| o.name.ends_with(".vcf.gz"))?;
            Some((record.shard?, vcf.sha256.clone()))
        })
        .collect();
    manifest.tasks.extend(records);
    if let Some(error) = first_error {
        return Err(error);
    }

    // Gather.
    let gather_key = gather_key(
        &engine.toolset,
        &engine.versions,
        &input.sample,
        &vcf_digests,
        &file_sha256(&reference.fai)?,
    )
    .key();
    if let Some((vcf, outputs)) = reuse(&gather_key).and_then(|outputs| {
        let vcf = output_with_suffix(&outputs, ".vcf.gz")?;
        Some((vcf.path.clone(), outputs))
    }) {
        observer.reused(&TaskLabel::step(StepId::Gather));
        manifest
            .tasks
            .push(cached_record(StepId::Gather, None, gather_key, outputs));
        let qc_inputs = qc_task::QcInputs {
            reference: &reference,
            bam: &bam,
            vcf: &vcf,
        };
        qc_task::run_qc_task(
            input, &qc_inputs, context, work_dir, output_dir, stores, manifest, observer,
        )?;
        return Ok(output_dir.join(vcf.file_name().unwrap_or_default()));
    }
    let task = Task::start(TaskLabel::step(StepId::Gather), observer);
    let gather_context = context.for_step(StepId::Gather.as_str());
    let gathered = gather(
        &GatherRequest {
            sample: &input.sample,
            contigs: &reference.contigs,
            vcfs: &vcfs,
            work_dir,
        },
        &gather_context,
    )
    .and_then(|output| {
        gather_context.check_stopped("publishing the VCF")?;
        let outputs = vec![
            publish_file(stores, &output.vcf, output_dir)?,
            publish_file(stores, &output.tbi, output_dir)?,
        ];
        Ok((output, outputs))
    });
    match gathered {
        Ok((output, outputs)) => {
            manifest.tasks.push(TaskRecord {
                cache_key: Some(gather_key),
                ..task.record(None, &output.commands, Ok(outputs))
            });
            let qc_inputs = qc_task::QcInputs {
                reference: &reference,
                bam: &bam,
                vcf: &output.vcf,
            };
            qc_task::run_qc_task(
                input, &qc_inputs, context, work_dir, output_dir, stores, manifest, observer,
            )?;
            let name = output.vcf.file_name().unwrap_or_default();
            Ok(output_dir.join(name))
        }
        Err(error) => {
            let error = error.in_task(StepId::Gather.as_str());
            manifest
                .tasks
                .push(task.record(None, &reports_of(&error), Err(&error)));
            Err(error)
        }
    }
}

/// One shard's record, its VCF when it succeeded, its error when it failed first.
type ShardResult = (TaskRecord, Option<Utf8PathBuf>, Option<Error>);

/// What the call shards need for their cache keys and reuse.
struct ShardCache<'a> {
    bam_sha256: &'a str,
    reference_sha256: &'a str,
    /// The checked outputs of an earlier finished task with this key, when resuming.
    reuse: &'a (dyn Fn(&str) -> Option<Vec<ReusedOutput>> + Sync),
}

/// The tasks that the run manifest at `<output_dir>/manifest.json` records; none (with a
/// warning) when it cannot be read: resuming never fails a run.
fn earlier_tasks(stores: &Stores, output_dir: &ObjectUri) -> EarlierTasks {
    let uri = output_dir.join("manifest.json");
    EarlierTasks::from_run_manifest(stores, &uri).unwrap_or_else(|error| {
        warn!(%uri, error = %error_chain(&error), "could not read the earlier manifest; every step runs");
        EarlierTasks::default()
    })
}

/// The reused output whose name ends with `suffix`.
fn output_with_suffix<'a>(outputs: &'a [ReusedOutput], suffix: &str) -> Option<&'a ReusedOutput> {
    outputs.iter().find(|o| o.record.name.ends_with(suffix))
}

/// The record of a task reused from an earlier run.
fn cached_record(
    step: StepId,
    shard: Option<(usize, &str)>,
    key: String,
    outputs: Vec<ReusedOutput>,
) -> TaskRecord {
    TaskRecord::cached(
        step,
        shard,
        SystemTime::now(),
        Duration::ZERO,
        key,
        outputs.into_iter().map(|o| o.record).collect(),
    )
}

#[allow(clippy::too_many_arguments)]
fn call_shards(
    plan: &ScatterPlan,
    reference: &PreparedReference,
    bam: &Utf8Path,
    input: &WorkflowInput,
    engine: &Engine,
    context: &StepContext,
    work_dir: &Utf8Path,
    output_dir: &ObjectUri,
    observer: &dyn RunObserver,
    cache: &ShardCache<'_>,
) -> (Vec<Utf8PathBuf>, Vec<TaskRecord>, Option<Error>) {
    let shards = plan.shards();
    let queue = Mutex::new(plan.longest_first().into_iter());
    let results: Mutex<Vec<Option<ShardResult>>> =
        Mutex::new((0..shards.len()).map(|_| None).collect());
    let cancel = context.supervisor.cancel_token().child();
    let shard_context = StepContext {
        supervisor: context.supervisor.with_cancel(cancel.clone()),
        ..context.clone()
    };
    let workers = engine.resources.threads.clamp(1, shards.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(position) = next else { break };
                    let shard = &shards[position];
                    let region = shard.region().to_owned();
                    let label = TaskLabel::shard(StepId::Call, &region);
                    let key = Some((shard.index, region.as_str()));
                    let _span = info_span!("call", region = %region).entered();
                    let cache_key = call_key(
                        &engine.toolset,
                        &engine.versions,
                        &input.sample,
                        shard,
                        input.min_mapping_quality,
                        cache.bam_sha256,
                        cache.reference_sha256,
                    )
                    .key();
                    let reused = (cache.reuse)(&cache_key).and_then(|outputs| {
                        let vcf = output_with_suffix(&outputs, ".vcf.gz")?;
                        Some((vcf.path.clone(), outputs))
                    });
                    if let Some((vcf, outputs)) = reused {
                        observer.reused(&label);
                        let record = cached_record(StepId::Call, key, cache_key, outputs);
                        if let Ok(mut slots) = results.lock() {
                            slots[position] = Some((record, Some(vcf), None));
                        }
                        continue;
                    }
                    // After the reuse lookup: a reusable shard is recorded `cached` even
                    // once another shard has failed.
                    if cancel.is_cancelled() {
                        let record = TaskRecord {
                            status: TaskStatus::Skipped,
                            ..TaskRecord::new(
                                StepId::Call,
                                key,
                                SystemTime::now(),
                                Duration::ZERO,
                                &[],
                            )
                        };
                        if let Ok(mut slots) = results.lock() {
                            slots[position] = Some((record, None, None));
                        }
                        continue;
                    }
                    let task = Task::start(label, observer);
                    let shard_context = shard_context.for_step(&format!("call {region}"));
                    let outcome = call(
                        &CallRequest {
                            sample: &input.sample,
                            shard,
                            fasta: &reference.fasta,
                            bam,
                            work_dir,
                            min_mapping_quality: input.min_mapping_quality,
                        },
                        &shard_context,
                    )
                    .and_then(|output| {
                        shard_context.check_stopped("publishing the VCF")?;
                        let outputs = vec![
                            publish_file(&engine.stores, &output.vcf, output_dir)?,
                            publish_file(&engine.stores, &output.tbi, output_dir)?,
                        ];
                        Ok((output, outputs))
                    });
                    let slot = match outcome {
                        Ok((output, outputs)) => (
                            TaskRecord {
                                cache_key: Some(cache_key),
                                ..task.record(key, &output.commands, Ok(outputs))
                            },
                            Some(output.vcf),
                            None,
                        ),
                        Err(error) => {
                            let error = error.in_task(format!("call {region}"));
                            let cancelled_by_sibling = matches!(
                                error.root(),
                                Error::Process(ProcessError::Cancelled {
                                    reason: CancelReason::Sibling,
                                    ..
                                })
                            );
                            if !cancelled_by_sibling {
                                cancel.cancel(CancelReason::Sibling);
                            }
                            let record = task.record(key, &reports_of(&error), Err(&error));
                            if cancelled_by_sibling {
                                (
                                    TaskRecord {
                                        status: TaskStatus::Skipped,
                                        ..record
                                    },
                                    None,
                                    None,
                                )
                            } else {
                                (record, None, Some(error))
                            }
                        }
                    };
                    if let Ok(mut slots) = results.lock() {
                        slots[position] = Some(slot);
                    }
                }
            });
        }
    });
    let mut vcfs = Vec::new();
    let mut records = Vec::new();
    let mut first_error = None;
    let slots = results.into_inner().unwrap_or_default();
    for slot in slots.into_iter().flatten() {
        let (record, vcf, error) = slot;
        records.push(record);
        vcfs.extend(vcf);
        if let (None, Some(error)) = (&first_error, error) {
            first_error = Some(error);
        }
    }
    if first_error.is_none() && vcfs.len() != shards.len() {
        first_error = Some(Error::Usage {
            message: format!(
                "{} of {} shards produced no VCF",
                shards.len() - vcfs.len(),
                shards.len()
            ),
            remedy: None,
        });
    }
    (vcfs, records, first_error)
}
