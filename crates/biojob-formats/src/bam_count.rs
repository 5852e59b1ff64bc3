//! Counting BAM records as their bytes pass on their way to a file, and in a finished BAM file.
//!
//! The stream is read at two layers: BGZF blocks (SAM spec v1, section 4.1), cut out of the
//! bytes however the writes split them and inflated with libdeflate (on the writing thread, or
//! in batches on worker threads, taken back in order); then the BAM stream they carry (section
//! 4.2): the header is skipped, and of each record only `block_size` and `flag` are read.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use camino::{Utf8Path, Utf8PathBuf};

use crate::FormatError;
use crate::bam_stats::{SECONDARY, SUPPLEMENTARY};
use crate::bgzf::{BGZF_EOF_BLOCK, bc_block_size};

/// Records of a BAM stream by kind (SAM spec v1, section 1.4, FLAG), as `samtools view -c`
/// counts them: `records` is every record, `primary` is `-F 0x900`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BamRecordCounts {
    /// Every record.
    pub records: u64,
    /// Primary records: neither secondary (0x100) nor supplementary (0x800). A paired-end
    /// aligner writes exactly one per read, mapped or not.
    pub primary: u64,
    /// Secondary records (0x100).
    pub secondary: u64,
    /// Supplementary records (0x800) that are not also flagged secondary.
    pub supplementary: u64,
}

impl BamRecordCounts {
    /// Counts one record with FLAG `flags`.
    pub(crate) fn add(&mut self, flags: u16) {
        self.records += 1;
        match RecordKind::of(flags) {
            RecordKind::Primary => self.primary += 1,
            RecordKind::Secondary => self.secondary += 1,
            RecordKind::Supplementary => self.supplementary += 1,
        }
    }
}

impl std::ops::Add for BamRecordCounts {
    type Output = BamRecordCounts;

    fn add(self, other: BamRecordCounts) -> BamRecordCounts {
        BamRecordCounts {
            records: self.records + other.records,
            primary: self.primary + other.primary,
            secondary: self.secondary + other.secondary,
            supplementary: self.supplementary + other.supplementary,
        }
    }
}

impl std::iter::Sum for BamRecordCounts {
    fn sum<I: Iterator<Item = BamRecordCounts>>(counts: I) -> BamRecordCounts {
        counts.fold(BamRecordCounts::default(), |sum, counts| sum + counts)
    }
}

/// Primary, secondary or supplementary, as `samtools flagstat` tells them apart (samtools 1.16
/// `bam_stat.c`): a record flagged both 0x100 and 0x800 is secondary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    Primary,
    Secondary,
    Supplementary,
}

impl RecordKind {
    pub(crate) fn of(flags: u16) -> RecordKind {
        if flags & SECONDARY != 0 {
            RecordKind::Secondary
        } else if flags & SUPPLEMENTARY != 0 {
            RecordKind::Supplementary
        } else {
            RecordKind::Primary
        }
    }
}

/// An [`io::Write`] adaptor that passes bytes to `inner` unchanged and counts the BAM records
/// in them as they pass, without a second read of the output.
///
/// The bytes must be a BAM file (BGZF-compressed, SAM spec v1, section 4.2) from its first
/// byte; writes may split them anywhere. The adaptor never fails a write for what the bytes
/// hold: the first problem it finds (not BGZF, a damaged block, not BAM) stops the counting,
/// the bytes still pass, and [`finish`](Self::finish) reports it.
///
/// Cost: every block is inflated once (libdeflate) and its CRC32 checked: on the writing thread
/// ([`new`](Self::new)), or on worker threads ([`with_threads`](Self::with_threads)), 256 KiB
/// of blocks at a time, at most two batches per worker in flight (about 2.5 MiB of memory per
/// worker). `benches/benches/bam_count.rs` measures it.
///
/// ```no_run
/// use std::io::Write;
/// use biojob_formats::BamRecordCounter;
/// use camino::Utf8Path;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = Utf8Path::new("NA12878.align.bam.partial");
/// let mut counter = BamRecordCounter::with_threads(std::fs::File::create(path)?, path, 4);
/// std::io::copy(&mut std::io::stdin().lock(), &mut counter)?; // e.g. `samtools sort -o -`
/// let (file, counts) = counter.finish()?;
/// file.sync_all()?;
/// println!("{} primary records", counts.primary);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct BamRecordCounter<W> {
    inner: W,
    path: Utf8PathBuf,
    stream: BamStream,
}

impl<W: Write> BamRecordCounter<W> {
    /// Counts the records written through to `inner`, inflating on the writing thread; `path`
    /// names the output in errors.
    pub fn new(inner: W, path: impl Into<Utf8PathBuf>) -> Self {
        Self::with_threads(inner, path, 1)
    }

    /// As [`new`](Self::new), with the blocks inflated on `threads` worker threads when
    /// `threads` is above 1 (fewer if the system will not start as many).
    pub fn with_threads(inner: W, path: impl Into<Utf8PathBuf>, threads: usize) -> Self {
        Self {
            inner,
            path: path.into(),
            stream: BamStream::new(threads),
        }
    }

    /// The records counted so far (complete or not; with worker threads, those of the blocks
    /// taken back so far).
    pub fn counts(&self) -> BamRecordCounts {
        self.stream.layer.counts
    }

    /// The bytes passed through so far.
    pub fn bytes(&self) -> u64 {
        self.stream.offset
    }

    /// Flushes `inner` and returns it with the counts of a complete BAM stream.
    ///
    /// # Errors
    /// [`FormatError::Io`] when flushing fails; [`FormatError::NotBgzf`] when no byte came;
    /// [`FormatError::MissingBgzfEof`] when the stream stops after a whole block other than
    /// the EOF block (section 4.1.2); [`FormatError::Invalid`] when it stops inside a block,
    /// the header or a record, or when a block or the BAM data is damaged. A truncated stream
    /// is always an error, never a short count.
    pub fn finish(mut self) -> Result<(W, BamRecordCounts), FormatError> {
        self.inner.flush().map_err(|source| FormatError::Io {
            path: self.path.clone(),
            source,
        })?;
        let counts = self.stream.finish(&self.path)?;
        Ok((self.inner, counts))
    }
}

impl<W: Write> Write for BamRecordCounter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.stream.feed(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts the records of the finished BAM file at `path` in one sequential read (the records
/// of merge inputs and outputs, to check that a merge kept them all), inflating on `threads`
/// worker threads when above 1, as [`BamRecordCounter::with_threads`].
///
/// # Errors
/// [`FormatError::Io`] when the file cannot be read; otherwise as
/// [`BamRecordCounter::finish`].
pub fn count_bam_records(path: &Utf8Path, threads: usize) -> Result<BamRecordCounts, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs_err::File::open(path).map_err(io_error)?;
    let mut stream = BamStream::new(threads);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => stream.feed(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(error)),
        }
    }
    let counts = stream.finish(path)?;
    tracing::debug!(%path, records = counts.records, primary = counts.primary, "BAM records counted");
    Ok(counts)
}

/// Bytes of a BGZF block's gzip header before the extra field: ID1 ID2 CM FLG MTIME(4) XFL OS
/// XLEN(2) (RFC 1952, section 2.3).
const GZIP_HEADER: usize = 12;
/// CRC32 and ISIZE, after the compressed data.
const GZIP_TRAILER: usize = 8;
/// The most data a BGZF block holds (SAM spec v1, section 4.1: ISIZE ≤ 65536).
const MAX_BLOCK_DATA: usize = 1 << 16;
/// Compressed bytes of whole blocks sent to a worker at a time.
const BATCH_BYTES: usize = 256 * 1024;
/// The first fields of a record, up to and including `flag`: `block_size`, `refID`, `pos`,
/// `l_read_name`, `mapq`, `bin`, `n_cigar_op`, `flag` (section 4.2).
const RECORD_PREFIX: usize = 20;
/// The smallest `block_size`: the 32 bytes of fixed fields after it.
const MIN_BLOCK_SIZE: u32 = 32;

/// How long the BGZF block at the start of some bytes is, as far as they tell.
enum BlockLength {
    /// Its header is not all there: it needs this many bytes to tell.
    NeedHeader(usize),
    /// The whole block is this many bytes.
    Whole(usize),
}

/// The length of the BGZF block that `bytes` start with (SAM spec v1, section 4.1: BSIZE + 1).
fn block_length(bytes: &[u8]) -> Result<BlockLength, String> {
    if bytes.len() < GZIP_HEADER {
        return Ok(BlockLength::NeedHeader(GZIP_HEADER));
    }
    if bytes[..4] != [0x1f, 0x8b, 0x08, 0x04] {
        return Err("not a BGZF block (no gzip magic 1f 8b 08 with an extra field)".to_owned());
    }
    let extra_length = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
    if bytes.len() < GZIP_HEADER + extra_length {
        return Ok(BlockLength::NeedHeader(GZIP_HEADER + extra_length));
    }
    let Some(block_size) = bc_block_size(&bytes[GZIP_HEADER..GZIP_HEADER + extra_length]) else {
        return Err("not a BGZF block (no BC subfield in the gzip extra field)".to_owned());
    };
    let length = usize::from(block_size) + 1;
    if length < GZIP_HEADER + extra_length + GZIP_TRAILER {
        return Err(format!(
            "a BGZF block of {length} bytes is too short for its header"
        ));
    }
    Ok(BlockLength::Whole(length))
}

/// Inflates one whole BGZF `block` (as [`block_length`] measured it), appends its data to
/// `out`, and checks its CRC32 and ISIZE; whether it was the EOF marker block.
fn inflate_block(
    inflater: &mut libdeflater::Decompressor,
    block: &[u8],
    out: &mut Vec<u8>,
) -> Result<bool, String> {
    let extra_length = usize::from(u16::from_le_bytes([block[10], block[11]]));
    let trailer = &block[block.len() - GZIP_TRAILER..];
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) as usize;
    let compressed = &block[GZIP_HEADER + extra_length..block.len() - GZIP_TRAILER];
    if size > MAX_BLOCK_DATA {
        return Err(format!(
            "ISIZE {size} is above the BGZF maximum of {MAX_BLOCK_DATA}"
        ));
    }
    let start = out.len();
    out.resize(start + size, 0);
    match inflater.deflate_decompress(compressed, &mut out[start..]) {
        Ok(inflated) if inflated == size => {}
        Ok(inflated) => return Err(format!("{inflated} bytes inflated, ISIZE says {size}")),
        Err(error) => return Err(format!("the compressed data is damaged ({error})")),
    }
    let actual = libdeflater::crc32(&out[start..]);
    if actual != crc {
        return Err(format!(
            "CRC32 {actual:08x} of the data differs from {crc:08x} in the block"
        ));
    }
    Ok(block == BGZF_EOF_BLOCK)
}

/// The two-layer parser behind [`BamRecordCounter`] and [`count_bam_records`].
#[derive(Debug)]
struct BamStream {
    /// Bytes fed so far.
    offset: u64,
    /// Bytes of a BGZF block not yet complete.
    pending: Vec<u8>,
    /// Whole BGZF blocks cut out so far.
    blocks: u64,
    inflate: Inflate,
    layer: BamLayer,
    /// The first problem found; nothing is parsed after it.
    problem: Option<String>,
}

/// Where blocks are inflated.
enum Inflate {
    /// On the writing thread, into one reused buffer.
    Here {
        inflater: Box<libdeflater::Decompressor>,
        data: Vec<u8>,
    },
    /// On worker threads.
    Pool(Pool),
}

impl std::fmt::Debug for Inflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inflate::Here { .. } => f.write_str("Here"),
            Inflate::Pool(pool) => write!(f, "Pool({} workers)", pool.workers),
        }
    }
}

/// A batch of whole blocks for a worker.
struct Job {
    blocks: Vec<u8>,
    lengths: Vec<usize>,
    /// The 1-based number of the first block in the stream.
    first: u64,
    reply: SyncSender<Result<Inflated, String>>,
}

/// The data of a batch, in order, and whether its last block was the EOF marker block.
struct Inflated {
    data: Vec<u8>,
    ends_with_eof: bool,
}

/// Worker threads inflating batches, and the batches sent, oldest first.
struct Pool {
    workers: usize,
    jobs: Option<mpsc::Sender<Job>>,
    in_flight: VecDeque<Receiver<Result<Inflated, String>>>,
    batch: Vec<u8>,
    lengths: Vec<usize>,
    /// The 1-based number of the first block in `batch`.
    first: u64,
}

impl Pool {
    /// Up to `threads` workers; `None` when not one can start.
    fn start(threads: usize) -> Option<Pool> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut workers = 0;
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            let started = std::thread::Builder::new()
                .name(format!("bam-count-{index}"))
                .spawn(move || work(&receiver));
            match started {
                Ok(_) => workers += 1,
                Err(error) => {
                    tracing::warn!(%error, "could not start a BAM counting thread");
                    break;
                }
            }
        }
        (workers > 0).then(|| Pool {
            workers,
            jobs: Some(sender),
            in_flight: VecDeque::new(),
            batch: Vec::with_capacity(BATCH_BYTES + MAX_BLOCK_DATA),
            lengths: Vec::new(),
            first: 1,
        })
    }
}

/// A worker: inflates batches until the sender is dropped.
fn work(jobs: &Mutex<Receiver<Job>>) {
    let mut inflater = libdeflater::Decompressor::new();
    loop {
        let job = {
            let Ok(receiver) = jobs.lock() else { return };
            match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let mut inflated = Inflated {
            data: Vec::with_capacity(job.blocks.len() * 4),
            ends_with_eof: false,
        };
        let mut at = 0;
        let mut result = Ok(());
        for (index, &length) in job.lengths.iter().enumerate() {
            match inflate_block(
                &mut inflater,
                &job.blocks[at..at + length],
                &mut inflated.data,
            ) {
                Ok(eof) => inflated.ends_with_eof = eof,
                Err(problem) => {
                    result = Err(format!(
                        "BGZF block {}: {problem}",
                        job.first + index as u64
                    ));
                    break;
                }
            }
            at += length;
        }
        // The receiver is gone only when the stream was dropped unfinished.
        let _ = job.reply.send(result.map(|()| inflated));
    }
}

impl BamStream {
    fn new(threads: usize) -> Self {
        let pool = if threads > 1 {
            Pool::start(threads)
        } else {
            None
        };
        let inflate = match pool {
            Some(pool) => Inflate::Pool(pool),
            None => Inflate::Here {
                inflater: Box::new(libdeflater::Decompressor::new()),
                data: Vec::with_capacity(MAX_BLOCK_DATA),
            },
        };
        Self {
            offset: 0,
            pending: Vec::with_capacity(MAX_BLOCK_DATA),
            blocks: 0,
            inflate,
            layer: BamLayer::default(),
            problem: None,
        }
    }

    /// Reads the next bytes of the stream.
    fn feed(&mut self, mut bytes: &[u8]) {
        let start = self.offset;
        self.offset += bytes.len() as u64;
        if self.problem.is_some() {
            return;
        }
        // Complete the block begun by earlier bytes.
        let block_start = start - self.pending.len() as u64;
        while !self.pending.is_empty() && !bytes.is_empty() {
            let wanted = match block_length(&self.pending) {
                Ok(BlockLength::NeedHeader(length) | BlockLength::Whole(length)) => length,
                Err(problem) => return self.fail(block_start, problem),
            };
            let take = (wanted - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if let Ok(BlockLength::Whole(length)) = block_length(&self.pending)
                && self.pending.len() == length
            {
                let block = std::mem::take(&mut self.pending);
                self.block(&block);
                self.pending = block;
                self.pending.clear();
                if self.problem.is_some() {
                    return;
                }
            }
        }
        // Whole blocks straight from `bytes`; the rest waits for the next bytes.
        while !bytes.is_empty() {
            match block_length(bytes) {
                Ok(BlockLength::Whole(length)) if length <= bytes.len() => {
                    self.block(&bytes[..length]);
                    if self.problem.is_some() {
                        return;
                    }
                    bytes = &bytes[length..];
                }
                Ok(_) => {
                    self.pending.extend_from_slice(bytes);
                    return;
                }
                Err(problem) => return self.fail(self.offset - bytes.len() as u64, problem),
            }
        }
    }

    /// Records a problem of the BGZF framing at `offset`, unless the blocks before it, still
    /// being inflated, hold an earlier one.
    fn fail(&mut self, offset: u64, problem: String) {
        let problem = format!("BGZF block {} at byte {offset}: {problem}", self.blocks + 1);
        self.drain();
        self.problem.get_or_insert(problem);
    }

    /// With worker threads: sends the batch being gathered and reads back every batch in
    /// flight, in order, until a problem shows.
    fn drain(&mut self) {
        if matches!(self.inflate, Inflate::Pool(_)) {
            if self.problem.is_none() {
                self.send_batch();
            }
            while self.problem.is_none() && pool_in_flight(&self.inflate) > 0 {
                self.take_back();
            }
        }
    }

    /// Inflates one whole BGZF block, or queues it for a worker, and reads the BAM data of the
    /// blocks inflated.
    fn block(&mut self, block: &[u8]) {
        self.blocks += 1;
        match &mut self.inflate {
            Inflate::Here { inflater, data } => {
                data.clear();
                match inflate_block(inflater, block, data) {
                    Ok(eof) => {
                        self.layer.ended = eof;
                        if let Err(problem) = self.layer.read(data) {
                            self.problem = Some(problem);
                        }
                    }
                    Err(problem) => {
                        self.problem = Some(format!("BGZF block {}: {problem}", self.blocks));
                    }
                }
            }
            Inflate::Pool(pool) => {
                pool.batch.extend_from_slice(block);
                pool.lengths.push(block.len());
                if pool.batch.len() >= BATCH_BYTES {
                    self.send_batch();
                }
            }
        }
    }

    /// Sends the batch being gathered to a worker, then takes back the oldest batches while
    /// more than two per worker are in flight.
    fn send_batch(&mut self) {
        let Inflate::Pool(pool) = &mut self.inflate else {
            return;
        };
        if !pool.lengths.is_empty() {
            let (reply, result) = mpsc::sync_channel(1);
            let job = Job {
                blocks: std::mem::replace(
                    &mut pool.batch,
                    Vec::with_capacity(BATCH_BYTES + MAX_BLOCK_DATA),
                ),
                lengths: std::mem::take(&mut pool.lengths),
                first: pool.first,
                reply,
            };
            pool.first = self.blocks + 1;
            let sent = pool
                .jobs
                .as_ref()
                .is_some_and(|jobs| jobs.send(job).is_ok());
            if !sent {
                self.problem = Some("the BAM counting threads have stopped".to_owned());
                return;
            }
            pool.in_flight.push_back(result);
        }
        while pool_in_flight(&self.inflate) > 2 * pool_workers(&self.inflate) {
            self.take_back();
            if self.problem.is_some() {
                return;
            }
        }
    }

    /// Reads the BAM data of the oldest batch in flight.
    fn take_back(&mut self) {
        let Inflate::Pool(pool) = &mut self.inflate else {
            return;
        };
        let Some(result) = pool.in_flight.pop_front() else {
            return;
        };
        match result.recv() {
            Ok(Ok(inflated)) => {
                self.layer.ended = inflated.ends_with_eof;
                if let Err(problem) = self.layer.read(&inflated.data) {
                    self.problem = Some(problem);
                }
            }
            Ok(Err(problem)) => self.problem = Some(problem),
            Err(_) => self.problem = Some("a BAM counting thread stopped".to_owned()),
        }
    }

    /// The counts, if the stream was a complete BAM file.
    fn finish(&mut self, path: &Utf8Path) -> Result<BamRecordCounts, FormatError> {
        self.drain();
        if let Inflate::Pool(pool) = &mut self.inflate {
            // The workers end once they see the channel closed.
            pool.jobs = None;
        }
        let invalid = |reason: String| FormatError::Invalid {
            path: path.to_owned(),
            reason,
        };
        if let Some(problem) = &self.problem {
            return Err(invalid(problem.clone()));
        }
        if self.offset == 0 {
            return Err(FormatError::NotBgzf {
                path: path.to_owned(),
                reason: "the file is empty",
            });
        }
        if !self.pending.is_empty() {
            let of = match block_length(&self.pending) {
                Ok(BlockLength::Whole(length)) => format!(" of {length}"),
                _ => String::new(),
            };
            return Err(invalid(format!(
                "truncated: the stream ends {} bytes into BGZF block {}{of} (at byte {})",
                self.pending.len(),
                self.blocks + 1,
                self.offset
            )));
        }
        if !self.layer.ended {
            return Err(FormatError::MissingBgzfEof {
                path: path.to_owned(),
            });
        }
        match self.layer.unfinished() {
            Some(inside) => Err(invalid(format!(
                "truncated: the BGZF data ends inside {inside}"
            ))),
            None => Ok(self.layer.counts),
        }
    }
}

fn pool_in_flight(inflate: &Inflate) -> usize {
    match inflate {
        Inflate::Pool(pool) => pool.in_flight.len(),
        Inflate::Here { .. } => 0,
    }
}

fn pool_workers(inflate: &Inflate) -> usize {
    match inflate {
        Inflate::Pool(pool) => pool.workers,
        Inflate::Here { .. } => 0,
    }
}

/// What the bytes of the BAM layer being gathered in `gathered` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Field {
    /// `magic` and `l_text`.
    #[default]
    Magic,
    /// `n_ref`.
    ReferenceCount,
    /// `l_name` of a reference; this many references remain after it.
    ReferenceName { after: u32 },
    /// The first [`RECORD_PREFIX`] bytes of a record.
    Record,
}

impl Field {
    fn length(self) -> usize {
        match self {
            Field::Magic => 8,
            Field::ReferenceCount | Field::ReferenceName { .. } => 4,
            Field::Record => RECORD_PREFIX,
        }
    }
}

/// The BAM layer: the data of the blocks, in order.
#[derive(Debug, Default)]
struct BamLayer {
    /// Bytes still to skip (header text, reference entries, the rest of a record).
    skip: u64,
    /// The field being gathered, and how much of it is there.
    field: Field,
    gathered: [u8; RECORD_PREFIX],
    gathered_length: usize,
    counts: BamRecordCounts,
    /// Whether the last block read was the EOF marker block.
    ended: bool,
}

impl BamLayer {
    /// Reads the next bytes of data; the first problem found.
    fn read(&mut self, data: &[u8]) -> Result<(), String> {
        let mut at = 0usize;
        while at < data.len() {
            if self.skip > 0 {
                let left = (data.len() - at) as u64;
                if self.skip >= left {
                    self.skip -= left;
                    return Ok(());
                }
                at += self.skip as usize;
                self.skip = 0;
            }
            if self.field == Field::Record && self.gathered_length == 0 {
                // Whole record prefixes straight from the data.
                while data.len() - at >= RECORD_PREFIX {
                    let prefix = &data[at..at + RECORD_PREFIX];
                    let block_size =
                        u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                    if block_size < MIN_BLOCK_SIZE {
                        return Err(self.bad_record(block_size));
                    }
                    self.counts
                        .add(u16::from_le_bytes([prefix[18], prefix[19]]));
                    let end = at as u64 + 4 + u64::from(block_size);
                    if end > data.len() as u64 {
                        self.skip = end - data.len() as u64;
                        return Ok(());
                    }
                    at = end as usize;
                }
                if at == data.len() {
                    return Ok(());
                }
            }
            let wanted = self.field.length();
            let take = (wanted - self.gathered_length).min(data.len() - at);
            self.gathered[self.gathered_length..self.gathered_length + take]
                .copy_from_slice(&data[at..at + take]);
            self.gathered_length += take;
            at += take;
            if self.gathered_length == wanted {
                self.gathered_length = 0;
                self.field_done()?;
            }
        }
        Ok(())
    }

    /// Acts on a whole field in `gathered`.
    fn field_done(&mut self) -> Result<(), String> {
        let word = |at: usize| {
            u32::from_le_bytes([
                self.gathered[at],
                self.gathered[at + 1],
                self.gathered[at + 2],
                self.gathered[at + 3],
            ])
        };
        match self.field {
            Field::Magic => {
                if self.gathered[..4] != *b"BAM\x01" {
                    return Err("not BAM: the data does not start with BAM\\1".to_owned());
                }
                self.skip = u64::from(word(4));
                self.field = Field::ReferenceCount;
            }
            Field::ReferenceCount => {
                self.field = match word(0) {
                    0 => Field::Record,
                    count => Field::ReferenceName { after: count - 1 },
                };
            }
            Field::ReferenceName { after } => {
                // The name, then `l_ref`.
                self.skip = u64::from(word(0)) + 4;
                self.field = match after {
                    0 => Field::Record,
                    after => Field::ReferenceName { after: after - 1 },
                };
            }
            Field::Record => {
                let block_size = word(0);
                if block_size < MIN_BLOCK_SIZE {
                    return Err(self.bad_record(block_size));
                }
                self.counts
                    .add(u16::from_le_bytes([self.gathered[18], self.gathered[19]]));
                self.skip = u64::from(block_size) + 4 - RECORD_PREFIX as u64;
            }
        }
        Ok(())
    }

    fn bad_record(&self, block_size: u32) -> String {
        format!(
            "record {}: block_size {block_size} is below the {MIN_BLOCK_SIZE} bytes of fixed \
             fields",
            self.counts.records + 1
        )
    }

    /// What the data stopped inside of, if not between records.
    fn unfinished(&self) -> Option<String> {
        // Until the first record is counted, what is skipped belongs to the header.
        if self.field != Field::Record || (self.skip > 0 && self.counts.records == 0) {
            Some("the BAM header".to_owned())
        } else if self.gathered_length > 0 {
            Some(format!("record {}", self.counts.records + 1))
        } else if self.skip > 0 {
            Some(format!("record {}", self.counts.records))
        } else {
            None
        }
    }
}
