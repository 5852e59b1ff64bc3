//! One ranged `GET` of a pinned object, and its body read piece by piece.

use aws_sdk_s3::primitives::ByteStream;
use biojob_storage::{Direction, StorageError};

use crate::client::{Inner, Pinned};
use crate::retry::{Fault, fault, status_of};

impl Inner {
    /// One attempt at `GET` of `length` bytes from `offset` of `pinned` (`If-Match` its ETag);
    /// `what` names the request in errors.
    ///
    /// # Errors
    /// The attempt's fault; a changed object (HTTP 412) is fatal.
    pub(crate) async fn ranged_get(
        &self,
        pinned: &Pinned,
        offset: u64,
        length: u64,
        what: &str,
    ) -> Result<ByteStream, Fault> {
        let object = &pinned.object;
        let range = format!("bytes={offset}-{}", offset + length - 1);
        let result = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .range(range)
            .set_if_match(pinned.etag.clone())
            .set_request_payer(self.payer())
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.body),
            Err(error) if status_of(&error) == Some(412) => {
                Err(Fault::Fatal(StorageError::Remote {
                    op: "downloading",
                    uri: object.uri.clone(),
                    direction: Direction::Get,
                    message: "the object changed during the download (ETag mismatch)".into(),
                }))
            }
            Err(error) => Err(fault(
                error,
                "downloading",
                &object.uri,
                Direction::Get,
                what,
            )),
        }
    }
}

/// Reads a ranged `GET`'s body of `length` bytes from `offset`, giving each piece to `sink`
/// with its offset in the object as it arrives.
///
/// # Errors
/// A body cut short or too long is a retryable fault; `sink`'s faults are passed on.
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
            crate::retry::causes(&error)
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
