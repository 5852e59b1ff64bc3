//! Storage errors.

use biojob_core::{Classify, ExitClass};
use camino::Utf8PathBuf;

/// Which way a transfer was going: it decides the exit class of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Into scratch (staging in): failures are input staging failures.
    Get,
    /// Out of scratch (staging out): failures are output staging failures.
    Put,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The URI cannot be parsed or uses an unsupported scheme.
    #[error("invalid URI {uri:?}: {reason}")]
    InvalidUri {
        /// The text given.
        uri: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The object does not exist.
    #[error("{uri} does not exist")]
    NotFound {
        /// The object.
        uri: String,
    },
    /// A bucket or key that a local path could not hold as it is: a `.`, `..` or empty segment
    /// (S3 keeps such a segment literally, a file system resolves it, so the object would be
    /// staged outside its place or under another name).
    #[error(
        "{uri}: {what}; S3 keeps '.', '..' and empty segments as they are, a file system does not, so they are refused"
    )]
    UnsafeKey {
        /// The URI as given.
        uri: String,
        /// Which segment, e.g. "the key has a '..' segment".
        what: String,
    },
    /// A local input that exists but is not a regular file (a FIFO, a device, a directory):
    /// refused before it is opened, since opening a FIFO blocks and a device never ends.
    #[error("{uri} is {kind}, not a regular file")]
    NotAFile {
        /// The path.
        uri: String,
        /// What it is, e.g. "a FIFO (named pipe)".
        kind: &'static str,
    },
    /// No store handles this URI's scheme.
    #[error("{uri}: no store is configured for {scheme}:// URIs")]
    NoStore {
        /// The object.
        uri: String,
        /// The scheme.
        scheme: &'static str,
    },
    /// A local I/O failure.
    #[error("{op} {path}")]
    Io {
        /// What was being done (`reading`, `writing`, `renaming to` …).
        op: &'static str,
        /// The local path.
        path: Utf8PathBuf,
        /// The transfer direction.
        direction: Direction,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A failure reported by a remote store.
    #[error("{op} {uri}: {message}")]
    Remote {
        /// What was being done.
        op: &'static str,
        /// The object.
        uri: String,
        /// The transfer direction.
        direction: Direction,
        /// What the store said.
        message: String,
    },
    /// The remote store refused the request: wrong or missing credentials, or no permission
    /// (S3's HTTP 403). Retrying cannot help.
    #[error("{op} {uri}: access denied: {message}")]
    Denied {
        /// What was being done.
        op: &'static str,
        /// The object.
        uri: String,
        /// The transfer direction (it decides which permission the remedy names).
        direction: Direction,
        /// What the store said.
        message: String,
    },
    /// A transfer given up because the job is stopping (SIGTERM, SIGINT): a wait on the
    /// network that would otherwise outlast the stop (a server that does not answer, retries).
    #[error("{op} {uri}: given up: {reason}")]
    Stopped {
        /// What was being done.
        op: &'static str,
        /// The object.
        uri: String,
        /// The transfer direction.
        direction: Direction,
        /// The stop's class: [`ExitClass::Terminated`] or [`ExitClass::Interrupted`].
        class: ExitClass,
        /// Why, e.g. "SIGTERM received".
        reason: String,
    },
    /// The object's size or checksum did not match after the transfer.
    #[error("{uri}: {detail}")]
    Verification {
        /// The object.
        uri: String,
        /// The transfer direction.
        direction: Direction,
        /// Expected vs found.
        detail: String,
    },
}

impl Classify for StorageError {
    fn exit_class(&self) -> ExitClass {
        let by_direction = |direction: &Direction| match direction {
            Direction::Get => ExitClass::InputStaging,
            Direction::Put => ExitClass::OutputStaging,
        };
        match self {
            StorageError::InvalidUri { .. }
            | StorageError::NoStore { .. }
            | StorageError::Denied { .. } => ExitClass::Usage,
            StorageError::NotFound { .. }
            | StorageError::UnsafeKey { .. }
            | StorageError::NotAFile { .. } => ExitClass::InputInvalid,
            // A full disk while staging in is scratch's; while publishing, it is the output
            // location's (output staging), whatever the cause of the full disk.
            StorageError::Io {
                source,
                direction: Direction::Get,
                ..
            } if source.kind() == std::io::ErrorKind::StorageFull => ExitClass::Scratch,
            StorageError::Io { direction, .. } => by_direction(direction),
            StorageError::Remote { direction, .. }
            | StorageError::Verification { direction, .. } => by_direction(direction),
            StorageError::Stopped { class, .. } => *class,
        }
    }

    fn remedy(&self) -> Option<String> {
        match self {
            StorageError::NotFound { .. } => {
                Some("check the path or the s3:// URI: nothing is there".to_owned())
            }
            StorageError::NotAFile { .. } => Some(
                "give a regular file (write a pipe's or a device's output to a file first)"
                    .to_owned(),
            ),
            StorageError::Denied { direction, .. } => Some(format!(
                "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, \
                 or the job role under AWS Batch) and that the bucket policy and the job role \
                 allow {}",
                match direction {
                    Direction::Get => {
                        "s3:GetObject (and s3:ListBucket: without it a missing key is answered \
                         with 403)"
                    }
                    Direction::Put => "s3:PutObject (and kms:GenerateDataKey with SSE-KMS)",
                }
            )),
            StorageError::Io {
                source, direction, ..
            } if source.kind() == std::io::ErrorKind::StorageFull => Some(
                match direction {
                    Direction::Get => "free space on the scratch filesystem, or use a larger disk",
                    Direction::Put => {
                        "free space where the outputs go (the output prefix's filesystem), or \
                         give an output prefix on a larger disk"
                    }
                }
                .to_owned(),
            ),
            _ => None,
        }
    }
}
