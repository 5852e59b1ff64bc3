//! [`S3Store`]: the [`ObjectStore`] implementation over the client, downloads, uploads and
//! streamed reads.

use std::sync::Arc;

use biojob_storage::{
    Direction, ObjectMeta, ObjectReader, ObjectStore, ObjectUri, ObjectWriter, StorageError,
    TransferReport,
};
use camino::{Utf8Path, Utf8PathBuf};
use tokio::runtime::Handle;

use crate::client::{Inner, Object, length};
use crate::{S3Options, S3Stop, TransferStats};

/// The [`ObjectStore`] for `s3://` URIs: parallel ranged `GET`s into `<destination>.partial`,
/// verified (size, stored checksum) before the rename; single or multipart `PUT`s with
/// per-part checksums; streamed reads; per-request retries. Design: `docs/s3.md`.
///
/// Each call blocks on the runtime given to [`S3Store::new`], so it must come from a thread
/// that is not one of that runtime's workers; from inside a runtime it fails instead of
/// panicking.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The options hold no secret; credentials are never shown.
        f.debug_struct("S3Store")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
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
        Ok(S3Store {
            inner: Arc::new(Inner::connect(handle, options, None)?),
        })
    }

    /// [`S3Store::new`] with a stop that ends every call's wait on the network (see
    /// [`S3Stop`]): a job stopping while a server does not answer, or while a request is
    /// retried, ends within the grace period instead of when the server or the retries do.
    ///
    /// # Errors
    /// As [`S3Store::new`].
    pub fn with_stop(
        handle: Handle,
        options: S3Options,
        stop: S3Stop,
    ) -> Result<S3Store, StorageError> {
        Ok(S3Store {
            inner: Arc::new(Inner::connect(handle, options, Some(stop))?),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &S3Options {
        &self.inner.options
    }

    /// Requests sent and retried so far.
    pub fn stats(&self) -> TransferStats {
        self.inner.counters.stats()
    }
}

impl ObjectStore for S3Store {
    fn head(&self, uri: &ObjectUri) -> Result<Option<ObjectMeta>, StorageError> {
        let object = Object::from_uri(uri, Direction::Get)?;
        let head = self.inner.wait(
            "reading metadata of",
            &object.uri,
            Direction::Get,
            self.inner.head_object(&object, None, Direction::Get),
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
        let object = Object::from_uri(uri, Direction::Get)?;
        let partial = Utf8PathBuf::from(format!("{destination}.partial"));
        let uri = object.uri.clone();
        let result = self
            .inner
            .wait(
                "downloading",
                &uri,
                Direction::Get,
                Arc::clone(&self.inner).download(object, destination.to_owned(), partial.clone()),
            )
            .and_then(|result| result);
        if result.is_err() {
            // Nothing half-written stays behind; the original error is what matters.
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    fn put(&self, source: &Utf8Path, uri: &ObjectUri) -> Result<TransferReport, StorageError> {
        let object = Object::from_uri(uri, Direction::Put)?;
        let uri = object.uri.clone();
        self.inner.wait(
            "uploading",
            &uri,
            Direction::Put,
            Arc::clone(&self.inner).upload(source.to_owned(), object),
        )?
    }

    fn open(&self, uri: &ObjectUri) -> Result<ObjectReader, StorageError> {
        let object = Object::from_uri(uri, Direction::Get)?;
        let uri = object.uri.clone();
        self.inner.wait(
            "streaming",
            &uri,
            Direction::Get,
            crate::stream::open(Arc::clone(&self.inner), object),
        )?
    }

    fn open_ranges(
        &self,
        uri: &ObjectUri,
        meta: &ObjectMeta,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<ObjectReader, StorageError> {
        let object = Object::from_uri(uri, Direction::Get)?;
        let text = object.uri.clone();
        self.inner.wait(
            "streaming",
            &text,
            Direction::Get,
            crate::stream::open_ranges(Arc::clone(&self.inner), object, uri, meta, ranges),
        )?
    }

    /// A multipart upload written as the bytes come ([`crate::writer`]): parts of the store's
    /// part size spooled under `spool`, [`WRITE_AHEAD_PARTS`](crate::WRITE_AHEAD_PARTS) in
    /// flight while the next is written, each with its checksum; completed, and checked
    /// against the composite checksum and the size, only by `complete`.
    fn create(
        &self,
        uri: &ObjectUri,
        spool: &Utf8Path,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        let object = Object::from_uri(uri, Direction::Put)?;
        Ok(Box::new(crate::writer::S3Writer::new(
            Arc::clone(&self.inner),
            object,
            spool,
        )))
    }

    fn create_new(&self, contents: &[u8], uri: &ObjectUri) -> Result<bool, StorageError> {
        let object = Object::from_uri(uri, Direction::Put)?;
        self.inner.wait(
            "creating",
            &object.uri,
            Direction::Put,
            self.inner.create_new(&object, contents.to_vec()),
        )?
    }

    fn delete(&self, uri: &ObjectUri) -> Result<(), StorageError> {
        let object = Object::from_uri(uri, Direction::Put)?;
        self.inner.wait(
            "removing",
            &object.uri,
            Direction::Put,
            self.inner.delete(&object),
        )?
    }

    fn list(&self, uri: &ObjectUri) -> Result<Vec<String>, StorageError> {
        let ObjectUri::S3 { bucket, key } = uri else {
            return Err(StorageError::Remote {
                op: "S3 store cannot handle",
                uri: uri.to_string(),
                direction: Direction::Put,
                message: "not an s3:// URI".into(),
            });
        };
        let prefix = if key.is_empty() || key.ends_with('/') {
            key.clone()
        } else {
            format!("{key}/")
        };
        let text = uri.to_string();
        self.inner.wait(
            "listing",
            &text,
            Direction::Put,
            self.inner.list(bucket, &prefix, &text),
        )?
    }
}
