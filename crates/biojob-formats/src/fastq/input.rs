//! Opening a FASTQ file: plain, gzip or multi-member gzip (BGZF), detected by magic bytes.

use std::io::{self, BufRead, BufReader, Read};

use biojob_core::{OpenInputError, open_regular_file};
use camino::{Utf8Path, Utf8PathBuf};
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

type Raw = BufReader<CountingReader<Box<dyn Read + Send>>>;

/// Where a FASTQ file's bytes come from: a file, or any reader (an object streamed from a
/// store), named by `path` in errors.
pub struct FastqSource {
    path: Utf8PathBuf,
    reader: Option<Box<dyn Read + Send>>,
}

impl std::fmt::Debug for FastqSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastqSource")
            .field("path", &self.path)
            .field("streamed", &self.reader.is_some())
            .finish()
    }
}

impl FastqSource {
    /// The local file at `path`, opened when the pass starts; a path that is not a regular file
    /// (a FIFO, a device, a directory) is refused then, before it is opened
    /// ([`FastqError::NotAFile`]).
    pub fn file(path: &Utf8Path) -> FastqSource {
        FastqSource {
            path: path.to_owned(),
            reader: None,
        }
    }

    /// The bytes `reader` gives (plain or gzip, detected as for a file); `name` (a path or a
    /// URI) names it in errors. When reading or checking it fails (a broken record, a damaged
    /// gzip stream), the rest of the reader's bytes are read and dropped, so that a stream that
    /// verifies its transfer at its last byte (`ObjectStore::open` of `biojob-storage`) gets
    /// to report bytes damaged on the way; a pass stopped for another reason (a mate mismatch,
    /// a write error, a stop) does not read on.
    pub fn reader(name: &str, reader: impl Read + Send + 'static) -> FastqSource {
        FastqSource {
            path: Utf8PathBuf::from(name),
            reader: Some(Box::new(reader)),
        }
    }

    /// The name errors give.
    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// Whether the bytes come from a reader rather than a local file.
    pub(crate) fn is_streamed(&self) -> bool {
        self.reader.is_some()
    }

    /// Opens the source and detects its compression.
    ///
    /// # Errors
    /// As [`FastqInput::open`].
    pub(crate) fn open(self) -> Result<FastqInput, FastqError> {
        match self.reader {
            Some(reader) => FastqInput::from_reader(&self.path, reader),
            None => FastqInput::open(&self.path),
        }
    }
}

/// The decompressed text of a FASTQ file.
pub(crate) enum FastqInput {
    /// Uncompressed FASTQ.
    Plain(Raw),
    /// gzip, including multi-member gzip and BGZF (which is multi-member gzip). Every member's
    /// CRC32 and ISIZE are checked by the decoder (RFC 1952, section 2.3.1).
    Gzip(Box<BufReader<MultiGzDecoder<Raw>>>),
}

impl std::fmt::Debug for FastqInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastqInput")
            .field("gzip", &self.is_gzip())
            .field("bytes_read", &self.bytes_read())
            .finish()
    }
}

impl FastqInput {
    /// Opens `path` and detects its compression from the first bytes.
    ///
    /// Only a regular file (or a link to one) is opened ([`open_regular_file`]), since opening
    /// a FIFO without a writer blocks and a device such as `/dev/zero` never ends.
    ///
    /// # Errors
    /// [`FastqError::NotAFile`] for a directory, FIFO, device or socket; [`FastqError::Open`]
    /// when the file cannot be opened or its first bytes cannot be read;
    /// [`FastqError::UnsupportedCompression`] for zstd, bzip2 or xz files.
    pub(crate) fn open(path: &Utf8Path) -> Result<FastqInput, FastqError> {
        let (file, _) = open_regular_file(path.as_std_path()).map_err(|error| match error {
            OpenInputError::NotAFile(kind) => FastqError::NotAFile {
                path: path.to_owned(),
                kind,
            },
            OpenInputError::Io(source) => FastqError::Open {
                path: path.to_owned(),
                source,
            },
        })?;
        FastqInput::from_reader(path, Box::new(file))
    }

    /// Reads `reader`, named `path` in errors, and detects its compression from the first
    /// bytes.
    ///
    /// # Errors
    /// As [`FastqInput::open`].
    pub(crate) fn from_reader(
        path: &Utf8Path,
        reader: Box<dyn Read + Send>,
    ) -> Result<FastqInput, FastqError> {
        let open_error = |source| FastqError::Open {
            path: path.to_owned(),
            source,
        };
        let mut raw = BufReader::with_capacity(
            IO_BUFFER_BYTES,
            CountingReader {
                inner: reader,
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

    /// Reads what is left of the underlying bytes (below any decompression) and drops it,
    /// ignoring errors: a streamed source verifies its transfer when its last byte is read,
    /// and that verification must run before a parse error is blamed on the content.
    pub(crate) fn drain(&mut self) {
        let raw = match self {
            FastqInput::Plain(raw) => raw,
            FastqInput::Gzip(reader) => reader.get_mut().get_mut(),
        };
        let _ = io::copy(raw, &mut io::sink());
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
