//! Opening a FASTQ file: plain, gzip or multi-member gzip (BGZF), detected by magic bytes.

use std::io::{self, BufRead, BufReader, Read};

use camino::Utf8Path;
use flate2::bufread::MultiGzDecoder;

use crate::FastqError;

/// Buffer size for reading files and for the decompressed stream (1 MiB).
pub(crate) const IO_BUFFER_BYTES: usize = 1 << 20;

/// A reader that counts the bytes it returns: the compressed bytes read from disk.
#[derive(Debug)]
pub(crate) struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

type Raw = BufReader<CountingReader<fs_err::File>>;

/// The decompressed text of a FASTQ file.
#[derive(Debug)]
pub(crate) enum FastqInput {
    /// Uncompressed FASTQ.
    Plain(Raw),
    /// gzip, including multi-member gzip and BGZF (which is multi-member gzip). Every member's
    /// CRC32 and ISIZE are checked by the decoder (RFC 1952, section 2.3.1).
    Gzip(Box<BufReader<MultiGzDecoder<Raw>>>),
}

impl FastqInput {
    /// Opens `path` and detects its compression from the first bytes.
    ///
    /// # Errors
    /// [`FastqError::Open`] when the file cannot be opened or its first bytes cannot be read;
    /// [`FastqError::UnsupportedCompression`] for zstd, bzip2 or xz files.
    pub(crate) fn open(path: &Utf8Path) -> Result<FastqInput, FastqError> {
        let open_error = |source| FastqError::Open {
            path: path.to_owned(),
            source,
        };
        let file = fs_err::File::open(path).map_err(open_error)?;
        let mut raw = BufReader::with_capacity(
            IO_BUFFER_BYTES,
            CountingReader {
                inner: file,
                count: 0,
            },
        );
        let head = raw.fill_buf().map_err(open_error)?;
        let unsupported = match head {
            [0x1f, 0x8b, ..] => {
                let decoder = MultiGzDecoder::new(raw);
                return Ok(FastqInput::Gzip(Box::new(BufReader::with_capacity(
                    IO_BUFFER_BYTES,
                    decoder,
                ))));
            }
            [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
            [b'B', b'Z', b'h', ..] => "bzip2",
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => "xz",
            _ => return Ok(FastqInput::Plain(raw)),
        };
        Err(FastqError::UnsupportedCompression {
            path: path.to_owned(),
            format: unsupported,
        })
    }

    /// Whether the file is gzip-compressed.
    pub(crate) fn is_gzip(&self) -> bool {
        matches!(self, FastqInput::Gzip(_))
    }

    /// Bytes read from the file on disk so far (compressed bytes for gzip).
    pub(crate) fn bytes_read(&self) -> u64 {
        match self {
            FastqInput::Plain(raw) => raw.get_ref().count,
            FastqInput::Gzip(reader) => reader.get_ref().get_ref().get_ref().count,
        }
    }
}

impl Read for FastqInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            FastqInput::Plain(reader) => reader.read(buf),
            FastqInput::Gzip(reader) => reader.read(buf),
        }
    }
}

impl BufRead for FastqInput {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            FastqInput::Plain(reader) => reader.fill_buf(),
            FastqInput::Gzip(reader) => reader.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            FastqInput::Plain(reader) => reader.consume(amount),
            FastqInput::Gzip(reader) => reader.consume(amount),
        }
    }
}
