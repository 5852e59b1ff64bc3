//! S3 checksums: per-part digests, full-object CRCs combined from parts, composite checksums.
//!
//! S3 stores either a full-object checksum (`base64`) or, for a multipart upload, a composite
//! one (`base64-N`): the checksum of the concatenated binary checksums of the N parts.

use aws_smithy_types::base64;
use crc_fast::CrcAlgorithm;
use sha2::{Digest, Sha256};

/// An algorithm S3 can store a checksum with, as far as biojob verifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Crc32c,
    Crc32,
    Sha256,
}

impl Algorithm {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32c => "crc32c",
            Algorithm::Crc32 => "crc32",
            Algorithm::Sha256 => "sha256",
        }
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Algorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Sha256 => None,
        }
    }

    /// The binary digest of `data` (4 big-endian bytes for the CRCs, 32 for SHA-256).
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self.crc() {
            Some(crc) => crc32_bytes(crc_fast::checksum(crc, data)),
            None => Sha256::digest(data).to_vec(),
        }
    }

    /// The full-object digest of consecutive parts given as `(digest, length)`, for the CRCs
    /// (which combine); `None` for SHA-256, which does not.
    pub(crate) fn combine(self, parts: &[(Vec<u8>, u64)]) -> Option<Vec<u8>> {
        let crc = self.crc()?;
        let mut total: Option<u64> = None;
        for (digest, length) in parts {
            let value = u64::from(u32::from_be_bytes(digest.get(..4)?.try_into().ok()?));
            total = Some(match total {
                None => value,
                Some(sum) => crc_fast::checksum_combine(crc, sum, value, *length),
            });
        }
        Some(crc32_bytes(
            total.unwrap_or_else(|| crc_fast::checksum(crc, &[])),
        ))
    }

    /// The composite digest of parts' digests: the digest of their concatenation.
    pub(crate) fn composite(self, digests: &[Vec<u8>]) -> Vec<u8> {
        self.digest(&digests.concat())
    }
}

/// A digest computed as data arrives.
pub(crate) enum Running {
    None,
    Crc(Box<crc_fast::Digest>),
    Sha256(Sha256),
}

impl Running {
    pub(crate) fn new(algorithm: Option<Algorithm>) -> Running {
        match algorithm.map(|a| (a, a.crc())) {
            None => Running::None,
            Some((_, Some(crc))) => Running::Crc(Box::new(crc_fast::Digest::new(crc))),
            Some((_, None)) => Running::Sha256(Sha256::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Running::None => {}
            Running::Crc(digest) => digest.update(data),
            Running::Sha256(digest) => digest.update(data),
        }
    }

    /// The binary digest, as [`Algorithm::digest`] gives it; empty without an algorithm.
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Running::None => Vec::new(),
            Running::Crc(digest) => crc32_bytes(digest.finalize()),
            Running::Sha256(digest) => digest.finalize().to_vec(),
        }
    }
}

fn crc32_bytes(value: u64) -> Vec<u8> {
    // The CRC-32 variants fit in the low 32 bits.
    (value as u32).to_be_bytes().to_vec()
}

/// A checksum as S3 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) algorithm: Algorithm,
    /// The digest, decoded from base64.
    pub(crate) digest: Vec<u8>,
    /// `Some(N)` for a composite checksum of N parts.
    pub(crate) parts: Option<u64>,
}

impl Stored {
    /// Parses `base64` or `base64-N`; `None` when it is not valid.
    pub(crate) fn parse(algorithm: Algorithm, text: &str) -> Option<Stored> {
        let (value, parts) = match text.rsplit_once('-') {
            Some((value, count)) => (value, Some(count.parse().ok()?)),
            None => (text, None),
        };
        Some(Stored {
            algorithm,
            digest: base64::decode(value).ok()?,
            parts,
        })
    }

    /// `crc32c:BASE64` or `crc32c:BASE64-N`, as recorded in transfer reports.
    pub(crate) fn describe(&self) -> String {
        let mut text = format!("{}:{}", self.algorithm.name(), base64::encode(&self.digest));
        if let Some(parts) = self.parts {
            text.push_str(&format!("-{parts}"));
        }
        text
    }
}

/// Base64 of a binary digest, as S3 headers carry it.
pub(crate) fn to_base64(digest: &[u8]) -> String {
    base64::encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // RFC 3720 test vector: 32 zero bytes → CRC32C 0x8A9136AA.
        assert_eq!(
            Algorithm::Crc32c.digest(&[0u8; 32]),
            vec![0x8a, 0x91, 0x36, 0xaa]
        );
        assert_eq!(to_base64(&Algorithm::Crc32c.digest(b"")), "AAAAAA==");
        assert_eq!(
            to_base64(&Algorithm::Crc32.digest(b"123456789")),
            "y/Q5Jg=="
        );
        assert_eq!(
            to_base64(&Algorithm::Sha256.digest(b"hello")),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
    }

    #[test]
    fn running_digests_match_one_shot_digests() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        for algorithm in [Algorithm::Crc32c, Algorithm::Crc32, Algorithm::Sha256] {
            let mut running = Running::new(Some(algorithm));
            for chunk in data.chunks(7_777) {
                running.update(chunk);
            }
            assert_eq!(running.finish(), algorithm.digest(&data));
        }
        assert_eq!(Running::new(None).finish(), Vec::<u8>::new());
    }

    #[test]
    fn crcs_combine_across_parts() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algorithm in [Algorithm::Crc32c, Algorithm::Crc32] {
            let parts: Vec<(Vec<u8>, u64)> = data
                .chunks(3_001)
                .map(|c| (algorithm.digest(c), c.len() as u64))
                .collect();
            assert_eq!(algorithm.combine(&parts), Some(algorithm.digest(&data)));
        }
        assert_eq!(Algorithm::Crc32c.combine(&[]), Some(vec![0, 0, 0, 0]));
        assert_eq!(Algorithm::Sha256.combine(&[]), None);
    }

    #[test]
    fn parses_and_describes_composite_checksums() {
        let stored = Stored::parse(
            Algorithm::Sha256,
            "4WKhY5T5SPSaeJ5DC+N74DPnOTd1JCCtbtm1nPGEZXc=-3",
        )
        .unwrap();
        assert_eq!(stored.parts, Some(3));
        assert_eq!(stored.digest.len(), 32);
        assert_eq!(
            stored.describe(),
            "sha256:4WKhY5T5SPSaeJ5DC+N74DPnOTd1JCCtbtm1nPGEZXc=-3"
        );
        assert_eq!(Stored::parse(Algorithm::Crc32c, "!!-x"), None);
    }
}
