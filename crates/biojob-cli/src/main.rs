//! `biojob`: FASTQ → BAM → VCF as container jobs.
//!
//! Each step is a subcommand that works alone (and is an AWS Batch job entrypoint);
//! `biojob run` runs them all for one sample on this machine.

mod cli;
mod env;
mod logging;
mod metrics;
mod plan;
mod progress;
mod run;
mod s3;
mod scale_steps;
mod signals;
mod steps;

use std::process::ExitCode;

use biojob_core::{Classify, ExitClass};
use clap::Parser;

// Built with mimalloc's `no_thp` feature: without it mimalloc madvises its arenas
// MADV_HUGEPAGE, so every thread's first allocations fault in whole 2 MiB pages (biojob's own
// RSS was 52 MB during align, 48 MB of it transparent huge pages; benches/e2e.sh measures it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                ExitClass::Usage.code()
            } else {
                0
            };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let progress = logging::init(&cli.logging);
    let cancel = match signals::install() {
        Ok(cancel) => cancel,
        Err(error) => {
            eprintln!("error: cannot install signal handlers: {error}");
            return ExitCode::from(ExitClass::Usage.code());
        }
    };
    // The binary owns the async runtime; the S3 store runs its transfers on it, called from
    // the pipeline's plain threads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
        .thread_name("biojob-io")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the I/O runtime: {error}");
            return ExitCode::from(ExitClass::Usage.code());
        }
    };
    let stores = s3::stores(runtime.handle().clone(), &cli.s3);
    log_job();
    let result = match cli.command {
        cli::Command::Run(args) => run::run(args, &cancel, progress.as_ref(), &stores),
        cli::Command::PrepareReference(args) => steps::prepare_reference(args, &cancel, &stores),
        cli::Command::Align(args) => steps::align(args, &cancel, &stores),
        cli::Command::Call(args) => steps::call(args, &cancel, &stores),
        cli::Command::Gather(args) => steps::gather(args, &cancel, &stores),
        cli::Command::PlanShards(args) => scale_steps::plan_shards(&args),
        cli::Command::Split(args) => scale_steps::split(args, &cancel, &stores),
        cli::Command::Merge(args) => scale_steps::merge(args, &cancel, &stores),
        cli::Command::Stage(command) => s3::stage(command, &stores),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report(&failure);
            ExitCode::from(failure.exit_class().code())
        }
    }
}

/// Logs the AWS Batch job id and attempt, when set (never the rest of the environment).
fn log_job() {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(job_id) = var(env::AWS_BATCH_JOB_ID) {
        let attempt = var(env::AWS_BATCH_JOB_ATTEMPT).unwrap_or_else(|| "1".to_owned());
        tracing::info!(job_id, attempt, "AWS Batch job");
    }
}

/// A failure: the classified pipeline error, or a usage problem found by the binary.
#[derive(Debug)]
pub enum Failure {
    /// From the pipeline.
    Pipeline(biojob_pipeline::Error),
    /// From the binary itself (flags, files it reads).
    Usage(anyhow::Error, Option<String>),
}

impl Failure {
    fn exit_class(&self) -> ExitClass {
        match self {
            Failure::Pipeline(error) => error.exit_class(),
            Failure::Usage(..) => ExitClass::Usage,
        }
    }
}

impl From<biojob_pipeline::Error> for Failure {
    fn from(error: biojob_pipeline::Error) -> Self {
        Failure::Pipeline(error)
    }
}

/// Prints the error chain (a failed tool's message ends with its stderr tail), the remedy on
/// the next line, and the exit class.
fn report(failure: &Failure) {
    let class = failure.exit_class();
    match failure {
        Failure::Pipeline(error) => {
            eprintln!("error: {}", biojob_pipeline::error_chain(error));
            if let Some(remedy) = error.remedy() {
                eprintln!("hint: {remedy}");
            }
        }
        Failure::Usage(error, remedy) => {
            eprintln!("error: {error:#}");
            if let Some(remedy) = remedy {
                eprintln!("hint: {remedy}");
            }
        }
    }
    eprintln!("exit class: {} ({})", class.name(), class.code());
}
