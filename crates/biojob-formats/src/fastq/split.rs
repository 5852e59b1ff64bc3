//! Splitting a FASTQ pair into chunks of read pairs, mates kept together.
//!
//! One pass: each file is read and checked by its own thread (the checks and mate comparison
//! of [`super::stream_fastq_pair`]), which cuts its records into members of about 1 MiB, each
//! the records of one chunk; a pool of threads compresses the members, and one writer thread
//! per file appends them, in input order, to their chunk's gzip file (each chunk a multi-member
//! gzip, as pigz and BGZF write: RFC 1952 section 2.2, read by zlib's `gzread` in bwa and by
//! every gzip reader). The chunks are files ([`split_fastq_pair`]) or objects uploaded in parts
//! as they are compressed ([`split_fastq_pair_to_store`]).

use std::io::{self, Write};
use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

use biojob_storage::{ObjectStore, ObjectUri, ObjectWriter, StreamFailure, TransferReport};
use camino::{Utf8Path, Utf8PathBuf};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::input::{FastqSource, IO_BUFFER_BYTES};
use super::record::RecordView;
use super::{RecordSink, read_pair};
use crate::FastqError;

/// One chunk of a FASTQ pair, as [`split_fastq_pair`] wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastqChunk {
    /// Position of the chunk in the input, 0-based.
    pub index: usize,
    /// Its read 1 file, gzip.
    pub fastq_1: Utf8PathBuf,
    /// Its read 2 file, gzip.
    pub fastq_2: Utf8PathBuf,
    /// Read pairs in the chunk.
    pub pairs: u64,
    /// Bases in the chunk, both mates.
    pub bases: u64,
}

/// One chunk of a FASTQ pair, as [`split_fastq_pair_to_store`] uploaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    /// Position of the chunk in the input, 0-based.
    pub index: usize,
    /// Its read 1 and read 2 objects.
    pub uris: [ObjectUri; 2],
    /// Their uploads, verified (size, SHA-256, the checksum the store holds).
    pub transfers: [TransferReport; 2],
    /// Read pairs in the chunk.
    pub pairs: u64,
    /// Bases in the chunk, both mates.
    pub bases: u64,
}

/// Where and how [`split_fastq_pair_to_store`] uploads the chunks.
#[derive(Clone, Copy)]
pub struct StoreSplitRequest<'a> {
    /// The layout, the chunk names' prefix, the threads and the stop, as for
    /// [`split_fastq_pair`]; `dir` is where parts waiting to be sent are spooled.
    pub split: SplitRequest<'a>,
    /// The store of `prefix`.
    pub store: &'a dyn ObjectStore,
    /// Where the chunks go: `<prefix>/<name>` ([`fastq_chunk_names`]).
    pub prefix: &'a ObjectUri,
    /// Where a failed transfer keeps its error: the split then fails with
    /// [`FastqError::Write`] carrying its text, and the caller takes the typed error here.
    pub failure: &'a StreamFailure,
}

impl std::fmt::Debug for StoreSplitRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSplitRequest")
            .field("split", &self.split)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The file names of chunk `index`: `{prefix}.{index:04}_R1.fastq.gz` and `_R2`.
pub fn fastq_chunk_names(prefix: &str, index: usize) -> (String, String) {
    (
        format!("{prefix}.{index:04}_R1.fastq.gz"),
        format!("{prefix}.{index:04}_R2.fastq.gz"),
    )
}

/// Which chunk each read pair goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkLayout {
    /// Consecutive chunks of `chunk_pairs` read pairs (the last chunk holds the rest): pair `i`
    /// (0-based) goes to chunk `i / chunk_pairs`. The number of chunks follows from the input.
    Consecutive {
        /// Read pairs per chunk.
        chunk_pairs: NonZeroU64,
    },
    /// Exactly `chunks` chunks, made of blocks of `block_pairs` read pairs dealt in turn: block
    /// `k` (pairs `k × block_pairs` to `(k + 1) × block_pairs - 1`) goes to chunk
    /// `k mod chunks`, so the number of chunks is known before the input is read (a state
    /// machine maps over it) while each chunk is still made of whole blocks.
    InTurn {
        /// Read pairs per block.
        block_pairs: NonZeroU64,
        /// Chunks to deal the blocks into.
        chunks: NonZeroUsize,
    },
}

impl ChunkLayout {
    /// The chunk of pair `pair` (0-based).
    fn chunk_of(self, pair: u64) -> usize {
        let chunk = match self {
            ChunkLayout::Consecutive { chunk_pairs } => pair / chunk_pairs.get(),
            ChunkLayout::InTurn {
                block_pairs,
                chunks,
            } => (pair / block_pairs.get()) % chunks.get() as u64,
        };
        usize::try_from(chunk).unwrap_or(usize::MAX)
    }
}

/// Where and how [`split_fastq_pair`] writes the chunks.
#[derive(Clone, Copy)]
pub struct SplitRequest<'a> {
    /// Which chunk each pair goes to.
    pub layout: ChunkLayout,
    /// The directory the chunk files are written to (it must exist).
    pub dir: &'a Utf8Path,
    /// The chunk file names' prefix ([`fastq_chunk_names`]).
    pub prefix: &'a str,
    /// The number in the name of the first chunk: chunk `i` (0-based position) is named
    /// `first_chunk + i` (0 for a whole sample's pair; a cohort lane's first chunk number
    /// among its sample's chunks).
    pub first_chunk: usize,
    /// Compression threads, shared by both files (besides one reading and one writing thread
    /// per file).
    pub threads: NonZeroUsize,
    /// Asked before each member (about every 1 MiB of records): `true` stops the split with
    /// [`FastqError::Write`] of kind `Interrupted` (a SIGTERM, a time limit).
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl std::fmt::Debug for SplitRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitRequest")
            .field("layout", &self.layout)
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("first_chunk", &self.first_chunk)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// The gzip level of chunk files: 2, zlib-rs's fastest level that builds Huffman codes for the
/// data (its level 1, like zlib-ng's, uses the fixed codes and leaves FASTQ about 1.8 times
/// larger: 2.65 against 4.8 for simulated 150-base reads).
const CHUNK_GZIP_LEVEL: u32 = 2;

/// Uncompressed bytes per gzip member: 1 MiB (the member ends early where the next record
/// goes to another chunk).
const MEMBER_BYTES: usize = IO_BUFFER_BYTES;

/// Splits a FASTQ pair into chunks laid out by `request.layout`, written in one streaming pass
/// into `request.dir` as gzip files named by [`fastq_chunk_names`]: the names depend only on
/// the prefix and the chunk's position (from `request.first_chunk`), so the same input always
/// gives the same chunks.
///
/// Record `i` of R1 and record `i` of R2 always land in the same chunk at the same position;
/// records are copied byte for byte (a missing final newline added). Each record gets the
/// checks of [`super::stream_fastq_pair`] (structure, lengths, Phred+33 qualities), mate names
/// must agree record by record, and the files must have the same number of records, at least
/// one. The sources may be files or streams (an object read from S3 as it downloads).
///
/// Chunk files are gzip at level 2 (fast: they are read once, by the aligner), compressed by
/// `request.threads` threads as independent members of about 1 MiB. Each is written under a
/// `.partial` name and renamed when the whole pair has been read and checked; after an error,
/// nothing is left (partial and renamed chunk files are removed). Memory is bounded: about
/// 4 MiB per compression thread plus the readers' buffers, whatever the input size.
///
/// # Errors
/// [`FastqError::Open`], [`FastqError::UnsupportedCompression`], [`FastqError::InvalidRecord`],
/// [`FastqError::Gzip`], [`FastqError::Read`] for the inputs; [`FastqError::MateMismatch`],
/// [`FastqError::CountMismatch`], [`FastqError::Empty`] for the pair;
/// [`FastqError::TooFewBlocks`] when an [`ChunkLayout::InTurn`] chunk would be empty;
/// [`FastqError::Write`] (naming the input whose chunk failed) when a chunk cannot be written.
pub fn split_fastq_pair(
    source_1: FastqSource,
    source_2: FastqSource,
    request: &SplitRequest<'_>,
) -> Result<Vec<FastqChunk>, FastqError> {
    let targets = [1, 2].map(|mate| ChunkFiles {
        dir: request.dir.to_owned(),
        prefix: request.prefix.to_owned(),
        first: request.first_chunk,
        mate,
        partials: Vec::new(),
        current: None,
    });
    match split_into(source_1, source_2, request, targets) {
        Ok(chunks) => Ok(chunks
            .into_iter()
            .map(|chunk| FastqChunk {
                index: chunk.index,
                fastq_1: chunk.mates[0].clone(),
                fastq_2: chunk.mates[1].clone(),
                pairs: chunk.pairs,
                bases: chunk.bases,
            })
            .collect()),
        Err(failure) => {
            for path in failure.finished {
                // Nothing of a failed split stays; the split's own error is the one to report.
                let _ = std::fs::remove_file(path);
            }
            Err(failure.error)
        }
    }
}

/// Splits a FASTQ pair as [`split_fastq_pair`] does, uploading each chunk to
/// `<request.prefix>/<name>` while it is compressed ([`ObjectStore::create`]): no chunk is ever
/// whole in scratch. Each file's writer appends its members to the chunk's object; when the
/// blocks move on to another chunk, the chunk left is paused ([`ObjectWriter::pause`]), so
/// scratch holds, per chunk file, less than the smallest part the store accepts (S3: 5 MiB),
/// plus the parts of the two files being written and those in flight.
///
/// The objects appear only once the whole pair has been read and checked and every part of
/// every chunk is stored: then each is completed in turn and verified (size, checksum). A
/// split that fails before leaves nothing under the prefix (each object's upload is
/// aborted); one whose completion fails midway leaves the chunks completed before it (a
/// retry of the job writes them again).
///
/// # Errors
/// As [`split_fastq_pair`]; a failed transfer is [`FastqError::Write`] with the transfer's
/// text, its typed error kept in `request.failure`.
pub fn split_fastq_pair_to_store(
    source_1: FastqSource,
    source_2: FastqSource,
    request: &StoreSplitRequest<'_>,
) -> Result<Vec<StoredChunk>, FastqError> {
    let path_1 = source_1.path().to_owned();
    let targets = [1, 2].map(|mate| ChunkObjects {
        store: request.store,
        prefix: request.prefix,
        names: request.split.prefix.to_owned(),
        first: request.split.first_chunk,
        mate,
        spool: request.split.dir.to_owned(),
        failure: request.failure.clone(),
        writers: Vec::new(),
        current: None,
    });
    // Dropping the pending objects of a failed split aborts their uploads.
    let chunks =
        split_into(source_1, source_2, &request.split, targets).map_err(|failure| failure.error)?;
    let records = chunks.iter().map(|chunk| chunk.pairs).sum();
    let mut stored = Vec::with_capacity(chunks.len());
    let mut pending = chunks.into_iter();
    while let Some(chunk) = pending.next() {
        let [mate_1, mate_2] = chunk.mates;
        let uris = [mate_1.uri.clone(), mate_2.uri.clone()];
        let completed = mate_1
            .writer
            .complete()
            .and_then(|first| Ok([first, mate_2.writer.complete()?]));
        match completed {
            Ok(transfers) => stored.push(StoredChunk {
                index: chunk.index,
                uris,
                transfers,
                pairs: chunk.pairs,
                bases: chunk.bases,
            }),
            Err(error) => {
                // The chunks not completed yet are aborted as `pending` drops.
                drop(pending);
                return Err(FastqError::Write {
                    path: path_1,
                    records,
                    source: request.failure.record(error),
                });
            }
        }
    }
    tracing::info!(
        prefix = %request.prefix,
        chunks = stored.len(),
        bytes = stored
            .iter()
            .flat_map(|chunk| &chunk.transfers)
            .map(|transfer| transfer.bytes)
            .sum::<u64>(),
        "FASTQ chunks uploaded"
    );
    Ok(stored)
}

/// A chunk both files' targets finished, with its counts.
struct Finished<C> {
    index: usize,
    mates: [C; 2],
    pairs: u64,
    bases: u64,
}

/// A failed split: its error, and what the targets finished before it (one file's target
/// may finish while the other fails), for the caller to take back.
struct SplitFailure<C> {
    error: FastqError,
    finished: Vec<C>,
}

/// What [`split_into`] gives: every chunk, or the failure.
type SplitOutcome<C> = Result<Vec<Finished<C>>, Box<SplitFailure<C>>>;

/// The split into `targets` (read 1's, read 2's).
fn split_into<T: ChunkTarget>(
    source_1: FastqSource,
    source_2: FastqSource,
    request: &SplitRequest<'_>,
    targets: [T; 2],
) -> SplitOutcome<T::Chunk> {
    let path_1 = source_1.path().to_owned();
    let (jobs, job_queue) = mpsc::channel::<Job>();
    let job_queue = Arc::new(Mutex::new(job_queue));
    let workers: Vec<JoinHandle<()>> = (0..request.threads.get())
        .map(|_| {
            let queue = Arc::clone(&job_queue);
            std::thread::spawn(move || compress_members(&queue))
        })
        .collect();
    // Only the workers hold the queue: if they all stopped, queued members are dropped and
    // their writers see it, instead of waiting for ever.
    drop(job_queue);
    let mut written_1 = None;
    let mut written_2 = None;
    let [target_1, target_2] = targets;
    let result = std::thread::scope(|scope| {
        read_pair(
            source_1,
            source_2,
            ChunkSink::new(scope, target_1, request, jobs.clone(), &mut written_1),
            ChunkSink::new(scope, target_2, request, jobs, &mut written_2),
            true,
            None,
        )
    });
    for worker in workers {
        // A worker only stops when the queue closes; a panic surfaced as a failed member.
        let _ = worker.join();
    }
    let checked = result.and_then(|stats| {
        let (Some(mate_1), Some(mate_2)) = (&written_1, &written_2) else {
            return Err(FastqError::Empty {
                path: path_1.clone(),
            });
        };
        if let ChunkLayout::InTurn {
            block_pairs,
            chunks,
        } = request.layout
            && (mate_1.len() < chunks.get() || mate_2.len() < chunks.get())
        {
            return Err(FastqError::TooFewBlocks {
                path: path_1.clone(),
                pairs: stats.pairs,
                chunks: chunks.get(),
                block_pairs: block_pairs.get(),
            });
        }
        tracing::info!(
            fastq_1 = %path_1,
            pairs = stats.pairs,
            chunks = mate_1.len(),
            threads = request.threads.get(),
            "FASTQ pair split"
        );
        Ok(())
    });
    match (checked, written_1, written_2) {
        (Ok(()), Some(mate_1), Some(mate_2)) => Ok(mate_1
            .into_iter()
            .zip(mate_2)
            .enumerate()
            .map(|(index, (first, second))| Finished {
                index,
                pairs: first.records,
                bases: first.bases + second.bases,
                mates: [first.chunk, second.chunk],
            })
            .collect()),
        (checked, written_1, written_2) => {
            let finished = [written_1, written_2]
                .into_iter()
                .flatten()
                .flatten()
                .map(|written| written.chunk)
                .collect();
            let error = checked.err().unwrap_or(FastqError::Empty { path: path_1 });
            Err(Box::new(SplitFailure { error, finished }))
        }
    }
}

/// One member to compress, and where to send it compressed.
struct Job {
    data: Vec<u8>,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

/// A compression thread: gzips members until the queue closes.
fn compress_members(queue: &Mutex<Receiver<Job>>) {
    loop {
        // A worker that panicked holding the lock poisons it; the queue itself is intact.
        let job = queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv();
        let Ok(job) = job else {
            return;
        };
        let mut encoder = GzEncoder::new(
            Vec::with_capacity(job.data.len() / 3),
            Compression::new(CHUNK_GZIP_LEVEL),
        );
        let member = encoder.write_all(&job.data).and_then(|()| encoder.finish());
        // The writer may have gone after an error; the member is then not needed.
        let _ = job.reply.send(member);
    }
}

/// What one file's writer thread is told, in input order.
enum Member {
    /// Append the member coming on this channel to chunk `chunk`.
    Append {
        chunk: usize,
        member: Receiver<io::Result<Vec<u8>>>,
    },
    /// The file was read to its end and checked: finish the chunks.
    Finish,
}

/// Where one file's chunks go, member by member in input order: files or objects. Its writer
/// thread calls `append` for each member, then `finish` once the file was read and checked,
/// or `discard` after a failure.
trait ChunkTarget: Send {
    /// A finished chunk: a renamed file, an object whose parts are all stored.
    type Chunk: Send;

    /// Appends a gzip member to chunk `chunk`.
    fn append(&mut self, chunk: usize, member: &[u8]) -> io::Result<()>;

    /// Finishes every chunk written to and returns them in chunk order; a chunk with no
    /// member (possible only for the in-turn layout with too few blocks) is left out, which
    /// the caller reports. On failure, what it finished is taken back.
    fn finish(&mut self) -> io::Result<Vec<Self::Chunk>>;

    /// Drops what was written.
    fn discard(&mut self);
}

/// A file's writer thread: appends members in order until `Finish` (then finishes the
/// chunks) or until the queue closes or an append fails (then discards them).
fn write_members<T: ChunkTarget>(
    mut target: T,
    queue: &Receiver<Member>,
) -> io::Result<Vec<T::Chunk>> {
    let result = (|| loop {
        match queue.recv() {
            Ok(Member::Append { chunk, member }) => {
                let bytes = member.recv().map_err(|_| {
                    io::Error::other("a compression thread stopped before its member")
                })??;
                target.append(chunk, &bytes)?;
            }
            Ok(Member::Finish) => return target.finish(),
            Err(_) => return Err(io::Error::other("the split was abandoned")),
        }
    })();
    if result.is_err() {
        target.discard();
    }
    result
}

/// One chunk of one file, as its target finished it.
struct WrittenChunk<C> {
    chunk: C,
    records: u64,
    bases: u64,
}

/// A file's writer thread: its queue of members, and its outcome (the finished chunks).
type WriterThread<'scope, C> = (
    SyncSender<Member>,
    ScopedJoinHandle<'scope, io::Result<Vec<C>>>,
);

/// The sink of one file's records: cuts them into members by chunk and hands the members to the
/// compression threads and, in order, to this file's writer thread.
struct ChunkSink<'a, 'scope, C> {
    layout: ChunkLayout,
    records: u64,
    /// The chunk of the records in `buffer`.
    chunk: usize,
    buffer: Vec<u8>,
    /// Records and bases per chunk.
    counts: Vec<(u64, u64)>,
    jobs: Sender<Job>,
    writer: Option<WriterThread<'scope, C>>,
    written: &'a mut Option<Vec<WrittenChunk<C>>>,
    stop: &'a (dyn Fn() -> bool + Sync),
}

impl<'a, 'scope, C: Send + 'scope> ChunkSink<'a, 'scope, C> {
    fn new<'env, T: ChunkTarget<Chunk = C> + 'scope>(
        scope: &'scope Scope<'scope, 'env>,
        target: T,
        request: &SplitRequest<'a>,
        jobs: Sender<Job>,
        written: &'a mut Option<Vec<WrittenChunk<C>>>,
    ) -> ChunkSink<'a, 'scope, C> {
        // Enough members in flight to keep every compression thread busy on either file.
        let (members, queue) = mpsc::sync_channel(2 * request.threads.get() + 2);
        let writer = scope.spawn(move || write_members(target, &queue));
        ChunkSink {
            layout: request.layout,
            records: 0,
            chunk: 0,
            buffer: Vec::with_capacity(MEMBER_BYTES + 4096),
            counts: Vec::new(),
            jobs,
            writer: Some((members, writer)),
            written,
            stop: request.stop,
        }
    }

    /// Sends the buffered records to be compressed and appended.
    fn flush_member(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if (self.stop)() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the split was stopped",
            ));
        }
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(MEMBER_BYTES + 4096));
        let (reply, member) = mpsc::sync_channel(1);
        let stopped = || io::Error::other("the chunk writer stopped");
        self.jobs
            .send(Job { data, reply })
            .map_err(|_| io::Error::other("the compression threads stopped"))?;
        let Some((members, _)) = &self.writer else {
            return Err(stopped());
        };
        if members
            .send(Member::Append {
                chunk: self.chunk,
                member,
            })
            .is_err()
        {
            // The writer failed: its error (a full disk, say) is the one to report.
            return Err(self.end_writer(false).err().unwrap_or_else(stopped));
        }
        Ok(())
    }

    /// Ends the writer thread: `Finish` when the pass completed, else just closing its queue
    /// (it then discards what it wrote). Returns the writer's outcome.
    fn end_writer(&mut self, finish: bool) -> io::Result<Vec<C>> {
        let Some((members, writer)) = self.writer.take() else {
            return Err(io::Error::other("the chunk writer already ended"));
        };
        let sent = !finish || members.send(Member::Finish).is_ok();
        drop(members);
        let outcome = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the chunk writer panicked")));
        if !sent && outcome.is_ok() {
            return Err(io::Error::other("the chunk writer stopped"));
        }
        outcome
    }
}

impl<'scope, C: Send + 'scope> RecordSink for ChunkSink<'_, 'scope, C> {
    fn write_record(&mut self, record: &RecordView<'_>) -> io::Result<()> {
        let chunk = self.layout.chunk_of(self.records);
        if chunk != self.chunk || self.buffer.len() >= MEMBER_BYTES {
            self.flush_member()?;
            self.chunk = chunk;
        }
        self.buffer.extend_from_slice(record.raw);
        if record.raw.last() != Some(&b'\n') {
            self.buffer.push(b'\n');
        }
        if self.counts.len() <= chunk {
            self.counts.resize(chunk + 1, (0, 0));
        }
        self.counts[chunk].0 += 1;
        self.counts[chunk].1 += record.bases;
        self.records += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        let flushed = self.flush_member();
        let chunks = self.end_writer(flushed.is_ok());
        flushed?;
        let chunks = chunks?;
        *self.written = Some(
            chunks
                .into_iter()
                .zip(&self.counts)
                .map(|(chunk, &(records, bases))| WrittenChunk {
                    chunk,
                    records,
                    bases,
                })
                .collect(),
        );
        Ok(())
    }

    fn abandon(mut self) {
        // The pass failed; the writer discards what it wrote and its outcome is moot.
        let _ = self.end_writer(false);
    }
}

/// One file's chunk files. Only the chunk being appended to is open (a chunk's file is
/// reopened to append when the blocks come back to it), so the number of chunks is not bound
/// by the limit on open files.
struct ChunkFiles {
    dir: Utf8PathBuf,
    prefix: String,
    /// The number in the first chunk's name.
    first: usize,
    mate: u8,
    /// The partial path of each chunk written to, by chunk index.
    partials: Vec<Option<Utf8PathBuf>>,
    /// The chunk whose file is open, and the file.
    current: Option<(usize, fs_err::File)>,
}

impl ChunkFiles {
    fn final_path(&self, chunk: usize) -> Utf8PathBuf {
        self.dir.join(mate_name(
            &fastq_chunk_names(&self.prefix, self.first + chunk),
            self.mate,
        ))
    }

    /// The open file of `chunk`: created on its first member, reopened to append after.
    fn file(&mut self, chunk: usize) -> io::Result<&mut fs_err::File> {
        if self.current.as_ref().is_none_or(|(open, _)| *open != chunk) {
            self.current = None;
            if self.partials.len() <= chunk {
                self.partials.resize(chunk + 1, None);
            }
            let file = match &self.partials[chunk] {
                Some(partial) => fs_err::OpenOptions::new()
                    .append(true)
                    .open(partial.as_std_path())?,
                None => {
                    let partial = Utf8PathBuf::from(format!("{}.partial", self.final_path(chunk)));
                    let file = fs_err::File::create(partial.as_std_path())?;
                    self.partials[chunk] = Some(partial);
                    file
                }
            };
            self.current = Some((chunk, file));
        }
        self.current
            .as_mut()
            .map(|(_, file)| file)
            .ok_or_else(|| io::Error::other("a chunk file was not opened"))
    }
}

impl ChunkTarget for ChunkFiles {
    type Chunk = Utf8PathBuf;

    fn append(&mut self, chunk: usize, member: &[u8]) -> io::Result<()> {
        self.file(chunk)?.write_all(member)
    }

    /// Syncs and renames every chunk file. When a sync or rename fails, the chunks renamed
    /// so far are removed again (the partial files by [`ChunkTarget::discard`]).
    fn finish(&mut self) -> io::Result<Vec<Utf8PathBuf>> {
        self.current = None;
        let mut paths = Vec::with_capacity(self.partials.len());
        let mut result = Ok(());
        for chunk in 0..self.partials.len() {
            let Some(partial) = self.partials[chunk].clone() else {
                continue;
            };
            let final_path = self.final_path(chunk);
            result = fs_err::OpenOptions::new()
                .append(true)
                .open(partial.as_std_path())
                .and_then(|file| file.sync_all())
                .and_then(|()| fs_err::rename(partial.as_std_path(), final_path.as_std_path()));
            if result.is_err() {
                break;
            }
            self.partials[chunk] = None;
            paths.push(final_path);
        }
        if let Err(error) = result {
            for path in paths {
                let _ = std::fs::remove_file(path);
            }
            return Err(error);
        }
        self.partials.clear();
        Ok(paths)
    }

    fn discard(&mut self) {
        self.current = None;
        for partial in self.partials.drain(..).flatten() {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// The name of `mate`'s file among a chunk's two names.
fn mate_name((name_1, name_2): &(String, String), mate: u8) -> &str {
    if mate == 1 { name_1 } else { name_2 }
}

/// An object of a chunk whose parts are all stored: completing it makes it appear.
struct PendingObject {
    uri: ObjectUri,
    writer: Box<dyn ObjectWriter>,
}

/// One file's chunk objects, each written as its members come ([`ObjectStore::create`]). The
/// writer of the chunk the blocks leave is paused, so it holds little while it waits for its
/// next block.
struct ChunkObjects<'a> {
    store: &'a dyn ObjectStore,
    prefix: &'a ObjectUri,
    /// The chunk names' prefix.
    names: String,
    /// The number in the first chunk's name.
    first: usize,
    mate: u8,
    spool: Utf8PathBuf,
    failure: StreamFailure,
    /// Each chunk's object, by chunk index.
    writers: Vec<Option<PendingObject>>,
    /// The chunk appended to last.
    current: Option<usize>,
}

impl ChunkObjects<'_> {
    /// The object of `chunk`: started on its first member.
    fn writer(&mut self, chunk: usize) -> io::Result<&mut Box<dyn ObjectWriter>> {
        if self.writers.len() <= chunk {
            self.writers.resize_with(chunk + 1, || None);
        }
        if self.writers[chunk].is_none() {
            let names = fastq_chunk_names(&self.names, self.first + chunk);
            let uri = self.prefix.join(mate_name(&names, self.mate));
            let writer = self
                .store
                .create(&uri, &self.spool)
                .map_err(|error| self.failure.record(error))?;
            self.writers[chunk] = Some(PendingObject { uri, writer });
        }
        self.writers[chunk]
            .as_mut()
            .map(|pending| &mut pending.writer)
            .ok_or_else(|| io::Error::other("a chunk object was not started"))
    }
}

impl ChunkTarget for ChunkObjects<'_> {
    type Chunk = PendingObject;

    fn append(&mut self, chunk: usize, member: &[u8]) -> io::Result<()> {
        if let Some(left) = self.current.filter(|&current| current != chunk)
            && let Some(Some(pending)) = self.writers.get_mut(left)
        {
            pending
                .writer
                .pause()
                .map_err(|error| self.failure.record(error))?;
        }
        self.current = Some(chunk);
        let failure = self.failure.clone();
        self.writer(chunk)?
            .write(member)
            .map_err(|error| failure.record(error))
    }

    /// Flushes every chunk's object (all its parts stored), not completing any.
    fn finish(&mut self) -> io::Result<Vec<PendingObject>> {
        let mut pending = Vec::with_capacity(self.writers.len());
        for mut object in self.writers.drain(..).flatten() {
            object
                .writer
                .flush()
                .map_err(|error| self.failure.record(error))?;
            pending.push(object);
        }
        Ok(pending)
    }

    fn discard(&mut self) {
        // Dropped, each writer aborts its upload.
        self.writers.clear();
    }
}
