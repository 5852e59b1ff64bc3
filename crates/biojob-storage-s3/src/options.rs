//! Settings of the S3 store: endpoint, part size, concurrency, checksums, retries, SSE.

use std::time::Duration;

/// 1 MiB in bytes.
pub const MIB: u64 = 1024 * 1024;
/// S3's smallest part (except the last one of an upload): 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part: 5 GiB.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// S3's largest object: 5 TiB.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * MIB;
/// S3's largest number of parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// Default part size: 16 MiB.
pub const DEFAULT_PART_SIZE: u64 = 16 * MIB;
/// Default number of parts in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Default [`S3Options::request_timeout`]: 2 minutes.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The checksum biojob asks S3 to store with what it uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumAlgorithm {
    /// CRC32C (Castagnoli), hardware-accelerated; the default.
    #[default]
    Crc32c,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// `crc32c` or `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32c => "crc32c",
            ChecksumAlgorithm::Sha256 => "sha256",
        }
    }
}

impl std::str::FromStr for ChecksumAlgorithm {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "crc32c" => Ok(ChecksumAlgorithm::Crc32c),
            "sha256" | "sha-256" => Ok(ChecksumAlgorithm::Sha256),
            _ => Err(format!(
                "unknown checksum {text:?} (expected crc32c or sha256)"
            )),
        }
    }
}

/// Server-side encryption requested for uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3 (`AES256`).
    Aes256,
    /// SSE-KMS (`aws:kms`), with a key id or ARN (`None`: the bucket's or account's default key).
    Kms {
        /// The KMS key id, alias or ARN.
        key_id: Option<String>,
    },
}

/// Per-request retries: exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request (per part), including the first; at least 1.
    pub max_attempts: u32,
    /// The first backoff's upper bound; doubled after each failed attempt.
    pub base_delay: Duration,
    /// The largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (1-based `attempt` failed): a uniformly random
    /// duration in `[0, min(max_delay, base_delay × 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// A fixed access key, for an S3-compatible server; without one the standard credential chain
/// is used. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Everything the S3 store is configured with. Credentials and (without `region`) the region
/// come from the standard AWS chains (environment, profile, web identity, ECS, IMDS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// An S3-compatible endpoint, e.g. `http://127.0.0.1:8333`; `None`: AWS.
    pub endpoint_url: Option<String>,
    /// The region; `None`: the standard chain (or `us-east-1` when an endpoint is given).
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); `None`: on exactly when `endpoint_url`
    /// is given.
    pub force_path_style: Option<bool>,
    /// Part size for multipart uploads and ranged downloads, in bytes (grown for large
    /// objects so an upload stays within 10,000 parts).
    pub part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
    /// The checksum stored with uploads.
    pub checksum: ChecksumAlgorithm,
    /// Server-side encryption for uploads.
    pub sse: Option<Sse>,
    /// Send `x-amz-request-payer: requester` (the requester pays for requests and transfer).
    pub requester_pays: bool,
    /// Retries per request.
    pub retry: RetryPolicy,
    /// The longest one attempt of a request may take until the response's head arrives,
    /// counted from when it is sent (an upload's body included); then it is abandoned and
    /// retried like a lost connection. A body that stops flowing mid-way is the SDK's stalled
    /// stream protection's (docs/s3.md).
    pub request_timeout: std::time::Duration,
    /// Fixed credentials instead of the standard chain (tests, S3-compatible servers).
    pub credentials: Option<StaticCredentials>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint_url: None,
            region: None,
            force_path_style: None,
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            checksum: ChecksumAlgorithm::default(),
            sse: None,
            requester_pays: false,
            retry: RetryPolicy::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            credentials: None,
        }
    }
}

/// The part size used for an object of `size` bytes: `configured` (at least 5 MiB, at most
/// 5 GiB), grown in whole MiB when needed so that the object fits in 10,000 parts.
///
/// ```
/// use biojob_storage_s3::{part_size_for, MAX_OBJECT_SIZE, MAX_PARTS, MIB};
/// assert_eq!(part_size_for(100 * MIB, 8 * MIB), 8 * MIB);
/// let part = part_size_for(MAX_OBJECT_SIZE, 8 * MIB);
/// assert!(MAX_OBJECT_SIZE.div_ceil(part) <= MAX_PARTS);
/// ```
pub fn part_size_for(size: u64, configured: u64) -> u64 {
    let configured = configured.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    configured.max(needed).min(MAX_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_to_stay_within_ten_thousand_parts() {
        assert_eq!(part_size_for(0, 8 * MIB), 8 * MIB);
        assert_eq!(part_size_for(1, MIB), MIN_PART_SIZE);
        assert_eq!(part_size_for(80_000 * MIB, 8 * MIB), 8 * MIB);
        assert_eq!(part_size_for(80_000 * MIB + 1, 8 * MIB), 9 * MIB);
        assert_eq!(part_size_for(MAX_OBJECT_SIZE, 8 * MIB), 525 * MIB);
        assert_eq!(MAX_OBJECT_SIZE.div_ceil(525 * MIB), 9_987);
        assert_eq!(
            part_size_for(MAX_OBJECT_SIZE, 16 * 1024 * MIB),
            MAX_PART_SIZE
        );
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        for _ in 0..100 {
            assert!(policy.backoff(1) <= Duration::from_millis(100));
            assert!(policy.backoff(2) <= Duration::from_millis(200));
            assert!(policy.backoff(3) <= Duration::from_millis(350));
            assert!(policy.backoff(40) <= Duration::from_millis(350));
        }
        let distinct: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| policy.backoff(3)).collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let options = S3Options {
            credentials: Some(StaticCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG".into(),
            }),
            ..S3Options::default()
        };
        let text = format!("{options:?}");
        assert!(text.contains("AKIDEXAMPLE"));
        assert!(!text.contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn checksum_names_parse() {
        assert_eq!("CRC32C".parse(), Ok(ChecksumAlgorithm::Crc32c));
        assert_eq!("sha256".parse(), Ok(ChecksumAlgorithm::Sha256));
        assert_eq!(
            "md5".parse::<ChecksumAlgorithm>(),
            Err("unknown checksum \"md5\" (expected crc32c or sha256)".to_owned())
        );
    }
}
