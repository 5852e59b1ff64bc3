//! The S3 store: parallel ranged GETs, multipart PUTs, checksums, per-part retries.

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm as SdkChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload,
    CompletedPart, RequestPayer, ServerSideEncryption,
};
use biojob_storage::{
    Direction, ObjectMeta, ObjectReader, ObjectStore, ObjectUri, StorageError, TransferReport, hex,
};
use bytes::Bytes;
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::checksum::{Algorithm, Running, Stored, to_base64};
use crate::{ChecksumAlgorithm, MAX_OBJECT_SIZE, S3Options, Sse, part_size_for};

/// Request counts since the store was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferStats {
    /// S3 requests sent (every attempt counts).
    pub requests: u64,
    /// Attempts that failed with a retryable error and were retried.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
}

/// The [`ObjectStore`] for `s3://` URIs.
///
/// The trait is synchronous: each call runs its transfer on the tokio runtime given to
/// [`S3Store::new`] (`Handle::block_on`), so it must be called from a thread that is not one of
/// that runtime's workers (the pipeline's threads are plain threads). Called from inside a
/// runtime it fails instead of panicking.
///
/// - `get`: `HEAD` (size, ETag, stored checksum), then ranged `GET`s of `part_size`, at most
///   `concurrency` at once, each pinned to the ETag (`If-Match`), written in place into
///   `<destination>.partial`; SHA-256 is computed in order as parts land. The size and the
///   stored checksum (CRC32C, CRC32 or SHA-256; full-object or composite, whose part
///   boundaries are read from S3) are verified before the rename to `destination`.
/// - `put`: one `PutObject` up to the part size, else a multipart upload with `concurrency`
///   parts in flight; every request carries the part's CRC32C (or SHA-256), which S3 checks,
///   and the composite checksum S3 returns is compared with the one computed here. An upload
///   that fails is aborted, so the key never holds a partial object.
/// - Every request is retried on throttling (`SlowDown`, 429, 503), other 5xx, timeouts,
///   connection errors and bodies cut short, with exponential backoff and full jitter, up to
///   `retry.max_attempts` attempts per request (per part).
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) handle: Handle,
    pub(crate) options: S3Options,
    counters: Counters,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The options hold no secret; credentials are never shown.
        f.debug_struct("S3Store")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// One attempt's failure: retry it, or give up with this error.
pub(crate) enum Fault {
    Retry(String),
    Fatal(StorageError),
}

impl S3Store {
    /// Builds the client from the standard AWS configuration chain and `options`, on the
    /// runtime behind `handle` (which must be a multi-thread runtime that outlives the store).
    ///
    /// With an endpoint and no region, the region is `us-east-1` (so no lookup leaves the
    /// machine); path-style addressing is on when an endpoint is given, unless set otherwise.
    ///
    /// # Errors
    /// [`StorageError::Remote`] when called from inside an async runtime.
    pub fn new(handle: Handle, options: S3Options) -> Result<S3Store, StorageError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        let region = options.region.clone().or_else(|| {
            options
                .endpoint_url
                .as_ref()
                .map(|_| "us-east-1".to_owned())
        });
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(credentials) = &options.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.clone(),
                None,
                None,
                "biojob-static",
            ));
        }
        let shared = block(&handle, Direction::Get, loader.load())?;
        let path_style = options
            .force_path_style
            .unwrap_or(options.endpoint_url.is_some());
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            // Retries are per part, here, where a body cut short can be retried too.
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        let mut options = options;
        options.concurrency = options.concurrency.max(1);
        options.retry.max_attempts = options.retry.max_attempts.max(1);
        Ok(S3Store {
            inner: Arc::new(Inner {
                client: Client::from_conf(config),
                handle,
                options,
                counters: Counters::default(),
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &S3Options {
        &self.inner.options
    }

    /// Requests sent and retried so far.
    pub fn stats(&self) -> TransferStats {
        TransferStats {
            requests: self.inner.counters.requests.load(Ordering::Relaxed),
            retries: self.inner.counters.retries.load(Ordering::Relaxed),
        }
    }
}

pub(crate) fn block<F: Future>(
    handle: &Handle,
    direction: Direction,
    future: F,
) -> Result<F::Output, StorageError> {
    if Handle::try_current().is_ok() {
        return Err(StorageError::Remote {
            op: "cannot call the S3 store",
            uri: "from inside an async runtime".into(),
            direction,
            message: "call it from a plain thread".into(),
        });
    }
    Ok(handle.block_on(future))
}

pub(crate) fn s3_parts(
    uri: &ObjectUri,
    direction: Direction,
) -> Result<(String, String), StorageError> {
    match uri {
        ObjectUri::S3 { bucket, key } if !key.is_empty() => Ok((bucket.clone(), key.clone())),
        ObjectUri::S3 { .. } => Err(StorageError::InvalidUri {
            uri: uri.to_string(),
            reason: "the key is missing".into(),
        }),
        ObjectUri::Local(_) => Err(StorageError::Remote {
            op: "S3 store cannot handle",
            uri: uri.to_string(),
            direction,
            message: "not an s3:// URI".into(),
        }),
    }
}

impl ObjectStore for S3Store {
    fn head(&self, uri: &ObjectUri) -> Result<Option<ObjectMeta>, StorageError> {
        let (bucket, key) = s3_parts(uri, Direction::Get)?;
        let text = uri.to_string();
        let head = block(
            &self.inner.handle,
            Direction::Get,
            self.inner
                .head_object(&bucket, &key, &text, None, Direction::Get),
        )??;
        Ok(head.map(|head| ObjectMeta {
            size: length(head.content_length()),
            last_modified: head
                .last_modified()
                .and_then(|time| std::time::SystemTime::try_from(*time).ok()),
            version: head.e_tag().map(str::to_owned),
        }))
    }

    fn get(&self, uri: &ObjectUri, destination: &Utf8Path) -> Result<TransferReport, StorageError> {
        let (bucket, key) = s3_parts(uri, Direction::Get)?;
        let inner = Arc::clone(&self.inner);
        let text = uri.to_string();
        let partial = Utf8PathBuf::from(format!("{destination}.partial"));
        let result = block(
            &self.inner.handle,
            Direction::Get,
            inner.get_object(bucket, key, text, destination.to_owned(), partial.clone()),
        )
        .and_then(|result| result);
        if result.is_err() {
            // Nothing half-written stays behind; the original error is what matters.
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    fn put(&self, source: &Utf8Path, uri: &ObjectUri) -> Result<TransferReport, StorageError> {
        let (bucket, key) = s3_parts(uri, Direction::Put)?;
        let inner = Arc::clone(&self.inner);
        block(
            &self.inner.handle,
            Direction::Put,
            inner.put_object(source.to_owned(), bucket, key, uri.to_string()),
        )?
    }

    fn open(&self, uri: &ObjectUri) -> Result<ObjectReader, StorageError> {
        let (bucket, key) = s3_parts(uri, Direction::Get)?;
        let inner = Arc::clone(&self.inner);
        block(
            &self.inner.handle,
            Direction::Get,
            crate::stream::open(inner, bucket, key, uri.to_string()),
        )?
    }

    fn open_ranges(
        &self,
        uri: &ObjectUri,
        meta: &ObjectMeta,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<ObjectReader, StorageError> {
        let (bucket, key) = s3_parts(uri, Direction::Get)?;
        let inner = Arc::clone(&self.inner);
        block(
            &self.inner.handle,
            Direction::Get,
            crate::stream::open_ranges(inner, bucket, key, uri, meta, ranges),
        )?
    }
}

pub(crate) fn length(value: Option<i64>) -> u64 {
    value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// Classifies an SDK error: throttling, 5xx, timeouts and connection errors are retried.
fn fault<E>(
    error: SdkError<E, HttpResponse>,
    op: &'static str,
    uri: &str,
    direction: Direction,
    what: &str,
) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = match &error {
        // The service's own words (code, message, status), not the whole response.
        SdkError::ServiceError(context) => format!(
            "{what}: {} (HTTP {}): {}",
            error.code().unwrap_or("error"),
            context.raw().status().as_u16(),
            error.message().unwrap_or("no message")
        ),
        _ => format!("{what}: {}", DisplayErrorContext(&error)),
    };
    let retry = match &error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_io() || failure.is_timeout(),
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            status >= 500
                || status == 429
                || matches!(
                    error.code(),
                    Some(
                        "SlowDown"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestTimeout"
                            | "RequestTimeTooSkewed"
                            | "InternalError"
                            | "IncompleteBody"
                            | "BadDigest"
                    )
                )
        }
        _ => false,
    };
    if retry {
        Fault::Retry(message)
    } else {
        Fault::Fatal(StorageError::Remote {
            op,
            uri: uri.to_owned(),
            direction,
            message,
        })
    }
}

fn status_of<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    match error {
        SdkError::ServiceError(context) => Some(context.raw().status().as_u16()),
        _ => None,
    }
}

pub(crate) fn join_error(
    error: tokio::task::JoinError,
    uri: &str,
    direction: Direction,
) -> StorageError {
    StorageError::Remote {
        op: "transferring",
        uri: uri.to_owned(),
        direction,
        message: format!("a transfer task failed: {error}"),
    }
}

/// Which checksum S3 reports for an object, preferring CRC32C, then SHA-256, then CRC32.
pub(crate) fn stored_checksum(head: &HeadObjectOutput) -> Option<Stored> {
    [
        (Algorithm::Crc32c, head.checksum_crc32_c()),
        (Algorithm::Sha256, head.checksum_sha256()),
        (Algorithm::Crc32, head.checksum_crc32()),
    ]
    .into_iter()
    .find_map(|(algorithm, value)| value.and_then(|text| Stored::parse(algorithm, text)))
}

/// Consecutive `(offset, length)` ranges of at most `part` bytes covering `size` bytes.
pub(crate) fn fixed_ranges(size: u64, part: u64) -> Vec<(u64, u64)> {
    let part = part.max(1);
    (0..size.div_ceil(part))
        .map(|i| {
            let offset = i * part;
            (offset, part.min(size - offset))
        })
        .collect()
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

/// Runs `part(index, offset, length)` for every range of `ranges` as a task, at most
/// `concurrency` at once; returns the results in range order, or the first error (the
/// remaining tasks are dropped, which aborts them).
async fn run_parts<T, F, Fut>(
    concurrency: usize,
    ranges: &[(u64, u64)],
    uri: &str,
    direction: Direction,
    mut part: F,
) -> Result<Vec<T>, StorageError>
where
    T: Send + 'static,
    F: FnMut(usize, u64, u64) -> Fut,
    Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut results: Vec<Option<T>> = (0..ranges.len()).map(|_| None).collect();
    let record = |results: &mut Vec<Option<T>>, joined| match joined {
        Ok(Ok((index, value))) => {
            results[index] = Some(value);
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(error) => Err(join_error(error, uri, direction)),
    };
    for (index, &(offset, length)) in ranges.iter().enumerate() {
        let permit = Arc::clone(&semaphore)
            .acquire_owned()
            .await
            .map_err(|e| join_error_text(e.to_string(), uri, direction))?;
        while let Some(joined) = tasks.try_join_next() {
            record(&mut results, joined)?;
        }
        let future = part(index, offset, length);
        tasks.spawn(async move {
            let _permit = permit;
            Ok::<_, StorageError>((index, future.await?))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        record(&mut results, joined)?;
    }
    Ok(results.into_iter().flatten().collect())
}

fn read_range(file: &File, offset: u64, length: u64) -> std::io::Result<Bytes> {
    let mut data = vec![0u8; usize::try_from(length).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut data, offset)?;
    Ok(Bytes::from(data))
}

/// Reads a ranged `GET`'s body of `length` bytes from `offset`, giving each piece to `sink`
/// with its offset in the object as it arrives; a body cut short or too long is a retryable
/// fault.
pub(crate) async fn read_body(
    mut body: ByteStream,
    what: &str,
    offset: u64,
    length: u64,
    mut sink: impl FnMut(&[u8], u64) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let end = offset + length;
    let mut position = offset;
    while let Some(chunk) = body.try_next().await.map_err(|error| {
        Fault::Retry(format!(
            "{what}: reading the body: {}",
            DisplayErrorContext(&error)
        ))
    })? {
        let chunk_end = position + chunk.len() as u64;
        if chunk_end > end {
            return Err(Fault::Retry(format!(
                "{what}: received more than {length} bytes"
            )));
        }
        sink(&chunk, position)?;
        position = chunk_end;
    }
    if position != end {
        return Err(Fault::Retry(format!(
            "{what}: received {} bytes",
            position - offset
        )));
    }
    Ok(())
}

impl Inner {
    fn payer(&self) -> Option<RequestPayer> {
        self.options
            .requester_pays
            .then_some(RequestPayer::Requester)
    }

    fn upload_algorithm(&self) -> (Algorithm, SdkChecksumAlgorithm) {
        match self.options.checksum {
            ChecksumAlgorithm::Crc32c => (Algorithm::Crc32c, SdkChecksumAlgorithm::Crc32C),
            ChecksumAlgorithm::Sha256 => (Algorithm::Sha256, SdkChecksumAlgorithm::Sha256),
        }
    }

    fn encryption(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.options.sse {
            None => (None, None),
            Some(Sse::Aes256) => (Some(ServerSideEncryption::Aes256), None),
            Some(Sse::Kms { key_id }) => (Some(ServerSideEncryption::AwsKms), key_id.clone()),
        }
    }

    /// Runs `attempt` until it succeeds, fails fatally, or the retry budget is spent.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        op: &'static str,
        uri: &str,
        direction: Direction,
        mut attempt: F,
    ) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Fault>>,
    {
        let policy = self.options.retry;
        let mut number = 1;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(Fault::Fatal(error)) => return Err(error),
                Err(Fault::Retry(message)) => {
                    if number >= policy.max_attempts {
                        return Err(StorageError::Remote {
                            op,
                            uri: uri.to_owned(),
                            direction,
                            message: format!("{message} (gave up after {number} attempts)"),
                        });
                    }
                    let delay = policy.backoff(number);
                    warn!(
                        uri,
                        attempt = number,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %message,
                        "S3 request failed; retrying"
                    );
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    number += 1;
                }
            }
        }
    }

    /// `HEAD` with checksums; `None` when the object does not exist.
    pub(crate) async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        uri: &str,
        part_number: Option<i32>,
        direction: Direction,
    ) -> Result<Option<HeadObjectOutput>, StorageError> {
        self.retrying("reading metadata of", uri, direction, || async {
            let result = self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .set_part_number(part_number)
                .set_request_payer(self.payer())
                .send()
                .await;
            match result {
                Ok(head) => Ok(Some(head)),
                Err(error) if status_of(&error) == Some(404) => Ok(None),
                Err(error) => Err(fault(error, "reading metadata of", uri, direction, "HEAD")),
            }
        })
        .await
    }

    /// The ranges of a multipart object's parts: uniform parts (every part but the last the
    /// size of part 1, as every S3 client uploads them) when the count matches, else each
    /// part's range as S3 reports it.
    pub(crate) async fn part_ranges(
        &self,
        bucket: &str,
        key: &str,
        uri: &str,
        size: u64,
        parts: u64,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        if parts <= 1 {
            return Ok(fixed_ranges(size, size.max(1)));
        }
        let first = self
            .head_object(bucket, key, uri, Some(1), Direction::Get)
            .await?
            .map(|head| length(head.content_length()))
            .unwrap_or(0);
        if first > 0 && size.div_ceil(first) == parts {
            return Ok(fixed_ranges(size, first));
        }
        let mut ranges = Vec::new();
        let mut next = 0u64;
        for number in 1..=parts {
            let part = i32::try_from(number).unwrap_or(i32::MAX);
            let head = self
                .head_object(bucket, key, uri, Some(part), Direction::Get)
                .await?;
            let part_length = head.map_or(0, |head| length(head.content_length()));
            ranges.push((next, part_length));
            next += part_length;
        }
        if next != size {
            return Err(StorageError::Verification {
                uri: uri.to_owned(),
                direction: Direction::Get,
                detail: format!("its {parts} parts add up to {next} bytes, not {size}"),
            });
        }
        Ok(ranges)
    }

    async fn get_object(
        self: Arc<Self>,
        bucket: String,
        key: String,
        uri: String,
        destination: Utf8PathBuf,
        partial: Utf8PathBuf,
    ) -> Result<TransferReport, StorageError> {
        let started = std::time::Instant::now();
        let io = |op: &'static str, path: &Utf8Path| {
            let path = path.to_owned();
            move |source| StorageError::Io {
                op,
                path,
                direction: Direction::Get,
                source,
            }
        };
        let head = self
            .head_object(&bucket, &key, &uri, None, Direction::Get)
            .await?
            .ok_or_else(|| StorageError::NotFound { uri: uri.clone() })?;
        let size = length(head.content_length());
        let etag = head.e_tag().map(str::to_owned);
        let stored = stored_checksum(&head);
        let ranges = match stored.as_ref().and_then(|s| s.parts) {
            Some(parts) => self.part_ranges(&bucket, &key, &uri, size, parts).await?,
            None => fixed_ranges(size, part_size_for(size, self.options.part_size)),
        };
        let algorithm = stored.as_ref().map(|s| s.algorithm);

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
        let file = Arc::new(file);

        let landed = Arc::new(Landed::new(ranges.len()));
        let hasher = {
            let (file, ranges, landed) = (Arc::clone(&file), ranges.clone(), Arc::clone(&landed));
            std::thread::Builder::new()
                .name("s3-sha256".into())
                .spawn(move || hash_in_order(&file, &ranges, &landed))
                .map_err(io("starting a hashing thread for", &partial))?
        };
        let digests = self
            .download_ranges(
                &bucket, &key, &uri, etag, &ranges, algorithm, &file, &landed,
            )
            .await;
        if digests.is_err() {
            landed.fail();
        }
        let sha256 = hasher.join();
        let digests = digests?;
        let sha256 = match sha256 {
            Ok(Some(Ok(digest))) => digest,
            Ok(Some(Err(error))) => return Err(io("reading back", &partial)(error)),
            Ok(None) | Err(_) => {
                return Err(io("hashing", &partial)(std::io::Error::other(
                    "the hashing thread stopped",
                )));
            }
        };

        let written = file.metadata().map_err(io("reading", &partial))?.len();
        if written != size {
            return Err(StorageError::Verification {
                uri,
                direction: Direction::Get,
                detail: format!("received {written} bytes, S3 reports {size}"),
            });
        }
        let checksum = match &stored {
            None => {
                warn!(
                    uri,
                    "S3 holds no checksum for this object; verified its size only"
                );
                None
            }
            Some(stored) => {
                let lengths = ranges.iter().map(|&(_, length)| length);
                let computed = match stored.parts {
                    Some(_) => Some(stored.algorithm.composite(&digests)),
                    None => stored
                        .algorithm
                        .combine(&digests.iter().cloned().zip(lengths).collect::<Vec<_>>())
                        .or_else(|| Some(sha256.to_vec())),
                };
                if computed.as_deref() != Some(stored.digest.as_slice()) {
                    let found = Stored {
                        digest: computed.unwrap_or_default(),
                        ..stored.clone()
                    };
                    return Err(StorageError::Verification {
                        uri,
                        direction: Direction::Get,
                        detail: format!(
                            "checksum mismatch: S3 holds {}, the bytes received give {}",
                            stored.describe(),
                            found.describe()
                        ),
                    });
                }
                Some(stored.describe())
            }
        };
        file.sync_all().map_err(io("syncing", &partial))?;
        drop(file);
        std::fs::rename(&partial, &destination).map_err(io("renaming to", &destination))?;
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

    /// Downloads `ranges` concurrently into `file`; returns each range's digest (empty when
    /// the object has no checksum).
    #[allow(clippy::too_many_arguments)]
    async fn download_ranges(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        uri: &str,
        etag: Option<String>,
        ranges: &[(u64, u64)],
        algorithm: Option<Algorithm>,
        file: &Arc<File>,
        landed: &Arc<Landed>,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let (file, landed) = (Arc::clone(file), Arc::clone(landed));
        let (bucket, key, owned_uri) = (bucket.to_owned(), key.to_owned(), uri.to_owned());
        run_parts(
            self.options.concurrency,
            ranges,
            uri,
            Direction::Get,
            |index, offset, length| {
                let inner = Arc::clone(self);
                let (bucket, key, uri, etag) =
                    (bucket.clone(), key.clone(), owned_uri.clone(), etag.clone());
                let (file, landed) = (Arc::clone(&file), Arc::clone(&landed));
                async move {
                    let digest = inner
                        .get_range(
                            &bucket, &key, &uri, etag, index, offset, length, algorithm, file,
                        )
                        .await?;
                    landed.mark(index);
                    Ok(digest)
                }
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        uri: &str,
        etag: Option<String>,
        index: usize,
        offset: u64,
        length: u64,
        algorithm: Option<Algorithm>,
        file: Arc<File>,
    ) -> Result<Vec<u8>, StorageError> {
        let what = format!("part {} (bytes {offset}+{length})", index + 1);
        self.retrying("downloading", uri, Direction::Get, || async {
            let body = self
                .ranged_get(bucket, key, uri, etag.as_deref(), offset, length, &what)
                .await?;
            // The body is written where it belongs as it arrives (a part is never held whole
            // in memory); a retry rewrites the part from its start.
            let mut digest = Running::new(algorithm);
            read_body(body, &what, offset, length, |chunk, position| {
                file.write_all_at(chunk, position).map_err(|source| {
                    Fault::Fatal(StorageError::Io {
                        op: "writing a part of",
                        path: Utf8PathBuf::from(uri),
                        direction: Direction::Get,
                        source,
                    })
                })?;
                digest.update(chunk);
                Ok(())
            })
            .await?;
            Ok(digest.finish())
        })
        .await
    }

    /// One attempt at `GET` of `length` bytes from `offset`, pinned to `etag` (`If-Match`):
    /// the response body, or the attempt's fault (a changed object is fatal).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn ranged_get(
        &self,
        bucket: &str,
        key: &str,
        uri: &str,
        etag: Option<&str>,
        offset: u64,
        length: u64,
        what: &str,
    ) -> Result<ByteStream, Fault> {
        let range = format!("bytes={offset}-{}", offset + length - 1);
        let result = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(range)
            .set_if_match(etag.map(str::to_owned))
            .set_request_payer(self.payer())
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.body),
            Err(error) if status_of(&error) == Some(412) => {
                Err(Fault::Fatal(StorageError::Remote {
                    op: "downloading",
                    uri: uri.to_owned(),
                    direction: Direction::Get,
                    message: "the object changed during the download (ETag mismatch)".into(),
                }))
            }
            Err(error) => Err(fault(error, "downloading", uri, Direction::Get, what)),
        }
    }

    async fn put_object(
        self: Arc<Self>,
        source: Utf8PathBuf,
        bucket: String,
        key: String,
        uri: String,
    ) -> Result<TransferReport, StorageError> {
        let started = std::time::Instant::now();
        let io = |op: &'static str| {
            let path = source.clone();
            move |error| StorageError::Io {
                op,
                path,
                direction: Direction::Put,
                source: error,
            }
        };
        let file = File::open(&source).map_err(io("opening"))?;
        let size = file.metadata().map_err(io("reading metadata of"))?.len();
        if size > MAX_OBJECT_SIZE {
            return Err(StorageError::Remote {
                op: "uploading",
                uri,
                direction: Direction::Put,
                message: format!("{size} bytes is more than S3's largest object (5 TiB)"),
            });
        }
        let file = Arc::new(file);
        let hasher = {
            let file = Arc::clone(&file);
            std::thread::Builder::new()
                .name("s3-sha256".into())
                .spawn(move || hash_file(&file))
                .map_err(io("starting a hashing thread for"))?
        };
        let part_size = part_size_for(size, self.options.part_size);
        let uploaded = if size <= part_size {
            self.put_single(&bucket, &key, &uri, &file, size).await
        } else {
            self.put_multipart(&bucket, &key, &uri, &source, &file, size, part_size)
                .await
        };
        let sha256 = hasher
            .join()
            .map_err(|_| io("hashing")(std::io::Error::other("the hashing thread panicked")))?
            .map_err(io("reading"))?;
        let checksum = uploaded?;
        let head = self
            .head_object(&bucket, &key, &uri, None, Direction::Put)
            .await?;
        let stored = head.as_ref().map(|head| length(head.content_length()));
        if stored != Some(size) {
            return Err(StorageError::Verification {
                uri,
                direction: Direction::Put,
                detail: format!("S3 reports {stored:?} bytes after the upload, expected {size}"),
            });
        }
        info!(
            uri,
            bytes = size,
            seconds = started.elapsed().as_secs_f64(),
            "uploaded"
        );
        Ok(TransferReport {
            bytes: size,
            sha256: hex(&sha256),
            checksum: Some(checksum.describe()),
        })
    }

    /// One `PutObject` carrying the whole object's checksum.
    async fn put_single(
        &self,
        bucket: &str,
        key: &str,
        uri: &str,
        file: &Arc<File>,
        size: u64,
    ) -> Result<Stored, StorageError> {
        let data = {
            let file = Arc::clone(file);
            tokio::task::spawn_blocking(move || read_range(&file, 0, size))
                .await
                .map_err(|error| join_error(error, uri, Direction::Put))?
                .map_err(|source| StorageError::Io {
                    op: "reading",
                    path: Utf8PathBuf::from(uri),
                    direction: Direction::Put,
                    source,
                })?
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
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(data.clone()))
                    .content_length(i64::try_from(size).unwrap_or(i64::MAX))
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

    /// A multipart upload, `concurrency` parts in flight; aborted when any part fails.
    #[allow(clippy::too_many_arguments)]
    async fn put_multipart(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        uri: &str,
        source: &Utf8Path,
        file: &Arc<File>,
        size: u64,
        part_size: u64,
    ) -> Result<Stored, StorageError> {
        let (algorithm, sdk_algorithm) = self.upload_algorithm();
        let (sse, kms_key) = self.encryption();
        let upload_id = self
            .retrying("starting the upload of", uri, Direction::Put, || async {
                let output = self
                    .client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .checksum_algorithm(sdk_algorithm.clone())
                    .set_server_side_encryption(sse.clone())
                    .set_ssekms_key_id(kms_key.clone())
                    .set_request_payer(self.payer())
                    .send()
                    .await
                    .map_err(|e| {
                        fault(
                            e,
                            "starting the upload of",
                            uri,
                            Direction::Put,
                            "CreateMultipartUpload",
                        )
                    })?;
                output.upload_id().map(str::to_owned).ok_or_else(|| {
                    Fault::Fatal(StorageError::Remote {
                        op: "starting the upload of",
                        uri: uri.to_owned(),
                        direction: Direction::Put,
                        message: "S3 returned no upload id".into(),
                    })
                })
            })
            .await?;
        debug!(uri, upload_id, part_size, "multipart upload started");
        let parts = self
            .upload_parts(bucket, key, uri, &upload_id, source, file, size, part_size)
            .await;
        let completed = match parts {
            Ok(parts) => {
                self.complete(bucket, key, uri, &upload_id, parts, algorithm)
                    .await
            }
            Err(error) => Err(error),
        };
        if completed.is_err() {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .set_request_payer(self.payer())
                .send()
                .await;
            if let Err(error) = aborted {
                warn!(uri, upload_id, error = %DisplayErrorContext(&error), "could not abort the multipart upload");
            }
        }
        completed
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        uri: &str,
        upload_id: &str,
        source: &Utf8Path,
        file: &Arc<File>,
        size: u64,
        part_size: u64,
    ) -> Result<Vec<(CompletedPart, Vec<u8>)>, StorageError> {
        let ranges = fixed_ranges(size, part_size);
        let (bucket, key, owned_uri) = (bucket.to_owned(), key.to_owned(), uri.to_owned());
        let (upload_id, source) = (upload_id.to_owned(), source.to_owned());
        run_parts(
            self.options.concurrency,
            &ranges,
            uri,
            Direction::Put,
            |index, offset, length| {
                let inner = Arc::clone(self);
                let (bucket, key, uri, upload_id, source, file) = (
                    bucket.clone(),
                    key.clone(),
                    owned_uri.clone(),
                    upload_id.clone(),
                    source.clone(),
                    Arc::clone(file),
                );
                async move {
                    inner
                        .upload_part(
                            &bucket, &key, &uri, &upload_id, index, &source, offset, length, file,
                        )
                        .await
                }
            },
        )
        .await
    }

    /// Uploads one part. The part's checksum is computed first, reading the range through a
    /// small buffer; each attempt then streams the range from the file (`source`, opened anew,
    /// so parts in flight never share a file position), so no part is ever held in memory:
    /// biojob's memory stays flat whatever the part size and the parts in flight. Were the
    /// file to change in between, S3 would refuse the part (its checksum would not match).
    #[allow(clippy::too_many_arguments)]
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        uri: &str,
        upload_id: &str,
        index: usize,
        source: &Utf8Path,
        offset: u64,
        length: u64,
        file: Arc<File>,
    ) -> Result<(CompletedPart, Vec<u8>), StorageError> {
        let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let (algorithm, sdk_algorithm) = self.upload_algorithm();
        let digest =
            tokio::task::spawn_blocking(move || digest_range(&file, offset, length, algorithm))
                .await
                .map_err(|error| join_error(error, uri, Direction::Put))?
                .map_err(|error| StorageError::Io {
                    op: "reading a part of",
                    path: source.to_owned(),
                    direction: Direction::Put,
                    source: error,
                })?;
        let value = to_base64(&digest);
        let what = format!("part {number} (bytes {offset}+{length})");
        let etag = self
            .retrying("uploading", uri, Direction::Put, || async {
                let body = ByteStream::read_from()
                    .path(source.as_std_path())
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build()
                    .await
                    .map_err(|error| {
                        Fault::Fatal(StorageError::Io {
                            op: "reading a part of",
                            path: source.to_owned(),
                            direction: Direction::Put,
                            source: std::io::Error::other(error),
                        })
                    })?;
                let request = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
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
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(etag)
            .set_checksum_crc32_c((algorithm == Algorithm::Crc32c).then(|| value.clone()))
            .set_checksum_sha256((algorithm == Algorithm::Sha256).then(|| value.clone()))
            .build();
        Ok((part, digest))
    }

    async fn complete(
        &self,
        bucket: &str,
        key: &str,
        uri: &str,
        upload_id: &str,
        parts: Vec<(CompletedPart, Vec<u8>)>,
        algorithm: Algorithm,
    ) -> Result<Stored, StorageError> {
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
        let returned = self
            .retrying("completing the upload of", uri, Direction::Put, || async {
                let output = self
                    .client
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .multipart_upload(upload.clone())
                    .set_request_payer(self.payer())
                    .send()
                    .await
                    .map_err(|e| {
                        fault(
                            e,
                            "completing the upload of",
                            uri,
                            Direction::Put,
                            "CompleteMultipartUpload",
                        )
                    })?;
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

fn join_error_text(message: String, uri: &str, direction: Direction) -> StorageError {
    StorageError::Remote {
        op: "transferring",
        uri: uri.to_owned(),
        direction,
        message,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_object_once() {
        assert_eq!(fixed_ranges(0, 5), Vec::<(u64, u64)>::new());
        assert_eq!(fixed_ranges(1, 5), vec![(0, 1)]);
        assert_eq!(fixed_ranges(5, 5), vec![(0, 5)]);
        assert_eq!(fixed_ranges(6, 5), vec![(0, 5), (5, 1)]);
        assert_eq!(fixed_ranges(14, 5), vec![(0, 5), (5, 5), (10, 4)]);
    }

    #[test]
    fn refuses_to_block_inside_a_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        let error = runtime
            .block_on(async { block(&handle, Direction::Get, async {}) })
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot call the S3 store from inside an async runtime: call it from a plain thread"
        );
    }
}
