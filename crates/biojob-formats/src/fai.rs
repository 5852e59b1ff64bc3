//! FASTA index (`.fai`) files, as written by `samtools faidx`.

use std::collections::HashSet;
use std::io::{self, BufReader};

use biojob_core::Contig;
use camino::{Utf8Path, Utf8PathBuf};
use noodles::fasta::fai;

use crate::FormatError;
use crate::text::{preview, trim_line_end};

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

/// Checks that the `.fai` at `fai_path` was built from the plain FASTA `fasta` as it is now,
/// reading a few bytes per contig (a `.fai` line is NAME, LENGTH, OFFSET, LINEBASES,
/// LINEWIDTH: samtools `faidx` manual):
///
/// - OFFSET is the first byte after the contig's own header line (`>NAME…`);
/// - the line layout holds: the first and the last full sequence lines end after LINEBASES
///   bases with a line terminator of LINEWIDTH − LINEBASES bytes (`\n` or `\r\n`);
/// - the sequence ends exactly after LENGTH bases: a terminator or the end of the file follows,
///   and the next line that is not blank is the header of the next indexed contig, or there
///   is none after the last.
///
/// A `.fai` of another FASTA, or of an earlier version of this one, fails one of these unless
/// every contig kept its name, length, offset and layout (an edit of bases in place, which the
/// offsets cannot show). `samtools faidx` keeps only the first of two records with the same
/// name (warning "Ignoring duplicate sequence"), so the second one's bases would be aligned to
/// by bwa, which indexes every record, but be unknown to every other tool; that record is found
/// here too (as a record the index does not list: for an index just built from the FASTA, a
/// name used twice; for one found beside it, as likely an index of an earlier FASTA).
///
/// # Errors
/// [`FormatError::IndexMismatch`] naming the contig and the first difference, or the byte
/// offset and header line of a record the index does not list; [`FormatError::Io`] when a
/// file cannot be read; [`FormatError::Parse`] for a malformed `.fai`.
pub fn check_fai_covers_fasta(fasta: &Utf8Path, fai_path: &Utf8Path) -> Result<(), FormatError> {
    let index = fai::io::Reader::new(BufReader::new(fs_err::File::open(fai_path).map_err(
        |source| FormatError::Io {
            path: fai_path.to_owned(),
            source,
        },
    )?))
    .read_index()
    .map_err(|source| FormatError::Parse {
        path: fai_path.to_owned(),
        format: "FASTA index (.fai)",
        source,
    })?;
    let records: &[fai::Record] = index.as_ref();
    let probe = Probe::open(fasta)?;
    let mismatch = |reason: String| FormatError::IndexMismatch {
        index: fai_path.to_owned(),
        file: fasta.to_owned(),
        reason,
        rebuild: "samtools faidx",
    };
    for (number, record) in records.iter().enumerate() {
        let name = first_word(record.name());
        let shown = String::from_utf8_lossy(name);
        let length = record.length();
        let offset = record.position();
        let bases = u64::from(record.line_base_count());
        let width = u64::from(record.line_width());

        let header = probe.line_before(offset)?;
        let header_name = header
            .as_deref()
            .and_then(|line| line.strip_prefix(b">"))
            .map(first_word);
        if header_name != Some(name) {
            return Err(mismatch(match header {
                None => format!(
                    "contig {shown:?}: the index puts its sequence at byte {offset}, which is \
                     not the start of a line"
                ),
                Some(line) => format!(
                    "contig {shown:?}: the index puts its sequence at byte {offset}, which does \
                     not follow its header line (the line before it is {})",
                    preview(&line)
                ),
            }));
        }

        let terminator: &[u8] = match width.checked_sub(bases) {
            _ if length == 0 => b"\n",
            Some(1) if bases > 0 => b"\n",
            Some(2) if bases > 0 => b"\r\n",
            _ => {
                return Err(mismatch(format!(
                    "contig {shown:?}: lines of {bases} bases in {width} bytes are not a FASTA \
                     line layout"
                )));
            }
        };
        let lines = if length == 0 {
            0
        } else {
            length.div_ceil(bases)
        };
        // The first line and the one before the last end where the layout says.
        let mut ends = vec![1, lines.saturating_sub(1)];
        ends.retain(|&line| line >= 1 && line < lines);
        ends.dedup();
        for line in ends {
            let at = offset + (line - 1) * width + bases;
            if !probe.is_base(at - 1)? || !probe.holds(at, terminator)? {
                return Err(mismatch(format!(
                    "contig {shown:?}: sequence line {line} does not end after {bases} bases \
                     (byte {at})"
                )));
            }
        }

        // The byte after the last base, and the next line that is not blank.
        let end = if lines == 0 {
            offset
        } else {
            offset + (lines - 1) * width + (length - (lines - 1) * bases)
        };
        if length > 0 && (end > probe.size || !probe.is_base(end - 1)?) {
            return Err(mismatch(format!(
                "contig {shown:?} has fewer than the {length} bases its index lists"
            )));
        }
        if probe.is_base(end)? {
            return Err(mismatch(format!(
                "contig {shown:?} goes on past the {length} bases its index lists (byte {end} \
                 holds more sequence)"
            )));
        }
        let expected: Option<&[u8]> = records.get(number + 1).map(|next| first_word(next.name()));
        match (probe.next_line(end)?, expected) {
            (None, None) => {}
            (None, Some(next)) => {
                return Err(mismatch(format!(
                    "the FASTA ends before contig {:?}, which the index lists",
                    String::from_utf8_lossy(next)
                )));
            }
            (Some((at, line)), expected) => {
                let found = line.strip_prefix(b">").map(first_word);
                if found.is_none() {
                    return Err(mismatch(format!(
                        "contig {shown:?} goes on past the {length} bases its index lists (the \
                         line at byte {at} holds more sequence)"
                    )));
                }
                if found != expected {
                    let header = String::from_utf8_lossy(&line[..line.len().min(80)]);
                    return Err(mismatch(format!(
                        "the line at byte {at} ({header:?}) is a record the index does not \
                         list there{}",
                        expected.map_or_else(
                            || format!(" (it lists no record after contig {shown:?})"),
                            |name| format!(" (it lists {:?} next)", String::from_utf8_lossy(name))
                        )
                    )));
                }
            }
        }
    }
    tracing::debug!(%fasta, %fai_path, contigs = records.len(), "FASTA index matches the FASTA");
    Ok(())
}

/// Checks, in one pass over the plain FASTA `fasta`, that its lines follow the layout a `.fai`
/// describes, as `samtools faidx` (htslib `fai_build_core`) requires, and returns its contigs:
///
/// - only blank lines before the first `>` header;
/// - within a contig, every sequence line but the last has the same length in bytes and in
///   bases (bytes that are not blank); the last may be shorter;
/// - a blank line or a shorter line ends the contig: only blank lines or the next header may
///   follow;
/// - the last contig has at least one sequence line.
///
/// `samtools faidx` fails on such a file with a message that names neither the line nor, for a
/// line after a shorter one, the contig; this names both, before faidx runs. Reads the whole
/// file once (sequentially, 1 MiB at a time).
///
/// # Errors
/// [`FormatError::FastaLayout`] naming the contig and the line; [`FormatError::Invalid`] for
/// text before the first header; [`FormatError::Io`] when the file cannot be read.
pub fn check_fasta_layout(fasta: &Utf8Path) -> Result<Vec<Contig>, FormatError> {
    use std::io::BufRead;

    /// How the current contig's sequence stands.
    enum State {
        /// Before the first header.
        Start,
        /// After a header, before its first sequence line.
        Header { line: u64 },
        /// Inside the sequence; `first` is the first line (number, bytes, bases).
        Sequence { first: (u64, usize, usize) },
        /// The sequence ended: by a blank line (`blank`) or a shorter line.
        Ended {
            line: u64,
            bases: usize,
            first_bases: usize,
            blank: bool,
        },
    }

    let io_error = |source| FormatError::Io {
        path: fasta.to_owned(),
        source,
    };
    let file = fs_err::File::open(fasta).map_err(io_error)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut contigs: Vec<Contig> = Vec::new();
    let mut state = State::Start;
    let mut text = Vec::new();
    let mut number = 0u64;
    let layout = |contigs: &[Contig], line: u64, reason: String| FormatError::FastaLayout {
        path: fasta.to_owned(),
        contig: contigs.last().map(|c| c.name.clone()).unwrap_or_default(),
        line,
        reason,
    };
    loop {
        text.clear();
        if reader.read_until(b'\n', &mut text).map_err(io_error)? == 0 {
            break;
        }
        number += 1;
        let bytes = text.len() + usize::from(!text.ends_with(b"\n"));
        let blank = matches!(text.as_slice(), b"\n" | b"\r\n");
        if let Some(header) = text.strip_prefix(b">") {
            let name = String::from_utf8_lossy(first_word(header)).into_owned();
            contigs.push(Contig::new(name, 0));
            state = State::Header { line: number };
            continue;
        }
        let bases = text.iter().filter(|b| b.is_ascii_graphic()).count();
        state = match state {
            State::Start if blank => State::Start,
            State::Start => {
                return Err(FormatError::Invalid {
                    path: fasta.to_owned(),
                    reason: format!(
                        "line {number}: expected a '>' header line before any sequence, found {}",
                        preview(&text)
                    ),
                });
            }
            State::Header { .. } | State::Sequence { .. } if blank => State::Ended {
                line: number,
                bases: 0,
                first_bases: 0,
                blank: true,
            },
            State::Header { .. } => State::Sequence {
                first: (number, bytes, bases),
            },
            State::Sequence { first } => {
                let (first_line, first_bytes, first_bases) = first;
                if bytes > first_bytes || (bytes == first_bytes && bases != first_bases) {
                    return Err(layout(
                        &contigs,
                        number,
                        format!(
                            "{bases} bases in {bytes} bytes where the contig's first line (line \
                             {first_line}) has {first_bases} bases in {first_bytes} bytes; every \
                             line of a contig but its last must have the same length"
                        ),
                    ));
                }
                if bytes < first_bytes {
                    State::Ended {
                        line: number,
                        bases,
                        first_bases,
                        blank: false,
                    }
                } else {
                    State::Sequence { first }
                }
            }
            ended @ State::Ended { .. } if blank => ended,
            State::Ended {
                line,
                bases: short,
                first_bases,
                blank,
            } => {
                let reason = if blank {
                    format!(
                        "more sequence after the blank line {line}; blank lines may only come \
                         between contigs"
                    )
                } else {
                    format!(
                        "more sequence after line {line}, which is shorter ({short} bases where \
                         the contig's first line has {first_bases}); only the last line of a \
                         contig may be shorter"
                    )
                };
                return Err(layout(&contigs, number, reason));
            }
        };
        if let Some(contig) = contigs.last_mut() {
            contig.length += bases as u64;
        }
    }
    if let State::Header { line } = state {
        return Err(layout(
            &contigs,
            line,
            "the file ends after this header: the last contig has no sequence".to_owned(),
        ));
    }
    tracing::debug!(%fasta, contigs = contigs.len(), "FASTA layout checked");
    Ok(contigs)
}

/// The first word of a FASTA header or `.fai` name (up to the first blank), as htslib takes
/// it (leading blanks skipped).
fn first_word(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let rest = &text[start..];
    let end = rest
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Random access to a few bytes of a file at a time.
struct Probe {
    file: fs_err::File,
    path: Utf8PathBuf,
    size: u64,
}

impl Probe {
    fn open(path: &Utf8Path) -> Result<Probe, FormatError> {
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
        Ok(Probe {
            file,
            path: path.to_owned(),
            size,
        })
    }

    /// Up to `length` bytes from `at` (fewer at the end of the file).
    fn read(&self, at: u64, length: u64) -> Result<Vec<u8>, FormatError> {
        use std::os::unix::fs::FileExt;
        let length = length.min(self.size.saturating_sub(at));
        let mut buffer = vec![0u8; usize::try_from(length).unwrap_or(usize::MAX)];
        self.file
            .file()
            .read_exact_at(&mut buffer, at)
            .map_err(|source| FormatError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(buffer)
    }

    /// Whether the byte at `at` is a base (a visible character other than `>`).
    fn is_base(&self, at: u64) -> Result<bool, FormatError> {
        Ok(matches!(self.read(at, 1)?.as_slice(), [b] if b.is_ascii_graphic() && *b != b'>'))
    }

    /// Whether the file holds `bytes` at `at`.
    fn holds(&self, at: u64, bytes: &[u8]) -> Result<bool, FormatError> {
        Ok(self.read(at, bytes.len() as u64)? == bytes)
    }

    /// The whole line that ends with the `\n` at `at - 1` (without its terminator), or `None`
    /// when the byte before `at` is not a `\n`.
    fn line_before(&self, at: u64) -> Result<Option<Vec<u8>>, FormatError> {
        /// Header lines longer than this are not looked for.
        const LONGEST: u64 = 1 << 20;
        if at == 0 || !self.holds(at - 1, b"\n")? {
            return Ok(None);
        }
        let end = at - 1;
        let mut window = 256u64;
        loop {
            let start = end.saturating_sub(window);
            let bytes = self.read(start, end - start)?;
            if let Some(newline) = bytes.iter().rposition(|&b| b == b'\n') {
                return Ok(Some(trim_line_end(&bytes[newline + 1..]).to_vec()));
            }
            if start == 0 {
                return Ok(Some(trim_line_end(&bytes).to_vec()));
            }
            if window >= LONGEST {
                return Ok(None);
            }
            window *= 4;
        }
    }

    /// From `at` (the byte after a contig's last base): past the terminator, the first line
    /// that is not blank, with its byte offset; `None` at the end of the file.
    fn next_line(&self, at: u64) -> Result<Option<(u64, Vec<u8>)>, FormatError> {
        use std::io::{BufRead, Seek, SeekFrom};
        let mut reader = BufReader::with_capacity(4096, self.file.file());
        reader
            .seek(SeekFrom::Start(at))
            .map_err(|source| FormatError::Io {
                path: self.path.clone(),
                source,
            })?;
        let mut position = at;
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|source| FormatError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if read == 0 {
                return Ok(None);
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                let text = trim_line_end(&line).to_vec();
                return Ok(Some((position, text)));
            }
            position += read as u64;
        }
    }
}
