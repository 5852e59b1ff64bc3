//! One streaming pass over a BAM: flagstat counts, depth and breadth per contig, and a check
//! that the records really are in coordinate order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};
use std::num::NonZero;
use std::time::Instant;

use biojob_core::Contig;
use camino::Utf8Path;
use noodles::bam;
use noodles::bgzf;
use noodles::sam::alignment::record::cigar::op::Kind;

use crate::FormatError;
use crate::bam_count::RecordKind;

/// Depth is binned along each contig so that the whole genome has about this many bins.
pub const DEPTH_BINS_TARGET: u64 = 2000;

/// The smallest depth bin, in bases.
pub const MIN_DEPTH_BIN_BASES: u64 = 1000;

// SAM flag bits (SAM spec v1, section 1.4, FLAG).
const PAIRED: u16 = 0x1;
const PROPER_PAIR: u16 = 0x2;
const UNMAPPED: u16 = 0x4;
const MATE_UNMAPPED: u16 = 0x8;
pub(crate) const SECONDARY: u16 = 0x100;
const QC_FAIL: u16 = 0x200;
const DUPLICATE: u16 = 0x400;
pub(crate) const SUPPLEMENTARY: u16 = 0x800;

/// Records that `samtools depth` leaves out by default (samtools 1.16 `depth`, `-G`
/// default): unmapped, secondary, QC-failed and duplicate.
const DEPTH_EXCLUDED: u16 = UNMAPPED | SECONDARY | QC_FAIL | DUPLICATE;

/// Counts as `samtools flagstat` makes them (samtools 1.16 `bam_stat.c`), QC-passed and
/// QC-failed records together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct FlagCounts {
    /// Every record ("in total").
    pub records: u64,
    /// Records flagged QC-failed (0x200).
    pub qc_failed: u64,
    /// Primary records (neither 0x100 nor 0x800).
    pub primary: u64,
    /// Secondary records (0x100).
    pub secondary: u64,
    /// Supplementary records (0x800).
    pub supplementary: u64,
    /// Duplicate-flagged records (0x400).
    pub duplicates: u64,
    /// Records not flagged unmapped (0x4), all kinds ("mapped").
    pub mapped: u64,
    /// Primary records not flagged unmapped ("primary mapped").
    pub primary_mapped: u64,
    /// Primary records flagged paired (0x1) ("paired in sequencing").
    pub paired: u64,
    /// Of those, flagged properly paired (0x2) and not unmapped ("properly paired").
    pub properly_paired: u64,
    /// Of the paired, both mates mapped ("with itself and mate mapped").
    pub both_mapped: u64,
    /// Of the paired, mapped with the mate unmapped ("singletons").
    pub singletons: u64,
}

impl FlagCounts {
    /// `mapped / records` as a percentage (flagstat's "mapped (N %)"); 0 without records.
    pub fn mapped_percent(&self) -> f64 {
        percent(self.mapped, self.records)
    }

    /// `properly_paired / paired` as a percentage (flagstat's "properly paired (N %)").
    pub fn properly_paired_percent(&self) -> f64 {
        percent(self.properly_paired, self.paired)
    }

    fn add(&mut self, flags: u16) {
        self.records += 1;
        if flags & QC_FAIL != 0 {
            self.qc_failed += 1;
        }
        let mapped = flags & UNMAPPED == 0;
        let kind = RecordKind::of(flags);
        if kind == RecordKind::Secondary {
            self.secondary += 1;
        } else if kind == RecordKind::Supplementary {
            self.supplementary += 1;
        } else {
            self.primary += 1;
            if flags & PAIRED != 0 {
                self.paired += 1;
                if flags & PROPER_PAIR != 0 && mapped {
                    self.properly_paired += 1;
                }
                let mate_mapped = flags & MATE_UNMAPPED == 0;
                if mapped && !mate_mapped {
                    self.singletons += 1;
                }
                if mapped && mate_mapped {
                    self.both_mapped += 1;
                }
            }
            if mapped {
                self.primary_mapped += 1;
            }
        }
        if mapped {
            self.mapped += 1;
        }
        if flags & DUPLICATE != 0 {
            self.duplicates += 1;
        }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Depth and breadth of one contig.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContigCoverage {
    /// The contig (`@SQ SN`).
    pub name: String,
    /// Its length in bases (`@SQ LN`).
    pub length: u64,
    /// Records counted for depth (see [`read_bam_stats`]).
    pub records: u64,
    /// Reference bases covered by those records' `M`, `=` and `X` CIGAR operations, summed
    /// over records: the sum of per-base depths.
    pub aligned_bases: u64,
    /// Reference bases with depth at least 1.
    pub covered_bases: u64,
    /// Length of each depth bin in bases (the last bin may be shorter).
    pub bin_bases: u64,
    /// Aligned bases per bin, along the contig.
    pub bin_aligned_bases: Vec<u64>,
}

impl ContigCoverage {
    /// Mean depth over every base of the contig (`samtools depth -a`, averaged), in reads.
    pub fn mean_depth(&self) -> f64 {
        ratio(self.aligned_bases, self.length)
    }

    /// Fraction of the contig's bases with depth at least 1, from 0 to 1.
    pub fn breadth(&self) -> f64 {
        ratio(self.covered_bases, self.length)
    }

    /// Mean depth of each bin, along the contig.
    pub fn bin_depths(&self) -> Vec<f64> {
        let bins = self.bin_aligned_bases.len() as u64;
        self.bin_aligned_bases
            .iter()
            .enumerate()
            .map(|(index, &bases)| {
                let index = index as u64;
                let start = index * self.bin_bases;
                let end = if index + 1 == bins {
                    self.length
                } else {
                    start + self.bin_bases
                };
                ratio(bases, end.saturating_sub(start))
            })
            .collect()
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// What [`read_bam_stats`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BamStats {
    /// flagstat's counts.
    pub flags: FlagCounts,
    /// Depth and breadth per contig, in header order.
    pub contigs: Vec<ContigCoverage>,
    /// Size of the BAM file in bytes (all of it is read).
    pub bytes_read: u64,
}

/// Reads every record of the BAM at `path` once and returns `samtools flagstat`'s counts and,
/// per contig, the mean depth and breadth that `samtools depth -a` gives, plus depth in bins
/// along the contig; while reading, checks that the records are in coordinate order (SAM spec
/// v1, section 1.3, `SO:coordinate`: by reference index, then position; unplaced records
/// last), which the header alone only claims.
///
/// Depth follows `samtools depth` 1.16 defaults: records flagged unmapped, secondary,
/// QC-failed or duplicate are left out; every base of an `M`, `=` or `X` CIGAR operation
/// counts, whatever its quality; deletions and skips do not (no `-J`); overlapping mates both
/// count (no `-s`). Breadth is the union of those aligned blocks. Bins are
/// `max(1000, ceil(total length / 2000))` bases, the same for every contig.
///
/// Cost: one sequential read, BGZF decompressed on `threads` worker threads (noodles'
/// multithreaded reader; 1 = on the calling thread); per record, only the flags, position and
/// CIGAR are decoded. Memory: the bins, plus the aligned blocks of records that overlap the
/// current position (a few per read of depth). No index is needed.
///
/// # Errors
/// [`FormatError::Io`] when reading fails; [`FormatError::Parse`] for a malformed BAM;
/// [`FormatError::Invalid`] for records out of coordinate order or pointing at a reference
/// sequence the header does not declare.
pub fn read_bam_stats(path: &Utf8Path, threads: usize) -> Result<BamStats, FormatError> {
    let started = Instant::now();
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let file = fs_err::File::open(path).map_err(io_error)?;
    let bytes_read = file.metadata().map_err(io_error)?.len();
    let mut stats = match NonZero::new(threads).filter(|n| n.get() > 1) {
        Some(workers) => scan(
            path,
            bam::io::Reader::from(bgzf::io::MultithreadedReader::with_worker_count(
                workers,
                file.into_parts().0,
            )),
        ),
        None => scan(path, bam::io::Reader::new(file)),
    }?;
    stats.bytes_read = bytes_read;
    tracing::info!(
        %path,
        records = stats.flags.records,
        bytes = stats.bytes_read,
        seconds = started.elapsed().as_secs_f64(),
        "BAM statistics read"
    );
    Ok(stats)
}

fn parse_error(path: &Utf8Path, source: io::Error) -> FormatError {
    match source.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            FormatError::Parse {
                path: path.to_owned(),
                format: "BAM",
                source,
            }
        }
        _ => FormatError::Io {
            path: path.to_owned(),
            source,
        },
    }
}

fn scan<R: Read>(path: &Utf8Path, mut reader: bam::io::Reader<R>) -> Result<BamStats, FormatError> {
    let header = reader
        .read_header()
        .map_err(|source| parse_error(path, source))?;
    let declared: Vec<Contig> = header
        .reference_sequences()
        .iter()
        .map(|(name, map)| {
            Contig::new(
                String::from_utf8_lossy(name).into_owned(),
                map.length().get() as u64,
            )
        })
        .collect();
    let total: u64 = declared.iter().map(|c| c.length).sum();
    let bin_bases = total.div_ceil(DEPTH_BINS_TARGET).max(MIN_DEPTH_BIN_BASES);
    let mut contigs: Vec<ContigCoverage> = declared
        .iter()
        .map(|contig| ContigCoverage {
            name: contig.name.clone(),
            length: contig.length,
            records: 0,
            aligned_bases: 0,
            covered_bases: 0,
            bin_bases,
            bin_aligned_bases: vec![0; contig.length.div_ceil(bin_bases).max(1) as usize],
        })
        .collect();
    let invalid = |reason: String| FormatError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let place = |reference: Option<usize>, position: u64| match reference {
        Some(index) => format!("{}:{position}", declared[index].name),
        None => "an unplaced record".to_owned(),
    };

    let mut flags = FlagCounts::default();
    let mut record = bam::Record::default();
    let mut number: u64 = 0;
    // (reference index, or usize::MAX when unplaced; 1-based position, 0 when absent)
    let mut previous: (usize, u64) = (0, 0);
    let mut union = CoverageUnion::default();
    let mut current: Option<usize> = None;
    loop {
        let read = reader
            .read_record(&mut record)
            .map_err(|source| parse_error(path, source))?;
        if read == 0 {
            break;
        }
        number += 1;
        let bits = record.flags().bits();
        flags.add(bits);
        let reference = record
            .reference_sequence_id()
            .transpose()
            .map_err(|source| parse_error(path, source))?;
        if let Some(index) = reference
            && index >= declared.len()
        {
            return Err(invalid(format!(
                "record {number} refers to reference sequence {index}, but the header declares \
                 {}",
                declared.len()
            )));
        }
        let position = record
            .alignment_start()
            .transpose()
            .map_err(|source| parse_error(path, source))?
            .map_or(0, |p| p.get() as u64);
        let key = (reference.unwrap_or(usize::MAX), position);
        if key < previous {
            let before = if previous.0 == usize::MAX {
                None
            } else {
                Some(previous.0)
            };
            return Err(invalid(format!(
                "record {number} ({}) comes after {}: the records are not in coordinate order",
                place(reference, position),
                place(before, previous.1)
            )));
        }
        previous = key;

        let Some(index) = reference else { continue };
        if current != Some(index) {
            if let Some(done) = current {
                contigs[done].covered_bases += union.finish();
            }
            current = Some(index);
        }
        if bits & DEPTH_EXCLUDED != 0 || position == 0 {
            continue;
        }
        let coverage = &mut contigs[index];
        coverage.records += 1;
        union.advance_to(position);
        let mut start = position; // 1-based
        for op in record.cigar().iter() {
            let op = op.map_err(|source| parse_error(path, source))?;
            let length = op.len() as u64;
            match op.kind() {
                Kind::Match | Kind::SequenceMatch | Kind::SequenceMismatch => {
                    let end = (start + length).min(coverage.length + 1);
                    if end > start {
                        coverage.aligned_bases += end - start;
                        add_to_bins(&mut coverage.bin_aligned_bases, bin_bases, start, end);
                        union.push(start, end);
                    }
                    start += length;
                }
                Kind::Deletion | Kind::Skip => start += length,
                Kind::Insertion | Kind::SoftClip | Kind::HardClip | Kind::Pad => {}
            }
        }
    }
    if let Some(done) = current {
        contigs[done].covered_bases += union.finish();
    }
    Ok(BamStats {
        flags,
        contigs,
        bytes_read: 0,
    })
}

/// Adds the bases of `[start, end)` (1-based) to the bins they fall in.
fn add_to_bins(bins: &mut [u64], bin_bases: u64, start: u64, end: u64) {
    let mut from = start - 1; // 0-based
    let to = end - 1;
    while from < to {
        let bin = from / bin_bases;
        let bin_end = ((bin + 1) * bin_bases).min(to);
        if let Some(slot) = bins.get_mut(bin as usize) {
            *slot += bin_end - from;
        }
        from = bin_end;
    }
}

/// The number of bases in the union of aligned blocks `[start, end)` of one contig, given
/// records in coordinate order: a block starts at or after its record's start, so once the
/// next record starts at `p`, every pending block starting before `p` can be merged in start
/// order.
#[derive(Debug, Default)]
struct CoverageUnion {
    pending: BinaryHeap<Reverse<(u64, u64)>>,
    covered: u64,
    frontier: u64,
}

impl CoverageUnion {
    fn push(&mut self, start: u64, end: u64) {
        self.pending.push(Reverse((start, end)));
    }

    fn advance_to(&mut self, position: u64) {
        while let Some(&Reverse((start, end))) = self.pending.peek() {
            if start >= position {
                break;
            }
            self.pending.pop();
            self.merge(start, end);
        }
    }

    fn merge(&mut self, start: u64, end: u64) {
        if start >= self.frontier {
            self.covered += end - start;
            self.frontier = end;
        } else if end > self.frontier {
            self.covered += end - self.frontier;
            self.frontier = end;
        }
    }

    /// The covered bases of the contig; resets for the next contig.
    fn finish(&mut self) -> u64 {
        self.advance_to(u64::MAX);
        let covered = self.covered;
        *self = CoverageUnion::default();
        covered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_overlapping_and_spliced_blocks() {
        let mut union = CoverageUnion::default();
        // Record at 1: blocks [1, 11) and [100, 111) (a skip between them).
        union.advance_to(1);
        union.push(1, 11);
        union.push(100, 111);
        // Record at 5: [5, 21) overlaps the first block.
        union.advance_to(5);
        union.push(5, 21);
        // Record at 50: [50, 61).
        union.advance_to(50);
        union.push(50, 61);
        // 1..21 (20) + 50..61 (11) + 100..111 (11)
        assert_eq!(union.finish(), 42);
        assert_eq!(union.finish(), 0);
    }

    #[test]
    fn bins_split_blocks_at_their_edges() {
        let mut bins = vec![0; 3];
        add_to_bins(&mut bins, 10, 8, 23); // bases 8..=22: 3 in bin 0, 10 in bin 1, 2 in bin 2
        assert_eq!(bins, [3, 10, 2]);
    }

    #[test]
    fn flag_counts_follow_flagstat() {
        let mut counts = FlagCounts::default();
        for flags in [
            PAIRED | PROPER_PAIR,                      // primary, mapped, proper
            PAIRED | PROPER_PAIR,                      // its mate
            PAIRED | MATE_UNMAPPED,                    // singleton
            PAIRED | UNMAPPED,                         // its unmapped mate
            PAIRED | PROPER_PAIR | SUPPLEMENTARY,      // supplementary, mapped
            PAIRED | SECONDARY | UNMAPPED | DUPLICATE, // odd, but counted
        ] {
            counts.add(flags);
        }
        assert_eq!(
            counts,
            FlagCounts {
                records: 6,
                qc_failed: 0,
                primary: 4,
                secondary: 1,
                supplementary: 1,
                duplicates: 1,
                mapped: 4,
                primary_mapped: 3,
                paired: 4,
                properly_paired: 2,
                both_mapped: 2,
                singletons: 1,
            }
        );
        assert!((counts.mapped_percent() - 66.666).abs() < 0.01);
        assert!((counts.properly_paired_percent() - 50.0).abs() < 1e-9);
    }
}
