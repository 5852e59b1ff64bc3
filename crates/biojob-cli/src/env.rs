//! Every environment variable the binary reads, in one place.
//!
//! biojob's own settings start with `BIOJOB_`; the others are the reference design's job
//! environment and AWS Batch's. The environment is never logged as a whole.

/// Log format: `auto` (JSON when [`AWS_BATCH_JOB_ID`] is set, else text), `text` or `json`.
pub const BIOJOB_LOG_FORMAT: &str = "BIOJOB_LOG_FORMAT";
/// Log filter in `tracing-subscriber` `EnvFilter` syntax (`info`, `biojob=debug`, …).
pub const BIOJOB_LOG: &str = "BIOJOB_LOG";
/// Threads the job may use (default: the CPUs available to the process).
pub const BIOJOB_THREADS: &str = "BIOJOB_THREADS";
/// Memory the job may use, e.g. `16G` (default: the cgroup limit, else the machine's memory).
pub const BIOJOB_MEMORY: &str = "BIOJOB_MEMORY";
/// Where per-run scratch directories are created (default: the system temporary directory).
pub const BIOJOB_SCRATCH_DIR: &str = "BIOJOB_SCRATCH_DIR";
/// Where reference indexes go when the reference's directory is read-only
/// (default: `$XDG_CACHE_HOME/biojob`, else `$HOME/.cache/biojob`).
pub const BIOJOB_CACHE_DIR: &str = "BIOJOB_CACHE_DIR";
/// Seconds between SIGTERM and SIGKILL when stopping tools (default 10).
pub const BIOJOB_GRACE_SECONDS: &str = "BIOJOB_GRACE_SECONDS";
/// Longest time one tool may run, e.g. `2h` (default: no limit).
pub const BIOJOB_TOOL_TIMEOUT: &str = "BIOJOB_TOOL_TIMEOUT";
/// The bwa program (path or name on `PATH`).
pub const BIOJOB_BWA: &str = "BIOJOB_BWA";
/// The samtools program.
pub const BIOJOB_SAMTOOLS: &str = "BIOJOB_SAMTOOLS";
/// The bcftools program.
pub const BIOJOB_BCFTOOLS: &str = "BIOJOB_BCFTOOLS";
/// Benchmark switch: `0` hands the FASTQ files to bwa without biojob's streaming check
/// (default: checked). Read by the align step in biojob-pipeline; listed here so that every
/// variable the binary reads is in this module. For `benches/align-validation.sh` only.
#[allow(dead_code, reason = "read in biojob-pipeline, listed for completeness")]
pub const BIOJOB_FASTQ_VALIDATION: &str = biojob_pipeline::FASTQ_VALIDATION_ENV;
/// The sample id (reference design).
pub const SAMPLE_ID: &str = "SAMPLE_ID";
/// The contig to call (reference design's name for it).
pub const CHROMOSOME: &str = "CHROMOSOME";
/// Where outputs go (reference design).
pub const JOB_OUTPUT_PREFIX: &str = "JOB_OUTPUT_PREFIX";
/// Set by AWS Batch in every job; switches logs to JSON.
pub const AWS_BATCH_JOB_ID: &str = "AWS_BATCH_JOB_ID";
/// Cache base directory (XDG).
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// Home directory.
pub const HOME: &str = "HOME";
