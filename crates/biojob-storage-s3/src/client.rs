//! The client a store holds: the SDK client built from the AWS chains and [`S3Options`], the
//! request settings every call shares (requester pays, checksum, SSE), request counters, and
//! the object a call addresses.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    ChecksumAlgorithm as SdkChecksumAlgorithm, RequestPayer, ServerSideEncryption,
};
use biojob_storage::{Direction, ObjectUri, StorageError};
use camino::Utf8Path;
use tokio::runtime::Handle;

use crate::checksum::Algorithm;
use crate::{ChecksumAlgorithm, S3Options, S3Stop, Sse};

/// Request counts since the store was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferStats {
    /// S3 requests sent (every attempt counts).
    pub requests: u64,
    /// Attempts that failed with a retryable error and were retried.
    pub retries: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
}

impl Counters {
    pub(crate) fn stats(&self) -> TransferStats {
        TransferStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// What every transfer of a store shares.
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) handle: Handle,
    pub(crate) options: S3Options,
    pub(crate) counters: Counters,
    /// What ends the waits when the job stops, if anything.
    pub(crate) stop: Option<S3Stop>,
    /// When a publishing call (upload, creation, removal, listing) first saw the stop.
    pub(crate) stop_seen: OnceLock<Instant>,
}

impl Inner {
    /// Builds the client from the standard AWS configuration chain and `options` on the
    /// runtime behind `handle`: with an endpoint and no region, the region is `us-east-1`;
    /// path-style addressing is on when an endpoint is given, unless set otherwise; the SDK's
    /// own retries are off ([`Inner::retrying`] retries each request); an attempt whose answer
    /// has not begun after `options.request_timeout` fails as a timeout.
    ///
    /// # Errors
    /// [`StorageError::Remote`] when called from inside an async runtime.
    pub(crate) fn connect(
        handle: Handle,
        options: S3Options,
        stop: Option<S3Stop>,
    ) -> Result<Inner, StorageError> {
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
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                shared
                    .timeout_config()
                    .map_or_else(
                        aws_sdk_s3::config::timeout::TimeoutConfig::builder,
                        |defaults| defaults.to_builder(),
                    )
                    .operation_attempt_timeout(options.request_timeout)
                    .build(),
            )
            .build();
        let mut options = options;
        options.concurrency = options.concurrency.max(1);
        options.retry.max_attempts = options.retry.max_attempts.max(1);
        Ok(Inner {
            client: Client::from_conf(config),
            handle,
            options,
            counters: Counters::default(),
            stop,
            stop_seen: OnceLock::new(),
        })
    }

    /// `x-amz-request-payer`, when configured.
    pub(crate) fn payer(&self) -> Option<RequestPayer> {
        self.options
            .requester_pays
            .then_some(RequestPayer::Requester)
    }

    /// The checksum uploads carry, as biojob computes it and as the SDK names it.
    pub(crate) fn upload_algorithm(&self) -> (Algorithm, SdkChecksumAlgorithm) {
        match self.options.checksum {
            ChecksumAlgorithm::Crc32c => (Algorithm::Crc32c, SdkChecksumAlgorithm::Crc32C),
            ChecksumAlgorithm::Sha256 => (Algorithm::Sha256, SdkChecksumAlgorithm::Sha256),
        }
    }

    /// Server-side encryption and KMS key id for uploads.
    pub(crate) fn encryption(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.options.sse {
            None => (None, None),
            Some(Sse::Aes256) => (Some(ServerSideEncryption::Aes256), None),
            Some(Sse::Kms { key_id }) => (Some(ServerSideEncryption::AwsKms), key_id.clone()),
        }
    }
}

/// The object a call addresses: bucket, key, and the `s3://` URI errors name.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) uri: String,
}

impl Object {
    /// The bucket and key of an `s3://` URI.
    ///
    /// # Errors
    /// [`StorageError::InvalidUri`] without a key; [`StorageError::Remote`] for a local path.
    pub(crate) fn from_uri(uri: &ObjectUri, direction: Direction) -> Result<Object, StorageError> {
        match uri {
            ObjectUri::S3 { bucket, key } if !key.is_empty() => Ok(Object {
                bucket: bucket.clone(),
                key: key.clone(),
                uri: uri.to_string(),
            }),
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
}

/// An object pinned to the ETag its `HEAD` returned, so that every ranged `GET` reads the same
/// version (`If-Match`).
#[derive(Debug, Clone)]
pub(crate) struct Pinned {
    pub(crate) object: Object,
    pub(crate) etag: Option<String>,
}

/// Runs `future` to completion on the runtime behind `handle`.
///
/// # Errors
/// [`StorageError::Remote`] when called from inside an async runtime (where blocking would
/// panic).
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

/// The error for a local I/O failure `op` on `path`, as a `map_err` argument.
pub(crate) fn io_error(
    op: &'static str,
    path: &Utf8Path,
    direction: Direction,
) -> impl FnOnce(std::io::Error) -> StorageError + use<> {
    let path = path.to_owned();
    move |source| StorageError::Io {
        op,
        path,
        direction,
        source,
    }
}

/// A length S3 reports, as `u64` (0 when absent or negative).
pub(crate) fn length(value: Option<i64>) -> u64 {
    value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn objects_come_from_s3_uris_with_a_key() {
        let object = Object::from_uri(
            &ObjectUri::parse("s3://bucket/a b/c.fq.gz").unwrap(),
            Direction::Get,
        )
        .unwrap();
        assert_eq!(
            (
                object.bucket.as_str(),
                object.key.as_str(),
                object.uri.as_str()
            ),
            ("bucket", "a b/c.fq.gz", "s3://bucket/a b/c.fq.gz")
        );
        let error = Object::from_uri(&ObjectUri::parse("s3://bucket").unwrap(), Direction::Get)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid URI \"s3://bucket/\": the key is missing"
        );
        let error =
            Object::from_uri(&ObjectUri::parse("/tmp/x").unwrap(), Direction::Put).unwrap_err();
        assert_eq!(
            error.to_string(),
            "S3 store cannot handle /tmp/x: not an s3:// URI"
        );
    }
}
