//! Kinds of file an input path may name, in words, and opening an input only when it is a
//! regular file.

use std::fs::{File, FileType};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a file that is not a regular file is, in words (`"a FIFO (named pipe)"`,
/// `"a directory"`, `"a character device"`, …), or `None` for a regular file.
///
/// Inputs must be regular files (or objects in a store): opening a FIFO blocks until a writer
/// appears, and a character device such as `/dev/zero` never ends. `file_type` comes from a
/// `stat` that follows symbolic links (`std::fs::metadata`), so a link to a regular file is a
/// regular file.
pub fn non_regular_file_kind(file_type: FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_dir() {
        Some("a directory")
    } else if file_type.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_symlink() {
        Some("a symbolic link")
    } else {
        Some("a file of an unknown kind")
    }
}

/// Why [`open_regular_file`] did not open a path.
#[derive(Debug)]
pub enum OpenInputError {
    /// `stat`, `open` or `fstat` failed (the path does not exist, cannot be read, …).
    Io(std::io::Error),
    /// The path is not a regular file: what it is ([`non_regular_file_kind`]).
    NotAFile(&'static str),
}

/// Opens `path` for reading when it is a regular file (or a link to one), with its size in
/// bytes, without ever blocking: `stat` first, then `open` with `O_NONBLOCK` (a FIFO put there
/// in between does not block the open) and `fstat` the open file. `O_NONBLOCK` does not change
/// reads of a regular file (open(2)).
///
/// # Errors
/// [`OpenInputError::NotAFile`] for a directory, FIFO, device or socket;
/// [`OpenInputError::Io`] when a call fails.
pub fn open_regular_file(path: &Path) -> Result<(File, u64), OpenInputError> {
    let refuse = |meta: &std::fs::Metadata| match non_regular_file_kind(meta.file_type()) {
        Some(kind) => Err(OpenInputError::NotAFile(kind)),
        None => Ok(meta.len()),
    };
    refuse(&std::fs::metadata(path).map_err(OpenInputError::Io)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(OpenInputError::Io)?;
    let size = refuse(&file.metadata().map_err(OpenInputError::Io)?)?;
    Ok((file, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(path: &str) -> Option<&'static str> {
        non_regular_file_kind(std::fs::metadata(path).unwrap().file_type())
    }

    #[test]
    fn kinds_in_words() {
        assert_eq!(kind(env!("CARGO_MANIFEST_PATH")), None);
        assert_eq!(kind("/"), Some("a directory"));
        assert_eq!(kind("/dev/zero"), Some("a character device"));
        assert_eq!(kind("/dev/null"), Some("a character device"));
        let link = std::fs::symlink_metadata("/proc/self").unwrap();
        assert_eq!(
            non_regular_file_kind(link.file_type()),
            Some("a symbolic link")
        );
    }
}
