//! The local filesystem store.

use std::io::{Read, Write};

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

use crate::{
    Direction, ObjectMeta, ObjectReader, ObjectStore, ObjectUri, StorageError, StreamFailure,
    TransferReport,
};

/// Objects that are local files (`file://` URIs and plain paths).
///
/// `get` and `put` copy through `<destination>.partial` and rename, hashing the bytes as they
/// are copied (SHA-256), and fsync the file before the rename so a crash cannot leave a
/// renamed but empty file.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalStore;

impl ObjectStore for LocalStore {
    fn head(&self, uri: &ObjectUri) -> Result<Option<ObjectMeta>, StorageError> {
        let path = local(uri, Direction::Get)?;
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectMeta { size: meta.len() })),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StorageError::Io {
                op: "reading metadata of",
                path: path.to_owned(),
                direction: Direction::Get,
                source,
            }),
        }
    }

    fn get(&self, uri: &ObjectUri, destination: &Utf8Path) -> Result<TransferReport, StorageError> {
        let source = local(uri, Direction::Get)?;
        if !source.is_file() {
            return Err(StorageError::NotFound {
                uri: uri.to_string(),
            });
        }
        copy_atomically(source, destination, Direction::Get)
    }

    fn put(&self, source: &Utf8Path, uri: &ObjectUri) -> Result<TransferReport, StorageError> {
        let destination = local(uri, Direction::Put)?;
        copy_atomically(source, destination, Direction::Put)
    }

    fn open(&self, uri: &ObjectUri) -> Result<ObjectReader, StorageError> {
        let path = local(uri, Direction::Get)?;
        let size = match self.head(uri)? {
            Some(meta) => meta.size,
            None => {
                return Err(StorageError::NotFound {
                    uri: uri.to_string(),
                });
            }
        };
        let file = std::fs::File::open(path).map_err(|source| StorageError::Io {
            op: "opening",
            path: path.to_owned(),
            direction: Direction::Get,
            source,
        })?;
        Ok(ObjectReader::new(
            Box::new(file),
            size,
            StreamFailure::default(),
        ))
    }
}

fn local(uri: &ObjectUri, direction: Direction) -> Result<&Utf8Path, StorageError> {
    uri.local_path().ok_or_else(|| StorageError::Remote {
        op: "local store cannot handle",
        uri: uri.to_string(),
        direction,
        message: "not a local path".to_owned(),
    })
}

/// The temporary name a transfer to `destination` writes first: `<destination>.partial`.
pub(crate) fn partial_path(destination: &Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{destination}.partial"))
}

fn copy_atomically(
    source: &Utf8Path,
    destination: &Utf8Path,
    direction: Direction,
) -> Result<TransferReport, StorageError> {
    let io = |op: &'static str, path: &Utf8Path| {
        let path = path.to_owned();
        move |source| StorageError::Io {
            op,
            path,
            direction,
            source,
        }
    };
    if let Some(parent) = destination.parent().filter(|p| !p.as_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("creating directory", parent))?;
    }
    let partial = partial_path(destination);
    let result = (|| {
        let mut input = std::fs::File::open(source).map_err(io("opening", source))?;
        let mut output = std::fs::File::create(&partial).map_err(io("creating", &partial))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = input.read(&mut buffer).map_err(io("reading", source))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            output
                .write_all(&buffer[..n])
                .map_err(io("writing", &partial))?;
            bytes += n as u64;
        }
        output.sync_all().map_err(io("syncing", &partial))?;
        drop(output);
        let sha256 = hex(&hasher.finalize());
        // Read back: the file written holds the bytes read, before it takes its name.
        let (written, read_back) = file_digest(&partial).map_err(io("reading back", &partial))?;
        if (written, read_back.as_str()) != (bytes, sha256.as_str()) {
            return Err(StorageError::Verification {
                uri: destination.to_string(),
                direction,
                detail: format!(
                    "read back {written} bytes with SHA-256 {read_back}, wrote {bytes} with {sha256}"
                ),
            });
        }
        std::fs::rename(&partial, destination).map_err(io("renaming to", destination))?;
        Ok(TransferReport {
            bytes,
            sha256,
            checksum: None,
        })
    })();
    if result.is_err() {
        // Nothing half-written stays behind; the original error is what matters.
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The size and SHA-256 (lowercase hex) of the file at `path`, read whole.
fn file_digest(path: &Utf8Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok((bytes, hex(&hasher.finalize())));
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use biojob_core::{Classify, ExitClass};

    #[test]
    fn put_get_round_trip_with_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let source = root.join("in.txt");
        std::fs::write(&source, b"abc").unwrap();
        let uri = ObjectUri::Local(root.join("out/sub dir/ü (1).txt"));
        let report = LocalStore.put(&source, &uri).unwrap();
        assert_eq!(report.bytes, 3);
        assert_eq!(
            report.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(LocalStore.head(&uri).unwrap(), Some(ObjectMeta { size: 3 }));
        let back = root.join("back.txt");
        LocalStore.get(&uri, &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), b"abc");
        assert!(!partial_path(&back).exists());
    }

    #[test]
    fn missing_source_is_not_found_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let uri = ObjectUri::Local(root.join("missing.fq.gz"));
        let error = LocalStore.get(&uri, &root.join("x")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{root}/missing.fq.gz does not exist")
        );
        assert_eq!(error.exit_class(), ExitClass::InputInvalid);
        assert_eq!(LocalStore.head(&uri).unwrap(), None);
        let error = LocalStore
            .put(&root.join("missing"), &ObjectUri::Local(root.join("y")))
            .unwrap_err();
        assert_eq!(error.exit_class(), ExitClass::OutputStaging);
        assert!(!root.join("y").exists());
        assert!(!root.join("y.partial").exists());
    }
}
