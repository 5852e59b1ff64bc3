//! The `prepare-reference` step: the FASTA index (`.fai`) and the bwa index, built once,
//! atomically, beside the FASTA when its directory is writable, else in the cache directory.

use std::io::Write;
use std::time::SystemTime;

use std::collections::BTreeMap;

use biojob_core::{Contig, StepId, contig_name_error};
use biojob_formats::{
    FileDigest, FormatError, IndexProvenance, check_bwa_index_matches_fasta,
    check_fai_covers_fasta, check_fasta_layout, read_fai,
};
use biojob_process::StageReport;
use biojob_tools::{Aligner, Tool, bwa_index, check_bwa_mem2_index_memory, samtools_faidx};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::job::REFERENCE;
use crate::{Error, PlanContext, StepContext, StepPlan};

/// A reference ready for the tools: the FASTA path they are given, with its `.fai` (and, when
/// asked for, the aligner's index) beside it under the names the tools expect.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreparedReference {
    /// The FASTA the tools read (the original, or a link to it in the cache directory).
    pub fasta: Utf8PathBuf,
    /// `<fasta>.fai`.
    pub fai: Utf8PathBuf,
    /// The aligner's index prefix (`<fasta>`), when its index was prepared: the files
    /// [`Aligner::index_files`] names for the toolset's aligner (bwa's or bwa-mem2's).
    pub bwa_prefix: Option<Utf8PathBuf>,
    /// The contigs of the `.fai`, in file order.
    pub contigs: Vec<Contig>,
    /// Index files built by this call (empty when everything was already present).
    pub built: Vec<Utf8PathBuf>,
    /// SHA-256 (lowercase hex) of the files hashed while preparing (the FASTA and the bwa
    /// index, to check the index's provenance), by path: the cache keys reuse them.
    #[serde(skip)]
    pub digests: BTreeMap<Utf8PathBuf, String>,
}

impl PreparedReference {
    /// The contig named `name`.
    pub fn contig(&self, name: &str) -> Option<&Contig> {
        self.contigs.iter().find(|contig| contig.name == name)
    }
}

/// What to prepare and where the cache lives.
#[derive(Debug, Clone)]
pub struct ReferenceOptions {
    /// Where indexes go when the FASTA's directory is read-only, and where a `.fa.gz` is
    /// decompressed.
    pub cache_dir: Utf8PathBuf,
    /// Whether the aligner's index is needed (align needs it; call and gather do not). The
    /// aligner is the toolset's ([`biojob_tools::Toolset::aligner`]).
    pub bwa_index: bool,
    /// What to do with an index that does not belong to the FASTA.
    pub stale_index: StaleIndex,
}

/// What [`prepare_reference`] does with a `.fai` or bwa index beside the FASTA that does not
/// belong to it (built from another FASTA, or from an earlier version of this one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StaleIndex {
    /// Rebuild it when its directory is writable (with a warning), else refuse it.
    #[default]
    Rebuild,
    /// Refuse it (input class): an index staged from S3, whose stale objects would stay in
    /// the bucket for the next job.
    Refuse,
}

/// Checks that `fasta` starts like a FASTA file: its first byte is the `>` of a header line
/// (FASTA as samtools `faidx` reads it). `samtools faidx` would index a FASTQ file too, and
/// fails on an empty file with a message that does not name the cause.
///
/// # Errors
/// [`Error::Input`] for an empty file, a FASTQ file (`@` first) or any other first byte;
/// [`Error::Io`]-class input errors when it cannot be read.
fn check_fasta_start(fasta: &Utf8Path) -> Result<(), Error> {
    let mut first = [0u8; 1];
    let read = std::fs::File::open(fasta)
        .and_then(|mut file| std::io::Read::read(&mut file, &mut first))
        .map_err(Error::input_io("reading", fasta))?;
    let problem = match (read, first[0]) {
        (0, _) => "is empty".to_owned(),
        (_, b'>') => return Ok(()),
        (_, b'@') => "is FASTQ (it starts with '@'), not FASTA".to_owned(),
        (_, byte) => format!(
            "is not FASTA: it starts with {:?}, not a '>' header line",
            char::from(byte)
        ),
    };
    Err(Error::Input {
        message: format!("reference {fasta} {problem}"),
        remedy: Some(
            "REFERENCE (or REFERENCE_NAME) must name a FASTA file (.fa, .fasta or .fa.gz) whose \
             first line is a '>name' header"
                .into(),
        ),
    })
}

/// Makes `source` (a `.fa`, `.fasta` or gzip-compressed `.fa.gz`) ready for the tools.
///
/// Builds the missing `.fai` and the toolset's aligner's index ([`Aligner::index_files`]; an
/// index counts as present when it exists, is not empty and is not older than the FASTA)
/// through a temporary directory renamed into place; beside the FASTA, or under
/// `<cache_dir>/references/<key>/` when its directory is read-only or it is a `.fa.gz`
/// (docs/running.md). An index is used only when it belongs to the FASTA
/// ([`check_fai_covers_fasta`], [`IndexProvenance`], [`check_bwa_index_matches_fasta`];
/// docs/formats.md, "Indexes and the files they belong to"); one that does not is rebuilt
/// where `options.stale_index` and its directory allow, else refused. Returns the prepared
/// reference and the reports of the tools it ran.
///
/// # Errors
/// [`Error::Input`] when the FASTA is missing, empty or not FASTA ([`check_fasta_start`]), a
/// contig name is invalid in SAM/VCF, a record's name is used twice, or a bwa index of other
/// contigs is not rebuilt; [`Error::Format`] (input class) for uneven FASTA lines or an index
/// that does not belong to the FASTA and is not rebuilt; [`Error::Usage`] when bwa-mem2's index
/// must be built and the job's memory is below what the build needs; [`Error::Process`] when a
/// tool fails; [`Error::Io`] on cache I/O failures.
pub fn prepare_reference(
    source: &Utf8Path,
    options: &ReferenceOptions,
    context: &StepContext,
) -> Result<(PreparedReference, Vec<StageReport>), Error> {
    let source_meta = std::fs::metadata(source).map_err(|error| Error::Input {
        message: format!("reference {source} cannot be read: {error}"),
        remedy: Some(
            "check REFERENCE_NAME and the reference prefix, or give REFERENCE explicitly".into(),
        ),
    })?;
    if let Some(kind) = biojob_core::non_regular_file_kind(source_meta.file_type()) {
        return Err(Error::Input {
            message: format!("reference {source} is {kind}, not a regular file"),
            remedy: Some(
                "give a regular file (write a pipe's or a device's output to a file first)".into(),
            ),
        });
    }
    let mut reports = Vec::new();
    let mut built = Vec::new();
    let aligner = context.toolset().aligner();

    let mut fasta = source.to_owned();
    if source.extension() == Some("gz") {
        let dir = cache_key_dir(&options.cache_dir, source, &source_meta)?;
        let name = source
            .file_stem()
            .map_or_else(|| "reference.fa".to_owned(), str::to_owned);
        let target = dir.join(name);
        if !is_fresh(&target, modified(&source_meta)) {
            decompress_gzip(source, &target)?;
            built.push(target.clone());
        }
        fasta = target;
    }

    let fasta_meta = std::fs::metadata(&fasta).map_err(Error::input_io("reading", &fasta))?;
    check_fasta_start(&fasta)?;
    let fasta_time = modified(&fasta_meta);
    let name = fasta
        .file_name()
        .ok_or_else(|| Error::Input {
            message: format!("reference {fasta} has no file name"),
            remedy: None,
        })?
        .to_owned();
    let wanted = |dir: &Utf8Path| -> Vec<Utf8PathBuf> {
        let prefix = dir.join(&name);
        let mut files = vec![Utf8PathBuf::from(format!("{prefix}.fai"))];
        if options.bwa_index {
            files.extend(aligner.index_files(&prefix));
        }
        files
    };
    let original_dir = fasta.parent().unwrap_or(Utf8Path::new(".")).to_owned();
    let all_fresh = |dir: &Utf8Path| wanted(dir).iter().all(|f| is_fresh(f, fasta_time));

    let dir = if all_fresh(&original_dir) || is_writable_dir(&original_dir) {
        original_dir.clone()
    } else {
        let dir = cache_key_dir(&options.cache_dir, &fasta, &fasta_meta)?;
        let linked = dir.join(&name);
        let canonical = fasta
            .canonicalize_utf8()
            .map_err(Error::input_io("resolving", &fasta))?;
        link_if_missing(&canonical, &linked)?;
        // Sidecars that are already present beside the original are reused through links.
        for original in wanted(&original_dir) {
            if is_fresh(&original, fasta_time)
                && let Some(file_name) = original.file_name()
            {
                let target = original
                    .canonicalize_utf8()
                    .map_err(Error::input_io("resolving", &original))?;
                link_if_missing(&target, &dir.join(file_name))?;
            }
        }
        dir
    };
    let prefix = dir.join(&name);
    let fasta_for_tools = prefix.clone();
    let fai = Utf8PathBuf::from(format!("{prefix}.fai"));

    let may_rebuild =
        |dir: &Utf8Path| options.stale_index == StaleIndex::Rebuild && is_writable_dir(dir);
    let mut fai_built = false;
    if !is_fresh(&fai, fasta_time) {
        reports.push(build_fai(context, &dir, &name, &fasta_for_tools, &fai)?);
        built.push(fai.clone());
        fai_built = true;
    }
    match check_fai_covers_fasta(&fasta_for_tools, &fai) {
        Ok(()) => {}
        Err(error) if fai_built => return Err(unlisted_records(&fasta_for_tools, error)),
        Err(FormatError::IndexMismatch { reason, .. }) if may_rebuild(&dir) => {
            warn!(fai = %fai, %reason, "the FASTA index does not belong to the FASTA; rebuilding it");
            reports.push(build_fai(context, &dir, &name, &fasta_for_tools, &fai)?);
            built.push(fai.clone());
            check_fai_covers_fasta(&fasta_for_tools, &fai)
                .map_err(|error| unlisted_records(&fasta_for_tools, error))?;
        }
        Err(error) => return Err(error.into()),
    }
    let contigs = read_fai(&fai)?;
    for contig in &contigs {
        if let Some(reason) = contig_name_error(&contig.name) {
            return Err(Error::Input {
                message: format!(
                    "reference contig name {:?} in {fai} is invalid in SAM and VCF: {reason}",
                    contig.name
                ),
                remedy: Some("rename the contig in the FASTA header".into()),
            });
        }
    }

    let mut digests = BTreeMap::new();
    let bwa_prefix = if options.bwa_index {
        let files = aligner.index_files(&prefix);
        let mut fresh = files.iter().all(|f| is_fresh(f, fasta_time));
        if fresh
            && let Some(problem) = bwa_index_problem(
                &fasta_for_tools,
                (&prefix, &files),
                &contigs,
                &fai,
                is_writable_dir(&dir),
                &mut digests,
                context,
            )?
        {
            if !may_rebuild(&dir) {
                return Err(problem);
            }
            warn!(prefix = %prefix, problem = %crate::error_chain(&problem), "the bwa index does not belong to the FASTA; rebuilding it");
            fresh = false;
        }
        if !fresh {
            if aligner == Aligner::BwaMem2 {
                let bases = contigs.iter().map(|contig| contig.length).sum();
                check_bwa_mem2_index_memory(bases, context.resources().memory_bytes).map_err(
                    |error| Error::Usage {
                        message: format!("{error} (reference {fasta_for_tools})"),
                        remedy: Some(format!(
                            "or build the index once where the memory is (biojob \
                             prepare-reference --aligner bwa-mem2) and keep its files ({}) \
                             beside the FASTA",
                            aligner.index_suffixes().join(" ")
                        )),
                    },
                )?;
            }
            let staging = staging_dir(&dir)?;
            let staging_prefix = staging_path(&staging, &name);
            let report = context.supervisor.run(bwa_index(
                &context.toolset().bwa,
                &fasta_for_tools,
                &staging_prefix,
            ))?;
            reports.push(report);
            for (from, to) in aligner.index_files(&staging_prefix).iter().zip(&files) {
                rename(from, to)?;
                built.push(to.clone());
            }
            info!(prefix = %prefix, %aligner, "built the aligner's index");
            let provenance = provenance_of(&fasta_for_tools, &files, &mut digests, context)?;
            write_provenance(&prefix, &provenance);
        }
        Some(prefix.clone())
    } else {
        None
    };

    Ok((
        PreparedReference {
            fasta: fasta_for_tools,
            fai,
            bwa_prefix,
            contigs,
            built,
            digests,
        },
        reports,
    ))
}

/// Checks the layout of `fasta` ([`check_fasta_layout`]: what `samtools faidx` needs, named
/// by contig and line), then builds its `.fai` at `fai` through a temporary directory in
/// `dir`.
fn build_fai(
    context: &StepContext,
    dir: &Utf8Path,
    name: &str,
    fasta: &Utf8Path,
    fai: &Utf8Path,
) -> Result<StageReport, Error> {
    check_fasta_layout(fasta)?;
    let staging = staging_dir(dir)?;
    let partial = staging_path(&staging, &format!("{name}.fai"));
    let report =
        context
            .supervisor
            .run(samtools_faidx(&context.toolset().samtools, fasta, &partial))?;
    rename(&partial, fai)?;
    info!(fai = %fai, "built the FASTA index");
    Ok(report)
}

/// The error of a `.fai` just built from `fasta` that does not cover it: a record it does not
/// list can only be a second record of a name (`samtools faidx` indexes the first only).
fn unlisted_records(fasta: &Utf8Path, error: FormatError) -> Error {
    match error {
        FormatError::IndexMismatch { reason, .. } => Error::Input {
            message: format!(
                "{fasta}: {reason}; a contig name used twice? (samtools faidx indexes only the \
                 first record of a name)"
            ),
            remedy: Some("give each record of the FASTA its own name".into()),
        },
        other => other.into(),
    }
}

/// Why the aligner's index at `prefix` (its `files`, found fresh beside `fasta`) does not
/// belong to it, or `None` when it does: its `.ann` must list the `.fai`'s contigs ([`bwa_index_mismatch`], cheap),
/// then its [`IndexProvenance`] record must match the files' digests, else the full check
/// ([`check_bwa_index_matches_fasta`], one pass over the FASTA and the `.pac`) must pass, and
/// then the record is written (when `writable`). The digests computed go into `digests`.
fn bwa_index_problem(
    fasta: &Utf8Path,
    (prefix, files): (&Utf8Path, &[Utf8PathBuf]),
    contigs: &[Contig],
    fai: &Utf8Path,
    writable: bool,
    digests: &mut BTreeMap<Utf8PathBuf, String>,
    context: &StepContext,
) -> Result<Option<Error>, Error> {
    if let Some(mismatch) = bwa_index_mismatch(prefix, contigs)? {
        return Ok(Some(Error::Input {
            message: format!(
                "the bwa index {prefix}.ann does not belong to the FASTA: {mismatch} (the FASTA's index is {fai})"
            ),
            remedy: Some(
                "rebuild the bwa index from this FASTA (bwa index), or remove the stale index files"
                    .into(),
            ),
        }));
    }
    let current = provenance_of(fasta, files, digests, context)?;
    let record_path = IndexProvenance::path(prefix);
    let why = match IndexProvenance::read(&record_path) {
        Ok(Some(record)) => match record.difference(&current) {
            None => {
                info!(prefix = %prefix, "the bwa index's provenance record vouches for it");
                return Ok(None);
            }
            Some(difference) => difference,
        },
        Ok(None) => "no provenance record".to_owned(),
        Err(error) => crate::error_chain(&error),
    };
    info!(prefix = %prefix, reason = %why, "checking the bwa index against the FASTA in full");
    match check_bwa_index_matches_fasta(fasta, prefix) {
        Ok(()) => {
            if writable {
                write_provenance(prefix, &current);
            }
            Ok(None)
        }
        Err(error @ FormatError::Io { .. }) => Err(error.into()),
        Err(error) => Ok(Some(error.into())),
    }
}

/// The provenance record of `fasta` and its bwa index `files`: their sizes and SHA-256, read
/// in parallel (stopping when `context` is stopped), also kept in `digests`.
fn provenance_of(
    fasta: &Utf8Path,
    files: &[Utf8PathBuf],
    digests: &mut BTreeMap<Utf8PathBuf, String>,
    context: &StepContext,
) -> Result<IndexProvenance, Error> {
    let mut paths: Vec<&Utf8Path> = vec![fasta];
    paths.extend(files.iter().map(Utf8PathBuf::as_path));
    let stop = || context.stopped("hashing the reference");
    let sha256 = crate::cache::files_sha256_until(&paths, &stop)?;
    let mut described = Vec::with_capacity(paths.len());
    for (path, sha256) in paths.iter().zip(sha256) {
        digests.insert((*path).to_owned(), sha256.clone());
        described.push(FileDigest {
            name: path.file_name().unwrap_or(path.as_str()).to_owned(),
            bytes: crate::file_bytes(path),
            sha256,
        });
    }
    let mut described = described.into_iter();
    let source = described.next().ok_or_else(|| Error::Usage {
        message: "no FASTA to describe".into(),
        remedy: None,
    })?;
    Ok(IndexProvenance::new(source, described.collect()))
}

/// Writes the provenance record of the index at `prefix`; a failure is only logged (the next
/// run checks the index in full again).
fn write_provenance(prefix: &Utf8Path, provenance: &IndexProvenance) {
    let path = IndexProvenance::path(prefix);
    match provenance.write(&path) {
        Ok(()) => info!(record = %path, "wrote the bwa index's provenance record"),
        Err(error) => {
            warn!(record = %path, error = %crate::error_chain(&error), "could not write the bwa index's provenance record")
        }
    }
}

/// The commands [`prepare_reference`] runs for a FASTA without indexes (it runs only those
/// whose index is missing, into a temporary directory beside their final place): `samtools
/// faidx`, and the aligner's `index` when `bwa_index`. What `--dry-run` prints.
pub fn reference_index_plan(context: &PlanContext<'_>, bwa_index_too: bool) -> StepPlan {
    let fasta = context.input(REFERENCE);
    let fai = Utf8PathBuf::from(format!("{fasta}.fai"));
    let plan = StepPlan::new(StepId::PrepareReference, context.resources)
        .note("builds only the index files that are missing, beside the FASTA or in the cache")
        .command(
            Tool::Samtools,
            samtools_faidx(&context.toolset.samtools, &fasta, &fai),
        );
    if bwa_index_too {
        plan.command(
            context.toolset.bwa.tool,
            bwa_index(&context.toolset.bwa, &fasta, &fasta),
        )
    } else {
        plan
    }
}

/// How the contigs that the bwa index at `prefix` lists in its `.ann` (each contig's name and
/// length, in order) differ from `contigs` (the `.fai`'s); `None` when they are the same.
///
/// A cheap check that an index belongs to its FASTA: an index built from another FASTA with
/// other contigs or other lengths is caught, but one built from a FASTA with the same contigs
/// and lengths and other bases (a single-base edit) is not — which is why the align cache key
/// covers the index files' content.
///
/// # Errors
/// [`Error::Io`] (input side) when the `.ann` cannot be read; [`Error::Input`] when it is not
/// a bwa `.ann` file.
pub fn bwa_index_mismatch(prefix: &Utf8Path, contigs: &[Contig]) -> Result<Option<String>, Error> {
    let ann = Utf8PathBuf::from(format!("{prefix}.ann"));
    let text = std::fs::read_to_string(&ann).map_err(Error::input_io("reading", &ann))?;
    let malformed = || Error::Input {
        message: format!("{ann} is not a bwa .ann file"),
        remedy: Some("rebuild the bwa index from the FASTA (bwa index)".into()),
    };
    let mut lines = text.lines();
    let count: usize = lines
        .next()
        .and_then(|header| header.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .ok_or_else(malformed)?;
    let mut listed = Vec::with_capacity(count);
    for _ in 0..count {
        let name = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .ok_or_else(malformed)?;
        let length: u64 = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .ok_or_else(malformed)?;
        listed.push((name, length));
    }
    if listed.len() != contigs.len() {
        return Ok(Some(format!(
            "it lists {} contigs, the FASTA has {}",
            listed.len(),
            contigs.len()
        )));
    }
    Ok(listed
        .iter()
        .zip(contigs)
        .enumerate()
        .find(|(_, ((name, length), contig))| *name != contig.name || *length != contig.length)
        .map(|(index, ((name, length), contig))| {
            format!(
                "contig {} is {name} of {length} bases in the index, {} of {} bases in the FASTA",
                index + 1,
                contig.name,
                contig.length
            )
        }))
}

fn modified(meta: &std::fs::Metadata) -> SystemTime {
    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Present, not empty, and not older than the FASTA.
fn is_fresh(path: &Utf8Path, fasta_time: SystemTime) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.len() > 0 && modified(&meta) >= fasta_time)
}

/// `dir`, or `.` when it is empty (the parent of a bare file name such as `ref.fa`).
fn or_current(dir: &Utf8Path) -> &Utf8Path {
    if dir.as_str().is_empty() {
        Utf8Path::new(".")
    } else {
        dir
    }
}

fn is_writable_dir(dir: &Utf8Path) -> bool {
    let dir = or_current(dir);
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    if meta.permissions().readonly() {
        return false;
    }
    tempfile::Builder::new()
        .prefix(".biojob-write-probe")
        .tempfile_in(dir)
        .is_ok()
}

fn cache_key_dir(
    cache_dir: &Utf8Path,
    fasta: &Utf8Path,
    meta: &std::fs::Metadata,
) -> Result<Utf8PathBuf, Error> {
    let canonical = fasta
        .canonicalize_utf8()
        .map_err(Error::input_io("resolving", fasta))?;
    let nanos = modified(meta)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = Sha256::new();
    hasher.update(format!("{canonical}\0{}\0{nanos}", meta.len()));
    let digest = hasher.finalize();
    let key: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let dir = cache_dir.join("references").join(key);
    std::fs::create_dir_all(&dir).map_err(Error::io("creating cache directory", &dir))?;
    Ok(dir)
}

fn link_if_missing(target: &Utf8Path, link: &Utf8Path) -> Result<(), Error> {
    if std::fs::symlink_metadata(link).is_ok() {
        if link.canonicalize_utf8().ok().as_deref() == Some(target) {
            return Ok(());
        }
        std::fs::remove_file(link).map_err(Error::io("removing stale link", link))?;
    }
    // Create under a temporary name, then rename: a racing job sees the old link or the new one.
    let staging = staging_dir(link.parent().unwrap_or(Utf8Path::new(".")))?;
    let temporary = staging_path(&staging, "link");
    std::os::unix::fs::symlink(target, &temporary).map_err(Error::io("linking", &temporary))?;
    rename(&temporary, link)
}

/// A private temporary directory inside `dir`, removed when dropped.
fn staging_dir(dir: &Utf8Path) -> Result<tempfile::TempDir, Error> {
    let dir = or_current(dir);
    tempfile::Builder::new()
        .prefix(".biojob-partial-")
        .tempdir_in(dir)
        .map_err(Error::io("creating a temporary directory in", dir))
}

fn staging_path(staging: &tempfile::TempDir, name: &str) -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(staging.path().join(name))
        .unwrap_or_else(|path| Utf8PathBuf::from(path.to_string_lossy().into_owned()))
}

fn rename(from: &Utf8Path, to: &Utf8Path) -> Result<(), Error> {
    std::fs::rename(from, to).map_err(Error::io("renaming to", to))
}

fn decompress_gzip(source: &Utf8Path, target: &Utf8Path) -> Result<(), Error> {
    let dir = target.parent().unwrap_or(Utf8Path::new("."));
    let staging = staging_dir(dir)?;
    let partial = staging_path(&staging, "reference.fa");
    let input = std::fs::File::open(source).map_err(Error::input_io("opening", source))?;
    let mut decoder =
        flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, input));
    let mut output = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&partial).map_err(Error::io("creating", &partial))?,
    );
    std::io::copy(&mut decoder, &mut output).map_err(|error| match error.kind() {
        std::io::ErrorKind::StorageFull => Error::io("writing", &partial)(error),
        _ => Error::Input {
            message: format!("reference {source} is not a readable gzip file: {error}"),
            remedy: Some("check the file, or give an uncompressed FASTA".into()),
        },
    })?;
    output
        .into_inner()
        .map_err(|error| Error::io("writing", &partial)(error.into_error()))?
        .flush()
        .map_err(Error::io("writing", &partial))?;
    rename(&partial, target)
}
