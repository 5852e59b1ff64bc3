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

/// Follows a BGZF file while a tool writes it: each [`BgzfTail::poll`] inflates the blocks
/// completed since the last call (a block is complete once its `BSIZE` bytes are on disk: SAM
/// spec v1, section 4.1) and returns the complete lines of text they end. For progress, not
/// for checks: a damaged block ends the text read so far (the file is checked when done).
#[derive(Debug)]
pub struct BgzfTail {
    path: camino::Utf8PathBuf,
    offset: u64,
    partial_line: Vec<u8>,
}

impl BgzfTail {
    /// A tail of `path` (which may not exist yet) from its start.
    pub fn new(path: &Utf8Path) -> BgzfTail {
        BgzfTail {
            path: path.to_owned(),
            offset: 0,
            partial_line: Vec::new(),
        }
    }

    /// The complete lines written since the last call, without their newlines (none when the
    /// file does not exist yet or no block was completed).
    pub fn poll(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut text = std::mem::take(&mut self.partial_line);
        loop {
            // The fixed header (12 bytes) and the BC subfield (6 bytes) of a BGZF block.
            let mut header = [0u8; 18];
            if read_prefix(&mut file, &mut header).ok() != Some(header.len())
                || header[..2] != [0x1f, 0x8b]
                || header[12..14] != *b"BC"
            {
                break;
            }
            let block = usize::from(u16::from_le_bytes([header[16], header[17]])) + 1;
            let mut rest = vec![0u8; block.saturating_sub(header.len())];
            if rest.len() < 8 || read_prefix(&mut file, &mut rest).ok() != Some(rest.len()) {
                break;
            }
            let deflated = &rest[..rest.len() - 8];
            let before = text.len();
            if flate2::read::DeflateDecoder::new(deflated)
                .read_to_end(&mut text)
                .is_err()
            {
                text.truncate(before);
                break;
            }
            self.offset += block as u64;
        }
        let complete = text
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |end| end + 1);
        self.partial_line = text.split_off(complete);
        String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The largest BGZF block in bytes, header and trailer included: `BSIZE` (a 16-bit field) is
/// the block's size minus 1 (SAM spec v1, section 4.1).
pub const MAX_BGZF_BLOCK_SIZE: u64 = 1 << 16;

/// Bytes of a BGZF block's gzip header before the extra field: ID1 ID2 CM FLG MTIME(4) XFL OS
/// XLEN(2) (RFC 1952, section 2.3).
pub(crate) const GZIP_HEADER: usize = 12;

/// CRC32 and ISIZE, after the compressed data, 4 bytes each, little-endian.
pub(crate) const GZIP_TRAILER: usize = 8;

/// What [`check_block`] makes of the bytes at a block's start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BlockCheck {
    /// The block is whole and sound: its size in bytes and its inflated data.
    Sound { size: usize, data: Vec<u8> },
    /// The bytes end before the block does; it is `size` bytes long (0: not known yet, the
    /// header itself is cut).
    Incomplete { size: usize },
}

/// Checks the BGZF block at the start of `bytes` (SAM spec v1, section 4.1; RFC 1952): a gzip
/// member (`1f 8b 08`, FLG.FEXTRA) whose extra field holds the `BC` subfield, `BSIZE` large
/// enough for the header and trailer, deflate data that inflates to exactly `ISIZE` (at most
/// 64 KiB) bytes whose CRC32 is the trailer's.
///
/// # Errors
/// What is wrong with the block, as a phrase (e.g. "the CRC32 of the inflated data is
/// 0x1a2b3c4d, the trailer says 0x1a2b3c4c").
pub(crate) fn check_block(bytes: &[u8]) -> Result<BlockCheck, String> {
    if bytes.len() < GZIP_HEADER {
        if bytes.len() >= 3 && bytes[..3] != [0x1f, 0x8b, 0x08] {
            return Err("not a BGZF block: no gzip magic 1f 8b 08".to_owned());
        }
        return Ok(BlockCheck::Incomplete { size: 0 });
    }
    if bytes[..3] != [0x1f, 0x8b, 0x08] {
        return Err("not a BGZF block: no gzip magic 1f 8b 08".to_owned());
    }
    if bytes[3] & FLAG_EXTRA == 0 {
        return Err("not a BGZF block: the gzip header has no extra field".to_owned());
    }
    let extra_length = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
    let Some(extra) = bytes.get(GZIP_HEADER..GZIP_HEADER + extra_length) else {
        return Ok(BlockCheck::Incomplete { size: 0 });
    };
    let Some(bsize) = bc_block_size(extra) else {
        return Err("not a BGZF block: the extra field has no BC subfield".to_owned());
    };
    let size = usize::from(bsize) + 1;
    let data_start = GZIP_HEADER + extra_length;
    if size < data_start + GZIP_TRAILER {
        return Err(format!(
            "BSIZE gives {size} bytes, fewer than its header and trailer ({})",
            data_start + GZIP_TRAILER
        ));
    }
    let Some(block) = bytes.get(..size) else {
        return Ok(BlockCheck::Incomplete { size });
    };
    let trailer = &block[size - GZIP_TRAILER..];
    let crc32 = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if u64::from(isize) > MAX_BGZF_BLOCK_SIZE {
        return Err(format!(
            "ISIZE says {isize} bytes, more than a BGZF block holds ({MAX_BGZF_BLOCK_SIZE})"
        ));
    }
    let compressed = &block[data_start..size - GZIP_TRAILER];
    // One byte more than a block may hold, to see data that inflates to more than ISIZE.
    let mut data = vec![0u8; usize::try_from(isize).unwrap_or(usize::MAX) + 1];
    let mut inflater = flate2::Decompress::new(false);
    let status = inflater
        .decompress(compressed, &mut data, flate2::FlushDecompress::Finish)
        .map_err(|error| format!("its deflate data is invalid: {error}"))?;
    let inflated = usize::try_from(inflater.total_out()).unwrap_or(usize::MAX);
    if status != flate2::Status::StreamEnd {
        return Err(if inflated >= data.len() {
            format!("its data inflates to more than ISIZE ({isize} bytes)")
        } else {
            "its deflate data ends early".to_owned()
        });
    }
    if inflated as u64 != u64::from(isize) {
        return Err(format!(
            "its data inflates to {inflated} bytes, ISIZE says {isize}"
        ));
    }
    if inflater.total_in() != compressed.len() as u64 {
        return Err(format!(
            "its deflate data ends after {} of its {} bytes",
            inflater.total_in(),
            compressed.len()
        ));
    }
    data.truncate(inflated);
    let mut crc = flate2::Crc::new();
    crc.update(&data);
    if crc.sum() != crc32 {
        return Err(format!(
            "the CRC32 of the inflated data is {:#010x}, the trailer says {crc32:#010x}",
            crc.sum()
        ));
    }
    Ok(BlockCheck::Sound { size, data })
}

/// `data` (at most 64 KiB) compressed as BGZF blocks, without the EOF block.
///
/// # Errors
/// The compressor's.
pub(crate) fn bgzf_blocks(data: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut writer = noodles::bgzf::io::Writer::new(Vec::new());
    writer.write_all(data)?;
    // `flush` ends the block; `into_inner` hands back the bytes without an EOF block.
    writer.flush()?;
    Ok(writer.into_inner())
}

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
    use camino::Utf8PathBuf;

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
    fn a_tail_returns_the_complete_lines_of_the_blocks_written_so_far() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (1..=30_000).map(|pos| format!("chr1\t{pos}\n")).collect();
        let plain = dir.path().join("x.txt");
        std::fs::write(&plain, &text).unwrap();
        // bgzip (htslib, Debian package tabix) writes 64 KiB blocks.
        let status = std::process::Command::new("bgzip")
            .arg("-f")
            .arg(&plain)
            .status()
            .unwrap();
        assert!(status.success());
        let whole = std::fs::read(dir.path().join("x.txt.gz")).unwrap();
        let first = usize::from(u16::from_le_bytes([whole[16], whole[17]])) + 1;
        let path = Utf8PathBuf::from_path_buf(dir.path().join("growing.gz")).unwrap();
        let mut tail = BgzfTail::new(&path);
        assert_eq!(tail.poll(), Vec::<String>::new(), "no file yet");
        // The first block and half of the second.
        std::fs::write(&path, &whole[..first + 100]).unwrap();
        let seen = tail.poll();
        let in_first_block = text[..65_280].matches('\n').count();
        assert_eq!(seen.len(), in_first_block);
        assert_eq!(seen[0], "chr1\t1");
        assert_eq!(tail.poll(), Vec::<String>::new(), "nothing new");
        // The rest, with the EOF block.
        std::fs::write(&path, &whole).unwrap();
        let rest = tail.poll();
        assert_eq!(rest.last().map(String::as_str), Some("chr1\t30000"));
        let all: Vec<String> = seen.into_iter().chain(rest).collect();
        let expected: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn eof_block_is_a_bgzf_block_of_28_bytes() {
        assert_eq!(
            bc_block_size(&BGZF_EOF_BLOCK[12..18]),
            Some(BGZF_EOF_BLOCK.len() as u16 - 1)
        );
        assert_eq!(
            check_block(&BGZF_EOF_BLOCK),
            Ok(BlockCheck::Sound {
                size: 28,
                data: Vec::new()
            })
        );
    }

    #[test]
    fn blocks_check_whole_cut_and_damaged() {
        let data: Vec<u8> = (0..15_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let block = bgzf_blocks(&data[..60_000]).unwrap();
        let size = block.len();
        assert_eq!(
            check_block(&block),
            Ok(BlockCheck::Sound {
                size,
                data: data[..60_000].to_vec()
            })
        );
        // Followed by more bytes: the block alone.
        let mut longer = block.clone();
        longer.extend_from_slice(&BGZF_EOF_BLOCK);
        assert!(matches!(check_block(&longer), Ok(BlockCheck::Sound { size: s, .. }) if s == size));
        // Cut: more is needed, and how much once BSIZE is in.
        assert_eq!(
            check_block(&block[..10]),
            Ok(BlockCheck::Incomplete { size: 0 })
        );
        assert_eq!(
            check_block(&block[..17]),
            Ok(BlockCheck::Incomplete { size: 0 })
        );
        assert_eq!(
            check_block(&block[..size - 1]),
            Ok(BlockCheck::Incomplete { size })
        );

        let damaged = |at: usize, value: u8| {
            let mut bytes = block.clone();
            bytes[at] = value;
            check_block(&bytes).unwrap_err()
        };
        assert_eq!(damaged(0, 0x1e), "not a BGZF block: no gzip magic 1f 8b 08");
        assert_eq!(
            damaged(3, 0),
            "not a BGZF block: the gzip header has no extra field"
        );
        assert_eq!(
            damaged(13, b'D'),
            "not a BGZF block: the extra field has no BC subfield"
        );
        // BSIZE 9: a 10-byte block, shorter than its own header and trailer.
        let mut short = block.clone();
        short[16..18].copy_from_slice(&9u16.to_le_bytes());
        assert_eq!(
            check_block(&short).unwrap_err(),
            "BSIZE gives 10 bytes, fewer than its header and trailer (26)"
        );
        let crc = u32::from_le_bytes(block[size - 8..size - 4].try_into().unwrap());
        assert_eq!(
            damaged(size - 8, block[size - 8] ^ 0x10),
            format!(
                "the CRC32 of the inflated data is {crc:#010x}, the trailer says {:#010x}",
                crc ^ 0x10
            )
        );
        let mut too_big = block.clone();
        too_big[size - 4..].copy_from_slice(&70_000u32.to_le_bytes());
        assert_eq!(
            check_block(&too_big).unwrap_err(),
            "ISIZE says 70000 bytes, more than a BGZF block holds (65536)"
        );
        let mut empty_data = BGZF_EOF_BLOCK;
        // An empty deflate block (03 00) that claims one byte.
        empty_data[24] = 1;
        assert_eq!(
            check_block(&empty_data).unwrap_err(),
            "its data inflates to 0 bytes, ISIZE says 1"
        );
        // The deflate data cut (BSIZE shortened by 4, its trailer moved up).
        let mut cut = block[..size - 12].to_vec();
        cut.extend_from_slice(&block[size - 8..]);
        let bsize = u16::try_from(cut.len() - 1).unwrap();
        cut[16..18].copy_from_slice(&bsize.to_le_bytes());
        assert_eq!(
            check_block(&cut).unwrap_err(),
            "its deflate data ends early"
        );
        // Trailing garbage inside the block after the deflate stream.
        let mut padded = block[..size - 8].to_vec();
        padded.extend_from_slice(&[0, 0, 0]);
        padded.extend_from_slice(&block[size - 8..]);
        let bsize = u16::try_from(padded.len() - 1).unwrap();
        padded[16..18].copy_from_slice(&bsize.to_le_bytes());
        assert_eq!(
            check_block(&padded).unwrap_err(),
            format!(
                "its deflate data ends after {} of its {} bytes",
                size - 26,
                size - 23
            )
        );
    }
}
