//! The step cache: a content key per step and shard, and the reuse of a finished step's
//! outputs when an earlier manifest records the same key.
//!
//! A step's **cache key** is `sha256:` and the lowercase hex SHA-256 of the canonical JSON of a
//! [`CacheKeyMaterial`]:
//! - [`STEP_FORMAT_VERSION`], biojob's own version of what its steps do;
//! - the step name and the shard id (`None` for unscattered steps; the region for a shard);
//! - the SHA-256 of each input's content, computed by biojob over the bytes (never an S3 ETag
//!   or a multipart composite checksum, which differ for the same content uploaded in a
//!   different number of parts); for align this includes each bwa index file that bwa reads
//!   (`.amb`, `.ann`, `.bwt`, `.pac`, `.sa`): an index left over from another FASTA (kept
//!   fresh by `cp -p`, or on S3 beside a replaced FASTA) gives another alignment, so it is
//!   another key;
//! - each tool's name and version (as probed);
//! - each command's argv as the step's builders make it, with the program replaced by the
//!   tool's name, paths replaced by placeholders (`<scratch>`, `<reference>`, `<fastq_1>`, …)
//!   and the resource arguments (thread counts, sort memory) set to fixed values: they change
//!   neither the BAM's records (bwa's batch size `-K` is fixed) nor the VCFs' records. (The
//!   BAM's `@PG` header lines hold the command lines as run, threads, sort memory and scratch
//!   path included, so a BAM aligned again under other resources has other bytes, and the call
//!   keys, which hold the BAM's SHA-256, change with it.)
//!
//! A finished step is reusable when a manifest beside its outputs records the step
//! `succeeded` (or `cached`) with the same key, and every output it lists exists under the same
//! name with the recorded size and SHA-256 ([`reuse_outputs`]). A failed, skipped or killed step
//! records no reusable entry; a step whose manifest was never written is not found at all.
//!
//! A new manifest never loses an earlier finished task: a run manifest keeps, under
//! `earlier_tasks`, the finished tasks of the manifest it replaces for the steps and shards the
//! new run did not finish ([`carry_forward`]); a step manifest whose task did not finish keeps
//! the earlier finished task under `earlier_task` ([`earlier_step_task`]). Both are looked at
//! on resume, with the same output checks.

use std::collections::BTreeMap;
use std::io::Read;

use biojob_core::{ReadGroup, SampleId, Shard, StepId, scratch_file_name};
use biojob_process::CommandSpec;
use biojob_storage::{ObjectUri, Stores, hex};
use biojob_tools::{
    BcftoolsCall, BcftoolsConcat, BcftoolsMpileup, BwaMem, SamtoolsSort, ToolPath, ToolVersions,
    Toolset, bcftools_index_tbi, bwa_index_files, samtools_index,
};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::{
    BWA_BATCH_BASES, Error, OutputRecord, PreparedReference, RunManifest, TaskStatus, error_chain,
};

/// Version of what biojob's steps do, part of every cache key: bumped when a step's commands,
/// checks or outputs change in a way its argv does not show, so that no earlier output is
/// reused across the change.
pub const STEP_FORMAT_VERSION: u32 = 1;

/// What a step's cache key is the digest of (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheKeyMaterial {
    step_format_version: u32,
    step: String,
    shard: Option<String>,
    /// Input role (`fastq_1`, `reference`, `vcf.0001`) → SHA-256 of its content, lowercase hex.
    inputs: BTreeMap<String, String>,
    /// Tool name → version.
    tools: BTreeMap<String, String>,
    /// Each command's argv, with paths and resource values replaced.
    commands: Vec<Vec<String>>,
    /// Settings that change the outputs but appear in no argv above (e.g. read pairs per
    /// alignment chunk), name → value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    parameters: BTreeMap<String, String>,
}

impl CacheKeyMaterial {
    /// The material of `step` (a step name, `align`) for `shard` (a shard id, e.g. a region;
    /// `None` for an unscattered step), with no inputs, tools or commands yet.
    pub fn new(step: &str, shard: Option<&str>) -> Self {
        CacheKeyMaterial {
            step_format_version: STEP_FORMAT_VERSION,
            step: step.to_owned(),
            shard: shard.map(str::to_owned),
            inputs: BTreeMap::new(),
            tools: BTreeMap::new(),
            commands: Vec::new(),
            parameters: BTreeMap::new(),
        }
    }

    /// Adds a setting that changes the outputs but appears in no command's argv.
    pub fn parameter(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.parameters.insert(name.into(), value.to_string());
        self
    }

    /// Adds an input by `role` with the SHA-256 of its content (lowercase hex).
    pub fn input(mut self, role: impl Into<String>, sha256: impl Into<String>) -> Self {
        self.inputs.insert(role.into(), sha256.into());
        self
    }

    /// Adds a tool and its version.
    pub fn tool(mut self, tool: &ToolPath, version: &str) -> Self {
        self.tools
            .insert(tool.tool.name().to_owned(), version.to_owned());
        self
    }

    /// Adds a command: its argv with the program replaced by `tool`'s name (the program's path
    /// names an installation, not what it does; the version is in the key).
    pub fn command(mut self, tool: &ToolPath, command: &CommandSpec) -> Self {
        let mut argv = command.argv();
        if let Some(program) = argv.first_mut() {
            tool.tool.name().clone_into(program);
        }
        self.commands.push(argv);
        self
    }

    /// The key: `sha256:` and the lowercase hex SHA-256 of the material's JSON.
    pub fn key(&self) -> String {
        // Serialising plain strings, numbers and maps cannot fail; an empty digest input would
        // still give a key no other material gives.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("sha256:{}", hex(&Sha256::digest(&json)))
    }
}

/// The placeholder for the private scratch directory in a key's argv.
const SCRATCH: &str = "<scratch>";
/// Fixed resource values in a key's argv.
const KEY_THREADS: usize = 1;
const KEY_SORT_MEMORY: u64 = 768 << 20;

/// The align step's key material: `bwa mem | samtools sort`, `samtools index`, over the FASTQ
/// pair, the reference FASTA and the content of each bwa index file (`bwa_index.amb`, …).
pub fn align_key(
    toolset: &Toolset,
    versions: &ToolVersions,
    sample: &SampleId,
    read_group: &ReadGroup,
    inputs: &AlignInputDigests,
) -> CacheKeyMaterial {
    let scratch = Utf8Path::new(SCRATCH);
    let bam = scratch.join(scratch_file_name(sample, StepId::Align, None, "bam"));
    let bam_partial = Utf8PathBuf::from(format!("{bam}.partial"));
    let bai_partial = Utf8PathBuf::from(format!("{bam}.bai.partial"));
    let bwa = BwaMem {
        threads: KEY_THREADS,
        batch_bases: BWA_BATCH_BASES,
        read_group: read_group.clone(),
        index_prefix: "<reference>".into(),
        fastq_1: "<fastq_1>".into(),
        fastq_2: "<fastq_2>".into(),
    }
    .command(&toolset.bwa);
    let sort = SamtoolsSort {
        threads: KEY_THREADS,
        memory_per_thread: KEY_SORT_MEMORY,
        temp_prefix: scratch.join(scratch_file_name(sample, StepId::Align, None, "sort-tmp")),
        output: bam_partial.clone(),
    }
    .command(&toolset.samtools);
    let index = samtools_index(&toolset.samtools, &bam_partial, &bai_partial, KEY_THREADS);
    let material = CacheKeyMaterial::new(StepId::Align.as_str(), None)
        .input("fastq_1", &inputs.fastq_1)
        .input("fastq_2", &inputs.fastq_2)
        .input("reference", &inputs.reference);
    let material = inputs
        .bwa_index
        .iter()
        .fold(material, |material, (extension, sha256)| {
            material.input(format!("bwa_index{extension}"), sha256)
        });
    material
        .tool(&toolset.bwa, &versions.bwa)
        .tool(&toolset.samtools, &versions.samtools)
        .command(&toolset.bwa, &bwa)
        .command(&toolset.samtools, &sort)
        .command(&toolset.samtools, &index)
}

/// SHA-256 (lowercase hex) of the align step's inputs (the reference: the FASTA that the step
/// reads, after any decompression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlignInputDigests {
    /// Read 1.
    pub fastq_1: String,
    /// Read 2.
    pub fastq_2: String,
    /// The reference FASTA and its `.fai` ([`reference_sha256`]).
    pub reference: String,
    /// Each bwa index file by its extension (`.amb`, `.ann`, `.bwt`, `.pac`, `.sa`); see
    /// [`bwa_index_sha256`].
    pub bwa_index: BTreeMap<String, String>,
}

/// The reference's digest in the align and call keys: the SHA-256 (lowercase hex) of
/// `fasta:<FASTA's SHA-256>\nfai:<.fai's SHA-256>\n`, the two files read in parallel. The `.fai`
/// is in it because bcftools mpileup reads the FASTA through its offsets: a stale `.fai`
/// (fresh by its time after `cp -p` of an edited FASTA) reads other bases. (Align does not read
/// the `.fai` but shares this digest.)
///
/// # Errors
/// [`Error::Io`] (input side) when either file cannot be read.
pub fn reference_sha256(reference: &PreparedReference) -> Result<String, Error> {
    let digests = files_sha256(&[&reference.fasta, &reference.fai])?;
    let (fasta, fai) = (
        digests.first().map_or("", String::as_str),
        digests.get(1).map_or("", String::as_str),
    );
    Ok(hex(&Sha256::digest(format!("fasta:{fasta}\nfai:{fai}\n"))))
}

/// SHA-256 (lowercase hex) of each bwa index file of `reference` by its extension (`.amb`,
/// `.ann`, `.bwt`, `.pac`, `.sa`), the files read in parallel, one thread each; empty when the
/// bwa index was not prepared. These are the files `bwa mem` reads, so a stale index (built from
/// an earlier FASTA) gives another align key than the FASTA's own index.
///
/// # Errors
/// [`Error::Io`] (input side) when an index file cannot be read.
pub fn bwa_index_sha256(reference: &PreparedReference) -> Result<BTreeMap<String, String>, Error> {
    let Some(prefix) = &reference.bwa_prefix else {
        return Ok(BTreeMap::new());
    };
    let files = bwa_index_files(prefix);
    let paths: Vec<&Utf8Path> = files.iter().map(Utf8PathBuf::as_path).collect();
    let digests = files_sha256(&paths)?;
    Ok(files
        .iter()
        .zip(digests)
        .map(|(file, sha256)| {
            let extension = file.extension().map_or(String::new(), |e| format!(".{e}"));
            (extension, sha256)
        })
        .collect())
}

/// The call step's key material for `shard`: `bcftools mpileup | bcftools call` (with
/// `min_mapping_quality`), `bcftools index -t`, over the BAM (`bam_sha256`; its index is derived
/// from it) and the reference FASTA with its `.fai` (`reference_sha256`, see
/// [`reference_sha256`]).
pub fn call_key(
    toolset: &Toolset,
    versions: &ToolVersions,
    sample: &SampleId,
    shard: &Shard,
    min_mapping_quality: Option<u32>,
    bam_sha256: &str,
    reference_sha256: &str,
) -> CacheKeyMaterial {
    let scratch = Utf8Path::new(SCRATCH);
    let vcf = scratch.join(scratch_file_name(
        sample,
        StepId::Call,
        Some(shard.index),
        "vcf.gz",
    ));
    let vcf_partial = Utf8PathBuf::from(format!("{vcf}.partial"));
    let tbi_partial = Utf8PathBuf::from(format!("{vcf}.tbi.partial"));
    let region = shard.region().to_owned();
    let mpileup = BcftoolsMpileup {
        fasta: "<reference>".into(),
        region: region.clone(),
        bam: "<bam>".into(),
        min_mapping_quality,
    }
    .command(&toolset.bcftools);
    let caller = BcftoolsCall {
        region,
        output: vcf_partial.clone(),
    }
    .command(&toolset.bcftools);
    let index = bcftools_index_tbi(&toolset.bcftools, &vcf_partial, &tbi_partial);
    CacheKeyMaterial::new(StepId::Call.as_str(), Some(shard.region()))
        .parameter("pileup_pad_bases", crate::steps::REGION_PILEUP_PAD_BASES)
        .input("bam", bam_sha256)
        .input("reference", reference_sha256)
        .tool(&toolset.bcftools, &versions.bcftools)
        .command(&toolset.bcftools, &mpileup)
        .command(&toolset.bcftools, &caller)
        .command(&toolset.bcftools, &index)
}

/// The gather step's key material: `bcftools concat` and `bcftools index -t` over the shards'
/// VCFs (`(shard index, SHA-256)`, in reference order) and the reference's `.fai`
/// (`fai_sha256`: it orders them and is all of the reference that gather reads).
pub fn gather_key(
    toolset: &Toolset,
    versions: &ToolVersions,
    sample: &SampleId,
    vcfs: &[(usize, String)],
    fai_sha256: &str,
) -> CacheKeyMaterial {
    let scratch = Utf8Path::new(SCRATCH);
    let vcf = scratch.join(format!("{sample}.vcf.gz"));
    let vcf_partial = Utf8PathBuf::from(format!("{vcf}.partial"));
    let tbi_partial = Utf8PathBuf::from(format!("{vcf}.tbi.partial"));
    let concat = BcftoolsConcat {
        inputs: vcfs
            .iter()
            .map(|(index, _)| {
                scratch.join(scratch_file_name(
                    sample,
                    StepId::Call,
                    Some(*index),
                    "vcf.gz",
                ))
            })
            .collect(),
        output: vcf_partial.clone(),
    }
    .command(&toolset.bcftools);
    let index = bcftools_index_tbi(&toolset.bcftools, &vcf_partial, &tbi_partial);
    let mut material = CacheKeyMaterial::new(StepId::Gather.as_str(), None)
        .input("reference_fai", fai_sha256)
        .tool(&toolset.bcftools, &versions.bcftools)
        .command(&toolset.bcftools, &concat)
        .command(&toolset.bcftools, &index);
    for (index, sha256) in vcfs {
        material = material.input(format!("vcf.{index:04}"), sha256);
    }
    material
}

/// SHA-256 of the file at `path`, lowercase hex.
///
/// # Errors
/// [`Error::Io`] (input side) when the file cannot be read.
pub fn file_sha256(path: &Utf8Path) -> Result<String, Error> {
    let mut file = std::fs::File::open(path).map_err(Error::input_io("opening", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(Error::input_io("reading", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of each file of `paths`, lowercase hex, in order; the files are read in parallel,
/// one thread each (for the FASTQ pair, which are read whole).
///
/// # Errors
/// As [`file_sha256`], for the first file that fails.
pub fn files_sha256(paths: &[&Utf8Path]) -> Result<Vec<String>, Error> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .map(|path| scope.spawn(move || file_sha256(path)))
            .collect();
        handles
            .into_iter()
            .zip(paths)
            .map(|(handle, path)| {
                handle.join().unwrap_or_else(|_| {
                    Err(Error::input_io("hashing", *path)(std::io::Error::other(
                        "the hashing thread panicked",
                    )))
                })
            })
            .collect()
    })
}

/// SHA-256 of the FASTQ pair (`fastq_1`, `fastq_2`: the local files; `uri_1`, `uri_2`: where
/// they came from, for the message), read in parallel, as `[read 1, read 2]`.
///
/// # Errors
/// As [`files_sha256`]; [`Error::Input`] when the two are not empty and have the same content
/// (one file given twice under two names: a pair needs read 1 and read 2).
pub fn fastq_pair_sha256(
    fastq_1: &Utf8Path,
    fastq_2: &Utf8Path,
    uri_1: &ObjectUri,
    uri_2: &ObjectUri,
) -> Result<Vec<String>, Error> {
    let digests = files_sha256(&[fastq_1, fastq_2])?;
    let empty = std::fs::metadata(fastq_1).is_ok_and(|meta| meta.len() == 0);
    if !empty && digests.first() == digests.get(1) {
        return Err(Error::Input {
            message: format!(
                "FASTQ_1 and FASTQ_2 have the same content: {uri_1} and {uri_2} (SHA-256 {})",
                digests.first().map_or("", String::as_str)
            ),
            remedy: Some("give read 1 of the pair as FASTQ_1 and read 2 as FASTQ_2".into()),
        });
    }
    Ok(digests)
}

/// A task as an earlier manifest recorded it (the fields reuse needs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordedTask {
    /// The step name.
    pub step: String,
    /// The contig, for a shard.
    #[serde(default)]
    pub contig: Option<String>,
    /// `succeeded`, `cached`, `failed`, `skipped`.
    pub status: String,
    /// The cache key, when the manifest has one.
    #[serde(default)]
    pub cache_key: Option<String>,
    /// The outputs.
    #[serde(default)]
    pub outputs: Vec<OutputRecord>,
}

impl RecordedTask {
    /// Whether the task finished with key `key`: status `succeeded` or `cached`, same key.
    pub fn finished_with(&self, key: &str) -> bool {
        matches!(self.status.as_str(), "succeeded" | "cached")
            && self.cache_key.as_deref() == Some(key)
    }
}

/// The finished tasks an earlier run or step job recorded under an output prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlierTasks {
    tasks: Vec<RecordedTask>,
    /// The run manifest's `read_pairs`, when it has one.
    pub read_pairs: Option<u64>,
}

#[derive(Deserialize)]
struct RunManifestTasks {
    #[serde(default)]
    tasks: Vec<RecordedTask>,
    #[serde(default)]
    earlier_tasks: Vec<RecordedTask>,
    #[serde(default)]
    read_pairs: Option<u64>,
}

#[derive(Deserialize)]
struct StepManifestTask {
    task: RecordedTask,
    #[serde(default)]
    earlier_task: Option<RecordedTask>,
}

impl EarlierTasks {
    /// The tasks of the run manifest (`manifest.json`) at `uri`; none when it does not exist
    /// or cannot be parsed (then nothing is reused, and a warning says why).
    ///
    /// # Errors
    /// A storage error when the store cannot be asked or the manifest cannot be fetched.
    pub fn from_run_manifest(stores: &Stores, uri: &ObjectUri) -> Result<EarlierTasks, Error> {
        Ok(match read_json::<RunManifestTasks>(stores, uri)? {
            Some(manifest) => EarlierTasks {
                tasks: manifest
                    .tasks
                    .into_iter()
                    .chain(manifest.earlier_tasks)
                    .collect(),
                read_pairs: manifest.read_pairs,
            },
            None => EarlierTasks::default(),
        })
    }

    /// The task of the step manifest (`<sample>.<step>[.<shard>].manifest.json`) at `uri`;
    /// none when it does not exist or cannot be parsed.
    ///
    /// # Errors
    /// A storage error when the store cannot be asked or the manifest cannot be fetched.
    pub fn from_step_manifest(stores: &Stores, uri: &ObjectUri) -> Result<EarlierTasks, Error> {
        Ok(EarlierTasks {
            tasks: read_json::<StepManifestTask>(stores, uri)?
                .map(|manifest| {
                    std::iter::once(manifest.task)
                        .chain(manifest.earlier_task)
                        .collect()
                })
                .unwrap_or_default(),
            read_pairs: None,
        })
    }

    /// The task that finished with `key`, if any.
    pub fn finished(&self, key: &str) -> Option<&RecordedTask> {
        self.tasks.iter().find(|task| task.finished_with(key))
    }
}

/// Whether a recorded task (JSON) finished: status `succeeded` or `cached`, with a cache key.
fn finished_task(task: &serde_json::Value) -> Option<RecordedTask> {
    let recorded: RecordedTask = serde_json::from_value(task.clone()).ok()?;
    (matches!(recorded.status.as_str(), "succeeded" | "cached") && recorded.cache_key.is_some())
        .then_some(recorded)
}

/// Before `manifest` replaces the run manifest at `uri`: sets its `earlier_tasks` to the
/// finished tasks (`succeeded` or `cached`, with a cache key) that the manifest at `uri`
/// records in `tasks` or `earlier_tasks`, as recorded, for each step and shard that `manifest`
/// has not finished; and, when the earlier align task is among them and `manifest` has no
/// `read_pairs`, takes the earlier `read_pairs` (the pairs that align read). An absent or
/// unreadable earlier manifest carries nothing (logged): writing a manifest never fails on it.
pub fn carry_forward(stores: &Stores, uri: &ObjectUri, manifest: &mut RunManifest) {
    let earlier = match read_json::<serde_json::Value>(stores, uri) {
        Ok(Some(earlier)) => earlier,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%uri, error = %error_chain(&error), "could not read the earlier manifest; its finished tasks are not carried forward");
            return;
        }
    };
    let mut seen: std::collections::BTreeSet<(String, Option<String>)> = manifest
        .tasks
        .iter()
        .filter(|task| matches!(task.status, TaskStatus::Succeeded | TaskStatus::Cached))
        .map(|task| (task.step.as_str().to_owned(), task.contig.clone()))
        .collect();
    let recorded = ["tasks", "earlier_tasks"]
        .iter()
        .filter_map(|field| earlier.get(field).and_then(serde_json::Value::as_array))
        .flatten();
    let mut carried = Vec::new();
    let mut align_carried = false;
    for task in recorded {
        let Some(finished) = finished_task(task) else {
            continue;
        };
        if !seen.insert((finished.step.clone(), finished.contig.clone())) {
            continue;
        }
        align_carried |= finished.step == StepId::Align.as_str();
        carried.push(task.clone());
    }
    if align_carried && manifest.read_pairs.is_none() {
        manifest.read_pairs = earlier
            .get("read_pairs")
            .and_then(serde_json::Value::as_u64);
    }
    if !carried.is_empty() {
        info!(%uri, tasks = carried.len(), "keeping the earlier run's finished tasks in the manifest");
    }
    manifest.earlier_tasks = carried;
}

/// The finished task (`succeeded` or `cached`, with a cache key) that the step manifest at
/// `uri` records as `task` or, failing that, as `earlier_task`, as recorded; `None` when there
/// is none or the manifest cannot be read (logged). A step job whose own task did not finish
/// keeps it in its new manifest as `earlier_task`.
pub fn earlier_step_task(stores: &Stores, uri: &ObjectUri) -> Option<serde_json::Value> {
    let earlier = match read_json::<serde_json::Value>(stores, uri) {
        Ok(earlier) => earlier?,
        Err(error) => {
            tracing::warn!(%uri, error = %error_chain(&error), "could not read the earlier step manifest; its finished task is not carried forward");
            return None;
        }
    };
    ["task", "earlier_task"]
        .iter()
        .filter_map(|field| earlier.get(field))
        .find(|task| finished_task(task).is_some())
        .cloned()
}

/// The manifest at `uri` parsed as `T`; `None` when absent or unparsable.
fn read_json<T: serde::de::DeserializeOwned>(
    stores: &Stores,
    uri: &ObjectUri,
) -> Result<Option<T>, Error> {
    let store = stores.for_uri(uri)?;
    if store.head(uri)?.is_none() {
        return Ok(None);
    }
    let bytes = match uri.local_path() {
        Some(path) => std::fs::read(path).map_err(Error::input_io("reading", path))?,
        None => {
            let dir =
                tempfile::tempdir().map_err(Error::io("creating", "a temporary directory"))?;
            let path =
                Utf8PathBuf::from_path_buf(dir.path().join("manifest.json")).map_err(|p| {
                    Error::io("writing", p.to_string_lossy().into_owned())(std::io::Error::other(
                        "non-UTF-8 path",
                    ))
                })?;
            store.get(uri, &path)?;
            std::fs::read(&path).map_err(Error::input_io("reading", &path))?
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(error) => {
            tracing::warn!(%uri, %error, "the earlier manifest cannot be read; nothing in it is reused");
            Ok(None)
        }
    }
}

/// An output of an earlier finished step, checked and available as a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReusedOutput {
    /// The record for the new manifest: the name, its URI under the prefix, size, SHA-256.
    pub record: OutputRecord,
    /// The local file: the output itself when the prefix is local, else a verified copy in
    /// the fetch directory.
    pub path: Utf8PathBuf,
}

/// Why a step runs although the run resumes: what [`try_reuse`] found. Recorded as the task's
/// `rerun_reason` in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RerunReason {
    /// No earlier task finished with this cache key (none ran, it failed, or an input, tool,
    /// argument or setting changed).
    NoEarlierTask,
    /// The earlier task recorded no outputs.
    NoOutputs,
    /// An earlier output is missing or has another size than recorded.
    OutputMissing {
        /// The output's URI.
        uri: String,
    },
    /// An earlier output has its recorded size but another SHA-256.
    OutputChanged {
        /// The output's URI.
        uri: String,
    },
    /// The earlier outputs could not be checked (a store could not be asked, a fetch failed).
    CheckFailed {
        /// The error, with its causes.
        error: String,
    },
}

impl std::fmt::Display for RerunReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RerunReason::NoEarlierTask => f.write_str(
                "no earlier task finished with this cache key (none finished, or an input, \
                     a tool version, an argument or a setting changed)",
            ),
            RerunReason::NoOutputs => f.write_str("the earlier task recorded no outputs"),
            RerunReason::OutputMissing { uri } => {
                write!(f, "the earlier output {uri} is missing or changed size")
            }
            RerunReason::OutputChanged { uri } => {
                write!(f, "the earlier output {uri} changed (SHA-256)")
            }
            RerunReason::CheckFailed { error } => {
                write!(f, "the earlier outputs could not be checked: {error}")
            }
        }
    }
}

/// Checks that every output `task` recorded exists as `prefix/<name>` with the recorded size
/// and SHA-256, fetching S3 objects into `fetch_dir` (the checksum is computed over the bytes
/// fetched). The reason, also logged, when any is missing or differs: the step must run.
///
/// # Errors
/// [`RerunReason`]: a missing or changed output, or [`RerunReason::CheckFailed`] when a store
/// cannot be asked, a fetch fails or a local output cannot be read.
pub fn reuse_outputs(
    stores: &Stores,
    task: &RecordedTask,
    prefix: &ObjectUri,
    fetch_dir: &Utf8Path,
) -> Result<Vec<ReusedOutput>, RerunReason> {
    if task.outputs.is_empty() {
        return Err(RerunReason::NoOutputs);
    }
    let check_failed = |error: Error| RerunReason::CheckFailed {
        error: error_chain(&error),
    };
    let mut reused = Vec::new();
    for recorded in &task.outputs {
        let uri = prefix.join(&recorded.name);
        let store = stores.for_uri(&uri).map_err(|e| check_failed(e.into()))?;
        let size = store
            .head(&uri)
            .map_err(|e| check_failed(e.into()))?
            .map(|meta| meta.size);
        if size != Some(recorded.bytes) {
            info!(%uri, recorded_bytes = recorded.bytes, found_bytes = ?size, "an earlier output is missing or changed size; the step runs");
            return Err(RerunReason::OutputMissing {
                uri: uri.to_string(),
            });
        }
        let (path, sha256) = match uri.local_path() {
            Some(path) => (path.to_owned(), file_sha256(path).map_err(check_failed)?),
            None => {
                std::fs::create_dir_all(fetch_dir)
                    .map_err(|e| check_failed(Error::io("creating", fetch_dir)(e)))?;
                let path = fetch_dir.join(&recorded.name);
                let report = store.get(&uri, &path).map_err(|e| check_failed(e.into()))?;
                (path, report.sha256)
            }
        };
        if sha256 != recorded.sha256 {
            info!(%uri, recorded_sha256 = %recorded.sha256, found_sha256 = %sha256, "an earlier output changed; the step runs");
            return Err(RerunReason::OutputChanged {
                uri: uri.to_string(),
            });
        }
        reused.push(ReusedOutput {
            record: OutputRecord {
                name: recorded.name.clone(),
                uri: uri.to_string(),
                bytes: recorded.bytes,
                sha256,
            },
            path,
        });
    }
    Ok(reused)
}

/// Looks for a finished task with `key` in `earlier` and checks its outputs under `prefix`
/// ([`reuse_outputs`]). A storage failure while checking is logged and treated as "run the
/// step": resuming never makes a run fail that would otherwise run.
///
/// # Errors
/// The [`RerunReason`] when the step must run.
pub fn try_reuse(
    stores: &Stores,
    earlier: &EarlierTasks,
    key: &str,
    prefix: &ObjectUri,
    fetch_dir: &Utf8Path,
) -> Result<Vec<ReusedOutput>, RerunReason> {
    let task = earlier.finished(key).ok_or(RerunReason::NoEarlierTask)?;
    reuse_outputs(stores, task, prefix, fetch_dir).inspect_err(|reason| {
        if let RerunReason::CheckFailed { error } = reason {
            tracing::warn!(%error, "could not check an earlier step's outputs; the step runs");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use biojob_core::Contig;
    use biojob_tools::Tool;

    fn toolset() -> Toolset {
        Toolset {
            bwa: ToolPath::new(Tool::Bwa, "/opt/a/bwa"),
            samtools: ToolPath::new(Tool::Samtools, "/opt/a/samtools"),
            bcftools: ToolPath::new(Tool::Bcftools, "/opt/a/bcftools"),
        }
    }

    fn versions() -> ToolVersions {
        ToolVersions {
            bwa: "0.7.18-r1243-dirty".into(),
            samtools: "1.21".into(),
            bcftools: "1.21".into(),
        }
    }

    fn shard(index: usize, name: &str) -> Shard {
        biojob_core::ScatterPlan::by_contig((0..=index).map(|i| {
            Contig::new(
                if i == index {
                    name.to_owned()
                } else {
                    format!("c{i}")
                },
                100,
            )
        }))
        .shards()[index]
            .clone()
    }

    #[test]
    fn the_call_key_changes_with_each_part_of_its_material_and_not_with_tool_paths() {
        let sample = SampleId::new("NA12878").unwrap();
        let chr20 = shard(0, "chr20");
        let base = call_key(&toolset(), &versions(), &sample, &chr20, None, "aa", "bb").key();
        assert_eq!(base.len(), "sha256:".len() + 64);
        assert!(base.starts_with("sha256:"));
        // Same material, same key.
        assert_eq!(
            base,
            call_key(&toolset(), &versions(), &sample, &chr20, None, "aa", "bb").key()
        );
        // The tools' paths are not in the key; their versions are.
        let moved = Toolset {
            bcftools: ToolPath::new(Tool::Bcftools, "/usr/bin/bcftools"),
            ..toolset()
        };
        assert_eq!(
            base,
            call_key(&moved, &versions(), &sample, &chr20, None, "aa", "bb").key()
        );
        let newer = ToolVersions {
            bcftools: "1.22".into(),
            ..versions()
        };
        let others = [
            call_key(&toolset(), &newer, &sample, &chr20, None, "aa", "bb").key(),
            call_key(&toolset(), &versions(), &sample, &chr20, None, "ab", "bb").key(),
            call_key(&toolset(), &versions(), &sample, &chr20, None, "aa", "bc").key(),
            call_key(
                &toolset(),
                &versions(),
                &sample,
                &shard(0, "chr22"),
                None,
                "aa",
                "bb",
            )
            .key(),
            call_key(
                &toolset(),
                &versions(),
                &sample,
                &chr20,
                Some(20),
                "aa",
                "bb",
            )
            .key(),
        ];
        for other in &others {
            assert_ne!(&base, other);
        }
    }

    #[test]
    fn the_align_key_ignores_resources_and_follows_the_read_group() {
        let sample = SampleId::new("NA12878").unwrap();
        let digests = AlignInputDigests {
            fastq_1: "11".into(),
            fastq_2: "22".into(),
            reference: "33".into(),
            bwa_index: [".amb", ".ann", ".bwt", ".pac", ".sa"]
                .iter()
                .map(|e| ((*e).to_owned(), "44".to_owned()))
                .collect(),
        };
        let read_group = ReadGroup::for_sample(&sample);
        let material = align_key(&toolset(), &versions(), &sample, &read_group, &digests);
        let json = serde_json::to_value(&material).unwrap();
        assert_eq!(
            json["commands"][0],
            serde_json::json!([
                "bwa",
                "mem",
                "-t",
                "1",
                "-K",
                BWA_BATCH_BASES.to_string(),
                "-R",
                "@RG\\tID:NA12878\\tSM:NA12878\\tPL:ILLUMINA",
                "<reference>",
                "<fastq_1>",
                "<fastq_2>"
            ])
        );
        assert_eq!(
            json["inputs"],
            serde_json::json!({
                "fastq_1": "11", "fastq_2": "22", "reference": "33",
                "bwa_index.amb": "44", "bwa_index.ann": "44", "bwa_index.bwt": "44",
                "bwa_index.pac": "44", "bwa_index.sa": "44"
            })
        );
        // Another bwa index for the same FASTA (built from an edited copy): another key.
        let mut stale = digests.clone();
        stale.bwa_index.insert(".bwt".into(), "45".into());
        assert_ne!(
            material.key(),
            align_key(&toolset(), &versions(), &sample, &read_group, &stale).key()
        );
        assert_eq!(json["step_format_version"], STEP_FORMAT_VERSION);
        let other_group = read_group.clone().with_library("lib2").unwrap();
        assert_ne!(
            material.key(),
            align_key(&toolset(), &versions(), &sample, &other_group, &digests).key()
        );
    }

    fn output(dir: &Utf8Path, name: &str, content: &[u8]) -> OutputRecord {
        std::fs::write(dir.join(name), content).unwrap();
        OutputRecord {
            name: name.to_owned(),
            uri: dir.join(name).to_string(),
            bytes: content.len() as u64,
            sha256: hex(&Sha256::digest(content)),
        }
    }

    #[test]
    fn outputs_are_reused_only_with_their_recorded_size_and_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let task = RecordedTask {
            step: "call".into(),
            contig: Some("chr20".into()),
            status: "succeeded".into(),
            cache_key: Some("sha256:k".into()),
            outputs: vec![
                output(dir, "a.vcf.gz", b"abcd"),
                output(dir, "a.vcf.gz.tbi", b"xy"),
            ],
        };
        let stores = Stores::local_only();
        let prefix = ObjectUri::Local(dir.to_owned());
        let reused = reuse_outputs(&stores, &task, &prefix, &dir.join("fetch")).unwrap();
        assert_eq!(
            reused.iter().map(|r| r.path.clone()).collect::<Vec<_>>(),
            [dir.join("a.vcf.gz"), dir.join("a.vcf.gz.tbi")]
        );
        let uri = dir.join("a.vcf.gz").to_string();
        // One byte changed, same size: not reused.
        std::fs::write(dir.join("a.vcf.gz"), b"abce").unwrap();
        let reason = reuse_outputs(&stores, &task, &prefix, &dir.join("fetch")).unwrap_err();
        assert_eq!(reason, RerunReason::OutputChanged { uri: uri.clone() });
        assert_eq!(
            reason.to_string(),
            format!("the earlier output {uri} changed (SHA-256)")
        );
        // Truncated: not reused.
        std::fs::write(dir.join("a.vcf.gz"), b"abc").unwrap();
        let reason = reuse_outputs(&stores, &task, &prefix, &dir.join("fetch")).unwrap_err();
        assert_eq!(
            reason.to_string(),
            format!("the earlier output {uri} is missing or changed size")
        );
        // Missing: not reused.
        std::fs::remove_file(dir.join("a.vcf.gz")).unwrap();
        assert_eq!(
            reuse_outputs(&stores, &task, &prefix, &dir.join("fetch")).unwrap_err(),
            RerunReason::OutputMissing { uri }
        );
    }

    #[test]
    fn files_are_hashed_in_order_and_a_missing_one_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(dir.join("a"), b"abc").unwrap();
        std::fs::write(dir.join("b"), b"").unwrap();
        assert_eq!(
            files_sha256(&[&dir.join("a"), &dir.join("b")]).unwrap(),
            [
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            ]
        );
        let error = files_sha256(&[&dir.join("a"), &dir.join("missing")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("opening {}", dir.join("missing"))
        );
    }

    #[test]
    fn the_reference_digest_covers_the_fasta_and_its_fai() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(dir.join("ref.fa"), b">c\nACGT\n").unwrap();
        std::fs::write(dir.join("ref.fa.fai"), b"c\t4\t3\t4\t5\n").unwrap();
        let reference = PreparedReference {
            fasta: dir.join("ref.fa"),
            fai: dir.join("ref.fa.fai"),
            bwa_prefix: None,
            contigs: Vec::new(),
            built: Vec::new(),
        };
        let [fasta, fai] = [&reference.fasta, &reference.fai].map(|p| file_sha256(p).unwrap());
        let expected = hex(&Sha256::digest(format!("fasta:{fasta}\nfai:{fai}\n")));
        assert_eq!(reference_sha256(&reference).unwrap(), expected);
        // A stale .fai (other offsets), same FASTA: another digest.
        std::fs::write(dir.join("ref.fa.fai"), b"c\t4\t2\t4\t5\n").unwrap();
        assert_ne!(reference_sha256(&reference).unwrap(), expected);
    }

    #[test]
    fn only_finished_tasks_with_the_same_key_are_found() {
        let task = |status: &str, key: Option<&str>| RecordedTask {
            step: "align".into(),
            contig: None,
            status: status.into(),
            cache_key: key.map(str::to_owned),
            outputs: Vec::new(),
        };
        assert!(task("succeeded", Some("k")).finished_with("k"));
        assert!(task("cached", Some("k")).finished_with("k"));
        assert!(!task("failed", Some("k")).finished_with("k"));
        assert!(!task("skipped", Some("k")).finished_with("k"));
        assert!(!task("succeeded", Some("j")).finished_with("k"));
        assert!(!task("succeeded", None).finished_with("k"));
    }

    #[test]
    fn a_run_manifest_that_does_not_parse_gives_nothing_to_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let stores = Stores::local_only();
        let uri = ObjectUri::Local(dir.join("manifest.json"));
        assert_eq!(
            EarlierTasks::from_run_manifest(&stores, &uri).unwrap(),
            EarlierTasks::default()
        );
        // Cut off mid-way, as by a crash while it was written elsewhere and copied.
        std::fs::write(
            dir.join("manifest.json"),
            br#"{"tasks": [{"step": "align", "#,
        )
        .unwrap();
        assert_eq!(
            EarlierTasks::from_run_manifest(&stores, &uri).unwrap(),
            EarlierTasks::default()
        );
        std::fs::write(
            dir.join("manifest.json"),
            br#"{"read_pairs": 5, "tasks": [{"step": "align", "status": "succeeded", "cache_key": "sha256:k", "outputs": []}]}"#,
        )
        .unwrap();
        let earlier = EarlierTasks::from_run_manifest(&stores, &uri).unwrap();
        assert_eq!(earlier.read_pairs, Some(5));
        assert_eq!(
            earlier.finished("sha256:k").map(|t| t.step.as_str()),
            Some("align")
        );
        assert_eq!(earlier.finished("sha256:j"), None);
    }
}
