//! Downloads: parallel ranged `GET`s written in place into `<destination>.partial`, verified
//! against the size and stored checksum, then renamed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use biojob_storage::{Direction, StorageError, TransferReport, hex};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::checksum::{Algorithm, Running, Stored};
use crate::client::{Inner, Object, Pinned, io_error, length};
use crate::head::stored_checksum;
use crate::part_size_for;
use crate::parts::{Part, fixed_ranges, run_parts};
use crate::ranged::read_body;
use crate::retry::Fault;

/// What the parts of one download share.
struct Download {
    pinned: Pinned,
    /// The stored checksum's algorithm, which each part's digest is computed with.
    algorithm: Option<Algorithm>,
    /// `<destination>.partial`.
    partial: Utf8PathBuf,
    file: File,
    landed: Landed,
}

impl Inner {
    /// Downloads `object` into `partial`, verifies it and renames it to `destination`: `HEAD`,
    /// then ranged `GET`s of the part size (or of the object's own parts, for a composite
    /// checksum), `concurrency` at once; SHA-256 computed in order as parts land.
    ///
    /// # Errors
    /// [`StorageError::NotFound`], [`StorageError::Io`] (on `partial` or `destination`),
    /// [`StorageError::Verification`] (size or checksum), or a request's failure. `partial`
    /// may stay behind: the caller removes it.
    pub(crate) async fn download(
        self: Arc<Self>,
        object: Object,
        destination: Utf8PathBuf,
        partial: Utf8PathBuf,
    ) -> Result<TransferReport, StorageError> {
        let started = Instant::now();
        let io = |op, path: &Utf8Path| io_error(op, path, Direction::Get);
        let head = self
            .head_object(&object, None, Direction::Get)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                uri: object.uri.clone(),
            })?;
        let size = length(head.content_length());
        let stored = stored_checksum(&head);
        let ranges = match stored.as_ref().and_then(|s| s.parts) {
            Some(parts) => self.part_ranges(&object, &head, size, parts).await?,
            None => fixed_ranges(size, part_size_for(size, self.options.part_size)),
        };

        if let Some(parent) = destination.parent().filter(|p| !p.as_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io("creating directory", parent))?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(io("creating", &partial))?;
        file.set_len(size).map_err(io("allocating", &partial))?;
        let download = Arc::new(Download {
            pinned: Pinned {
                object,
                etag: head.e_tag().map(str::to_owned),
            },
            algorithm: stored.as_ref().map(|s| s.algorithm),
            partial,
            file,
            landed: Landed::new(ranges.len()),
        });
        let uri = download.pinned.object.uri.clone();

        let hasher = {
            let (shared, ranges) = (Arc::clone(&download), ranges.clone());
            std::thread::Builder::new()
                .name("s3-sha256".into())
                .spawn(move || hash_in_order(&shared.file, &ranges, &shared.landed))
                .map_err(io("starting a hashing thread for", &download.partial))?
        };
        let unblock = FailOnDrop(&download.landed);
        let digests = self.download_ranges(&download, &ranges).await;
        drop(unblock);
        let sha256 = hasher.join();
        let digests = digests?;
        let partial = &download.partial;
        let sha256 = match sha256 {
            Ok(Some(Ok(digest))) => digest,
            Ok(Some(Err(error))) => return Err(io("reading back", partial)(error)),
            Ok(None) | Err(_) => {
                return Err(io("hashing", partial)(std::io::Error::other(
                    "the hashing thread stopped",
                )));
            }
        };

        let written = download
            .file
            .metadata()
            .map_err(io("reading", partial))?
            .len();
        if written != size {
            return Err(StorageError::Verification {
                uri,
                direction: Direction::Get,
                detail: format!("received {written} bytes, S3 reports {size}"),
            });
        }
        let checksum = verify_checksum(&uri, stored.as_ref(), &digests, &ranges, &sha256)?;
        download.file.sync_all().map_err(io("syncing", partial))?;
        std::fs::rename(partial, &destination).map_err(io("renaming to", &destination))?;
        info!(
            uri,
            bytes = size,
            parts = ranges.len(),
            seconds = started.elapsed().as_secs_f64(),
            "downloaded"
        );
        Ok(TransferReport {
            bytes: size,
            sha256: hex(&sha256),
            checksum,
        })
    }

    /// Downloads `ranges` concurrently into the download's file; returns each range's digest
    /// (empty when the object has no checksum).
    async fn download_ranges(
        self: &Arc<Self>,
        download: &Arc<Download>,
        ranges: &[(u64, u64)],
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let uri = download.pinned.object.uri.as_str();
        run_parts(
            self.options.concurrency,
            ranges,
            uri,
            Direction::Get,
            |part| {
                let (inner, download) = (Arc::clone(self), Arc::clone(download));
                async move {
                    let digest = inner.get_range(&download, part).await?;
                    download.landed.mark(part.index);
                    Ok(digest)
                }
            },
        )
        .await
    }

    /// One part, written where it belongs as it arrives (never held whole in memory); a retry
    /// rewrites the part from its start.
    async fn get_range(&self, download: &Download, part: Part) -> Result<Vec<u8>, StorageError> {
        let what = part.describe();
        let uri = download.pinned.object.uri.as_str();
        self.retrying("downloading", uri, Direction::Get, || async {
            let body = self
                .ranged_get(&download.pinned, part.offset, part.length, &what)
                .await?;
            let mut digest = Running::new(download.algorithm);
            read_body(body, &what, part.offset, part.length, |chunk, position| {
                download
                    .file
                    .write_all_at(chunk, position)
                    .map_err(|source| {
                        Fault::Fatal(io_error(
                            "writing a part of",
                            &download.partial,
                            Direction::Get,
                        )(source))
                    })?;
                digest.update(chunk);
                Ok(())
            })
            .await?;
            Ok(digest.finish())
        })
        .await
    }
}

/// Checks the bytes received against the checksum S3 holds: a composite one against the
/// parts' digests, a full-object CRC against their combination, a full-object SHA-256 against
/// `sha256`. Returns the checksum's description; `None` (with a warning) when S3 holds none.
fn verify_checksum(
    uri: &str,
    stored: Option<&Stored>,
    digests: &[Vec<u8>],
    ranges: &[(u64, u64)],
    sha256: &[u8; 32],
) -> Result<Option<String>, StorageError> {
    let Some(stored) = stored else {
        warn!(
            uri,
            "S3 holds no checksum for this object; verified its size only"
        );
        return Ok(None);
    };
    let lengths = ranges.iter().map(|&(_, length)| length);
    let computed = match stored.parts {
        Some(_) => Some(stored.algorithm.composite(digests)),
        None => stored
            .algorithm
            .combine(&digests.iter().cloned().zip(lengths).collect::<Vec<_>>())
            .or_else(|| Some(sha256.to_vec())),
    };
    if computed.as_deref() == Some(stored.digest.as_slice()) {
        return Ok(Some(stored.describe()));
    }
    let found = Stored {
        digest: computed.unwrap_or_default(),
        ..stored.clone()
    };
    Err(StorageError::Verification {
        uri: uri.to_owned(),
        direction: Direction::Get,
        detail: format!(
            "checksum mismatch: S3 holds {}, the bytes received give {}",
            stored.describe(),
            found.describe()
        ),
    })
}

/// Which ranges have landed, for the in-order SHA-256 thread.
struct Landed {
    done: Mutex<Vec<bool>>,
    changed: Condvar,
    failed: AtomicBool,
}

impl Landed {
    fn new(count: usize) -> Self {
        Landed {
            done: Mutex::new(vec![false; count]),
            changed: Condvar::new(),
            failed: AtomicBool::new(false),
        }
    }

    fn mark(&self, index: usize) {
        if let Ok(mut done) = self.done.lock() {
            done[index] = true;
        }
        self.changed.notify_all();
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        // Taking the lock orders the flag with a waiter's check.
        drop(self.done.lock());
        self.changed.notify_all();
    }

    /// Waits until range `index` has landed; false when the transfer failed first.
    fn wait(&self, index: usize) -> bool {
        let Ok(mut done) = self.done.lock() else {
            return false;
        };
        loop {
            if done[index] {
                return true;
            }
            if self.failed.load(Ordering::SeqCst) {
                return false;
            }
            done = match self.changed.wait(done) {
                Ok(done) => done,
                Err(_) => return false,
            };
        }
    }
}

/// Marks the transfer failed when dropped before every range landed (an error, or the download
/// given up on a stop), so that the hashing thread waiting for the next range ends; once every
/// range has landed it changes nothing.
struct FailOnDrop<'a>(&'a Landed);

impl Drop for FailOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fail();
    }
}

/// SHA-256 of `file`'s `ranges`, read in order as each lands; `None` when the transfer failed.
fn hash_in_order(
    file: &File,
    ranges: &[(u64, u64)],
    landed: &Landed,
) -> Option<std::io::Result<[u8; 32]>> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 4 << 20];
    for (index, &(offset, length)) in ranges.iter().enumerate() {
        if !landed.wait(index) {
            return None;
        }
        let mut position = offset;
        while position < offset + length {
            let n = usize::try_from((offset + length - position).min(buffer.len() as u64))
                .unwrap_or(buffer.len());
            if let Err(error) = file.read_exact_at(&mut buffer[..n], position) {
                return Some(Err(error));
            }
            hasher.update(&buffer[..n]);
            position += n as u64;
        }
    }
    Some(Ok(hasher.finalize().into()))
}
