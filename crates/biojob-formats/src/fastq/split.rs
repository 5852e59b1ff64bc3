//! Splitting a FASTQ pair into chunks of read pairs, mates kept together.

use std::io::{BufWriter, Write};
use std::num::{NonZeroU64, NonZeroUsize};

use camino::{Utf8Path, Utf8PathBuf};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::input::{FastqInput, IO_BUFFER_BYTES};
use super::record::{RecordReader, RecordView};
use crate::FastqError;

/// One chunk of a FASTQ pair, as [`split_fastq_pair`] wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastqChunk {
    /// Position of the chunk in the input, 0-based.
    pub index: usize,
    /// Its read 1 file, gzip.
    pub fastq_1: Utf8PathBuf,
    /// Its read 2 file, gzip.
    pub fastq_2: Utf8PathBuf,
    /// Read pairs in the chunk.
    pub pairs: u64,
    /// Bases in the chunk, both mates.
    pub bases: u64,
}

/// The file names of chunk `index`: `{prefix}.{index:04}_R1.fastq.gz` and `_R2`.
pub fn fastq_chunk_names(prefix: &str, index: usize) -> (String, String) {
    (
        format!("{prefix}.{index:04}_R1.fastq.gz"),
        format!("{prefix}.{index:04}_R2.fastq.gz"),
    )
}

struct ChunkWriter {
    partial_1: Utf8PathBuf,
    partial_2: Utf8PathBuf,
    out_1: BufWriter<GzEncoder<fs_err::File>>,
    out_2: BufWriter<GzEncoder<fs_err::File>>,
    chunk: FastqChunk,
}

fn write_error(path: &Utf8Path, records: u64) -> impl FnOnce(std::io::Error) -> FastqError {
    let path = path.to_owned();
    move |source| FastqError::Write {
        path,
        records,
        source,
    }
}

impl ChunkWriter {
    fn create(dir: &Utf8Path, prefix: &str, index: usize) -> Result<ChunkWriter, FastqError> {
        let (name_1, name_2) = fastq_chunk_names(prefix, index);
        let (fastq_1, fastq_2) = (dir.join(name_1), dir.join(name_2));
        let partial_1 = Utf8PathBuf::from(format!("{fastq_1}.partial"));
        let partial_2 = Utf8PathBuf::from(format!("{fastq_2}.partial"));
        let open = |path: &Utf8Path| {
            fs_err::File::create(path)
                .map(|file| {
                    BufWriter::with_capacity(
                        IO_BUFFER_BYTES,
                        GzEncoder::new(file, Compression::fast()),
                    )
                })
                .map_err(write_error(path, 0))
        };
        Ok(ChunkWriter {
            out_1: open(&partial_1)?,
            out_2: open(&partial_2)?,
            partial_1,
            partial_2,
            chunk: FastqChunk {
                index,
                fastq_1,
                fastq_2,
                pairs: 0,
                bases: 0,
            },
        })
    }

    /// Completes both gzip streams and renames the files to their final names.
    fn finish(self) -> Result<FastqChunk, FastqError> {
        let pairs = self.chunk.pairs;
        for (out, partial, path) in [
            (self.out_1, &self.partial_1, &self.chunk.fastq_1),
            (self.out_2, &self.partial_2, &self.chunk.fastq_2),
        ] {
            let encoder = out
                .into_inner()
                .map_err(|e| write_error(partial, pairs)(e.into_error()))?;
            let file = encoder.finish().map_err(write_error(partial, pairs))?;
            file.sync_all().map_err(write_error(partial, pairs))?;
            fs_err::rename(partial, path).map_err(write_error(path, pairs))?;
        }
        Ok(self.chunk)
    }
}

fn write_record(out: &mut impl Write, raw: &[u8]) -> std::io::Result<()> {
    out.write_all(raw)?;
    if raw.last() != Some(&b'\n') {
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The next record of each file, checked as mates; `None` when both files end together.
/// `record` is the number of pairs read so far.
fn next_pair<'a>(
    reader_1: &'a mut RecordReader,
    reader_2: &'a mut RecordReader,
    fastq_1: &Utf8Path,
    fastq_2: &Utf8Path,
    record: u64,
) -> Result<Option<(RecordView<'a>, RecordView<'a>)>, FastqError> {
    let (first, second) = match (reader_1.next_record()?, reader_2.next_record()?) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(FastqError::CountMismatch {
                shorter: fastq_2.to_owned(),
                longer: fastq_1.to_owned(),
                records: record,
            });
        }
        (None, Some(_)) => {
            return Err(FastqError::CountMismatch {
                shorter: fastq_1.to_owned(),
                longer: fastq_2.to_owned(),
                records: record,
            });
        }
        (Some(first), Some(second)) => (first, second),
    };
    if first.name != second.name {
        return Err(FastqError::MateMismatch {
            path_1: fastq_1.to_owned(),
            path_2: fastq_2.to_owned(),
            record: record + 1,
            name_1: String::from_utf8_lossy(first.name).into_owned(),
            name_2: String::from_utf8_lossy(second.name).into_owned(),
        });
    }
    Ok(Some((first, second)))
}

impl ChunkWriter {
    /// Appends one pair.
    fn push(
        &mut self,
        first: &RecordView<'_>,
        second: &RecordView<'_>,
        record: u64,
    ) -> Result<(), FastqError> {
        write_record(&mut self.out_1, first.raw).map_err(write_error(&self.partial_1, record))?;
        write_record(&mut self.out_2, second.raw).map_err(write_error(&self.partial_2, record))?;
        self.chunk.pairs += 1;
        self.chunk.bases += first.bases + second.bases;
        Ok(())
    }
}

/// Splits a FASTQ pair into exactly `chunks` chunks by blocks of `block_pairs` read pairs
/// dealt in turn: block `k` (pairs `k × block_pairs` to `(k + 1) × block_pairs - 1`, 0-based)
/// goes to chunk `k mod chunks`, so the number of chunks is known before the input is read (a
/// state machine maps over it) while each chunk is still made of whole blocks. Names, checks,
/// partial files and errors are those of [`split_fastq_pair`].
///
/// # Errors
/// As [`split_fastq_pair`]; also [`FastqError::TooFewBlocks`] when the input has fewer blocks
/// than `chunks` (a chunk would be empty).
pub fn split_fastq_pair_in_turn(
    fastq_1: &Utf8Path,
    fastq_2: &Utf8Path,
    block_pairs: NonZeroU64,
    chunks: NonZeroUsize,
    dir: &Utf8Path,
    prefix: &str,
) -> Result<Vec<FastqChunk>, FastqError> {
    let mut reader_1 = RecordReader::new(fastq_1, FastqInput::open(fastq_1)?);
    let mut reader_2 = RecordReader::new(fastq_2, FastqInput::open(fastq_2)?);
    let mut writers = (0..chunks.get())
        .map(|index| ChunkWriter::create(dir, prefix, index))
        .collect::<Result<Vec<_>, _>>()?;
    let mut record: u64 = 0;
    while let Some((first, second)) =
        next_pair(&mut reader_1, &mut reader_2, fastq_1, fastq_2, record)?
    {
        let block = record / block_pairs.get();
        record += 1;
        let slot = usize::try_from(block % chunks.get() as u64).unwrap_or_default();
        writers[slot].push(&first, &second, record)?;
    }
    if record == 0 {
        return Err(FastqError::Empty {
            path: fastq_1.to_owned(),
        });
    }
    if writers.iter().any(|writer| writer.chunk.pairs == 0) {
        return Err(FastqError::TooFewBlocks {
            path: fastq_1.to_owned(),
            pairs: record,
            chunks: chunks.get(),
            block_pairs: block_pairs.get(),
        });
    }
    let chunks = writers
        .into_iter()
        .map(ChunkWriter::finish)
        .collect::<Result<Vec<_>, _>>()?;
    tracing::info!(%fastq_1, %fastq_2, pairs = record, chunks = chunks.len(), "FASTQ pair split in turn");
    Ok(chunks)
}

/// Splits a FASTQ pair into chunks of `chunk_pairs` read pairs (the last chunk holds the rest),
/// written in one streaming pass into `dir` as gzip files named by [`fastq_chunk_names`]: the
/// names depend only on `prefix` and the chunk's position, so the same input always gives the
/// same chunks.
///
/// Record `i` of R1 and record `i` of R2 always land in the same chunk at the same position;
/// records are copied byte for byte (a missing final newline added). Each record gets the
/// checks of [`super::stream_fastq_pair`] (structure, lengths, Phred+33 qualities), mate names
/// must agree record by record, and the files must have the same number of records, at least
/// one. Each chunk file is written under a `.partial` name and renamed when complete; memory is
/// constant (the buffers).
///
/// # Errors
/// [`FastqError::Open`], [`FastqError::UnsupportedCompression`], [`FastqError::InvalidRecord`],
/// [`FastqError::Gzip`], [`FastqError::Read`] for the inputs; [`FastqError::MateMismatch`],
/// [`FastqError::CountMismatch`], [`FastqError::Empty`] for the pair; [`FastqError::Write`]
/// when a chunk cannot be written. Chunks completed before the error stay on disk.
pub fn split_fastq_pair(
    fastq_1: &Utf8Path,
    fastq_2: &Utf8Path,
    chunk_pairs: NonZeroU64,
    dir: &Utf8Path,
    prefix: &str,
) -> Result<Vec<FastqChunk>, FastqError> {
    let mut reader_1 = RecordReader::new(fastq_1, FastqInput::open(fastq_1)?);
    let mut reader_2 = RecordReader::new(fastq_2, FastqInput::open(fastq_2)?);
    let mut chunks = Vec::new();
    let mut current: Option<ChunkWriter> = None;
    let mut record: u64 = 0;
    while let Some((first, second)) =
        next_pair(&mut reader_1, &mut reader_2, fastq_1, fastq_2, record)?
    {
        record += 1;
        let writer = match current.as_mut() {
            Some(writer) => writer,
            None => current.insert(ChunkWriter::create(dir, prefix, chunks.len())?),
        };
        writer.push(&first, &second, record)?;
        if writer.chunk.pairs == chunk_pairs.get()
            && let Some(full) = current.take()
        {
            chunks.push(full.finish()?);
        }
    }
    if let Some(last) = current.take() {
        chunks.push(last.finish()?);
    }
    if chunks.is_empty() {
        return Err(FastqError::Empty {
            path: fastq_1.to_owned(),
        });
    }
    tracing::info!(%fastq_1, %fastq_2, pairs = record, chunks = chunks.len(), "FASTQ pair split");
    Ok(chunks)
}
