//! One step job's lifecycle, the same for a task of `biojob run` and for an AWS Batch job
//! ([`crate::run_batch_job`]): preflight → stage in → cache key → reuse? → run → verify →
//! publish → task record. docs/steps.md says why and how to add a step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant, SystemTime};

use biojob_core::{Region, SampleId, StepId};
use biojob_process::StageReport;
use biojob_scratch::SpaceNeed;
use biojob_storage::{ObjectUri, Stores};
use camino::{Utf8Path, Utf8PathBuf};
use tracing::info;

use crate::cache::{
    EarlierTasks, RerunReason, bwa_index_sha256_until, file_sha256_until, files_sha256_until,
    reference_sha256_until, try_reuse,
};
use crate::{
    BamSliceRecord, CacheKeyMaterial, CohortMember, Error, OutputRecord, PlanContext,
    PlannedOutput, PreparedReference, RecordCounts, ReferenceOptions, RunObserver, StepContext,
    StepPlan, TaskLabel, TaskProgress, TaskRecord, TaskShard, bwa_index_mismatch,
    prepare_reference, publish_file, stage_input,
};

/// A step of the workflow, defined once: its plan (the commands it runs, see
/// [`crate::plan`]), its scratch need and how it runs its plan. [`StepJob`] drives it.
pub trait StepDefinition: Sync {
    /// The step.
    fn step(&self) -> StepId;

    /// The shard of a scattered step (a calling shard, an alignment chunk); `None` for an
    /// unscattered step.
    fn shard(&self) -> Option<TaskShard> {
        None
    }

    /// The sample (and lane) a task of a cohort run works for, which its label and record
    /// name; `None` for a single-sample run's tasks and a cohort's joint steps.
    fn cohort_member(&self) -> Option<CohortMember> {
        None
    }

    /// The scratch space the step needs: `staged` bytes of inputs copied in, plus what it
    /// writes, given its inputs other than the reference (`(URI, bytes)`, in job order).
    fn space_need(&self, staged: u64, inputs: &[(String, u64)]) -> SpaceNeed;

    /// The plan: see [`crate::plan`].
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan;

    /// Whether the step has a cache key and can be reused on resume.
    fn cacheable(&self) -> bool {
        true
    }

    /// Called once the reference is staged, before the other inputs: what of the request
    /// depends on the reference is settled here (a call job's shard named by its contig; a
    /// gather job's VCFs, one per shard of the plan cut from the `.fai`), and the inputs it
    /// adds are returned.
    ///
    /// # Errors
    /// [`Error::Input`] or [`Error::Usage`] when the request does not fit the reference.
    fn with_reference(
        &self,
        _reference: &PreparedReference,
        _context: &StepContext,
    ) -> Result<Vec<JobInput>, Error> {
        Ok(Vec::new())
    }

    /// The regions the step reads of its inputs staged with [`Staging::BamRegions`], once
    /// known (after [`StepDefinition::with_reference`]): a BAM from an object store is then
    /// staged for these regions only. `None`: such inputs are staged whole.
    fn bam_regions(&self) -> Option<Vec<Region>> {
        None
    }

    /// Checks the inputs' digests (role → SHA-256) before the key is made (align: the two
    /// FASTQs are not one file given twice).
    ///
    /// # Errors
    /// [`Error::Input`] when the inputs cannot be right.
    fn check_digests(
        &self,
        _digests: &BTreeMap<String, String>,
        _inputs: &StagedInputs,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Runs `plan`, made from `inputs`, and checks what it wrote.
    ///
    /// # Errors
    /// The step's own errors (see each step).
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error>;
}

/// How an input enters its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputDigest {
    /// Hashed after staging.
    Hash,
    /// Already known (an earlier task of the run published it with this SHA-256).
    Known(String),
    /// Not in the key: derived from another input (an index beside its file).
    None,
}

/// How an input is brought to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staging {
    /// Copied into scratch whole; a local file is read in place.
    Copy,
    /// Read from where it is by the step itself (the split job streams S3 FASTQs), not
    /// staged.
    Streamed,
    /// A coordinate-sorted BAM: from an object store, only the blocks holding the records of
    /// the step's [regions](StepDefinition::bam_regions) are staged, found through the BAM's
    /// `.bai` and indexed anew ([`biojob_formats::StoredBam::stage_regions`]; the whole object
    /// when its index cannot be used); a local file is read in place, its `.bai` beside it.
    /// The key hashes what was staged.
    BamRegions,
}

/// One input of a job.
#[derive(Debug, Clone)]
pub struct JobInput {
    /// Its role: the name the plan asks for ([`PlanContext::input`]) and the key records.
    pub role: String,
    /// Where it is.
    pub uri: ObjectUri,
    /// How errors name it (`FASTQ_1`, `BAM index`).
    pub what: String,
    /// How to fix it when it is missing.
    pub remedy: String,
    /// How it enters the key.
    pub digest: InputDigest,
    /// How it is brought to the job.
    pub staging: Staging,
    /// The SHA-256 that the step which published it recorded (its step manifest), when known:
    /// the staged copy must have it (an object changed after it was published is refused; a
    /// slice of a BAM's regions is checked by its blocks' CRC32 instead).
    pub published: Option<Published>,
}

/// What an earlier step job recorded of an output it published: see [`published_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The step manifest that records it.
    pub manifest: ObjectUri,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Its size in bytes: what a slice of it (whose SHA-256 is not the object's) is checked
    /// against.
    pub bytes: u64,
    /// The records of the BAM, as the task counted them while writing it (align, merge).
    pub bam_records: Option<u64>,
    /// The read pairs the task fed to the aligner (align).
    pub read_pairs: Option<u64>,
}

impl JobInput {
    /// A staged input, hashed into the key.
    pub fn new(role: &str, uri: ObjectUri, what: &str, remedy: &str) -> Self {
        JobInput {
            role: role.to_owned(),
            uri,
            what: what.to_owned(),
            remedy: remedy.to_owned(),
            digest: InputDigest::Hash,
            staging: Staging::Copy,
            published: None,
        }
    }

    /// Checked against what the step that published it recorded, when it did.
    pub fn published(mut self, published: Option<Published>) -> Self {
        self.published = published;
        self
    }

    /// With its SHA-256 already known.
    pub fn known(mut self, sha256: Option<String>) -> Self {
        if let Some(sha256) = sha256 {
            self.digest = InputDigest::Known(sha256);
        }
        self
    }

    /// Left out of the key.
    pub fn unkeyed(mut self) -> Self {
        self.digest = InputDigest::None;
        self
    }

    /// Streamed by the step rather than staged ([`Staging::Streamed`]).
    pub fn streamed(mut self) -> Self {
        self.staging = Staging::Streamed;
        self
    }

    /// A BAM staged for the step's regions only ([`Staging::BamRegions`]).
    pub fn bam_regions(mut self) -> Self {
        self.staging = Staging::BamRegions;
        self
    }
}

/// Which of the reference's files a step reads, so staged and hashed into its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceUse {
    /// The `.fai` only (its contigs): gather, merge.
    Fai,
    /// The FASTA with its `.fai`: call, qc.
    Fasta,
    /// The FASTA, its `.fai` and the bwa index: align.
    FastaAndBwaIndex,
}

/// Where a job's reference comes from.
#[derive(Debug, Clone)]
pub enum ReferenceInput {
    /// Prepared by an earlier task of the run (`prepare-reference`).
    Prepared(PreparedReference),
    /// Staged by the job: the first FASTA of `candidates` that exists, and the sidecars the
    /// step reads that exist beside it; what is missing is built in scratch (or in
    /// `cache_dir`).
    Stage {
        /// Where the FASTA may be, in the order tried.
        candidates: Vec<ObjectUri>,
        /// The cache for indexes when the FASTA's directory is read-only.
        cache_dir: Utf8PathBuf,
    },
}

/// The reference role in plans: the FASTA path the tools read (also bwa's index prefix).
pub const REFERENCE: &str = "reference";

/// A job's inputs once staged, and its work directory.
#[derive(Debug, Clone, Default)]
pub struct StagedInputs {
    /// Where the step writes.
    pub work_dir: Utf8PathBuf,
    /// Each input's local path by role (streamed inputs have none), and [`REFERENCE`].
    pub paths: BTreeMap<String, Utf8PathBuf>,
    /// Where each input came from, by role.
    pub uris: BTreeMap<String, ObjectUri>,
    /// The reference, when the step reads one.
    pub reference: Option<PreparedReference>,
    /// The job's inputs (those the step added once the reference was staged included).
    pub inputs: Vec<JobInput>,
    /// Bytes copied in from object stores so far (reference and inputs).
    pub bytes_staged_in: u64,
    /// The roles staged as a slice of a BAM's regions: their digest is the slice's, not the
    /// published object's.
    pub sliced: Vec<String>,
}

impl StagedInputs {
    /// The local path of `role`.
    ///
    /// # Errors
    /// [`Error::Usage`] when the job has no such input (a step defined wrongly).
    pub fn path(&self, role: &str) -> Result<&Utf8Path, Error> {
        self.paths
            .get(role)
            .map(Utf8PathBuf::as_path)
            .ok_or_else(|| missing_role(role))
    }

    /// Where `role` came from.
    ///
    /// # Errors
    /// As [`StagedInputs::path`].
    pub fn uri(&self, role: &str) -> Result<&ObjectUri, Error> {
        self.uris.get(role).ok_or_else(|| missing_role(role))
    }

    /// The reference.
    ///
    /// # Errors
    /// As [`StagedInputs::path`].
    pub fn reference(&self) -> Result<&PreparedReference, Error> {
        self.reference
            .as_ref()
            .ok_or_else(|| missing_role(REFERENCE))
    }
}

fn missing_role(role: &str) -> Error {
    Error::Usage {
        message: format!("the step has no input {role:?}"),
        remedy: None,
    }
}

/// What a step's run gives back.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    /// The tools' reports, in the order they ran.
    pub commands: Vec<StageReport>,
    /// The outputs written, final names (usually the plan's).
    pub outputs: Vec<PlannedOutput>,
    /// Outputs the step published itself as it wrote them (the split job's chunks, uploaded
    /// as they are compressed; a merged BAM uploaded as it is written), in publication order,
    /// before `outputs`: no local copy.
    pub published: Vec<OutputRecord>,
    /// Bytes the step read from object stores itself ([`Staging::Streamed`] inputs), counted
    /// with the bytes staged in.
    pub bytes_streamed_in: u64,
    /// The records the step counted and checked (read pairs fed to the aligner, the BAM's
    /// records, the VCF's).
    pub records: RecordCounts,
}

/// Whether and how a job has a cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPolicy {
    /// The step's own key, when it is [cacheable](StepDefinition::cacheable).
    Own,
    /// No key: the step's outputs are never looked for (a local run's alignment chunks).
    None,
    /// This key (a local run's merge carries the key of the whole chunked alignment).
    Given(String),
}

/// One step of one sample, with its inputs: see the module documentation.
pub struct StepJob<'a> {
    /// The step.
    pub definition: &'a dyn StepDefinition,
    /// Its inputs other than the reference.
    pub inputs: Vec<JobInput>,
    /// Its reference and what of it the step reads.
    pub reference: Option<(ReferenceInput, ReferenceUse)>,
    /// Its key.
    pub key: KeyPolicy,
}

/// Where a resumed job finds the earlier finished tasks.
#[derive(Clone, Copy)]
pub enum Earlier<'a> {
    /// A run's, read from its manifest.
    Tasks(&'a EarlierTasks),
    /// The step manifest of this step (and shard) of `sample` under the job's prefix, read
    /// when the job knows its shard.
    StepManifest(&'a SampleId),
}

/// Where and how a job runs.
#[derive(Clone, Copy)]
pub struct JobTarget<'a> {
    /// The job's context (its supervisor's time limit starts when the job does).
    pub context: &'a StepContext,
    /// Where the step writes.
    pub work_dir: &'a Utf8Path,
    /// Where its outputs are published (the run's output directory, a Batch run prefix).
    pub prefix: &'a ObjectUri,
    /// Whether intermediate outputs are published too (Batch jobs: the next job reads them).
    pub publish_intermediates: bool,
    /// Where the earlier finished tasks to reuse are, when resuming.
    pub earlier: Option<Earlier<'a>>,
    /// Told when the task starts, ends or is reused.
    pub observer: &'a dyn RunObserver,
}

/// An output of a finished (or reused) job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutput {
    /// The file's name.
    pub name: String,
    /// A local copy: in the work directory, or the reused output (or a fetched copy of it).
    pub path: Utf8PathBuf,
    /// Its SHA-256, when published or reused.
    pub sha256: Option<String>,
}

/// How a job ended.
#[derive(Debug)]
pub struct JobOutcome {
    /// Its record for the manifest.
    pub record: TaskRecord,
    /// Its outputs, in publication order (none when it failed).
    pub outputs: Vec<JobOutput>,
    /// The reference it staged or was given.
    pub reference: Option<PreparedReference>,
    /// Read pairs aligned (align; `None` when reused or another step).
    pub read_pairs: Option<u64>,
    /// Why it failed, wrapped with its task (`call chr20 failed: …`).
    pub error: Option<Error>,
}

impl JobOutcome {
    /// The output whose name ends with `suffix`.
    pub fn output(&self, suffix: &str) -> Option<&JobOutput> {
        self.outputs.iter().find(|o| o.name.ends_with(suffix))
    }
}

impl StepJob<'_> {
    /// The task's label (`align`, `call chr20`, `align chunk 0003`).
    pub fn label(&self) -> TaskLabel {
        TaskLabel::new(self.definition.step(), self.definition.shard())
            .of(self.definition.cohort_member())
    }

    /// Runs the lifecycle. Never fails: the outcome carries the error and the record says how
    /// the task ended.
    pub fn run(&self, target: &JobTarget<'_>) -> JobOutcome {
        let started_as = self.label();
        let step = self.definition.step();
        target.observer.started(&started_as);
        let (started, clock) = (SystemTime::now(), Instant::now());
        let _span = tracing::info_span!("task", task = %started_as).entered();
        let mut facts = Facts::default();
        let result = self.lifecycle(target, &mut facts);
        let wall = clock.elapsed();
        // A shard named by its contig is settled once the reference is read.
        let shard = self.definition.shard();
        let label = started_as;
        let named = self.label();
        let rerun_reason = facts.rerun_reason.map(|reason| reason.to_string());
        let mut outcome = match result {
            Ok(Done::Reused {
                key,
                outputs,
                counted,
            }) => {
                target.observer.reused(&label);
                let records: Vec<OutputRecord> = outputs.iter().map(|o| o.0.clone()).collect();
                JobOutcome {
                    record: TaskRecord {
                        inputs: facts.inputs,
                        records: counted,
                        ..TaskRecord::cached(step, shard, started, Duration::ZERO, key, records)
                    },
                    outputs: outputs.into_iter().map(|o| o.1).collect(),
                    reference: facts.reference,
                    read_pairs: None,
                    error: None,
                }
            }
            Ok(Done::Ran {
                key,
                executed,
                records,
                outputs,
            }) => {
                target.observer.finished(&label, true, wall);
                facts.bytes_staged_in = facts
                    .bytes_staged_in
                    .saturating_add(executed.bytes_streamed_in);
                let record = TaskRecord {
                    outputs: records,
                    records: executed.records,
                    cache_key: key,
                    rerun_reason,
                    inputs: facts.inputs,
                    ..TaskRecord::new(step, shard, started, wall, &executed.commands)
                };
                JobOutcome {
                    record,
                    outputs,
                    reference: facts.reference,
                    read_pairs: executed.records.read_pairs,
                    error: None,
                }
            }
            Err(error) => {
                target.observer.finished(&label, false, wall);
                let error = error.in_task(named.to_string());
                let mut commands = facts.reference_reports;
                commands.extend(reports_of(&error));
                let record = TaskRecord {
                    rerun_reason,
                    inputs: facts.inputs,
                    ..TaskRecord::new(step, shard, started, wall, &commands)
                }
                .failed(&error);
                JobOutcome {
                    record,
                    outputs: Vec::new(),
                    reference: facts.reference,
                    read_pairs: None,
                    error: Some(error),
                }
            }
        };
        outcome.record.bytes_staged_in = facts.bytes_staged_in;
        outcome.record.bam_slices = facts.bam_slices;
        outcome.record = outcome.record.of(self.definition.cohort_member().as_ref());
        info!(status = ?outcome.record.status, wall_seconds = wall.as_secs_f64(), "task ended");
        outcome
    }

    /// Preflight, stage in and the cache key: the first half of [`StepJob::run`], for a
    /// scheduler that decides on reuse itself (a local run's chunked alignment).
    ///
    /// # Errors
    /// As [`StepJob::run`]'s staging and key.
    pub fn stage_and_key(
        &self,
        target: &JobTarget<'_>,
    ) -> Result<(StagedInputs, Option<String>), Error> {
        let mut facts = Facts::default();
        let staged = self.stage(target, &mut facts)?;
        let key = self.key_for(&staged, target.context)?;
        Ok((staged, key))
    }

    fn lifecycle(&self, target: &JobTarget<'_>, facts: &mut Facts) -> Result<Done, Error> {
        let context = target.context;
        let stores = &context.engine.stores;
        let work_dir = target.work_dir;
        let staged = self.stage(target, facts)?;
        let key = self.key_for(&staged, context)?;

        // Reuse.
        let earlier = match (&key, target.earlier) {
            (Some(_), Some(Earlier::Tasks(tasks))) => Some(std::borrow::Cow::Borrowed(tasks)),
            (Some(_), Some(Earlier::StepManifest(sample))) => {
                let name = crate::step_manifest_name(
                    sample,
                    self.definition.step(),
                    self.definition.shard().map(|shard| shard.index),
                );
                let uri = target.prefix.join(&name);
                Some(std::borrow::Cow::Owned(
                    EarlierTasks::from_step_manifest(stores, &uri).unwrap_or_else(|error| {
                        tracing::warn!(%uri, error = %crate::error_chain(&error), "could not read the earlier step manifest; the step runs");
                        EarlierTasks::default()
                    }),
                ))
            }
            _ => None,
        };
        if let (Some(key), Some(earlier)) = (&key, earlier) {
            match try_reuse(
                stores,
                &earlier,
                key,
                target.prefix,
                &work_dir.join("reused"),
            ) {
                Ok(reused) => {
                    info!(cache_key = %key, "reused: an earlier job finished this step with the same cache key and its outputs are unchanged; nothing runs");
                    return Ok(Done::Reused {
                        key: key.clone(),
                        counted: earlier
                            .finished(key)
                            .map(|task| task.records)
                            .unwrap_or_default(),
                        outputs: reused
                            .into_iter()
                            .map(|output| {
                                let local = JobOutput {
                                    name: output.record.name.clone(),
                                    path: output.path,
                                    sha256: Some(output.record.sha256.clone()),
                                };
                                (output.record, local)
                            })
                            .collect(),
                    });
                }
                Err(reason) => {
                    info!(cache_key = %key, %reason, "not reused: the step runs");
                    facts.rerun_reason = Some(reason);
                }
            }
        }

        // Run.
        context.check_stopped("starting the step")?;
        let engine = &context.engine;
        let plan = self.definition.plan(&PlanContext::local(
            &engine.toolset,
            engine.resources,
            work_dir,
            &staged.paths,
        ));
        let mut executed = self.execute_watched(plan, &staged, target)?;
        if !facts.reference_reports.is_empty() {
            let mut commands = std::mem::take(&mut facts.reference_reports);
            commands.append(&mut executed.commands);
            executed.commands = commands;
        }

        // Publish.
        context.check_stopped("publishing the outputs")?;
        let mut records = std::mem::take(&mut executed.published);
        let mut outputs = Vec::new();
        for output in &executed.outputs {
            let name = output.path.file_name().unwrap_or_default().to_owned();
            let sha256 = if output.intermediate && !target.publish_intermediates {
                None
            } else {
                let record = publish_file(stores, &output.path, target.prefix)?;
                let sha256 = record.sha256.clone();
                records.push(record);
                Some(sha256)
            };
            outputs.push(JobOutput {
                name,
                path: output.path.clone(),
                sha256,
            });
        }
        Ok(Done::Ran {
            key,
            executed,
            records,
            outputs,
        })
    }

    /// Runs the step's `execute` with a fresh [`TaskProgress`] in its context, and tells the
    /// observer how far it is at every interval ([`RunObserver::progress_interval`], else the
    /// engine's) until it returns.
    fn execute_watched(
        &self,
        plan: StepPlan,
        staged: &StagedInputs,
        target: &JobTarget<'_>,
    ) -> Result<Executed, Error> {
        let progress = Arc::new(TaskProgress::default());
        let context = target.context.with_progress(Arc::clone(&progress));
        let interval = target
            .observer
            .progress_interval()
            .unwrap_or(context.engine.progress_interval)
            .max(Duration::from_millis(100));
        let label = self.label();
        let started = Instant::now();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if let Some(snapshot) = progress.snapshot(started.elapsed()) {
                        target.observer.progress(&label, &snapshot);
                    }
                }
            });
            let executed = self.definition.execute(plan, staged, &context);
            drop(stop);
            executed
        })
    }

    /// Stages the reference (and settles what depends on it, see
    /// [`StepDefinition::with_reference`]), checks the inputs exist and the scratch space for
    /// what is copied in plus what the step writes, then stages the inputs.
    fn stage(&self, target: &JobTarget<'_>, facts: &mut Facts) -> Result<StagedInputs, Error> {
        let context = target.context;
        let stores = &context.engine.stores;
        let work_dir = target.work_dir;
        std::fs::create_dir_all(work_dir).map_err(Error::io("creating", work_dir))?;
        let staging = work_dir.join("inputs");
        let mut staged = StagedInputs {
            work_dir: work_dir.to_owned(),
            ..StagedInputs::default()
        };
        // Preflight before the reference is prepared (building an index takes a while): the
        // inputs exist, and scratch holds what is copied in plus what the step writes. Inputs
        // the step adds once it knows the reference get their own preflight.
        let mut inputs: Vec<JobInput> = self.inputs.clone();
        let mut reference_bytes = 0u64;
        if let Some((ReferenceInput::Stage { candidates, .. }, _)) = &self.reference
            && let Ok(uri) = crate::resolve_reference(stores, candidates)
            && uri.local_path().is_none()
        {
            reference_bytes = object_size(stores, &uri, &staging)?;
        }
        let mut sizes = self.preflight(&inputs, reference_bytes, target, &staging)?;
        if let Some((source, use_)) = &self.reference {
            let reference = match source {
                ReferenceInput::Prepared(reference) => reference.clone(),
                ReferenceInput::Stage {
                    candidates,
                    cache_dir,
                } => {
                    let uri = crate::resolve_reference(stores, candidates)?;
                    let (reference, reports, bytes) =
                        stage_reference(stores, &uri, *use_, cache_dir, &staging, context)?;
                    facts.reference_reports = reports;
                    facts.bytes_staged_in = facts.bytes_staged_in.saturating_add(bytes);
                    reference
                }
            };
            let added = self.definition.with_reference(&reference, context)?;
            if !added.is_empty() {
                inputs.extend(added);
                sizes = self.preflight(&inputs, 0, target, &staging)?;
            }
            staged
                .paths
                .insert(REFERENCE.to_owned(), reference.fasta.clone());
            facts.reference = Some(reference.clone());
            staged.reference = Some(reference);
        }

        for (input, (_, size)) in inputs.iter().zip(&sizes) {
            staged.uris.insert(input.role.clone(), input.uri.clone());
            if input.staging == Staging::Streamed {
                if let Some(path) = input.uri.local_path() {
                    staged.paths.insert(input.role.clone(), path.to_owned());
                }
                continue;
            }
            if input.uri.local_path().is_none() {
                context.check_stopped("staging the inputs")?;
            }
            let regions = (input.staging == Staging::BamRegions
                && input.uri.local_path().is_none())
            .then(|| self.definition.bam_regions())
            .flatten();
            let path = match regions {
                Some(regions) => {
                    // A slice's digest is not the object's: the size is what can be compared
                    // with the publication before any byte is fetched.
                    if let Some(published) = &input.published
                        && published.bytes != *size
                    {
                        return Err(Error::Input {
                            message: format!(
                                "{} {} changed after it was published: it holds {size} bytes, {} \
                                 records {}",
                                input.what, input.uri, published.manifest, published.bytes
                            ),
                            remedy: Some(
                                "run the step that publishes it again (and the steps after it)"
                                    .into(),
                            ),
                        });
                    }
                    let (path, slice) = stage_bam_slice(stores, input, &regions, &staging)?;
                    facts.bytes_staged_in =
                        facts.bytes_staged_in.saturating_add(slice.bytes_fetched);
                    if matches!(slice.staging, biojob_formats::BamStaging::Regions) {
                        staged.sliced.push(input.role.clone());
                    }
                    facts.bam_slices.push(slice);
                    path
                }
                None => {
                    let path =
                        stage_input(stores, &input.uri, &staging, &input.what, &input.remedy)?;
                    if input.uri.local_path().is_none() {
                        facts.bytes_staged_in = facts.bytes_staged_in.saturating_add(*size);
                    }
                    path
                }
            };
            staged.paths.insert(input.role.clone(), path);
        }
        staged.inputs = inputs;
        staged.bytes_staged_in = facts.bytes_staged_in;
        facts.inputs = staged
            .paths
            .iter()
            .map(|(role, path)| (role.clone(), path.to_string()))
            .collect();
        Ok(staged)
    }

    /// Checks that `inputs` exist and the scratch space for those copied in (plus
    /// `extra_staged` bytes) and what the step writes; returns each input's `(URI, bytes)`.
    fn preflight(
        &self,
        inputs: &[JobInput],
        extra_staged: u64,
        target: &JobTarget<'_>,
        staging: &Utf8Path,
    ) -> Result<Vec<(String, u64)>, Error> {
        let stores = &target.context.engine.stores;
        let mut staged_bytes = extra_staged;
        let mut sizes = Vec::with_capacity(inputs.len());
        for input in inputs {
            let size = object_size(stores, &input.uri, staging)?;
            sizes.push((input.uri.to_string(), size));
            if input.uri.local_path().is_none() && input.staging != Staging::Streamed {
                staged_bytes = staged_bytes.saturating_add(size);
            }
        }
        target
            .context
            .preflight(&self.definition.space_need(staged_bytes, &sizes))?;
        Ok(sizes)
    }

    fn key_for(
        &self,
        staged: &StagedInputs,
        context: &StepContext,
    ) -> Result<Option<String>, Error> {
        Ok(match &self.key {
            KeyPolicy::Own if self.definition.cacheable() => Some(self.key(staged, context)?),
            KeyPolicy::Own | KeyPolicy::None => None,
            KeyPolicy::Given(key) => Some(key.clone()),
        })
    }

    /// The job's cache key: the key plan's material ([`CacheKeyMaterial::for_plan`]) with the
    /// digest of each keyed input and of the reference files the step reads.
    fn key(&self, staged: &StagedInputs, context: &StepContext) -> Result<String, Error> {
        let mut digests = BTreeMap::new();
        let to_hash: Vec<(&str, &Utf8Path)> = staged
            .inputs
            .iter()
            .filter(|input| input.digest == InputDigest::Hash)
            .filter_map(|input| {
                staged
                    .paths
                    .get(&input.role)
                    .map(|path| (input.role.as_str(), path.as_path()))
            })
            .collect();
        let paths: Vec<&Utf8Path> = to_hash.iter().map(|(_, path)| *path).collect();
        let stop = || context.stopped("hashing the inputs");
        info!(inputs = paths.len(), "hashing the inputs for the cache key");
        for ((role, _), sha256) in to_hash.iter().zip(files_sha256_until(&paths, &stop)?) {
            digests.insert((*role).to_owned(), sha256);
        }
        for input in &staged.inputs {
            if let InputDigest::Known(sha256) = &input.digest {
                digests.insert(input.role.clone(), sha256.clone());
            }
            // A slice is checked block by block as it is fetched, pinned to the object's ETag.
            if let (Some(published), Some(found)) = (&input.published, digests.get(&input.role))
                && !staged.sliced.contains(&input.role)
                && *found != published.sha256
            {
                return Err(Error::Input {
                    message: format!(
                        "{} {} changed after it was published: its SHA-256 is {found}, {} records {}",
                        input.what, input.uri, published.manifest, published.sha256
                    ),
                    remedy: Some(
                        "run the step that publishes it again (and the steps after it)".into(),
                    ),
                });
            }
        }
        self.key_of(digests, staged.reference.as_ref(), staged, context)
    }

    /// The cache key the job's definition has with `digests` (role → SHA-256) for its inputs,
    /// before they exist: a local run keys a sample's whole alignment by its lanes' keys, which
    /// determine the lanes' BAMs, under its merge's plan. The reference must be prepared.
    ///
    /// # Errors
    /// [`Error::Usage`] when the job's reference is not prepared yet; an I/O error hashing the
    /// reference's files.
    pub fn key_from_digests(
        &self,
        digests: BTreeMap<String, String>,
        context: &StepContext,
    ) -> Result<String, Error> {
        let reference = match &self.reference {
            Some((ReferenceInput::Prepared(reference), _)) => Some(reference),
            Some((ReferenceInput::Stage { .. }, _)) => {
                return Err(Error::Usage {
                    message: "a key from digests needs the prepared reference".into(),
                    remedy: None,
                });
            }
            None => None,
        };
        self.key_of(digests, reference, &StagedInputs::default(), context)
    }

    /// The key material of the key plan with `digests` and those of the reference files the
    /// step reads.
    fn key_of(
        &self,
        mut digests: BTreeMap<String, String>,
        reference: Option<&PreparedReference>,
        staged: &StagedInputs,
        context: &StepContext,
    ) -> Result<String, Error> {
        let stop = || context.stopped("hashing the reference");
        if let (Some((_, use_)), Some(reference)) = (&self.reference, reference) {
            match use_ {
                ReferenceUse::Fai => {
                    digests.insert(
                        "reference_fai".to_owned(),
                        file_sha256_until(&reference.fai, &stop)?,
                    );
                }
                ReferenceUse::Fasta | ReferenceUse::FastaAndBwaIndex => {
                    digests.insert(
                        REFERENCE.to_owned(),
                        reference_sha256_until(reference, &stop)?,
                    );
                }
            }
            if *use_ == ReferenceUse::FastaAndBwaIndex {
                let aligner = context.engine.toolset.aligner();
                for (extension, sha256) in bwa_index_sha256_until(reference, aligner, &stop)? {
                    digests.insert(format!("bwa_index{extension}"), sha256);
                }
            }
        }
        self.definition.check_digests(&digests, staged)?;
        let plan = self
            .definition
            .plan(&PlanContext::for_key(&context.engine.toolset));
        Ok(CacheKeyMaterial::for_plan(
            &plan,
            self.definition.shard().and_then(|s| s.contig),
            &context.engine.versions,
            digests,
        )
        .key())
    }
}

/// What the lifecycle learnt on the way, kept for the record whatever happens next.
#[derive(Default)]
struct Facts {
    reference: Option<PreparedReference>,
    reference_reports: Vec<StageReport>,
    rerun_reason: Option<RerunReason>,
    bytes_staged_in: u64,
    bam_slices: Vec<BamSliceRecord>,
    inputs: BTreeMap<String, String>,
}

/// Stages the BAM `input` (an object) for `regions` only, into its place under `staging`
/// ([`biojob_formats::stage_bam_regions`]): the BAM and its index beside it.
///
/// # Errors
/// [`Error::Input`] when the object does not exist (with the input's remedy); the slice's
/// errors ([`Error::Format`]: a damaged block is input invalid, a failed transfer input
/// staging).
fn stage_bam_slice(
    stores: &Stores,
    input: &JobInput,
    regions: &[Region],
    staging: &Utf8Path,
) -> Result<(Utf8PathBuf, BamSliceRecord), Error> {
    crate::check_input(stores, &input.uri, &input.what, &input.remedy)?;
    let destination = input.uri.scratch_path(staging)?;
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
    }
    let store = stores.for_uri(&input.uri)?;
    let staged = biojob_formats::stage_bam_regions(store, &input.uri, regions, &destination)?;
    Ok((
        destination,
        BamSliceRecord::new(&input.uri, regions, &staged),
    ))
}

enum Done {
    Ran {
        key: Option<String>,
        executed: Executed,
        records: Vec<OutputRecord>,
        outputs: Vec<JobOutput>,
    },
    Reused {
        key: String,
        outputs: Vec<(OutputRecord, JobOutput)>,
        /// The records the earlier task counted.
        counted: RecordCounts,
    },
}

/// The size of the object at `uri` in bytes, 0 when it does not exist (staging then reports
/// it missing). A key that could not be staged into scratch (`..`, an empty segment) is
/// refused first, before any request.
///
/// # Errors
/// A storage error when the store cannot be asked, or the key is refused.
pub fn object_size(stores: &Stores, uri: &ObjectUri, staging: &Utf8Path) -> Result<u64, Error> {
    if uri.local_path().is_none() {
        uri.scratch_path(staging)?;
    }
    Ok(stores.for_uri(uri)?.head(uri)?.map_or(0, |meta| meta.size))
}

/// What the step manifests `manifests` (step jobs', under a run prefix) record of the output
/// named `name`, from the finished task that started last among those that published it (the
/// call job's BAM comes from an align job or, aligned in chunks, a merge job); `None` when no
/// manifest, finished task or output is there (a step run elsewhere, or by hand), or none can
/// be read (logged).
pub fn published_output(stores: &Stores, manifests: &[ObjectUri], name: &str) -> Option<Published> {
    manifests
        .iter()
        .filter_map(|manifest| {
            let task = crate::cache::earlier_step_task(stores, manifest)?;
            let output = task.outputs.iter().find(|output| output.name == name)?;
            Some((
                task.started_unix_seconds,
                Published {
                    manifest: manifest.clone(),
                    sha256: output.sha256.clone(),
                    bytes: output.bytes,
                    bam_records: task.records.bam.map(|counts| counts.records),
                    read_pairs: task.records.read_pairs,
                },
            ))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, published)| published)
}

/// `<uri><extension>`: a sidecar beside an object (`ref.fa` → `ref.fa.fai`).
pub fn sibling(uri: &ObjectUri, extension: &str) -> ObjectUri {
    match uri {
        ObjectUri::S3 { bucket, key } => ObjectUri::S3 {
            bucket: bucket.clone(),
            key: format!("{key}{extension}"),
        },
        ObjectUri::Local(path) => ObjectUri::Local(Utf8PathBuf::from(format!("{path}{extension}"))),
    }
}

/// Stages the reference at `uri` for a step that reads `use_` of it: the FASTA and, from S3,
/// the sidecars `use_` needs that exist beside it (after it, so they are not older); then
/// builds what is still missing (the `.fai`; the bwa index for align). A step that reads only
/// the `.fai` stages just the `.fai` when one exists beside the FASTA.
fn stage_reference(
    stores: &Stores,
    uri: &ObjectUri,
    use_: ReferenceUse,
    cache_dir: &Utf8Path,
    staging: &Utf8Path,
    context: &StepContext,
) -> Result<(PreparedReference, Vec<StageReport>, u64), Error> {
    let mut bytes = 0u64;
    let mut stage = |uri: &ObjectUri, what: &str, remedy: &str| -> Result<Utf8PathBuf, Error> {
        let path = stage_input(stores, uri, staging, what, remedy)?;
        if uri.local_path().is_none() {
            bytes = bytes.saturating_add(crate::file_bytes(&path));
        }
        Ok(path)
    };
    let remedy =
        "check REFERENCE_NAME and REFERENCE_PREFIX (or SOURCE_DATA_PREFIX), or give REFERENCE";
    let compressed = uri.to_string().ends_with(".gz");
    if use_ == ReferenceUse::Fai && !compressed {
        let fai = sibling(uri, ".fai");
        if stores.for_uri(&fai)?.head(&fai)?.is_some() {
            let path = stage(&fai, "reference index", "check the reference's .fai")?;
            let contigs = biojob_formats::read_fai(&path)?;
            let fasta = Utf8PathBuf::from(path.as_str().trim_end_matches(".fai"));
            return Ok((
                PreparedReference {
                    fasta,
                    fai: path,
                    bwa_prefix: None,
                    contigs,
                    built: Vec::new(),
                    digests: BTreeMap::new(),
                },
                Vec::new(),
                bytes,
            ));
        }
    }
    let local = stage(uri, "reference", remedy)?;
    let mut sidecars = Vec::new();
    if use_ != ReferenceUse::Fai {
        sidecars.push(".fai");
    }
    if use_ == ReferenceUse::FastaAndBwaIndex {
        sidecars.extend(context.toolset().aligner().index_suffixes());
        sidecars.push(biojob_formats::IndexProvenance::SUFFIX);
    }
    let mut staged_ann = None;
    let mut staged_index = false;
    if uri.local_path().is_none() && !compressed {
        for extension in sidecars {
            let sidecar = sibling(uri, extension);
            if stores.for_uri(&sidecar)?.head(&sidecar)?.is_some() {
                stage(&sidecar, "reference index", remedy)?;
                staged_index |= extension != biojob_formats::IndexProvenance::SUFFIX;
                if extension == ".ann" {
                    staged_ann = Some(sidecar);
                }
            }
        }
    }
    let bwa_index = use_ == ReferenceUse::FastaAndBwaIndex;
    // An index staged from S3 that does not belong to the FASTA beside it is refused, not
    // rebuilt in scratch: the stale objects would stay in the bucket for the next job.
    let options = ReferenceOptions {
        cache_dir: cache_dir.to_owned(),
        bwa_index,
        stale_index: if staged_index {
            crate::StaleIndex::Refuse
        } else {
            crate::StaleIndex::Rebuild
        },
    };
    let mut reports = Vec::new();
    if let Some(ann) = staged_ann.filter(|_| bwa_index) {
        // Named by its URIs when its contigs already differ.
        let fai_only = ReferenceOptions {
            bwa_index: false,
            ..options.clone()
        };
        let (reference, mut ran) = prepare_reference(&local, &fai_only, context)?;
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
    let (reference, mut ran) = prepare_reference(&local, &options, context)?;
    reports.append(&mut ran);
    Ok((reference, reports, bytes))
}

/// The reports carried by a failed step's error, so a failed task's record still lists what
/// ran.
pub fn reports_of(error: &Error) -> Vec<StageReport> {
    match error.root() {
        Error::Process(process) => process
            .report()
            .map(|report| report.stages.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Whether `error` is the stop of a task cancelled because a sibling task failed first.
pub fn cancelled_by_sibling(error: &Error) -> bool {
    matches!(
        error.root(),
        Error::Process(biojob_process::ProcessError::Cancelled {
            reason: biojob_process::CancelReason::Sibling,
            ..
        })
    )
}
