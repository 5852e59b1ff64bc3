//! Region-sliced staging: a local BAM of only the BGZF blocks of a stored BAM that hold the
//! records overlapping some regions, found through the BAM's index (`.bai`).

use std::io::{self, BufWriter, Read, Write};
use std::ops::Range;
use std::time::SystemTime;

use biojob_core::{Contig, Region};
use biojob_storage::{ObjectMeta, ObjectStore, ObjectUri, StorageError};
use camino::{Utf8Path, Utf8PathBuf};
use noodles::bam::{self, bai};
use noodles::bgzf::VirtualPosition;
use noodles::csi::binning_index::index::reference_sequence::bin::Chunk;
use noodles::sam;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::bgzf::{BlockCheck, MAX_BGZF_BLOCK_SIZE, bgzf_blocks, check_block};
use crate::{BGZF_EOF_BLOCK, FormatError};

/// BAI binning: the smallest bin spans 2^14 bases, in 5 levels below the root (SAM spec v1,
/// section 5.3).
const MIN_SHIFT: u32 = 14;
/// The first bin of the deepest level, `((1 << 15) - 1) / 7` (SAM spec v1, section 5.3).
const FIRST_LEAF_BIN: usize = 4681;
/// Bins a BAI can have: 0 to 37448; 37450 is the pseudo-bin of metadata (SAM spec v1, 5.2).
const BIN_COUNT: usize = 37449;
/// The bytes fetched first for the header when the index gives no hint (no mapped record).
const HEADER_GUESS: u64 = 64 * 1024;

/// How a BAM was staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum BamStaging {
    /// Only the blocks holding the regions' records (and the header's) were fetched.
    Regions,
    /// The whole object was fetched, and its index built locally, because the stored index
    /// could not be used (`reason`).
    Whole {
        /// Why, e.g. "s3://b/x.bam.bai does not exist".
        reason: String,
    },
}

/// A BAM staged for some regions by [`StoredBam::stage_regions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagedBam {
    /// The local BAM: the stored BAM's header and every record overlapping the regions (and
    /// other records that share their BGZF blocks), in file order, then the BGZF EOF block.
    pub bam: Utf8PathBuf,
    /// Its index, built from it: `<bam>.bai` (`<bam>.csi` for a contig longer than 2^29).
    pub index: Utf8PathBuf,
    /// How it was staged.
    #[serde(flatten)]
    pub staging: BamStaging,
    /// The stored BAM's size in bytes.
    pub object_bytes: u64,
    /// The byte ranges `[start, end)` of the stored BAM that were fetched, in the order
    /// fetched (the header's first); `[0, size)` when the whole object was.
    pub ranges: Vec<Range<u64>>,
    /// Bytes of the stored index fetched (0 when there is none, or it was not used).
    pub index_bytes: u64,
    /// Bytes fetched in all: the ranges' and the index's.
    pub bytes_fetched: u64,
}

/// The stored index, when it can be used.
enum Index {
    /// The index, and every compressed offset it names (all BGZF block starts), sorted.
    Usable {
        index: bai::Index,
        block_starts: Vec<u64>,
    },
    /// The index cannot be used: stage the whole object.
    Unusable { reason: String },
}

/// A BAM held by an object store, opened for region-sliced staging: its metadata, its header
/// (read through ranged reads) and its index, when usable.
///
/// The index `<uri>.bai` is used when it exists, is not older than the BAM (its
/// `Last-Modified` is not before the BAM's; a store that gives no time is trusted), parses,
/// lists as many reference sequences as the header, and points only inside the BAM, after
/// its header. Otherwise [`StoredBam::stage_regions`] fetches the whole object (a warning
/// says why) and builds the index locally.
pub struct StoredBam<'a> {
    store: &'a dyn ObjectStore,
    uri: ObjectUri,
    meta: ObjectMeta,
    header: sam::Header,
    /// The header as BGZF blocks for the local BAM: the stored header's whole blocks as
    /// they are, then the rest of the header recompressed.
    header_blocks: Vec<u8>,
    /// The virtual position of the first record: where the header ends.
    header_end: VirtualPosition,
    index: Index,
    /// Ranges of the BAM fetched so far.
    ranges: Vec<Range<u64>>,
    index_bytes: u64,
}

impl std::fmt::Debug for StoredBam<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredBam")
            .field("uri", &self.uri)
            .field("meta", &self.meta)
            .field("header_end", &self.header_end)
            .finish_non_exhaustive()
    }
}

/// Stages the records of `uri` (a coordinate-sorted BAM in `store`) overlapping `regions`
/// into `destination`, with its index: [`StoredBam::open`], then
/// [`StoredBam::stage_regions`].
///
/// # Errors
/// As those two.
pub fn stage_bam_regions(
    store: &dyn ObjectStore,
    uri: &ObjectUri,
    regions: &[Region],
    destination: &Utf8Path,
) -> Result<StagedBam, FormatError> {
    StoredBam::open(store, uri)?.stage_regions(regions, destination)
}

impl<'a> StoredBam<'a> {
    /// `HEAD`s the BAM at `uri` and `<uri>.bai`, fetches the index when it may be used,
    /// and reads the header from the object's first bytes (as far as the index's first
    /// record, else 64 KiB at a time until it parses), checking every BGZF block read.
    ///
    /// # Errors
    /// [`FormatError::Storage`] (a missing object: `NotFound`; a failed transfer: input
    /// staging class); [`FormatError::DamagedBlock`] when a block of the header is damaged;
    /// [`FormatError::Parse`] when the header does not parse.
    pub fn open(store: &'a dyn ObjectStore, uri: &ObjectUri) -> Result<StoredBam<'a>, FormatError> {
        let meta = store.head(uri)?.ok_or_else(|| StorageError::NotFound {
            uri: uri.to_string(),
        })?;
        let bai_uri = uri.with_suffix(".bai");
        let (index, index_bytes) = match store.head(&bai_uri)? {
            None => (Err(format!("{bai_uri} does not exist")), 0),
            Some(bai_meta) => match older(&bai_meta, &meta) {
                Some(reason) => (Err(format!("{bai_uri} {reason}")), 0),
                None => {
                    let mut bytes = Vec::new();
                    let mut reader = store.open(&bai_uri)?;
                    let failure = reader.failure();
                    reader.read_to_end(&mut bytes).map_err(|error| {
                        failure.take().map_or_else(
                            || FormatError::Io {
                                path: Utf8PathBuf::from(bai_uri.to_string()),
                                source: error,
                            },
                            FormatError::Storage,
                        )
                    })?;
                    let read = bai::io::Reader::new(&bytes[..])
                        .read_index()
                        .map_err(|error| format!("{bai_uri} is not a BAM index: {error}"));
                    (read, bytes.len() as u64)
                }
            },
        };
        let first_record = index
            .as_ref()
            .ok()
            .and_then(|index| chunks(index).map(|chunk| chunk.start()).min());
        let mut bam = StoredBam {
            store,
            uri: uri.clone(),
            meta,
            header: sam::Header::default(),
            header_blocks: Vec::new(),
            header_end: VirtualPosition::default(),
            index: Index::Unusable {
                reason: String::new(),
            },
            ranges: Vec::new(),
            index_bytes,
        };
        let block_starts = match &index {
            Ok(index) => block_starts(index, bam.meta.size),
            Err(_) => Vec::new(),
        };
        bam.read_header(first_record, &block_starts)?;
        bam.index = match index {
            Err(reason) => Index::Unusable { reason },
            Ok(index) => match bam.index_problem(&index) {
                Some(problem) => Index::Unusable {
                    reason: format!("{bai_uri} {problem}"),
                },
                None => Index::Usable {
                    index,
                    block_starts,
                },
            },
        };
        Ok(bam)
    }

    /// The contigs of the header's `@SQ` lines, in header order.
    pub fn contigs(&self) -> Vec<Contig> {
        self.header
            .reference_sequences()
            .iter()
            .map(|(name, map)| {
                Contig::new(
                    String::from_utf8_lossy(name).into_owned(),
                    map.length().get() as u64,
                )
            })
            .collect()
    }

    /// Why the stored index will not be used, or `None` when it will.
    pub fn unusable_index(&self) -> Option<&str> {
        match &self.index {
            Index::Usable { .. } => None,
            Index::Unusable { reason } => Some(reason),
        }
    }

    /// Reads `text` as samtools does a region: a contig name of the header (whole), else
    /// `contig:start`, `contig:start-` (to the contig's end) or `contig:start-end`, 1-based
    /// and closed, digits optionally grouped with commas; an end past the contig is clipped to
    /// it.
    ///
    /// # Errors
    /// [`FormatError::Region`] when the contig is not in the header or the bounds do not
    /// parse or are out of order.
    pub fn resolve_region(&self, text: &str) -> Result<Region, FormatError> {
        let contigs = self.contigs();
        let fail = |reason: String| FormatError::Region {
            path: Utf8PathBuf::from(self.uri.to_string()),
            region: text.to_owned(),
            reason,
        };
        if let Some(contig) = contigs.iter().find(|c| c.name == text) {
            return Ok(Region::whole(contig.clone()));
        }
        let (name, bounds) = text.rsplit_once(':').ok_or_else(|| {
            fail(format!(
                "no contig of that name in the header (contigs: {})",
                names(&contigs)
            ))
        })?;
        let contig = contigs.iter().find(|c| c.name == name).ok_or_else(|| {
            fail(format!(
                "no contig {name:?} in the header (contigs: {})",
                names(&contigs)
            ))
        })?;
        let number = |digits: &str| {
            digits
                .replace(',', "")
                .parse::<u64>()
                .map_err(|_| fail(format!("{digits:?} is not a position")))
        };
        let (start, end) = match bounds.split_once('-') {
            None => (number(bounds)?, contig.length),
            Some((start, "")) => (number(start)?, contig.length),
            Some((start, end)) => (number(start)?, number(end)?.min(contig.length)),
        };
        Region::new(contig.clone(), start, end).ok_or_else(|| {
            fail(format!(
                "bases {start} to {end} are not within {} (1 to {})",
                contig.name, contig.length
            ))
        })
    }

    /// Writes to `destination` (through `<destination>.partial`) a BAM of the stored BAM's
    /// header and of the BGZF blocks holding every record that overlaps `regions` (the blocks
    /// of the chunks of the index's bins for each region, cut to the linear index's first
    /// offset for its start and to the first record of a bin past its end, as htslib's
    /// `hts_itr_query` does; whole blocks kept as fetched, parts of blocks recompressed),
    /// then the BGZF EOF block; builds its index, `<destination>.bai`. The ranges are
    /// fetched with [`ObjectStore::open_ranges`], pinned to the object `HEAD` saw, and every
    /// block is checked (header, `BSIZE`, inflated data against `CRC32` and `ISIZE`).
    ///
    /// When the stored index cannot be used ([`StoredBam::unusable_index`]), fetches the
    /// whole object instead (verified as [`ObjectStore::get`] does), with a warning, and
    /// indexes it locally.
    ///
    /// `samtools view` and `bcftools mpileup -r` of any of `regions` (or a part of one) give
    /// the same records from the local BAM as from the stored one.
    ///
    /// # Errors
    /// [`FormatError::Region`] when a region's contig is not in the header, or has another
    /// length there; [`FormatError::DamagedBlock`] (input invalid) naming the URI and byte
    /// offset of a damaged block; [`FormatError::Storage`] when a transfer fails;
    /// [`FormatError::Write`] when the local files cannot be written; [`FormatError::Parse`]
    /// when the local BAM cannot be indexed.
    pub fn stage_regions(
        mut self,
        regions: &[Region],
        destination: &Utf8Path,
    ) -> Result<StagedBam, FormatError> {
        let queries = self.queries(regions)?;
        let partial = Utf8PathBuf::from(format!("{destination}.partial"));
        let (staging, index) = match &self.index {
            Index::Unusable { reason } => {
                warn!(
                    uri = %self.uri,
                    reason,
                    "the BAM's index cannot be used; staging the whole BAM"
                );
                let report = self.store.get(&self.uri, destination)?;
                self.ranges.push(0..report.bytes);
                let index = write_index(destination, destination)?;
                (
                    BamStaging::Whole {
                        reason: reason.clone(),
                    },
                    index,
                )
            }
            Index::Usable {
                index,
                block_starts,
            } => {
                let segments = segments(index, &queries);
                let ranges = byte_ranges(&segments, block_starts, self.meta.size);
                let result = self
                    .write_slice(&segments, &ranges, &partial)
                    .and_then(|()| write_index(&partial, destination));
                if result.is_err() {
                    // Nothing half-written stays behind; the original error is what matters.
                    let _ = std::fs::remove_file(&partial);
                }
                let index = result?;
                self.ranges.extend(ranges);
                // The index was written after the BAM's last byte, so it is not older.
                rename(&partial, destination)?;
                (BamStaging::Regions, index)
            }
        };
        let fetched: u64 = self.ranges.iter().map(|r| r.end - r.start).sum();
        let staged = StagedBam {
            bam: destination.to_owned(),
            index,
            staging,
            object_bytes: self.meta.size,
            ranges: self.ranges,
            index_bytes: self.index_bytes,
            bytes_fetched: fetched + self.index_bytes,
        };
        info!(
            uri = %self.uri,
            regions = regions.len(),
            bytes_fetched = staged.bytes_fetched,
            object_bytes = staged.object_bytes,
            ranges = staged.ranges.len(),
            "BAM staged for its regions"
        );
        Ok(staged)
    }

    /// Each region as (reference sequence id, 0-based start, 0-based exclusive end).
    fn queries(&self, regions: &[Region]) -> Result<Vec<(usize, u64, u64)>, FormatError> {
        let references = self.header.reference_sequences();
        regions
            .iter()
            .map(|region| {
                let fail = |reason: String| FormatError::Region {
                    path: Utf8PathBuf::from(self.uri.to_string()),
                    region: region.to_string(),
                    reason,
                };
                let (id, _, map) = references
                    .get_full(region.contig.name.as_bytes())
                    .ok_or_else(|| {
                        fail(format!(
                            "no contig {:?} in the header (contigs: {})",
                            region.contig.name,
                            names(&self.contigs())
                        ))
                    })?;
                let length = map.length().get() as u64;
                if length != region.contig.length {
                    return Err(fail(format!(
                        "{} has {length} bases in the header, {} in the reference",
                        region.contig.name, region.contig.length
                    )));
                }
                Ok((id, region.start - 1, region.end))
            })
            .collect()
    }

    /// Reads the header from the object's first bytes: `[0, end of the block of the first
    /// record)` when the index says where that is, else 64 KiB, then as much again until it
    /// is whole; checks each block the header lies in, and no other.
    fn read_header(
        &mut self,
        first_record: Option<VirtualPosition>,
        block_starts: &[u64],
    ) -> Result<(), FormatError> {
        let size = self.meta.size;
        let mut end = match first_record {
            Some(first) if first.uncompressed() == 0 => first.compressed(),
            Some(first) => block_end_bound(first.compressed(), block_starts, size),
            None => HEADER_GUESS,
        }
        .clamp(1, size.max(1))
        .min(size);
        let mut raw: Vec<u8> = Vec::new();
        // Each checked block: (offset, size, inflated data).
        let mut blocks: Vec<(u64, usize, Vec<u8>)> = Vec::new();
        let mut parsed = 0usize;
        let mut data: Vec<u8> = Vec::new();
        loop {
            let start = raw.len() as u64;
            if end > start {
                let mut reader = self.store.open_ranges(
                    &self.uri,
                    &self.meta,
                    std::slice::from_ref(&(start..end)),
                )?;
                read_all(&mut reader, &mut raw, &self.uri)?;
                self.ranges.push(start..end);
            }
            let complete = raw.len() as u64 == size;
            let mut length = header_length(&data);
            while !not_bam(&data)
                && length.is_none_or(|length| (data.len() as u64) < length)
                && parsed < raw.len()
            {
                match check_block(&raw[parsed..]) {
                    Ok(BlockCheck::Sound {
                        size: block_size,
                        data: block,
                    }) => {
                        data.extend_from_slice(&block);
                        blocks.push((parsed as u64, block_size, block));
                        parsed += block_size;
                        length = header_length(&data);
                    }
                    Ok(BlockCheck::Incomplete { .. }) if !complete => break,
                    Ok(BlockCheck::Incomplete { .. }) => {
                        return Err(self.damaged(
                            parsed as u64,
                            "the object ends inside the block".to_owned(),
                        ));
                    }
                    Err(reason) => return Err(self.damaged(parsed as u64, reason)),
                }
            }
            let whole = length.filter(|&length| data.len() as u64 >= length);
            if whole.is_none() && !complete && !not_bam(&data) {
                end = (end + end.max(HEADER_GUESS)).min(size);
                continue;
            }
            let length = whole.unwrap_or(data.len() as u64);
            let text = &data[..usize::try_from(length).unwrap_or(data.len())];
            let mut cursor = io::Cursor::new(text);
            let parsed_header = bam::io::Reader::from(&mut cursor)
                .read_header()
                .and_then(|header| {
                    if cursor.position() == length {
                        Ok(header)
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "the header's fields give {length} bytes, the parser read {}",
                                cursor.position()
                            ),
                        ))
                    }
                })
                .map_err(|source| FormatError::Parse {
                    path: Utf8PathBuf::from(self.uri.to_string()),
                    format: "BAM header",
                    source,
                })?;
            self.header = parsed_header;
            return self.keep_header_blocks(&raw, &blocks, length);
        }
    }

    /// Keeps the header's blocks for the local BAM: those wholly header as they are, the
    /// header's part of the last recompressed; notes where the header ends.
    fn keep_header_blocks(
        &mut self,
        raw: &[u8],
        blocks: &[(u64, usize, Vec<u8>)],
        length: u64,
    ) -> Result<(), FormatError> {
        let mut before = 0u64;
        for (offset, block_size, data) in blocks {
            let after = before + data.len() as u64;
            if after <= length {
                let start = usize::try_from(*offset).unwrap_or(usize::MAX);
                self.header_blocks
                    .extend_from_slice(&raw[start..start + block_size]);
            } else {
                let within = usize::try_from(length - before).unwrap_or(usize::MAX);
                if within > 0 {
                    let blocks =
                        bgzf_blocks(&data[..within]).map_err(|source| FormatError::Write {
                            path: Utf8PathBuf::from(self.uri.to_string()),
                            source,
                        })?;
                    self.header_blocks.extend_from_slice(&blocks);
                }
                self.header_end =
                    virtual_position(*offset, u16::try_from(within).unwrap_or(u16::MAX));
                return Ok(());
            }
            before = after;
        }
        let end = blocks
            .last()
            .map_or(0, |(offset, block_size, _)| offset + *block_size as u64);
        self.header_end = virtual_position(end, 0);
        Ok(())
    }

    /// Why `index` does not fit the BAM, or `None`.
    fn index_problem(&self, index: &bai::Index) -> Option<String> {
        let listed = index.reference_sequences().len();
        let declared = self.header.reference_sequences().len();
        if listed != declared {
            return Some(format!(
                "lists {listed} reference sequences, the BAM header {declared}"
            ));
        }
        let size = self.meta.size;
        let past_end = chunks(index)
            .flat_map(|chunk| [chunk.start(), chunk.end()])
            .chain(
                index
                    .reference_sequences()
                    .iter()
                    .flat_map(|reference| reference.index().iter().copied()),
            )
            .filter(|position| {
                position.compressed() > size
                    || (position.compressed() == size && position.uncompressed() > 0)
            })
            .max();
        if let Some(past) = past_end {
            return Some(format!(
                "points at byte {} (+{}), past the end of the BAM ({size} bytes)",
                past.compressed(),
                past.uncompressed()
            ));
        }
        if let Some(first) = chunks(index).map(|chunk| chunk.start()).min()
            && first < self.header_end
        {
            return Some(format!(
                "puts a record at byte {} (+{}), inside the BAM header",
                first.compressed(),
                first.uncompressed()
            ));
        }
        None
    }

    /// Writes the header, the blocks of `segments` from the stream of `ranges`, and the EOF
    /// block to `partial`.
    fn write_slice(
        &self,
        segments: &[Chunk],
        ranges: &[Range<u64>],
        partial: &Utf8Path,
    ) -> Result<(), FormatError> {
        let write_error = |source| FormatError::Write {
            path: partial.to_owned(),
            source,
        };
        if let Some(parent) = partial.parent().filter(|p| !p.as_str().is_empty()) {
            fs_err::create_dir_all(parent).map_err(write_error)?;
        }
        let file = fs_err::File::create(partial).map_err(write_error)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&self.header_blocks).map_err(write_error)?;
        let reader = self.store.open_ranges(&self.uri, &self.meta, ranges)?;
        let mut stream = RangeStream::new(reader, ranges);
        for segment in segments {
            let (start, end) = (segment.start(), segment.end());
            stream.skip_to(start.compressed(), self)?;
            loop {
                let offset = stream.position;
                if offset > end.compressed()
                    || (offset == end.compressed() && end.uncompressed() == 0)
                {
                    break;
                }
                let (raw, data) = stream.read_block(self)?;
                let from = if offset == start.compressed() {
                    usize::from(start.uncompressed())
                } else {
                    0
                };
                let to = if offset == end.compressed() {
                    usize::from(end.uncompressed())
                } else {
                    data.len()
                };
                if from > to || to > data.len() {
                    return Err(FormatError::Invalid {
                        path: Utf8PathBuf::from(self.uri.with_suffix(".bai").to_string()),
                        reason: format!(
                            "the index points at byte {} of the block at byte {offset}, which \
                             holds {} bytes",
                            from.max(to),
                            data.len()
                        ),
                    });
                }
                if from == 0 && to == data.len() {
                    out.write_all(&raw).map_err(write_error)?;
                } else if from < to {
                    let blocks = bgzf_blocks(&data[from..to]).map_err(write_error)?;
                    out.write_all(&blocks).map_err(write_error)?;
                }
            }
        }
        out.write_all(&BGZF_EOF_BLOCK).map_err(write_error)?;
        let file = out
            .into_inner()
            .map_err(|error| write_error(error.into_error()))?;
        file.sync_all().map_err(write_error)?;
        Ok(())
    }

    fn damaged(&self, offset: u64, reason: String) -> FormatError {
        FormatError::DamagedBlock {
            path: Utf8PathBuf::from(self.uri.to_string()),
            offset,
            reason,
        }
    }
}

/// The length of the BAM header at the start of `data` (SAM spec v1, section 4.2: magic,
/// `l_text`, text, `n_ref`, then `l_name`, name, `l_ref` for each reference), or `None` when
/// `data` ends before its fields say where the header ends.
fn header_length(data: &[u8]) -> Option<u64> {
    let u32_at = |at: usize| -> Option<usize> {
        let bytes = data.get(at..at + 4)?;
        usize::try_from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])).ok()
    };
    let mut at = 8usize.checked_add(u32_at(4)?)?;
    let references = u32_at(at)?;
    at += 4;
    for _ in 0..references {
        at = at.checked_add(4 + u32_at(at)? + 4)?;
        if at > data.len() {
            return None;
        }
    }
    Some(at as u64)
}

/// Whether `data` starts with something other than the BAM magic (the parser then says so).
fn not_bam(data: &[u8]) -> bool {
    data.get(..4).is_some_and(|magic| magic != b"BAM\x01")
}

/// "is older than the BAM (…)" when `index` was last modified before `bam`.
fn older(index: &ObjectMeta, bam: &ObjectMeta) -> Option<String> {
    match (index.last_modified, bam.last_modified) {
        (Some(index_time), Some(bam_time)) if index_time < bam_time => Some(format!(
            "is older than the BAM (Last-Modified {} < {})",
            timestamp(index_time),
            timestamp(bam_time)
        )),
        _ => None,
    }
}

fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339(time).to_string()
}

fn names(contigs: &[Contig]) -> String {
    contigs
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn virtual_position(compressed: u64, uncompressed: u16) -> VirtualPosition {
    VirtualPosition::new(compressed, uncompressed).unwrap_or(VirtualPosition::MAX)
}

/// Every chunk of every bin of `index`.
fn chunks(index: &bai::Index) -> impl Iterator<Item = &Chunk> {
    index
        .reference_sequences()
        .iter()
        .flat_map(|reference| reference.bins().values())
        .flat_map(|bin| bin.chunks())
}

/// Every compressed offset that `index` names (each a BGZF block start), and `size`, sorted
/// and without repeats.
fn block_starts(index: &bai::Index, size: u64) -> Vec<u64> {
    let mut starts: Vec<u64> = chunks(index)
        .flat_map(|chunk| [chunk.start().compressed(), chunk.end().compressed()])
        .chain(
            index
                .reference_sequences()
                .iter()
                .flat_map(|reference| reference.index().iter())
                .map(|position| position.compressed()),
        )
        .chain([size])
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// An end for the fetch of the block at `offset` that is past the block's end: the next
/// block start the index names, at most the largest block, at most the object's `size`.
fn block_end_bound(offset: u64, block_starts: &[u64], size: u64) -> u64 {
    let next = block_starts
        .get(block_starts.partition_point(|&start| start <= offset))
        .copied()
        .unwrap_or(size);
    next.min(offset + MAX_BGZF_BLOCK_SIZE).min(size)
}

/// The bins that may hold records overlapping `[start, end)` (0-based), as `reg2bins` of
/// SAM spec v1, section 5.3.
fn region_bins(start: u64, end: u64) -> Vec<usize> {
    let end = end.max(start + 1) - 1;
    let mut bins = vec![0usize];
    for (first, shift) in [(1u64, 26u32), (9, 23), (73, 20), (585, 17), (4681, 14)] {
        let (from, to) = (first + (start >> shift), first + (end >> shift));
        bins.extend((from..=to).map(|bin| usize::try_from(bin).unwrap_or(usize::MAX)));
    }
    bins
}

/// The parent of `bin` (SAM spec v1, section 5.3).
fn parent(bin: usize) -> usize {
    (bin - 1) >> 3
}

/// The chunks that may hold records overlapping the queries (reference id, 0-based start,
/// 0-based exclusive end), merged into sorted, disjoint runs of whole records; two runs never
/// share a BGZF block. As htslib's `hts_itr_query`: the chunks of the region's bins, cut below
/// at the linear index's offset for the region's start (no record overlapping the region
/// starts earlier) and above at the first record of the first bin past the region's end (no
/// record overlapping the region starts later).
fn segments(index: &bai::Index, queries: &[(usize, u64, u64)]) -> Vec<Chunk> {
    let mut found = Vec::new();
    for &(id, start, end) in queries {
        let Some(reference) = index.reference_sequences().get(id) else {
            continue;
        };
        let bins = reference.bins();
        let linear = reference.index();
        let window = usize::try_from(start >> MIN_SHIFT).unwrap_or(usize::MAX);
        let min_offset = linear.get(window).copied().unwrap_or_default();
        let max_offset = {
            let mut bin = FIRST_LEAF_BIN
                + usize::try_from((end.max(1) - 1) >> MIN_SHIFT).unwrap_or(usize::MAX)
                + 1;
            if bin >= BIN_COUNT {
                bin = 0;
            }
            loop {
                while bin % 8 == 1 {
                    bin = parent(bin);
                }
                if bin == 0 {
                    break VirtualPosition::MAX;
                }
                if let Some(first) = bins
                    .get(&bin)
                    .and_then(|b| b.chunks().iter().map(|c| c.start()).min())
                {
                    break first;
                }
                bin += 1;
            }
        };
        for bin in region_bins(start, end) {
            let Some(bin) = bins.get(&bin) else {
                continue;
            };
            for chunk in bin.chunks() {
                let from = chunk.start().max(min_offset);
                let to = chunk.end().min(max_offset);
                if from < to {
                    found.push(Chunk::new(from, to));
                }
            }
        }
    }
    found.sort_unstable_by_key(|chunk| chunk.start());
    let mut merged: Vec<Chunk> = Vec::with_capacity(found.len());
    for chunk in found {
        match merged.last_mut() {
            Some(last)
                if chunk.start() <= last.end()
                    || chunk.start().compressed() == last.end().compressed() =>
            {
                if chunk.end() > last.end() {
                    *last = Chunk::new(last.start(), chunk.end());
                }
            }
            _ => merged.push(chunk),
        }
    }
    merged
}

/// The byte ranges to fetch for `segments`: from each segment's first block to past its last
/// ([`block_end_bound`]; to its end's block start when it ends at a block's start), merged
/// where they meet.
fn byte_ranges(segments: &[Chunk], block_starts: &[u64], size: u64) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for segment in segments {
        let start = segment.start().compressed();
        let end = if segment.end().uncompressed() == 0 {
            segment.end().compressed()
        } else {
            block_end_bound(segment.end().compressed(), block_starts, size)
        };
        match ranges.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => ranges.push(start..end),
        }
    }
    ranges
}

/// Reads `reader` to its end into `into`, the store's error when it fails.
fn read_all(
    reader: &mut biojob_storage::ObjectReader,
    into: &mut Vec<u8>,
    uri: &ObjectUri,
) -> Result<(), FormatError> {
    let failure = reader.failure();
    reader.read_to_end(into).map(|_| ()).map_err(|error| {
        failure.take().map_or_else(
            || FormatError::Io {
                path: Utf8PathBuf::from(uri.to_string()),
                source: error,
            },
            FormatError::Storage,
        )
    })
}

/// The stream of an object's byte ranges, read block by block.
struct RangeStream<'r> {
    reader: biojob_storage::ObjectReader,
    ranges: &'r [Range<u64>],
    /// The range being read.
    current: usize,
    /// The object offset of the next byte.
    position: u64,
}

impl<'r> RangeStream<'r> {
    fn new(reader: biojob_storage::ObjectReader, ranges: &'r [Range<u64>]) -> Self {
        let position = ranges.first().map_or(0, |r| r.start);
        RangeStream {
            reader,
            ranges,
            current: 0,
            position,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], bam: &StoredBam<'_>) -> Result<(), FormatError> {
        let failure = self.reader.failure();
        self.reader.read_exact(buf).map_err(|error| {
            failure.take().map_or_else(
                || {
                    FormatError::Storage(StorageError::Verification {
                        uri: bam.uri.to_string(),
                        direction: biojob_storage::Direction::Get,
                        detail: format!(
                            "reading the bytes fetched from byte {}: {error}",
                            self.position
                        ),
                    })
                },
                FormatError::Storage,
            )
        })?;
        self.position += buf.len() as u64;
        Ok(())
    }

    /// Moves to `offset`, which lies in a range at or after the position.
    fn skip_to(&mut self, offset: u64, bam: &StoredBam<'_>) -> Result<(), FormatError> {
        let mut buffer = vec![0u8; 1 << 16];
        while self.position < offset {
            let Some(range) = self.ranges.get(self.current) else {
                break;
            };
            if self.position == range.end {
                self.current += 1;
                if let Some(next) = self.ranges.get(self.current) {
                    self.position = next.start;
                }
                continue;
            }
            let step = (offset.min(range.end) - self.position).min(buffer.len() as u64);
            let step = usize::try_from(step).unwrap_or(buffer.len());
            self.read_exact(&mut buffer[..step], bam)?;
        }
        if self.position != offset {
            return Err(FormatError::Storage(StorageError::Verification {
                uri: bam.uri.to_string(),
                direction: biojob_storage::Direction::Get,
                detail: format!("byte {offset} lies outside the ranges fetched"),
            }));
        }
        Ok(())
    }

    /// Reads and checks the block at the position: its bytes and its inflated data.
    fn read_block(&mut self, bam: &StoredBam<'_>) -> Result<(Vec<u8>, Vec<u8>), FormatError> {
        let offset = self.position;
        let limit = self
            .ranges
            .get(self.current)
            .map_or(offset, |range| range.end);
        let available = usize::try_from(limit - offset).unwrap_or(usize::MAX);
        let mut raw = Vec::with_capacity(1 << 16);
        let mut want = 18usize.min(available);
        loop {
            let have = raw.len();
            raw.resize(want, 0);
            self.read_exact(&mut raw[have..], bam)?;
            match check_block(&raw).map_err(|reason| bam.damaged(offset, reason))? {
                BlockCheck::Sound { size, data } => {
                    raw.truncate(size);
                    return Ok((raw, data));
                }
                BlockCheck::Incomplete { size } => {
                    let needed = if size == 0 { raw.len() + 1 } else { size };
                    if needed > available {
                        return Err(bam.damaged(
                            offset,
                            format!(
                                "it runs past byte {limit}, where the bytes fetched for it end \
                                 ({})",
                                if size == 0 {
                                    "its header is cut".to_owned()
                                } else {
                                    format!("BSIZE gives {size} bytes")
                                }
                            ),
                        ));
                    }
                    want = if size == 0 {
                        (raw.len() + 256).min(available)
                    } else {
                        size
                    };
                }
            }
        }
    }
}

fn rename(from: &Utf8Path, to: &Utf8Path) -> Result<(), FormatError> {
    fs_err::rename(from, to).map_err(|source| FormatError::Write {
        path: to.to_owned(),
        source,
    })
}

/// Indexes the local BAM `source` (noodles, as `samtools index` does) into `<bam>.bai`, or
/// `<bam>.csi` when a contig is longer than a BAI can index; through `.partial`.
fn write_index(source: &Utf8Path, bam: &Utf8Path) -> Result<Utf8PathBuf, FormatError> {
    let index = bam::fs::index(source).map_err(|error| match error.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            FormatError::Parse {
                path: source.to_owned(),
                format: "BAM to index",
                source: error,
            }
        }
        _ => FormatError::Io {
            path: source.to_owned(),
            source: error,
        },
    })?;
    let (path, written) = match index {
        bam::index::Index::Bai(index) => {
            let path = Utf8PathBuf::from(format!("{bam}.bai"));
            let partial = Utf8PathBuf::from(format!("{path}.partial"));
            let written = bai::fs::write(&partial, &index);
            (path, written.map(|()| partial))
        }
        bam::index::Index::Csi(index) => {
            let path = Utf8PathBuf::from(format!("{bam}.csi"));
            let partial = Utf8PathBuf::from(format!("{path}.partial"));
            let written = noodles::csi::fs::write(&partial, &index);
            (path, written.map(|()| partial))
        }
    };
    let partial = written.map_err(|source| FormatError::Write {
        path: path.clone(),
        source,
    })?;
    rename(&partial, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_bins_follow_the_spec() {
        // SAM spec v1, section 5.3: a region inside one 16 kb window lies in one bin per level.
        assert_eq!(region_bins(0, 1), vec![0, 1, 9, 73, 585, 4681]);
        assert_eq!(
            region_bins(16_383, 16_385),
            vec![0, 1, 9, 73, 585, 4681, 4682]
        );
        assert_eq!(parent(4682), 585);
        assert_eq!(parent(9), 1);
        assert_eq!(parent(1), 0);
    }

    #[test]
    fn block_end_bounds() {
        let starts = [0, 100, 70_000, 200_000];
        assert_eq!(block_end_bound(0, &starts, 200_000), 100);
        assert_eq!(block_end_bound(100, &starts, 200_000), 65_636);
        assert_eq!(block_end_bound(70_000, &starts, 200_000), 135_536);
        assert_eq!(block_end_bound(150_000, &starts, 160_000), 160_000);
    }

    fn vp(compressed: u64, uncompressed: u16) -> VirtualPosition {
        virtual_position(compressed, uncompressed)
    }

    #[test]
    fn byte_ranges_take_whole_blocks_and_merge() {
        let starts = [0, 100, 300, 900, 5_000];
        let segments = [
            Chunk::new(vp(100, 5), vp(300, 0)),
            Chunk::new(vp(300, 10), vp(300, 20)),
            Chunk::new(vp(900, 0), vp(900, 7)),
        ];
        // Touching ranges are one.
        assert_eq!(byte_ranges(&segments, &starts, 5_000), vec![100..5_000]);
        assert_eq!(
            byte_ranges(&[segments[0], segments[2]], &starts, 5_000),
            vec![100..300, 900..5_000]
        );
        assert_eq!(byte_ranges(&segments[..1], &starts, 5_000), vec![100..300]);
    }
}
