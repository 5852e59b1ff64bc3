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
