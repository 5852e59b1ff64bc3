//! Splitting a FASTQ pair into chunks of read pairs, mates kept together.
//!
//! One pass: each file is read and checked by its own thread (the checks and mate comparison
//! of [`super::stream_fastq_pair`]), which cuts its records into members of about 1 MiB, each
//! the records of one chunk; a pool of threads compresses the members, and one writer thread
//! per file appends them, in input order, to their chunk's gzip file (each chunk a multi-member
//! gzip, as pigz and BGZF write: RFC 1952 section 2.2, read by zlib's `gzread` in bwa and by
//! every gzip reader).

use std::io::{self, Write};
use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
/// the prefix and the chunk's position, so the same input always gives the same chunks.
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
    let result = read_pair(
        source_1,
        source_2,
        ChunkSink::new(1, request, jobs.clone(), &mut written_1),
        ChunkSink::new(2, request, jobs, &mut written_2),
        true,
        None,
    );
    for worker in workers {
        // A worker only stops when the queue closes; a panic surfaced as a failed member.
        let _ = worker.join();
    }
    let mut written: Vec<Utf8PathBuf> = [&written_1, &written_2]
        .into_iter()
        .flatten()
        .flat_map(|mate| mate.iter().map(|chunk| chunk.path.clone()))
        .collect();
    let chunks = result.and_then(|stats| {
        let (Some(mate_1), Some(mate_2)) = (written_1, written_2) else {
            return Err(FastqError::Empty { path: path_1 });
        };
        if let ChunkLayout::InTurn {
            block_pairs,
            chunks,
        } = request.layout
            && mate_1.len() < chunks.get()
        {
            return Err(FastqError::TooFewBlocks {
                path: path_1,
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
        Ok(mate_1
            .into_iter()
            .zip(mate_2)
            .enumerate()
            .map(|(index, (first, second))| FastqChunk {
                index,
                fastq_1: first.path,
                fastq_2: second.path,
                pairs: first.records,
                bases: first.bases + second.bases,
            })
            .collect::<Vec<_>>())
    });
    if chunks.is_ok() {
        written.clear();
    }
    for path in written {
        // Nothing of a failed split stays; the split's own error is the one to report.
        let _ = std::fs::remove_file(path);
    }
    chunks
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
    /// The file was read to its end and checked: complete and rename the chunk files.
    Finish,
}

/// One chunk's file of one mate, as written.
#[derive(Debug)]
struct WrittenChunk {
    path: Utf8PathBuf,
    records: u64,
    bases: u64,
}

/// A file's writer thread: its queue of members, and its outcome (the renamed chunk files).
type WriterThread = (SyncSender<Member>, JoinHandle<io::Result<Vec<Utf8PathBuf>>>);

/// The sink of one file's records: cuts them into members by chunk and hands the members to the
/// compression threads and, in order, to this file's writer thread.
struct ChunkSink<'a> {
    layout: ChunkLayout,
    records: u64,
    /// The chunk of the records in `buffer`.
    chunk: usize,
    buffer: Vec<u8>,
    /// Records and bases per chunk.
    counts: Vec<(u64, u64)>,
    jobs: Sender<Job>,
    writer: Option<WriterThread>,
    written: &'a mut Option<Vec<WrittenChunk>>,
    stop: &'a (dyn Fn() -> bool + Sync),
}

impl<'a> ChunkSink<'a> {
    fn new(
        mate: u8,
        request: &SplitRequest<'a>,
        jobs: Sender<Job>,
        written: &'a mut Option<Vec<WrittenChunk>>,
    ) -> ChunkSink<'a> {
        // Enough members in flight to keep every compression thread busy on either file.
        let (members, queue) = mpsc::sync_channel(2 * request.threads.get() + 2);
        let files = ChunkFiles {
            dir: request.dir.to_owned(),
            prefix: request.prefix.to_owned(),
            mate,
            partials: Vec::new(),
            current: None,
        };
        let writer = std::thread::spawn(move || files.write(&queue));
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
    /// (it then removes its partial files). Returns the writer's outcome.
    fn end_writer(&mut self, finish: bool) -> io::Result<Vec<Utf8PathBuf>> {
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

impl RecordSink for ChunkSink<'_> {
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
        let paths = self.end_writer(flushed.is_ok());
        flushed?;
        let paths = paths?;
        *self.written = Some(
            paths
                .into_iter()
                .zip(&self.counts)
                .map(|(path, &(records, bases))| WrittenChunk {
                    path,
                    records,
                    bases,
                })
                .collect(),
        );
        Ok(())
    }

    fn abandon(mut self) {
        // The pass failed; the writer removes its partial files and its outcome is moot.
        let _ = self.end_writer(false);
    }
}

/// One file's chunk files. Only the chunk being appended to is open (a chunk's file is
/// reopened to append when the blocks come back to it), so the number of chunks is not bound
/// by the limit on open files.
struct ChunkFiles {
    dir: Utf8PathBuf,
    prefix: String,
    mate: u8,
    /// The partial path of each chunk written to, by chunk index.
    partials: Vec<Option<Utf8PathBuf>>,
    /// The chunk whose file is open, and the file.
    current: Option<(usize, fs_err::File)>,
}

impl ChunkFiles {
    fn final_path(&self, chunk: usize) -> Utf8PathBuf {
        let (name_1, name_2) = fastq_chunk_names(&self.prefix, chunk);
        self.dir.join(if self.mate == 1 { name_1 } else { name_2 })
    }

    /// The writer thread: appends members in order until `Finish` (then renames the chunks and
    /// returns their paths, in chunk order) or until the queue closes or a write fails (then
    /// removes the partial files).
    fn write(mut self, queue: &Receiver<Member>) -> io::Result<Vec<Utf8PathBuf>> {
        let result = self.append_all(queue);
        if result.is_err() {
            self.current = None;
            for partial in self.partials.drain(..).flatten() {
                let _ = std::fs::remove_file(partial);
            }
        }
        result
    }

    fn append_all(&mut self, queue: &Receiver<Member>) -> io::Result<Vec<Utf8PathBuf>> {
        loop {
            match queue.recv() {
                Ok(Member::Append { chunk, member }) => {
                    let bytes = member.recv().map_err(|_| {
                        io::Error::other("a compression thread stopped before its member")
                    })??;
                    self.file(chunk)?.write_all(&bytes)?;
                }
                Ok(Member::Finish) => return self.complete(),
                Err(_) => return Err(io::Error::other("the split was abandoned")),
            }
        }
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

    /// Syncs and renames every chunk file; a chunk with no member (possible only for the
    /// in-turn layout with too few blocks) is left out, which the caller reports. When a sync
    /// or rename fails, the chunks renamed so far are removed again (the partial files are
    /// removed by [`ChunkFiles::write`]).
    fn complete(&mut self) -> io::Result<Vec<Utf8PathBuf>> {
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
}
