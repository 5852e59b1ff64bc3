//! The storage trait and the scheme router.

use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use camino::Utf8Path;
use serde::Serialize;

use crate::{Direction, LocalStore, ObjectUri, StorageError};

/// What a store knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written (S3 `Last-Modified`, whole seconds; a file's
    /// modification time), when the store says.
    pub last_modified: Option<SystemTime>,
    /// An opaque tag that changes whenever the object is rewritten (S3's ETag); `None` for
    /// local files.
    pub version: Option<String>,
}

/// The outcome of a completed, verified transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// Bytes transferred.
    pub bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// The checksum the remote store holds for the object and that was verified against the
    /// bytes transferred, read back after an upload (`crc32c:BASE64`, `sha256:BASE64-N` for a
    /// composite checksum of N parts); `None` when the store keeps none (local files, whose
    /// SHA-256 is read back from the file written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Operations on objects, as the workflow's steps need them. Implementations must be safe to
/// call from several threads at once.
pub trait ObjectStore: Send + Sync {
    /// Metadata of the object at `uri`, or `None` when it does not exist.
    ///
    /// # Errors
    /// [`StorageError`] when the store cannot be asked.
    fn head(&self, uri: &ObjectUri) -> Result<Option<ObjectMeta>, StorageError>;

    /// Copies the object at `uri` to the local file `destination`, through
    /// `<destination>.partial`, renamed once complete and verified.
    ///
    /// # Errors
    /// [`StorageError::NotFound`], or a transfer/verification failure (input staging class).
    fn get(&self, uri: &ObjectUri, destination: &Utf8Path) -> Result<TransferReport, StorageError>;

    /// Copies the local file `source` to `uri`; the object appears under its final name only
    /// once complete.
    ///
    /// # Errors
    /// A transfer/verification failure (output staging class).
    fn put(&self, source: &Utf8Path, uri: &ObjectUri) -> Result<TransferReport, StorageError>;

    /// Opens the object at `uri` to be read once, from its first byte to its last, without a
    /// copy in scratch. The reader fails (an `io::Error`, the [`StorageError`] behind it kept
    /// in [`ObjectReader::failure`]) when the transfer fails or when the bytes read do not
    /// match the object's size or stored checksum; that check happens when the last byte has
    /// been read, so a caller must read to the end (a `read` returning 0) before trusting what
    /// it read, and must publish nothing before then.
    ///
    /// # Errors
    /// [`StorageError::NotFound`], or a failure to ask the store (input staging class).
    fn open(&self, uri: &ObjectUri) -> Result<ObjectReader, StorageError>;

    /// Opens the byte `ranges` of the object at `uri`, as `meta` (from [`ObjectStore::head`])
    /// describes it, to be read once as one stream: the bytes of each range in turn, without a
    /// copy in scratch. The ranges must be non-empty, in increasing order, not overlapping, and
    /// end within `meta.size`. The reader fails (as [`ObjectStore::open`]'s does, the error
    /// kept in [`ObjectReader::failure`]) when a range's bytes do not all arrive, or when the
    /// object is no longer the one `meta` describes (S3: every `GET` carries `If-Match` with
    /// `meta.version`). No stored checksum covers part of an object: the caller checks what it
    /// reads (e.g. each BGZF block's CRC32).
    ///
    /// # Errors
    /// [`StorageError::Verification`] when the ranges break the rules above or the object's
    /// size is no longer `meta.size`; [`StorageError::NotFound`]; a failure to ask the store
    /// (input staging class).
    fn open_ranges(
        &self,
        uri: &ObjectUri,
        meta: &ObjectMeta,
        ranges: &[Range<u64>],
    ) -> Result<ObjectReader, StorageError>;

    /// Starts writing the object at `uri` as its bytes are produced, without a whole copy in
    /// scratch: see [`ObjectWriter`]. Parts waiting to be sent are kept under `spool` (a
    /// directory of the job's scratch; it must exist), each removed once sent. Nothing
    /// appears under `uri` until [`ObjectWriter::complete`].
    ///
    /// # Errors
    /// A failure to start the object (output staging class).
    fn create(
        &self,
        uri: &ObjectUri,
        spool: &Utf8Path,
    ) -> Result<Box<dyn ObjectWriter>, StorageError>;

    /// Writes `contents` as the object at `uri` only when there is none: an atomic create
    /// (a local file opened with `O_CREAT | O_EXCL`; on S3 a `PutObject` with
    /// `If-None-Match: *`, RFC 9110 section 13.1.2). Returns `false`, writing nothing, when an
    /// object is already there.
    ///
    /// # Errors
    /// A failure to write (output staging class).
    fn create_new(&self, contents: &[u8], uri: &ObjectUri) -> Result<bool, StorageError>;

    /// Removes the object at `uri`; nothing happens when there is none.
    ///
    /// # Errors
    /// A failure to remove (output staging class).
    fn delete(&self, uri: &ObjectUri) -> Result<(), StorageError>;

    /// The names of the objects directly under `uri` taken as a directory (a local
    /// directory's entries that are not directories; on S3 the keys under `<key>/` up to the
    /// next `/`), sorted; empty when there is none.
    ///
    /// # Errors
    /// A failure to list (output staging class: the listings biojob makes are of its outputs).
    fn list(&self, uri: &ObjectUri) -> Result<Vec<String>, StorageError>;
}

/// An object being written by [`ObjectStore::create`]: bytes are appended with
/// [`ObjectWriter::write`], sent in parts as they accumulate (S3: a multipart upload, each
/// part with its checksum, a few in flight while more are written), and the object appears
/// under its URI only with [`ObjectWriter::complete`], verified. Dropped without `complete`,
/// it is aborted: nothing appears and its parts are discarded.
///
/// Scratch holds at most the part being filled and the parts in flight; a writer set aside
/// with [`ObjectWriter::pause`] holds less than the smallest part the store accepts.
pub trait ObjectWriter: Send {
    /// Appends `data`; a full part is sent (waiting while too many parts are in flight).
    ///
    /// # Errors
    /// The spool file cannot be written; an earlier part failed for good (output staging
    /// class, or usage when refused).
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError>;

    /// The caller will not write for a while (another object's turn): what is buffered is
    /// sent as a part when the store accepts a part that small (S3: at least 5 MiB; no
    /// limit for a local file), so that it no longer holds the space.
    ///
    /// # Errors
    /// As [`ObjectWriter::write`].
    fn pause(&mut self) -> Result<(), StorageError>;

    /// Sends what is buffered and waits until every part is stored: all that is left is to
    /// [`complete`](ObjectWriter::complete) the object, a single request. After it, only
    /// `complete` (or dropping the writer) is allowed.
    ///
    /// # Errors
    /// As [`ObjectWriter::write`].
    fn flush(&mut self) -> Result<(), StorageError>;

    /// Makes the object appear under its URI (flushing first if needed) and checks it: its
    /// size, and the checksum the store computed against the one sent.
    ///
    /// # Errors
    /// [`StorageError::Verification`] when the store holds other bytes; a failed request.
    fn complete(self: Box<Self>) -> Result<TransferReport, StorageError>;
}

/// Checks `ranges` against [`ObjectStore::open_ranges`]' rules for an object of `size` bytes;
/// returns the bytes they cover.
///
/// # Errors
/// [`StorageError::Verification`] naming the first range that breaks them.
pub fn check_ranges(
    uri: &ObjectUri,
    size: u64,
    ranges: &[Range<u64>],
) -> Result<u64, StorageError> {
    let mut previous_end = 0;
    let mut total = 0;
    for range in ranges {
        let problem = if range.start >= range.end {
            Some("is empty")
        } else if range.start < previous_end {
            Some("overlaps or precedes the range before it")
        } else if range.end > size {
            Some("ends beyond the object")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(StorageError::Verification {
                uri: uri.to_string(),
                direction: Direction::Get,
                detail: format!(
                    "the byte range {}..{} {problem} ({size} bytes)",
                    range.start, range.end
                ),
            });
        }
        previous_end = range.end;
        total += range.end - range.start;
    }
    Ok(total)
}

/// Where a streamed read keeps the [`StorageError`] that ended it: an `io::Error` can carry
/// only text through the readers stacked on top (a gzip decoder, a FASTQ parser), so the
/// caller takes the typed error from here to report it with its exit class.
#[derive(Debug, Clone, Default)]
pub struct StreamFailure(Arc<Mutex<Option<StorageError>>>);

impl StreamFailure {
    /// Keeps `error` (the first one kept wins) and returns the `io::Error` for the reader to
    /// return: its text is the error's.
    pub fn record(&self, error: StorageError) -> std::io::Error {
        let io = std::io::Error::other(error.to_string());
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(error);
        }
        io
    }

    /// The error that ended the read, if one did; taken once.
    pub fn take(&self) -> Option<StorageError> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// An object opened with [`ObjectStore::open`]: a `Read` from its first byte.
pub struct ObjectReader {
    reader: Box<dyn Read + Send>,
    failure: StreamFailure,
    size: u64,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ObjectReader {
    /// Wraps a store's reader of an object of `size` bytes; `failure` is where the reader
    /// records the error that ends it.
    pub fn new(reader: Box<dyn Read + Send>, size: u64, failure: StreamFailure) -> ObjectReader {
        ObjectReader {
            reader,
            failure,
            size,
        }
    }

    /// The object's size in bytes, as the store reported it when opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A handle on the error that ends the read (shared: it stays valid after the reader has
    /// been moved into a decoder).
    pub fn failure(&self) -> StreamFailure {
        self.failure.clone()
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

/// Picks the store for a URI: the local store for paths and `file://`, the S3 store (when one
/// was configured by the binary) for `s3://`.
#[derive(Clone)]
pub struct Stores {
    local: Arc<LocalStore>,
    s3: Option<Arc<dyn ObjectStore>>,
}

impl Default for Stores {
    fn default() -> Self {
        Stores::local_only()
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("s3", &self.s3.is_some())
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Only local paths; `s3://` URIs fail with [`StorageError::NoStore`].
    pub fn local_only() -> Self {
        Stores {
            local: Arc::new(LocalStore),
            s3: None,
        }
    }

    /// Local paths plus `s3://` through `s3`.
    pub fn with_s3(s3: Arc<dyn ObjectStore>) -> Self {
        Stores {
            local: Arc::new(LocalStore),
            s3: Some(s3),
        }
    }

    /// The store for `uri`.
    ///
    /// # Errors
    /// [`StorageError::NoStore`] for `s3://` when no S3 store was configured.
    pub fn for_uri(&self, uri: &ObjectUri) -> Result<&dyn ObjectStore, StorageError> {
        match uri {
            ObjectUri::Local(_) => Ok(self.local.as_ref()),
            ObjectUri::S3 { .. } => self.s3.as_deref().ok_or_else(|| StorageError::NoStore {
                uri: uri.to_string(),
                scheme: uri.scheme(),
            }),
        }
    }
}
