//! Streamed reads of S3 objects ([`biojob_storage::ObjectStore::open`]): ranged `GET`s of
//! [`STREAM_WINDOW`] bytes fetched ahead in order, verified against the size and stored
//! checksum as the bytes are read; and of byte ranges of an object
//! ([`biojob_storage::ObjectStore::open_ranges`]) the same way, verified against their length.

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use biojob_storage::{
    Direction, ObjectMeta, ObjectReader, ObjectUri, StorageError, StreamFailure, check_ranges,
};
use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{info, warn};

use crate::MIB;
use crate::checksum::{Running, Stored};
use crate::client::{Inner, Object, Pinned, length};
use crate::head::stored_checksum;
use crate::parts::fixed_ranges;
use crate::ranged::read_body;
use crate::retry::{Fault, join_error};

/// Bytes per ranged `GET` of a streamed read: 4 MiB.
pub const STREAM_WINDOW: u64 = 4 * MIB;

/// Windows fetched ahead of the reader, at most: with [`STREAM_WINDOW`], a streamed read holds
/// at most `(STREAM_READ_AHEAD + 2) × 4 MiB` (the windows in flight, one waiting, one being
/// read) = 24 MiB.
pub const STREAM_READ_AHEAD: usize = 4;

/// Opens `uri` for a streamed read: `HEAD` for the size, ETag and stored checksum (and the
/// part boundaries of a composite checksum), then a task on the store's runtime that fetches
/// the windows in order, `min(concurrency, STREAM_READ_AHEAD)` at once, each pinned to the
/// ETag and retried like a download's parts.
pub(crate) async fn open(inner: Arc<Inner>, object: Object) -> Result<ObjectReader, StorageError> {
    let uri = object.uri.clone();
    let head = inner
        .head_object(&object, None, Direction::Get)
        .await?
        .ok_or_else(|| StorageError::NotFound { uri: uri.clone() })?;
    let size = length(head.content_length());
    let check = match stored_checksum(&head) {
        None => {
            warn!(
                uri,
                "S3 holds no checksum for this object; a streamed read verifies its size only"
            );
            Check::Size
        }
        Some(stored) => match stored.parts {
            None => Check::Whole {
                running: Running::new(Some(stored.algorithm)),
                stored,
            },
            Some(parts) => Check::Composite {
                boundaries: inner
                    .part_ranges(&object, &head, size, parts)
                    .await?
                    .into_iter()
                    .map(|(offset, length)| offset + length)
                    .collect(),
                running: Running::new(Some(stored.algorithm)),
                digests: Vec::new(),
                stored,
            },
        },
    };
    let pinned = Pinned {
        object,
        etag: head.e_tag().map(str::to_owned),
    };
    Ok(start(
        inner,
        pinned,
        fixed_ranges(size, STREAM_WINDOW),
        size,
        check,
    ))
}

/// Opens byte `ranges` of `uri` for a streamed read of their bytes in turn
/// ([`biojob_storage::ObjectStore::open_ranges`]): no `HEAD`, the object is the one `meta`
/// describes; each range is fetched in windows of at most [`STREAM_WINDOW`], fetched ahead as
/// [`open`] does, each pinned to `meta.version` (the ETag) and retried like a download's
/// parts. The stream is verified against its length only (no stored checksum covers part
/// of an object).
pub(crate) async fn open_ranges(
    inner: Arc<Inner>,
    object: Object,
    uri: &ObjectUri,
    meta: &ObjectMeta,
    ranges: &[Range<u64>],
) -> Result<ObjectReader, StorageError> {
    let total = check_ranges(uri, meta.size, ranges)?;
    let windows = ranges
        .iter()
        .flat_map(|range| {
            fixed_ranges(range.end - range.start, STREAM_WINDOW)
                .into_iter()
                .map(move |(offset, length)| (range.start + offset, length))
        })
        .collect();
    let pinned = Pinned {
        object,
        etag: meta.version.clone(),
    };
    Ok(start(inner, pinned, windows, total, Check::Size))
}

/// Starts the task that fetches `windows` of `pinned` ahead of the reader, and returns the
/// reader of their `size` bytes, verified by `check` at the end.
fn start(
    inner: Arc<Inner>,
    pinned: Pinned,
    windows: Vec<(u64, u64)>,
    size: u64,
    check: Check,
) -> ObjectReader {
    let read_ahead = inner.options.concurrency.clamp(1, STREAM_READ_AHEAD);
    let (sender, receiver) = mpsc::channel(1);
    let uri = pinned.object.uri.clone();
    let producer = tokio::spawn(fetch_in_order(
        Arc::clone(&inner),
        pinned,
        windows,
        read_ahead,
        sender,
    ));
    let failure = StreamFailure::default();
    let stream = S3Stream {
        inner,
        uri,
        size,
        position: 0,
        receiver,
        current: Bytes::new(),
        check: Some(check),
        failed: false,
        failure: failure.clone(),
        producer: producer.abort_handle(),
        started: Instant::now(),
    };
    ObjectReader::new(Box::new(stream), size, failure)
}

/// Fetches `windows` in order, `read_ahead` at once, and sends each (or the first failure) to
/// the reader; stops when the reader is gone.
async fn fetch_in_order(
    inner: Arc<Inner>,
    pinned: Pinned,
    windows: Vec<(u64, u64)>,
    read_ahead: usize,
    sender: mpsc::Sender<Result<Bytes, StorageError>>,
) {
    let mut pending: VecDeque<JoinHandle<Result<Bytes, StorageError>>> = VecDeque::new();
    let mut next = windows.into_iter();
    loop {
        while pending.len() < read_ahead {
            let Some((offset, length)) = next.next() else {
                break;
            };
            let (inner, pinned) = (Arc::clone(&inner), pinned.clone());
            pending.push_back(tokio::spawn(async move {
                fetch_window(&inner, &pinned, offset, length).await
            }));
        }
        let Some(window) = pending.pop_front() else {
            return;
        };
        let result = window
            .await
            .unwrap_or_else(|error| Err(join_error(error, &pinned.object.uri, Direction::Get)));
        let failed = result.is_err();
        if sender.send(result).await.is_err() || failed {
            for window in pending {
                window.abort();
            }
            return;
        }
    }
}

/// One window, whole, retried as a download's part is.
async fn fetch_window(
    inner: &Inner,
    pinned: &Pinned,
    offset: u64,
    length: u64,
) -> Result<Bytes, StorageError> {
    let what = format!("bytes {offset}+{length}");
    let capacity = usize::try_from(length).unwrap_or(0);
    inner
        .retrying("streaming", &pinned.object.uri, Direction::Get, || async {
            let body = inner.ranged_get(pinned, offset, length, &what).await?;
            let mut data = BytesMut::with_capacity(capacity);
            read_body(body, &what, offset, length, |chunk, _| {
                data.extend_from_slice(chunk);
                Ok::<(), Fault>(())
            })
            .await?;
            Ok(data.freeze())
        })
        .await
}

/// What a streamed read is verified against when its last byte has been read.
enum Check {
    /// No checksum stored: the size only.
    Size,
    /// A full-object checksum.
    Whole { stored: Stored, running: Running },
    /// A composite checksum over parts ending at `boundaries` (exclusive offsets).
    Composite {
        stored: Stored,
        boundaries: Vec<u64>,
        running: Running,
        digests: Vec<Vec<u8>>,
    },
}

impl Check {
    /// Adds the bytes at `position`.
    fn update(&mut self, mut data: &[u8], mut position: u64) {
        match self {
            Check::Size => {}
            Check::Whole { running, .. } => running.update(data),
            Check::Composite {
                stored,
                boundaries,
                running,
                digests,
            } => {
                while !data.is_empty() {
                    let end = boundaries.get(digests.len()).copied().unwrap_or(u64::MAX);
                    let take = usize::try_from(end.saturating_sub(position))
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    running.update(&data[..take]);
                    position += take as u64;
                    data = &data[take..];
                    if position == end {
                        let done = std::mem::replace(running, Running::new(Some(stored.algorithm)));
                        digests.push(done.finish());
                    }
                }
            }
        }
    }

    /// The mismatch, if the bytes read do not give the stored checksum.
    fn verify(self) -> Result<Option<String>, String> {
        let (stored, computed) = match self {
            Check::Size => return Ok(None),
            Check::Whole { stored, running } => {
                let computed = running.finish();
                (stored, computed)
            }
            Check::Composite {
                stored, digests, ..
            } => {
                let computed = stored.algorithm.composite(&digests);
                (stored, computed)
            }
        };
        if computed == stored.digest {
            return Ok(Some(stored.describe()));
        }
        let found = Stored {
            digest: computed,
            ..stored.clone()
        };
        Err(format!(
            "checksum mismatch: S3 holds {}, the bytes received give {}",
            stored.describe(),
            found.describe()
        ))
    }
}

/// The reader side of a streamed read.
struct S3Stream {
    /// The store (its runtime and stop).
    inner: Arc<Inner>,
    uri: String,
    size: u64,
    position: u64,
    receiver: mpsc::Receiver<Result<Bytes, StorageError>>,
    current: Bytes,
    /// `None` once verified (the end was reached) or failed.
    check: Option<Check>,
    failed: bool,
    failure: StreamFailure,
    producer: AbortHandle,
    started: Instant,
}

impl S3Stream {
    fn fail(&mut self, error: StorageError) -> std::io::Error {
        self.producer.abort();
        self.check = None;
        self.failed = true;
        self.failure.record(error)
    }

    /// Checks the size and checksum at the end of the object.
    fn finish(&mut self) -> std::io::Result<()> {
        let Some(check) = self.check.take() else {
            return Ok(());
        };
        let detail = if self.position == self.size {
            match check.verify() {
                Ok(checksum) => {
                    info!(
                        uri = self.uri,
                        bytes = self.size,
                        checksum,
                        seconds = self.started.elapsed().as_secs_f64(),
                        "streamed"
                    );
                    return Ok(());
                }
                Err(detail) => detail,
            }
        } else {
            format!(
                "the stream ended after {} of {} bytes",
                self.position, self.size
            )
        };
        let error = StorageError::Verification {
            uri: self.uri.clone(),
            direction: Direction::Get,
            detail,
        };
        Err(self.fail(error))
    }
}

impl Read for S3Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.current.is_empty() {
                let n = buf.len().min(self.current.len());
                buf[..n].copy_from_slice(&self.current[..n]);
                if let Some(check) = self.check.as_mut() {
                    check.update(&buf[..n], self.position);
                }
                self.current.advance(n);
                self.position += n as u64;
                return Ok(n);
            }
            if self.failed {
                return Err(std::io::Error::other(format!(
                    "{}: the streamed read failed earlier",
                    self.uri
                )));
            }
            if self.check.is_none() || buf.is_empty() {
                return Ok(0);
            }
            if tokio::runtime::Handle::try_current().is_ok() {
                return Err(std::io::Error::other(
                    "a streamed S3 read cannot wait inside an async runtime",
                ));
            }
            let received =
                match self
                    .inner
                    .wait("streaming", &self.uri, Direction::Get, self.receiver.recv())
                {
                    Ok(received) => received,
                    Err(error) => return Err(self.fail(error)),
                };
            match received {
                Some(Ok(window)) => self.current = window,
                Some(Err(error)) => return Err(self.fail(error)),
                None => {
                    self.finish()?;
                    return Ok(0);
                }
            }
        }
    }
}

impl Drop for S3Stream {
    fn drop(&mut self) {
        self.producer.abort();
    }
}
