//! A BAM index (`.bai`), checked against the BAM it is used with.

use std::io::{Read, Seek, SeekFrom};

use camino::Utf8Path;
use noodles::bam::bai;
use noodles::bgzf;

use crate::{FormatError, read_bam_header_summary};

/// Width of a linear-index window: 2^14 bases (SAM spec v1, section 5.2).
const WINDOW_BASES: u64 = 1 << 14;

/// Checks that the `.bai` at `bai_path` was built from the BAM at `bam`, reading a few blocks
/// of the BAM per reference sequence:
///
/// - it lists as many reference sequences as the BAM header has `@SQ` lines;
/// - the BAM's first record (right after its header) starts its reference sequence's first
///   chunk;
/// - every virtual offset it holds (chunk starts and ends, linear-index entries) points inside
///   the BAM (the compressed offset is below its size);
/// - for each reference sequence, the first chunk of its first, middle and last bin and its
///   first, middle and last linear-index entries point to the start of a BGZF block (`1f 8b`,
///   the `BC` extra subfield: SAM spec v1, section 4.1), within that block's data, at a record
///   on that reference sequence: for a chunk, a record whose `bin` is the chunk's bin or one
///   below it (htslib moves the chunks of a bin holding little data into its parent bin when it
///   writes an index, `hts_idx_finish`); for a
///   window, a record whose bin reaches that window or beyond (section 5.2: the window's
///   offset is that of the first record overlapping it, or of a later one).
///
/// A `.bai` of another BAM (other records, or the same records compressed otherwise) points
/// elsewhere than to those records, and `bcftools mpileup` reading through it finds nothing or
/// the wrong records: an empty or wrong VCF.
///
/// # Errors
/// [`FormatError::IndexMismatch`] naming the reference sequence and offset;
/// [`FormatError::Parse`] when the `.bai` is not a BAM index; the errors of
/// [`read_bam_header_summary`]; [`FormatError::Io`] when a file cannot be read.
pub fn check_bai_matches_bam(bam: &Utf8Path, bai_path: &Utf8Path) -> Result<(), FormatError> {
    let header = read_bam_header_summary(bam)?;
    let index =
        bai::fs::read(bai_path).map_err(FormatError::reading(bai_path, "BAM index (.bai)"))?;
    let mismatch = |reason: String| FormatError::IndexMismatch {
        index: bai_path.to_owned(),
        file: bam.to_owned(),
        reason,
        rebuild: "samtools index",
    };
    let references = index.reference_sequences();
    if references.len() != header.contigs.len() {
        return Err(mismatch(format!(
            "the index lists {} reference sequences, the BAM header {}",
            references.len(),
            header.contigs.len()
        )));
    }
    // The BAM's first record opens its reference's first chunk.
    if let Some((first, record)) = first_record(bam)?
        && let Some(id) = record.reference
    {
        let start = references.get(id).and_then(|reference| {
            reference
                .bins()
                .values()
                .flat_map(|bin| bin.chunks())
                .map(|chunk| chunk.start())
                .min()
        });
        if start != Some(first) {
            return Err(mismatch(format!(
                "the BAM's first record (at {}) is on reference {id} ({}), whose records the \
                 index {}",
                show(first),
                header
                    .contigs
                    .get(id)
                    .map_or("?", |contig| contig.name.as_str()),
                start.map_or_else(
                    || "does not list".to_owned(),
                    |start| format!("starts at {}", show(start))
                )
            )));
        }
    }
    let mut blocks = Blocks::open(bam)?;
    for (id, reference) in references.iter().enumerate() {
        let name = &header.contigs[id].name;
        let bins: Vec<(usize, bgzf::VirtualPosition)> = {
            let mut bins: Vec<(usize, bgzf::VirtualPosition)> = reference
                .bins()
                .iter()
                .filter_map(|(bin, content)| content.chunks().first().map(|c| (*bin, c.start())))
                .collect();
            bins.sort_unstable_by_key(|(bin, _)| *bin);
            bins
        };
        let linear: &[bgzf::VirtualPosition] = reference.index();
        // Every offset lies inside the BAM.
        let offsets = reference
            .bins()
            .values()
            .flat_map(|bin| bin.chunks())
            .flat_map(|chunk| [chunk.start(), chunk.end()])
            .chain(linear.iter().copied());
        for offset in offsets {
            if offset.compressed() >= blocks.size {
                return Err(mismatch(format!(
                    "reference {id} ({name}): offset {} lies past the end of the BAM ({} bytes)",
                    show(offset),
                    blocks.size
                )));
            }
        }
        // Samples: the first, middle and last bin's first chunk, and linear-index entry.
        for position in sample(bins.len()) {
            let (bin, start) = bins[position];
            let what = format!("the first chunk of bin {bin}");
            let record = blocks.record(start).map_err(|problem| {
                mismatch(format!("reference {id} ({name}): {what} {problem}"))
            })?;
            if record.reference != Some(id) || !bin_holds(bin, record.bin) {
                return Err(mismatch(format!(
                    "reference {id} ({name}): {what} points to a record {}, in bin {}",
                    on_reference(record.reference, &header.contigs),
                    record.bin
                )));
            }
        }
        let windows: Vec<usize> = (0..linear.len())
            .filter(|&window| u64::from(linear[window]) != 0)
            .collect();
        for position in sample(windows.len()) {
            let window = windows[position];
            let what = format!("linear-index window {window}");
            let record = blocks.record(linear[window]).map_err(|problem| {
                mismatch(format!("reference {id} ({name}): {what} {problem}"))
            })?;
            let window_start = window as u64 * WINDOW_BASES;
            let (_, bin_end) = bin_range(record.bin);
            if record.reference != Some(id) || bin_end <= window_start {
                return Err(mismatch(format!(
                    "reference {id} ({name}): {what} (bases {}-{}) points to a record {}, in \
                     bin {}",
                    window_start + 1,
                    window_start + WINDOW_BASES,
                    on_reference(record.reference, &header.contigs),
                    record.bin
                )));
            }
        }
    }
    tracing::debug!(%bam, %bai_path, references = references.len(), "BAM index matches the BAM");
    Ok(())
}

/// The virtual offset of the BAM's first record (right after the header) and its start, or
/// `None` for a BAM without records.
fn first_record(
    bam: &Utf8Path,
) -> Result<Option<(bgzf::VirtualPosition, RecordStart)>, FormatError> {
    let parse_error = |source| FormatError::Parse {
        path: bam.to_owned(),
        format: "BAM",
        source,
    };
    let file = fs_err::File::open(bam).map_err(|source| FormatError::Io {
        path: bam.to_owned(),
        source,
    })?;
    let mut reader = noodles::bam::io::Reader::new(file);
    reader.read_header().map_err(parse_error)?;
    let first = reader.get_ref().virtual_position();
    let mut fields = [0u8; 16];
    match reader.get_mut().read_exact(&mut fields) {
        Ok(()) => Ok(Some((first, RecordStart::parse(&fields)))),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(parse_error(error)),
    }
}

/// `compressed/uncompressed`, as samtools prints virtual offsets.
fn show(offset: bgzf::VirtualPosition) -> String {
    format!("{}/{}", offset.compressed(), offset.uncompressed())
}

/// The positions of the first, middle and last of `count` items (fewer when `count` < 3).
fn sample(count: usize) -> Vec<usize> {
    let mut positions = vec![0, count / 2, count.saturating_sub(1)];
    positions.retain(|&position| position < count);
    positions.dedup();
    positions
}

/// "on chr22" or "not on a reference" for a record's reference sequence id.
fn on_reference(reference: Option<usize>, contigs: &[biojob_core::Contig]) -> String {
    match reference {
        Some(id) => format!(
            "on reference {id} ({})",
            contigs.get(id).map_or("?", |contig| contig.name.as_str())
        ),
        None => "not on a reference (unplaced)".to_owned(),
    }
}

/// Whether bin `ancestor` is `bin` or a bin above it in the binning scheme (SAM spec v1,
/// section 5.3: the parent of bin b > 0 is (b - 1) / 8).
fn bin_holds(ancestor: usize, bin: usize) -> bool {
    let mut bin = bin;
    loop {
        if bin == ancestor {
            return true;
        }
        if bin == 0 {
            return false;
        }
        bin = (bin - 1) >> 3;
    }
}

/// The 0-based, half-open range of bases a BAI bin covers (SAM spec v1, section 5.3,
/// `reg2bin`): levels of 1, 8, 64, 512, 4096 and 32768 bins, of 2^29 down to 2^14 bases.
fn bin_range(bin: usize) -> (u64, u64) {
    let mut first = 0usize;
    for level in 0..6u32 {
        let count = 1usize << (3 * level);
        if bin < first + count {
            let shift = 29 - 3 * level;
            let start = ((bin - first) as u64) << shift;
            return (start, start + (1u64 << shift));
        }
        first += count;
    }
    (0, 0)
}

/// The fields of a BAM record the check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordStart {
    reference: Option<usize>,
    bin: usize,
}

impl RecordStart {
    /// From a record's first 16 bytes: `block_size`, `refID`, `pos`, `l_read_name`, `mapq`,
    /// `bin` (SAM spec v1, section 4.2).
    fn parse(fields: &[u8; 16]) -> RecordStart {
        let reference = i32::from_le_bytes([fields[4], fields[5], fields[6], fields[7]]);
        let bin = u16::from_le_bytes([fields[14], fields[15]]);
        RecordStart {
            reference: usize::try_from(reference).ok(),
            bin: usize::from(bin),
        }
    }
}

/// Reads BGZF blocks and record starts at virtual offsets of one BAM.
struct Blocks {
    file: fs_err::File,
    reader: bgzf::io::Reader<fs_err::File>,
    size: u64,
}

impl Blocks {
    fn open(bam: &Utf8Path) -> Result<Blocks, FormatError> {
        let io_error = |source| FormatError::Io {
            path: bam.to_owned(),
            source,
        };
        let file = fs_err::File::open(bam).map_err(io_error)?;
        let size = file.metadata().map_err(io_error)?.len();
        let reader = bgzf::io::Reader::new(fs_err::File::open(bam).map_err(io_error)?);
        Ok(Blocks { file, reader, size })
    }

    /// The record that starts at `offset`, or why there is none: in words that follow
    /// "… points to" / "…", for the caller's message.
    fn record(&mut self, offset: bgzf::VirtualPosition) -> Result<RecordStart, String> {
        let at = offset.compressed();
        // The BGZF block header: gzip magic, FLG.FEXTRA, XLEN, then the BC subfield.
        let mut header = [0u8; 18];
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(&mut header))
            .map_err(|_| format!("points to byte {at}, where no BGZF block starts"))?;
        let is_block = header[..4] == [0x1f, 0x8b, 0x08, 0x04]
            && header[12..14] == *b"BC"
            && u16::from_le_bytes([header[14], header[15]]) == 2;
        if !is_block {
            return Err(format!(
                "points to byte {at}, where no BGZF block starts ({})",
                show(offset)
            ));
        }
        self.reader.seek(offset).map_err(|_| {
            format!(
                "points past the data of the BGZF block at byte {at} ({})",
                show(offset)
            )
        })?;
        let mut fields = [0u8; 16];
        self.reader
            .read_exact(&mut fields)
            .map_err(|_| format!("points to {}, where no record starts", show(offset)))?;
        Ok(RecordStart::parse(&fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bin_holds_itself_and_the_bins_below_it() {
        // 4681 (the first 16 kb) → 585 → 73 → 9 → 1 → 0.
        for ancestor in [4681, 585, 73, 9, 1, 0] {
            assert!(bin_holds(ancestor, 4681), "{ancestor}");
        }
        assert!(!bin_holds(74, 4681));
        assert!(!bin_holds(4682, 4681));
        assert!(!bin_holds(4681, 585));
        assert!(bin_holds(2, 4681 + 4096));
    }

    #[test]
    fn bin_ranges_follow_reg2bin() {
        assert_eq!(bin_range(0), (0, 1 << 29));
        assert_eq!(bin_range(1), (0, 1 << 26));
        assert_eq!(bin_range(8), (7 << 26, 8 << 26));
        assert_eq!(bin_range(4681), (0, 1 << 14));
        assert_eq!(bin_range(4681 + 18), (18 << 14, 19 << 14));
        assert_eq!(bin_range(37448), (32767 << 14, 32768 << 14));
        // Past the last bin (37450 is the metadata pseudo-bin): no range.
        assert_eq!(bin_range(37449), (0, 0));
    }

    #[test]
    fn samples() {
        assert_eq!(sample(0), Vec::<usize>::new());
        assert_eq!(sample(1), [0]);
        assert_eq!(sample(2), [0, 1]);
        assert_eq!(sample(7), [0, 3, 6]);
    }
}
