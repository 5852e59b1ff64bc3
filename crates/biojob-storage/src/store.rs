//! The storage trait and the scheme router.

use std::sync::Arc;

use camino::Utf8Path;
use serde::Serialize;

use crate::{LocalStore, ObjectUri, StorageError};

/// What a store knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
}

/// The outcome of a completed, verified transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// Bytes transferred.
    pub bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// The checksum the remote store holds for the object and that was verified against the
    /// bytes transferred (`crc32c:BASE64`, `sha256:BASE64-N` for a composite checksum of N
    /// parts); `None` when the store keeps none (local files).
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
