//! BGZF container checks (SAM spec v1, section 4.1).

use std::io::{self, Read, Seek, SeekFrom};

use camino::Utf8Path;

use crate::FormatError;

/// The empty BGZF block that ends every complete BGZF file (SAM spec v1, section 4.1.2).
pub const BGZF_EOF_BLOCK: [u8; 28] = [
    0x1f, 0x8b, 0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x06, 0x00, 0x42, 0x43, 0x02, 0x00,
    0x1b, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// gzip header flag: an extra field follows the fixed header (RFC 1952, section 2.3.1).
const FLAG_EXTRA: u8 = 0x04;

/// Checks that `path` is a BGZF file (BAM, `.vcf.gz`, tabix-indexed files) that was completely
/// written.
///
/// The first block must be a gzip member (`1f 8b`, deflate) whose extra field holds the BGZF
/// `BC` subfield (SAM spec v1, section 4.1); the file must end with the 28-byte BGZF EOF marker
/// block (section 4.1.2), which a writer adds last, so its absence means a truncated file or a
/// writer that did not finish. Reads 12 + XLEN bytes at the start and 28 at the end.
///
/// # Errors
/// [`FormatError::NotBgzf`] for an empty file, a file that is not gzip, or plain gzip (no `BC`
/// subfield); [`FormatError::MissingBgzfEof`] when the EOF block is missing;
/// [`FormatError::Io`] when the file cannot be read.
pub fn check_bgzf_eof(path: &Utf8Path) -> Result<(), FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let not_bgzf = |reason| FormatError::NotBgzf {
        path: path.to_owned(),
        reason,
    };
    let mut file = fs_err::File::open(path).map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    if length == 0 {
        return Err(not_bgzf("the file is empty"));
    }

    let mut header = [0u8; 12];
    read_prefix(&mut file, &mut header).map_err(io_error)?;
    if length < 12 || header[..3] != [0x1f, 0x8b, 0x08] {
        return Err(not_bgzf("not a gzip file (no 1f 8b 08 magic)"));
    }
    if header[3] & FLAG_EXTRA == 0 {
        return Err(not_bgzf(
            "plain gzip: the first block has no extra field, so no BC subfield",
        ));
    }
    let extra_length = usize::from(u16::from_le_bytes([header[10], header[11]]));
    let mut extra = vec![0u8; extra_length];
    let got = read_prefix(&mut file, &mut extra).map_err(io_error)?;
    if got < extra_length {
        return Err(FormatError::MissingBgzfEof {
            path: path.to_owned(),
        });
    }
    if bc_block_size(&extra).is_none() {
        return Err(not_bgzf(
            "plain gzip: the first block's extra field has no BC subfield",
        ));
    }

    let eof_length = BGZF_EOF_BLOCK.len() as u64;
    if length < eof_length {
        return Err(FormatError::MissingBgzfEof {
            path: path.to_owned(),
        });
    }
    let mut tail = [0u8; 28];
    file.seek(SeekFrom::End(-(BGZF_EOF_BLOCK.len() as i64)))
        .map_err(io_error)?;
    file.read_exact(&mut tail).map_err(io_error)?;
    if tail != BGZF_EOF_BLOCK {
        return Err(FormatError::MissingBgzfEof {
            path: path.to_owned(),
        });
    }
    tracing::debug!(%path, bytes = length, "BGZF file is complete");
    Ok(())
}

/// Fills as much of `buf` as the file has; returns how many bytes were read.
fn read_prefix(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// BSIZE (the block's length minus 1, SAM spec v1, section 4.1) from a gzip extra field (a list
/// of SI1 SI2 SLEN(2, little-endian) DATA subfields): the data of its `B` `C` subfield of SLEN
/// 2, if it has one.
pub(crate) fn bc_block_size(mut extra: &[u8]) -> Option<u16> {
    while let [si1, si2, len_lo, len_hi, rest @ ..] = extra {
        let length = usize::from(u16::from_le_bytes([*len_lo, *len_hi]));
        if (*si1, *si2, length) == (b'B', b'C', 2) {
            return match rest {
                [lo, hi, ..] => Some(u16::from_le_bytes([*lo, *hi])),
                _ => None,
            };
        }
        if rest.len() < length {
            return None;
        }
        extra = &rest[length..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bc_subfield_found_among_others() {
        assert_eq!(bc_block_size(&[b'B', b'C', 2, 0, 0x1b, 0x00]), Some(27));
        assert_eq!(
            bc_block_size(&[b'X', b'Y', 1, 0, 9, b'B', b'C', 2, 0, 0x34, 0x12]),
            Some(0x1234)
        );
        assert_eq!(bc_block_size(&[b'X', b'Y', 1, 0, 9]), None);
        assert_eq!(bc_block_size(&[b'B', b'C', 2, 0, 0x1b]), None);
        assert_eq!(bc_block_size(&[b'X', b'Y', 9, 0, 1]), None);
        assert_eq!(bc_block_size(&[]), None);
    }

    #[test]
    fn eof_block_is_a_bgzf_block_of_28_bytes() {
        assert_eq!(
            bc_block_size(&BGZF_EOF_BLOCK[12..18]),
            Some(BGZF_EOF_BLOCK.len() as u16 - 1)
        );
    }
}
