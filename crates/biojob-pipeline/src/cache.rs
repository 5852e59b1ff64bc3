//! The step cache: a content key per step and shard, and the reuse of a finished step's
//! outputs when an earlier manifest records the same key. The rules (what a key covers, when
//! outputs are reused, what a new manifest keeps of the one it replaces) are in
//! docs/resume.md.

use std::collections::BTreeMap;
use std::io::Read;

use biojob_storage::{ObjectUri, Stores, hex};
use biojob_tools::{Aligner, ToolVersions};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::{
    Error, OutputRecord, PreparedReference, RunManifest, StepManifest, StepPlan, TaskRecord,
    error_chain,
};

/// Version of what biojob's steps do, part of every cache key: bumped when a step's commands,
/// checks or outputs change in a way its plan does not show, so that no earlier output is
/// reused across the change.
pub const STEP_FORMAT_VERSION: u32 = 3;

/// What a step's cache key is the digest of: see [`CacheKeyMaterial::for_plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheKeyMaterial {
    step_format_version: u32,
    step: String,
    shard: Option<String>,
    /// Input role (`fastq_1`, `reference`, `vcf.0001`) → SHA-256 of its content, lowercase hex.
    inputs: BTreeMap<String, String>,
    /// Tool name → version.
    tools: BTreeMap<String, String>,
    /// Each command's argv, with the program replaced by the tool's name.
    commands: Vec<Vec<String>>,
    /// The plan's parameters: settings that change the outputs but appear in no argv.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    parameters: BTreeMap<String, String>,
    /// The files the plan writes before its commands (placeholder path → content): a
    /// regions file holds what an inline `-r` would.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    files: BTreeMap<String, String>,
}

impl CacheKeyMaterial {
    /// The material of `plan`, made for the key ([`crate::PlanContext::for_key`]: paths as
    /// placeholders, fixed resources), of the shard `shard` (its region, or `None`), with the
    /// versions of the tools it runs and the SHA-256 of each input's content by role
    /// (`inputs`), computed by biojob over the bytes: never an S3 ETag or a composite
    /// checksum, which differ for the same content uploaded in another number of parts.
    pub fn for_plan(
        plan: &StepPlan,
        shard: Option<String>,
        versions: &ToolVersions,
        inputs: BTreeMap<String, String>,
    ) -> Self {
        CacheKeyMaterial {
            step_format_version: STEP_FORMAT_VERSION,
            step: plan.step.as_str().to_owned(),
            shard,
            inputs,
            tools: plan
                .tools()
                .into_iter()
                .map(|tool| (tool.name().to_owned(), versions.of(tool).to_owned()))
                .collect(),
            commands: plan
                .pipelines
                .iter()
                .flatten()
                .map(crate::PlannedCommand::key_argv)
                .collect(),
            parameters: plan.parameters.clone(),
            files: plan
                .files
                .iter()
                .map(|file| (file.path.to_string(), file.contents.clone()))
                .collect(),
        }
    }

    /// The key: `sha256:` and the lowercase hex SHA-256 of the material's JSON.
    pub fn key(&self) -> String {
        // Serialising plain strings, numbers and maps cannot fail; an empty digest input would
        // still give a key no other material gives.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("sha256:{}", hex(&Sha256::digest(&json)))
    }
}

/// The reference's digest in the align and call keys: the SHA-256 (lowercase hex) of
/// `fasta:<FASTA's SHA-256>\nfai:<.fai's SHA-256>\n`, the two files read in parallel. The `.fai`
/// is in it because bcftools mpileup reads the FASTA through its offsets.
///
/// # Errors
/// [`Error::Io`] (input side) when either file cannot be read.
pub fn reference_sha256(reference: &PreparedReference) -> Result<String, Error> {
    reference_sha256_until(reference, &|| None)
}

/// As [`reference_sha256`], giving up as [`file_sha256_until`] does.
pub(crate) fn reference_sha256_until(
    reference: &PreparedReference,
    stop: Stop<'_>,
) -> Result<String, Error> {
    let digests = reference_files_sha256(reference, &[&reference.fasta, &reference.fai], stop)?;
    let (fasta, fai) = (
        digests.first().map_or("", String::as_str),
        digests.get(1).map_or("", String::as_str),
    );
    Ok(hex(&Sha256::digest(format!("fasta:{fasta}\nfai:{fai}\n"))))
}

/// SHA-256 (lowercase hex) of each index file of `aligner` for `reference` by its suffix
/// ([`Aligner::index_suffixes`]: `.amb .ann .bwt .pac .sa` for bwa, `.0123 .amb .ann
/// .bwt.2bit.64 .pac` for bwa-mem2), read in parallel; empty when the index was not prepared.
/// These are the files the aligner's `mem` reads.
///
/// # Errors
/// [`Error::Io`] (input side) when an index file cannot be read.
pub fn bwa_index_sha256(
    reference: &PreparedReference,
    aligner: Aligner,
) -> Result<BTreeMap<String, String>, Error> {
    bwa_index_sha256_until(reference, aligner, &|| None)
}

/// As [`bwa_index_sha256`], giving up as [`file_sha256_until`] does.
pub(crate) fn bwa_index_sha256_until(
    reference: &PreparedReference,
    aligner: Aligner,
    stop: Stop<'_>,
) -> Result<BTreeMap<String, String>, Error> {
    let Some(prefix) = &reference.bwa_prefix else {
        return Ok(BTreeMap::new());
    };
    let files = aligner.index_files(prefix);
    let paths: Vec<&Utf8Path> = files.iter().map(Utf8PathBuf::as_path).collect();
    let digests = reference_files_sha256(reference, &paths, stop)?;
    Ok(aligner
        .index_suffixes()
        .into_iter()
        .map(str::to_owned)
        .zip(digests)
        .collect())
}

/// SHA-256 of each of `paths`, files of `reference`: those hashed while it was prepared
/// ([`PreparedReference::digests`]) are not read again, the others are read in parallel.
fn reference_files_sha256(
    reference: &PreparedReference,
    paths: &[&Utf8Path],
    stop: Stop<'_>,
) -> Result<Vec<String>, Error> {
    let missing: Vec<&Utf8Path> = paths
        .iter()
        .copied()
        .filter(|path| !reference.digests.contains_key(*path))
        .collect();
    let mut hashed = missing.iter().zip(files_sha256_until(&missing, stop)?);
    Ok(paths
        .iter()
        .map(|path| match reference.digests.get(*path) {
            Some(known) => known.clone(),
            None => hashed.next().map(|(_, sha256)| sha256).unwrap_or_default(),
        })
        .collect())
}

/// SHA-256 of the file at `path`, lowercase hex.
///
/// # Errors
/// [`Error::Io`] (input side) when the file cannot be read.
pub fn file_sha256(path: &Utf8Path) -> Result<String, Error> {
    file_sha256_until(path, &|| None)
}

/// What tells a long read to stop: `Some(error)` once it must (a SIGTERM, the step's time
/// limit: [`crate::StepContext::stopped`]).
pub(crate) type Stop<'a> = &'a (dyn Fn() -> Option<Error> + Sync);

/// How many bytes are hashed between two looks at the [`Stop`].
const STOP_CHECK_BYTES: u64 = 16 << 20;

/// As [`file_sha256`], giving up with `stop`'s error as soon as it has one (looked at every
/// 16 MiB): hashing a FASTQ pair of 100 GB takes minutes, and a SIGTERM must end the job
/// within its grace period.
pub(crate) fn file_sha256_until(path: &Utf8Path, stop: Stop<'_>) -> Result<String, Error> {
    let mut file = std::fs::File::open(path).map_err(Error::input_io("opening", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut since_check = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(Error::input_io("reading", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        since_check += n as u64;
        if since_check >= STOP_CHECK_BYTES {
            since_check = 0;
            if let Some(error) = stop() {
                return Err(error);
            }
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of each file of `paths`, lowercase hex, in order; the files are read in parallel,
/// one thread each (for the FASTQ pair, which are read whole).
///
/// # Errors
/// As [`file_sha256`], for the first file that fails.
pub fn files_sha256(paths: &[&Utf8Path]) -> Result<Vec<String>, Error> {
    files_sha256_until(paths, &|| None)
}

/// As [`files_sha256`], each file giving up as [`file_sha256_until`] does.
pub(crate) fn files_sha256_until(
    paths: &[&Utf8Path],
    stop: Stop<'_>,
) -> Result<Vec<String>, Error> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .map(|path| scope.spawn(move || file_sha256_until(path, stop)))
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

/// The finished tasks an earlier run or step job recorded under an output prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EarlierTasks {
    tasks: Vec<TaskRecord>,
    /// The run manifest's `read_pairs`, when it has one.
    pub read_pairs: Option<u64>,
}

impl EarlierTasks {
    /// The tasks (`tasks` and `earlier_tasks`) of the run manifest (`manifest.json`) at `uri`;
    /// none when it does not exist or cannot be parsed (then nothing is reused, and a warning
    /// says why).
    ///
    /// # Errors
    /// A storage error when the store cannot be asked or the manifest cannot be fetched.
    pub fn from_run_manifest(stores: &Stores, uri: &ObjectUri) -> Result<EarlierTasks, Error> {
        Ok(read_json::<RunManifest>(stores, uri)?
            .map(EarlierTasks::of_run)
            .unwrap_or_default())
    }

    /// The tasks (`tasks` and `earlier_tasks`) of the run manifest `manifest`.
    pub fn of_run(manifest: RunManifest) -> EarlierTasks {
        EarlierTasks {
            tasks: manifest
                .tasks
                .into_iter()
                .chain(manifest.earlier_tasks)
                .collect(),
            read_pairs: manifest.read_pairs,
        }
    }

    /// The task (and `earlier_task`) of the step manifest
    /// (`<sample>.<step>[.<shard>].manifest.json`) at `uri`; none when it does not exist or
    /// cannot be parsed.
    ///
    /// # Errors
    /// A storage error when the store cannot be asked or the manifest cannot be fetched.
    pub fn from_step_manifest(stores: &Stores, uri: &ObjectUri) -> Result<EarlierTasks, Error> {
        Ok(EarlierTasks {
            tasks: read_json::<StepManifest>(stores, uri)?
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
    pub fn finished(&self, key: &str) -> Option<&TaskRecord> {
        self.tasks.iter().find(|task| task.finished_with(key))
    }
}

/// Before `manifest` replaces the run manifest at `uri`: sets its `earlier_tasks` to the
/// finished tasks (with a cache key) that the manifest at `uri` records in `tasks` or
/// `earlier_tasks`, as recorded, for each step and shard that `manifest` has not finished;
/// and, when the earlier align task is among them and `manifest` has no `read_pairs`, takes the
/// earlier `read_pairs`. An absent or unreadable earlier manifest carries nothing (logged):
/// writing a manifest never fails on it.
pub fn carry_forward(stores: &Stores, uri: &ObjectUri, manifest: &mut RunManifest) {
    if let Some(earlier) = earlier_run_manifest(stores, uri) {
        carry_forward_from(&earlier, manifest);
    }
}

/// The run manifest at `uri`, to carry its finished tasks forward ([`carry_forward_from`]);
/// `None` when absent or unreadable (logged).
pub fn earlier_run_manifest(stores: &Stores, uri: &ObjectUri) -> Option<RunManifest> {
    match read_json::<RunManifest>(stores, uri) {
        Ok(earlier) => earlier,
        Err(error) => {
            tracing::warn!(%uri, error = %error_chain(&error), "could not read the earlier manifest; its finished tasks are not carried forward");
            None
        }
    }
}

/// As [`carry_forward`], from the `earlier` manifest already read.
pub fn carry_forward_from(earlier: &RunManifest, manifest: &mut RunManifest) {
    let earlier = earlier.clone();
    type Identity = (
        crate::StepId,
        Option<usize>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let identity = |task: &TaskRecord| -> Identity {
        (
            task.step,
            task.shard,
            task.contig.clone(),
            task.sample.clone(),
            task.lane.clone(),
        )
    };
    let mut seen: std::collections::BTreeSet<Identity> = manifest
        .tasks
        .iter()
        .filter(|task| task.status.finished())
        .map(identity)
        .collect();
    let mut carried = Vec::new();
    let mut align_carried = false;
    for task in earlier.tasks.into_iter().chain(earlier.earlier_tasks) {
        if !task.reusable() || !seen.insert(identity(&task)) {
            continue;
        }
        align_carried |= task.step == crate::StepId::Align && task.shard.is_none();
        carried.push(task);
    }
    if align_carried && manifest.read_pairs.is_none() {
        manifest.read_pairs = earlier.read_pairs;
    }
    if !carried.is_empty() {
        tracing::debug!(
            tasks = carried.len(),
            "keeping the earlier run's finished tasks in the manifest"
        );
    }
    manifest.earlier_tasks = carried;
}

/// The finished task (with a cache key) that the step manifest at `uri` records as `task` or,
/// failing that, as `earlier_task`; `None` when there is none or the manifest cannot be read
/// (logged). A step job whose own task did not finish keeps it as `earlier_task`.
pub fn earlier_step_task(stores: &Stores, uri: &ObjectUri) -> Option<TaskRecord> {
    let earlier = match read_json::<StepManifest>(stores, uri) {
        Ok(earlier) => earlier?,
        Err(error) => {
            tracing::warn!(%uri, error = %error_chain(&error), "could not read the earlier step manifest; its finished task is not carried forward");
            return None;
        }
    };
    std::iter::once(earlier.task)
        .chain(earlier.earlier_task)
        .find(TaskRecord::reusable)
}

/// The manifest at `uri` parsed as `T`; `None` when absent or unparsable.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
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
    task: &TaskRecord,
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
                verified: format!("reused: {} bytes, SHA-256", recorded.bytes),
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
    use crate::{StepId, TaskStatus};

    fn output(dir: &Utf8Path, name: &str, content: &[u8]) -> OutputRecord {
        std::fs::write(dir.join(name), content).unwrap();
        OutputRecord {
            name: name.to_owned(),
            uri: dir.join(name).to_string(),
            bytes: content.len() as u64,
            sha256: hex(&Sha256::digest(content)),
            verified: String::new(),
        }
    }

    fn task(status: TaskStatus, key: Option<&str>, outputs: Vec<OutputRecord>) -> TaskRecord {
        TaskRecord {
            status,
            cache_key: key.map(str::to_owned),
            outputs,
            ..TaskRecord::new(
                StepId::Call,
                Some(crate::TaskShard::region(0, "chr20")),
                std::time::SystemTime::UNIX_EPOCH,
                std::time::Duration::ZERO,
                &[],
            )
        }
    }

    #[test]
    fn outputs_are_reused_only_with_their_recorded_size_and_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let task = task(
            TaskStatus::Succeeded,
            Some("sha256:k"),
            vec![
                output(dir, "a.vcf.gz", b"abcd"),
                output(dir, "a.vcf.gz.tbi", b"xy"),
            ],
        );
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
            digests: Default::default(),
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
        let with = |status, key: Option<&str>| task(status, key, Vec::new());
        assert!(with(TaskStatus::Succeeded, Some("k")).finished_with("k"));
        assert!(with(TaskStatus::Cached, Some("k")).finished_with("k"));
        assert!(!with(TaskStatus::Failed, Some("k")).finished_with("k"));
        assert!(!with(TaskStatus::Skipped, Some("k")).finished_with("k"));
        assert!(!with(TaskStatus::Succeeded, Some("j")).finished_with("k"));
        assert!(!with(TaskStatus::Succeeded, None).finished_with("k"));
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
    }
}
