//! Provenance records: what an index was built from, so that the full check runs once.

use std::io::{Read, Write};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FormatError;

/// The size and SHA-256 of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The file's name, without its directory (an index moves with its FASTA).
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

impl FileDigest {
    /// Reads `path` once and digests it.
    ///
    /// # Errors
    /// [`FormatError::Io`] when the file cannot be read.
    pub fn of(path: &Utf8Path) -> Result<FileDigest, FormatError> {
        let io_error = |source| FormatError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = fs_err::File::open(path).map_err(io_error)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let read = file.read(&mut buffer).map_err(io_error)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            bytes += read as u64;
        }
        Ok(FileDigest {
            name: path.file_name().unwrap_or(path.as_str()).to_owned(),
            bytes,
            sha256: hasher
                .finalize()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        })
    }
}

/// A record written beside an index when biojob builds it (or has checked it in full against
/// its file): the digest of the file it belongs to and of each index file. A later run that
/// finds the same digests (which it computes anyway for its cache keys) knows the index
/// belongs to the file without checking it again; any other difference means the full check
/// (or a rebuild) is due.
///
/// Stored as JSON at [`IndexProvenance::path`]:
/// `{"format": "biojob-index-provenance/1", "source": {"name", "bytes", "sha256"},
/// "index": [{"name", "bytes", "sha256"}, …]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexProvenance {
    /// [`IndexProvenance::FORMAT`].
    pub format: String,
    /// The file the index was built from (the FASTA, the BAM).
    pub source: FileDigest,
    /// The index files, in the order given.
    pub index: Vec<FileDigest>,
}

impl IndexProvenance {
    /// The format tag of the records this version writes and reads.
    pub const FORMAT: &'static str = "biojob-index-provenance/1";

    /// Where the record of the index at `prefix` lives: `<prefix>.provenance.json` (a bwa
    /// index prefix, or an index file such as `ref.fa.fai`).
    pub fn path(prefix: &Utf8Path) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{prefix}{}", Self::SUFFIX))
    }

    /// What [`IndexProvenance::path`] appends to the prefix.
    pub const SUFFIX: &'static str = ".provenance.json";

    /// The record of `source` and its `index` files, from their digests.
    pub fn new(source: FileDigest, index: Vec<FileDigest>) -> IndexProvenance {
        IndexProvenance {
            format: Self::FORMAT.to_owned(),
            source,
            index,
        }
    }

    /// Digests `source` and each of `index_files` ([`FileDigest::of`]).
    ///
    /// # Errors
    /// [`FormatError::Io`] when a file cannot be read.
    pub fn of(
        source: &Utf8Path,
        index_files: &[Utf8PathBuf],
    ) -> Result<IndexProvenance, FormatError> {
        let index = index_files
            .iter()
            .map(|path| FileDigest::of(path))
            .collect::<Result<_, _>>()?;
        Ok(IndexProvenance::new(FileDigest::of(source)?, index))
    }

    /// The record at `path`, or `None` when there is none.
    ///
    /// # Errors
    /// [`FormatError::Io`] when it cannot be read; [`FormatError::Parse`] when it is not a
    /// record of this format.
    pub fn read(path: &Utf8Path) -> Result<Option<IndexProvenance>, FormatError> {
        let text = match fs_err::read(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(FormatError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let parse_error = |source: std::io::Error| FormatError::Parse {
            path: path.to_owned(),
            format: "index provenance record",
            source,
        };
        let record: IndexProvenance = serde_json::from_slice(&text)
            .map_err(|error| parse_error(std::io::Error::other(error)))?;
        if record.format != Self::FORMAT {
            return Err(parse_error(std::io::Error::other(format!(
                "format {:?}, expected {:?}",
                record.format,
                Self::FORMAT
            ))));
        }
        Ok(Some(record))
    }

    /// Writes the record to `path` through `<path>.partial`, renamed once written and synced.
    ///
    /// # Errors
    /// [`FormatError::Io`] when it cannot be written.
    pub fn write(&self, path: &Utf8Path) -> Result<(), FormatError> {
        let partial = Utf8PathBuf::from(format!("{path}.partial"));
        let io_error = |path: &Utf8Path| {
            let path = path.to_owned();
            move |source| FormatError::Io { path, source }
        };
        let mut text = serde_json::to_vec_pretty(self).map_err(|error| FormatError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(error),
        })?;
        text.push(b'\n');
        let result = (|| {
            let mut file = fs_err::File::create(&partial).map_err(io_error(&partial))?;
            file.write_all(&text).map_err(io_error(&partial))?;
            file.sync_all().map_err(io_error(&partial))?;
            fs_err::rename(&partial, path).map_err(io_error(path))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// How `current` (the digests of the files as they are now) differs from this record, in
    /// words, or `None` when every digest is the same: then the index belongs to the file.
    pub fn difference(&self, current: &IndexProvenance) -> Option<String> {
        let differs = |then: &FileDigest, now: &FileDigest| {
            (then.bytes != now.bytes || then.sha256 != now.sha256).then(|| {
                format!(
                    "{} has changed since the index was built ({} bytes, SHA-256 {} then; {} \
                     bytes, SHA-256 {} now)",
                    now.name, then.bytes, then.sha256, now.bytes, now.sha256
                )
            })
        };
        if let Some(change) = differs(&self.source, &current.source) {
            return Some(change);
        }
        if self.index.len() != current.index.len() {
            return Some(format!(
                "the record lists {} index files, {} are given",
                self.index.len(),
                current.index.len()
            ));
        }
        self.index
            .iter()
            .zip(&current.index)
            .find_map(|(then, now)| {
                if then.name != now.name {
                    Some(format!(
                        "the record lists {} where {} is given",
                        then.name, now.name
                    ))
                } else {
                    differs(then, now)
                }
            })
    }
}
