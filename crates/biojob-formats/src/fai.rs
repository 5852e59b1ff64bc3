//! FASTA index (`.fai`) files, as written by `samtools faidx`.

use std::collections::HashSet;
use std::io::{self, BufReader};

use biojob_core::Contig;
use camino::Utf8Path;
use noodles::fasta::fai;

use crate::FormatError;

/// The contigs of a FASTA index, in file order.
///
/// A `.fai` has one tab-separated line per sequence: NAME, LENGTH, OFFSET, LINEBASES, LINEWIDTH
/// (samtools `faidx` manual, and the htslib `faidx` documentation). The contig name is the first
/// word of NAME (`samtools faidx` already cuts the FASTA header there); the length is in bases.
///
/// # Errors
/// [`FormatError::Io`] when the file cannot be read; [`FormatError::Parse`] for a malformed line;
/// [`FormatError::Invalid`] for an empty index, a non-UTF-8 or empty name, or a name listed twice.
pub fn read_fai(path: &Utf8Path) -> Result<Vec<Contig>, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let file = fs_err::File::open(path).map_err(io_error)?;
    let index = fai::io::Reader::new(BufReader::new(file))
        .read_index()
        .map_err(|source| match source.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => FormatError::Parse {
                path: path.to_owned(),
                format: "FASTA index (.fai)",
                source,
            },
            _ => io_error(source),
        })?;
    let invalid = |reason: String| FormatError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let records: &[fai::Record] = index.as_ref();
    if records.is_empty() {
        return Err(invalid("the index lists no contigs".to_owned()));
    }
    let mut seen = HashSet::with_capacity(records.len());
    let mut contigs = Vec::with_capacity(records.len());
    for (number, record) in records.iter().enumerate() {
        let line = number + 1;
        let full: &[u8] = record.name();
        let word = full
            .split(u8::is_ascii_whitespace)
            .next()
            .unwrap_or_default();
        let name = std::str::from_utf8(word)
            .map_err(|_| invalid(format!("line {line}: the contig name is not UTF-8")))?;
        if name.is_empty() {
            return Err(invalid(format!("line {line}: the contig name is empty")));
        }
        if !seen.insert(name) {
            return Err(invalid(format!(
                "line {line}: contig {name:?} is listed twice"
            )));
        }
        contigs.push(Contig::new(name, record.length()));
    }
    tracing::debug!(%path, contigs = contigs.len(), "FASTA index read");
    Ok(contigs)
}

/// Checks that `fai` accounts for every record of the plain FASTA `fasta`: after each indexed
/// sequence (its offset and line layout from the `.fai`: NAME, LENGTH, OFFSET, LINEBASES,
/// LINEWIDTH) the next line that is not blank must be the header of the next indexed contig,
/// and after the last one only blank lines may follow. `samtools faidx` keeps only the first
/// of two records with the same name (warning "Ignoring duplicate sequence"), so the second
/// one's bases would be aligned to by bwa, which indexes every record, but be unknown to every
/// other tool; this check finds such a record with one short read per contig.
///
/// # Errors
/// [`FormatError::Invalid`] (on `fasta`) naming the byte offset and header line of the first
/// record the index does not list; [`FormatError::Io`] when a file cannot be read;
/// [`FormatError::Parse`] for a malformed `.fai`.
pub fn check_fai_covers_fasta(fasta: &Utf8Path, fai_path: &Utf8Path) -> Result<(), FormatError> {
    use std::io::{BufRead, Seek, SeekFrom};
    let io_error = |path: &Utf8Path| {
        let path = path.to_owned();
        move |source| FormatError::Io { path, source }
    };
    let index = fai::io::Reader::new(BufReader::new(
        fs_err::File::open(fai_path).map_err(io_error(fai_path))?,
    ))
    .read_index()
    .map_err(|source| FormatError::Parse {
        path: fai_path.to_owned(),
        format: "FASTA index (.fai)",
        source,
    })?;
    let records: &[fai::Record] = index.as_ref();
    let mut reader = BufReader::new(fs_err::File::open(fasta).map_err(io_error(fasta))?);
    let mut line = Vec::new();
    for (number, record) in records.iter().enumerate() {
        let (length, line_bases) = (record.length(), u64::from(record.line_base_count()).max(1));
        let line_width = u64::from(record.line_width());
        // The byte after the sequence's last base, then after its line terminator.
        let lines = length.div_ceil(line_bases);
        let end = if lines == 0 {
            record.position()
        } else {
            record.position() + (lines - 1) * line_width + (length - (lines - 1) * line_bases)
        };
        let next_start = end + line_width.saturating_sub(line_bases);
        reader
            .seek(SeekFrom::Start(next_start))
            .map_err(io_error(fasta))?;
        // The next line that is not blank.
        let position = loop {
            let at = reader.stream_position().map_err(io_error(fasta))?;
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .map_err(io_error(fasta))?
                == 0
            {
                break None;
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                break Some(at);
            }
        };
        let expected: Option<&[u8]> = records.get(number + 1).map(|next| -> &[u8] { next.name() });
        let header = line
            .strip_suffix(b"\n")
            .map(|text| text.strip_suffix(b"\r").unwrap_or(text))
            .unwrap_or(&line);
        let found_name = header.strip_prefix(b">").map(|rest| {
            rest.split(u8::is_ascii_whitespace)
                .next()
                .unwrap_or_default()
        });
        match (position, expected) {
            (None, None) => return Ok(()),
            (Some(at), expected) if found_name != expected => {
                let shown = String::from_utf8_lossy(&header[..header.len().min(80)]);
                return Err(FormatError::Invalid {
                    path: fasta.to_owned(),
                    reason: format!(
                        "the line at byte {at} ({shown:?}) is not where its index {fai_path} \
                         puts the next record{}; a contig name used twice? (samtools faidx \
                         indexes only the first record of a name)",
                        expected.map_or_else(String::new, |name| format!(
                            " ({:?})",
                            String::from_utf8_lossy(name)
                        ))
                    ),
                });
            }
            (None, Some(name)) => {
                return Err(FormatError::Invalid {
                    path: fasta.to_owned(),
                    reason: format!(
                        "it ends before contig {:?} that its index {fai_path} lists",
                        String::from_utf8_lossy(name)
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(())
}
