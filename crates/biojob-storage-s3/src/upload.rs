//! Uploads: one `PutObject` up to the part size, else a multipart upload with `concurrency`
//! parts in flight; every request carries its checksum, and the one S3 returns is compared.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use biojob_storage::{Direction, StorageError, TransferReport, hex};
use bytes::Bytes;
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::checksum::{Algorithm, Running, Stored, to_base64};
use crate::client::{Inner, Object, io_error, length};
use crate::head::{PART_SIZES_METADATA, VARIED, stored_checksum};
use crate::parts::{Part, fixed_ranges, run_parts};
use crate::retry::{Fault, fault, join_error};
use crate::{MAX_OBJECT_SIZE, part_size_for};

/// The local file an upload reads, shared by its parts and the hashing thread.
struct Upload {
    object: Object,
    source: Utf8PathBuf,
    file: File,
    size: u64,
}

impl Upload {
    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> StorageError + use<> {
        io_error(op, &self.source, Direction::Put)
    }
}

impl Inner {
    /// Uploads `source` to `object`, then reads back with `HEAD` that S3 holds its size and
    /// (when S3 keeps one) the checksum sent; the file's SHA-256 is computed on a thread
    /// meanwhile. The report's `checksum` is the one read back, `None` when S3 keeps none.
    ///
    /// # Errors
    /// [`StorageError::Io`] on `source`, [`StorageError::Remote`] above 5 TiB or when a request
    /// fails, [`StorageError::Verification`] when S3's checksum or size differs.
    pub(crate) async fn upload(
        self: Arc<Self>,
        source: Utf8PathBuf,
        object: Object,
    ) -> Result<TransferReport, StorageError> {
        let started = Instant::now();
        let io = |op| io_error(op, &source, Direction::Put);
        let file = File::open(&source).map_err(io("opening"))?;
        let size = file.metadata().map_err(io("reading metadata of"))?.len();
        if size > MAX_OBJECT_SIZE {
            return Err(StorageError::Remote {
                op: "uploading",
                uri: object.uri,
                direction: Direction::Put,
                message: format!("{size} bytes is more than S3's largest object (5 TiB)"),
            });
        }
        let upload = Arc::new(Upload {
            object,
            source: source.clone(),
            file,
            size,
        });
        let hasher = {
            let upload = Arc::clone(&upload);
            std::thread::Builder::new()
                .name("s3-sha256".into())
                .spawn(move || hash_file(&upload.file))
                .map_err(io("starting a hashing thread for"))?
        };
        let part_size = part_size_for(size, self.options.part_size);
        let uploaded = if size <= part_size {
            self.put_single(&upload).await
        } else {
            self.put_multipart(&upload, part_size).await
        };
        let sha256 = hasher
            .join()
            .map_err(|_| io("hashing")(std::io::Error::other("the hashing thread panicked")))?
            .map_err(io("reading"))?;
        let checksum = uploaded?;
        let object = &upload.object;
        let read_back = self.verify_stored(object, size, &checksum).await?;
        info!(
            uri = object.uri,
            bytes = size,
            seconds = started.elapsed().as_secs_f64(),
            "uploaded"
        );
        Ok(TransferReport {
            bytes: size,
            sha256: hex(&sha256),
            checksum: read_back.map(|held| held.describe()),
        })
    }

    /// One `PutObject` carrying the whole object's checksum.
    async fn put_single(&self, upload: &Arc<Upload>) -> Result<Stored, StorageError> {
        let object = &upload.object;
        let uri = object.uri.as_str();
        let data = {
            let shared = Arc::clone(upload);
            tokio::task::spawn_blocking(move || read_range(&shared.file, 0, shared.size))
                .await
                .map_err(|error| join_error(error, uri, Direction::Put))?
                .map_err(upload.io("reading"))?
        };
        let (algorithm, sdk_algorithm) = self.upload_algorithm();
        let digest = algorithm.digest(&data);
        let value = to_base64(&digest);
        let (sse, kms_key) = self.encryption();
        let returned = self
            .retrying("uploading", uri, Direction::Put, || async {
                let request = self
                    .client
                    .put_object()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .body(ByteStream::from(data.clone()))
                    .content_length(i64::try_from(upload.size).unwrap_or(i64::MAX))
                    .checksum_algorithm(sdk_algorithm.clone())
                    .set_server_side_encryption(sse.clone())
                    .set_ssekms_key_id(kms_key.clone())
                    .set_request_payer(self.payer());
                let request = match algorithm {
                    Algorithm::Sha256 => request.checksum_sha256(value.clone()),
                    _ => request.checksum_crc32_c(value.clone()),
                };
                let output = request
                    .send()
                    .await
                    .map_err(|e| fault(e, "uploading", uri, Direction::Put, "PutObject"))?;
                Ok(match algorithm {
                    Algorithm::Sha256 => output.checksum_sha256().map(str::to_owned),
                    _ => output.checksum_crc32_c().map(str::to_owned),
                })
            })
            .await?;
        let ours = Stored {
            algorithm,
            digest,
            parts: None,
        };
        check_returned(uri, &ours, returned.as_deref())?;
        Ok(ours)
    }

    /// A multipart upload of `part_size` parts, `concurrency` in flight; aborted when any part
    /// fails, so the key never holds a partial object.
    async fn put_multipart(
        self: &Arc<Self>,
        upload: &Arc<Upload>,
        part_size: u64,
    ) -> Result<Stored, StorageError> {
        let object = &upload.object;
        let uri = object.uri.as_str();
        let (algorithm, _) = self.upload_algorithm();
        let upload_id = self.start_multipart(object, false).await?;
        debug!(uri, upload_id, part_size, "multipart upload started");
        let ranges = fixed_ranges(upload.size, part_size);
        let parts = run_parts(
            self.options.concurrency,
            &ranges,
            uri,
            Direction::Put,
            |part| {
                let (inner, upload, upload_id) =
                    (Arc::clone(self), Arc::clone(upload), upload_id.clone());
                async move { inner.upload_part(&upload, &upload_id, part).await }
            },
        )
        .await;
        let completed = match parts {
            Ok(parts) => self.complete(object, &upload_id, parts, algorithm).await,
            Err(error) => Err(error),
        };
        if completed.is_err() {
            self.abort_multipart(object, &upload_id).await;
        }
        completed
    }

    /// Starts a multipart upload of `object` (its checksum algorithm, encryption and payer
    /// set; marked with [`PART_SIZES_METADATA`] when its parts may differ in size) and returns
    /// its id.
    ///
    /// # Errors
    /// The request failed past its retries, or S3 returned no id.
    pub(crate) async fn start_multipart(
        &self,
        object: &Object,
        varied_parts: bool,
    ) -> Result<String, StorageError> {
        let uri = object.uri.as_str();
        let (_, sdk_algorithm) = self.upload_algorithm();
        let (sse, kms_key) = self.encryption();
        let op = "starting the upload of";
        self.retrying(op, uri, Direction::Put, || async {
            let output = self
                .client
                .create_multipart_upload()
                .bucket(&object.bucket)
                .key(&object.key)
                .checksum_algorithm(sdk_algorithm.clone())
                .set_server_side_encryption(sse.clone())
                .set_ssekms_key_id(kms_key.clone())
                .set_request_payer(self.payer())
                .set_metadata(
                    varied_parts
                        .then(|| [(PART_SIZES_METADATA.to_owned(), VARIED.to_owned())].into()),
                )
                .send()
                .await
                .map_err(|e| fault(e, op, uri, Direction::Put, "CreateMultipartUpload"))?;
            output.upload_id().map(str::to_owned).ok_or_else(|| {
                Fault::Fatal(StorageError::Remote {
                    op,
                    uri: uri.to_owned(),
                    direction: Direction::Put,
                    message: "S3 returned no upload id".into(),
                })
            })
        })
        .await
    }

    /// Aborts the multipart upload `upload_id` of `object`, so that S3 drops its parts; a
    /// failure is only logged (the caller's own error is what matters; a bucket lifecycle
    /// rule removes what is left).
    pub(crate) async fn abort_multipart(&self, object: &Object, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&object.bucket)
            .key(&object.key)
            .upload_id(upload_id)
            .set_request_payer(self.payer())
            .send()
            .await;
        match aborted {
            Ok(_) => debug!(uri = object.uri, upload_id, "multipart upload aborted"),
            Err(error) => {
                warn!(uri = object.uri, upload_id, error = %crate::retry::causes(&error), "could not abort the multipart upload")
            }
        }
    }

    /// Uploads one part: its checksum computed first through a small buffer, then each attempt
    /// streams the range from `source` opened anew (no part is held in memory; S3 refuses a
    /// part whose bytes changed since).
    async fn upload_part(
        &self,
        upload: &Arc<Upload>,
        upload_id: &str,
        part: Part,
    ) -> Result<(CompletedPart, Vec<u8>), StorageError> {
        let object = &upload.object;
        let uri = object.uri.as_str();
        let (offset, length) = (part.offset, part.length);
        let (algorithm, _) = self.upload_algorithm();
        let digest = {
            let shared = Arc::clone(upload);
            tokio::task::spawn_blocking(move || {
                digest_range(&shared.file, offset, length, algorithm)
            })
            .await
            .map_err(|error| join_error(error, uri, Direction::Put))?
            .map_err(upload.io("reading a part of"))?
        };
        let completed = self
            .send_part(object, upload_id, part, (&upload.source, offset), &digest)
            .await?;
        Ok((completed, digest))
    }

    /// Sends `part` of the multipart upload `upload_id` of `object`: its bytes read from the
    /// file `source.0` from offset `source.1`, anew for each attempt (no part is held in
    /// memory; S3 refuses bytes that do not give `digest`, the part's checksum with the
    /// store's algorithm).
    ///
    /// # Errors
    /// `source` cannot be read; the request failed past its retries or was refused.
    pub(crate) async fn send_part(
        &self,
        object: &Object,
        upload_id: &str,
        part: Part,
        (source, offset): (&Utf8Path, u64),
        digest: &[u8],
    ) -> Result<CompletedPart, StorageError> {
        let uri = object.uri.as_str();
        let number = part.number();
        let length = part.length;
        let (algorithm, sdk_algorithm) = self.upload_algorithm();
        let value = to_base64(digest);
        let what = part.describe();
        let etag = self
            .retrying("uploading", uri, Direction::Put, || async {
                let body = ByteStream::read_from()
                    .path(source.as_std_path())
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build()
                    .await
                    .map_err(|error| {
                        Fault::Fatal(io_error("reading a part of", source, Direction::Put)(
                            std::io::Error::other(error),
                        ))
                    })?;
                let request = self
                    .client
                    .upload_part()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(body)
                    .content_length(i64::try_from(length).unwrap_or(i64::MAX))
                    .checksum_algorithm(sdk_algorithm.clone())
                    .set_request_payer(self.payer());
                let request = match algorithm {
                    Algorithm::Sha256 => request.checksum_sha256(value.clone()),
                    _ => request.checksum_crc32_c(value.clone()),
                };
                let output = request
                    .send()
                    .await
                    .map_err(|e| fault(e, "uploading", uri, Direction::Put, &what))?;
                Ok(output.e_tag().map(str::to_owned))
            })
            .await?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(etag)
            .set_checksum_crc32_c((algorithm == Algorithm::Crc32c).then(|| value.clone()))
            .set_checksum_sha256((algorithm == Algorithm::Sha256).then(|| value.clone()))
            .build())
    }

    /// Checks what S3 holds after an upload: `size` bytes and, when it keeps a checksum, the one
    /// sent (`checksum`); returns that checksum.
    ///
    /// # Errors
    /// [`StorageError::Verification`] naming the object when either differs.
    pub(crate) async fn verify_stored(
        &self,
        object: &Object,
        size: u64,
        checksum: &Stored,
    ) -> Result<Option<Stored>, StorageError> {
        let head = self.head_object(object, None, Direction::Put).await?;
        let stored = head.as_ref().map(|head| length(head.content_length()));
        if stored != Some(size) {
            return Err(StorageError::Verification {
                uri: object.uri.clone(),
                direction: Direction::Put,
                detail: format!("S3 reports {stored:?} bytes after the upload, expected {size}"),
            });
        }
        // Read back: the checksum S3 holds now, when it keeps one, is the one sent.
        let read_back = head.as_ref().and_then(stored_checksum);
        if let Some(held) = &read_back
            && held.describe() != checksum.describe()
        {
            return Err(StorageError::Verification {
                uri: object.uri.clone(),
                direction: Direction::Put,
                detail: format!(
                    "S3 holds the checksum {} after the upload, expected {}",
                    held.describe(),
                    checksum.describe()
                ),
            });
        }
        Ok(read_back)
    }

    /// Completes the upload with `parts` and checks the composite checksum S3 returns.
    pub(crate) async fn complete(
        &self,
        object: &Object,
        upload_id: &str,
        parts: Vec<(CompletedPart, Vec<u8>)>,
        algorithm: Algorithm,
    ) -> Result<Stored, StorageError> {
        let uri = object.uri.as_str();
        let count = parts.len() as u64;
        let (completed, digests): (Vec<CompletedPart>, Vec<Vec<u8>>) = parts.into_iter().unzip();
        let ours = Stored {
            algorithm,
            digest: algorithm.composite(&digests),
            parts: Some(count),
        };
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(completed))
            .build();
        let op = "completing the upload of";
        let returned = self
            .retrying(op, uri, Direction::Put, || async {
                let output = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .upload_id(upload_id)
                    .multipart_upload(upload.clone())
                    .set_request_payer(self.payer())
                    .send()
                    .await
                    .map_err(|e| fault(e, op, uri, Direction::Put, "CompleteMultipartUpload"))?;
                Ok(match algorithm {
                    Algorithm::Sha256 => output.checksum_sha256().map(str::to_owned),
                    _ => output.checksum_crc32_c().map(str::to_owned),
                })
            })
            .await?;
        check_returned(uri, &ours, returned.as_deref())?;
        Ok(ours)
    }
}

/// Compares the checksum S3 returned for an upload (if any) with ours.
fn check_returned(uri: &str, ours: &Stored, returned: Option<&str>) -> Result<(), StorageError> {
    let Some(text) = returned else {
        return Ok(());
    };
    match Stored::parse(ours.algorithm, text) {
        Some(theirs) if theirs.digest == ours.digest => Ok(()),
        _ => Err(StorageError::Verification {
            uri: uri.to_owned(),
            direction: Direction::Put,
            detail: format!(
                "checksum mismatch: sent {}, S3 stored {}:{text}",
                ours.describe(),
                ours.algorithm.name()
            ),
        }),
    }
}

/// SHA-256 of a whole file.
fn hash_file(file: &File) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 4 << 20];
    let mut position = 0u64;
    loop {
        let n = file.read_at(&mut buffer, position)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..n]);
        position += n as u64;
    }
}

/// `length` bytes of `file` from `offset`, in memory.
fn read_range(file: &File, offset: u64, length: u64) -> std::io::Result<Bytes> {
    let mut data = vec![0u8; usize::try_from(length).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut data, offset)?;
    Ok(Bytes::from(data))
}

/// The `algorithm` digest of `length` bytes of `file` from `offset`, read through a 1 MiB
/// buffer.
fn digest_range(
    file: &File,
    offset: u64,
    length: u64,
    algorithm: Algorithm,
) -> std::io::Result<Vec<u8>> {
    let mut running = Running::new(Some(algorithm));
    let mut buffer = vec![0u8; 1 << 20];
    let mut position = offset;
    while position < offset + length {
        let n = usize::try_from((offset + length - position).min(buffer.len() as u64))
            .unwrap_or(buffer.len());
        file.read_exact_at(&mut buffer[..n], position)?;
        running.update(&buffer[..n]);
        position += n as u64;
    }
    Ok(running.finish())
}
