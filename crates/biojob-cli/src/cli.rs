//! Command-line interface (clap derive).

use biojob_core::ExitClass;
use clap::{Args, Parser, Subcommand, ValueEnum};

use biojob_pipeline::env;

use crate::args::{parse_duration, parse_memory};
use crate::commands;

/// FASTQ → BAM → VCF as container jobs: align with bwa mem, sort and index with samtools, call
/// per contig with bcftools, gather into one indexed VCF, then QC.
#[derive(Debug, Parser)]
#[command(name = "biojob", version, propagate_version = true, after_help = exit_codes_help())]
pub struct Cli {
    #[command(flatten)]
    pub logging: LoggingArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, from [`ExitClass`]: `Exit codes: 0 ok, 2 usage, …; a retry may succeed
/// after 10, 12, … (docs/exit-codes.md).`
pub fn exit_codes_help() -> String {
    let codes: Vec<String> = ExitClass::ALL
        .into_iter()
        .map(|class| format!("{} {}", class.code(), class.name()))
        .collect();
    let retryable: Vec<String> = ExitClass::ALL
        .into_iter()
        .filter(|class| class.retryable())
        .map(|class| class.code().to_string())
        .collect();
    format!(
        "Exit codes: {}; a retry may succeed after {} (docs/exit-codes.md).",
        codes.join(", "),
        retryable.join(", ")
    )
}

/// Logging options.
#[derive(Debug, Args)]
pub struct LoggingArgs {
    /// Log format: auto is JSON under AWS Batch (AWS_BATCH_JOB_ID set), text otherwise.
    #[arg(long, global = true, value_enum, env = env::BIOJOB_LOG_FORMAT, default_value = "auto")]
    pub log_format: LogFormat,
    /// More detail (tool stderr lines at -v).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// S3 settings. Credentials come from the standard AWS chain (environment, profile, web
/// identity, the ECS task role, IMDS); they are never printed.
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// S3-compatible endpoint, e.g. http://127.0.0.1:8333 (path-style addressing).
    #[arg(long, global = true, env = env::AWS_ENDPOINT_URL)]
    pub endpoint_url: Option<String>,
    /// AWS region [default: the standard chain; us-east-1 with --endpoint-url].
    #[arg(long, global = true, env = env::AWS_REGION)]
    pub region: Option<String>,
    /// Path-style addressing [default: on with --endpoint-url].
    #[arg(long, global = true, env = env::BIOJOB_S3_PATH_STYLE)]
    pub s3_path_style: Option<bool>,
    /// Part size for multipart uploads and ranged downloads, e.g. 16M (at least 5M; grown so
    /// an object fits in 10,000 parts).
    #[arg(long, global = true, env = env::BIOJOB_S3_PART_SIZE, value_parser = parse_memory, default_value = "16M")]
    pub s3_part_size: u64,
    /// Parts in flight at once per transfer.
    #[arg(long, global = true, env = env::BIOJOB_S3_CONCURRENCY, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub s3_concurrency: u16,
    /// Checksum stored with uploads.
    #[arg(long, global = true, env = env::BIOJOB_S3_CHECKSUM, value_enum, default_value = "crc32c")]
    pub s3_checksum: ChecksumArg,
    /// Attempts per request (per part) before a transfer fails.
    #[arg(long, global = true, env = env::BIOJOB_S3_MAX_ATTEMPTS, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub s3_max_attempts: u32,
    /// First retry backoff bound (doubled per attempt, full jitter, at most 20s).
    #[arg(long, global = true, env = env::BIOJOB_S3_RETRY_BASE_DELAY, value_parser = parse_duration, default_value = "200ms")]
    pub s3_retry_base_delay: std::time::Duration,
    /// The longest one attempt of a request waits for its answer to begin (an upload's body
    /// included) before it is abandoned and retried.
    #[arg(long, global = true, env = env::BIOJOB_S3_REQUEST_TIMEOUT, value_parser = parse_duration, default_value = "2m")]
    pub s3_request_timeout: std::time::Duration,
    /// Server-side encryption for uploads.
    #[arg(long, global = true, env = env::BIOJOB_S3_SSE, value_enum)]
    pub sse: Option<SseArg>,
    /// KMS key id, alias or ARN (with --sse aws:kms).
    #[arg(long, global = true, env = env::BIOJOB_S3_SSE_KMS_KEY_ID)]
    pub sse_kms_key_id: Option<String>,
    /// Requester pays: send x-amz-request-payer: requester.
    #[arg(
        long,
        global = true,
        env = env::BIOJOB_S3_REQUESTER_PAYS,
        action = clap::ArgAction::SetTrue,
        value_parser = crate::args::parse_switch
    )]
    pub requester_pays: bool,
}

/// The checksum stored with uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChecksumArg {
    /// CRC32C (hardware-accelerated).
    Crc32c,
    /// SHA-256.
    Sha256,
}

/// Server-side encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SseArg {
    /// SSE-S3.
    #[value(name = "AES256", alias = "aes256")]
    Aes256,
    /// SSE-KMS (with --sse-kms-key-id, or the default key).
    #[value(name = "aws:kms", alias = "kms")]
    Kms,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON under AWS Batch, text otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line (CloudWatch).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole workflow for one sample from a Step Functions execution input JSON.
    Run(commands::run::RunArgs),
    /// Build the reference's missing .fai and bwa index (beside it, or in the cache when its
    /// directory is read-only).
    PrepareReference(commands::prepare_reference::PrepareReferenceArgs),
    /// Align a read pair: bwa mem | samtools sort, indexed as it is written.
    Align(commands::align::AlignArgs),
    /// Call variants on one contig or shard: bcftools mpileup | bcftools call, then index.
    Call(commands::call::CallArgs),
    /// Concatenate per-contig VCFs in reference order into <sample>.vcf.gz, then index.
    Gather(commands::gather::GatherArgs),
    /// QC of a run: samtools flagstat and stats, bcftools stats, qc.json and report.html.
    Qc(commands::qc::QcArgs),
    /// A cohort's sample: its VCF, its column of the joint cohort.vcf.gz where its genotype
    /// holds a non-reference allele (bcftools view -s SAMPLE -c 1), then index.
    SampleVcf(commands::sample_vcf::SampleVcfArgs),
    /// A cohort's report.html from its samples' qc.json and the execution's step manifests.
    Report(commands::report::ReportArgs),
    /// Split a FASTQ pair into CHUNKS chunks (a cohort lane's into LANE_CHUNKS), blocks of
    /// BIOJOB_ALIGN_CHUNK_PAIRS read pairs dealt in turn, for align --chunk.
    Split(commands::split::SplitArgs),
    /// Merge the chunks' BAMs (align --chunk) into <sample>.align.bam, indexed as it is written.
    Merge(commands::merge::MergeArgs),
    /// Print the calling shards of contigs cut by size, as JSON for the execution input's
    /// params.shards and params.shardBases.
    PlanShards(commands::plan_shards::PlanShardsArgs),
    /// Print a cohort's samples, lanes and the lanes' alignment chunks (a large lane split with
    /// --chunk-bytes) from its sample sheet, as JSON for the execution input's
    /// params.samplesheet, params.samples and params.chunkPairs.
    PlanCohort(commands::plan_cohort::PlanCohortArgs),
    /// Copy one object between S3 (or a path) and a local file, verified.
    #[command(subcommand)]
    Stage(commands::stage::StageCommand),
}

impl Command {
    /// The grace period the command stops with: its `--grace-seconds`, or the default for
    /// commands without runtime flags (`stage`, `plan-shards`, `plan-cohort`).
    pub fn grace(&self) -> std::time::Duration {
        let seconds = match self {
            Command::Run(args) => args.runtime.grace_seconds,
            Command::PrepareReference(args) => args.runtime.grace_seconds,
            Command::Align(args) => args.runtime.grace_seconds,
            Command::Call(args) => args.runtime.grace_seconds,
            Command::Gather(args) => args.runtime.grace_seconds,
            Command::Qc(args) => args.runtime.grace_seconds,
            Command::Split(args) => args.runtime.grace_seconds,
            Command::Merge(args) => args.runtime.grace_seconds,
            Command::SampleVcf(args) => args.runtime.grace_seconds,
            Command::Report(args) => args.runtime.grace_seconds,
            Command::PlanShards(_) | Command::PlanCohort(_) | Command::Stage(_) => {
                crate::args::DEFAULT_GRACE_SECONDS
            }
        };
        std::time::Duration::from_secs(seconds)
    }
}

/// The text of a usage error about a bad value that came from a flag's environment variable:
/// clap names the flag (`invalid value 'abc' for '--threads <THREADS>'`) although the command
/// line has none; this names the variable too (`… for BIOJOB_THREADS (the environment variable
/// of '--threads <THREADS>'): …`). `None` when the error is not about a value, the flag has no
/// variable or the variable is unset, or `argv` (program name first) gives the flag.
pub fn environment_value_error(error: &clap::Error, argv: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};

    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = invalid.split_whitespace().next()?.strip_prefix("--")?;
    let command = Cli::command();
    let arg = find_long(&command, long)?;
    let variable = arg.get_env()?.to_str()?;
    std::env::var_os(variable)?;
    let flag = format!("--{long}");
    let short = arg.get_short().map(|short| format!("-{short}"));
    let given = argv
        .iter()
        .skip(1)
        .filter_map(|word| word.to_str())
        .take_while(|word| *word != "--")
        .any(|word| {
            word == flag
                || word
                    .strip_prefix(flag.as_str())
                    .is_some_and(|rest| rest.starts_with('='))
                || short
                    .as_deref()
                    .is_some_and(|short| word.starts_with(short))
        });
    if given {
        return None;
    }
    let quoted = format!("for '{invalid}'");
    let text = error.render().to_string();
    text.contains(&quoted).then(|| {
        text.replacen(
            &quoted,
            &format!("for {variable} (the environment variable of '{invalid}')"),
            1,
        )
    })
}

/// The argument whose long flag is `--long`, in `command` or any of its subcommands.
fn find_long<'c>(command: &'c clap::Command, long: &str) -> Option<&'c clap::Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|subcommand| find_long(subcommand, long))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_the_exit_classes() {
        assert_eq!(
            exit_codes_help(),
            "Exit codes: 0 ok, 2 usage, 10 input_staging, 11 input_invalid, 12 scratch, \
             20 tool_failed, 21 tool_killed, 30 output_staging, 31 output_invalid, \
             130 interrupted, 143 terminated; a retry may succeed after 10, 12, 21, 30, 143 \
             (docs/exit-codes.md)."
        );
        // The help wraps lines; compare its words.
        let help = Cli::command().render_help().to_string();
        let words: Vec<&str> = help.split_whitespace().collect();
        assert!(words.join(" ").ends_with(&exit_codes_help()), "{help}");
    }
}
