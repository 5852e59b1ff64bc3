//! Every environment variable name biojob reads, in one place: the binary's flags take them
//! (clap's `env =`), and the execution input's `params.environment` takes those of
//! [`INPUT_ENVIRONMENT_KEYS`].
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
/// Resume (`1`/`true`): reuse every step that an earlier manifest under the run's output
/// location records as finished with the same cache key and whose outputs are unchanged.
pub const BIOJOB_RESUME: &str = "BIOJOB_RESUME";
/// Largest calling shard in bases; contigs are cut and grouped into shards of at most this
/// many bases (0: one shard per contig; default 0, or for `biojob run` the balanced size of
/// `balanced_shard_bases`).
pub const BIOJOB_CALL_SHARD_BASES: &str = "BIOJOB_CALL_SHARD_BASES";
/// Read pairs per alignment chunk (default 0: the FASTQ pair is aligned whole).
pub const BIOJOB_ALIGN_CHUNK_PAIRS: &str = "BIOJOB_ALIGN_CHUNK_PAIRS";
/// Alignment chunks run at once (default 1).
pub const BIOJOB_WORKERS: &str = "BIOJOB_WORKERS";
/// The aligner: `bwa` (default) or `bwa-mem2` (docs/aligners.md).
pub const BIOJOB_ALIGNER: &str = "BIOJOB_ALIGNER";
/// Price of one vCPU for one hour, in US dollars (default
/// [`crate::DEFAULT_PRICE_VCPU_HOUR`], Spot C/M/R instances): the cost in the manifests and
/// `report.html`.
pub const BIOJOB_PRICE_VCPU_HOUR: &str = "BIOJOB_PRICE_VCPU_HOUR";
/// Price of one GiB of memory for one hour, in US dollars (default
/// [`crate::DEFAULT_PRICE_GIB_HOUR`]).
pub const BIOJOB_PRICE_GIB_HOUR: &str = "BIOJOB_PRICE_GIB_HOUR";
/// A cohort's duplicate marking: on (default; `samtools fixmate -m` after bwa, `samtools
/// markdup` after the merge of a sample's lanes) or `0`/`false`/`no`/`off`.
pub const BIOJOB_MARK_DUPLICATES: &str = "BIOJOB_MARK_DUPLICATES";
/// A cohort's sample sheet (path, `file://` or `s3://` URI): `biojob run --samplesheet`, and
/// every job of a cohort execution on AWS Batch.
pub const SAMPLESHEET: &str = "SAMPLESHEET";
/// The lane a cohort's align job aligns: its 0-based index among the sample's lanes in the
/// sample sheet.
pub const LANE: &str = "LANE";
/// A cohort lane's chunks, with [`LANE`]: their numbers among the sample's chunks (consecutive;
/// a JSON array string, what `States.JsonToString` gives, or comma-separated). The split job
/// deals the lane's read pairs into them; the align job aligns the lane whole (one chunk) or
/// its chunk [`CHUNK`] (several). Unset: no lane of the sample is split, lane `i` is chunk `i`.
pub const LANE_CHUNKS: &str = "LANE_CHUNKS";
/// The bwa program (path or name on `PATH`).
pub const BIOJOB_BWA: &str = "BIOJOB_BWA";
/// The bwa-mem2 program (path or name on `PATH`).
pub const BIOJOB_BWA_MEM2: &str = "BIOJOB_BWA_MEM2";
/// The samtools program.
pub const BIOJOB_SAMTOOLS: &str = "BIOJOB_SAMTOOLS";
/// The bcftools program.
pub const BIOJOB_BCFTOOLS: &str = "BIOJOB_BCFTOOLS";
/// How often a running task's progress is logged, e.g. `30s` (default 1 minute).
pub const BIOJOB_PROGRESS_INTERVAL: &str = "BIOJOB_PROGRESS_INTERVAL";
/// Benchmark switch: `0` hands the FASTQ files to bwa without biojob's streaming check
/// (default: checked). For `benches/align-validation.sh` only.
pub const BIOJOB_FASTQ_VALIDATION: &str = "BIOJOB_FASTQ_VALIDATION";
/// S3 part size for multipart uploads and ranged downloads, e.g. `16M` (default 16 MiB; grown
/// so an object fits in 10,000 parts).
pub const BIOJOB_S3_PART_SIZE: &str = "BIOJOB_S3_PART_SIZE";
/// S3 parts in flight at once per transfer (default 16).
pub const BIOJOB_S3_CONCURRENCY: &str = "BIOJOB_S3_CONCURRENCY";
/// Checksum stored with uploads: `crc32c` (default) or `sha256`.
pub const BIOJOB_S3_CHECKSUM: &str = "BIOJOB_S3_CHECKSUM";
/// Attempts per S3 request (per part) before a transfer fails (default 10).
pub const BIOJOB_S3_MAX_ATTEMPTS: &str = "BIOJOB_S3_MAX_ATTEMPTS";
/// First retry backoff bound, doubled per attempt with full jitter, e.g. `200ms` (default).
pub const BIOJOB_S3_RETRY_BASE_DELAY: &str = "BIOJOB_S3_RETRY_BASE_DELAY";
/// The longest an S3 request attempt waits for its answer to begin before it is retried, e.g.
/// `2m` (default).
pub const BIOJOB_S3_REQUEST_TIMEOUT: &str = "BIOJOB_S3_REQUEST_TIMEOUT";
/// Server-side encryption for uploads: `AES256` or `aws:kms` (default: the bucket's).
pub const BIOJOB_S3_SSE: &str = "BIOJOB_S3_SSE";
/// KMS key id, alias or ARN for `aws:kms`.
pub const BIOJOB_S3_SSE_KMS_KEY_ID: &str = "BIOJOB_S3_SSE_KMS_KEY_ID";
/// `true`: send `x-amz-request-payer: requester` (requester-pays buckets).
pub const BIOJOB_S3_REQUESTER_PAYS: &str = "BIOJOB_S3_REQUESTER_PAYS";
/// `true`/`false`: path-style addressing (default: on when an endpoint URL is given).
pub const BIOJOB_S3_PATH_STYLE: &str = "BIOJOB_S3_PATH_STYLE";
/// An S3-compatible endpoint (AWS's standard variable; also read by the AWS SDK).
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// The AWS region (AWS's standard variable). Credentials come from the AWS SDK's standard
/// chain, which reads its own variables (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, the ECS task role's
/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, …); biojob never reads or logs them.
pub const AWS_REGION: &str = "AWS_REGION";
/// The sample id (reference design).
pub const SAMPLE_ID: &str = "SAMPLE_ID";
/// The reference file stem under the reference prefix (reference design).
pub const REFERENCE_NAME: &str = "REFERENCE_NAME";
/// Where the reference is, when not under `SOURCE_DATA_PREFIX`.
pub const REFERENCE_PREFIX: &str = "REFERENCE_PREFIX";
/// The reference FASTA's URI, overriding the name-based lookup.
pub const REFERENCE: &str = "REFERENCE";
/// Where the FASTQs (and by default the reference) are (reference design).
pub const SOURCE_DATA_PREFIX: &str = "SOURCE_DATA_PREFIX";
/// Read 1's URI, overriding `${SOURCE_DATA_PREFIX}/${SAMPLE_ID}_R1.fastq.gz`.
pub const FASTQ_1: &str = "FASTQ_1";
/// Read 2's URI, overriding `${SOURCE_DATA_PREFIX}/${SAMPLE_ID}_R2.fastq.gz`.
pub const FASTQ_2: &str = "FASTQ_2";
/// `@RG ID` (default: the sample id).
pub const READ_GROUP_ID: &str = "READ_GROUP_ID";
/// `@RG LB`.
pub const READ_GROUP_LIBRARY: &str = "READ_GROUP_LIBRARY";
/// `@RG PL` (default `ILLUMINA`).
pub const READ_GROUP_PLATFORM: &str = "READ_GROUP_PLATFORM";
/// `@RG PU`.
pub const READ_GROUP_PLATFORM_UNIT: &str = "READ_GROUP_PLATFORM_UNIT";
/// The contig to call (reference design's name for it).
pub const CHROMOSOME: &str = "CHROMOSOME";
/// The calling step's minimum mapping quality (`bcftools mpileup -q`), 0 to 255.
pub const MIN_MAPPING_QUALITY: &str = "MIN_MAPPING_QUALITY";
/// The reference design's AWS CLI location: accepted and ignored (biojob stages data itself).
pub const JOB_AWS_CLI_PATH: &str = "JOB_AWS_CLI_PATH";
/// The contigs called, for gather: a JSON array string or comma-separated.
pub const CHROMOSOMES: &str = "CHROMOSOMES";
/// The call job's shard: its index in the plan of `CHROMOSOMES` cut by
/// `BIOJOB_CALL_SHARD_BASES` (instead of `CHROMOSOME`).
pub const SHARD: &str = "SHARD";
/// The number of alignment chunks of a run on AWS Batch (split, merge).
pub const CHUNKS: &str = "CHUNKS";
/// The align job's chunk: its 0-based index among `CHUNKS`.
pub const CHUNK: &str = "CHUNK";
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
pub const JOB_WORKFLOW_NAME: &str = "JOB_WORKFLOW_NAME";
/// The execution's name (`$$.Execution.Name`); see [`JOB_WORKFLOW_NAME`].
pub const JOB_WORKFLOW_EXECUTION_ID: &str = "JOB_WORKFLOW_EXECUTION_ID";
/// The CloudWatch namespace of the step metrics written as embedded metric format log lines
/// (default `biojob`); the stack sets `biojob/<project>` so its dashboard finds them.
pub const BIOJOB_METRICS_NAMESPACE: &str = "BIOJOB_METRICS_NAMESPACE";
/// Cache base directory (XDG).
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// Home directory.
pub const HOME: &str = "HOME";

/// The keys of the execution input's `params.environment` that biojob reads (others get a
/// warning); `JOB_AWS_CLI_PATH` is accepted and ignored.
pub const INPUT_ENVIRONMENT_KEYS: [&str; 16] = [
    SAMPLE_ID,
    REFERENCE_NAME,
    SOURCE_DATA_PREFIX,
    JOB_OUTPUT_PREFIX,
    REFERENCE_PREFIX,
    FASTQ_1,
    FASTQ_2,
    REFERENCE,
    READ_GROUP_ID,
    READ_GROUP_LIBRARY,
    READ_GROUP_PLATFORM,
    READ_GROUP_PLATFORM_UNIT,
    JOB_AWS_CLI_PATH,
    MIN_MAPPING_QUALITY,
    BIOJOB_RESUME,
    BIOJOB_ALIGNER,
];
