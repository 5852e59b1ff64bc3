//! Objects written as their bytes are produced ([`biojob_storage::ObjectStore::create`]): a
//! multipart upload whose parts are spooled to scratch one at a time, sent while the next is
//! written, and completed only when the caller says so.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::types::CompletedPart;
use biojob_storage::{Direction, ObjectWriter, StorageError, TransferReport, hex};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::checksum::{Algorithm, Running};
use crate::client::{Inner, Object, block, io_error};
use crate::parts::Part;
use crate::retry::join_error;
use crate::{MAX_PARTS, MIN_PART_SIZE};

/// Parts of one writer in flight at once, at most, while the next is written: a writer holds
/// at most `(WRITE_AHEAD_PARTS + 1)` parts in scratch.
pub const WRITE_AHEAD_PARTS: usize = 2;

/// A part sent (its record for the completion, and its checksum for the composite one).
type SentPart = (CompletedPart, Vec<u8>);

/// The part being filled: a spool file (open only while written to: a paused writer holds no
/// file descriptor, so thousands of chunks need no more than two open files) and its running
/// checksum.
struct Filling {
    path: TempPath,
    file: Option<BufWriter<File>>,
    running: Running,
    length: u64,
}

impl Filling {
    /// The spool file, opened again to append when it was closed.
    fn file(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
            self.file = Some(BufWriter::with_capacity(1 << 20, file));
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the spool file is not open"))
    }

    /// Writes out and closes the spool file.
    fn close(&mut self) -> std::io::Result<()> {
        match self.file.take() {
            Some(mut file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// An S3 object being written; see [`ObjectWriter`].
pub(crate) struct S3Writer {
    inner: Arc<Inner>,
    object: Object,
    spool: Utf8PathBuf,
    part_size: u64,
    algorithm: Algorithm,
    current: Option<Filling>,
    /// Started with the first part.
    upload_id: Option<String>,
    in_flight: VecDeque<JoinHandle<Result<SentPart, StorageError>>>,
    sent: Vec<SentPart>,
    parts: usize,
    /// Bytes of the parts sent so far: where the next part starts in the object.
    sent_bytes: u64,
    sha256: Sha256,
    bytes: u64,
    /// No more writes: flushed, completed or failed.
    closed: bool,
    /// A step failed: the writer can only be dropped (and so aborted).
    failed: bool,
    completed: bool,
    started: Instant,
}

impl S3Writer {
    /// A writer of `object` spooling under `spool`, parts of the store's part size.
    pub(crate) fn new(inner: Arc<Inner>, object: Object, spool: &Utf8Path) -> S3Writer {
        let (algorithm, _) = inner.upload_algorithm();
        S3Writer {
            part_size: inner.options.part_size.max(MIN_PART_SIZE),
            inner,
            object,
            spool: spool.to_owned(),
            algorithm,
            current: None,
            upload_id: None,
            in_flight: VecDeque::new(),
            sent: Vec::new(),
            parts: 0,
            sent_bytes: 0,
            sha256: Sha256::new(),
            bytes: 0,
            closed: false,
            failed: false,
            completed: false,
            started: Instant::now(),
        }
    }

    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> StorageError + use<> {
        io_error(op, &self.spool, Direction::Put)
    }

    fn check_open(&self) -> Result<(), StorageError> {
        if self.closed {
            return Err(StorageError::Remote {
                op: "writing",
                uri: self.object.uri.clone(),
                direction: Direction::Put,
                message: "the object was flushed, completed or failed earlier".into(),
            });
        }
        Ok(())
    }

    /// Runs `future` on the store's runtime from this (non-runtime) thread, given up as the
    /// store's stop says ([`crate::S3Stop`]).
    fn block<T>(
        &self,
        future: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        self.inner
            .wait("uploading", &self.object.uri, Direction::Put, future)?
    }

    /// Waits for the oldest part in flight.
    fn join_oldest(&mut self) -> Result<(), StorageError> {
        let Some(handle) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let uri = self.object.uri.clone();
        let sent = self.block(async move {
            handle
                .await
                .unwrap_or_else(|error| Err(join_error(error, &uri, Direction::Put)))
        })?;
        self.sent.push(sent);
        Ok(())
    }

    /// Sends the part being filled (if any), once fewer than [`WRITE_AHEAD_PARTS`] are in
    /// flight; starts the multipart upload first when it is the first part.
    fn send_current(&mut self) -> Result<(), StorageError> {
        let Some(filling) = self.current.take() else {
            return Ok(());
        };
        if self.parts >= MAX_PARTS as usize {
            return Err(StorageError::Remote {
                op: "uploading",
                uri: self.object.uri.clone(),
                direction: Direction::Put,
                message: format!(
                    "more than {MAX_PARTS} parts of {} bytes: give a larger part size (BIOJOB_S3_PART_SIZE)",
                    self.part_size
                ),
            });
        }
        let mut filling = filling;
        filling.close().map_err(self.io("writing a part to"))?;
        if self.upload_id.is_none() {
            let inner = Arc::clone(&self.inner);
            let object = self.object.clone();
            let upload_id =
                self.block(async move { inner.start_multipart(&object, true).await })?;
            debug!(
                uri = self.object.uri,
                upload_id,
                part_size = self.part_size,
                "streamed upload started"
            );
            self.upload_id = Some(upload_id);
        }
        while self.in_flight.len() >= WRITE_AHEAD_PARTS {
            self.join_oldest()?;
        }
        let part = Part {
            index: self.parts,
            offset: self.sent_bytes,
            length: filling.length,
        };
        self.sent_bytes += filling.length;
        self.parts += 1;
        let digest = filling.running.finish();
        let spooled = filling.path;
        let (inner, object) = (Arc::clone(&self.inner), self.object.clone());
        let upload_id = self.upload_id.clone().unwrap_or_default();
        self.in_flight
            .push_back(self.inner.handle.spawn(async move {
                let path = Utf8Path::from_path(&spooled)
                    .map(Utf8Path::to_owned)
                    .unwrap_or_default();
                let completed = inner
                    .send_part(&object, &upload_id, part, (&path, 0), &digest)
                    .await?;
                // The spool file goes when `spooled` drops, here.
                drop(spooled);
                Ok((completed, digest))
            }));
        Ok(())
    }

    /// The part being filled, started when there is none.
    fn filling(&mut self) -> Result<&mut Filling, StorageError> {
        if self.current.is_none() {
            let (file, path) = tempfile::Builder::new()
                .prefix("part.")
                .suffix(".spool")
                .tempfile_in(&self.spool)
                .map_err(self.io("creating a part in"))?
                .into_parts();
            self.current = Some(Filling {
                path,
                file: Some(BufWriter::with_capacity(1 << 20, file)),
                running: Running::new(Some(self.algorithm)),
                length: 0,
            });
        }
        let spool = self.spool.clone();
        self.current.as_mut().ok_or_else(|| {
            io_error("creating a part in", &spool, Direction::Put)(std::io::Error::other("no part"))
        })
    }

    /// Runs `step`; a failure closes the writer (it is then aborted when dropped).
    fn guarded<T>(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.check_open()?;
        let result = step(self);
        if result.is_err() {
            self.closed = true;
            self.failed = true;
        }
        result
    }
}

impl ObjectWriter for S3Writer {
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.guarded(|writer| {
            let mut rest = data;
            while !rest.is_empty() {
                let part_size = writer.part_size;
                let failed = writer.io("writing a part to");
                let filling = writer.filling()?;
                let room = usize::try_from(part_size - filling.length).unwrap_or(usize::MAX);
                let (now, later) = rest.split_at(room.min(rest.len()));
                filling
                    .file()
                    .and_then(|file| file.write_all(now))
                    .map_err(failed)?;
                filling.running.update(now);
                filling.length += now.len() as u64;
                let full = filling.length >= part_size;
                writer.sha256.update(now);
                writer.bytes += now.len() as u64;
                if full {
                    writer.send_current()?;
                }
                rest = later;
            }
            Ok(())
        })
    }

    fn pause(&mut self) -> Result<(), StorageError> {
        self.guarded(|writer| {
            let failed = writer.io("writing a part to");
            match writer.current.as_mut() {
                Some(filling) if filling.length >= MIN_PART_SIZE => writer.send_current(),
                Some(filling) => filling.close().map_err(failed),
                None => Ok(()),
            }
        })
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.guarded(|writer| {
            if writer.current.is_some() || writer.parts == 0 {
                // An empty object is one empty part.
                writer.filling()?;
                writer.send_current()?;
            }
            while !writer.in_flight.is_empty() {
                writer.join_oldest()?;
            }
            writer.closed = true;
            Ok(())
        })
    }

    fn complete(mut self: Box<Self>) -> Result<TransferReport, StorageError> {
        if !self.closed {
            self.flush()?;
        }
        if self.failed {
            return Err(StorageError::Remote {
                op: "completing the upload of",
                uri: self.object.uri.clone(),
                direction: Direction::Put,
                message: "a part failed earlier".into(),
            });
        }
        let sent = std::mem::take(&mut self.sent);
        let (inner, object, algorithm) =
            (Arc::clone(&self.inner), self.object.clone(), self.algorithm);
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let size = self.bytes;
        let stored = self.block(async move {
            let stored = inner.complete(&object, &upload_id, sent, algorithm).await?;
            inner.verify_stored(&object, size, &stored).await?;
            Ok(stored)
        });
        // Completed (even if the check failed: the object is there) or past hope: either way
        // there is nothing left to abort once CompleteMultipartUpload has been answered.
        self.completed = stored.is_ok() || matches!(stored, Err(StorageError::Verification { .. }));
        let stored = stored?;
        info!(
            uri = self.object.uri,
            bytes = size,
            parts = self.parts,
            seconds = self.started.elapsed().as_secs_f64(),
            "uploaded as written"
        );
        Ok(TransferReport {
            bytes: size,
            sha256: hex(&std::mem::take(&mut self.sha256).finalize()),
            checksum: Some(stored.describe()),
        })
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        for handle in self.in_flight.drain(..) {
            handle.abort();
        }
        if self.completed {
            return;
        }
        if let Some(upload_id) = self.upload_id.take() {
            let (inner, object) = (Arc::clone(&self.inner), self.object.clone());
            // Best effort: the caller's own error is what matters.
            let _ = block(&self.inner.handle, Direction::Put, async move {
                inner.abort_multipart(&object, &upload_id).await;
            });
        }
    }
}
