//! `biojob run`: the whole workflow for one sample, from the execution input JSON.

use anyhow::Context as _;
use biojob_pipeline::{
    LogObserver, RunInput, RunObserver, RunOptions, SampleSheet, TaskRecord, TaskStatus, env,
    new_run_id, render_cohort_plan, render_run_plan, run_cohort, run_workflow, sample_read_groups,
};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use biojob_tools::Aligner;
use camino::Utf8PathBuf;
use clap::Args;
use indicatif::MultiProgress;

use crate::args::{MarkDuplicatesArgs, RuntimeArgs, ScaleArgs, parse_run_id};
use crate::engine::{cache_dir, engine_for, resources, toolset_by_name, validate_fastq};
use crate::environment;
use crate::failure::Failure;
use crate::progress::ProgressObserver;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The execution input JSON: {"params": {"environment": {...}, "chromosomes": [...]}}.
    #[arg(long)]
    pub input: Utf8PathBuf,
    /// A cohort's sample sheet (CSV: sample,lane,fastq_1,fastq_2[,library,platform_unit]; a
    /// path, file:// or s3:// URI), instead of params.samplesheet (docs/cohorts.md).
    #[arg(long, env = env::SAMPLESHEET)]
    pub samplesheet: Option<String>,
    #[command(flatten)]
    pub duplicates: MarkDuplicatesArgs,
    /// Run id, the last part of the output location [default: a timestamp].
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Print the plan (steps, shards, command lines) and exit without running anything: only
    /// the input JSON is read (with a sample sheet, the sheet too, and the first read of each
    /// lane it gives no platform_unit); no tool or reference is touched.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub scale: ScaleArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// What a resumed run reused, what it ran and what failed: `reused: align, call chr20`,
/// `ran: prepare-reference, qc` (`none` when empty), then `failed: gather` when a task
/// failed; tasks in manifest order, skipped ones left out.
pub fn resume_summary(tasks: &[TaskRecord]) -> String {
    let names = |status: TaskStatus| {
        let names: Vec<String> = tasks
            .iter()
            .filter(|task| task.status == status)
            .map(TaskRecord::label)
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let mut summary = format!(
        "reused: {}\nran: {}\n",
        names(TaskStatus::Cached),
        names(TaskStatus::Succeeded)
    );
    if tasks.iter().any(|task| task.status == TaskStatus::Failed) {
        summary.push_str(&format!("failed: {}\n", names(TaskStatus::Failed)));
    }
    summary
}

/// Whether `biojob run` resumes: `--no-resume` overrides everything; then `--resume`; then
/// the `BIOJOB_RESUME` environment variable when set and not empty; then `BIOJOB_RESUME` in
/// the input's `params.environment`; else not.
fn resumes(runtime: &RuntimeArgs, input: Option<bool>) -> bool {
    if runtime.no_resume {
        return false;
    }
    if runtime.resume || environment::var(env::BIOJOB_RESUME).is_some() {
        return runtime.resume;
    }
    input.unwrap_or(false)
}

/// The line `--resume` prints (stderr, and a warning in the log) when the run's output
/// location has no earlier manifest: `no earlier run found at <output prefix>/<sample>/<run
/// id>: running every step`. Nothing is printed when the manifest exists or the store cannot
/// be asked (the run then warns when it reads the manifest).
fn warn_without_earlier_run(stores: &Stores, output_dir: &biojob_storage::ObjectUri) {
    let uri = output_dir.join("manifest.json");
    let found = stores
        .for_uri(&uri)
        .and_then(|store| store.head(&uri))
        .map(|meta| meta.is_some());
    if let Ok(false) = found {
        let message = format!("no earlier run found at {output_dir}: running every step");
        tracing::warn!(%output_dir, "{message}");
        eprintln!("{message}");
    }
}

/// The largest execution input Step Functions takes: 256 KiB (the "Maximum input or output size
/// for a task, state, or execution" quota). A larger `--input` is not one (a FASTQ given by
/// mistake), and is refused before it is read into memory.
pub const MAX_INPUT_BYTES: u64 = 256 * 1024;

/// The text of the execution input JSON at `path`, a regular file of at most
/// [`MAX_INPUT_BYTES`]: a FIFO would block the open (past SIGTERM) and `/dev/zero` or a large
/// file would be read until memory runs out, so none is read
/// ([`biojob_core::open_regular_file`]).
fn read_input(path: &camino::Utf8Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let (file, size) =
        biojob_core::open_regular_file(path.as_std_path()).map_err(|error| match error {
            biojob_core::OpenInputError::Io(error) => anyhow::Error::new(error),
            biojob_core::OpenInputError::NotAFile(kind) => {
                anyhow::anyhow!("it is {kind}, not a regular file")
            }
        })?;
    let too_large = |size: u64| {
        anyhow::anyhow!(
            "it holds {size} bytes, more than an execution input can ({MAX_INPUT_BYTES}: 256 KiB, \
             the Step Functions limit)"
        )
    };
    if size > MAX_INPUT_BYTES {
        return Err(too_large(size));
    }
    let mut text = String::with_capacity(usize::try_from(size).unwrap_or(0));
    // A file that grew after it was measured is still read no further than the limit.
    let read = file.take(MAX_INPUT_BYTES + 1).read_to_string(&mut text)?;
    if read as u64 > MAX_INPUT_BYTES {
        return Err(too_large(read as u64));
    }
    Ok(text)
}

/// Runs the workflow (or prints its plan with `--dry-run`); prints the VCF's, the QC report's
/// and the manifest's locations.
pub fn run(
    args: RunArgs,
    cancel: &CancelToken,
    progress: Option<&MultiProgress>,
    stores: &Stores,
) -> Result<(), Failure> {
    let text = read_input(&args.input)
        .with_context(|| format!("reading the workflow input {}", args.input))
        .map_err(|error| {
            Failure::Usage(
                error,
                Some("give the path of the execution input JSON, a regular file".into()),
            )
        })?;
    let input = match RunInput::from_json(
        &text,
        // An empty SAMPLESHEET is no sheet, as for the step jobs (the state machine passes
        // empty values for keys the input leaves out).
        args.samplesheet
            .as_deref()
            .filter(|text| !text.trim().is_empty()),
        args.duplicates.mark_duplicates,
    )? {
        RunInput::Sample(input) => input,
        RunInput::Cohort(cohort) => {
            // The aligner: --aligner (BIOJOB_ALIGNER), else the input's, else bwa.
            let aligner = args
                .runtime
                .aligner()
                .or(cohort.aligner)
                .unwrap_or_default();
            if args.dry_run {
                // The sheet and each lane's read group, as the run settles them before any
                // tool runs.
                let sheet = SampleSheet::read(stores, &cohort.samplesheet)?;
                let read_groups = sheet
                    .samples
                    .iter()
                    .map(|sample| sample_read_groups(stores, &sheet.uri, sample, &cohort.platform))
                    .collect::<Result<Vec<_>, _>>()?;
                let plan = render_cohort_plan(
                    &cohort,
                    &sheet,
                    &read_groups,
                    &toolset_by_name(aligner),
                    resources(&args.runtime),
                    args.run_id.as_deref().unwrap_or("<run id>"),
                    &args.scale.options(&cohort.scatter)?,
                    validate_fastq()?,
                )?;
                #[allow(clippy::print_stdout, reason = "the plan is the command's output")]
                {
                    print!("{plan}");
                }
                return Ok(());
            }
            let resume = resumes(&args.runtime, cohort.resume);
            let run_id = prepare_run_id(args.run_id, resume)?;
            let output_dir = cohort.output_dir(&run_id);
            let outcome = run_outcome(
                &args.runtime,
                aligner,
                args.scale.options(&cohort.scatter)?,
                run_id,
                resume,
                &output_dir,
                cancel,
                progress,
                stores,
                |options, engine, observer| run_cohort(&cohort, options, engine, observer),
            )?;
            return report_outcome(outcome, resume);
        }
    };
    // The aligner: --aligner (BIOJOB_ALIGNER), else the input's, else bwa.
    let aligner = args.runtime.aligner().or(input.aligner).unwrap_or_default();
    if args.dry_run {
        let plan = render_run_plan(
            &input,
            &toolset_by_name(aligner),
            resources(&args.runtime),
            args.run_id.as_deref().unwrap_or("<run id>"),
            &args.scale.options(&input.scatter)?,
            validate_fastq()?,
        );
        #[allow(clippy::print_stdout, reason = "the plan is the command's output")]
        {
            print!("{plan}");
        }
        return Ok(());
    }
    let resume = resumes(&args.runtime, input.resume);
    let run_id = prepare_run_id(args.run_id, resume)?;
    let output_dir = input.output_dir(&run_id);
    let outcome = run_outcome(
        &args.runtime,
        aligner,
        args.scale.options(&input.scatter)?,
        run_id,
        resume,
        &output_dir,
        cancel,
        progress,
        stores,
        |options, engine, observer| run_workflow(&input, options, engine, observer),
    )?;
    report_outcome(outcome, resume)
}

/// The run id: the one given, else a new one; a resume needs the one given.
fn prepare_run_id(run_id: Option<String>, resume: bool) -> Result<String, Failure> {
    if resume && run_id.is_none() {
        return Err(Failure::Usage(
            anyhow::anyhow!(
                "--resume (or BIOJOB_RESUME) needs the run to resume: each run writes to <output prefix>/<sample>/<run id>/"
            ),
            Some("give the earlier run's id with --run-id, or --no-resume".into()),
        ));
    }
    Ok(run_id.unwrap_or_else(new_run_id))
}

/// Builds the engine and the run's options and runs `execute` (one sample's workflow or a
/// cohort's) with the progress observer.
#[allow(
    clippy::too_many_arguments,
    reason = "the run's parts, each from its own flag"
)]
fn run_outcome(
    runtime: &RuntimeArgs,
    aligner: Aligner,
    scale: biojob_pipeline::ScaleOptions,
    run_id: String,
    resume: bool,
    output_dir: &biojob_storage::ObjectUri,
    cancel: &CancelToken,
    progress: Option<&MultiProgress>,
    stores: &Stores,
    execute: impl FnOnce(
        &RunOptions,
        &biojob_pipeline::Engine,
        &dyn RunObserver,
    ) -> biojob_pipeline::RunOutcome,
) -> Result<biojob_pipeline::RunOutcome, Failure> {
    let engine = engine_for(runtime, aligner, cancel, stores)?;
    let (job_id, attempt) = environment::job_identity(&run_id)?;
    let options = RunOptions {
        run_id,
        job_id,
        attempt,
        cache_dir: cache_dir(runtime),
        resume,
        scale,
    };
    if resume {
        warn_without_earlier_run(stores, output_dir);
    }
    let observer: Box<dyn RunObserver> = match progress {
        Some(multi) => Box::new(ProgressObserver::new(multi.clone())),
        None => Box::new(LogObserver),
    };
    Ok(execute(&options, &engine, observer.as_ref()))
}

/// Prints the VCF's, the QC report's and the manifest's locations (or where the logs are) and turns the
/// outcome into the exit.
fn report_outcome(outcome: biojob_pipeline::RunOutcome, resume: bool) -> Result<(), Failure> {
    if resume {
        eprint!("{}", resume_summary(&outcome.manifest.tasks));
    }
    if let Some(kept) = &outcome.kept_scratch {
        eprintln!("scratch kept: {kept}");
    }
    match (outcome.error, outcome.vcf) {
        (None, Some(vcf)) => {
            #[allow(
                clippy::print_stdout,
                reason = "the run's result, for the user and scripts"
            )]
            {
                println!("VCF: {vcf}");
                println!("report: {}", outcome.output_dir.join("report.html"));
                println!("manifest: {}", outcome.output_dir.join("manifest.json"));
            }
            Ok(())
        }
        (Some(error), _) => {
            if outcome.manifest_published {
                eprintln!("manifest: {}", outcome.output_dir.join("manifest.json"));
                // A run that failed before any tool ran has no logs (in S3, not looked up).
                let logs = outcome.output_dir.join("logs");
                if logs.local_path().is_none_or(|path| path.is_dir()) {
                    eprintln!("logs: {logs}");
                }
            }
            Err(error.into())
        }
        (None, None) => Err(Failure::Usage(
            anyhow::anyhow!("the run ended without a VCF or an error"),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use biojob_core::StepId;
    use biojob_pipeline::{TaskRecord, TaskShard, TaskStatus};

    use super::resume_summary;

    #[test]
    fn the_resume_summary_names_failed_tasks_apart_from_those_that_ran() {
        let task = |step: StepId, contig: Option<&str>, status: TaskStatus| TaskRecord {
            status,
            ..TaskRecord::new(
                step,
                contig.map(|name| TaskShard::region(0, name)),
                SystemTime::UNIX_EPOCH,
                Duration::ZERO,
                &[],
            )
        };
        let tasks = [
            task(StepId::PrepareReference, None, TaskStatus::Succeeded),
            task(StepId::Align, None, TaskStatus::Cached),
            task(StepId::Call, Some("chr20"), TaskStatus::Succeeded),
            task(StepId::Call, Some("chr22"), TaskStatus::Cached),
            task(StepId::Gather, None, TaskStatus::Failed),
            task(StepId::Qc, None, TaskStatus::Skipped),
        ];
        assert_eq!(
            resume_summary(&tasks),
            "reused: align, call chr22\nran: prepare-reference, call chr20\nfailed: gather\n"
        );
        assert_eq!(
            resume_summary(&tasks[..2]),
            "reused: align\nran: prepare-reference\n"
        );
    }
}
