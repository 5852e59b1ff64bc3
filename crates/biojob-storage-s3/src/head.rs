//! What S3 holds about an object: `HEAD` (size, ETag, stored checksum) and the byte ranges of a
//! multipart object's parts.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::ChecksumMode;
use biojob_storage::{Direction, StorageError};

use crate::checksum::{Algorithm, Stored};
use crate::client::{Inner, Object, length};
use crate::parts::fixed_ranges;
use crate::retry::{fault, status_of};

impl Inner {
    /// `HEAD` with checksums (of part `part_number`, when given); `None` when the object does
    /// not exist.
    pub(crate) async fn head_object(
        &self,
        object: &Object,
        part_number: Option<i32>,
        direction: Direction,
    ) -> Result<Option<HeadObjectOutput>, StorageError> {
        let uri = object.uri.as_str();
        self.retrying("reading metadata of", uri, direction, || async {
            let result = self
                .client
                .head_object()
                .bucket(&object.bucket)
                .key(&object.key)
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

    /// The `(offset, length)` ranges of the `parts` parts of a `size`-byte multipart object:
    /// uniform when every part but the last has part 1's size (as S3 clients upload them),
    /// else each part's range as S3 reports it.
    ///
    /// # Errors
    /// [`StorageError::Verification`] when the parts do not add up to `size`.
    pub(crate) async fn part_ranges(
        &self,
        object: &Object,
        size: u64,
        parts: u64,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        if parts <= 1 {
            return Ok(fixed_ranges(size, size.max(1)));
        }
        let first = self
            .head_object(object, Some(1), Direction::Get)
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
            let head = self.head_object(object, Some(part), Direction::Get).await?;
            let part_length = head.map_or(0, |head| length(head.content_length()));
            ranges.push((next, part_length));
            next += part_length;
        }
        if next != size {
            return Err(StorageError::Verification {
                uri: object.uri.clone(),
                direction: Direction::Get,
                detail: format!("its {parts} parts add up to {next} bytes, not {size}"),
            });
        }
        Ok(ranges)
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
