//! The workflow input: the reference design's Step Functions execution input.
//!
//! ```json
//! {"params": {"queue": "<job queue>",
//!             "environment": {"REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878",
//!                             "SOURCE_DATA_PREFIX": "/data/samples",
//!                             "JOB_OUTPUT_PREFIX": "/data/results",
//!                             "JOB_AWS_CLI_PATH": "/opt/miniconda/bin"},
//!             "chromosomes": ["chr20", "chr22", "chrM"]}}
//! ```

use std::collections::BTreeMap;
use std::num::{NonZeroU64, NonZeroUsize};

use biojob_core::{ReadGroup, SampleId};
use biojob_storage::{ObjectUri, Stores};
use biojob_tools::Aligner;
use serde::Deserialize;
use tracing::warn;

use crate::Error;

use crate::env;

/// Whether `a` and `b` name the same file: local paths compared once resolved (symbolic links,
/// `..`) when they exist, else after removing `.` and repeated `/`; S3 URIs compared as given.
pub(crate) fn same_object(a: &ObjectUri, b: &ObjectUri) -> bool {
    match (a, b) {
        (ObjectUri::Local(a), ObjectUri::Local(b)) => {
            let normalised = |path: &camino::Utf8Path| {
                path.canonicalize_utf8()
                    .unwrap_or_else(|_| path.components().collect())
            };
            normalised(a) == normalised(b)
        }
        _ => a == b,
    }
}

/// Reference file extensions tried, in order, after `${REFERENCE_NAME}`.
pub const REFERENCE_EXTENSIONS: [&str; 3] = [".fa", ".fasta", ".fa.gz"];

#[derive(Debug, Deserialize)]
struct ExecutionInput {
    params: Params,
    /// Keys biojob does not read: each gets a warning.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "the Batch queue; accepted and ignored when running locally"
    )]
    queue: Option<serde_json::Value>,
    environment: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    chromosomes: Option<Vec<String>>,
    /// A cohort's sample sheet (path or URI).
    #[serde(default)]
    samplesheet: Option<String>,
    /// One sample's alignment chunks as the state machine maps over them: `[0, 1, …, N-1]`.
    #[serde(default)]
    chunks: Option<serde_json::Value>,
    /// Read pairs per block dealt to the chunks.
    #[serde(default, rename = "chunkPairs")]
    chunk_pairs: Option<serde_json::Value>,
    /// The calling shards as the state machine maps over them: `[0, 1, …, M-1]`.
    #[serde(default)]
    shards: Option<serde_json::Value>,
    /// The largest calling shard, in bases.
    #[serde(default, rename = "shardBases")]
    shard_bases: Option<serde_json::Value>,
    /// A cohort's samples with their lanes' chunks (biojob plan-cohort).
    #[serde(default)]
    samples: Option<serde_json::Value>,
    /// Keys biojob does not read: each gets a warning.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// The keys of `params` an execution input holds (`templates/asl/biojob.asl.json`): those
/// `biojob run` reads and those only the state machine reads (the Batch queue, the cohort's
/// samples). Any other key gets a warning.
const PARAMS_KEYS: [&str; 9] = [
    "queue",
    "environment",
    "chromosomes",
    "samplesheet",
    "samples",
    "shards",
    "shardBases",
    "chunks",
    "chunkPairs",
];

/// Refuses a JSON text in which an object names a key twice (RFC 8259 section 4: the names
/// "SHOULD be unique", and parsers differ on which value wins; serde_json keeps the last
/// silently). The error names the key by its path (`params.environment.SAMPLE_ID`).
fn refuse_duplicate_keys(text: &str) -> Result<(), serde_json::Error> {
    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

    struct Unique<'p>(&'p str);

    impl<'de> DeserializeSeed<'de> for Unique<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Unique<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0usize;
            while seq
                .next_element_seed(Unique(&format!("{}[{index}]", self.0)))?
                .is_some()
            {
                index += 1;
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::BTreeSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.0.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.0)
                };
                if !seen.insert(key) {
                    return Err(A::Error::custom(format!("{path} is given twice")));
                }
                map.next_value_seed(Unique(&path))?;
            }
            Ok(())
        }
    }

    let mut deserializer = serde_json::Deserializer::from_str(text);
    Unique("").deserialize(&mut deserializer)
}

/// Warns about each key of `other` (under `prefix`), which biojob does not read, naming the
/// key biojob reads that it looks like a misspelling of.
fn warn_unknown_keys(prefix: &str, other: &BTreeMap<String, serde_json::Value>, known: &[&str]) {
    for key in other.keys() {
        let folded = key.to_ascii_lowercase();
        let like = known.iter().find(|known| {
            let known = known.to_ascii_lowercase();
            known == folded
                || known.trim_end_matches('s') == folded.trim_end_matches('s')
                || known.replace('_', "") == folded.replace(['_', '-'], "")
        });
        let key = format!("{prefix}{key}");
        match like {
            Some(like) => warn!(
                key,
                "ignoring an input key biojob does not use (did you mean {prefix}{like}?)"
            ),
            None => warn!(key, "ignoring an input key biojob does not use"),
        }
    }
}

/// The workflow input with every name resolved to a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowInput {
    /// The sample.
    pub sample: SampleId,
    /// The read group.
    pub read_group: ReadGroup,
    /// Read 1.
    pub fastq_1: ObjectUri,
    /// Read 2.
    pub fastq_2: ObjectUri,
    /// Candidate reference URIs, in the order tried; see [`WorkflowInput::resolve_reference`].
    pub reference_candidates: Vec<ObjectUri>,
    /// The contigs to call, as given (`None`: every contig of the reference).
    pub contigs: Option<Vec<String>>,
    /// The output prefix (`JOB_OUTPUT_PREFIX`).
    pub output_prefix: ObjectUri,
    /// The calling step's minimum mapping quality (`MIN_MAPPING_QUALITY`), when set.
    pub min_mapping_quality: Option<u32>,
    /// `BIOJOB_RESUME` of `params.environment`, when set and not empty.
    pub resume: Option<bool>,
    /// `BIOJOB_ALIGNER` of `params.environment`, when set and not empty.
    pub aligner: Option<Aligner>,
    /// The alignment chunks and calling shards the input asks for.
    pub scatter: InputScatter,
}

/// How the execution input scatters one sample's work, as the state machine runs it
/// (`templates/asl/biojob.asl.json`): `params.chunks` (`[0, 1, …, N-1]`) with
/// `params.chunkPairs`, the pair split into N chunks of blocks of that many read pairs dealt
/// in turn; `params.shards` (`[0, 1, …, M-1]`, from `biojob plan-shards`) with
/// `params.shardBases`, calling in shards of at most that many bases. A local run of the
/// input does the same (docs/scaling.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputScatter {
    /// N, when `params.chunks` lists chunks (then `chunk_pairs` is set).
    pub chunks: Option<NonZeroUsize>,
    /// `params.chunkPairs` when not 0: read pairs per block, at least [`MIN_CHUNK_PAIRS`]
    /// (a cohort's split lanes, listed in `params.samples`, use it too).
    pub chunk_pairs: Option<NonZeroU64>,
    /// M and the largest shard in bases, when `params.shards` lists shards.
    pub shards: Option<(NonZeroUsize, NonZeroU64)>,
}

/// One sample of a cohort's `params.samples` (as `biojob plan-cohort` prints it): its name and
/// how many chunks each of its lanes is, in sheet order (1: the lane is aligned whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSample {
    /// The sample, as the sheet names it.
    pub sample: String,
    /// Each lane's chunks, lane 0 first.
    pub lane_chunks: Vec<NonZeroUsize>,
}

/// Reads `params.samples`: `[{"sample": S, "chunks": [0, …, N-1], "lanes": [{"lane": 0,
/// "chunks": [0]}, {"lane": 1, "chunks": [1, 2]}, …]}, …]`, the lanes numbered 0, 1, … and
/// their chunks numbered on across the sample, which has them all.
///
/// # Errors
/// [`Error::Usage`] naming the first item that is not so.
fn planned_samples(value: Option<&serde_json::Value>) -> Result<Vec<PlannedSample>, Error> {
    const REMEDY: &str =
        "make params.samples again with biojob plan-cohort from the sheet the execution reads";
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let bad = |path: String, what: &str, found: &serde_json::Value| {
        usage(
            format!("params.{path} must be {what}, found {found}"),
            REMEDY,
        )
    };
    let items = value
        .as_array()
        .ok_or_else(|| bad("samples".into(), "a list", value))?;
    let mut samples = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let at = |key: &str| format!("samples[{index}].{key}");
        let field = |key: &str| item.get(key).unwrap_or(&serde_json::Value::Null);
        let sample = field("sample")
            .as_str()
            .ok_or_else(|| bad(at("sample"), "a sample's name", field("sample")))?;
        let lanes = field("lanes")
            .as_array()
            .filter(|lanes| !lanes.is_empty())
            .ok_or_else(|| bad(at("lanes"), "a list of the sample's lanes", field("lanes")))?;
        let mut next = 0u64;
        let mut lane_chunks = Vec::with_capacity(lanes.len());
        for (position, lane) in lanes.iter().enumerate() {
            let at = |key: &str| format!("samples[{index}].lanes[{position}].{key}");
            let number = lane.get("lane").unwrap_or(&serde_json::Value::Null);
            if number.as_u64() != Some(position as u64) {
                return Err(bad(at("lane"), &position.to_string(), number));
            }
            let chunks = lane.get("chunks").unwrap_or(&serde_json::Value::Null);
            let list = chunks
                .as_array()
                .filter(|list| !list.is_empty() && first_not_numbered(list, next).is_none());
            let Some(count) = list.and_then(|list| NonZeroUsize::new(list.len())) else {
                return Err(bad(
                    at("chunks"),
                    &format!("the lane's chunks, numbered from {next}"),
                    chunks,
                ));
            };
            next += count.get() as u64;
            lane_chunks.push(count);
        }
        let all = field("chunks");
        let whole = all
            .as_array()
            .is_some_and(|list| list.len() as u64 == next && first_not_numbered(list, 0).is_none());
        if !whole {
            return Err(bad(
                at("chunks"),
                &format!("the numbers 0 to {} (its lanes' chunks)", next - 1),
                all,
            ));
        }
        if next > biojob_core::MAX_CHUNKS as u64 {
            return Err(usage(
                format!(
                    "params.samples[{index}] (sample {sample}) has {next} chunks: at most {} (chunk numbers have four digits)",
                    biojob_core::MAX_CHUNKS
                ),
                "make params.samples again with biojob plan-cohort and a larger --chunk-bytes",
            ));
        }
        samples.push(PlannedSample {
            sample: sample.to_owned(),
            lane_chunks,
        });
    }
    Ok(samples)
}

/// The refusal of a run setting (`--flag`, or its variable `variable`) that gives `given`
/// where the execution input's `params.key` gives `value`: the run follows the input as the
/// state machine does (`deciding`: the input's keys that decide and what they do, for the
/// hint).
pub fn contradicts_input(
    flag: &str,
    variable: &str,
    given: u64,
    key: &str,
    value: u64,
    deciding: &str,
) -> Error {
    usage(
        format!("--{flag} ({variable}) is {given}, and the input's params.{key} is {value}"),
        format!(
            "leave --{flag} ({variable}) out: the input's {deciding} as the state machine does"
        ),
    )
}

/// The smallest alignment chunk (block) in read pairs: each chunk is its own `bwa mem`, which
/// loads the whole index (5 GB for a human reference) before it aligns a read.
pub const MIN_CHUNK_PAIRS: u64 = 1000;

/// Checks read pairs per chunk (or block): 0 (no chunks) or at least [`MIN_CHUNK_PAIRS`].
///
/// # Errors
/// Why `pairs` is refused, as one sentence with its remedy.
pub fn check_chunk_pairs(pairs: u64) -> Result<(), String> {
    if pairs != 0 && pairs < MIN_CHUNK_PAIRS {
        return Err(format!(
            "chunks of {pairs} read pairs are refused: each chunk is its own bwa mem, which \
             loads the whole bwa index first; give 0 (align the pair whole) or at least \
             {MIN_CHUNK_PAIRS}"
        ));
    }
    Ok(())
}

/// The first item of `list` (its position and value) that is not the number `start +
/// position`, or `None` when all are.
fn first_not_numbered(
    list: &[serde_json::Value],
    start: u64,
) -> Option<(usize, &serde_json::Value)> {
    list.iter()
        .enumerate()
        .find(|(position, item)| item.as_u64() != Some(start + *position as u64))
}

/// `params.<key>` as a list of numbers that must be `[0, 1, …, N-1]` (the state machine maps
/// over it and each job takes its item as its number): N, 0 when absent or empty.
fn numbered_list(
    key: &str,
    value: Option<&serde_json::Value>,
    remedy: &str,
) -> Result<usize, Error> {
    let Some(value) = value else {
        return Ok(0);
    };
    let items = value.as_array().ok_or_else(|| {
        usage(
            format!("params.{key} must be a list of numbers, found {value}"),
            remedy,
        )
    })?;
    if let Some((index, item)) = first_not_numbered(items, 0) {
        return Err(usage(
            format!(
                "params.{key} must be the numbers 0 to {} in order (item {index} is {item}): each job takes its item as its number",
                items.len() - 1
            ),
            remedy,
        ));
    }
    Ok(items.len())
}

/// `params.<key>` as a whole number; absent and `0` (the state machine's default) are `None`.
fn whole_number(
    key: &str,
    value: Option<&serde_json::Value>,
    remedy: &str,
) -> Result<Option<NonZeroU64>, Error> {
    match value {
        None => Ok(None),
        Some(value) => value.as_u64().map(NonZeroU64::new).ok_or_else(|| {
            usage(
                format!(
                    "params.{key} must be a whole number from 0 to {}, found {value}",
                    u64::MAX
                ),
                remedy,
            )
        }),
    }
}

impl InputScatter {
    /// Reads and checks `params.chunks`, `params.chunkPairs`, `params.shards` and
    /// `params.shardBases` as the state machine uses them: chunks need chunkPairs (at least
    /// [`MIN_CHUNK_PAIRS`]), shards need shardBases; a size without its list is what the state
    /// machine ignores (a warning says so for shardBases; chunkPairs is also a cohort's).
    fn from_params(params: &Params) -> Result<InputScatter, Error> {
        const CHUNKS: &str = "give params.chunks as [0, 1, …, N-1] and params.chunkPairs, the read pairs per block (docs/scaling.md)";
        const CHUNK_PAIRS: &str = "give params.chunkPairs, the read pairs per block of a split, as biojob plan-cohort or docs/scaling.md says";
        const SHARDS: &str =
            "give params.shards and params.shardBases as biojob plan-shards prints them";
        let chunks = numbered_list("chunks", params.chunks.as_ref(), CHUNKS)?;
        let chunk_pairs = whole_number("chunkPairs", params.chunk_pairs.as_ref(), CHUNK_PAIRS)?;
        if let Some(pairs) = chunk_pairs {
            check_chunk_pairs(pairs.get())
                .map_err(|reason| usage(format!("params.chunkPairs: {reason}"), CHUNK_PAIRS))?;
        }
        if chunks > biojob_core::MAX_CHUNKS {
            return Err(usage(
                format!(
                    "params.chunks lists {chunks} chunks: at most {} (chunk numbers have four digits)",
                    biojob_core::MAX_CHUNKS
                ),
                "give fewer chunks, with a larger params.chunkPairs",
            ));
        }
        let chunks = NonZeroUsize::new(chunks);
        if let (Some(chunks), None) = (chunks, chunk_pairs) {
            return Err(usage(
                format!(
                    "params.chunks lists {chunks} chunks, and params.chunkPairs is missing or 0"
                ),
                CHUNKS,
            ));
        }
        let shards = numbered_list("shards", params.shards.as_ref(), SHARDS)?;
        let shard_bases = whole_number("shardBases", params.shard_bases.as_ref(), SHARDS)?;
        let shards = match (NonZeroUsize::new(shards), shard_bases) {
            (None, None) => None,
            (None, Some(bases)) => {
                warn!(
                    shard_bases = bases.get(),
                    "params.shardBases without params.shards: calling is per contig, as the state machine does"
                );
                None
            }
            (Some(shards), None) => {
                return Err(usage(
                    format!(
                        "params.shards lists {shards} shards, and params.shardBases is missing or 0"
                    ),
                    SHARDS,
                ));
            }
            (Some(shards), Some(bases)) => Some((shards, bases)),
        };
        Ok(InputScatter {
            chunks,
            chunk_pairs,
            shards,
        })
    }

    /// One sample's chunks: N (`params.chunks`) and the read pairs per block
    /// (`params.chunkPairs`), when the input lists chunks.
    pub fn sample_chunks(&self) -> Option<(NonZeroUsize, NonZeroU64)> {
        self.chunks.zip(self.chunk_pairs)
    }
}

fn usage(message: impl Into<String>, remedy: impl Into<String>) -> Error {
    Error::Usage {
        message: message.into(),
        remedy: Some(remedy.into()),
    }
}

/// Where a [`JobEnvironment`]'s values came from: it decides how errors name a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Json,
    Process,
}

/// The reference design's job environment (`SAMPLE_ID`, `REFERENCE_NAME`,
/// `SOURCE_DATA_PREFIX`, …): the `params.environment` of the workflow input, or a Batch job's
/// process environment. Names resolve the same way for both: see [`WorkflowInput::from_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnvironment {
    values: BTreeMap<String, String>,
    origin: Origin,
}

impl JobEnvironment {
    /// A job's environment from `(key, value)` pairs (the process environment, flags laid over
    /// it); empty values count as unset. Errors name keys as environment variables.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> JobEnvironment {
        JobEnvironment {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            origin: Origin::Process,
        }
    }

    /// The value of `key`, when set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn name(&self, key: &str) -> String {
        match self.origin {
            Origin::Json => format!("params.environment.{key}"),
            Origin::Process => key.to_owned(),
        }
    }

    fn where_to_fix(&self) -> &'static str {
        match self.origin {
            Origin::Json => "in the input JSON",
            Origin::Process => "in the job's environment (or with the matching flag)",
        }
    }

    fn require(&self, key: &str) -> Result<String, Error> {
        self.get(key)
            .map(str::to_owned)
            .ok_or_else(|| match self.origin {
                // Present but empty: a state machine passes "" for an unset key, an input
                // file does not.
                Origin::Json if self.values.contains_key(key) => usage(
                    format!("params.environment.{key} is empty"),
                    format!("give a value for \"{key}\" in params.environment in the input JSON"),
                ),
                Origin::Json => usage(
                    format!("params.environment.{key} is missing"),
                    format!("add \"{key}\" to params.environment in the input JSON"),
                ),
                Origin::Process => usage(
                    format!("{key} is not set"),
                    format!("set {key} in the job's environment (or with the matching flag)"),
                ),
            })
    }

    /// `text`, the value of `key`, as a URI.
    ///
    /// # Errors
    /// [`Error::Input`] for an S3 key with `.`, `..` or empty segments
    /// ([`biojob_storage::StorageError::UnsafeKey`]: the input class, as once it is staged);
    /// [`Error::Usage`] for any other malformed URI.
    fn uri(&self, key: &str, text: &str) -> Result<ObjectUri, Error> {
        ObjectUri::parse(text).map_err(|error| match error {
            biojob_storage::StorageError::UnsafeKey { .. } => Error::Input {
                message: format!("{}: {error}", self.name(key)),
                remedy: Some("write the key without '.', '..' or empty segments".into()),
            },
            other => usage(
                format!("{}: {other}", self.name(key)),
                "use s3://bucket/key, file:///path or a path",
            ),
        })
    }

    /// `SAMPLE_ID`.
    ///
    /// # Errors
    /// [`Error::Usage`] when it is missing or not a valid sample id.
    pub fn sample(&self) -> Result<SampleId, Error> {
        SampleId::new(self.require(env::SAMPLE_ID)?).map_err(|error| {
            usage(
                error.to_string(),
                format!("fix SAMPLE_ID {}", self.where_to_fix()),
            )
        })
    }

    /// `MIN_MAPPING_QUALITY`: the calling step's minimum mapping quality, when set.
    ///
    /// # Errors
    /// [`Error::Usage`] when it is not a whole number from 0 to 255 (SAM's MAPQ range, where
    /// 255 means unavailable).
    pub fn min_mapping_quality(&self) -> Result<Option<u32>, Error> {
        let Some(text) = self.get(env::MIN_MAPPING_QUALITY) else {
            return Ok(None);
        };
        match text.trim().parse::<u32>() {
            Ok(quality) if quality <= 255 => Ok(Some(quality)),
            _ => Err(usage(
                format!(
                    "{} must be a whole number from 0 to 255, found {text:?}",
                    self.name(env::MIN_MAPPING_QUALITY)
                ),
                format!("fix {} {}", env::MIN_MAPPING_QUALITY, self.where_to_fix()),
            )),
        }
    }

    /// The read group: `READ_GROUP_ID` (default: the sample), `READ_GROUP_LIBRARY`,
    /// `READ_GROUP_PLATFORM` (default `ILLUMINA`), `READ_GROUP_PLATFORM_UNIT`.
    ///
    /// # Errors
    /// [`Error::Usage`] for a value that cannot go into an `@RG` line.
    pub fn read_group(&self, sample: &SampleId) -> Result<ReadGroup, Error> {
        let invalid = |error: biojob_core::ReadGroupError| {
            usage(
                error.to_string(),
                format!("fix the READ_GROUP_* values {}", self.where_to_fix()),
            )
        };
        let mut read_group = ReadGroup::for_sample(sample);
        if let Some(id) = self.get(env::READ_GROUP_ID) {
            read_group = read_group.with_id(id.to_owned()).map_err(invalid)?;
        }
        if let Some(library) = self.get(env::READ_GROUP_LIBRARY) {
            read_group = read_group
                .with_library(library.to_owned())
                .map_err(invalid)?;
        }
        if let Some(platform) = self.get(env::READ_GROUP_PLATFORM) {
            read_group = read_group
                .with_platform(platform.to_owned())
                .map_err(invalid)?;
        }
        if let Some(unit) = self.get(env::READ_GROUP_PLATFORM_UNIT) {
            read_group = read_group
                .with_platform_unit(unit.to_owned())
                .map_err(invalid)?;
        }
        Ok(read_group)
    }

    /// With a sample sheet, which gives each lane's FASTQ pair and read group: refuses
    /// `FASTQ_1`, `FASTQ_2`, `READ_GROUP_ID`, `READ_GROUP_LIBRARY` and
    /// `READ_GROUP_PLATFORM_UNIT`.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the first of them that is set.
    pub fn refuse_lane_keys(&self) -> Result<(), Error> {
        for key in [
            env::FASTQ_1,
            env::FASTQ_2,
            env::READ_GROUP_ID,
            env::READ_GROUP_LIBRARY,
            env::READ_GROUP_PLATFORM_UNIT,
        ] {
            if self.get(key).is_some() {
                return Err(sheet_key(self, key));
            }
        }
        Ok(())
    }

    /// `@RG PL` of a cohort's lanes: `READ_GROUP_PLATFORM`, default `ILLUMINA`.
    ///
    /// # Errors
    /// [`Error::Usage`] for a value that cannot go into an `@RG` line.
    pub fn platform(&self) -> Result<String, Error> {
        let sample = SampleId::new(crate::COHORT_STEM).map_err(|e| usage(e.to_string(), ""))?;
        Ok(self
            .read_group(&sample)?
            .platform
            .unwrap_or_else(|| "ILLUMINA".to_owned()))
    }

    fn source_prefix(&self) -> Result<Option<ObjectUri>, Error> {
        self.get(env::SOURCE_DATA_PREFIX)
            .map(|text| self.uri(env::SOURCE_DATA_PREFIX, text))
            .transpose()
    }

    /// `BIOJOB_RESUME` as a switch: `None` when unset or empty.
    ///
    /// # Errors
    /// [`Error::Usage`] when the value is not `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`.
    pub fn resume(&self) -> Result<Option<bool>, Error> {
        let Some(text) = self.get(env::BIOJOB_RESUME) else {
            return Ok(None);
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(usage(
                format!(
                    "{} must be 1/true/yes/on or 0/false/no/off, found {text:?}",
                    self.name(env::BIOJOB_RESUME)
                ),
                "give \"1\" to resume, or leave it out",
            )),
        }
    }

    /// `BIOJOB_ALIGNER`: `None` when unset or empty.
    ///
    /// # Errors
    /// [`Error::Usage`] when it is neither `bwa` nor `bwa-mem2`.
    pub fn aligner(&self) -> Result<Option<Aligner>, Error> {
        self.get(env::BIOJOB_ALIGNER)
            .map(|text| {
                text.parse::<Aligner>().map_err(|error| {
                    usage(
                        format!("{}: {error}", self.name(env::BIOJOB_ALIGNER)),
                        "give bwa or bwa-mem2, or leave it out for bwa",
                    )
                })
            })
            .transpose()
    }

    /// The FASTQ pair: `FASTQ_1`/`FASTQ_2`, else `${SOURCE_DATA_PREFIX}/${SAMPLE_ID}_R1.fastq.gz`
    /// and `_R2.fastq.gz`.
    ///
    /// # Errors
    /// [`Error::Usage`] when neither the explicit URI nor `SOURCE_DATA_PREFIX` is given;
    /// [`Error::Input`] when both name the same file (the same S3 object, or local paths that
    /// resolve to the same file, or are the same after removing `.` and repeated `/`).
    pub fn fastqs(&self, sample: &SampleId) -> Result<(ObjectUri, ObjectUri), Error> {
        let source_prefix = self.source_prefix()?;
        let from_source = |key: &str, name: String| -> Result<ObjectUri, Error> {
            match (self.get(key), &source_prefix) {
                (Some(text), _) => self.uri(key, text),
                (None, Some(prefix)) => Ok(prefix.join(&name)),
                (None, None) => Err(usage(
                    format!(
                        "{} is missing (needed for {key})",
                        self.name(env::SOURCE_DATA_PREFIX)
                    ),
                    format!("add SOURCE_DATA_PREFIX, or give {key} explicitly"),
                )),
            }
        };
        let fastq_1 = from_source(env::FASTQ_1, format!("{sample}_R1.fastq.gz"))?;
        let fastq_2 = from_source(env::FASTQ_2, format!("{sample}_R2.fastq.gz"))?;
        if same_object(&fastq_1, &fastq_2) {
            return Err(Error::Input {
                message: format!("FASTQ_1 and FASTQ_2 name the same file: {fastq_1} and {fastq_2}"),
                remedy: Some("give read 1 of the pair as FASTQ_1 and read 2 as FASTQ_2".into()),
            });
        }
        Ok((fastq_1, fastq_2))
    }

    /// Candidate reference URIs in the order tried: `REFERENCE`, else
    /// `${REFERENCE_PREFIX}/${REFERENCE_NAME}` + each of [`REFERENCE_EXTENSIONS`]
    /// (`REFERENCE_PREFIX` defaults to `SOURCE_DATA_PREFIX`; a name that already ends with an
    /// extension is tried as is first).
    ///
    /// # Errors
    /// [`Error::Usage`] when neither `REFERENCE` nor `REFERENCE_NAME` and a prefix are given.
    pub fn reference_candidates(&self) -> Result<Vec<ObjectUri>, Error> {
        if let Some(text) = self.get(env::REFERENCE) {
            return Ok(vec![self.uri(env::REFERENCE, text)?]);
        }
        let name = self.require(env::REFERENCE_NAME)?;
        let prefix = match self.get(env::REFERENCE_PREFIX) {
            Some(text) => self.uri(env::REFERENCE_PREFIX, text)?,
            None => self.source_prefix()?.ok_or_else(|| {
                usage(
                    format!(
                        "{} is missing (needed for the reference)",
                        self.name(env::SOURCE_DATA_PREFIX)
                    ),
                    "add SOURCE_DATA_PREFIX or REFERENCE_PREFIX, or give REFERENCE explicitly",
                )
            })?,
        };
        let mut names = Vec::new();
        if REFERENCE_EXTENSIONS.iter().any(|ext| name.ends_with(ext)) {
            names.push(name.clone());
        }
        names.extend(
            REFERENCE_EXTENSIONS
                .iter()
                .map(|ext| format!("{name}{ext}")),
        );
        Ok(names.into_iter().map(|n| prefix.join(&n)).collect())
    }

    /// `JOB_OUTPUT_PREFIX`.
    ///
    /// # Errors
    /// [`Error::Usage`] when it is missing or not a URI.
    pub fn output_prefix(&self) -> Result<ObjectUri, Error> {
        let text = self.require(env::JOB_OUTPUT_PREFIX)?;
        self.uri(env::JOB_OUTPUT_PREFIX, &text)
    }
}

/// The execution input JSON read into its parts, before they are resolved for one sample or
/// for a cohort.
struct ParsedInput {
    environment: JobEnvironment,
    scatter: InputScatter,
    samples: Vec<PlannedSample>,
    contigs: Option<Vec<String>>,
    samplesheet: Option<String>,
}

impl ParsedInput {
    /// Parses the JSON: a leading UTF-8 byte order mark is skipped, a key given twice in any
    /// object is refused, unknown keys of the input and of `params` are warned about.
    fn from_json(text: &str) -> Result<ParsedInput, Error> {
        // RFC 8259 section 8.1: a parser may ignore a byte order mark, which editors on
        // Windows write (serde_json does not).
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let invalid = |error: serde_json::Error| {
            usage(
                format!("the workflow input is not valid: {error}"),
                "give the Step Functions execution input: {\"params\": {\"environment\": {...}, \"chromosomes\": [...]}}",
            )
        };
        refuse_duplicate_keys(text).map_err(invalid)?;
        let input: ExecutionInput = serde_json::from_str(text).map_err(invalid)?;
        warn_unknown_keys("", &input.other, &["params"]);
        warn_unknown_keys("params.", &input.params.other, &PARAMS_KEYS);
        let scatter = InputScatter::from_params(&input.params)?;
        let samples = planned_samples(input.params.samples.as_ref())?;
        let environment = input.params.environment;
        let mut values = BTreeMap::new();
        for (key, value) in &environment {
            if !env::INPUT_ENVIRONMENT_KEYS.contains(&key.as_str()) {
                warn!(key, "ignoring an environment key biojob does not use");
                continue;
            }
            let serde_json::Value::String(text) = value else {
                return Err(usage(
                    format!("params.environment.{key} must be a string, found {value}"),
                    "quote the value",
                ));
            };
            values.insert(key.as_str(), text.clone());
        }
        let environment = JobEnvironment {
            values: values
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
            origin: Origin::Json,
        };
        let contigs = match input.params.chromosomes {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(usage(
                    "params.chromosomes is empty",
                    "list the contigs to call, or leave the key out to call every contig",
                ));
            }
            Some(list) => {
                let mut seen = std::collections::BTreeSet::new();
                if let Some(duplicate) = list.iter().find(|c| !seen.insert(c.as_str())) {
                    return Err(usage(
                        format!("params.chromosomes lists {duplicate:?} twice"),
                        "list each contig once",
                    ));
                }
                Some(list)
            }
        };

        Ok(ParsedInput {
            environment,
            scatter,
            samples,
            contigs,
            samplesheet: input.params.samplesheet.filter(|text| !text.is_empty()),
        })
    }
}

/// A cohort's run input: the execution input with a sample sheet (`params.samplesheet`, or
/// `--samplesheet`) in place of `SAMPLE_ID` and the FASTQ pair (docs/cohorts.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortInput {
    /// The sample sheet.
    pub samplesheet: ObjectUri,
    /// Candidate reference URIs, in the order tried.
    pub reference_candidates: Vec<ObjectUri>,
    /// The contigs to call, as given (`None`: every contig of the reference).
    pub contigs: Option<Vec<String>>,
    /// The output prefix (`JOB_OUTPUT_PREFIX`): the run writes to `<prefix>/<run id>/`.
    pub output_prefix: ObjectUri,
    /// The calling step's minimum mapping quality (`MIN_MAPPING_QUALITY`), when set.
    pub min_mapping_quality: Option<u32>,
    /// `BIOJOB_RESUME` of `params.environment`, when set and not empty.
    pub resume: Option<bool>,
    /// `@RG PL` of every lane (`READ_GROUP_PLATFORM`, default `ILLUMINA`).
    pub platform: String,
    /// Flag duplicates (`BIOJOB_MARK_DUPLICATES`, on unless turned off).
    pub mark_duplicates: bool,
    /// `BIOJOB_ALIGNER` of `params.environment`, when set and not empty.
    pub aligner: Option<Aligner>,
    /// The calling shards the input asks for, and `params.chunkPairs`, the block size of
    /// the lanes `samples` lists in several chunks.
    pub scatter: InputScatter,
    /// `params.samples`: each sample's lanes' chunks as the state machine aligns them (empty
    /// when not given: the run's settings decide).
    pub samples: Vec<PlannedSample>,
}

impl CohortInput {
    /// The run `run_id`'s output directory: `<output prefix>/<run id>/`.
    pub fn output_dir(&self, run_id: &str) -> ObjectUri {
        self.output_prefix.join(run_id)
    }
}

/// What `biojob run` runs: one sample from the job environment, or a cohort from a sample
/// sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunInput {
    /// One sample (`SAMPLE_ID`, its FASTQ pair).
    Sample(WorkflowInput),
    /// A cohort (`params.samplesheet`).
    Cohort(CohortInput),
}

impl RunInput {
    /// Parses the execution input JSON; `samplesheet` (the `--samplesheet` flag) wins over
    /// `params.samplesheet`. With a sheet, the environment keys of one sample (`SAMPLE_ID`,
    /// `FASTQ_1`, `FASTQ_2`, `READ_GROUP_ID`, `READ_GROUP_LIBRARY`,
    /// `READ_GROUP_PLATFORM_UNIT`) are refused: the sheet names the samples, their FASTQs and
    /// their read groups. `mark_duplicates` is the cohort's setting.
    ///
    /// # Errors
    /// As [`WorkflowInput::from_json`]; [`Error::Usage`] for one sample's key beside a sheet,
    /// or a sheet that is not a path or URI.
    pub fn from_json(
        text: &str,
        samplesheet: Option<&str>,
        mark_duplicates: bool,
    ) -> Result<RunInput, Error> {
        let parsed = ParsedInput::from_json(text)?;
        let Some(sheet) = samplesheet
            .map(str::to_owned)
            .or_else(|| parsed.samplesheet.clone())
        else {
            if !parsed.samples.is_empty() {
                // As the state machine refuses it (its MissingSampleSheet state).
                return Err(usage(
                    "params.samples is given without params.samplesheet, the sheet every job of a cohort reads",
                    "give params.samplesheet (or --samplesheet) beside it: biojob plan-cohort --samplesheet <the sheet> prints both",
                ));
            }
            return WorkflowInput::from_parsed(parsed).map(RunInput::Sample);
        };
        let environment = &parsed.environment;
        if environment.get(env::SAMPLE_ID).is_some() {
            return Err(sheet_key(environment, env::SAMPLE_ID));
        }
        environment.refuse_lane_keys()?;
        if parsed.scatter.chunks.is_some() {
            // As the state machine refuses it (its ChunksWithSampleSheet state).
            return Err(usage(
                "params.chunks is given with a sample sheet: a cohort's chunks are each sample's, listed with its lanes in params.samples, and params.chunks would be ignored",
                "leave params.chunks and params.chunkPairs out of a cohort's input (biojob plan-cohort --chunk-bytes splits the large lanes)",
            ));
        }
        let samplesheet = ObjectUri::parse(&sheet).map_err(|error| match error {
            // The input class, as once it is staged (docs/reliability.md, "Odd inputs").
            biojob_storage::StorageError::UnsafeKey { .. } => Error::Input {
                message: format!("the sample sheet: {error}"),
                remedy: Some("write the key without '.', '..' or empty segments".into()),
            },
            other => usage(
                format!("the sample sheet {sheet:?}: {other}"),
                "give params.samplesheet (or --samplesheet) as a path, file:// or s3:// URI",
            ),
        })?;
        Ok(RunInput::Cohort(CohortInput {
            samplesheet,
            reference_candidates: environment.reference_candidates()?,
            contigs: parsed.contigs,
            output_prefix: environment.output_prefix()?,
            min_mapping_quality: environment.min_mapping_quality()?,
            resume: environment.resume()?,
            platform: environment.platform()?,
            mark_duplicates,
            aligner: environment.aligner()?,
            scatter: parsed.scatter,
            samples: parsed.samples,
        }))
    }
}

/// The refusal of one sample's key `key` beside a sample sheet.
fn sheet_key(environment: &JobEnvironment, key: &str) -> Error {
    usage(
        format!(
            "{} is given with a sample sheet, which names the samples, their FASTQs and read groups",
            environment.name(key)
        ),
        format!("remove {key}, or run one sample without the sheet"),
    )
}

/// The first of `candidates` that exists.
///
/// # Errors
/// [`Error::Input`] listing every URI tried when none exists; a storage error when a store
/// cannot be asked.
pub fn resolve_reference(stores: &Stores, candidates: &[ObjectUri]) -> Result<ObjectUri, Error> {
    for candidate in candidates {
        if stores.for_uri(candidate)?.head(candidate)?.is_some() {
            return Ok(candidate.clone());
        }
    }
    let tried: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    Err(Error::Input {
        message: format!("reference not found; tried {}", tried.join(", ")),
        remedy: Some(
            "check REFERENCE_NAME and REFERENCE_PREFIX (or SOURCE_DATA_PREFIX), or give REFERENCE explicitly"
                .into(),
        ),
    })
}

impl WorkflowInput {
    /// The run `run_id`'s output directory: `<output prefix>/<sample>/<run id>/`.
    pub fn output_dir(&self, run_id: &str) -> ObjectUri {
        self.output_prefix.join(self.sample.as_str()).join(run_id)
    }

    /// Parses the execution input JSON.
    ///
    /// File names are built without globs: `${SOURCE_DATA_PREFIX}/${SAMPLE_ID}_R1.fastq.gz`
    /// and `_R2.fastq.gz`, and `${REFERENCE_PREFIX}/${REFERENCE_NAME}` + one of
    /// [`REFERENCE_EXTENSIONS`] (`REFERENCE_PREFIX` defaults to `SOURCE_DATA_PREFIX`);
    /// `FASTQ_1`, `FASTQ_2` and `REFERENCE` override them. Unknown environment keys are
    /// logged and ignored (they may be meant for other containers), and so are unknown keys
    /// of `params` and of the input (a misspelt `chromosome` is named with the key it looks
    /// like); a key given twice in any object is refused; a leading UTF-8 byte order mark is
    /// skipped.
    ///
    /// # Errors
    /// [`Error::Usage`] for malformed JSON, a key given twice, a missing, empty or non-string
    /// key, an invalid sample id or read group value, an empty or duplicated `chromosomes`
    /// list.
    pub fn from_json(text: &str) -> Result<WorkflowInput, Error> {
        let parsed = ParsedInput::from_json(text)?;
        WorkflowInput::from_parsed(parsed)
    }

    fn from_parsed(parsed: ParsedInput) -> Result<WorkflowInput, Error> {
        let ParsedInput {
            environment,
            contigs,
            scatter,
            ..
        } = parsed;
        if let (None, Some(pairs)) = (scatter.chunks, scatter.chunk_pairs) {
            warn!(
                chunk_pairs = pairs.get(),
                "params.chunkPairs is given without params.chunks: the state machine aligns the pair whole (it reads chunkPairs only with chunks)"
            );
        }
        let sample = environment.sample()?;
        let read_group = environment.read_group(&sample)?;
        let (fastq_1, fastq_2) = environment.fastqs(&sample)?;
        let reference_candidates = environment.reference_candidates()?;
        let output_prefix = environment.output_prefix()?;
        let min_mapping_quality = environment.min_mapping_quality()?;
        let resume = environment.resume()?;
        let aligner = environment.aligner()?;

        Ok(WorkflowInput {
            sample,
            read_group,
            fastq_1,
            fastq_2,
            reference_candidates,
            contigs,
            output_prefix,
            min_mapping_quality,
            resume,
            aligner,
            scatter,
        })
    }

    /// The first reference candidate that exists.
    ///
    /// # Errors
    /// [`Error::Input`] listing every URI tried when none exists.
    pub fn resolve_reference(&self, stores: &Stores) -> Result<ObjectUri, Error> {
        resolve_reference(stores, &self.reference_candidates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$.params.<key>` the state machine reads is a key of [`PARAMS_KEYS`], so that a
    /// state machine's input run locally gets no warning for it.
    #[test]
    fn the_state_machines_params_keys_are_known() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../templates/asl/biojob.asl.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut read: Vec<&str> = text
            .split("$.params.")
            .skip(1)
            .map(|rest| {
                let end = rest
                    .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        read.sort_unstable();
        read.dedup();
        assert!(read.len() >= 5, "{read:?}");
        let unknown: Vec<&&str> = read
            .iter()
            .filter(|key| !PARAMS_KEYS.contains(key))
            .collect();
        assert!(unknown.is_empty(), "not in PARAMS_KEYS: {unknown:?}");
    }

    const INPUT: &str = r#"{"params": {"queue": "arn:aws:batch:us-east-1:1:job-queue/q",
        "environment": {"REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878",
                        "SOURCE_DATA_PREFIX": "/data/in", "JOB_OUTPUT_PREFIX": "s3://out/runs",
                        "JOB_AWS_CLI_PATH": "/opt/miniconda/bin"},
        "chromosomes": ["chr20", "chrM"]}}"#;

    #[test]
    fn reference_design_input() {
        let input = WorkflowInput::from_json(INPUT).unwrap();
        assert_eq!(input.sample.as_str(), "NA12878");
        assert_eq!(input.fastq_1.to_string(), "/data/in/NA12878_R1.fastq.gz");
        assert_eq!(input.fastq_2.to_string(), "/data/in/NA12878_R2.fastq.gz");
        let candidates: Vec<String> = input
            .reference_candidates
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            candidates,
            [
                "/data/in/ref.fa",
                "/data/in/ref.fasta",
                "/data/in/ref.fa.gz"
            ]
        );
        assert_eq!(input.output_prefix.to_string(), "s3://out/runs");
        assert_eq!(input.contigs, Some(vec!["chr20".into(), "chrM".into()]));
        assert_eq!(
            input.read_group.to_header_line(),
            "@RG\tID:NA12878\tSM:NA12878\tPL:ILLUMINA"
        );
    }

    #[test]
    fn overrides_and_read_group() {
        let input = WorkflowInput::from_json(
            r#"{"params": {"environment": {"SAMPLE_ID": "S", "JOB_OUTPUT_PREFIX": "o",
                "FASTQ_1": "file:///x/a 1.fq", "FASTQ_2": "/x/a 2.fq", "REFERENCE": "/r/g.fasta",
                "READ_GROUP_LIBRARY": "lib \"1\"", "OTHER": "x"}}}"#,
        )
        .unwrap();
        assert_eq!(input.fastq_1.to_string(), "/x/a 1.fq");
        assert_eq!(input.reference_candidates.len(), 1);
        assert_eq!(input.contigs, None);
        assert_eq!(input.read_group.library.as_deref(), Some("lib \"1\""));
    }

    #[test]
    fn the_minimum_mapping_quality_is_a_mapq_or_unset() {
        let quality = |value: &str| {
            JobEnvironment::from_pairs([(env::MIN_MAPPING_QUALITY, value)]).min_mapping_quality()
        };
        assert_eq!(quality("").unwrap(), None);
        assert_eq!(quality("0").unwrap(), Some(0));
        assert_eq!(quality("20").unwrap(), Some(20));
        assert_eq!(quality("255").unwrap(), Some(255));
        for bad in ["256", "-1", "twenty", "2.5"] {
            assert_eq!(
                quality(bad).unwrap_err().to_string(),
                format!("MIN_MAPPING_QUALITY must be a whole number from 0 to 255, found {bad:?}")
            );
        }
        let input = WorkflowInput::from_json(&INPUT.replace(
            r#""JOB_AWS_CLI_PATH""#,
            r#""MIN_MAPPING_QUALITY": "30", "JOB_AWS_CLI_PATH""#,
        ))
        .unwrap();
        assert_eq!(input.min_mapping_quality, Some(30));
        assert_eq!(
            WorkflowInput::from_json(INPUT).unwrap().min_mapping_quality,
            None
        );
        let error = WorkflowInput::from_json(&INPUT.replace(
            r#""JOB_AWS_CLI_PATH""#,
            r#""MIN_MAPPING_QUALITY": "high", "JOB_AWS_CLI_PATH""#,
        ))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "params.environment.MIN_MAPPING_QUALITY must be a whole number from 0 to 255, found \"high\""
        );
    }

    #[test]
    fn biojob_resume_in_the_environment_is_a_switch() {
        let parse = |value: &str| {
            WorkflowInput::from_json(&format!(
                r#"{{"params": {{"environment": {{"SAMPLE_ID": "S", "SOURCE_DATA_PREFIX": "/d",
                    "REFERENCE_NAME": "r", "JOB_OUTPUT_PREFIX": "/o", "BIOJOB_RESUME": "{value}"}}}}}}"#
            ))
        };
        assert_eq!(parse("1").unwrap().resume, Some(true));
        assert_eq!(parse("off").unwrap().resume, Some(false));
        assert_eq!(parse("").unwrap().resume, None);
        assert_eq!(
            parse("maybe").unwrap_err().to_string(),
            "params.environment.BIOJOB_RESUME must be 1/true/yes/on or 0/false/no/off, found \"maybe\""
        );
    }

    #[test]
    fn biojob_aligner_in_the_environment_names_an_aligner() {
        let parse = |value: &str| {
            WorkflowInput::from_json(&format!(
                r#"{{"params": {{"environment": {{"SAMPLE_ID": "S", "SOURCE_DATA_PREFIX": "/d",
                    "REFERENCE_NAME": "r", "JOB_OUTPUT_PREFIX": "/o", "BIOJOB_ALIGNER": "{value}"}}}}}}"#
            ))
        };
        assert_eq!(parse("bwa-mem2").unwrap().aligner, Some(Aligner::BwaMem2));
        assert_eq!(parse("bwa").unwrap().aligner, Some(Aligner::Bwa));
        assert_eq!(parse("").unwrap().aligner, None);
        let error = parse("bowtie2").unwrap_err();
        assert_eq!(
            error.to_string(),
            "params.environment.BIOJOB_ALIGNER: unknown aligner \"bowtie2\": choose bwa or bwa-mem2"
        );
        assert_eq!(
            biojob_core::Classify::exit_class(&error),
            biojob_core::ExitClass::Usage
        );
    }

    #[test]
    fn the_inputs_chunks_and_shards_are_read_as_the_state_machine_reads_them() {
        let parse = |params: &str| {
            WorkflowInput::from_json(&INPUT.replace(
                r#""chromosomes": ["chr20", "chrM"]"#,
                &format!(r#""chromosomes": ["chr20", "chrM"], {params}"#),
            ))
        };
        let scatter = |params: &str| parse(params).unwrap().scatter;
        let error = |params: &str| parse(params).unwrap_err().to_string();
        let number = |n: u64| NonZeroU64::new(n).unwrap();
        let count = |n: usize| NonZeroUsize::new(n).unwrap();
        assert_eq!(
            WorkflowInput::from_json(INPUT).unwrap().scatter,
            InputScatter::default()
        );
        // The state machine's defaults: nothing listed.
        assert_eq!(
            scatter(r#""chunks": [], "chunkPairs": 0, "shards": [], "shardBases": 0"#),
            InputScatter::default()
        );
        assert_eq!(
            scatter(
                r#""chunks": [0, 1, 2], "chunkPairs": 49505, "shards": [0, 1], "shardBases": 90000000"#
            ),
            InputScatter {
                chunks: Some(count(3)),
                chunk_pairs: Some(number(49_505)),
                shards: Some((count(2), number(90_000_000))),
            }
        );
        // A size without its list is ignored (with a warning), as the state machine does.
        assert_eq!(
            scatter(r#""chunkPairs": 49505, "shardBases": 1000"#).sample_chunks(),
            None
        );
        assert_eq!(scatter(r#""shardBases": 1000"#), InputScatter::default());
        assert_eq!(
            error(r#""chunks": [0, 2], "chunkPairs": 49505"#),
            "params.chunks must be the numbers 0 to 1 in order (item 1 is 2): each job takes its item \
             as its number"
        );
        assert_eq!(
            error(r#""chunks": 3, "chunkPairs": 49505"#),
            "params.chunks must be a list of numbers, found 3"
        );
        assert_eq!(
            error(r#""chunks": [0, 1]"#),
            "params.chunks lists 2 chunks, and params.chunkPairs is missing or 0"
        );
        let many: Vec<usize> = (0..10_000).collect();
        assert_eq!(
            error(&format!(r#""chunks": {many:?}, "chunkPairs": 1000"#)),
            "params.chunks lists 10000 chunks: at most 9999 (chunk numbers have four digits)"
        );
        assert_eq!(
            error(r#""chunks": [0, 1], "chunkPairs": 0"#),
            "params.chunks lists 2 chunks, and params.chunkPairs is missing or 0"
        );
        assert_eq!(
            error(r#""chunks": [0, 1], "chunkPairs": 10"#),
            "params.chunkPairs: chunks of 10 read pairs are refused: each chunk is its own bwa \
             mem, which loads the whole bwa index first; give 0 (align the pair whole) or at \
             least 1000"
        );
        assert_eq!(
            error(r#""chunks": [0, 1], "chunkPairs": "5000""#),
            "params.chunkPairs must be a whole number from 0 to 18446744073709551615, found \
             \"5000\""
        );
        assert_eq!(
            error(r#""shards": [0, 1, 2]"#),
            "params.shards lists 3 shards, and params.shardBases is missing or 0"
        );
        assert_eq!(
            error(r#""shards": ["0"], "shardBases": 100"#),
            "params.shards must be the numbers 0 to 0 in order (item 0 is \"0\"): each job takes its \
             item as its number"
        );
        // A cohort's chunks are its lanes': refused beside a sheet, as the state machine does.
        let cohort = INPUT.replace(r#""SAMPLE_ID": "NA12878","#, "").replace(
            r#""chromosomes": ["chr20", "chrM"]"#,
            r#""samplesheet": "/data/sheet.csv", "chunks": [0, 1], "chunkPairs": 5000"#,
        );
        assert_eq!(
            RunInput::from_json(&cohort, None, true)
                .unwrap_err()
                .to_string(),
            "params.chunks is given with a sample sheet: a cohort's chunks are each sample's, \
             listed with its lanes in params.samples, and params.chunks would be ignored"
        );
    }

    #[test]
    fn params_samples_is_read_as_plan_cohort_prints_it() {
        let parse = |samples: &str| {
            RunInput::from_json(
                &format!(
                    r#"{{"params": {{"environment": {{"REFERENCE": "/r.fa", "JOB_OUTPUT_PREFIX": "/o"}},
                        "samplesheet": "/s.csv", "chunkPairs": 5000, "samples": {samples}}}}}"#
                ),
                None,
                true,
            )
        };
        let Ok(RunInput::Cohort(cohort)) = parse(
            r#"[{"sample": "A", "chunks": [0, 1, 2], "lanes": [{"lane": 0, "chunks": [0]},
                {"lane": 1, "chunks": [1, 2]}]}, {"sample": "B", "chunks": [0],
                "lanes": [{"lane": 0, "chunks": [0]}]}]"#,
        ) else {
            panic!("not a cohort")
        };
        let count = |n: usize| NonZeroUsize::new(n).unwrap();
        assert_eq!(
            cohort.samples,
            [
                PlannedSample {
                    sample: "A".into(),
                    lane_chunks: vec![count(1), count(2)]
                },
                PlannedSample {
                    sample: "B".into(),
                    lane_chunks: vec![count(1)]
                }
            ]
        );
        assert_eq!(cohort.scatter.chunk_pairs, NonZeroU64::new(5000));
        let error = |samples: &str| parse(samples).unwrap_err().to_string();
        assert_eq!(
            error(
                r#"[{"sample": "A", "chunks": [0, 1], "lanes": [{"lane": 0, "chunks": [0]}, {"lane": 1, "chunks": [2]}]}]"#
            ),
            "params.samples[0].lanes[1].chunks must be the lane's chunks, numbered from 1, found [2]"
        );
        assert_eq!(
            error(r#"[{"sample": "A", "chunks": [0], "lanes": [{"lane": 1, "chunks": [0]}]}]"#),
            "params.samples[0].lanes[0].lane must be 0, found 1"
        );
        assert_eq!(
            error(
                r#"[{"sample": "A", "chunks": [0, 1, 2], "lanes": [{"lane": 0, "chunks": [0, 1]}]}]"#
            ),
            "params.samples[0].chunks must be the numbers 0 to 1 (its lanes' chunks), found [0,1,2]"
        );
        assert_eq!(
            error(r#"[{"chunks": [0], "lanes": []}]"#),
            "params.samples[0].sample must be a sample's name, found null"
        );
        assert_eq!(
            error(r#"[{"sample": "A", "chunks": [], "lanes": []}]"#),
            "params.samples[0].lanes must be a list of the sample's lanes, found []"
        );
        // One sample's input with a cohort's samples: refused as the state machine does.
        assert_eq!(
            RunInput::from_json(
                &INPUT.replace(
                    r#""chromosomes": ["chr20", "chrM"]"#,
                    r#""samples": [{"sample": "A", "chunks": [0], "lanes": [{"lane": 0, "chunks": [0]}]}]"#
                ),
                None,
                true
            )
            .unwrap_err()
            .to_string(),
            "params.samples is given without params.samplesheet, the sheet every job of a cohort reads"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let error = |json: &str| WorkflowInput::from_json(json).unwrap_err().to_string();
        assert_eq!(
            error(r#"{"params": {"environment": {"SAMPLE_ID": "S"}}}"#),
            "params.environment.SOURCE_DATA_PREFIX is missing (needed for FASTQ_1)"
        );
        assert_eq!(
            error(r#"{"params": {"environment": {"SOURCE_DATA_PREFIX": "/d"}}}"#),
            "params.environment.SAMPLE_ID is missing"
        );
        assert_eq!(
            error(r#"{"params": {"environment": {"SAMPLE_ID": 7}}}"#),
            "params.environment.SAMPLE_ID must be a string, found 7"
        );
        assert_eq!(
            error(
                r#"{"params": {"environment": {"SAMPLE_ID": "S", "SOURCE_DATA_PREFIX": "/d",
                "REFERENCE_NAME": "r", "JOB_OUTPUT_PREFIX": "/o"}, "chromosomes": ["1", "1"]}}"#
            ),
            "params.chromosomes lists \"1\" twice"
        );
        assert!(error("{").starts_with("the workflow input is not valid: "));
    }

    #[test]
    fn a_job_environment_resolves_like_the_input_and_names_variables() {
        let environment = JobEnvironment::from_pairs([
            ("SAMPLE_ID", "NA12878"),
            ("REFERENCE_NAME", "Homo_sapiens_assembly38"),
            ("SOURCE_DATA_PREFIX", "s3://in/samples"),
            ("REFERENCE_PREFIX", ""),
            ("JOB_OUTPUT_PREFIX", "s3://out"),
        ]);
        let sample = environment.sample().unwrap();
        let (r1, r2) = environment.fastqs(&sample).unwrap();
        assert_eq!(r1.to_string(), "s3://in/samples/NA12878_R1.fastq.gz");
        assert_eq!(r2.to_string(), "s3://in/samples/NA12878_R2.fastq.gz");
        let candidates: Vec<String> = environment
            .reference_candidates()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            candidates,
            [
                "s3://in/samples/Homo_sapiens_assembly38.fa",
                "s3://in/samples/Homo_sapiens_assembly38.fasta",
                "s3://in/samples/Homo_sapiens_assembly38.fa.gz"
            ]
        );
        assert_eq!(
            environment.output_prefix().unwrap().to_string(),
            "s3://out/"
        );

        let empty = JobEnvironment::from_pairs([("SAMPLE_ID", "S")]);
        assert_eq!(
            empty.output_prefix().unwrap_err().to_string(),
            "JOB_OUTPUT_PREFIX is not set"
        );
        assert_eq!(
            empty.reference_candidates().unwrap_err().to_string(),
            "REFERENCE_NAME is not set"
        );
        let sample = empty.sample().unwrap();
        assert_eq!(
            empty.fastqs(&sample).unwrap_err().to_string(),
            "SOURCE_DATA_PREFIX is missing (needed for FASTQ_1)"
        );
    }
}
