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
/// The scratch root; each attempt works in `<root>/<job id>/<attempt>/` (default: `/scratch`
/// when writable, else the system temporary directory).
pub const BIOJOB_SCRATCH_DIR: &str = "BIOJOB_SCRATCH_DIR";
/// Keep the attempt's scratch directory at the end (`true`/`1`), for debugging.
pub const BIOJOB_KEEP_SCRATCH: &str = "BIOJOB_KEEP_SCRATCH";
/// Whether the scratch filesystem grows (EBS autoscale): `auto` (default; detected from
/// [`BIOJOB_EBS_AUTOSCALE_CONFIG`]), `1` or `0`.
pub const BIOJOB_SCRATCH_AUTOSCALE: &str = "BIOJOB_SCRATCH_AUTOSCALE";
/// The EBS autoscale configuration read to detect autoscaling (default
/// `/etc/ebs-autoscale.json`).
pub const BIOJOB_EBS_AUTOSCALE_CONFIG: &str = "BIOJOB_EBS_AUTOSCALE_CONFIG";
/// On a growing scratch filesystem, pause the tools below this much free space, e.g. `2G`
/// (default 2 GiB); they resume at twice as much.
pub const BIOJOB_SCRATCH_LOW_WATER: &str = "BIOJOB_SCRATCH_LOW_WATER";
/// Longest wait for the scratch filesystem to grow, e.g. `5m` (default 5 minutes).
pub const BIOJOB_SCRATCH_WAIT: &str = "BIOJOB_SCRATCH_WAIT";
/// Where reference indexes go when the reference's directory is read-only
/// (default: `$XDG_CACHE_HOME/biojob`, else `$HOME/.cache/biojob`).
pub const BIOJOB_CACHE_DIR: &str = "BIOJOB_CACHE_DIR";
/// Seconds between SIGTERM and SIGKILL when stopping tools (default 10).
pub const BIOJOB_GRACE_SECONDS: &str = "BIOJOB_GRACE_SECONDS";
/// Longest time one tool may run, e.g. `2h` (default: no limit).
pub const BIOJOB_TOOL_TIMEOUT: &str = "BIOJOB_TOOL_TIMEOUT";
/// Longest time one step may take, e.g. `3h` (default: no limit).
pub const BIOJOB_STEP_TIMEOUT: &str = "BIOJOB_STEP_TIMEOUT";
/// The bwa program (path or name on `PATH`).
pub const BIOJOB_BWA: &str = "BIOJOB_BWA";
/// The samtools program.
pub const BIOJOB_SAMTOOLS: &str = "BIOJOB_SAMTOOLS";
/// The bcftools program.
pub const BIOJOB_BCFTOOLS: &str = "BIOJOB_BCFTOOLS";
/// Benchmark switch: `0` hands the FASTQ files to bwa without biojob's streaming check
/// (default: checked). For `benches/align-validation.sh` only.
pub const BIOJOB_FASTQ_VALIDATION: &str = "BIOJOB_FASTQ_VALIDATION";
/// The sample id (reference design).
pub const SAMPLE_ID: &str = "SAMPLE_ID";
/// The contig to call (reference design's name for it).
pub const CHROMOSOME: &str = "CHROMOSOME";
/// Where outputs go (reference design).
pub const JOB_OUTPUT_PREFIX: &str = "JOB_OUTPUT_PREFIX";
/// Set by AWS Batch in every job; switches logs to JSON and names the scratch directory.
pub const AWS_BATCH_JOB_ID: &str = "AWS_BATCH_JOB_ID";
/// Set by AWS Batch: the attempt number, from 1; names the scratch directory and is recorded in
/// the step metrics.
pub const AWS_BATCH_JOB_ATTEMPT: &str = "AWS_BATCH_JOB_ATTEMPT";
/// The state machine's name (`$$.StateMachine.Name`): with [`JOB_WORKFLOW_EXECUTION_ID`], a
/// run's outputs go to `${JOB_OUTPUT_PREFIX}/${JOB_WORKFLOW_NAME}/${JOB_WORKFLOW_EXECUTION_ID}/`
/// (docs/batch-contract.md).
#[allow(
    dead_code,
    reason = "read by the Batch entrypoints (docs/batch-contract.md)"
)]
pub const JOB_WORKFLOW_NAME: &str = "JOB_WORKFLOW_NAME";
/// The execution's name (`$$.Execution.Name`); see [`JOB_WORKFLOW_NAME`].
#[allow(
    dead_code,
    reason = "read by the Batch entrypoints (docs/batch-contract.md)"
)]
pub const JOB_WORKFLOW_EXECUTION_ID: &str = "JOB_WORKFLOW_EXECUTION_ID";
/// The contigs the gather step concatenates: a JSON array string (what
/// `States.JsonToString($.params.chromosomes)` gives) or a comma-separated list.
#[allow(
    dead_code,
    reason = "read by the Batch entrypoints (docs/batch-contract.md)"
)]
pub const CHROMOSOMES: &str = "CHROMOSOMES";
/// The CloudWatch namespace of the step metrics written as embedded metric format log lines
/// (default `biojob`); the stack sets `biojob/<project>` so its dashboard finds them.
pub const BIOJOB_METRICS_NAMESPACE: &str = "BIOJOB_METRICS_NAMESPACE";
/// Cache base directory (XDG).
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// Home directory.
pub const HOME: &str = "HOME";
