//! `biojob`: FASTQ → BAM → VCF as container jobs.
//!
//! Each step is a subcommand that works alone (and is an AWS Batch job entrypoint);
//! `biojob run` runs them all for one sample on this machine.

mod args;
mod cli;
mod commands;
mod engine;
mod environment;
mod failure;
mod job;
mod logging;
mod metrics;
mod progress;
mod s3;
mod signals;

use std::process::ExitCode;

use biojob_core::ExitClass;
use biojob_pipeline::env;
use clap::Parser;

use crate::cli::Command;

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
            let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            match cli::environment_value_error(&error, &argv) {
                Some(text) => eprint!("{text}"),
                None => {
                    let _ = error.print();
                }
            }
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
    let stores = s3::stores(
        runtime.handle().clone(),
        &cli.s3,
        &cancel,
        cli.command.grace(),
    );
    log_job();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args, &cancel, progress.as_ref(), &stores),
        Command::PrepareReference(args) => commands::prepare_reference::run(args, &cancel, &stores),
        Command::Align(args) => commands::align::run(args, &cancel, &stores),
        Command::Call(args) => commands::call::run(args, &cancel, &stores),
        Command::Gather(args) => commands::gather::run(args, &cancel, &stores),
        Command::Qc(args) => commands::qc::run(args, &cancel, &stores),
        Command::PlanShards(args) => commands::plan_shards::run(&args),
        Command::PlanCohort(args) => commands::plan_cohort::run(&args, &stores),
        Command::SampleVcf(args) => commands::sample_vcf::run(args, &cancel, &stores),
        Command::Report(args) => commands::report::run(args, &cancel, &stores),
        Command::Split(args) => commands::split::run(args, &cancel, &stores),
        Command::Merge(args) => commands::merge::run(args, &cancel, &stores),
        Command::Stage(command) => commands::stage::run(command, &stores),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure::report(&failure);
            ExitCode::from(failure.exit_class().code())
        }
    }
}

/// Logs the AWS Batch job id and attempt, when set (never the rest of the environment).
fn log_job() {
    if let Some(job_id) = environment::var(env::AWS_BATCH_JOB_ID) {
        let attempt =
            environment::var(env::AWS_BATCH_JOB_ATTEMPT).unwrap_or_else(|| "1".to_owned());
        tracing::info!(job_id, attempt, "AWS Batch job");
    }
}
