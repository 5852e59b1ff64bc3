//! Small whole-object operations: an atomic create (a lock), a delete, a listing of one
//! level under a prefix.

use aws_sdk_s3::primitives::ByteStream;
use biojob_storage::{Direction, StorageError};

use crate::client::{Inner, Object};
use crate::retry::{Fault, fault, status_of};

impl Inner {
    /// `PutObject` with `If-None-Match: *`: `true` when the object was created, `false` when
    /// one was already there (HTTP 412). A 409 (`ConditionalRequestConflict`: another create
    /// of the same key was in flight) is retried, as AWS advises.
    pub(crate) async fn create_new(
        &self,
        object: &Object,
        contents: Vec<u8>,
    ) -> Result<bool, StorageError> {
        let uri = object.uri.as_str();
        self.retrying("creating", uri, Direction::Put, || async {
            let result = self
                .client
                .put_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .if_none_match("*")
                .body(ByteStream::from(contents.clone()))
                .set_request_payer(self.payer())
                .send()
                .await;
            match result {
                Ok(_) => Ok(true),
                Err(error) if status_of(&error) == Some(412) => Ok(false),
                Err(error) if status_of(&error) == Some(409) => Err(Fault::Retry(format!(
                    "PutObject If-None-Match: HTTP 409 (a concurrent create of {uri})"
                ))),
                Err(error) => Err(fault(error, "creating", uri, Direction::Put, "PutObject")),
            }
        })
        .await
    }

    /// `DeleteObject` (S3 answers 204 whether or not the key existed).
    pub(crate) async fn delete(&self, object: &Object) -> Result<(), StorageError> {
        let uri = object.uri.as_str();
        self.retrying("removing", uri, Direction::Put, || async {
            self.client
                .delete_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .set_request_payer(self.payer())
                .send()
                .await
                .map(|_| ())
                .map_err(|error| fault(error, "removing", uri, Direction::Put, "DeleteObject"))
        })
        .await
    }

    /// The names under `prefix` (which ends with `/`, or is empty) up to the next `/`, sorted:
    /// `ListObjectsV2` with a `/` delimiter, page after page.
    pub(crate) async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        uri: &str,
    ) -> Result<Vec<String>, StorageError> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .retrying("listing", uri, Direction::Put, || async {
                    self.client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .delimiter("/")
                        .set_continuation_token(token.clone())
                        .set_request_payer(self.payer())
                        .send()
                        .await
                        .map_err(|error| {
                            fault(error, "listing", uri, Direction::Put, "ListObjectsV2")
                        })
                })
                .await?;
            names.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key())
                    .filter_map(|key| key.strip_prefix(prefix))
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        names.sort();
        Ok(names)
    }
}
