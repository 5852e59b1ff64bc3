//! Reading and checking one FASTQ record at a time, without per-record allocation.
//!
//! The format is the four-line Sanger FASTQ of Cock et al., "The Sanger FASTQ file format for
//! sequences with quality scores, and the Solexa/Illumina FASTQ variants", Nucleic Acids Research
//! 38(6), 2010: `@name[ description]`, the sequence, `+[name]`, the qualities (Phred+33). Wrapped
//! (multi-line) sequences are not accepted: no Illumina or SRA tool writes them.

use std::io::{self, BufRead};
use std::ops::Range;

use camino::{Utf8Path, Utf8PathBuf};

use super::input::FastqInput;
use crate::FastqError;
use crate::text::{preview, trim_line_end};

/// The lowest Phred+33 quality character (`!`, quality 0).
const PHRED_MIN: u8 = b'!';
/// The highest Phred+33 quality character (`~`, quality 93).
const PHRED_MAX: u8 = b'~';

/// One record that passed the checks, borrowed from the reader's buffer.
#[derive(Debug)]
pub(crate) struct RecordView<'a> {
    /// The record's bytes exactly as read, newlines included.
    pub(crate) raw: &'a [u8],
    /// The mate name: the header after `@` up to the first space or tab, without `/1` or `/2`.
    pub(crate) name: &'a [u8],
    /// Sequence length in bases.
    pub(crate) bases: u64,
}

/// Reads records from a decompressed FASTQ stream into one reused buffer and checks each.
#[derive(Debug)]
pub(crate) struct RecordReader {
    path: Utf8PathBuf,
    /// Which read of the pair the file holds: 1 (R1) or 2 (R2).
    mate: u8,
    input: FastqInput,
    buf: Vec<u8>,
    records: u64,
    lines: u64,
}

impl RecordReader {
    /// A reader of `input`, the content of `path` (named in errors), the file of read `mate`
    /// (1 or 2) of the pair.
    pub(crate) fn new(path: &Utf8Path, mate: u8, input: FastqInput) -> RecordReader {
        RecordReader {
            path: path.to_owned(),
            mate,
            input,
            buf: Vec::with_capacity(4096),
            records: 0,
            lines: 0,
        }
    }

    /// Records read and checked so far.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Reads the rest of the input's underlying bytes ([`FastqInput::drain`]).
    pub(crate) fn drain_input(&mut self) {
        self.input.drain();
    }

    /// Bytes read from disk so far (compressed bytes for gzip).
    pub(crate) fn bytes_read(&self) -> u64 {
        self.input.bytes_read()
    }

    /// Whether the input is gzip-compressed.
    pub(crate) fn is_gzip(&self) -> bool {
        self.input.is_gzip()
    }

    /// Reads and checks the next record; `Ok(None)` at the end of the file.
    ///
    /// # Errors
    /// [`FastqError::InvalidRecord`] for a broken record, [`FastqError::Gzip`] for a damaged gzip
    /// stream, [`FastqError::Read`] when the disk read fails.
    pub(crate) fn next_record(&mut self) -> Result<Option<RecordView<'_>>, FastqError> {
        let first_line = self.lines + 1;
        self.buf.clear();

        if self.read_line()? == 0 {
            return Ok(None);
        }
        let header_end = self.buf.len();
        if self.buf[0] != b'@' {
            return Err(self.invalid(
                first_line,
                format!(
                    "expected a header line starting with '@', found {}",
                    preview(&self.buf[..header_end])
                ),
            ));
        }

        if self.read_line()? == 0 {
            return Err(self.invalid(
                first_line + 1,
                "the file ends after the header line; expected the sequence line".to_owned(),
            ));
        }
        let sequence_end = self.buf.len();

        if self.read_line()? == 0 {
            return Err(self.invalid(
                first_line + 2,
                "the file ends after the sequence line; expected a '+' line".to_owned(),
            ));
        }
        let plus_end = self.buf.len();
        if self.buf[sequence_end] != b'+' {
            return Err(self.invalid(
                first_line + 2,
                format!(
                    "expected a '+' line, found {}",
                    preview(&self.buf[sequence_end..plus_end])
                ),
            ));
        }

        if self.read_line()? == 0 {
            return Err(self.invalid(
                first_line + 3,
                "the file ends after the '+' line; expected the quality line".to_owned(),
            ));
        }

        let header = trim_line_end(&self.buf[..header_end]);
        let sequence = trim_line_end(&self.buf[header_end..sequence_end]);
        let plus = trim_line_end(&self.buf[sequence_end..plus_end]);
        let quality = trim_line_end(&self.buf[plus_end..]);

        if plus.len() > 1 && plus[1..] != header[1..] {
            return Err(self.invalid(
                first_line + 2,
                format!(
                    "the '+' line repeats a name other than the header's: {}",
                    preview(plus)
                ),
            ));
        }
        if quality.len() != sequence.len() {
            return Err(self.invalid(
                first_line + 3,
                format!(
                    "sequence has {} bases but quality has {} characters",
                    sequence.len(),
                    quality.len()
                ),
            ));
        }
        if let Some(position) = first_bad_base(sequence) {
            let byte = sequence[position];
            return Err(self.invalid(
                first_line + 1,
                format!(
                    "base {:?} (byte {byte:#04x}) at position {} is not a sequence character \
                     (SAM SEQ allows letters, '=' and '.')",
                    char::from(byte),
                    position + 1
                ),
            ));
        }
        if let Some(position) = first_bad_quality(quality) {
            let byte = quality[position];
            return Err(self.invalid(
                first_line + 3,
                format!(
                    "quality character {:?} (byte {byte:#04x}) at position {} is outside the \
                     Phred+33 range '!'..='~'",
                    char::from(byte),
                    position + 1
                ),
            ));
        }
        let (name, suffix) = mate_name_range(header);
        if name.is_empty() {
            return Err(self.invalid(first_line, "the read name is empty".to_owned()));
        }
        if let Some(suffix) = suffix
            && suffix != self.mate
        {
            return Err(self.invalid(
                first_line,
                format!(
                    "read name {} ends in /{suffix} in the file of read {}; a name that ends \
                     in /1 or /2 must be in the R1 or R2 file respectively (R1 and R2 swapped?)",
                    preview(&header[1..name.end + 2]),
                    self.mate
                ),
            ));
        }

        self.records += 1;
        Ok(Some(RecordView {
            raw: &self.buf,
            name: &self.buf[name],
            bases: sequence.len() as u64,
        }))
    }

    /// Appends one line (with its `\n`, if any) to the buffer; returns its length, 0 at EOF.
    fn read_line(&mut self) -> Result<usize, FastqError> {
        match self.input.read_until(b'\n', &mut self.buf) {
            Ok(0) => Ok(0),
            Ok(n) => {
                self.lines += 1;
                Ok(n)
            }
            Err(source) => Err(self.read_error(source)),
        }
    }

    fn invalid(&self, line: u64, reason: String) -> FastqError {
        FastqError::InvalidRecord {
            path: self.path.clone(),
            record: self.records + 1,
            line,
            reason,
        }
    }

    /// Maps a read error to a gzip error (flate2 reports a truncated stream as `UnexpectedEof`,
    /// a bad CRC32/ISIZE or invalid deflate data as `InvalidInput`) or a plain read error.
    fn read_error(&self, source: io::Error) -> FastqError {
        let path = self.path.clone();
        let records = self.records;
        if !self.input.is_gzip() {
            return FastqError::Read {
                path,
                records,
                source,
            };
        }
        let reason = match source.kind() {
            io::ErrorKind::UnexpectedEof => "gzip stream ends early (truncated file?)",
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                if source.to_string().contains("checksum") {
                    "gzip member checksum (CRC32 or ISIZE) does not match its data"
                } else {
                    "invalid gzip data"
                }
            }
            _ => {
                return FastqError::Read {
                    path,
                    records,
                    source,
                };
            }
        };
        FastqError::Gzip {
            path,
            records,
            reason,
            source,
        }
    }
}

/// The mate name's range in `header` (which starts with `@`): up to the first space or tab, with
/// a trailing `/1` or `/2` removed; and that suffix's digit (1 or 2), if there was one.
fn mate_name_range(header: &[u8]) -> (Range<usize>, Option<u8>) {
    let end = header
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(header.len());
    let suffix = match &header[1..end] {
        [.., b'/', b'1'] => Some(1),
        [.., b'/', b'2'] => Some(2),
        _ => None,
    };
    let end = if suffix.is_some() { end - 2 } else { end };
    (1..end, suffix)
}

/// Whether `byte` may be a base: a character of SAM's `SEQ` field, `[A-Za-z=.]` (SAM spec v1,
/// section 1.4, field 10), which bwa copies into each record as read. Arithmetic rather than a
/// table and without short-circuits, so that the scan below vectorises (`| 0x20` folds upper case onto lower case).
fn is_base(byte: u8) -> bool {
    ((byte | 0x20).wrapping_sub(b'a') < 26) | (byte == b'=') | (byte == b'.')
}

/// The index of the first byte of `sequence` that is not a SAM `SEQ` character, if any.
///
/// Branch-free first pass, as for [`first_bad_quality`].
fn first_bad_base(sequence: &[u8]) -> Option<usize> {
    let any_bad = sequence
        .iter()
        .fold(false, |bad, &byte| bad | !is_base(byte));
    if any_bad {
        sequence.iter().position(|&byte| !is_base(byte))
    } else {
        None
    }
}

/// The index of the first byte of `quality` outside `!`..=`~`, if any.
///
/// The first pass is branch-free so that it vectorises; only a bad record pays for the second.
fn first_bad_quality(quality: &[u8]) -> Option<usize> {
    let any_bad = quality.iter().fold(false, |bad, &byte| {
        bad | (byte.wrapping_sub(PHRED_MIN) > PHRED_MAX - PHRED_MIN)
    });
    if any_bad {
        quality
            .iter()
            .position(|&byte| !(PHRED_MIN..=PHRED_MAX).contains(&byte))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mate_names() {
        let name = |header: &[u8]| {
            let (range, suffix) = mate_name_range(header);
            (header[range].to_vec(), suffix)
        };
        assert_eq!(name(b"@r1"), (b"r1".to_vec(), None));
        assert_eq!(name(b"@r1/1"), (b"r1".to_vec(), Some(1)));
        assert_eq!(name(b"@r1/2 comment"), (b"r1".to_vec(), Some(2)));
        assert_eq!(name(b"@r1\tBC:Z:ACGT"), (b"r1".to_vec(), None));
        assert_eq!(name(b"@r1/3"), (b"r1/3".to_vec(), None));
        assert_eq!(name(b"@"), (b"".to_vec(), None));
        assert_eq!(name(b"@/1"), (b"".to_vec(), Some(1)));
    }

    #[test]
    fn quality_range() {
        assert_eq!(first_bad_quality(b""), None);
        assert_eq!(first_bad_quality(b"!~IIII#"), None);
        let all: Vec<u8> = (b'!'..=b'~').collect();
        assert_eq!(first_bad_quality(&all), None);
        assert_eq!(first_bad_quality(b"II I"), Some(2));
        assert_eq!(first_bad_quality(b"II\tI"), Some(2));
        assert_eq!(first_bad_quality(b"III\x7f"), Some(3));
        assert_eq!(first_bad_quality(b"\xffIII"), Some(0));
    }

    #[test]
    fn sequence_characters() {
        assert_eq!(first_bad_base(b""), None);
        assert_eq!(first_bad_base(b"ACGTNacgtn=.RYKMSWBDHV"), None);
        assert_eq!(first_bad_base(b"ACG-T"), Some(3));
        assert_eq!(first_bad_base(b"*"), Some(0));
        assert_eq!(first_bad_base(b"ACGT "), Some(4));
        assert_eq!(first_bad_base(b"AC1"), Some(2));
        assert_eq!(first_bad_base(b"A\xc3\xa9"), Some(1));
        let allowed: Vec<u8> = (0..=255u8).filter(|b| is_base(*b)).collect();
        let mut expected: Vec<u8> = (b'A'..=b'Z').chain(b'a'..=b'z').chain(*b"=.").collect();
        expected.sort_unstable();
        assert_eq!(allowed, expected);
    }
}
