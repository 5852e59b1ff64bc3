//! bwa index files (`.ann`, `.amb`, `.pac`), checked against the FASTA they are used with.
//!
//! Formats (bwa `bntseq.c`, `bns_dump` and `bns_fasta2bntseq`): the `.ann` starts with
//! `l_pac n_seqs seed`, then two lines per contig, `gi name [comment]` and
//! `offset length n_ambiguous`; the `.amb` starts with `l_pac n_seqs n_holes`, then one line per
//! run of one ambiguous character, `offset length character`; the `.pac` holds the forward
//! strand of every contig end to end, four bases per byte, the first in the high bits
//! (A = 0, C = 1, G = 2, T = 3), each ambiguous base replaced by a random one, then a zero
//! byte when `l_pac` is a multiple of 4, then one byte `l_pac mod 4`.

use std::io::{BufRead, BufReader, Read};

use camino::{Utf8Path, Utf8PathBuf};

use crate::FormatError;

/// A contig as a bwa index lists it in its `.ann`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwaIndexContig {
    /// The name: the first word of the FASTA header line.
    pub name: String,
    /// Length in bases.
    pub length: u64,
    /// Position of its first base in the packed sequence.
    pub offset: u64,
}

/// A run of one ambiguous character (not A, C, G or T), as the `.amb` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousRun {
    /// Position of its first base in the packed sequence.
    pub offset: u64,
    /// Length in bases.
    pub length: u64,
    /// The character, as in the FASTA (`N`, `n`, `R`, …).
    pub character: u8,
}

/// What a bwa index's `.ann` and `.amb` record about the FASTA it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwaIndexSummary {
    /// Bases packed: the sum of the contigs' lengths.
    pub packed_bases: u64,
    /// The contigs, in FASTA order.
    pub contigs: Vec<BwaIndexContig>,
    /// The runs of ambiguous bases, in FASTA order.
    pub ambiguous: Vec<AmbiguousRun>,
}

/// 2-bit code of a base as bwa packs it (`nst_nt4_table`): A/a 0, C/c 1, G/g 2, T/t 3, any
/// other byte 4 (ambiguous).
const fn nt4(byte: u8) -> u8 {
    match byte {
        b'A' | b'a' => 0,
        b'C' | b'c' => 1,
        b'G' | b'g' => 2,
        b'T' | b't' => 3,
        _ => 4,
    }
}

/// [`nt4`] as a table, for the per-base loop.
const NT4: [u8; 256] = {
    let mut table = [4u8; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = nt4(byte as u8);
        byte += 1;
    }
    table
};

/// The three index files of `prefix` this module reads.
fn index_file(prefix: &Utf8Path, extension: &str) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{prefix}.{extension}"))
}

/// Reads the `.ann` and `.amb` of the bwa index at `prefix`.
///
/// # Errors
/// [`FormatError::Io`] when a file cannot be read; [`FormatError::Invalid`] when one is not
/// a bwa `.ann` or `.amb` file, or the two disagree on the number of bases.
pub fn read_bwa_index_summary(prefix: &Utf8Path) -> Result<BwaIndexSummary, FormatError> {
    let ann = index_file(prefix, "ann");
    let amb = index_file(prefix, "amb");
    let read = |path: &Utf8Path| {
        fs_err::read_to_string(path).map_err(|source| FormatError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let malformed = |path: &Utf8Path, line: usize| FormatError::Invalid {
        path: path.to_owned(),
        reason: format!("line {line} is not what a bwa index file holds there"),
    };
    /// The whitespace-separated numbers of `line`, or `None` when one is not a number.
    fn numbers(line: &str) -> Option<Vec<u64>> {
        line.split_whitespace()
            .map(|word| word.parse().ok())
            .collect()
    }

    let text = read(&ann)?;
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(numbers)
        .ok_or_else(|| malformed(&ann, 1))?;
    let [packed_bases, count, ..] = header[..] else {
        return Err(malformed(&ann, 1));
    };
    let mut contigs = Vec::new();
    for index in 0..count {
        let line = 2 + 2 * index as usize;
        let name = lines
            .next()
            .and_then(|text| text.split_whitespace().nth(1))
            .ok_or_else(|| malformed(&ann, line))?;
        let place = lines
            .next()
            .and_then(numbers)
            .ok_or_else(|| malformed(&ann, line + 1))?;
        let [offset, length, ..] = place[..] else {
            return Err(malformed(&ann, line + 1));
        };
        contigs.push(BwaIndexContig {
            name: name.to_owned(),
            length,
            offset,
        });
    }

    let text = read(&amb)?;
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(numbers)
        .ok_or_else(|| malformed(&amb, 1))?;
    let [amb_bases, _, holes, ..] = header[..] else {
        return Err(malformed(&amb, 1));
    };
    if amb_bases != packed_bases {
        return Err(FormatError::Invalid {
            path: amb.clone(),
            reason: format!(
                "it counts {amb_bases} bases where {ann} counts {packed_bases}: the two files \
                 come from different indexes"
            ),
        });
    }
    let mut ambiguous = Vec::new();
    for index in 0..holes {
        let line = 2 + index as usize;
        let mut words = lines
            .next()
            .ok_or_else(|| malformed(&amb, line))?
            .split_whitespace();
        let mut number = || words.next().and_then(|word| word.parse::<u64>().ok());
        let (Some(offset), Some(length)) = (number(), number()) else {
            return Err(malformed(&amb, line));
        };
        let character = words
            .next()
            .and_then(|word| word.bytes().next())
            .ok_or_else(|| malformed(&amb, line))?;
        ambiguous.push(AmbiguousRun {
            offset,
            length,
            character,
        });
    }
    Ok(BwaIndexSummary {
        packed_bases,
        contigs,
        ambiguous,
    })
}

/// Checks that the bwa index at `prefix` was built from the plain FASTA `fasta` as it is now:
/// the contigs of the `.ann` (names, lengths, order) are the FASTA's, and so is every base:
/// inside a run of the `.amb` the FASTA's character must be the run's, elsewhere its A, C, G or
/// T (either case) the `.pac`'s (bwa packed a random base for each ambiguous one, so those are
/// not compared in the `.pac`).
///
/// This reads the whole FASTA and the whole `.pac` once, sequentially (a human FASTA is
/// 3.1 GB and its `.pac` 0.8 GB); see [`crate::IndexProvenance`] for doing it once per index.
/// The FASTA is read as bwa reads it (`kseq.h`): the name is the first word after `>`, every
/// byte of the other lines but the line feed is a base, empty lines are skipped.
///
/// # Errors
/// [`FormatError::IndexMismatch`] naming the first difference (contig and base);
/// [`FormatError::Invalid`] for index files that are not bwa's; [`FormatError::Io`] when a
/// file cannot be read.
pub fn check_bwa_index_matches_fasta(
    fasta: &Utf8Path,
    prefix: &Utf8Path,
) -> Result<(), FormatError> {
    let summary = read_bwa_index_summary(prefix)?;
    let mismatch = |reason: String| FormatError::IndexMismatch {
        index: prefix.to_owned(),
        file: fasta.to_owned(),
        reason,
        rebuild: "bwa index",
    };
    let pac_path = index_file(prefix, "pac");
    let mut pac = PackedReader::open(&pac_path, summary.packed_bases)?;
    if let Some(reason) = pac.size_problem() {
        return Err(mismatch(reason));
    }

    let io_error = |source| FormatError::Io {
        path: fasta.to_owned(),
        source,
    };
    let mut reader =
        BufReader::with_capacity(1 << 20, fs_err::File::open(fasta).map_err(io_error)?);
    let mut line = Vec::new();
    let mut contig: Option<(usize, u64)> = None; // (index in the summary, bases so far)
    let mut position = 0u64; // in the packed sequence
    let runs = &summary.ambiguous;
    let mut next_run = 0usize;
    let mut contigs_seen = 0usize;
    let finish = |contig: Option<(usize, u64)>| -> Result<(), FormatError> {
        if let Some((index, bases)) = contig {
            let listed = &summary.contigs[index];
            if bases != listed.length {
                return Err(mismatch(format!(
                    "contig {} has {bases} bases in the FASTA, {} in the index",
                    listed.name, listed.length
                )));
            }
        }
        Ok(())
    };
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io_error)? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Some(header) = text.strip_prefix(b">") {
            finish(contig)?;
            let name_end = header
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(header.len());
            let name = String::from_utf8_lossy(&header[..name_end]);
            let Some(listed) = summary.contigs.get(contigs_seen) else {
                return Err(mismatch(format!(
                    "the FASTA has contig {name} after the index's {} contigs",
                    summary.contigs.len()
                )));
            };
            if listed.name != name || listed.offset != position {
                return Err(mismatch(format!(
                    "contig {} is {name} in the FASTA, {} in the index",
                    contigs_seen + 1,
                    listed.name
                )));
            }
            contig = Some((contigs_seen, 0));
            contigs_seen += 1;
            continue;
        }
        let Some((index, bases)) = contig.as_mut() else {
            // bwa skips text before the first header.
            continue;
        };
        // Fast path: a line clear of the index's ambiguous runs whose every base is the
        // `.pac`'s, checked without a branch per base (the loop below finds and names the
        // first difference).
        while runs
            .get(next_run)
            .is_some_and(|run| run.offset + run.length <= position)
        {
            next_run += 1;
        }
        let line_end = position + text.len() as u64;
        if !text.is_empty() && runs.get(next_run).is_none_or(|run| run.offset >= line_end) {
            let (packed, first) = pac.window(position >> 2, (line_end - 1) >> 2)?;
            let differs = text
                .iter()
                .zip(position..)
                .fold(false, |differs, (&byte, at)| {
                    let code = (packed[((at >> 2) - first) as usize] >> ((!at & 3) << 1)) & 3;
                    differs | (NT4[usize::from(byte)] != code)
                });
            if !differs {
                position = line_end;
                *bases += text.len() as u64;
                continue;
            }
        }
        for &byte in text {
            // The index's base here: its ambiguous character inside a run of the `.amb` (the
            // `.pac` holds a random base there), else the `.pac`'s.
            while runs
                .get(next_run)
                .is_some_and(|run| run.offset + run.length <= position)
            {
                next_run += 1;
            }
            let code = NT4[usize::from(byte)];
            let (same, listed) = match runs.get(next_run) {
                Some(run) if run.offset <= position => (byte == run.character, run.character),
                _ => {
                    let packed = pac.base(position)?;
                    (code == packed, b"ACGT"[usize::from(packed)])
                }
            };
            if !same {
                return Err(mismatch(format!(
                    "base {} of contig {} is {} in the FASTA, {} in the index",
                    *bases + 1,
                    summary.contigs[*index].name,
                    char::from(byte).escape_debug(),
                    char::from(listed).escape_debug()
                )));
            }
            position += 1;
            *bases += 1;
        }
    }
    finish(contig)?;
    if contigs_seen < summary.contigs.len() {
        return Err(mismatch(format!(
            "the FASTA ends after {contigs_seen} contigs; the index lists {}",
            summary.contigs.len()
        )));
    }
    tracing::debug!(%fasta, %prefix, bases = position, "bwa index matches the FASTA");
    Ok(())
}

/// The `.pac`, read forward in 1 MiB pieces.
struct PackedReader {
    path: Utf8PathBuf,
    file: BufReader<fs_err::File>,
    size: u64,
    bases: u64,
    /// The piece read last and the index of its first byte in the file.
    piece: Vec<u8>,
    piece_start: u64,
}

impl PackedReader {
    fn open(path: &Utf8Path, bases: u64) -> Result<PackedReader, FormatError> {
        let file = fs_err::File::open(path).map_err(|source| FormatError::Io {
            path: path.to_owned(),
            source,
        })?;
        let size = file
            .metadata()
            .map_err(|source| FormatError::Io {
                path: path.to_owned(),
                source,
            })?
            .len();
        Ok(PackedReader {
            path: path.to_owned(),
            file: BufReader::with_capacity(1 << 20, file),
            size,
            bases,
            piece: Vec::new(),
            piece_start: 0,
        })
    }

    /// How the file's size disagrees with the bases it must hold, if it does.
    fn size_problem(&self) -> Option<String> {
        let packed = self.bases.div_ceil(4);
        let expected = packed + u64::from(self.bases.is_multiple_of(4)) + 1;
        (self.size != expected).then(|| {
            format!(
                "the .pac holds {} bytes where {} bases take {expected}",
                self.size, self.bases
            )
        })
    }

    /// The bytes `first..=last` of the file (requested in increasing order: bytes before
    /// `first` are dropped, more are read as needed), as a slice from `first` and `first`.
    fn window(&mut self, first: u64, last: u64) -> Result<(&[u8], u64), FormatError> {
        if last >= self.piece_start + self.piece.len() as u64 {
            // Keep what is still needed, then read on.
            let drop = first
                .saturating_sub(self.piece_start)
                .min(self.piece.len() as u64);
            self.piece.drain(..drop as usize);
            self.piece_start += drop;
            let end = self.piece_start + self.piece.len() as u64;
            let want = (last + 1 - end)
                .max(1 << 20)
                .min(self.size.saturating_sub(end));
            (&mut self.file)
                .take(want)
                .read_to_end(&mut self.piece)
                .map_err(|source| FormatError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if last >= self.piece_start + self.piece.len() as u64 {
                return Err(FormatError::Invalid {
                    path: self.path.clone(),
                    reason: format!("it ends before byte {last}"),
                });
            }
        }
        let from = (first - self.piece_start) as usize;
        Ok((&self.piece[from..], first))
    }

    /// The 2-bit code of base `position` (requested in increasing order).
    fn base(&mut self, position: u64) -> Result<u8, FormatError> {
        let (bytes, _) = self.window(position >> 2, position >> 2)?;
        Ok((bytes[0] >> ((!position & 3) << 1)) & 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nt4_codes() {
        assert_eq!(
            b"ACGTacgtNnRU-".map(nt4),
            [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4, 4]
        );
    }
}
