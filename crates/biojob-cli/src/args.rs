//! The flags several subcommands share: resources and scratch ([`RuntimeArgs`]), a step job's
//! location ([`StepArgs`]), the FASTQ pair, the read group, how a run scatters. Each flag is
//! backed by its environment variable ([`biojob_pipeline::env`]).

use std::num::NonZeroUsize;

use biojob_pipeline::{contradicts_input, env};
use biojob_scratch::AutoscaleMode;
use biojob_tools::Aligner;
use camino::Utf8PathBuf;
use clap::Args;

use crate::failure::{Failure, usage};

/// Resource, scratch and tool settings shared by every step.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Threads to use, 1 to 1024 [default: the CPUs available to this process].
    #[arg(long, env = env::BIOJOB_THREADS, value_parser = parse_threads, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Memory to use, e.g. 16G, at least 256M [default: the cgroup limit, else the machine's
    /// memory].
    #[arg(long, env = env::BIOJOB_MEMORY, value_parser = parse_job_memory)]
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
        value_parser = parse_switch
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
    #[arg(long, env = env::BIOJOB_GRACE_SECONDS, default_value_t = DEFAULT_GRACE_SECONDS)]
    pub grace_seconds: u64,
    /// How often a running task's progress (the align task's pairs, share of the input read,
    /// rate and time left; each calling shard's share of bases) is logged, e.g. 30s; a
    /// terminal shows it as it changes.
    #[arg(long, env = env::BIOJOB_PROGRESS_INTERVAL, default_value = "1m", value_parser = parse_duration)]
    pub progress_interval: std::time::Duration,
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
    /// The aligner, bwa or bwa-mem2 (the same alignments; bwa-mem2 spends about a third less
    /// CPU and needs its own index, whose build takes 28 bytes of memory per reference base)
    /// [default: bwa; `run`: then params.environment.BIOJOB_ALIGNER].
    #[arg(long, env = env::BIOJOB_ALIGNER, value_parser = parse_aligner)]
    pub aligner: Option<AlignerChoice>,
    /// Price of one vCPU for one hour, in US dollars, for the cost in the manifests and the
    /// report (the default: Spot C/M/R instances, docs/cost.md).
    #[arg(long, env = env::BIOJOB_PRICE_VCPU_HOUR, default_value_t = biojob_pipeline::DEFAULT_PRICE_VCPU_HOUR, value_parser = parse_price)]
    pub price_vcpu_hour: f64,
    /// Price of one GiB of memory for one hour, in US dollars (the default: Spot C/M/R
    /// instances, docs/cost.md).
    #[arg(long, env = env::BIOJOB_PRICE_GIB_HOUR, default_value_t = biojob_pipeline::DEFAULT_PRICE_GIB_HOUR, value_parser = parse_price)]
    pub price_gib_hour: f64,
}

/// The value of `--aligner` (`BIOJOB_ALIGNER`): an aligner, or none for an empty value (which
/// counts as unset, as for every setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlignerChoice(pub Option<Aligner>);

impl RuntimeArgs {
    /// Whether finished steps are reused: --resume or BIOJOB_RESUME, unless --no-resume.
    pub fn resumes(&self) -> bool {
        self.resume && !self.no_resume
    }

    /// The aligner of `--aligner` or `BIOJOB_ALIGNER`, when given and not empty.
    pub fn aligner(&self) -> Option<Aligner> {
        self.aligner.and_then(|choice| choice.0)
    }
}

/// How far a run scatters beyond one alignment and one calling shard per contig.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Largest calling shard, in bases: contigs are cut into regions of at most this many
    /// bases and small contigs grouped (0: one shard per contig) [default: one shard per
    /// contig, or, when that would leave threads idle at the end of calling, shards of the
    /// size that keeps them busy (at least 500 kb)].
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES)]
    pub shard_bases: Option<u64>,
    /// Read pairs per alignment chunk, 0 or at least 1000: the FASTQ pair (with a sample
    /// sheet, each lane) is split into chunks, each aligned on its own and the BAMs merged (0:
    /// aligned whole) [default: 0, or as the execution input's params.chunks and
    /// params.chunkPairs (a cohort's params.samples) split it].
    #[arg(long, env = env::BIOJOB_ALIGN_CHUNK_PAIRS, value_parser = parse_chunk_pairs)]
    pub chunk_pairs: Option<u64>,
    /// Chunks aligned at once, each with an equal share of the threads and memory [default:
    /// 1]. Calling shards always run on as many workers as there are threads.
    #[arg(long, env = env::BIOJOB_WORKERS, default_value_t = 1, value_parser = parse_workers)]
    pub workers: usize,
}

impl ScaleArgs {
    /// The pipeline's settings: the flags, and the execution input's chunks and shards
    /// (`scatter`) as the state machine would run them.
    ///
    /// # Errors
    /// A usage failure when a flag gives another chunk or shard size than the input.
    pub fn options(
        &self,
        scatter: &biojob_pipeline::InputScatter,
    ) -> Result<biojob_pipeline::ScaleOptions, Failure> {
        let mut options = biojob_pipeline::ScaleOptions {
            shard_bases: self.shard_bases.and_then(std::num::NonZeroU64::new),
            balance_shards: self.shard_bases.is_none(),
            chunk_pairs: self.chunk_pairs.and_then(std::num::NonZeroU64::new),
            chunks: None,
            workers: self.workers,
            shards: None,
        };
        if let Some((chunks, pairs)) = scatter.sample_chunks() {
            if let Some(flag) = self.chunk_pairs
                && flag != pairs.get()
            {
                return Err(contradicts_input(
                    "chunk-pairs",
                    env::BIOJOB_ALIGN_CHUNK_PAIRS,
                    flag,
                    "chunkPairs",
                    pairs.get(),
                    "params.chunks and params.chunkPairs split the pair",
                )
                .into());
            }
            options.chunk_pairs = Some(pairs);
            options.chunks = Some(chunks);
        }
        if let Some((shards, bases)) = scatter.shards {
            if let Some(flag) = self.shard_bases
                && flag != bases.get()
            {
                return Err(contradicts_input(
                    "shard-bases",
                    env::BIOJOB_CALL_SHARD_BASES,
                    flag,
                    "shardBases",
                    bases.get(),
                    "params.shards and params.shardBases cut the calling",
                )
                .into());
            }
            options.shard_bases = Some(bases);
            options.balance_shards = false;
            options.shards = Some(shards);
        }
        Ok(options)
    }
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

/// The sample sheet of a cohort's job: with it, the job is one of a cohort's (docs/cohorts.md).
#[derive(Debug, Clone, Args)]
pub struct SheetArgs {
    /// The cohort's sample sheet (CSV: sample,lane,fastq_1,fastq_2[,library,platform_unit]; a
    /// path, file:// or s3:// URI): the job is one of the cohort's, its files under
    /// <run prefix>/samples/<sample>/ (the joint steps': SAMPLE_ID cohort, under the run prefix).
    #[arg(long, env = env::SAMPLESHEET)]
    pub samplesheet: Option<String>,
}

impl SheetArgs {
    /// The sheet given, when not empty (the state machine passes an empty value without one).
    pub fn given(&self) -> Option<&str> {
        self.samplesheet
            .as_deref()
            .filter(|text| !text.trim().is_empty())
    }
}

/// The lane of a cohort's lane job (split, align), with --samplesheet.
#[derive(Debug, Clone, Args)]
pub struct LaneArgs {
    /// With --samplesheet: the lane, its 0-based index among the sample's rows of the sheet.
    #[arg(long, env = env::LANE)]
    pub lane: Option<usize>,
    /// With --samplesheet: the lane's chunks, their numbers among the sample's chunks
    /// (consecutive; a JSON array or comma-separated, as biojob plan-cohort lists them)
    /// [default: the lane's index, as when no lane is split].
    #[arg(long, env = env::LANE_CHUNKS)]
    pub lane_chunks: Option<String>,
}

impl LaneArgs {
    /// Refuses LANE and LANE_CHUNKS given without a sample sheet.
    ///
    /// # Errors
    /// A usage failure naming the variable.
    pub fn refuse_without_sheet(&self) -> Result<(), Failure> {
        let given = [
            (
                self.lane.is_some(),
                env::LANE,
                "names a lane of a sample sheet",
            ),
            (
                self.lane_chunks.is_some(),
                env::LANE_CHUNKS,
                "numbers a sample sheet lane's chunks",
            ),
        ];
        match given.into_iter().find(|(set, _, _)| *set) {
            Some((_, key, what)) => Err(usage(
                format!("{key} {what}, and no sheet is given"),
                &format!("set SAMPLESHEET with {key}, or leave {key} out"),
            )),
            None => Ok(()),
        }
    }

    /// The lane's index; `job` and `verb` say what the job does with it (`split`, `splits`).
    ///
    /// # Errors
    /// A usage failure when LANE is not set.
    pub fn index(&self, job: &str, verb: &str) -> Result<usize, Failure> {
        self.lane.ok_or_else(|| {
            usage(
                format!("a cohort's {job} job {verb} one lane, and LANE is not set"),
                "set LANE to the lane's 0-based index among the sample's rows of the sheet",
            )
        })
    }

    /// LANE_CHUNKS when given, not empty (the state machine passes an empty value without it).
    pub fn chunks_given(&self) -> Option<&str> {
        self.lane_chunks
            .as_deref()
            .filter(|text| !text.trim().is_empty())
    }
}

/// A cohort's duplicate marking, for the run and for its align and merge jobs.
#[derive(Debug, Clone, Args)]
pub struct MarkDuplicatesArgs {
    /// A cohort's duplicate marking (samtools fixmate -m after bwa, samtools markdup after the
    /// merge of a sample's lanes; duplicates flagged, never removed): 1/true/yes/on (empty: on)
    /// or 0/false/no/off. Without a sample sheet duplicates are not marked.
    #[arg(long, env = env::BIOJOB_MARK_DUPLICATES, default_value = "on", value_parser = parse_switch_on_unless_off, action = clap::ArgAction::Set)]
    pub mark_duplicates: bool,
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
        [
            (env::FASTQ_1, self.fastq_1.as_ref()),
            (env::FASTQ_2, self.fastq_2.as_ref()),
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
        [
            (env::READ_GROUP_ID, self.read_group_id.as_ref()),
            (env::READ_GROUP_LIBRARY, self.read_group_library.as_ref()),
            (env::READ_GROUP_PLATFORM, self.read_group_platform.as_ref()),
            (
                env::READ_GROUP_PLATFORM_UNIT,
                self.read_group_platform_unit.as_ref(),
            ),
        ]
    }
}

pub fn parse_memory(text: &str) -> Result<u64, String> {
    biojob_pipeline::parse_memory_size(text)
}

/// Seconds between SIGTERM and SIGKILL when stopping tools, and how long publishing may go on
/// after a stop (`--grace-seconds`; commands without runtime flags use it as it is).
pub const DEFAULT_GRACE_SECONDS: u64 = 10;

/// The most threads a job gives its tools. `samtools` and `bcftools` start one thread per
/// `-@`, and with `--threads 100000` samtools crashes (SIGSEGV) after the alignment has run:
/// a count that no machine has is refused before any tool starts.
pub const MAX_THREADS: usize = 1024;

/// The least memory a job can be given: `samtools sort` takes at least 64 MiB per thread
/// (`sort_memory_per_thread`'s floor) and bwa holds its whole index; below this nothing runs.
pub const MIN_MEMORY: u64 = 256 << 20;

/// A thread count: a whole number from 1 to [`MAX_THREADS`] (0 is refused rather than taken as
/// 1, a negative number rather than read as a flag).
pub fn parse_threads(text: &str) -> Result<usize, String> {
    let remedy = format!("give a whole number from 1 to {MAX_THREADS}");
    match text.trim().parse::<i128>() {
        Ok(0) => Err("0 threads cannot run anything: give at least 1".to_owned()),
        Ok(threads) if threads < 0 => {
            Err(format!("{threads} threads cannot run anything: {remedy}"))
        }
        Ok(threads) => match usize::try_from(threads) {
            Ok(threads) if threads <= MAX_THREADS => Ok(threads),
            _ => Err(format!(
                "{threads} threads is more than biojob gives its tools ({MAX_THREADS} at most; \
                 samtools crashes when given tens of thousands): {remedy}"
            )),
        },
        Err(error) => Err(format!(
            "{text:?} is not a whole number of threads: {error}"
        )),
    }
}

/// `--workers`: chunks aligned at once, a whole number of at least 1.
pub fn parse_workers(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("0 workers align no chunk: give at least 1".to_owned()),
        Ok(workers) => Ok(workers),
        Err(error) => Err(format!(
            "{text:?} is not a whole number of workers: {error}"
        )),
    }
}

/// The job's memory: a size ([`parse_memory`]) of at least [`MIN_MEMORY`].
pub fn parse_job_memory(text: &str) -> Result<u64, String> {
    let bytes = parse_memory(text)?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{bytes} bytes of memory cannot run the tools (samtools sort alone takes 64 MiB \
             per thread): give at least 256M"
        ));
    }
    Ok(bytes)
}

/// Read pairs per chunk: 0 (no chunks) or at least [`MIN_CHUNK_PAIRS`].
pub fn parse_chunk_pairs(text: &str) -> Result<u64, String> {
    let pairs: u64 = text
        .trim()
        .parse()
        .map_err(|error| format!("{text:?} is not a number of read pairs: {error}"))?;
    biojob_pipeline::check_chunk_pairs(pairs)?;
    Ok(pairs)
}

/// A switch's value from the environment: `1`, `true`, `yes`, `on` (any case) are on; `0`,
/// `false`, `no`, `off` and the empty string (what the state machine passes when the execution
/// input leaves the setting out) are off.
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not 1/true/yes/on or 0/false/no/off")),
    }
}

pub fn parse_aligner(text: &str) -> Result<AlignerChoice, String> {
    if text.is_empty() {
        return Ok(AlignerChoice(None));
    }
    text.parse()
        .map(|aligner| AlignerChoice(Some(aligner)))
        .map_err(|error: biojob_tools::UnknownAligner| error.to_string())
}

/// A switch that is on unless turned off: as [`parse_switch`], but the empty string (what the
/// state machine passes when the execution input leaves the setting out) is on.
pub fn parse_switch_on_unless_off(text: &str) -> Result<bool, String> {
    if text.trim().is_empty() {
        return Ok(true);
    }
    parse_switch(text)
}

pub fn parse_autoscale(text: &str) -> Result<AutoscaleMode, String> {
    text.parse()
}

pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{text:?}: {error}"))
}

pub fn parse_run_id(text: &str) -> Result<String, String> {
    biojob_core::SampleId::new(text)
        .map(|id| id.as_str().to_owned())
        .map_err(|error| error.to_string().replace("sample id", "run id"))
}

/// A chunk count from its flag.
pub fn chunk_count(chunks: u64) -> Result<NonZeroUsize, Failure> {
    usize::try_from(chunks)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| {
            usage(
                format!("CHUNKS {chunks} is not a chunk count"),
                "give CHUNKS from 1",
            )
        })
}

/// A price: a finite number of dollars, 0 or more.
fn parse_price(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(price) if price.is_finite() && price >= 0.0 => Ok(price),
        Ok(_) => Err(format!("{text:?} is not a price: give 0 or more dollars")),
        Err(error) => Err(format!("{text:?} is not a price in dollars: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_memory_and_chunks_out_of_range_are_refused_with_the_reason() {
        assert_eq!(parse_threads("1"), Ok(1));
        assert_eq!(parse_threads("1024"), Ok(1024));
        assert_eq!(
            parse_threads("-1"),
            Err("-1 threads cannot run anything: give a whole number from 1 to 1024".to_owned())
        );
        assert_eq!(
            parse_threads("100000"),
            Err(
                "100000 threads is more than biojob gives its tools (1024 at most; samtools \
                 crashes when given tens of thousands): give a whole number from 1 to 1024"
                    .to_owned()
            )
        );
        assert_eq!(parse_job_memory("256M"), Ok(256 << 20));
        assert_eq!(
            parse_job_memory("1K"),
            Err(
                "1024 bytes of memory cannot run the tools (samtools sort alone takes 64 MiB \
                 per thread): give at least 256M"
                    .to_owned()
            )
        );
        assert!(
            parse_job_memory("0")
                .unwrap_err()
                .starts_with("0 bytes of memory")
        );
        assert_eq!(parse_chunk_pairs("0"), Ok(0));
        assert_eq!(parse_chunk_pairs("1000"), Ok(1000));
        assert_eq!(
            parse_chunk_pairs("1"),
            Err(
                "chunks of 1 read pairs are refused: each chunk is its own bwa mem, which loads \
                 the whole bwa index first; give 0 (align the pair whole) or at least 1000"
                    .to_owned()
            )
        );
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
