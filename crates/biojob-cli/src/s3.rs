//! The S3 store as the binary builds it: on first use only.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use biojob_process::CancelToken;
use biojob_storage::{
    Direction, ObjectMeta, ObjectReader, ObjectStore, ObjectUri, ObjectWriter, StorageError,
    Stores, TransferReport,
};
use biojob_storage_s3::{ChecksumAlgorithm, RetryPolicy, S3Options, S3Stop, S3Store, Sse};
use camino::Utf8Path;
use tokio::runtime::Handle;

use crate::cli::{ChecksumArg, S3Args, SseArg};

/// The S3 options from flags and the environment.
pub fn options(args: &S3Args) -> S3Options {
    let defaults = RetryPolicy::default();
    S3Options {
        endpoint_url: args.endpoint_url.clone().filter(|url| !url.is_empty()),
        region: args.region.clone().filter(|region| !region.is_empty()),
        force_path_style: args.s3_path_style,
        part_size: args.s3_part_size,
        concurrency: usize::from(args.s3_concurrency),
        checksum: match args.s3_checksum {
            ChecksumArg::Crc32c => ChecksumAlgorithm::Crc32c,
            ChecksumArg::Sha256 => ChecksumAlgorithm::Sha256,
        },
        sse: args.sse.map(|sse| match sse {
            SseArg::Aes256 => Sse::Aes256,
            SseArg::Kms => Sse::Kms {
                key_id: args.sse_kms_key_id.clone().filter(|k| !k.is_empty()),
            },
        }),
        requester_pays: args.requester_pays,
        retry: RetryPolicy {
            max_attempts: args.s3_max_attempts,
            base_delay: args.s3_retry_base_delay,
            max_delay: defaults.max_delay,
        },
        request_timeout: args.s3_request_timeout,
        credentials: None,
    }
}

/// The S3 store, built on first use: a run that touches no `s3://` URI never loads AWS
/// configuration (and never looks for a region or credentials).
pub struct LazyS3 {
    handle: Handle,
    options: S3Options,
    stop: S3Stop,
    store: OnceLock<Result<S3Store, String>>,
}

impl LazyS3 {
    /// A store that will be built with `options` and `stop` on the runtime behind `handle`.
    pub fn new(handle: Handle, options: S3Options, stop: S3Stop) -> LazyS3 {
        LazyS3 {
            handle,
            options,
            stop,
            store: OnceLock::new(),
        }
    }

    fn store(&self, uri: &ObjectUri, direction: Direction) -> Result<&S3Store, StorageError> {
        self.store
            .get_or_init(|| {
                S3Store::with_stop(self.handle.clone(), self.options.clone(), self.stop.clone())
                    .map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|message| StorageError::Remote {
                op: "configuring S3 for",
                uri: uri.to_string(),
                direction,
                message: message.clone(),
            })
    }
}

impl ObjectStore for LazyS3 {
    fn head(&self, uri: &ObjectUri) -> Result<Option<ObjectMeta>, StorageError> {
        self.store(uri, Direction::Get)?.head(uri)
    }

    fn get(&self, uri: &ObjectUri, destination: &Utf8Path) -> Result<TransferReport, StorageError> {
        self.store(uri, Direction::Get)?.get(uri, destination)
    }

    fn put(&self, source: &Utf8Path, uri: &ObjectUri) -> Result<TransferReport, StorageError> {
        self.store(uri, Direction::Put)?.put(source, uri)
    }

    fn open(&self, uri: &ObjectUri) -> Result<ObjectReader, StorageError> {
        self.store(uri, Direction::Get)?.open(uri)
    }

    fn open_ranges(
        &self,
        uri: &ObjectUri,
        meta: &ObjectMeta,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<ObjectReader, StorageError> {
        self.store(uri, Direction::Get)?
            .open_ranges(uri, meta, ranges)
    }

    fn create(
        &self,
        uri: &ObjectUri,
        spool: &Utf8Path,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        self.store(uri, Direction::Put)?.create(uri, spool)
    }

    fn create_new(&self, contents: &[u8], uri: &ObjectUri) -> Result<bool, StorageError> {
        self.store(uri, Direction::Put)?.create_new(contents, uri)
    }

    fn delete(&self, uri: &ObjectUri) -> Result<(), StorageError> {
        self.store(uri, Direction::Put)?.delete(uri)
    }

    fn list(&self, uri: &ObjectUri) -> Result<Vec<String>, StorageError> {
        self.store(uri, Direction::Put)?.list(uri)
    }
}

/// Local paths, and `s3://` through the lazily built S3 store, whose waits end when `cancel`
/// is cancelled (SIGTERM, SIGINT): staging in at once, publishing after `grace`.
pub fn stores(handle: Handle, args: &S3Args, cancel: &CancelToken, grace: Duration) -> Stores {
    let cancel = cancel.clone();
    let stop = S3Stop::new(
        move || {
            cancel
                .reason()
                .map(|reason| (reason.exit_class(), reason.to_string()))
        },
        grace,
    );
    Stores::with_s3(Arc::new(LazyS3::new(handle, options(args), stop)))
}
