//! Command-line interface (clap derive).

use biojob_scratch::AutoscaleMode;
use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::env;

/// FASTQ → BAM → VCF as container jobs: align with bwa mem, sort and index with samtools, call
/// per contig with bcftools, gather into one indexed VCF.
///
/// Exit codes: 0 ok, 2 usage, 10 input staging, 11 invalid input, 12 scratch space, 20 tool
/// failed, 21 tool killed, 30 output staging, 31 output invalid, 130 SIGINT, 143 SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "biojob", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub logging: LoggingArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(subcommand)]
    pub command: Command,
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
    /// Server-side encryption for uploads.
    #[arg(long, global = true, env = env::BIOJOB_S3_SSE, value_enum)]
    pub sse: Option<SseArg>,
    /// KMS key id, alias or ARN (with --sse aws:kms).
    #[arg(long, global = true, env = env::BIOJOB_S3_SSE_KMS_KEY_ID)]
    pub sse_kms_key_id: Option<String>,
    /// Requester pays: send x-amz-request-payer: requester.
    #[arg(long, global = true, env = env::BIOJOB_S3_REQUESTER_PAYS)]
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
    Run(RunArgs),
    /// Build the reference's missing .fai and bwa index (beside it, or in the cache when its
    /// directory is read-only).
    PrepareReference(PrepareReferenceArgs),
    /// Align a read pair: bwa mem | samtools sort, then samtools index.
    Align(AlignArgs),
    /// Call variants on one contig: bcftools mpileup | bcftools call, then index.
    Call(CallArgs),
    /// Concatenate per-contig VCFs in reference order into <sample>.vcf.gz, then index.
    Gather(GatherArgs),
    /// Split a FASTQ pair into CHUNKS chunks, blocks of BIOJOB_ALIGN_CHUNK_PAIRS read pairs dealt
    /// in turn, for align --chunk.
    Split(SplitArgs),
    /// Merge the chunks' BAMs (align --chunk) into <sample>.align.bam, then index.
    Merge(MergeArgs),
    /// Print the calling shards of contigs cut by size, as JSON for the execution input's
    /// params.shards and params.shardBases.
    PlanShards(PlanShardsArgs),
    /// Copy one object between S3 (or a path) and a local file, verified.
    #[command(subcommand)]
    Stage(StageCommand),
}

/// `biojob stage get|put`.
#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Download SRC (s3://bucket/key, file:// or a path) to the local file DST (a directory:
    /// DST/<name>), through DST.partial, verified.
    ///
    /// With --regions, SRC is a coordinate-sorted BAM: only the blocks its index (SRC.bai)
    /// says hold the records overlapping the regions are fetched, each checked, and written
    /// as a BAM with the header and those records (DST), indexed (DST.bai). Without a usable
    /// index (missing, or older than the BAM) the whole BAM is fetched, with a warning.
    Get {
        /// The object.
        source: String,
        /// The local file or directory.
        destination: Utf8PathBuf,
        /// A region of the BAM to stage: CONTIG, CONTIG:START-END or CONTIG:START- (1-based,
        /// closed); repeat for more. (`--region` is the AWS region.)
        #[arg(short = 'r', long = "regions", value_name = "REGION")]
        regions: Vec<String>,
    },
    /// Upload the local file SRC to DST (s3://bucket/key; ending in /: DST<name>), verified.
    Put {
        /// The local file.
        source: Utf8PathBuf,
        /// The object or prefix.
        destination: String,
    },
}

/// Resource, scratch and tool settings shared by every step.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Threads to use, at least 1 [default: the CPUs available to this process].
    #[arg(long, env = env::BIOJOB_THREADS, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Memory to use, e.g. 16G [default: the cgroup limit, else the machine's memory].
    #[arg(long, env = env::BIOJOB_MEMORY, value_parser = parse_memory)]
    pub memory: Option<u64>,
    /// Scratch root; each attempt works in <root>/<job id>/<attempt>/, removed at the end
    /// [default: /scratch when writable, else the system temporary directory].
    #[arg(long, env = env::BIOJOB_SCRATCH_DIR)]
    pub scratch_dir: Option<Utf8PathBuf>,
    /// Keep the attempt's scratch directory after the run (for debugging).
    #[arg(
        long,
        env = env::BIOJOB_KEEP_SCRATCH,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub keep_scratch: bool,
    /// Whether the scratch filesystem grows (EBS autoscale): auto detects it from
    /// /etc/ebs-autoscale.json; 1 or 0 force it.
    #[arg(long, env = env::BIOJOB_SCRATCH_AUTOSCALE, default_value = "auto", value_parser = parse_autoscale)]
    pub scratch_autoscale: AutoscaleMode,
    /// On a growing scratch filesystem, pause the tools when less than this is free (e.g. 2G);
    /// they resume at twice as much.
    #[arg(long, env = env::BIOJOB_SCRATCH_LOW_WATER, default_value = "2G", value_parser = parse_memory)]
    pub scratch_low_water: u64,
    /// Longest wait for the scratch filesystem to grow before failing with code 12 (e.g. 5m).
    #[arg(long, env = env::BIOJOB_SCRATCH_WAIT, default_value = "5m", value_parser = parse_duration)]
    pub scratch_wait: std::time::Duration,
    /// Cache for reference indexes when the reference's directory is read-only
    /// [default: $XDG_CACHE_HOME/biojob or ~/.cache/biojob].
    #[arg(long, env = env::BIOJOB_CACHE_DIR)]
    pub cache_dir: Option<Utf8PathBuf>,
    /// Seconds between SIGTERM and SIGKILL when stopping tools (keep it under ECS's 30 s stop
    /// timeout, which also has to cover cleanup and publishing the logs).
    #[arg(long, env = env::BIOJOB_GRACE_SECONDS, default_value_t = 10)]
    pub grace_seconds: u64,
    /// Longest time one tool may run, e.g. 90m or 2h [default: no limit].
    #[arg(long, env = env::BIOJOB_TOOL_TIMEOUT, value_parser = parse_duration)]
    pub tool_timeout: Option<std::time::Duration>,
    /// Longest time one step may take (each step of `run`; the whole job of a step command),
    /// e.g. 3h; its tools are then stopped and it fails with code 21 [default: no limit].
    #[arg(long, env = env::BIOJOB_STEP_TIMEOUT, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Reuse each step (align, each call shard, gather) that a manifest under the run's output
    /// location records as finished with the same cache key (inputs' content, tool versions,
    /// arguments), once its outputs are checked against their recorded sizes and SHA-256; run
    /// the rest. `biojob run` needs the earlier run's --run-id.
    #[arg(
        long,
        env = env::BIOJOB_RESUME,
        action = clap::ArgAction::SetTrue,
        value_parser = parse_switch
    )]
    pub resume: bool,
    /// Run every step, whatever an earlier manifest records (overrides --resume and
    /// BIOJOB_RESUME).
    #[arg(long)]
    pub no_resume: bool,
}

impl RuntimeArgs {
    /// Whether finished steps are reused: --resume or BIOJOB_RESUME, unless --no-resume.
    pub fn resumes(&self) -> bool {
        self.resume && !self.no_resume
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The execution input JSON: {"params": {"environment": {...}, "chromosomes": [...]}}.
    #[arg(long)]
    pub input: Utf8PathBuf,
    /// Run id, the last part of the output location [default: a timestamp].
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Print the plan (steps, shards, command lines) and exit without running anything: only
    /// the input JSON is read; no tool, reference or S3 location is touched.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub scale: ScaleArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// How far a run scatters beyond one alignment and one calling shard per contig.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Largest calling shard, in bases: contigs are cut into regions of at most this many
    /// bases and small contigs grouped (0: one shard per contig).
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, default_value_t = 0)]
    pub shard_bases: u64,
    /// Read pairs per alignment chunk: the FASTQ pair is split into chunks, each aligned on its
    /// own and the BAMs merged (0: aligned whole).
    #[arg(long, env = env::BIOJOB_ALIGN_CHUNK_PAIRS, default_value_t = 0)]
    pub chunk_pairs: u64,
    /// Chunks aligned at once, each with an equal share of the threads and memory [default:
    /// 1]. Calling shards always run on as many workers as there are threads.
    #[arg(long, env = env::BIOJOB_WORKERS, default_value_t = 1)]
    pub workers: usize,
}

impl ScaleArgs {
    /// The pipeline's settings.
    pub fn options(&self) -> biojob_pipeline::ScaleOptions {
        biojob_pipeline::ScaleOptions {
            shard_bases: std::num::NonZeroU64::new(self.shard_bases),
            chunk_pairs: std::num::NonZeroU64::new(self.chunk_pairs),
            workers: self.workers,
        }
    }
}

#[derive(Debug, Args)]
pub struct PrepareReferenceArgs {
    /// The reference FASTA (.fa, .fasta or .fa.gz).
    #[arg(long)]
    pub reference: Utf8PathBuf,
    /// Build only the .fai, not the bwa index.
    #[arg(long)]
    pub fai_only: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Options every step takes; a Batch job sets them through the environment (flags win).
#[derive(Debug, Clone, Args)]
pub struct StepArgs {
    /// The sample id.
    #[arg(long, env = env::SAMPLE_ID)]
    pub sample: String,
    /// The reference FASTA's URI (.fa, .fasta or .fa.gz) [default: the REFERENCE_NAME lookup].
    #[arg(long, env = env::REFERENCE)]
    pub reference: Option<String>,
    /// Reference file stem: <reference prefix>/<name> + .fa, .fasta or .fa.gz.
    #[arg(long, env = env::REFERENCE_NAME)]
    pub reference_name: Option<String>,
    /// Where the reference is [default: --source-data-prefix].
    #[arg(long, env = env::REFERENCE_PREFIX)]
    pub reference_prefix: Option<String>,
    /// Where the FASTQs (and by default the reference) are.
    #[arg(long, env = env::SOURCE_DATA_PREFIX)]
    pub source_data_prefix: Option<String>,
    /// Results root (a path, file:// or s3:// URI).
    #[arg(long, env = env::JOB_OUTPUT_PREFIX)]
    pub output_prefix: String,
    /// The workflow's name: outputs go to <output prefix>/<workflow name>/<execution id>/.
    #[arg(long, env = env::JOB_WORKFLOW_NAME, requires = "execution_id")]
    pub workflow_name: Option<String>,
    /// The workflow execution's id (with --workflow-name).
    #[arg(long, env = env::JOB_WORKFLOW_EXECUTION_ID, requires = "workflow_name")]
    pub execution_id: Option<String>,
}

/// The FASTQ pair of an align or split job.
#[derive(Debug, Args)]
pub struct FastqPairArgs {
    /// Read 1 FASTQ (plain or gzip) [default: <source data prefix>/<sample>_R1.fastq.gz].
    #[arg(long, env = env::FASTQ_1)]
    pub fastq_1: Option<String>,
    /// Read 2 FASTQ, same read order as read 1 [default: <source data prefix>/<sample>_R2.fastq.gz].
    #[arg(long, env = env::FASTQ_2)]
    pub fastq_2: Option<String>,
}

impl FastqPairArgs {
    /// The flags given, as overrides of the job environment's keys.
    pub fn overrides(&self) -> [(&'static str, Option<&String>); 2] {
        use biojob_pipeline::keys;
        [
            (keys::FASTQ_1, self.fastq_1.as_ref()),
            (keys::FASTQ_2, self.fastq_2.as_ref()),
        ]
    }
}

/// The read group of an align job, and of the merge job that must write the same one.
#[derive(Debug, Args)]
pub struct ReadGroupArgs {
    /// @RG ID [default: the sample id].
    #[arg(long, env = env::READ_GROUP_ID)]
    pub read_group_id: Option<String>,
    /// @RG LB.
    #[arg(long, env = env::READ_GROUP_LIBRARY)]
    pub read_group_library: Option<String>,
    /// @RG PL [default: ILLUMINA].
    #[arg(long, env = env::READ_GROUP_PLATFORM)]
    pub read_group_platform: Option<String>,
    /// @RG PU.
    #[arg(long, env = env::READ_GROUP_PLATFORM_UNIT)]
    pub read_group_platform_unit: Option<String>,
}

impl ReadGroupArgs {
    /// The flags given, as overrides of the job environment's keys.
    pub fn overrides(&self) -> [(&'static str, Option<&String>); 4] {
        use biojob_pipeline::keys;
        [
            (keys::READ_GROUP_ID, self.read_group_id.as_ref()),
            (keys::READ_GROUP_LIBRARY, self.read_group_library.as_ref()),
            (keys::READ_GROUP_PLATFORM, self.read_group_platform.as_ref()),
            (
                keys::READ_GROUP_PLATFORM_UNIT,
                self.read_group_platform_unit.as_ref(),
            ),
        ]
    }
}

#[derive(Debug, Args)]
pub struct AlignArgs {
    #[command(flatten)]
    pub step: StepArgs,
    #[command(flatten)]
    pub fastqs: FastqPairArgs,
    #[command(flatten)]
    pub read_group: ReadGroupArgs,
    /// Align one chunk written by the split step instead: its index; the FASTQs are
    /// <run prefix>/<sample>.split.<chunk>_R1/_R2.fastq.gz, the BAM <sample>.align.<chunk>.bam.
    #[arg(long, env = env::CHUNK)]
    pub chunk: Option<usize>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub step: StepArgs,
    #[command(flatten)]
    pub fastqs: FastqPairArgs,
    /// Read pairs per block; block k goes to chunk k mod --chunks.
    #[arg(long, env = env::BIOJOB_ALIGN_CHUNK_PAIRS, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_pairs: u64,
    /// How many chunks, 1 to 9999 (chunk names have four digits).
    #[arg(long, env = env::CHUNKS, value_parser = clap::value_parser!(u64).range(1..10000))]
    pub chunks: u64,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// How many chunks were aligned, 1 to 9999.
    #[arg(long, env = env::CHUNKS, value_parser = clap::value_parser!(u64).range(1..10000))]
    pub chunks: u64,
    #[command(flatten)]
    pub read_group: ReadGroupArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// The coordinate-sorted BAM, with its .bai beside it [default: <run prefix>/<sample>.align.bam].
    #[arg(long)]
    pub bam: Option<String>,
    /// The contig to call.
    #[arg(long, env = env::CHROMOSOME, required_unless_present = "shard", conflicts_with = "shard")]
    pub contig: Option<String>,
    /// The shard to call instead: its index in the plan of --contigs cut into shards of at most
    /// --shard-bases bases.
    #[arg(long, env = env::SHARD, requires_all = ["contigs", "shard_bases"])]
    pub shard: Option<usize>,
    /// The contigs of the run, for --shard: a JSON array (["chr20","chrM"]) or comma-separated.
    #[arg(long, env = env::CHROMOSOMES)]
    pub contigs: Option<String>,
    /// Largest shard in bases, for --shard.
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_bases: Option<u64>,
    /// Minimum mapping quality of the alignments used (bcftools mpileup -q), 0 to 255
    /// [default: bcftools' own, 0].
    #[arg(long, env = env::MIN_MAPPING_QUALITY)]
    pub min_mapping_quality: Option<String>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct PlanShardsArgs {
    /// The reference FASTA; its .fai must sit beside it.
    #[arg(long)]
    pub reference: Utf8PathBuf,
    /// The contigs of the run: a JSON array (["chr20","chrM"]) or comma-separated [default:
    /// every contig of the .fai].
    #[arg(long, env = env::CHROMOSOMES)]
    pub contigs: Option<String>,
    /// Largest shard, in bases.
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_bases: u64,
}

#[derive(Debug, Args)]
pub struct GatherArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// A per-contig VCF (bgzipped, .tbi beside it); repeat, in any order [default: the call
    /// step's outputs under the run prefix for --contigs].
    #[arg(long = "vcf")]
    pub vcfs: Vec<String>,
    /// The contigs called: a JSON array (["chr20","chrM"]) or comma-separated.
    #[arg(long, env = env::CHROMOSOMES, required_unless_present = "vcfs")]
    pub contigs: Option<String>,
    /// The shards were cut by size, at most this many bases each (the call jobs' --shard-bases):
    /// gather every shard of that plan of --contigs (0: one shard per contig).
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, default_value_t = 0)]
    pub shard_bases: u64,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    biojob_pipeline::parse_memory_size(text)
}

/// A switch's value from the environment: `1`, `true`, `yes`, `on` (any case) are on; `0`,
/// `false`, `no`, `off` and the empty string (what the state machine passes when the execution
/// input leaves the setting out) are off.
/// A thread count: a whole number, at least 1 (0 is refused rather than taken as 1).
fn parse_threads(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("0 threads cannot run anything: give at least 1".to_owned()),
        Ok(threads) => Ok(threads),
        Err(error) => Err(format!(
            "{text:?} is not a whole number of threads: {error}"
        )),
    }
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not 1/true/yes/on or 0/false/no/off")),
    }
}

fn parse_autoscale(text: &str) -> Result<AutoscaleMode, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{text:?}: {error}"))
}

fn parse_run_id(text: &str) -> Result<String, String> {
    biojob_core::SampleId::new(text)
        .map(|id| id.as_str().to_owned())
        .map_err(|error| error.to_string().replace("sample id", "run id"))
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
    fn a_switch_is_off_when_empty_and_refuses_other_words() {
        for on in ["1", "true", "YES", "on"] {
            assert_eq!(parse_switch(on), Ok(true), "{on}");
        }
        for off in ["", "0", "false", "No", "off"] {
            assert_eq!(parse_switch(off), Ok(false), "{off}");
        }
        assert_eq!(
            parse_switch("maybe"),
            Err("\"maybe\" is not 1/true/yes/on or 0/false/no/off".to_owned())
        );
    }
}
