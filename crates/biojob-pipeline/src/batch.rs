//! A step as an AWS Batch job: one [`StepJob`] in the attempt's own scratch directory, its
//! outputs, logs and [`StepManifest`] published under the run prefix (docs/batch-contract.md).

use biojob_core::{Classify, SampleId, StepId};
use biojob_scratch::{Attempt, JobId};
use biojob_storage::ObjectUri;
use camino::Utf8PathBuf;
use tracing::warn;

use crate::cache::earlier_step_task;
use crate::manifest::publish_json;
use crate::{
    CostSummary, Earlier, Engine, Error, JobTarget, LogObserver, MANIFEST_FORMAT_VERSION, StepJob,
    StepManifest, ToolRecord, error_chain, publish_logs,
};

/// The step manifest's name: `{sample}.{step}[.{shard:04}].manifest.json`.
pub fn step_manifest_name(sample: &SampleId, step: StepId, shard: Option<usize>) -> String {
    match shard {
        Some(index) => format!("{sample}.{step}.{index:04}.manifest.json"),
        None => format!("{sample}.{step}.manifest.json"),
    }
}

/// `<output prefix>/<workflow name>/<execution id>/` when both are given (the state
/// machine's run prefix), else the output prefix itself.
///
/// # Errors
/// [`Error::Usage`] when one is given without the other (empty values count as unset).
pub fn run_prefix(
    output_prefix: ObjectUri,
    workflow_name: Option<&str>,
    execution_id: Option<&str>,
) -> Result<ObjectUri, Error> {
    let given = |value: Option<&str>| value.filter(|v| !v.is_empty()).map(str::to_owned);
    match (given(workflow_name), given(execution_id)) {
        (Some(name), Some(execution)) => Ok(output_prefix.join(&name).join(&execution)),
        (None, None) => Ok(output_prefix),
        (name, _) => {
            let (set, unset) = if name.is_some() {
                (
                    crate::env::JOB_WORKFLOW_NAME,
                    crate::env::JOB_WORKFLOW_EXECUTION_ID,
                )
            } else {
                (
                    crate::env::JOB_WORKFLOW_EXECUTION_ID,
                    crate::env::JOB_WORKFLOW_NAME,
                )
            };
            Err(Error::Usage {
                message: format!(
                    "{set} is set but {unset} is not: the run prefix is <output prefix>/<workflow name>/<execution id>/"
                ),
                remedy: Some(
                    "set both JOB_WORKFLOW_NAME and JOB_WORKFLOW_EXECUTION_ID (or --workflow-name and --execution-id), or neither"
                        .into(),
                ),
            })
        }
    }
}

/// A step job as AWS Batch runs it.
pub struct BatchJob<'a> {
    /// The step and its inputs.
    pub job: StepJob<'a>,
    /// The sample: the step manifest's name starts with it.
    pub sample: SampleId,
    /// Where the job's outputs, logs and step manifest go.
    pub run_prefix: ObjectUri,
    /// The job (`AWS_BATCH_JOB_ID`, or a fresh local id) and attempt: the scratch directory.
    pub job_id: JobId,
    /// The attempt.
    pub attempt: Attempt,
    /// Reuse the step when the step manifest under the run prefix records it finished with
    /// the same cache key and its outputs are unchanged.
    pub resume: bool,
}

/// How a Batch job ended.
#[derive(Debug)]
pub struct BatchOutcome {
    /// The step manifest, as published (or as it would have been).
    pub manifest: StepManifest,
    /// Why the job failed, when it did (a manifest that could not be published fails a job
    /// that otherwise succeeded: exit 30).
    pub error: Option<Error>,
    /// The scratch directory, when kept.
    pub kept_scratch: Option<Utf8PathBuf>,
}

/// Runs `batch`: opens the attempt's scratch directory, runs the job's lifecycle
/// ([`StepJob::run`]) publishing every output (intermediate ones too: the next job reads
/// them) under the run prefix, then, whatever happened, publishes the logs (`logs/`), removes
/// the scratch directory (unless kept) and publishes the step manifest. A task that did not
/// finish keeps the earlier manifest's finished task as `earlier_task`.
///
/// # Errors
/// [`Error::Usage`] when a local run prefix cannot be written, before any work; the scratch
/// error when the attempt's directory cannot be opened (nothing is published).
pub fn run_batch_job(batch: &BatchJob<'_>, engine: &Engine) -> Result<BatchOutcome, Error> {
    let label = batch.job.label();
    let step = batch.job.definition.step();
    // A local run prefix that cannot be written is refused before any work, as `biojob run`
    // refuses its output directory.
    crate::scheduler::check_output_dir(&batch.run_prefix)
        .map_err(|error| error.in_task(label.to_string()))?;
    let (scratch, space) = engine
        .scratch
        .open(&batch.job_id, batch.attempt)
        .map_err(|error| error.in_task(label.to_string()))?;
    let work_dir = scratch.dir().to_owned();
    let context = engine
        .context(&work_dir.join("logs"), &space)
        .for_step(&label.to_string());
    let stores = &engine.stores;
    let outcome = batch.job.run(&JobTarget {
        context: &context,
        work_dir: &work_dir,
        prefix: &batch.run_prefix,
        publish_intermediates: true,
        earlier: batch.resume.then_some(Earlier::StepManifest(&batch.sample)),
        observer: &LogObserver,
    });
    // The shard is known once the job has read the reference (a call job named by contig).
    let name = step_manifest_name(&batch.sample, step, outcome.record.shard);
    let manifest_uri = batch.run_prefix.join(&name);
    if let Err(error) = publish_logs(stores, &work_dir.join("logs"), &batch.run_prefix) {
        warn!(error = %error_chain(&error), "could not publish the logs");
    }
    let scratch_usage = space.usage();
    // Free the scratch space before writing the manifest: it may be what ran out.
    let kept_scratch = match scratch.finish(engine.scratch.keep) {
        Ok(kept) => kept,
        Err(error) => {
            warn!(error = %error_chain(&error), "could not remove the scratch directory");
            None
        }
    };
    let earlier_task = (!outcome.record.status.finished())
        .then(|| earlier_step_task(stores, &manifest_uri))
        .flatten();
    let manifest = StepManifest {
        format_version: MANIFEST_FORMAT_VERSION,
        biojob_version: env!("CARGO_PKG_VERSION").to_owned(),
        sample: batch.sample.to_string(),
        resources: engine.resources,
        tools: ToolRecord::list(&engine.toolset, &engine.versions),
        scratch: Some(scratch_usage),
        cost: Some(CostSummary::for_job(
            &outcome.record,
            engine.resources,
            engine.prices,
        )),
        task: outcome.record,
        earlier_task,
    };
    let mut error = outcome.error;
    if let Err(publish_error) = publish_json(stores, &manifest, &batch.run_prefix, &name) {
        warn!(uri = %manifest_uri, error = %error_chain(&publish_error), "could not publish the step manifest");
        if error.is_none() {
            error = Some(publish_error.in_task(format!("publishing {name}")));
        }
    }
    if let Some(error) = &error {
        tracing::debug!(class = ?error.exit_class(), "the job failed");
    }
    Ok(BatchOutcome {
        manifest,
        error,
        kept_scratch,
    })
}

/// The step manifests of `sample`'s lane splits in `dir`, the sample's directory:
/// `<sample>.split.<first chunk, 4 digits>.manifest.json`, in name order.
///
/// # Errors
/// A storage error when the directory cannot be listed.
pub fn lane_split_manifests(
    stores: &biojob_storage::Stores,
    dir: &ObjectUri,
    sample: &SampleId,
) -> Result<Vec<ObjectUri>, Error> {
    let prefix = format!("{}.", crate::chunk_prefix(sample));
    let mut names: Vec<String> = stores
        .for_uri(dir)?
        .list(dir)?
        .into_iter()
        .filter(|name| {
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".manifest.json"))
                .is_some_and(|number| {
                    number.len() == 4 && number.bytes().all(|b| b.is_ascii_digit())
                })
        })
        .collect();
    names.sort();
    Ok(names.iter().map(|name| dir.join(name)).collect())
}

/// Record accounting of a cohort sample's split lanes on AWS Batch (docs/cohorts.md), for a
/// merge of the sample's chunks `0..chunks` under `dir`, the sample's directory. Every lane
/// split there (each `<sample>.split.<first chunk>` step manifest) must have finished, its
/// chunks (the files it wrote) must be among the merged ones, each with a finished align job
/// of that lane, and the read pairs it wrote must be those its chunks aligned; a lane with
/// several of the merged chunks (their align jobs name it) must have a split that did; and
/// every lane of `sheet_lanes` must have a chunk among them (when every chunk's align job is
/// known).
///
/// # Errors
/// [`Error::Usage`] when `chunks` leaves out some of a split lane's chunks, or every chunk of
/// a lane; [`Error::Input`]
/// when a split did not finish, a chunk of a split lane has no finished align job, or a lane
/// aligned in several chunks has no finished split; [`Error::Verification`] (output invalid)
/// naming the lane, its chunks and both counts when they differ; a storage error when the
/// directory cannot be listed or a manifest read.
pub fn check_split_lanes(
    stores: &biojob_storage::Stores,
    dir: &ObjectUri,
    sample: &SampleId,
    sheet_lanes: &[&str],
    chunks: usize,
) -> Result<(), Error> {
    let align_manifest =
        |chunk: usize| dir.join(&step_manifest_name(sample, StepId::Align, Some(chunk)));
    let rerun = "run the lane's split job and its chunks' align jobs again";
    // Each merged chunk's finished align task, read once.
    let aligns: Vec<Option<crate::TaskRecord>> = (0..chunks)
        .map(|chunk| finished_task(stores, &align_manifest(chunk)))
        .collect();
    let mut split_lanes = Vec::new();
    for uri in lane_split_manifests(stores, dir, sample)? {
        let task = crate::cache::read_json::<StepManifest>(stores, &uri)?
            .map(|manifest| manifest.task)
            .filter(|task| task.status.finished())
            .ok_or_else(|| Error::Input {
                message: format!(
                    "{uri}: a lane split of sample {sample} did not finish, so its chunks cannot be accounted for"
                ),
                remedy: Some(rerun.to_owned()),
            })?;
        let lane = task.lane.clone().unwrap_or_default();
        let written = split_chunks(&task, sample);
        let (Some(&first), Some(&last)) = (written.first(), written.last()) else {
            continue;
        };
        if last >= chunks {
            return Err(Error::Usage {
                message: format!(
                    "CHUNKS is {chunks}, and lane {lane} of sample {sample} was split into chunks {first} to {last} ({uri})"
                ),
                remedy: Some(
                    "make params.samples again with biojob plan-cohort from the sheet the execution reads"
                        .to_owned(),
                ),
            });
        }
        let mut aligned = Some(0u64);
        for chunk in written.iter().copied() {
            let align = aligns
                .get(chunk)
                .and_then(Option::as_ref)
                .filter(|task| task.lane.as_deref() == Some(lane.as_str()))
                .ok_or_else(|| Error::Input {
                    message: format!(
                        "{}: chunk {chunk} of lane {lane} of sample {sample} has no finished align job of that lane",
                        align_manifest(chunk)
                    ),
                    remedy: Some("run the align job of every chunk first".to_owned()),
                })?;
            aligned = aligned
                .zip(align.records.read_pairs)
                .map(|(sum, pairs)| sum + pairs);
        }
        if let (Some(written_pairs), Some(aligned)) = (task.records.read_pairs, aligned)
            && written_pairs != aligned
        {
            return Err(Error::Verification {
                path: Utf8PathBuf::from(uri.to_string()),
                detail: format!(
                    "lane {lane} of sample {sample}: its split wrote {written_pairs} read pairs, and its chunks {first} to {last} aligned {aligned}"
                ),
            });
        }
        split_lanes.push(lane);
    }
    // A lane aligned in several chunks was split, and its split is accounted for above.
    let mut lanes: Vec<(String, Vec<usize>)> = Vec::new();
    let mut every_chunk_known = true;
    for (chunk, align) in aligns.iter().enumerate() {
        let Some(lane) = align.as_ref().and_then(|task| task.lane.clone()) else {
            every_chunk_known = false;
            continue;
        };
        match lanes.iter_mut().find(|(name, _)| *name == lane) {
            Some((_, found)) => found.push(chunk),
            None => lanes.push((lane, vec![chunk])),
        }
    }
    // Every lane of the sheet is among the merged chunks, when their align jobs all say
    // which lane they aligned.
    if every_chunk_known
        && let Some(missing) = sheet_lanes
            .iter()
            .find(|lane| !lanes.iter().any(|(name, _)| name == *lane))
    {
        return Err(Error::Usage {
            message: format!(
                "CHUNKS is {chunks}, and none of chunks 0 to {} is of lane {missing} of sample {sample}",
                chunks.saturating_sub(1)
            ),
            remedy: Some(
                "make params.samples again with biojob plan-cohort from the sheet the execution reads"
                    .to_owned(),
            ),
        });
    }
    for (lane, chunks) in lanes {
        if chunks.len() > 1 && !split_lanes.contains(&lane) {
            return Err(Error::Input {
                message: format!(
                    "lane {lane} of sample {sample} was aligned in chunks {chunks:?}, and no finished split of the lane is in {dir}"
                ),
                remedy: Some(rerun.to_owned()),
            });
        }
    }
    Ok(())
}

/// The numbers of the chunks a split task wrote, from its outputs' names
/// (`<sample>.split.NNNN_R1.fastq.gz`).
fn split_chunks(task: &crate::TaskRecord, sample: &SampleId) -> std::collections::BTreeSet<usize> {
    let prefix = format!("{}.", crate::chunk_prefix(sample));
    task.outputs
        .iter()
        .filter_map(|output| {
            output
                .name
                .strip_prefix(&prefix)?
                .strip_suffix("_R1.fastq.gz")?
                .parse()
                .ok()
        })
        .collect()
}

/// Record accounting of a single sample's split on AWS Batch, for a merge of the chunks whose
/// align jobs recorded `aligned_pairs` (read pairs by chunk, `None` when unknown) under
/// `dir`, the run prefix: when the split's step manifest (`<sample>.split.manifest.json`)
/// records a finished split, every chunk it wrote must be among the merged ones, and the read
/// pairs it wrote must be those its chunks aligned (when each is recorded). Without a finished
/// split there is nothing to account for (the chunks were made otherwise).
///
/// # Errors
/// [`Error::Usage`] when `chunks` leaves out some of the chunks the split wrote (their reads
/// would be missing from the merged BAM); [`Error::Verification`] (output invalid) naming both
/// counts when the read pairs differ.
pub fn check_split_sample(
    stores: &biojob_storage::Stores,
    dir: &ObjectUri,
    sample: &SampleId,
    aligned_pairs: &[Option<u64>],
) -> Result<(), Error> {
    let chunks = aligned_pairs.len();
    let uri = dir.join(&step_manifest_name(sample, StepId::Split, None));
    let Some(task) = finished_task(stores, &uri) else {
        return Ok(());
    };
    let written = split_chunks(&task, sample);
    let Some(&last) = written.last() else {
        return Ok(());
    };
    if last >= chunks {
        return Err(Error::Usage {
            message: format!(
                "CHUNKS is {chunks}, and the split of sample {sample} wrote {} chunks ({uri}): \
                 the reads of the others would be missing from the merged BAM",
                last + 1
            ),
            remedy: Some(format!(
                "set CHUNKS to {} (the execution input's params.chunks)",
                last + 1
            )),
        });
    }
    let aligned: Option<u64> = written.iter().map(|&chunk| aligned_pairs[chunk]).sum();
    if let (Some(written_pairs), Some(aligned)) = (task.records.read_pairs, aligned)
        && written_pairs != aligned
    {
        return Err(Error::Verification {
            path: Utf8PathBuf::from(uri.to_string()),
            detail: format!(
                "sample {sample}: its split wrote {written_pairs} read pairs, and its chunks 0 to \
                 {last} aligned {aligned}"
            ),
        });
    }
    Ok(())
}

/// The task the step manifest at `uri` records, when it finished (succeeded, or reused);
/// `None` when there is no manifest, it cannot be read (logged) or its task did not finish.
fn finished_task(stores: &biojob_storage::Stores, uri: &ObjectUri) -> Option<crate::TaskRecord> {
    match crate::cache::read_json::<StepManifest>(stores, uri) {
        Ok(manifest) => manifest
            .map(|manifest| manifest.task)
            .filter(|task| task.status.finished()),
        Err(error) => {
            warn!(%uri, error = %error_chain(&error), "could not read the step manifest; its records are not accounted");
            None
        }
    }
}
