//! Paired FASTQ files: one streaming pass that checks them and feeds an aligner.

mod input;
mod mates;
mod record;
mod split;

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use camino::Utf8Path;

pub use self::input::FastqSource;
use self::input::IO_BUFFER_BYTES;
use self::mates::{MateOutcome, MateSender, compare_mates, mate_channel};
use self::record::{RecordReader, RecordView};
pub use self::split::{
    ChunkLayout, FastqChunk, SplitRequest, StoreSplitRequest, StoredChunk, fastq_chunk_names,
    split_fastq_pair, split_fastq_pair_to_store,
};
use crate::FastqError;

/// What one pass over a FASTQ pair counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FastqPairStats {
    /// Read pairs (records in each file).
    pub pairs: u64,
    /// Bases in the R1 file.
    pub bases_1: u64,
    /// Bases in the R2 file.
    pub bases_2: u64,
    /// Bytes read from the R1 file on disk (compressed bytes when gzip).
    pub bytes_read_1: u64,
    /// Bytes read from the R2 file on disk (compressed bytes when gzip).
    pub bytes_read_2: u64,
}

/// How far a pass over a FASTQ pair is, updated by its reader threads as they go (every
/// [`FastqProgress::RECORDS_PER_UPDATE`] records and at the end of each file) and read by
/// anyone holding a reference: records read from each file and bytes read from each file on
/// disk (compressed bytes for gzip, to compare with the files' sizes).
#[derive(Debug, Default)]
pub struct FastqProgress {
    records: [AtomicU64; 2],
    bytes_read: [AtomicU64; 2],
}

impl FastqProgress {
    /// Records between two updates of the counters.
    pub const RECORDS_PER_UPDATE: u64 = 4096;

    /// Pairs read so far: the records of the file that is behind.
    pub fn pairs(&self) -> u64 {
        self.records[0]
            .load(Ordering::Relaxed)
            .min(self.records[1].load(Ordering::Relaxed))
    }

    /// Bytes read from both files on disk so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
            .iter()
            .map(|bytes| bytes.load(Ordering::Relaxed))
            .sum()
    }

    fn update(&self, mate: usize, records: u64, bytes_read: u64) {
        if let (Some(count), Some(bytes)) = (self.records.get(mate), self.bytes_read.get(mate)) {
            count.store(records, Ordering::Relaxed);
            bytes.store(bytes_read, Ordering::Relaxed);
        }
    }
}

/// [`stream_fastq_pair`], counting how far it is in `progress` as it goes.
///
/// # Errors
/// As [`stream_fastq_pair`].
pub fn stream_fastq_pair_with_progress(
    fastq_1: &Utf8Path,
    fastq_2: &Utf8Path,
    sink_1: impl Write + Send,
    sink_2: impl Write + Send,
    progress: &FastqProgress,
) -> Result<FastqPairStats, FastqError> {
    read_pair(
        FastqSource::file(fastq_1),
        FastqSource::file(fastq_2),
        BufWriter::with_capacity(IO_BUFFER_BYTES, sink_1),
        BufWriter::with_capacity(IO_BUFFER_BYTES, sink_2),
        false,
        Some(progress),
    )
}

/// Reads `fastq_1` and `fastq_2`, checks them as a pair, and writes each file's decompressed
/// records to `sink_1` / `sink_2`, byte for byte as they are in the input.
///
/// Each file may be plain FASTQ, gzip or multi-member gzip such as BGZF, detected by its magic
/// bytes; gzip goes through flate2's `MultiGzDecoder`, which checks every member's CRC32 and ISIZE
/// (RFC 1952, section 2.3.1). The checks, each reported with the file, the 1-based record number
/// and, for record errors, the line number:
///
/// - structure: `@` header line, sequence line, `+` line (which, if it repeats a name, repeats
///   the header's), quality line; a missing final newline is accepted, wrapped sequences are not;
/// - every base is a SAM `SEQ` character, `[A-Za-z=.]` (SAM spec v1, section 1.4);
/// - the quality line has as many characters as the sequence has bases, all in the Phred+33
///   range `!`..=`~`;
/// - mate names agree record by record (the header after `@` up to the first space or tab, a
///   trailing `/1` or `/2` removed), and a name that ends in `/1` or `/2` is in the file of
///   that read (R1 `/1`, R2 `/2`: swapped files would otherwise pass);
/// - both files have the same number of records, and at least one;
/// - the gzip stream is complete and intact.
///
/// Each file has its own thread, so a consumer reading the two sinks in any order cannot
/// deadlock (docs/formats.md, "Streaming a FASTQ pair", says how, and what pipe sinks need).
/// Memory: 3 MiB of buffers per file, plus about 40 bytes per record one file runs ahead.
///
/// # Errors
/// Any [`FastqError`], the one at the lowest record number when several are found at once. A
/// sink write failing with `BrokenPipe` gives [`FastqError::ConsumerClosed`] (only when there
/// is no other problem): the consumer exited, and its own failure is the one to report.
pub fn stream_fastq_pair(
    fastq_1: &Utf8Path,
    fastq_2: &Utf8Path,
    sink_1: impl Write + Send,
    sink_2: impl Write + Send,
) -> Result<FastqPairStats, FastqError> {
    read_pair(
        FastqSource::file(fastq_1),
        FastqSource::file(fastq_2),
        BufWriter::with_capacity(IO_BUFFER_BYTES, sink_1),
        BufWriter::with_capacity(IO_BUFFER_BYTES, sink_2),
        false,
        None,
    )
}

/// Checks `fastq_1` and `fastq_2` as a pair, exactly as [`stream_fastq_pair`] does, without
/// writing the records anywhere (for `biojob check` and tests).
///
/// # Errors
/// Any [`FastqError`] except the two sink errors.
pub fn validate_fastq_pair(
    fastq_1: &Utf8Path,
    fastq_2: &Utf8Path,
) -> Result<FastqPairStats, FastqError> {
    read_pair(
        FastqSource::file(fastq_1),
        FastqSource::file(fastq_2),
        Discard,
        Discard,
        true,
        None,
    )
}

/// Where a reader thread puts its records.
trait RecordSink: Send {
    fn write_record(&mut self, record: &RecordView<'_>) -> io::Result<()>;
    /// Flushes and closes the sink after the last record.
    fn finish(self) -> io::Result<()>;
    /// Closes the sink after a failure, dropping unwritten data: flushing could block on a pipe
    /// whose reader waits for the other file.
    fn abandon(self);
}

impl<W: Write + Send> RecordSink for BufWriter<W> {
    fn write_record(&mut self, record: &RecordView<'_>) -> io::Result<()> {
        self.write_all(record.raw)
    }

    fn finish(mut self) -> io::Result<()> {
        self.flush()
    }

    fn abandon(self) {
        drop(self.into_parts());
    }
}

/// No sink: records are only checked.
struct Discard;

impl RecordSink for Discard {
    fn write_record(&mut self, _record: &RecordView<'_>) -> io::Result<()> {
        Ok(())
    }

    fn finish(self) -> io::Result<()> {
        Ok(())
    }

    fn abandon(self) {}
}

/// How one file's pass ended without an error.
#[derive(Debug, Clone, Copy)]
struct FileOutcome {
    records: u64,
    bases: u64,
    bytes_read: u64,
    /// `false` when the pass stopped early because of a problem elsewhere.
    completed: bool,
}

fn read_pair(
    source_1: FastqSource,
    source_2: FastqSource,
    sink_1: impl RecordSink,
    sink_2: impl RecordSink,
    bounded_mates: bool,
    progress: Option<&FastqProgress>,
) -> Result<FastqPairStats, FastqError> {
    let (path_1, path_2) = (source_1.path().to_owned(), source_2.path().to_owned());
    let (fastq_1, fastq_2) = (path_1.as_path(), path_2.as_path());
    let started = Instant::now();
    let cancel = AtomicBool::new(false);
    let (mates_tx_1, mates_rx_1) = mate_channel(bounded_mates);
    let (mates_tx_2, mates_rx_2) = mate_channel(bounded_mates);

    let (result_1, result_2, mates) = std::thread::scope(|scope| {
        let cancel = &cancel;
        let reader_1 =
            scope.spawn(move || read_file(source_1, 1, sink_1, mates_tx_1, cancel, (progress, 0)));
        let reader_2 =
            scope.spawn(move || read_file(source_2, 2, sink_2, mates_tx_2, cancel, (progress, 1)));
        let mates = compare_mates(mates_rx_1, mates_rx_2, cancel);
        let result_1 = reader_1
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let result_2 = reader_2
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (result_1, result_2, mates)
    });

    let stats = resolve(fastq_1, fastq_2, result_1, result_2, mates)?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        %fastq_1,
        %fastq_2,
        pairs = stats.pairs,
        bases = stats.bases_1 + stats.bases_2,
        bytes_read = stats.bytes_read_1 + stats.bytes_read_2,
        seconds,
        "FASTQ pair checked"
    );
    Ok(stats)
}

/// One reader thread: reads, checks and writes `path`'s records; on any error tells the other
/// side to stop.
fn read_file(
    source: FastqSource,
    mate: u8,
    mut sink: impl RecordSink,
    mut mates: MateSender,
    cancel: &AtomicBool,
    progress: (Option<&FastqProgress>, usize),
) -> Result<FileOutcome, FastqError> {
    let path = &source.path().to_owned();
    let _span = tracing::debug_span!("fastq", %path).entered();
    let started = Instant::now();
    let mut result = scan_file(source, mate, &mut sink, &mut mates, cancel, progress);
    mates.finish();
    result = match result {
        Ok(outcome) if outcome.completed && outcome.records == 0 => {
            sink.abandon();
            Err(FastqError::Empty {
                path: path.to_owned(),
            })
        }
        Ok(outcome) if outcome.completed => sink
            .finish()
            .map(|()| outcome)
            .map_err(|source| write_error(path, outcome.records, source)),
        other => {
            sink.abandon();
            other
        }
    };
    match &result {
        Ok(outcome) => tracing::debug!(
            records = outcome.records,
            bases = outcome.bases,
            bytes_read = outcome.bytes_read,
            completed = outcome.completed,
            seconds = started.elapsed().as_secs_f64(),
            "FASTQ file read"
        ),
        Err(error) => {
            cancel.store(true, Ordering::Relaxed);
            tracing::debug!(%error, "FASTQ file failed");
        }
    }
    result
}

fn scan_file(
    source: FastqSource,
    mate: u8,
    sink: &mut impl RecordSink,
    mates: &mut MateSender,
    cancel: &AtomicBool,
    (progress, slot): (Option<&FastqProgress>, usize),
) -> Result<FileOutcome, FastqError> {
    let path = &source.path().to_owned();
    let streamed = source.is_streamed();
    let mut reader = RecordReader::new(path, mate, source.open()?);
    tracing::debug!(gzip = reader.is_gzip(), streamed, "FASTQ file opened");
    let mut bases: u64 = 0;
    let completed = loop {
        // The first record is always read, so that two empty files both report it, whichever
        // thread finds it first (R1's error is then the one given).
        if reader.records() > 0 && cancel.load(Ordering::Relaxed) {
            break Ok(false);
        }
        let records = reader.records();
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break Ok(true),
            Err(error) => {
                if streamed {
                    // A stream checks its transfer at its last byte: read on, so that bytes
                    // damaged on the way are reported as such (by the stream's owner) rather
                    // than as a broken record. Only for this stream's own read errors: a
                    // stop, a write error or the other file's problem need no transfer check.
                    reader.drain_input();
                }
                break Err(error);
            }
        };
        bases += record.bases;
        if let Err(source) = sink.write_record(&record) {
            break Err(write_error(path, records + 1, source));
        }
        if !mates.push(record.name) {
            break Ok(false);
        }
        if let Some(progress) = progress
            && (records + 1).is_multiple_of(FastqProgress::RECORDS_PER_UPDATE)
        {
            progress.update(slot, records + 1, reader.bytes_read());
        }
    };
    if let Some(progress) = progress {
        progress.update(slot, reader.records(), reader.bytes_read());
    }
    Ok(FileOutcome {
        records: reader.records(),
        bases,
        bytes_read: reader.bytes_read(),
        completed: completed?,
    })
}

fn write_error(path: &Utf8Path, records: u64, source: io::Error) -> FastqError {
    let path = path.to_owned();
    if source.kind() == io::ErrorKind::BrokenPipe {
        FastqError::ConsumerClosed {
            path,
            records,
            source,
        }
    } else {
        FastqError::Write {
            path,
            records,
            source,
        }
    }
}

/// Turns the two passes and the name comparison into one result: the earliest problem by record
/// number (R1's before R2's before the comparator's at the same record), `ConsumerClosed` only
/// when nothing else went wrong.
fn resolve(
    fastq_1: &Utf8Path,
    fastq_2: &Utf8Path,
    result_1: Result<FileOutcome, FastqError>,
    result_2: Result<FileOutcome, FastqError>,
    mates: MateOutcome,
) -> Result<FastqPairStats, FastqError> {
    let completed = |result: &Result<FileOutcome, FastqError>| {
        matches!(
            result,
            Ok(FileOutcome {
                completed: true,
                ..
            })
        )
    };
    let mut problems: Vec<FastqError> = Vec::new();
    match mates {
        MateOutcome::Agree => {}
        MateOutcome::Differ {
            record,
            name_1,
            name_2,
        } => problems.push(FastqError::MateMismatch {
            path_1: fastq_1.to_owned(),
            path_2: fastq_2.to_owned(),
            record,
            name_1: String::from_utf8_lossy(&name_1).into_owned(),
            name_2: String::from_utf8_lossy(&name_2).into_owned(),
        }),
        MateOutcome::Longer {
            longer_is_second,
            shorter_records,
        } => {
            let (shorter, longer, shorter_result) = if longer_is_second {
                (fastq_1, fastq_2, &result_1)
            } else {
                (fastq_2, fastq_1, &result_2)
            };
            // A shorter side that stopped on an error reports that error instead.
            if completed(shorter_result) {
                problems.push(FastqError::CountMismatch {
                    shorter: shorter.to_owned(),
                    longer: longer.to_owned(),
                    records: shorter_records,
                });
            }
        }
    }
    let (outcome_1, outcome_2) = match (result_1, result_2) {
        (Ok(outcome_1), Ok(outcome_2)) => (outcome_1, outcome_2),
        (result_1, result_2) => {
            // Insert the readers' errors before the comparator's so that ties favour them.
            let readers = [result_1.err(), result_2.err()].into_iter().flatten();
            problems.splice(0..0, readers);
            problems.sort_by_key(|problem| {
                (
                    matches!(problem, FastqError::ConsumerClosed { .. }),
                    problem.record_order(),
                )
            });
            return Err(problems
                .into_iter()
                .next()
                .expect("a reader failed, so there is at least one problem"));
        }
    };
    if let Some(problem) = problems.into_iter().min_by_key(FastqError::record_order) {
        return Err(problem);
    }
    if !(outcome_1.completed && outcome_2.completed) {
        // Readers stop early only after an error or a comparator finding, both handled above.
        tracing::error!("a FASTQ reader stopped early without a recorded problem");
    }
    if outcome_1.records != outcome_2.records {
        let (shorter, longer, records) = if outcome_1.records < outcome_2.records {
            (fastq_1, fastq_2, outcome_1.records)
        } else {
            (fastq_2, fastq_1, outcome_2.records)
        };
        return Err(FastqError::CountMismatch {
            shorter: shorter.to_owned(),
            longer: longer.to_owned(),
            records,
        });
    }
    Ok(FastqPairStats {
        pairs: outcome_1.records,
        bases_1: outcome_1.bases,
        bases_2: outcome_2.bases,
        bytes_read_1: outcome_1.bytes_read,
        bytes_read_2: outcome_2.bytes_read,
    })
}

/// The name of the first record of a FASTQ file (plain, gzip or BGZF): its header line after
/// `@`, up to the first space or tab; only the first line is read. A streamed source is not
/// read to its end (the caller drops it).
///
/// # Errors
/// [`FastqError::Open`] or [`FastqError::Read`] when the bytes cannot be read;
/// [`FastqError::Gzip`] for a damaged gzip start; [`FastqError::Empty`] for a file without a
/// line; [`FastqError::InvalidRecord`] when the first line does not start with `@` or holds no
/// name.
pub fn first_read_name(source: FastqSource) -> Result<String, FastqError> {
    use std::io::BufRead as _;
    let path = source.path().to_owned();
    let mut input = source.open()?;
    let mut line = Vec::new();
    input.read_until(b'\n', &mut line).map_err(|source| {
        if input.is_gzip() {
            FastqError::Gzip {
                path: path.clone(),
                records: 0,
                reason: "gzip stream damaged at its start",
                source,
            }
        } else {
            FastqError::Read {
                path: path.clone(),
                records: 0,
                source,
            }
        }
    })?;
    if line.is_empty() {
        return Err(FastqError::Empty { path });
    }
    let invalid = |reason: &str| FastqError::InvalidRecord {
        path: path.clone(),
        record: 1,
        line: 1,
        reason: reason.to_owned(),
    };
    let header = line
        .strip_prefix(b"@")
        .ok_or_else(|| invalid("the header line does not start with '@'"))?;
    let name: Vec<u8> = header
        .iter()
        .copied()
        .take_while(|byte| !matches!(byte, b' ' | b'\t' | b'\r' | b'\n'))
        .collect();
    if name.is_empty() {
        return Err(invalid("the header line holds no read name"));
    }
    Ok(String::from_utf8_lossy(&name).into_owned())
}
