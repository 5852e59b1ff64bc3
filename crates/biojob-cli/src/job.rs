//! What every step subcommand does as an AWS Batch job: its location from the job
//! environment (flags laid over it), then one [`biojob_pipeline::run_batch_job`], its metrics
//! line and its exit.

use biojob_core::{SampleId, StepId};
use biojob_pipeline::{
    BatchJob, COHORT_STEM, JobEnvironment, ReferenceInput, ReferenceUse, SampleSheet, SheetSample,
    StepJob, env, new_run_id, run_batch_job, run_prefix, sample_dir,
};
use biojob_process::CancelToken;
use biojob_storage::{ObjectUri, Stores};

use crate::args::{RuntimeArgs, StepArgs};
use crate::engine::{cache_dir, engine};
use crate::environment;
use crate::failure::{Failure, usage};
use crate::metrics::{StepMetrics, emit_step};

/// What a step job was told: its environment (flags laid over the process environment), its
/// sample and its run prefix.
pub struct Job {
    /// The job environment.
    pub environment: JobEnvironment,
    /// The sample.
    pub sample: SampleId,
    /// Where its outputs go.
    pub run_prefix: ObjectUri,
}

impl Job {
    /// Resolves the job from the step's flags (each backed by its environment variable) and
    /// `extra` `(key, value)` pairs. An empty value counts as unset.
    ///
    /// # Errors
    /// A usage failure (exit 2) when one of `JOB_WORKFLOW_NAME` and `JOB_WORKFLOW_EXECUTION_ID`
    /// is given without the other, or the environment is invalid.
    pub fn new(step: &StepArgs, extra: &[(&str, Option<&String>)]) -> Result<Job, Failure> {
        let mut pairs: Vec<(&str, Option<&String>)> = vec![
            (env::SAMPLE_ID, Some(&step.sample)),
            (env::REFERENCE, step.reference.as_ref()),
            (env::REFERENCE_NAME, step.reference_name.as_ref()),
            (env::REFERENCE_PREFIX, step.reference_prefix.as_ref()),
            (env::SOURCE_DATA_PREFIX, step.source_data_prefix.as_ref()),
            (env::JOB_OUTPUT_PREFIX, Some(&step.output_prefix)),
        ];
        pairs.extend_from_slice(extra);
        let environment = JobEnvironment::from_pairs(
            pairs
                .into_iter()
                .filter_map(|(key, value)| value.map(|v| (key, v.clone()))),
        );
        let sample = environment.sample()?;
        let run_prefix = run_prefix(
            environment.output_prefix()?,
            step.workflow_name.as_deref(),
            step.execution_id.as_deref(),
        )?;
        Ok(Job {
            environment,
            sample,
            run_prefix,
        })
    }

    /// This job as one of `sheet`'s samples (a lane's align, merge, sample-vcf, qc): the job's
    /// sample must be one of the sheet's, and its files go to the sample's directory,
    /// `<run prefix>/samples/<sample>/`. The FASTQ and read-group keys are refused: the sheet
    /// gives them. Returns the sample's rows.
    ///
    /// # Errors
    /// An input failure (exit 11) when the sheet has no such sample; a usage failure for a
    /// FASTQ or read-group key beside the sheet.
    pub fn in_cohort<'s>(&mut self, sheet: &'s SampleSheet) -> Result<&'s SheetSample, Failure> {
        self.environment.refuse_lane_keys()?;
        let sample = sheet.sample(&self.sample)?;
        self.run_prefix = sample_dir(&self.run_prefix, &self.sample);
        Ok(sample)
    }

    /// Checks that this is a joint job of a cohort (call, gather, report): its files are the
    /// cohort's, named after `cohort` (`SAMPLE_ID` `cohort`), under the run prefix.
    ///
    /// # Errors
    /// A usage failure for another sample.
    pub fn joint(&self) -> Result<(), Failure> {
        if self.sample.as_str() == COHORT_STEM {
            return Ok(());
        }
        Err(usage(
            format!(
                "SAMPLE_ID is {} in a cohort's joint step: its files are the cohort's, named {COHORT_STEM}.*",
                self.sample
            ),
            &format!(
                "set SAMPLE_ID to {COHORT_STEM} (the state machine does) for call, gather and report with SAMPLESHEET"
            ),
        ))
    }

    /// The job's reference, staged by the job: `REFERENCE`, else `REFERENCE_NAME` under the
    /// reference prefix, and the parts of it `use_` needs.
    ///
    /// # Errors
    /// A usage failure when neither names a reference.
    pub fn reference(
        &self,
        runtime: &RuntimeArgs,
        use_: ReferenceUse,
    ) -> Result<Option<(ReferenceInput, ReferenceUse)>, Failure> {
        Ok(Some((
            ReferenceInput::Stage {
                candidates: self.environment.reference_candidates()?,
                cache_dir: cache_dir(runtime),
            },
            use_,
        )))
    }

    /// The run prefix when it is in an object store: a step that can uploads its outputs
    /// there as it writes them (the split's chunks, the merged BAM); `None` for a local one,
    /// which gets files.
    pub fn upload_prefix(&self) -> Option<biojob_storage::ObjectUri> {
        self.run_prefix
            .local_path()
            .is_none()
            .then(|| self.run_prefix.clone())
    }

    /// Runs `job` as this Batch job: builds the engine, runs it in the attempt's scratch
    /// directory (`<root>/<job id>/<attempt>/`; the job id is `AWS_BATCH_JOB_ID`, or a fresh
    /// id starting with the step's name outside AWS Batch), writes the metrics line and says
    /// where scratch was kept.
    ///
    /// # Errors
    /// The job's failure, classified.
    pub fn run(
        &self,
        job: StepJob<'_>,
        runtime: &RuntimeArgs,
        cancel: &CancelToken,
        stores: &Stores,
    ) -> Result<(), Failure> {
        let step: StepId = job.definition.step();
        let engine = engine(runtime, cancel, stores)?;
        let (job_id, attempt) = environment::job_identity(&format!("{step}-{}", new_run_id()))?;
        let outcome = run_batch_job(
            &BatchJob {
                job,
                sample: self.sample.clone(),
                run_prefix: self.run_prefix.clone(),
                job_id,
                attempt,
                resume: runtime.resumes(),
            },
            &engine,
        )?;
        let task = &outcome.manifest.task;
        emit_step(&StepMetrics {
            step: step.as_str(),
            sample: self.sample.as_str(),
            contig: task.contig.as_deref(),
            duration: std::time::Duration::from_secs_f64(task.wall_seconds.max(0.0)),
            exit_code: outcome
                .error
                .as_ref()
                .map_or(0, |error| biojob_core::Classify::exit_class(error).code()),
            bytes_staged_in: Some(task.bytes_staged_in),
            bytes_staged_out: Some(task.outputs.iter().map(|output| output.bytes).sum()),
            scratch_peak_bytes: outcome.manifest.scratch.as_ref().map(|s| s.peak_bytes),
        });
        if let Some(kept) = &outcome.kept_scratch {
            eprintln!("scratch kept: {kept}");
        }
        match outcome.error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

/// Reads and checks the cohort's sample sheet at `text` (docs/cohorts.md: every rule of the
/// sheet; its FASTQs are checked by the jobs that read them).
///
/// # Errors
/// A usage failure when `text` is not a path or URI; the sheet's input failure (exit 11) when
/// it does not exist, breaks a rule, or is an S3 key with `.`, `..` or empty segments.
pub fn read_sheet(text: &str, stores: &Stores) -> Result<SampleSheet, Failure> {
    let uri = ObjectUri::parse(text).map_err(|error| match error {
        unsafe_key @ biojob_storage::StorageError::UnsafeKey { .. } => {
            Failure::Pipeline(unsafe_key.into())
        }
        other => usage(
            format!("the sample sheet {text:?}: {other}"),
            "give SAMPLESHEET as a path, file:// or s3:// URI",
        ),
    })?;
    Ok(SampleSheet::read(stores, &uri)?)
}

/// The contigs of `CHROMOSOMES`: a JSON array string (what
/// `States.JsonToString($.params.chromosomes)` gives) or a comma-separated list.
///
/// # Errors
/// A usage failure when it is not an array of strings or lists no contig.
pub fn parse_contigs(text: &str) -> Result<Vec<String>, Failure> {
    let remedy = "give CHROMOSOMES as a JSON array ([\"chr20\",\"chrM\"]) or comma-separated";
    let trimmed = text.trim();
    let contigs: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|error| {
            crate::failure::usage(
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
        return Err(crate::failure::usage("CHROMOSOMES lists no contig", remedy));
    }
    Ok(contigs)
}

/// Chunk names have four digits: the largest chunk number.
const MAX_CHUNK: usize = 9999;

/// The chunks of a cohort's lane `lane` (its 0-based index among the sample's lanes), from
/// `LANE_CHUNKS` (`text`: a JSON array string, what `States.JsonToString($.chunks)` gives, or
/// comma-separated): consecutive numbers among the sample's chunks, the first at least `lane`
/// (each lane before it is at least one chunk), the last at most 9999 (chunk names have four
/// digits). Unset or empty: `lane..lane + 1`, as when no lane of the sample is split.
///
/// # Errors
/// A usage failure when the text is not a list of numbers or breaks one of those rules.
pub fn lane_chunks(text: Option<&str>, lane: usize) -> Result<std::ops::Range<usize>, Failure> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(lane..lane + 1);
    };
    let remedy = "give LANE_CHUNKS as biojob plan-cohort lists the lane's chunks: a JSON array \
                  ([3,4,5]) or comma-separated";
    let numbers: Vec<usize> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|error| {
            usage(
                format!("LANE_CHUNKS is not a JSON array of chunk numbers: {error}"),
                remedy,
            )
        })?
    } else {
        text.split(',')
            .map(|number| {
                number.trim().parse().map_err(|error| {
                    usage(
                        format!("LANE_CHUNKS {text:?} is not a list of chunk numbers: {number:?}: {error}"),
                        remedy,
                    )
                })
            })
            .collect::<Result<_, _>>()?
    };
    let (Some(&first), Some(&last)) = (numbers.first(), numbers.last()) else {
        return Err(usage("LANE_CHUNKS lists no chunk", remedy));
    };
    if numbers
        .iter()
        .zip(first..)
        .any(|(&number, expected)| number != expected)
    {
        return Err(usage(
            format!(
                "LANE_CHUNKS {text} is not consecutive: a lane's chunks are numbered one after the other"
            ),
            remedy,
        ));
    }
    if first < lane {
        return Err(usage(
            format!(
                "LANE_CHUNKS starts at chunk {first}, and lane {lane} comes after {lane} lanes of \
                 its sample, each at least one chunk"
            ),
            remedy,
        ));
    }
    if last > MAX_CHUNK {
        return Err(usage(
            format!("LANE_CHUNKS goes up to chunk {last}: chunk names have four digits"),
            "split the sample's lanes into at most 10000 chunks",
        ));
    }
    Ok(first..last + 1)
}
