//! The crate's errors: [`FastqError`] for FASTQ pairs, [`FormatError`] for everything else.

use std::io;

use biojob_core::{Classify, ExitClass};
use biojob_storage::StorageError;
use camino::Utf8PathBuf;

/// Why a FASTQ pair failed [`stream_fastq_pair`](crate::stream_fastq_pair) or
/// [`validate_fastq_pair`](crate::validate_fastq_pair).
///
/// Every variant names the file; record numbers are 1-based and count records from the start of
/// the file (record `n` starts on line `4n - 3`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FastqError {
    /// The file could not be opened.
    #[error("cannot open {path}")]
    Open {
        /// The FASTQ file.
        path: Utf8PathBuf,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },

    /// The path exists but is not a regular file (a FIFO, a device, a directory): refused
    /// before it is opened, since opening a FIFO blocks and a device never ends.
    #[error("{path} is {kind}, not a regular file")]
    NotAFile {
        /// The path.
        path: Utf8PathBuf,
        /// What it is, e.g. "a FIFO (named pipe)".
        kind: &'static str,
    },

    /// Reading the file failed below the FASTQ and gzip layers (a disk or network file system
    /// error).
    #[error("{path}: read failed {}", after_record(*records))]
    Read {
        /// The FASTQ file.
        path: Utf8PathBuf,
        /// How many complete records were read before the failure.
        records: u64,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },

    /// The gzip stream is damaged: it ends early (a truncated file), a member's CRC32 or ISIZE
    /// does not match its data (RFC 1952, section 2.3.1), or the compressed data is invalid.
    #[error("{path}: {reason} {}", after_record(*records))]
    Gzip {
        /// The FASTQ file.
        path: Utf8PathBuf,
        /// How many complete records were read before the damage.
        records: u64,
        /// What is wrong, e.g. "gzip stream ends early (truncated file?)".
        reason: &'static str,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },

    /// The file is compressed with a format other than gzip.
    #[error("{path}: {format} compression is not supported (use plain, gzip or BGZF FASTQ)")]
    UnsupportedCompression {
        /// The FASTQ file.
        path: Utf8PathBuf,
        /// The format recognised from the magic bytes, e.g. "zstd".
        format: &'static str,
    },

    /// A record breaks the FASTQ format: structure, lengths or quality characters.
    #[error("{path}: record {record}, line {line}: {reason}")]
    InvalidRecord {
        /// The FASTQ file.
        path: Utf8PathBuf,
        /// The 1-based record number.
        record: u64,
        /// The 1-based line number of the offending line.
        line: u64,
        /// What is wrong, e.g. "sequence has 52 bases but quality has 47 characters".
        reason: String,
    },

    /// The file holds no records at all.
    #[error("{path}: no records (empty file)")]
    Empty {
        /// The FASTQ file.
        path: Utf8PathBuf,
    },

    /// The pair has fewer blocks of read pairs than the chunks it is to be dealt into.
    #[error(
        "{path} has {pairs} read pairs: fewer than {chunks} blocks of {block_pairs} pairs, so a chunk would be empty"
    )]
    TooFewBlocks {
        /// The R1 file.
        path: Utf8PathBuf,
        /// Read pairs in the input.
        pairs: u64,
        /// Chunks asked for.
        chunks: usize,
        /// Read pairs per block.
        block_pairs: u64,
    },

    /// Record `record` of the two files belongs to different fragments.
    #[error("mate names differ at record {record}: {name_1:?} in {path_1}, {name_2:?} in {path_2}")]
    MateMismatch {
        /// The R1 file.
        path_1: Utf8PathBuf,
        /// The R2 file.
        path_2: Utf8PathBuf,
        /// The 1-based record number.
        record: u64,
        /// The mate name in R1 (header up to the first whitespace, `/1` removed), lossily UTF-8.
        name_1: String,
        /// The mate name in R2, likewise.
        name_2: String,
    },

    /// One file ended before the other.
    #[error("{shorter} ended after {records} records; {longer} has more")]
    CountMismatch {
        /// The file that ended first.
        shorter: Utf8PathBuf,
        /// The file that has more records.
        longer: Utf8PathBuf,
        /// How many records the shorter file has.
        records: u64,
    },

    /// Writing to a sink failed with `BrokenPipe`: its reader (the aligner) has exited. The
    /// caller should report the aligner's own failure instead of this error.
    #[error("the reader of the records of {path} closed its end {}", after_record(*records))]
    ConsumerClosed {
        /// The FASTQ file whose records were being written.
        path: Utf8PathBuf,
        /// How many records had been read from `path` when the write failed.
        records: u64,
        /// The write error.
        #[source]
        source: io::Error,
    },

    /// Writing to a sink failed for another reason.
    #[error("writing the records of {path} failed {}", after_record(*records))]
    Write {
        /// The FASTQ file whose records were being written.
        path: Utf8PathBuf,
        /// How many records had been read from `path` when the write failed.
        records: u64,
        /// The write error.
        #[source]
        source: io::Error,
    },
}

fn after_record(records: u64) -> String {
    if records == 0 {
        "before the first record".to_owned()
    } else {
        format!("after record {records}")
    }
}

impl FastqError {
    /// The 1-based record at which the problem shows, used to report the earliest of several
    /// problems found concurrently. `Empty` sorts first.
    pub(crate) fn record_order(&self) -> u64 {
        match self {
            FastqError::Open { .. }
            | FastqError::NotAFile { .. }
            | FastqError::Empty { .. }
            | FastqError::TooFewBlocks { .. } => 0,
            FastqError::UnsupportedCompression { .. } => 1,
            FastqError::InvalidRecord { record, .. } | FastqError::MateMismatch { record, .. } => {
                *record
            }
            FastqError::Read { records, .. }
            | FastqError::Gzip { records, .. }
            | FastqError::ConsumerClosed { records, .. }
            | FastqError::Write { records, .. }
            | FastqError::CountMismatch { records, .. } => records.saturating_add(1),
        }
    }
}

impl Classify for FastqError {
    /// Bad content → [`ExitClass::InputInvalid`]; a full disk anywhere → [`ExitClass::Scratch`];
    /// a closed consumer → [`ExitClass::ToolFailed`] (the aligner died first); other read errors
    /// on the inputs → see [`input_io_class`]; other write errors → [`ExitClass::OutputStaging`]
    /// (retryable: a failing scratch disk is worth another host).
    fn exit_class(&self) -> ExitClass {
        match self {
            FastqError::Open { source, .. } | FastqError::Read { source, .. } => {
                input_io_class(source)
            }
            FastqError::Write { source, .. } => {
                if source.kind() == io::ErrorKind::StorageFull {
                    ExitClass::Scratch
                } else {
                    ExitClass::OutputStaging
                }
            }
            FastqError::ConsumerClosed { .. } => ExitClass::ToolFailed,
            FastqError::Gzip { .. }
            | FastqError::NotAFile { .. }
            | FastqError::UnsupportedCompression { .. }
            | FastqError::InvalidRecord { .. }
            | FastqError::Empty { .. }
            | FastqError::TooFewBlocks { .. }
            | FastqError::MateMismatch { .. }
            | FastqError::CountMismatch { .. } => ExitClass::InputInvalid,
        }
    }

    fn remedy(&self) -> Option<String> {
        match self {
            FastqError::Gzip { path, .. } if path.as_str().contains("://") => Some(format!(
                "the object is damaged; upload it again (`biojob stage get {path} .` then \
                 `gzip -t` checks a copy)"
            )),
            FastqError::Gzip { path, .. } => Some(format!(
                "the file is damaged; upload it again (`gzip -t {path}` checks a copy)"
            )),
            FastqError::TooFewBlocks { .. } => Some(
                "ask for fewer chunks (CHUNKS, the length of params.chunks; a cohort lane's: a \
                 larger biojob plan-cohort --chunk-bytes) or smaller blocks \
                 (BIOJOB_ALIGN_CHUNK_PAIRS, params.chunkPairs)"
                    .to_owned(),
            ),
            FastqError::UnsupportedCompression { .. } => {
                Some("recompress the FASTQ files with gzip or bgzip".to_owned())
            }
            FastqError::NotAFile { .. } => Some(
                "give a regular file (write a pipe's or a device's output to a file first)"
                    .to_owned(),
            ),
            FastqError::MateMismatch { .. } | FastqError::CountMismatch { .. } => Some(
                "R1 and R2 must list the same fragments in the same order; when exporting from \
                 a BAM, use `samtools collate` and `samtools fastq -1 R1 -2 R2 -s singletons`"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// Why a FASTA index, BGZF file, BAM header or tabix index check failed, or a BAM could not
/// be staged for its regions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: Utf8PathBuf,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },

    /// The parser (noodles) rejected the content.
    #[error("{path}: invalid {format}")]
    Parse {
        /// The file.
        path: Utf8PathBuf,
        /// What the file was read as, e.g. "FASTA index (.fai)".
        format: &'static str,
        /// The parser's error.
        #[source]
        source: io::Error,
    },

    /// The content parsed but breaks a rule this crate checks.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: Utf8PathBuf,
        /// What is wrong, e.g. "contig \"chr1\" is listed twice".
        reason: String,
    },

    /// The file is not BGZF: not gzip at all, or plain gzip without the `BC` extra subfield
    /// (SAM spec v1, section 4.1).
    #[error("{path}: not BGZF: {reason}")]
    NotBgzf {
        /// The file.
        path: Utf8PathBuf,
        /// Why, e.g. "plain gzip: the first block has no BC extra subfield".
        reason: &'static str,
    },

    /// A FASTA's lines do not follow the layout a `.fai` can describe (htslib `faidx`): within
    /// a contig every sequence line but the last has the same length, and no blank line or
    /// longer line comes before the contig's end.
    #[error("{path}: contig {contig:?}, line {line}: {reason}")]
    FastaLayout {
        /// The FASTA.
        path: Utf8PathBuf,
        /// The contig whose lines break the layout.
        contig: String,
        /// The 1-based line number of the offending line.
        line: u64,
        /// What is wrong, e.g. "61 bases where the contig's lines have 60".
        reason: String,
    },

    /// An index (`.fai`, bwa index, `.bai`) that was not built from the file beside it, or from
    /// another version of it: tools would read wrong bases or records through it.
    #[error("{index} does not belong to {file}: {reason}")]
    IndexMismatch {
        /// The index (for a bwa index, its prefix).
        index: Utf8PathBuf,
        /// The file it is used with.
        file: Utf8PathBuf,
        /// The first difference found.
        reason: String,
        /// The command that builds the right index, for the hint (`samtools faidx`, …).
        rebuild: &'static str,
    },

    /// The file does not end with the 28-byte BGZF EOF marker block (SAM spec v1, section
    /// 4.1.2): it was truncated, or its writer did not finish.
    #[error("{path}: missing BGZF EOF block (truncated?)")]
    MissingBgzfEof {
        /// The file.
        path: Utf8PathBuf,
    },

    /// A BGZF block read from a file or object is damaged: its gzip header, `BC` subfield
    /// or `BSIZE`, its deflate data, or the `CRC32`/`ISIZE` of its inflated data (SAM spec
    /// v1, section 4.1; RFC 1952).
    #[error("{path}: damaged BGZF block at byte {offset}: {reason}")]
    DamagedBlock {
        /// The file or object URI.
        path: Utf8PathBuf,
        /// Where the block starts, in bytes from the start of the file.
        offset: u64,
        /// What is wrong, e.g. "the CRC32 of the inflated data is 0x1a2b3c4d, the trailer
        /// says 0x1a2b3c4c".
        reason: String,
    },

    /// A region cannot be read against a BAM's header.
    #[error("{path}: region {region:?}: {reason}")]
    Region {
        /// The BAM (path or URI).
        path: Utf8PathBuf,
        /// The region as given.
        region: String,
        /// Why, e.g. "no contig \"20\" in the header (contigs: chr20, chr22)".
        reason: String,
    },

    /// A local file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: Utf8PathBuf,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },

    /// Reading from a store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl FormatError {
    /// The error of a reader of `format` (e.g. "BAM header") on `path`: bad or short content
    /// (`InvalidData`, `InvalidInput`, `UnexpectedEof`) is [`FormatError::Parse`], any other
    /// I/O error [`FormatError::Io`].
    pub fn reading(
        path: &camino::Utf8Path,
        format: &'static str,
    ) -> impl FnOnce(io::Error) -> FormatError {
        let path = path.to_owned();
        move |source| match source.kind() {
            io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof => FormatError::Parse {
                path,
                format,
                source,
            },
            _ => FormatError::Io { path, source },
        }
    }

    /// The class of this error when the file checked is one of the step's own outputs (a BAM or
    /// VCF the step just wrote) rather than an input: bad content → [`ExitClass::OutputInvalid`],
    /// a full disk → [`ExitClass::Scratch`], any other I/O error → [`ExitClass::OutputInvalid`].
    pub fn exit_class_for_output(&self) -> ExitClass {
        match self {
            FormatError::Io { source, .. } | FormatError::Write { source, .. }
                if source.kind() == io::ErrorKind::StorageFull =>
            {
                ExitClass::Scratch
            }
            _ => ExitClass::OutputInvalid,
        }
    }
}

impl Classify for FormatError {
    /// As an input check: bad content → [`ExitClass::InputInvalid`]; I/O errors → see
    /// [`input_io_class`]; writing a staged copy: a full disk → [`ExitClass::Scratch`], else
    /// [`ExitClass::InputStaging`]; a store's failure → its own class. For a step's own
    /// outputs use [`FormatError::exit_class_for_output`].
    fn exit_class(&self) -> ExitClass {
        match self {
            FormatError::Io { source, .. } => input_io_class(source),
            FormatError::Write { source, .. } => {
                if source.kind() == io::ErrorKind::StorageFull {
                    ExitClass::Scratch
                } else {
                    ExitClass::InputStaging
                }
            }
            FormatError::Storage(error) => error.exit_class(),
            FormatError::Parse { .. }
            | FormatError::Invalid { .. }
            | FormatError::FastaLayout { .. }
            | FormatError::IndexMismatch { .. }
            | FormatError::NotBgzf { .. }
            | FormatError::MissingBgzfEof { .. }
            | FormatError::DamagedBlock { .. }
            | FormatError::Region { .. } => ExitClass::InputInvalid,
        }
    }

    fn remedy(&self) -> Option<String> {
        match self {
            FormatError::Storage(error) => error.remedy(),
            FormatError::DamagedBlock { path, .. } if path.as_str().contains("://") => {
                Some(format!(
                    "the object is damaged; upload it again (`biojob stage get {path} .` then \
                 `samtools quickcheck` and `samtools view -c` check a copy)"
                ))
            }
            FormatError::DamagedBlock { .. } => {
                Some("the file is damaged; write or upload it again".to_owned())
            }
            FormatError::Write { source, .. } if source.kind() == io::ErrorKind::StorageFull => {
                Some("free space on the scratch filesystem, or use a larger disk".to_owned())
            }
            FormatError::NotBgzf { .. } => {
                Some("compress the file with `bgzip` (htslib), not `gzip`".to_owned())
            }
            FormatError::MissingBgzfEof { .. } => {
                Some("the file is truncated: write or upload it again".to_owned())
            }
            FormatError::FastaLayout { .. } => Some(
                "rewrap the FASTA so that every line of a contig but its last has the same \
                 length, with no blank line inside a contig (e.g. `seqkit seq -w 60`)"
                    .to_owned(),
            ),
            FormatError::IndexMismatch { index, rebuild, .. } => Some(format!(
                "remove {index} so that it is rebuilt, or rebuild it from this file ({rebuild})"
            )),
            _ => None,
        }
    }
}

/// The class of an I/O error on an input file: a full disk → [`ExitClass::Scratch`]; a missing
/// file, a permission problem or a directory → [`ExitClass::InputInvalid`] (a retry would not
/// help); anything else (EIO, a network file system) → [`ExitClass::InputStaging`] (retryable).
pub fn input_io_class(error: &io::Error) -> ExitClass {
    match error.kind() {
        io::ErrorKind::StorageFull => ExitClass::Scratch,
        io::ErrorKind::NotFound
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof => ExitClass::InputInvalid,
        _ => ExitClass::InputStaging,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_gzip_hint_fits_a_file_and_an_object() {
        let damaged = |path: &str| FastqError::Gzip {
            path: Utf8PathBuf::from(path),
            records: 3,
            reason: "gzip stream ends early (truncated file?)",
            source: io::Error::from(io::ErrorKind::UnexpectedEof),
        };
        assert_eq!(
            damaged("/data/x_R1.fastq.gz").remedy().as_deref(),
            Some(
                "the file is damaged; upload it again (`gzip -t /data/x_R1.fastq.gz` checks a copy)"
            )
        );
        assert_eq!(
            damaged("s3://b/x_R1.fastq.gz").remedy().as_deref(),
            Some(
                "the object is damaged; upload it again (`biojob stage get s3://b/x_R1.fastq.gz .` \
                 then `gzip -t` checks a copy)"
            )
        );
    }
}
