//! The local filesystem store.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;

use biojob_core::{OpenInputError, non_regular_file_kind, open_regular_file};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

use crate::{
    Direction, ObjectMeta, ObjectReader, ObjectStore, ObjectUri, ObjectWriter, StorageError,
    StreamFailure, TransferReport, check_ranges,
};

/// Objects that are local files (`file://` URIs and plain paths).
///
/// Only regular files (or links to them) are objects: a path that names a directory, a FIFO or
/// a device is refused with [`StorageError::NotAFile`] before it is opened.
///
/// `get` and `put` copy through `<destination>.partial` and rename, hashing the bytes as they
/// are copied (SHA-256), and fsync the file before the rename so a crash cannot leave a
/// renamed but empty file.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalStore;

impl ObjectStore for LocalStore {
    /// `None` when nothing is at the path; [`StorageError::NotAFile`] when something is that
    /// is not a regular file (a directory, a FIFO, a device).
    fn head(&self, uri: &ObjectUri) -> Result<Option<ObjectMeta>, StorageError> {
        let path = local(uri, Direction::Get)?;
        match std::fs::metadata(path) {
            Ok(meta) => match non_regular_file_kind(meta.file_type()) {
                None => Ok(Some(ObjectMeta {
                    size: meta.len(),
                    last_modified: meta.modified().ok(),
                    version: None,
                })),
                Some(kind) => Err(StorageError::NotAFile {
                    uri: uri.to_string(),
                    kind,
                }),
            },
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
        let (input, _) = open_input(uri)?;
        copy_atomically(
            input,
            local(uri, Direction::Get)?,
            destination,
            Direction::Get,
        )
    }

    fn put(&self, source: &Utf8Path, uri: &ObjectUri) -> Result<TransferReport, StorageError> {
        let destination = local(uri, Direction::Put)?;
        let input = std::fs::File::open(source).map_err(|error| StorageError::Io {
            op: "opening",
            path: source.to_owned(),
            direction: Direction::Put,
            source: error,
        })?;
        copy_atomically(input, source, destination, Direction::Put)
    }

    fn open(&self, uri: &ObjectUri) -> Result<ObjectReader, StorageError> {
        let (file, size) = open_input(uri)?;
        Ok(ObjectReader::new(
            Box::new(file),
            size,
            StreamFailure::default(),
        ))
    }

    fn open_ranges(
        &self,
        uri: &ObjectUri,
        meta: &ObjectMeta,
        ranges: &[Range<u64>],
    ) -> Result<ObjectReader, StorageError> {
        let path = local(uri, Direction::Get)?;
        let total = check_ranges(uri, meta.size, ranges)?;
        let file = std::fs::File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound {
                uri: uri.to_string(),
            },
            _ => StorageError::Io {
                op: "opening",
                path: path.to_owned(),
                direction: Direction::Get,
                source,
            },
        })?;
        let size = file
            .metadata()
            .map_err(|source| StorageError::Io {
                op: "reading metadata of",
                path: path.to_owned(),
                direction: Direction::Get,
                source,
            })?
            .len();
        if size != meta.size {
            return Err(StorageError::Verification {
                uri: uri.to_string(),
                direction: Direction::Get,
                detail: format!("the file has {size} bytes, not the {} expected", meta.size),
            });
        }
        let failure = StreamFailure::default();
        let reader = FileRanges {
            file,
            path: path.to_owned(),
            ranges: ranges.iter().rev().cloned().collect(),
            current: None,
            failure: failure.clone(),
        };
        Ok(ObjectReader::new(Box::new(reader), total, failure))
    }

    /// Writes straight to `<path>.partial` (no spool: the file is its own buffer), renamed
    /// into place by [`ObjectWriter::complete`].
    fn create(
        &self,
        uri: &ObjectUri,
        _spool: &Utf8Path,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        let destination = local(uri, Direction::Put)?.to_owned();
        let io = |op: &'static str, path: &Utf8Path| {
            let path = path.to_owned();
            move |source| StorageError::Io {
                op,
                path,
                direction: Direction::Put,
                source,
            }
        };
        if let Some(parent) = destination.parent().filter(|p| !p.as_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io("creating directory", parent))?;
        }
        let partial = partial_path(&destination);
        let file = std::fs::File::create(&partial).map_err(io("creating", &partial))?;
        Ok(Box::new(FileWriter {
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            partial,
            destination,
            hasher: Sha256::new(),
            bytes: 0,
        }))
    }

    fn create_new(&self, contents: &[u8], uri: &ObjectUri) -> Result<bool, StorageError> {
        let path = local(uri, Direction::Put)?;
        let io = |op: &'static str| {
            move |source| StorageError::Io {
                op,
                path: path.to_owned(),
                direction: Direction::Put,
                source,
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io("creating the directory of"))?;
        }
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(error) => return Err(io("creating")(error)),
        };
        let written = file.write_all(contents).and_then(|()| file.sync_all());
        if let Err(error) = written {
            let _ = std::fs::remove_file(path);
            return Err(io("writing")(error));
        }
        Ok(true)
    }

    fn delete(&self, uri: &ObjectUri) -> Result<(), StorageError> {
        let path = local(uri, Direction::Put)?;
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Io {
                op: "removing",
                path: path.to_owned(),
                direction: Direction::Put,
                source,
            }),
        }
    }

    fn list(&self, uri: &ObjectUri) -> Result<Vec<String>, StorageError> {
        let path = local(uri, Direction::Put)?;
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StorageError::Io {
                    op: "listing",
                    path: path.to_owned(),
                    direction: Direction::Put,
                    source,
                });
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| !kind.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Opens the local input at `uri` for reading, with its size, refusing anything but a regular
/// file before it can block ([`open_regular_file`]).
///
/// # Errors
/// [`StorageError::NotFound`], [`StorageError::NotAFile`], or [`StorageError::Io`].
fn open_input(uri: &ObjectUri) -> Result<(std::fs::File, u64), StorageError> {
    let path = local(uri, Direction::Get)?;
    if LocalStore.head(uri)?.is_none() {
        return Err(StorageError::NotFound {
            uri: uri.to_string(),
        });
    }
    open_regular_file(path.as_std_path()).map_err(|error| match error {
        OpenInputError::NotAFile(kind) => StorageError::NotAFile {
            uri: uri.to_string(),
            kind,
        },
        OpenInputError::Io(source) => StorageError::Io {
            op: "opening",
            path: path.to_owned(),
            direction: Direction::Get,
            source,
        },
    })
}

/// A local object being written ([`LocalStore::create`]).
struct FileWriter {
    /// `None` once completed.
    file: Option<std::io::BufWriter<std::fs::File>>,
    partial: Utf8PathBuf,
    destination: Utf8PathBuf,
    hasher: Sha256,
    bytes: u64,
}

impl FileWriter {
    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> StorageError + use<> {
        let path = self.partial.clone();
        move |source| StorageError::Io {
            op,
            path,
            direction: Direction::Put,
            source,
        }
    }

    fn file(&mut self) -> Result<&mut std::io::BufWriter<std::fs::File>, StorageError> {
        let closed = self.io("writing");
        self.file
            .as_mut()
            .ok_or_else(|| closed(std::io::Error::other("the object was completed")))
    }
}

impl ObjectWriter for FileWriter {
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let failed = self.io("writing");
        self.file()?.write_all(data).map_err(failed)?;
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn pause(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        let failed = self.io("syncing");
        let file = self.file()?;
        file.flush()
            .and_then(|()| file.get_ref().sync_all())
            .map_err(failed)
    }

    fn complete(mut self: Box<Self>) -> Result<TransferReport, StorageError> {
        self.flush()?;
        self.file = None;
        if let Err(source) = std::fs::rename(&self.partial, &self.destination) {
            let _ = std::fs::remove_file(&self.partial);
            return Err(StorageError::Io {
                op: "renaming to",
                path: self.destination.clone(),
                direction: Direction::Put,
                source,
            });
        }
        Ok(TransferReport {
            bytes: self.bytes,
            sha256: hex(&std::mem::take(&mut self.hasher).finalize()),
            checksum: None,
        })
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not completed: nothing half-written stays behind.
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// The byte ranges of a local file, read in turn.
struct FileRanges {
    file: std::fs::File,
    path: Utf8PathBuf,
    /// The ranges still to read, the next one last.
    ranges: Vec<Range<u64>>,
    /// The rest of the range being read: (position, end).
    current: Option<(u64, u64)>,
    failure: StreamFailure,
}

impl Read for FileRanges {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let (position, end) = match self.current {
                Some((position, end)) if position < end => (position, end),
                _ => match self.ranges.pop() {
                    Some(range) => {
                        self.file.seek(SeekFrom::Start(range.start))?;
                        self.current = Some((range.start, range.end));
                        continue;
                    }
                    None => return Ok(0),
                },
            };
            if buf.is_empty() {
                return Ok(0);
            }
            let want = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = self.file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(self.failure.record(StorageError::Verification {
                    uri: self.path.to_string(),
                    direction: Direction::Get,
                    detail: format!("the file ends at byte {position}, before byte {end}"),
                }));
            }
            self.current = Some((position + n as u64, end));
            return Ok(n);
        }
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

/// Copies `input` (the file `source`, named in errors) to `destination` through
/// `<destination>.partial`, hashing the bytes.
fn copy_atomically(
    mut input: std::fs::File,
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
    fn a_local_object_written_in_pieces_appears_only_when_completed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let uri = ObjectUri::Local(root.join("out/a b.txt"));
        let mut writer = LocalStore.create(&uri, root).unwrap();
        writer.write(b"ab").unwrap();
        writer.pause().unwrap();
        writer.write(b"c").unwrap();
        writer.flush().unwrap();
        assert_eq!(LocalStore.head(&uri).unwrap(), None);
        let report = writer.complete().unwrap();
        assert_eq!(report.bytes, 3);
        assert_eq!(
            report.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read(root.join("out/a b.txt")).unwrap(), b"abc");

        // Dropped before it is completed: nothing stays, not even the partial file.
        let dropped = ObjectUri::Local(root.join("out/dropped.txt"));
        let mut writer = LocalStore.create(&dropped, root).unwrap();
        writer.write(b"abc").unwrap();
        drop(writer);
        let mut names: Vec<String> = std::fs::read_dir(root.join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a b.txt"]);
    }

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
        let meta = LocalStore.head(&uri).unwrap().unwrap();
        assert_eq!(meta.size, 3);
        assert_eq!(meta.version, None);
        assert_eq!(
            meta.last_modified,
            Some(
                std::fs::metadata(uri.local_path().unwrap())
                    .unwrap()
                    .modified()
                    .unwrap()
            )
        );
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

    /// Runs `work` on its own thread and waits at most `limit` for it: a guard against a hang
    /// (an `open` of a FIFO without a writer blocks for ever), not a speed target.
    fn within<T: Send + 'static>(
        limit: std::time::Duration,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(work());
        });
        rx.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("still blocked after {limit:?}"))
    }

    fn mkfifo(path: &Utf8Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// A FIFO with no writer, `/dev/zero`, `/dev/null` and a directory are refused by `head`,
    /// `get` and `open` before they are opened, with the input class: an `open` of the FIFO
    /// would block, a read of `/dev/zero` never end.
    #[test]
    fn inputs_that_are_not_regular_files_are_refused_before_they_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
        let fifo = root.join("R1.fastq.gz");
        mkfifo(&fifo);
        let cases = [
            (fifo.to_string(), "a FIFO (named pipe)"),
            ("/dev/zero".to_owned(), "a character device"),
            ("/dev/null".to_owned(), "a character device"),
            (root.to_string(), "a directory"),
        ];
        for (path, kind) in cases {
            let destination = root.join("copy");
            let uri = ObjectUri::Local(path.clone().into());
            let expected = format!("{path} is {kind}, not a regular file");
            let (head, get, open) = within(std::time::Duration::from_secs(5), move || {
                (
                    LocalStore.head(&uri).unwrap_err(),
                    LocalStore.get(&uri, &destination).unwrap_err(),
                    LocalStore.open(&uri).unwrap_err(),
                )
            });
            for error in [head, get, open] {
                assert_eq!(error.to_string(), expected);
                assert_eq!(error.exit_class(), ExitClass::InputInvalid);
                assert_eq!(
                    error.remedy().as_deref(),
                    Some(
                        "give a regular file (write a pipe's or a device's output to a file first)"
                    )
                );
            }
            assert!(!root.join("copy").exists());
            assert!(!root.join("copy.partial").exists());
        }
        // A symbolic link to a regular file is a regular file.
        let real = root.join("real.txt");
        std::fs::write(&real, b"abc").unwrap();
        let link = root.join("link.txt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let uri = ObjectUri::Local(link);
        assert_eq!(
            LocalStore.head(&uri).unwrap().map(|meta| meta.size),
            Some(3)
        );
        let mut text = String::new();
        LocalStore
            .open(&uri)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "abc");
    }

    /// `create_new` creates a file only where there is none; `list` gives the files of a
    /// directory, not its subdirectories; `delete` is a no-op without a file.
    #[test]
    fn create_new_list_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
        let lock = ObjectUri::Local(root.join("run/.lock"));
        assert!(LocalStore.create_new(b"first", &lock).unwrap());
        assert!(!LocalStore.create_new(b"second", &lock).unwrap());
        assert_eq!(std::fs::read(root.join("run/.lock")).unwrap(), b"first");
        std::fs::create_dir(root.join("run/logs")).unwrap();
        std::fs::write(root.join("run/a.txt"), b"a").unwrap();
        assert_eq!(
            LocalStore
                .list(&ObjectUri::Local(root.join("run")))
                .unwrap(),
            [".lock", "a.txt"]
        );
        assert_eq!(
            LocalStore
                .list(&ObjectUri::Local(root.join("none")))
                .unwrap(),
            Vec::<String>::new()
        );
        LocalStore.delete(&lock).unwrap();
        LocalStore.delete(&lock).unwrap();
        assert!(!root.join("run/.lock").exists());
    }

    fn local_object(bytes: &[u8]) -> (tempfile::TempDir, ObjectUri) {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(dir.path()).unwrap().join("x.bam");
        std::fs::write(&path, bytes).unwrap();
        (dir, ObjectUri::Local(path))
    }

    #[test]
    fn ranges_are_read_in_turn_byte_exactly() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let (_dir, uri) = local_object(&bytes);
        let meta = LocalStore.head(&uri).unwrap().unwrap();
        let ranges = [0..1, 10..4_000, 4_000..4_001, 9_990..10_000];
        let mut reader = LocalStore.open_ranges(&uri, &meta, &ranges).unwrap();
        assert_eq!(reader.size(), 1 + 3_990 + 1 + 10);
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        let expected: Vec<u8> = ranges
            .iter()
            .flat_map(|r| bytes[r.start as usize..r.end as usize].to_vec())
            .collect();
        assert_eq!(read, expected);
        let mut none = LocalStore.open_ranges(&uri, &meta, &[]).unwrap();
        assert_eq!(none.read(&mut [0u8; 8]).unwrap(), 0);
    }

    #[test]
    fn ranges_breaking_the_rules_are_refused() {
        let (_dir, uri) = local_object(&[7u8; 100]);
        let meta = LocalStore.head(&uri).unwrap().unwrap();
        let refused = |ranges: &[Range<u64>]| {
            let error = LocalStore.open_ranges(&uri, &meta, ranges).unwrap_err();
            assert_eq!(error.exit_class(), ExitClass::InputStaging);
            error.to_string()
        };
        assert_eq!(
            refused(&[0..10, 90..101]),
            format!("{uri}: the byte range 90..101 ends beyond the object (100 bytes)")
        );
        assert_eq!(
            refused(&[0..10, 5..20]),
            format!(
                "{uri}: the byte range 5..20 overlaps or precedes the range before it (100 bytes)"
            )
        );
        assert_eq!(
            refused(std::slice::from_ref(&(3..3))),
            format!("{uri}: the byte range 3..3 is empty (100 bytes)")
        );
    }

    #[test]
    fn a_file_that_changed_size_is_refused_or_fails_the_read() {
        let (_dir, uri) = local_object(&[7u8; 100]);
        let meta = LocalStore.head(&uri).unwrap().unwrap();
        let path = uri.local_path().unwrap().to_owned();
        std::fs::write(&path, [7u8; 50]).unwrap();
        let error = LocalStore
            .open_ranges(&uri, &meta, std::slice::from_ref(&(0..10)))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{uri}: the file has 50 bytes, not the 100 expected")
        );

        std::fs::write(&path, [7u8; 100]).unwrap();
        let mut reader = LocalStore
            .open_ranges(&uri, &meta, &[0..10, 40..100])
            .unwrap();
        std::fs::write(&path, [7u8; 60]).unwrap();
        let mut read = Vec::new();
        let error = reader.read_to_end(&mut read).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{path}: the file ends at byte 60, before byte 100")
        );
        assert_eq!(
            reader.failure().take().unwrap().exit_class(),
            ExitClass::InputStaging
        );
    }
}
