//! Kinds of file an input path may name, in words.

use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;

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
