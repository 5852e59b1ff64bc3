//! Per-request retries and the classification of S3 failures (retry, or give up with a
//! [`StorageError`]).

use std::future::Future;
use std::sync::atomic::Ordering;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use biojob_storage::{Direction, StorageError};
use tracing::warn;

use crate::client::Inner;

/// `error` and each of its sources in words, joined by `: `.
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.ends_with(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

/// One attempt's failure: retry it, or give up with this error.
pub(crate) enum Fault {
    Retry(String),
    Fatal(StorageError),
}

/// Classifies an SDK error from the request `what` of operation `op`: throttling, 5xx,
/// timeouts and connection errors are retried; HTTP 403 (credentials, permissions) is
/// [`StorageError::Denied`]; anything else is fatal.
pub(crate) fn fault<E>(
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
        // The service's own words (code, status, message), not the whole response; a `HEAD`
        // response has no body, so only its status.
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let mut text = match error.code() {
                Some(code) => format!("{what}: {code} (HTTP {status})"),
                None => format!("{what}: HTTP {status}"),
            };
            if let Some(message) = error.message() {
                text.push_str(&format!(": {message}"));
            }
            text
        }
        // The chain of causes in words (`dispatch failure: io error: … : Connection refused
        // (os error 111)`); the SDK's own context rendering ends with a Debug dump.
        _ => format!("{what}: {}", causes(&error)),
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
    } else if status_of(&error) == Some(403) {
        Fault::Fatal(StorageError::Denied {
            op,
            uri: uri.to_owned(),
            direction,
            message,
        })
    } else {
        Fault::Fatal(StorageError::Remote {
            op,
            uri: uri.to_owned(),
            direction,
            message,
        })
    }
}

/// The HTTP status of a service error.
pub(crate) fn status_of<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    match error {
        SdkError::ServiceError(context) => Some(context.raw().status().as_u16()),
        _ => None,
    }
}

/// A transfer task that panicked or was cancelled.
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

impl Inner {
    /// Runs `attempt` until it succeeds, fails fatally, or the retry budget
    /// ([`crate::RetryPolicy`]) is spent; counts requests and retries.
    ///
    /// # Errors
    /// The fatal error, or [`StorageError::Remote`] with the last retryable failure and the
    /// number of attempts.
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
}
