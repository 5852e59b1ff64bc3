//! The step subcommands, each usable alone: prepare-reference, align, call, gather.
//!
//! A step works in a private scratch directory, publishes its outputs to `--output-prefix`
//! only when it has succeeded, and always publishes its logs (under `logs/`) and a step
//! manifest (`{sample}.{step}[.{shard}].manifest.json`).
//!
//! With `--resume` (`BIOJOB_RESUME=1`), align, call and gather first compute their cache key
//! from the staged inputs; when the step manifest already under the prefix records the step
//! finished with the same key and its outputs are unchanged, the step runs nothing, rewrites
//! its manifest with the task `cached`, and exits 0.

use std::time::{Instant, SystemTime};

use biojob_core::{SampleId, StepId, scratch_file_name};
use biojob_formats::FastqSource;
use biojob_pipeline::{
    AlignInputDigests, AlignRequest, CallRequest, EarlierTasks, Engine, Error, GatherRequest,
    JobEnvironment, OutputRecord, PreparedReference, ReferenceOptions, StepContext, TaskRecord,
    TaskStatus, align_key, align_space_need, bwa_index_mismatch, bwa_index_sha256, call_key,
    call_space_need, contig_plan, earlier_step_task, error_chain, fastq_pair_sha256, file_sha256,
    gather_key, gather_space_need, keys, new_run_id, publish_file, publish_logs, reference_sha256,
    resolve_reference, stage_input, try_reuse,
};
use biojob_process::{CancelToken, StageReport};
use biojob_scratch::{JobScratch, SpaceNeed, SpaceWatch};
use biojob_storage::{ObjectUri, Stores, StreamFailure};
use camino::Utf8PathBuf;

use crate::Failure;
use crate::cli::{AlignArgs, CallArgs, GatherArgs, PrepareReferenceArgs, RuntimeArgs, StepArgs};
use crate::env;
use crate::run::{cache_dir, engine, job_identity};

pub(crate) fn usage(error: impl std::fmt::Display, remedy: &str) -> Failure {
    Failure::Usage(anyhow::anyhow!("{error}"), Some(remedy.to_owned()))
}

fn uri(text: &str, flag: &str) -> Result<ObjectUri, Failure> {
    ObjectUri::parse(text).map_err(|e| usage(e, &format!("fix {flag}")))
}

/// The bwa index files' extensions, after the FASTA's name.
const BWA_INDEX_EXTENSIONS: [&str; 5] = [".amb", ".ann", ".bwt", ".pac", ".sa"];

/// What a step job was told: its environment (flags laid over the process environment), its
/// sample and its run prefix.
pub(crate) struct Job {
    pub(crate) environment: JobEnvironment,
    pub(crate) sample: SampleId,
    pub(crate) run_prefix: ObjectUri,
}

impl Job {
    /// Resolves the job from the step's flags (each backed by its environment variable) and
    /// `extra` `(key, value)` pairs. An empty value counts as unset.
    ///
    /// # Errors
    /// A usage failure (exit 2) when one of `JOB_WORKFLOW_NAME` and `JOB_WORKFLOW_EXECUTION_ID`
    /// is given without the other, or the environment is invalid.
    pub(crate) fn new(step: &StepArgs, extra: &[(&str, Option<&String>)]) -> Result<Job, Failure> {
        let mut pairs: Vec<(&str, Option<&String>)> = vec![
            (keys::SAMPLE_ID, Some(&step.sample)),
            (keys::REFERENCE, step.reference.as_ref()),
            (keys::REFERENCE_NAME, step.reference_name.as_ref()),
            (keys::REFERENCE_PREFIX, step.reference_prefix.as_ref()),
            (keys::SOURCE_DATA_PREFIX, step.source_data_prefix.as_ref()),
            (keys::JOB_OUTPUT_PREFIX, Some(&step.output_prefix)),
        ];
        pairs.extend_from_slice(extra);
        let environment = JobEnvironment::from_pairs(
            pairs
                .into_iter()
                .filter_map(|(key, value)| value.map(|v| (key, v.clone()))),
        );
        let sample = environment.sample()?;
        let output_prefix = environment.output_prefix()?;
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let run_prefix = match (given(&step.workflow_name), given(&step.execution_id)) {
            (Some(name), Some(execution)) => output_prefix.join(&name).join(&execution),
            (None, None) => output_prefix,
            (name, _) => {
                let (set, unset) = if name.is_some() {
                    (env::JOB_WORKFLOW_NAME, env::JOB_WORKFLOW_EXECUTION_ID)
                } else {
                    (env::JOB_WORKFLOW_EXECUTION_ID, env::JOB_WORKFLOW_NAME)
                };
                return Err(usage(
                    format!(
                        "{set} is set but {unset} is not: the run prefix is <output prefix>/<workflow name>/<execution id>/"
                    ),
                    "set both JOB_WORKFLOW_NAME and JOB_WORKFLOW_EXECUTION_ID (or --workflow-name and --execution-id), or neither",
                ));
            }
        };
        Ok(Job {
            environment,
            sample,
            run_prefix,
        })
    }
}

/// `<uri><extension>`: a sidecar beside an object (`ref.fa` → `ref.fa.fai`).
fn sibling(uri: &ObjectUri, extension: &str) -> ObjectUri {
    match uri {
        ObjectUri::S3 { bucket, key } => ObjectUri::S3 {
            bucket: bucket.clone(),
            key: format!("{key}{extension}"),
        },
        ObjectUri::Local(path) => ObjectUri::Local(Utf8PathBuf::from(format!("{path}{extension}"))),
    }
}

/// The contigs of `CHROMOSOMES`: a JSON array string (what
/// `States.JsonToString($.params.chromosomes)` gives) or a comma-separated list.
pub(crate) fn parse_contigs(text: &str) -> Result<Vec<String>, Failure> {
    let remedy = "give CHROMOSOMES as a JSON array ([\"chr20\",\"chrM\"]) or comma-separated";
    let trimmed = text.trim();
    let contigs: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|error| {
            usage(
                format!("CHROMOSOMES is not a JSON array of strings: {error}"),
                remedy,
            )
        })?
    } else {
        trimmed
            .split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect()
    };
    if contigs.is_empty() {
        return Err(usage("CHROMOSOMES lists no contig", remedy));
    }
    Ok(contigs)
}

/// How a step job's work ended well: it ran its commands and wrote `files`, or it reused the
/// outputs of an earlier finished job with the same cache key.
pub(crate) enum StepDone {
    /// The step ran; `cache_key` is `None` for the steps that are never reused (split, merge).
    Ran {
        commands: Vec<StageReport>,
        files: Vec<Utf8PathBuf>,
        cache_key: Option<String>,
    },
    Reused {
        cache_key: String,
        outputs: Vec<OutputRecord>,
    },
}

impl StepDone {
    fn ran(commands: Vec<StageReport>, files: Vec<Utf8PathBuf>, cache_key: String) -> Self {
        StepDone::Ran {
            commands,
            files,
            cache_key: Some(cache_key),
        }
    }

    /// A step that ran and is never reused.
    pub(crate) fn ran_uncached(commands: Vec<StageReport>, files: Vec<Utf8PathBuf>) -> Self {
        StepDone::Ran {
            commands,
            files,
            cache_key: None,
        }
    }
}

/// The step manifest's name: `{sample}.{step}[.{shard:04}].manifest.json`.
fn step_manifest_name(sample: &SampleId, step: StepId, shard: Option<usize>) -> String {
    match shard {
        Some(index) => format!("{sample}.{step}.{index:04}.manifest.json"),
        None => format!("{sample}.{step}.manifest.json"),
    }
}

/// A step's scratch directory, its space watch and its context.
pub(crate) struct StepRun {
    engine: Engine,
    scratch: JobScratch,
    space: SpaceWatch,
    pub(crate) work_dir: Utf8PathBuf,
    context: StepContext,
    /// Why a resumed job runs its step, for its task record.
    rerun_reason: std::sync::Mutex<Option<String>>,
}

impl StepRun {
    /// Resolves the tools and creates the attempt's scratch directory
    /// (`<root>/<job id>/<attempt>/`; the job id is `AWS_BATCH_JOB_ID`, or a fresh id
    /// starting with the step's name outside AWS Batch). The step's time limit starts now.
    pub(crate) fn new(
        runtime: &RuntimeArgs,
        cancel: &CancelToken,
        stores: &Stores,
        step: StepId,
    ) -> Result<StepRun, Failure> {
        let engine = engine(runtime, cancel, stores)?;
        let (job_id, attempt) = job_identity(&format!("{step}-{}", new_run_id()))?;
        let (scratch, space) = engine
            .scratch
            .open(&job_id, attempt)
            .map_err(|error| Failure::Pipeline(error.in_task(step.as_str())))?;
        let work_dir = scratch.dir().to_owned();
        let context = engine
            .context(&work_dir.join("logs"), &space)
            .for_step(step.as_str());
        Ok(StepRun {
            engine,
            scratch,
            space,
            work_dir,
            context,
            rerun_reason: std::sync::Mutex::new(None),
        })
    }

    pub(crate) fn context(&self) -> StepContext {
        self.context.clone()
    }

    /// With `resume`, the outputs of the earlier job of this step whose manifest
    /// (`<prefix>/<manifest name>`) records it finished with `key`, checked unchanged; `None`
    /// (the step runs) otherwise.
    fn reuse(
        &self,
        resume: bool,
        prefix: &ObjectUri,
        manifest_name: &str,
        key: &str,
    ) -> Option<Vec<OutputRecord>> {
        if !resume {
            return None;
        }
        let stores = &self.engine.stores;
        let uri = prefix.join(manifest_name);
        let earlier = EarlierTasks::from_step_manifest(stores, &uri).unwrap_or_else(|error| {
            tracing::warn!(%uri, error = %error_chain(&error), "could not read the earlier step manifest; the step runs");
            EarlierTasks::default()
        });
        let reused = match try_reuse(stores, &earlier, key, prefix, &self.work_dir.join("reused")) {
            Ok(reused) => reused,
            Err(reason) => {
                tracing::info!(manifest = %uri, cache_key = key, %reason, "not reused: the step runs");
                if let Ok(mut slot) = self.rerun_reason.lock() {
                    *slot = Some(reason.to_string());
                }
                return None;
            }
        };
        tracing::info!(manifest = %uri, cache_key = key, "reused: an earlier job finished this step with the same cache key and its outputs are unchanged; nothing runs");
        Some(reused.into_iter().map(|output| output.record).collect())
    }

    fn staging(&self) -> Utf8PathBuf {
        self.work_dir.join("inputs")
    }

    /// Stages `uri` into scratch (a local file is used in place).
    pub(crate) fn stage(
        &self,
        uri: &ObjectUri,
        what: &str,
        remedy: &str,
    ) -> Result<Utf8PathBuf, Error> {
        stage_input(&self.engine.stores, uri, &self.staging(), what, remedy)
    }

    /// Resolves the reference (`REFERENCE`, else `REFERENCE_NAME` under the prefix), stages
    /// the FASTA and, from S3, those of `sidecars` that exist beside it (after it, so they are
    /// not older), then builds what is still missing (the `.fai`; the bwa index when
    /// `bwa_index`).
    pub(crate) fn reference(
        &self,
        job: &Job,
        sidecars: &[&str],
        runtime: &RuntimeArgs,
        bwa_index: bool,
        context: &StepContext,
    ) -> Result<(PreparedReference, Vec<StageReport>), Error> {
        let stores = &self.engine.stores;
        let uri = resolve_reference(stores, &job.environment.reference_candidates()?)?;
        let remedy =
            "check REFERENCE_NAME and REFERENCE_PREFIX (or SOURCE_DATA_PREFIX), or give REFERENCE";
        let local = self.stage(&uri, "reference", remedy)?;
        let mut staged_ann = None;
        if uri.local_path().is_none() && !uri.to_string().ends_with(".gz") {
            for extension in sidecars {
                let sidecar = sibling(&uri, extension);
                if stores.for_uri(&sidecar)?.head(&sidecar)?.is_some() {
                    self.stage(&sidecar, "reference index", remedy)?;
                    if *extension == ".ann" {
                        staged_ann = Some(sidecar);
                    }
                }
            }
        }
        let options = ReferenceOptions {
            cache_dir: cache_dir(runtime),
            bwa_index,
        };
        let mut reports = Vec::new();
        if let Some(ann) = staged_ann.filter(|_| bwa_index) {
            // A bwa index from S3 that does not belong to the FASTA beside it is refused, not
            // rebuilt in scratch: the stale objects would stay in the bucket for the next job.
            let fai_only = ReferenceOptions {
                bwa_index: false,
                ..options.clone()
            };
            let (reference, mut ran) =
                biojob_pipeline::prepare_reference(&local, &fai_only, context)?;
            reports.append(&mut ran);
            if let Some(mismatch) = bwa_index_mismatch(&local, &reference.contigs)? {
                return Err(Error::Input {
                    message: format!(
                        "the bwa index {ann} does not belong to the FASTA {uri}: {mismatch}"
                    ),
                    remedy: Some(
                        "upload the bwa index built from this FASTA (bwa index), or remove the stale index objects"
                            .into(),
                    ),
                });
            }
        }
        let (reference, mut ran) = biojob_pipeline::prepare_reference(&local, &options, context)?;
        reports.append(&mut ran);
        Ok((reference, reports))
    }

    /// The size of the object at `uri` in bytes, 0 when it does not exist (staging then
    /// reports it missing). A key that could not be staged into scratch (`..`, an empty
    /// segment) is refused first, before any request.
    /// `uri` as a FASTQ source read once: a local path as it is, an object streamed from its
    /// store ([`biojob_storage::ObjectStore::open`]) with the handle on its transfer error.
    pub(crate) fn fastq_source(
        &self,
        uri: &ObjectUri,
    ) -> Result<(FastqSource, Option<StreamFailure>), Error> {
        if let Some(path) = uri.local_path() {
            return Ok((FastqSource::file(path), None));
        }
        let reader = self.engine.stores.for_uri(uri)?.open(uri)?;
        let failure = reader.failure();
        Ok((FastqSource::reader(&uri.to_string(), reader), Some(failure)))
    }

    pub(crate) fn size_of(&self, uri: &ObjectUri) -> Result<u64, Error> {
        if uri.local_path().is_none() {
            uri.scratch_path(&self.staging())?;
        }
        Ok(self
            .engine
            .stores
            .for_uri(uri)?
            .head(uri)?
            .map_or(0, |meta| meta.size))
    }

    /// Checks the scratch space for the inputs to be copied in (those that are not local
    /// files) plus what the step writes, before staging anything.
    pub(crate) fn preflight(
        &self,
        uris: &[&ObjectUri],
        need: impl FnOnce(u64) -> SpaceNeed,
    ) -> Result<(), Error> {
        let mut staged = 0u64;
        for uri in uris.iter().filter(|uri| uri.local_path().is_none()) {
            staged = staged.saturating_add(self.size_of(uri)?);
        }
        self.context.preflight(&need(staged))
    }

    /// Publishes outputs (on success) and logs (always), removes the scratch directory (unless
    /// kept), then publishes the step manifest (always); returns the step's own result.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish(
        self,
        step: StepId,
        shard: Option<(usize, &str)>,
        sample: &SampleId,
        prefix: &ObjectUri,
        started: SystemTime,
        clock: Instant,
        result: Result<StepDone, Error>,
    ) -> Result<(), Failure> {
        let stores = &self.engine.stores;
        let published = result.and_then(|done| match done {
            StepDone::Ran {
                commands,
                files,
                cache_key,
            } => {
                self.context.check_stopped("publishing the outputs")?;
                let outputs = files
                    .iter()
                    .map(|file| publish_file(stores, file, prefix))
                    .collect::<Result<Vec<OutputRecord>, Error>>()?;
                Ok(TaskRecord {
                    outputs,
                    cache_key,
                    rerun_reason: self
                        .rerun_reason
                        .lock()
                        .ok()
                        .and_then(|mut slot| slot.take()),
                    ..TaskRecord::new(step, shard, started, clock.elapsed(), &commands)
                })
            }
            StepDone::Reused { cache_key, outputs } => Ok(TaskRecord::cached(
                step,
                shard,
                started,
                clock.elapsed(),
                cache_key,
                outputs,
            )),
        });
        let task = step.as_str().to_owned();
        let (record, result) = match published {
            Ok(record) => (record, Ok(())),
            Err(error) => {
                let error = error.in_task(task);
                let commands = match error.root() {
                    Error::Process(process) => process
                        .report()
                        .map(|report| report.stages.clone())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                (
                    TaskRecord::new(step, shard, started, clock.elapsed(), &commands)
                        .failed(&error),
                    Err(Failure::Pipeline(error)),
                )
            }
        };
        let bytes_staged_out = record.outputs.iter().map(|output| output.bytes).sum();
        if let Err(error) = publish_logs(stores, &self.work_dir.join("logs"), prefix) {
            tracing::warn!(error = %error_chain(&error), "could not publish the logs");
        }
        let scratch_usage = self.space.usage();
        // Free the scratch space before writing the manifest: it may be what ran out.
        match self.scratch.finish(self.engine.scratch.keep) {
            Ok(Some(kept)) => eprintln!("scratch kept: {kept}"),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "could not remove the scratch directory")
            }
        }
        let name = step_manifest_name(sample, step, shard.map(|(index, _)| index));
        // A task that did not finish keeps the earlier finished one for a later resume.
        let earlier_task = (!matches!(record.status, TaskStatus::Succeeded | TaskStatus::Cached))
            .then(|| earlier_step_task(stores, &prefix.join(&name)))
            .flatten();
        let mut manifest = serde_json::json!({
            "format_version": biojob_pipeline::MANIFEST_FORMAT_VERSION,
            "biojob_version": env!("CARGO_PKG_VERSION"),
            "sample": sample.as_str(),
            "resources": self.engine.resources,
            "tools": {
                "bwa": {"path": self.engine.toolset.bwa.path, "version": self.engine.versions.bwa},
                "samtools": {"path": self.engine.toolset.samtools.path, "version": self.engine.versions.samtools},
                "bcftools": {"path": self.engine.toolset.bcftools.path, "version": self.engine.versions.bcftools},
            },
            "scratch": scratch_usage,
            "task": record,
        });
        if let Some(earlier_task) = earlier_task {
            manifest["earlier_task"] = earlier_task;
        }
        let written = tempfile::tempdir()
            .map_err(Error::io("creating", "a temporary directory"))
            .and_then(|dir| {
                let path = Utf8PathBuf::from_path_buf(dir.path().join(&name)).map_err(|p| {
                    Error::io("writing", p.to_string_lossy().into_owned())(std::io::Error::other(
                        "non-UTF-8 path",
                    ))
                })?;
                serde_json::to_vec_pretty(&manifest)
                    .map_err(std::io::Error::other)
                    .and_then(|json| std::fs::write(&path, json))
                    .map_err(Error::io("writing", &path))?;
                publish_file(stores, &path, prefix)
            });
        if let Err(error) = written {
            tracing::warn!(error = %error_chain(&error), "could not publish the step manifest");
        }
        crate::metrics::emit_step(&crate::metrics::StepMetrics {
            step: step.as_str(),
            sample: sample.as_str(),
            contig: shard.map(|(_, contig)| contig),
            duration: clock.elapsed(),
            exit_code: result
                .as_ref()
                .map_or_else(|f| f.exit_class().code(), |()| 0),
            // Inputs are local until S3 staging lands; then the staging reports give this.
            bytes_staged_in: None,
            bytes_staged_out: Some(bytes_staged_out),
            scratch_peak_bytes: Some(scratch_usage.peak_bytes),
        });
        result
    }
}

pub fn prepare_reference(
    args: PrepareReferenceArgs,
    cancel: &CancelToken,
    stores: &Stores,
) -> Result<(), Failure> {
    let run = StepRun::new(&args.runtime, cancel, stores, StepId::PrepareReference)?;
    let context = run.context();
    let (reference, _) = biojob_pipeline::prepare_reference(
        &args.reference,
        &ReferenceOptions {
            cache_dir: cache_dir(&args.runtime),
            bwa_index: !args.fai_only,
        },
        &context,
    )
    .map_err(|error| error.in_task(StepId::PrepareReference.as_str()))?;
    #[allow(clippy::print_stdout, reason = "the step's result")]
    {
        println!("fasta: {}", reference.fasta);
        println!("fai: {}", reference.fai);
        if let Some(prefix) = &reference.bwa_prefix {
            println!("bwa index: {prefix}");
        }
        for built in &reference.built {
            println!("built: {built}");
        }
    }
    if let Some(kept) = run
        .scratch
        .finish(run.engine.scratch.keep)
        .map_err(|error| Failure::Pipeline(error.into()))?
    {
        eprintln!("scratch kept: {kept}");
    }
    Ok(())
}

/// The align job: stages the FASTQ pair and the reference with the `.fai` and bwa index that
/// exist beside it, builds what is missing, aligns, and stages out the BAM and its index.
pub fn align(args: AlignArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let mut overrides = args.fastqs.overrides().to_vec();
    overrides.extend(args.read_group.overrides());
    let job = Job::new(&args.step, &overrides)?;
    let read_group = job.environment.read_group(&job.sample)?;
    let (fastq_1, fastq_2) = match args.chunk {
        Some(chunk) => crate::scale_steps::chunk_fastqs(&job, chunk),
        None => job.environment.fastqs(&job.sample)?,
    };
    let resume = args.runtime.resumes();
    let run = StepRun::new(&args.runtime, cancel, stores, StepId::Align)?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let result = (|| {
        let remedy = format!(
            "check SOURCE_DATA_PREFIX and SAMPLE_ID (files are named {0}_R1.fastq.gz and {0}_R2.fastq.gz), or give FASTQ_1 and FASTQ_2",
            job.sample
        );
        let fastq_bytes = [&fastq_1, &fastq_2].iter().try_fold(0u64, |sum, uri| {
            Ok::<u64, Error>(sum.saturating_add(run.size_of(uri)?))
        })?;
        run.preflight(&[&fastq_1, &fastq_2], |staged| {
            align_space_need(staged, fastq_bytes, &fastq_1.to_string())
        })?;
        let r1 = run.stage(&fastq_1, "FASTQ_1", &remedy)?;
        let r2 = run.stage(&fastq_2, "FASTQ_2", &remedy)?;
        let mut sidecars = vec![".fai"];
        sidecars.extend(BWA_INDEX_EXTENSIONS);
        let (reference, mut commands) =
            run.reference(&job, &sidecars, &args.runtime, true, &context)?;
        let engine = &run.engine;
        let mut fastq_digests = fastq_pair_sha256(&r1, &r2, &fastq_1, &fastq_2)?.into_iter();
        let cache_key = align_key(
            &engine.toolset,
            &engine.versions,
            &job.sample,
            &read_group,
            &AlignInputDigests {
                fastq_1: fastq_digests.next().unwrap_or_default(),
                fastq_2: fastq_digests.next().unwrap_or_default(),
                reference: reference_sha256(&reference)?,
                bwa_index: bwa_index_sha256(&reference)?,
            },
        )
        .key();
        let manifest = step_manifest_name(&job.sample, StepId::Align, args.chunk);
        if let Some(outputs) = run.reuse(resume, &job.run_prefix, &manifest, &cache_key) {
            return Ok(StepDone::Reused { cache_key, outputs });
        }
        let output = biojob_pipeline::align(
            &AlignRequest {
                sample: &job.sample,
                read_group: &read_group,
                reference: &reference,
                fastq_1: &r1,
                fastq_2: &r2,
                work_dir: &run.work_dir,
            },
            &context,
        )?;
        commands.extend(output.commands);
        let outputs = match args.chunk {
            Some(chunk) => crate::scale_steps::chunk_bam(&job, chunk, &output.bam, &output.bai)?,
            None => vec![output.bam, output.bai],
        };
        Ok(StepDone::ran(commands, outputs, cache_key))
    })();
    let chunk_label = args.chunk.map(|chunk| format!("chunk {chunk:04}"));
    run.finish(
        StepId::Align,
        args.chunk.zip(chunk_label.as_deref()),
        &job.sample,
        &job.run_prefix,
        started,
        clock,
        result,
    )
}

/// The call job for one contig (`CHROMOSOME`): stages the reference FASTA and `.fai` (never
/// the bwa index) and `<run prefix>/<sample>.align.bam` with its `.bai`, calls, and stages out
/// `<sample>.call.<shard>.vcf.gz` and its `.tbi` (`<shard>`: the contig's line in the `.fai`).
pub fn call(args: CallArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(
        &args.step,
        &[(keys::MIN_MAPPING_QUALITY, args.min_mapping_quality.as_ref())],
    )?;
    let min_mapping_quality = job.environment.min_mapping_quality()?;
    let requested = args.contigs.as_deref().map(parse_contigs).transpose()?;
    let bam = match &args.bam {
        Some(text) => uri(text, "--bam")?,
        None => job
            .run_prefix
            .join(&scratch_file_name(&job.sample, StepId::Align, None, "bam")),
    };
    let resume = args.runtime.resumes();
    let run = StepRun::new(&args.runtime, cancel, stores, StepId::Call)?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let mut shard_key = None;
    let result = (|| {
        let (reference, mut commands) =
            run.reference(&job, &[".fai"], &args.runtime, false, &context)?;
        let shard = crate::scale_steps::call_shard(&args, requested.as_deref(), &reference)?;
        shard_key = Some((shard.index, shard.region().to_owned()));
        let bai = sibling(&bam, ".bai");
        let bam_bytes = run.size_of(&bam)?;
        run.preflight(&[&bam, &bai], |staged| {
            call_space_need(&format!("call {}", shard.region()), staged, bam_bytes)
        })?;
        let bam_path = run.stage(&bam, "BAM", "run the align step first, or give --bam")?;
        run.stage(
            &bai,
            "BAM index",
            "index the BAM with samtools index (the .bai must sit beside it)",
        )?;
        let engine = &run.engine;
        let cache_key = call_key(
            &engine.toolset,
            &engine.versions,
            &job.sample,
            &shard,
            min_mapping_quality,
            &file_sha256(&bam_path)?,
            &reference_sha256(&reference)?,
        )
        .key();
        let manifest = step_manifest_name(&job.sample, StepId::Call, Some(shard.index));
        if let Some(outputs) = run.reuse(resume, &job.run_prefix, &manifest, &cache_key) {
            return Ok(StepDone::Reused { cache_key, outputs });
        }
        let output = biojob_pipeline::call(
            &CallRequest {
                sample: &job.sample,
                shard: &shard,
                fasta: &reference.fasta,
                bam: &bam_path,
                work_dir: &run.work_dir,
                min_mapping_quality,
            },
            &context,
        )?;
        commands.extend(output.commands);
        Ok(StepDone::ran(
            commands,
            vec![output.vcf, output.tbi],
            cache_key,
        ))
    })();
    let shard = shard_key
        .as_ref()
        .map(|(index, region)| (*index, region.as_str()));
    run.finish(
        StepId::Call,
        shard,
        &job.sample,
        &job.run_prefix,
        started,
        clock,
        result,
    )
}

/// The gather job: stages the reference `.fai` (the FASTA only when there is no `.fai`, to
/// build one) and, for each contig of `CHROMOSOMES`, `<run prefix>/<sample>.call.<shard>.vcf.gz`
/// and its `.tbi`; concatenates them in reference order and stages out `<sample>.vcf.gz` and
/// its `.tbi`.
pub fn gather(args: GatherArgs, cancel: &CancelToken, stores: &Stores) -> Result<(), Failure> {
    let job = Job::new(&args.step, &[])?;
    let explicit = args
        .vcfs
        .iter()
        .map(|text| uri(text, "--vcf"))
        .collect::<Result<Vec<_>, _>>()?;
    let requested = match (&args.contigs, explicit.is_empty()) {
        (Some(text), true) => Some(parse_contigs(text)?),
        _ => None,
    };
    let resume = args.runtime.resumes();
    let run = StepRun::new(&args.runtime, cancel, stores, StepId::Gather)?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let result = (|| {
        let (contigs, fai, mut commands) = gather_reference(&run, &job, &args.runtime, &context)?;
        let (vcfs, shard_indexes): (Vec<ObjectUri>, Vec<usize>) = match &requested {
            Some(names) => biojob_pipeline::shard_plan(
                contig_plan(&contigs, Some(names), &fai)?,
                std::num::NonZeroU64::new(args.shard_bases),
            )
            .shards()
            .iter()
            .map(|shard| {
                let vcf = job.run_prefix.join(&scratch_file_name(
                    &job.sample,
                    StepId::Call,
                    Some(shard.index),
                    "vcf.gz",
                ));
                (vcf, shard.index)
            })
            .unzip(),
            None => (explicit.clone(), Vec::new()),
        };
        let mut inputs = Vec::new();
        for vcf in &vcfs {
            inputs.push(vcf.clone());
            inputs.push(sibling(vcf, ".tbi"));
        }
        let vcf_bytes = vcfs.iter().try_fold(0u64, |sum, uri| {
            Ok::<u64, Error>(sum.saturating_add(run.size_of(uri)?))
        })?;
        run.preflight(&inputs.iter().collect::<Vec<_>>(), |staged| {
            gather_space_need(staged, vcf_bytes)
        })?;
        let mut local = Vec::new();
        for vcf in &vcfs {
            local.push(run.stage(vcf, "VCF", "run the call step for every contig first")?);
            run.stage(
                &sibling(vcf, ".tbi"),
                "VCF index",
                "index each VCF with bcftools index -t (the .tbi must sit beside it)",
            )?;
        }
        let mut vcf_digests = Vec::new();
        for (position, path) in local.iter().enumerate() {
            let index = shard_indexes.get(position).copied().unwrap_or(position);
            vcf_digests.push((index, file_sha256(path)?));
        }
        let engine = &run.engine;
        let cache_key = gather_key(
            &engine.toolset,
            &engine.versions,
            &job.sample,
            &vcf_digests,
            &file_sha256(&fai)?,
        )
        .key();
        let manifest = step_manifest_name(&job.sample, StepId::Gather, None);
        if let Some(outputs) = run.reuse(resume, &job.run_prefix, &manifest, &cache_key) {
            return Ok(StepDone::Reused { cache_key, outputs });
        }
        let output = biojob_pipeline::gather(
            &GatherRequest {
                sample: &job.sample,
                contigs: &contigs,
                vcfs: &local,
                work_dir: &run.work_dir,
            },
            &context,
        )?;
        commands.extend(output.commands);
        Ok(StepDone::ran(
            commands,
            vec![output.vcf, output.tbi],
            cache_key,
        ))
    })();
    run.finish(
        StepId::Gather,
        None,
        &job.sample,
        &job.run_prefix,
        started,
        clock,
        result,
    )
}

/// The reference's contigs for gather: from its `.fai` when one exists beside it, else from a
/// `.fai` built from the staged FASTA.
fn gather_reference(
    run: &StepRun,
    job: &Job,
    runtime: &RuntimeArgs,
    context: &StepContext,
) -> Result<(Vec<biojob_core::Contig>, Utf8PathBuf, Vec<StageReport>), Error> {
    let stores = &run.engine.stores;
    let uri = resolve_reference(stores, &job.environment.reference_candidates()?)?;
    if !uri.to_string().ends_with(".gz") {
        let fai = sibling(&uri, ".fai");
        if stores.for_uri(&fai)?.head(&fai)?.is_some() {
            let path = run.stage(&fai, "reference index", "check the reference's .fai")?;
            let contigs = biojob_formats::read_fai(&path)?;
            return Ok((contigs, path, Vec::new()));
        }
    }
    let (reference, commands) = run.reference(job, &[], runtime, false, context)?;
    Ok((reference.contigs, reference.fai, commands))
}
