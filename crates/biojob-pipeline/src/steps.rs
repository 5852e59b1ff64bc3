//! The workflow's steps, each a [`crate::StepDefinition`]: its plan and how it runs it. Each
//! writes its outputs under temporary names in its work directory, verifies them, and renames
//! them to their final names only when the step has succeeded.

pub(crate) mod align;
mod call;
mod gather;
mod merge;
pub(crate) mod qc;
mod report;
mod sample_vcf;
mod split;

pub use align::{AlignStep, BWA_BATCH_BASES, FASTQ_1, FASTQ_2};
pub use call::{
    BAI, BAM, CallStep, REGION_PILEUP_PAD_BASES, ShardRequest, cohort_bai_role, cohort_bam_role,
    pileup_regions,
};
pub use gather::{GatherInputs, GatherStep, final_vcf_name, order_for_gather, tbi_role, vcf_role};
pub use merge::{MarkdupStats, MergeStep, chunk_bam_role, markdup_json_name, markdup_stats_name};
pub use qc::{
    BamQc, ContigQc, QC_FORMAT_VERSION, QcFiles, QcRun, QcStep, QcSummary, ReadsQc, VCF,
    VariantsQc, qc_file_names,
};
pub use report::{ReportStep, sample_qc_role};
pub use sample_vcf::SampleVcfStep;
pub use split::{SplitLane, SplitStep, chunk_fastq_names, chunk_prefix};

use biojob_formats::{BamRecordCounter, BamRecordCounts};
use biojob_process::{CommandSpec, StageReport};
use biojob_storage::{ObjectStore, ObjectUri, ObjectWriter, StreamFailure};
use camino::{Utf8Path, Utf8PathBuf};

use crate::{Error, Executed, PlannedCommand, PlannedOutput, RecordCounts, StepContext, StepPlan};

/// A plan being run by its step: its pipelines, taken in order, and its outputs, each written
/// under its partial name and renamed together by [`RunningPlan::finish`] (dropped unfinished,
/// nothing is left under a final name).
pub(crate) struct RunningPlan {
    step: &'static str,
    pipelines: std::vec::IntoIter<Vec<PlannedCommand>>,
    planned: Vec<PlannedOutput>,
    partials: Vec<Utf8PathBuf>,
    pending: PendingOutputs,
    /// The reports of the commands run so far.
    pub(crate) commands: Vec<StageReport>,
}

impl RunningPlan {
    /// `plan`, with exactly `outputs` outputs; the plan's files are written.
    ///
    /// # Errors
    /// [`Error::Usage`] when the plan has another number of outputs (a step defined wrongly);
    /// [`Error::Io`] when a file of the plan cannot be written.
    pub(crate) fn new(plan: StepPlan, outputs: usize) -> Result<Self, Error> {
        let step = plan.step.as_str();
        if plan.outputs.len() != outputs {
            return Err(plan_shape(step, &format!("{outputs} outputs")));
        }
        plan.write_files()?;
        let mut pending = PendingOutputs::default();
        let partials = plan
            .outputs
            .iter()
            .map(|output| pending.partial_for(&output.path))
            .collect();
        Ok(RunningPlan {
            step,
            pipelines: plan.pipelines.into_iter(),
            planned: plan.outputs,
            partials,
            pending,
            commands: Vec::new(),
        })
    }

    /// The partial name of output `index`.
    pub(crate) fn partial(&self, index: usize) -> &Utf8Path {
        self.partials
            .get(index)
            .map_or(Utf8Path::new(""), Utf8PathBuf::as_path)
    }

    /// The final name of output `index`.
    pub(crate) fn output(&self, index: usize) -> &Utf8Path {
        self.planned
            .get(index)
            .map_or(Utf8Path::new(""), |output| output.path.as_path())
    }

    /// The next pipeline's commands, to run by hand (align hands bwa its FASTQ pipes).
    ///
    /// # Errors
    /// [`Error::Usage`] when the plan has no more pipelines (a step defined wrongly).
    pub(crate) fn take(&mut self) -> Result<Vec<CommandSpec>, Error> {
        let step = self.step;
        self.pipelines
            .next()
            .map(|stages| stages.into_iter().map(|c| c.command).collect())
            .ok_or_else(|| plan_shape(step, "another pipeline"))
    }

    /// Runs the next pipeline (pipefail semantics) and keeps its reports.
    ///
    /// # Errors
    /// As [`biojob_process::Supervisor::run_pipeline`]; as [`RunningPlan::take`].
    pub(crate) fn run_next(&mut self, context: &StepContext) -> Result<(), Error> {
        let stages = self.take()?;
        let report = context.supervisor.run_pipeline(stages)?;
        self.commands.extend(report.stages);
        Ok(())
    }

    /// Renames every output to its final name; the step's result, with the records it
    /// counted.
    ///
    /// # Errors
    /// [`Error::Io`] when a rename fails (then no output keeps its final name).
    pub(crate) fn finish(mut self, records: RecordCounts) -> Result<Executed, Error> {
        self.pending.publish()?;
        Ok(Executed {
            commands: std::mem::take(&mut self.commands),
            outputs: std::mem::take(&mut self.planned),
            records,
            ..Executed::default()
        })
    }
}

/// The error of a plan that does not have the shape its step runs (a step defined wrongly).
pub(crate) fn plan_shape(step: &str, expected: &str) -> Error {
    Error::Usage {
        message: format!("the {step} plan does not have {expected}"),
        remedy: None,
    }
}

/// A step's outputs while the step runs: each is written under `<final name>.partial` and
/// renamed to its final name by [`PendingOutputs::publish`] once the step has succeeded. When
/// the guard is dropped unpublished (the step failed, or a rename did), every partial file is
/// removed, and so is any output already renamed by a publish that then failed: nothing stands
/// under a final name unless its step succeeded.
#[derive(Debug, Default)]
pub(crate) struct PendingOutputs {
    /// `(partial, final)` pairs, in registration order.
    outputs: Vec<(Utf8PathBuf, Utf8PathBuf)>,
    /// Final names already renamed by a publish that has not finished.
    published: Vec<Utf8PathBuf>,
    done: bool,
}

impl PendingOutputs {
    /// Registers `final_path` and returns the temporary name to write it under.
    pub(crate) fn partial_for(&mut self, final_path: &Utf8Path) -> Utf8PathBuf {
        let partial = Utf8PathBuf::from(format!("{final_path}.partial"));
        self.outputs.push((partial.clone(), final_path.to_owned()));
        partial
    }

    /// Renames every output to its final name, in registration order.
    ///
    /// # Errors
    /// [`Error::Verification`] (output class) when an output was never written (its tool
    /// exited 0 without writing it); [`Error::Io`] when a rename fails. Then no output keeps
    /// its final name.
    pub(crate) fn publish(&mut self) -> Result<(), Error> {
        let missing = self
            .outputs
            .iter()
            .find(|(partial, _)| std::fs::symlink_metadata(partial).is_err());
        if let Some((partial, final_path)) = missing {
            return Err(Error::Verification {
                path: final_path.clone(),
                detail: format!(
                    "the step's commands succeeded but none wrote it (no {})",
                    partial.file_name().unwrap_or(partial.as_str())
                ),
            });
        }
        for (partial, final_path) in std::mem::take(&mut self.outputs) {
            if let Err(error) = std::fs::rename(&partial, &final_path) {
                self.outputs.push((partial, final_path.clone()));
                return Err(Error::io("renaming to", final_path)(error));
            }
            self.published.push(final_path);
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for PendingOutputs {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Best effort: the step's own error is what the caller reports.
        for path in self
            .outputs
            .iter()
            .map(|(partial, _)| partial)
            .chain(&self.published)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The index a samtools command writes beside the BAM `bam` as it writes it
/// (`--write-index`): `BAM.partial.bai`. htslib writes a BAI only to a name ending in `.bai`
/// (a CSI otherwise), so it is not the index output's partial name, `BAI.partial`.
pub(crate) fn index_written(bam: &Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{}.bai", crate::plan::partial(bam)))
}

/// Moves the index samtools wrote as it wrote `bam` ([`index_written`]) to `bai` (the index
/// output's partial name), dated now: samtools wrote it as it closed the BAM, before biojob
/// (which relays the BAM) wrote the BAM's last bytes, and an index older than its BAM is not
/// used (htslib warns; a call job indexes again).
///
/// Nothing when samtools wrote no index: the step's outputs then lack it, which
/// [`RunningPlan::finish`] reports (output class).
///
/// # Errors
/// [`Error::Io`] when the index cannot be renamed or dated.
pub(crate) fn place_index(bam: &Utf8Path, bai: &Utf8Path) -> Result<(), Error> {
    let built = index_written(bam);
    if std::fs::symlink_metadata(&built).is_err() {
        return Ok(());
    }
    std::fs::rename(&built, bai).map_err(Error::io("renaming to", bai))?;
    std::fs::File::options()
        .write(true)
        .open(bai)
        .and_then(|file| file.set_modified(std::time::SystemTime::now()))
        .map_err(Error::io("dating", bai))
}

/// A BAM that the last tool of a pipeline writes to its standard output (`samtools sort -o -`)
/// and biojob writes to its file, counting the records as the bytes pass
/// ([`biojob_formats::BamRecordCounter`]): the counts of exactly what the file holds, without
/// reading it again.
pub(crate) struct CountedBam {
    path: Utf8PathBuf,
    writer: std::thread::JoinHandle<Result<BamRecordCounts, Error>>,
}

impl CountedBam {
    /// Creates `path` and starts the thread that copies into it; returns the write end of the
    /// pipe to give the last tool as its standard output
    /// ([`biojob_process::CommandSpec::stdout_pipe`]). Blocks are inflated on `threads` worker
    /// threads.
    ///
    /// # Errors
    /// [`Error::Io`] when the pipe or the thread cannot be made.
    pub(crate) fn start(
        path: &Utf8Path,
        threads: usize,
    ) -> Result<(std::io::PipeWriter, CountedBam), Error> {
        let (reader, writer) = std::io::pipe().map_err(Error::io("creating a pipe for", path))?;
        let owned = path.to_owned();
        let handle = std::thread::Builder::new()
            .name("bam-counter".into())
            .spawn(move || copy_counting(reader, &owned, threads))
            .map_err(Error::io("starting the thread that writes", path))?;
        Ok((
            writer,
            CountedBam {
                path: path.to_owned(),
                writer: handle,
            },
        ))
    }

    /// Waits for the copy to end (the tool has exited and closed its output) and returns the
    /// counts.
    ///
    /// # Errors
    /// [`Error::Io`] when the file could not be written (scratch class: a full disk shows
    /// here); [`Error::Verification`] when the bytes are not a complete BAM.
    pub(crate) fn finish(self) -> Result<BamRecordCounts, Error> {
        self.writer.join().unwrap_or_else(|_| {
            Err(Error::io("writing", self.path)(std::io::Error::other(
                "the thread writing it panicked",
            )))
        })
    }
}

/// Copies the BAM from `reader` into the file at `path`, counting its records; the file is
/// synced before the counts are returned. On a write error the reader is dropped, so the tool
/// writing into it stops with `EPIPE`.
fn copy_counting(
    mut reader: std::io::PipeReader,
    path: &Utf8Path,
    threads: usize,
) -> Result<BamRecordCounts, Error> {
    let file = std::fs::File::create(path).map_err(Error::io("creating", path))?;
    let write_error = |error| Error::io("writing", path)(error);
    let (file, counts) = relay_counting(
        &mut reader,
        std::io::BufWriter::new(file),
        path,
        threads,
        write_error,
    )?;
    file.into_inner()
        .map_err(|error| write_error(error.into_error()))?
        .sync_all()
        .map_err(Error::io("syncing", path))?;
    Ok(counts)
}

/// Copies the BAM from `reader` into `sink`, counting its records, and gives the sink back
/// once the stream has ended; `name` names the output. On an error the reader is dropped by
/// the caller, so the tool writing into it stops with `EPIPE`.
///
/// # Errors
/// `write_error` of a failed write or flush; [`Error::Verification`] when the bytes are not a
/// complete BAM.
fn relay_counting<W: std::io::Write>(
    reader: &mut std::io::PipeReader,
    sink: W,
    name: &Utf8Path,
    threads: usize,
    write_error: impl Fn(std::io::Error) -> Error,
) -> Result<(W, BamRecordCounts), Error> {
    let mut counter = BamRecordCounter::with_threads(sink, name, threads);
    std::io::copy(reader, &mut counter).map_err(&write_error)?;
    counter.finish().map_err(|error| match error {
        biojob_formats::FormatError::Io { source, .. } => write_error(source),
        other => Error::Verification {
            path: name.to_owned(),
            detail: format!("the tool's output is not a complete BAM: {other}"),
        },
    })
}

/// The outcome of a pipeline whose last tool writes into biojob's sink (`written`): when both
/// failed, the sink's own failure (a write to scratch, a part refused by S3) is the cause of
/// the tool's broken pipe and is the error; a sink that only saw an incomplete BAM
/// ([`Error::Verification`]) shows the tool's failure, which is the error then.
///
/// # Errors
/// As above; the sink's error when the tools succeeded.
pub(crate) fn sink_or_tool<T>(
    piped: Result<biojob_process::PipelineReport, biojob_process::ProcessError>,
    written: Result<T, Error>,
) -> Result<(biojob_process::PipelineReport, T), Error> {
    match (piped, written) {
        (Ok(report), Ok(written)) => Ok((report, written)),
        (Ok(_), Err(error)) => Err(error),
        (Err(tool), Err(Error::Verification { .. }) | Ok(_)) => Err(Error::Process(tool)),
        (Err(_), Err(sink)) => Err(sink),
    }
}

/// The most of an uploaded BAM's first bytes kept in memory to read its header back
/// ([`UploadedBam`]): 64 MiB, far more than the header of a BAM on GRCh38 with its alts and
/// decoys (≈ 3,400 `@SQ` lines, tens of KiB compressed).
pub(crate) const UPLOADED_BAM_HEAD_BYTES: usize = 64 << 20;

/// A BAM that the last tool of a pipeline writes to its standard output and biojob uploads
/// as an object as the bytes come ([`biojob_storage::ObjectStore::create`]), counting its
/// records on the way as [`CountedBam`] does, and keeping its first
/// [`UPLOADED_BAM_HEAD_BYTES`] in memory to check its header: nothing of it in scratch but the
/// parts being sent. The object appears only when the step completes the writer
/// [`UploadedBam::finish`] gives back, after its checks.
pub(crate) struct UploadedBam {
    uri: ObjectUri,
    writer: std::thread::JoinHandle<Result<Uploaded, Error>>,
}

/// What an [`UploadedBam`] gives back once the tool's output has ended.
pub(crate) struct Uploaded {
    /// The records counted.
    pub(crate) counts: BamRecordCounts,
    /// The BAM's first bytes (its header), at most [`UPLOADED_BAM_HEAD_BYTES`].
    pub(crate) head: Vec<u8>,
    /// The object, every part stored, to complete once the BAM is checked.
    pub(crate) writer: Box<dyn ObjectWriter>,
}

impl UploadedBam {
    /// Starts the object at `uri` (parts spooled in `spool`) and the thread that copies into
    /// it; returns the write end of the pipe to give the last tool as its standard output.
    ///
    /// # Errors
    /// [`Error::Io`] when the pipe or the thread cannot be made; the store's error when the
    /// object cannot be started (output staging class).
    pub(crate) fn start(
        store: &dyn ObjectStore,
        uri: &ObjectUri,
        spool: &Utf8Path,
        threads: usize,
    ) -> Result<(std::io::PipeWriter, UploadedBam), Error> {
        let writer = store.create(uri, spool)?;
        let name = uri.to_string();
        let (reader, pipe) =
            std::io::pipe().map_err(Error::io("creating a pipe for", name.clone()))?;
        let sink = ObjectSink {
            writer,
            head: Vec::new(),
            failure: StreamFailure::default(),
        };
        let shown = name.clone();
        let handle = std::thread::Builder::new()
            .name("bam-uploader".into())
            .spawn(move || upload_counting(reader, sink, &shown, threads))
            .map_err(Error::io("starting the thread that uploads", name))?;
        Ok((
            pipe,
            UploadedBam {
                uri: uri.clone(),
                writer: handle,
            },
        ))
    }

    /// Waits for the copy to end (the tool has exited and closed its output).
    ///
    /// # Errors
    /// The store's error (output staging class) when a part could not be sent;
    /// [`Error::Verification`] when the bytes are not a complete BAM.
    pub(crate) fn finish(self) -> Result<Uploaded, Error> {
        self.writer.join().unwrap_or_else(|_| {
            Err(Error::io("uploading", self.uri.to_string())(
                std::io::Error::other("the thread uploading it panicked"),
            ))
        })
    }
}

/// The object an [`UploadedBam`] writes, and its first bytes.
struct ObjectSink {
    writer: Box<dyn ObjectWriter>,
    head: Vec<u8>,
    failure: StreamFailure,
}

impl std::io::Write for ObjectSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let kept = buf.len().min(UPLOADED_BAM_HEAD_BYTES - self.head.len());
        self.head.extend_from_slice(&buf[..kept]);
        self.writer
            .write(buf)
            .map_err(|error| self.failure.record(error))?;
        Ok(buf.len())
    }

    /// Nothing: the object's parts are flushed once, at the end ([`upload_counting`]).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Copies the BAM from `reader` into `sink`'s object in writes of 1 MiB, counting its records;
/// every part is stored before the counts are returned. On an error the reader is dropped, so
/// the tool writing into it stops with `EPIPE`, and the writer with it (the upload aborted).
fn upload_counting(
    mut reader: std::io::PipeReader,
    sink: ObjectSink,
    name: &str,
    threads: usize,
) -> Result<Uploaded, Error> {
    let failure = sink.failure.clone();
    let write_error = |error: std::io::Error| {
        failure
            .take()
            .map_or_else(|| Error::io("uploading", name)(error), Error::from)
    };
    let buffered = std::io::BufWriter::with_capacity(1 << 20, sink);
    let (buffered, counts) =
        relay_counting(&mut reader, buffered, name.into(), threads, write_error)?;
    let mut sink = buffered
        .into_inner()
        .map_err(|error| write_error(error.into_error()))?;
    sink.writer.flush()?;
    Ok(Uploaded {
        counts,
        head: sink.head,
        writer: sink.writer,
    })
}

/// Copies a tool's BGZF output (`from`, e.g. `bcftools mpileup -Oz0`) into the next tool's
/// input (`to`) as it comes, and tells whether it ended with the BGZF EOF block (SAM spec v1,
/// section 4.1.2): a stream cut short, even between records, does not. Returns the bytes
/// copied and that answer; `to` is closed when `from` ends.
///
/// # Errors
/// The I/O error of a read or a write (`EPIPE` when the next tool stopped reading).
pub(crate) fn relay_bgzf(
    mut from: std::io::PipeReader,
    mut to: std::io::PipeWriter,
) -> std::io::Result<(u64, bool)> {
    use std::io::{Read, Write};
    const EOF_BLOCK: usize = biojob_formats::BGZF_EOF_BLOCK.len();
    let mut buffer = vec![0u8; 1 << 16];
    let mut tail: Vec<u8> = Vec::with_capacity(2 * EOF_BLOCK);
    let mut bytes = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        to.write_all(&buffer[..n])?;
        bytes += n as u64;
        let last = &buffer[n.saturating_sub(EOF_BLOCK)..n];
        tail.extend_from_slice(last);
        let excess = tail.len().saturating_sub(EOF_BLOCK);
        tail.drain(..excess);
    }
    Ok((bytes, tail == biojob_formats::BGZF_EOF_BLOCK))
}

/// Record accounting (docs/reliability.md): `path` holds `found` records (`what`: `records`,
/// `primary alignment records`) where its inputs hold `expected`, as `inputs` says in full
/// (`its 4 chunks hold 1200`).
///
/// # Errors
/// [`Error::Verification`] (output invalid class) naming both counts when they differ.
pub(crate) fn check_records(
    path: &Utf8Path,
    found: u64,
    what: &str,
    expected: u64,
    inputs: &str,
) -> Result<(), Error> {
    if found == expected {
        return Ok(());
    }
    Err(Error::Verification {
        path: path.to_owned(),
        detail: format!(
            "{found} {what}, but {inputs}: {} {}",
            found.abs_diff(expected),
            if found < expected { "lost" } else { "too many" }
        ),
    })
}

/// Checks that an output of ours ends with the BGZF EOF block; a truncated output is an
/// output verification failure (not an input one).
pub(crate) fn verify_bgzf_output(path: &Utf8Path) -> Result<(), Error> {
    biojob_formats::check_bgzf_eof(path).map_err(|error| Error::Verification {
        path: path.to_owned(),
        detail: error.to_string(),
    })
}

/// `plan` ending with `bcftools index -t` of `vcf` (written as `vcf.partial` by the plan's
/// commands before it), with `vcf` and its `.tbi` as the plan's outputs.
pub(crate) fn then_index_vcf(
    plan: StepPlan,
    bcftools: &biojob_tools::ToolPath,
    vcf: Utf8PathBuf,
) -> StepPlan {
    let tbi = Utf8PathBuf::from(format!("{vcf}.tbi"));
    plan.command(
        biojob_tools::Tool::Bcftools,
        biojob_tools::bcftools_index_tbi(
            bcftools,
            &crate::plan::partial(&vcf),
            &crate::plan::partial(&tbi),
        ),
    )
    .output(vcf)
    .output(tbi)
}

/// Checks one of our VCF outputs: its BGZF EOF block ([`verify_bgzf_output`]), then
/// [`biojob_formats::scan_vcf`]; a failure is an output verification failure.
pub(crate) fn verify_vcf_output(
    path: &Utf8Path,
    rules: &biojob_formats::VcfRules<'_>,
) -> Result<biojob_formats::VcfScan, Error> {
    verify_bgzf_output(path)?;
    biojob_formats::scan_vcf(path, rules).map_err(|error| Error::Verification {
        path: path.to_owned(),
        detail: match error {
            biojob_formats::FormatError::Invalid { reason, .. } => reason,
            other => crate::error_chain(&other),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, Utf8PathBuf) {
        let temp = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(temp.path().to_owned()).unwrap();
        (temp, path)
    }

    #[test]
    fn published_outputs_take_their_final_names() {
        let (_temp, dir) = dir();
        let mut outputs = PendingOutputs::default();
        let vcf = outputs.partial_for(&dir.join("s.vcf.gz"));
        let tbi = outputs.partial_for(&dir.join("s.vcf.gz.tbi"));
        assert_eq!(vcf, dir.join("s.vcf.gz.partial"));
        std::fs::write(&vcf, "v").unwrap();
        std::fs::write(&tbi, "t").unwrap();
        outputs.publish().unwrap();
        drop(outputs);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["s.vcf.gz", "s.vcf.gz.tbi"]);
    }

    #[test]
    fn dropped_outputs_leave_nothing() {
        let (_temp, dir) = dir();
        let mut outputs = PendingOutputs::default();
        std::fs::write(outputs.partial_for(&dir.join("a")), "a").unwrap();
        drop(outputs);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn an_output_never_written_is_an_output_failure_and_nothing_is_renamed() {
        let (_temp, dir) = dir();
        let mut outputs = PendingOutputs::default();
        std::fs::write(outputs.partial_for(&dir.join("a")), "a").unwrap();
        // The second partial was never written (its tool exited 0 without it).
        outputs.partial_for(&dir.join("b"));
        let error = outputs.publish().unwrap_err();
        drop(outputs);
        assert_eq!(
            error.to_string(),
            format!("{dir}/b: the step's commands succeeded but none wrote it (no b.partial)")
        );
        assert_eq!(
            biojob_core::Classify::exit_class(&error),
            biojob_core::ExitClass::OutputInvalid
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_publish_takes_back_what_it_renamed() {
        let (_temp, dir) = dir();
        let mut outputs = PendingOutputs::default();
        std::fs::write(outputs.partial_for(&dir.join("a")), "a").unwrap();
        // The second output's final name is a directory that is not empty: its rename fails.
        std::fs::write(outputs.partial_for(&dir.join("b")), "b").unwrap();
        std::fs::create_dir_all(dir.join("b/inside")).unwrap();
        let error = outputs.publish().unwrap_err();
        drop(outputs);
        assert_eq!(error.to_string(), format!("renaming to {dir}/b"));
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["b"]);
    }
}
