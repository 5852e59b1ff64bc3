//! `biojob run`: the whole workflow for one sample.

use std::time::Duration;

use anyhow::Context as _;
use biojob_pipeline::{
    Engine, LogObserver, Resources, RunObserver, RunOptions, ScratchSettings, TaskRecord,
    TaskStatus, WorkflowInput, new_run_id, probe_tools, run_workflow,
};
use biojob_process::CancelToken;
use biojob_scratch::{Attempt, JobId};
use biojob_storage::Stores;
use biojob_tools::{Toolset, sort_memory_per_thread};
use camino::{Utf8Path, Utf8PathBuf};
use indicatif::MultiProgress;

use crate::Failure;
use crate::cli::{RunArgs, RuntimeArgs};
use crate::env;
use crate::progress::ProgressObserver;

/// Resolves the tools (honouring `BIOJOB_BWA`, `BIOJOB_SAMTOOLS`, `BIOJOB_BCFTOOLS`), probes
/// their versions and builds the engine.
pub fn engine(
    runtime: &RuntimeArgs,
    cancel: &CancelToken,
    stores: &Stores,
) -> Result<Engine, Failure> {
    let from_env = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Utf8PathBuf::from)
    };
    let toolset = Toolset::resolve(
        from_env(env::BIOJOB_BWA).as_deref(),
        from_env(env::BIOJOB_SAMTOOLS).as_deref(),
        from_env(env::BIOJOB_BCFTOOLS).as_deref(),
    )
    .map_err(|error| Failure::Pipeline(error.into()))?;
    let probe_dir = tempfile::tempdir()
        .context("creating a temporary directory")
        .map_err(|error| Failure::Usage(error, None))?;
    let probe_logs = Utf8Path::from_path(probe_dir.path()).unwrap_or(Utf8Path::new("."));
    let versions = probe_tools(&toolset, cancel, probe_logs)?;
    let resources = Resources::detect().with_overrides(runtime.threads, runtime.memory);
    tracing::info!(
        threads = resources.threads,
        memory_bytes = resources.memory_bytes,
        sort_memory_per_thread_bytes =
            sort_memory_per_thread(resources.memory_bytes, resources.threads),
        threads_from = if runtime.threads.is_some() {
            "--threads"
        } else {
            "detected"
        },
        memory_from = if runtime.memory.is_some() {
            "--memory"
        } else {
            "detected"
        },
        "resource budget"
    );
    Ok(Engine {
        stores: stores.clone(),
        toolset,
        versions,
        resources,
        cancel: cancel.clone(),
        grace: Duration::from_secs(runtime.grace_seconds),
        timeout: runtime.tool_timeout,
        step_timeout: runtime.timeout,
        scratch: scratch_settings(runtime),
        validate_fastq: std::env::var_os(env::BIOJOB_FASTQ_VALIDATION).is_none_or(|v| v != "0"),
    })
}

/// The scratch settings from the flags and environment.
pub fn scratch_settings(runtime: &RuntimeArgs) -> ScratchSettings {
    let mut settings = ScratchSettings::new(scratch_root(runtime));
    settings.autoscale = runtime.scratch_autoscale;
    if let Some(config) = std::env::var(env::BIOJOB_EBS_AUTOSCALE_CONFIG)
        .ok()
        .filter(|v| !v.is_empty())
    {
        settings.autoscale_config = config.into();
    }
    settings.low_water_bytes = runtime.scratch_low_water;
    settings.wait_timeout = runtime.scratch_wait;
    settings.keep = runtime.keep_scratch;
    settings
}

/// The job and attempt naming the scratch directory: `AWS_BATCH_JOB_ID` and
/// `AWS_BATCH_JOB_ATTEMPT` when set (under AWS Batch), else `local_id` and attempt 1.
pub fn job_identity(local_id: &str) -> Result<(JobId, Attempt), Failure> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let id = var(env::AWS_BATCH_JOB_ID).unwrap_or_else(|| local_id.to_owned());
    let job_id = JobId::new(&id).map_err(|e| Failure::Pipeline(e.into()))?;
    let attempt = match var(env::AWS_BATCH_JOB_ATTEMPT) {
        Some(text) => Attempt::parse(&text).map_err(|e| Failure::Pipeline(e.into()))?,
        None => Attempt::FIRST,
    };
    Ok((job_id, attempt))
}

/// The cache directory: the flag or `BIOJOB_CACHE_DIR`, else `$XDG_CACHE_HOME/biojob`, else
/// `$HOME/.cache/biojob`, else `biojob-cache` in the system temporary directory.
pub fn cache_dir(runtime: &RuntimeArgs) -> Utf8PathBuf {
    if let Some(dir) = &runtime.cache_dir {
        return dir.clone();
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(base) = var(env::XDG_CACHE_HOME) {
        return Utf8PathBuf::from(base).join("biojob");
    }
    if let Some(home) = var(env::HOME) {
        return Utf8PathBuf::from(home).join(".cache").join("biojob");
    }
    scratch_root(runtime).join("biojob-cache")
}

/// The scratch root: the flag or `BIOJOB_SCRATCH_DIR`, else `/scratch` when writable, else
/// the system temporary directory.
pub fn scratch_root(runtime: &RuntimeArgs) -> Utf8PathBuf {
    biojob_scratch::default_root(runtime.scratch_dir.as_deref())
}

/// What a resumed run reused, what it ran and what failed: `reused: align, call chr20`,
/// `ran: prepare-reference, qc` (`none` when empty), then `failed: gather` when a task
/// failed; tasks in manifest order, skipped ones left out.
pub fn resume_summary(tasks: &[TaskRecord]) -> String {
    let names = |status: TaskStatus| {
        let names: Vec<String> = tasks
            .iter()
            .filter(|task| task.status == status)
            .map(|task| match &task.contig {
                Some(contig) => format!("{} {contig}", task.step),
                None => task.step.to_string(),
            })
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
fn resumes(runtime: &RuntimeArgs, input: &WorkflowInput) -> bool {
    if runtime.no_resume {
        return false;
    }
    let from_environment = std::env::var(env::BIOJOB_RESUME).is_ok_and(|v| !v.is_empty());
    if runtime.resume || from_environment {
        return runtime.resume;
    }
    input.resume.unwrap_or(false)
}

/// The line `--resume` prints (stderr, and a warning in the log) when the run's output location
/// has no earlier manifest: `no earlier run found at <output prefix>/<sample>/<run id>: running
/// every step`. Nothing is printed when the manifest exists or the store cannot be asked (the
/// run then warns when it reads the manifest).
fn warn_without_earlier_run(stores: &Stores, input: &WorkflowInput, run_id: &str) {
    let output_dir = input.output_prefix.join(input.sample.as_str()).join(run_id);
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

pub fn run(
    args: RunArgs,
    cancel: &CancelToken,
    progress: Option<&MultiProgress>,
    stores: &Stores,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading the workflow input {}", args.input))
        .map_err(|error| {
            Failure::Usage(
                error,
                Some("give the path of the execution input JSON".into()),
            )
        })?;
    let input = WorkflowInput::from_json(&text)?;
    if args.dry_run {
        return crate::plan::print_plan(&input, &args);
    }
    let resume = resumes(&args.runtime, &input);
    if resume && args.run_id.is_none() {
        return Err(Failure::Usage(
            anyhow::anyhow!(
                "--resume (or BIOJOB_RESUME) needs the run to resume: each run writes to <output prefix>/<sample>/<run id>/"
            ),
            Some("give the earlier run's id with --run-id, or --no-resume".into()),
        ));
    }
    let engine = engine(&args.runtime, cancel, stores)?;
    let run_id = args.run_id.unwrap_or_else(new_run_id);
    let (job_id, attempt) = job_identity(&run_id)?;
    let options = RunOptions {
        run_id,
        job_id,
        attempt,
        cache_dir: cache_dir(&args.runtime),
        resume,
        scale: args.scale.options(),
    };
    if resume {
        warn_without_earlier_run(stores, &input, &options.run_id);
    }
    let observer: Box<dyn RunObserver> = match progress {
        Some(multi) => Box::new(ProgressObserver::new(multi.clone())),
        None => Box::new(LogObserver),
    };
    let outcome = run_workflow(&input, &options, &engine, observer.as_ref());
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
                println!("manifest: {}", outcome.output_dir.join("manifest.json"));
            }
            Ok(())
        }
        (Some(error), _) => {
            if outcome.manifest_published {
                eprintln!("manifest: {}", outcome.output_dir.join("manifest.json"));
                eprintln!("logs: {}", outcome.output_dir.join("logs"));
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
    use biojob_pipeline::{TaskRecord, TaskStatus};

    use super::resume_summary;

    #[test]
    fn the_resume_summary_names_failed_tasks_apart_from_those_that_ran() {
        let task = |step: StepId, contig: Option<&str>, status: TaskStatus| TaskRecord {
            status,
            ..TaskRecord::new(
                step,
                contig.map(|name| (0, name)),
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
