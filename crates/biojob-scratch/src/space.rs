//! Free space (`statvfs`), the size of a directory tree, and a step's space estimate.

use std::os::unix::fs::MetadataExt;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::ScratchError;

/// The space of the filesystem holding a path, in bytes, as `statvfs(2)` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FsSpace {
    /// Bytes available to an unprivileged writer (`f_bavail × f_frsize`): what a tool can
    /// still write. Root may write a little more (the ext4 reserve); biojob does not count on it.
    pub free_bytes: u64,
    /// Size of the filesystem (`f_blocks × f_frsize`).
    pub total_bytes: u64,
}

/// The space of the filesystem holding `path`.
///
/// # Errors
/// [`ScratchError::Io`] when `statvfs` fails (e.g. the path does not exist).
#[allow(
    clippy::useless_conversion,
    reason = "c_ulong and fsblkcnt_t are u64 here but not on every target"
)]
pub fn fs_space(path: &Utf8Path) -> Result<FsSpace, ScratchError> {
    let stats = nix::sys::statvfs::statvfs(path.as_std_path())
        .map_err(|errno| ScratchError::io("reading the free space of", path)(errno.into()))?;
    let unit = u64::from(stats.fragment_size());
    Ok(FsSpace {
        free_bytes: u64::from(stats.blocks_available()).saturating_mul(unit),
        total_bytes: u64::from(stats.blocks()).saturating_mul(unit),
    })
}

/// Bytes allocated on disk to the files under `dir` (`st_blocks × 512`, so sparse files count
/// what they use), without following symbolic links. Files that vanish or cannot be read
/// while walking are skipped; a missing `dir` is 0.
pub fn dir_usage(dir: &Utf8Path) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir()
                && let Ok(path) = Utf8PathBuf::from_path_buf(entry.path())
            {
                pending.push(path);
            }
        }
    }
    total
}

/// A byte count for people: `512 B`, `1.5 KiB`, `6.8 MiB`, `4.0 GiB`, `1.2 TiB` (binary
/// multiples, one decimal).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What a step expects to write to scratch, in bytes, part by part.
///
/// ```
/// use biojob_scratch::SpaceNeed;
///
/// let need = SpaceNeed::new("align")
///     .with("sorted BAM", 3_000_000)
///     .with("sort temporary files", 4_500_000);
/// assert_eq!(need.total(), 7_500_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpaceNeed {
    /// The step (`align`, `call chr20`).
    pub step: String,
    /// The parts: staged inputs, outputs, temporary files.
    pub parts: Vec<(String, u64)>,
}

impl SpaceNeed {
    /// An empty estimate for `step`.
    pub fn new(step: impl Into<String>) -> Self {
        SpaceNeed {
            step: step.into(),
            parts: Vec::new(),
        }
    }

    /// Adds a part of `bytes` bytes.
    pub fn with(mut self, what: impl Into<String>, bytes: u64) -> Self {
        self.parts.push((what.into(), bytes));
        self
    }

    /// The sum of the parts, in bytes.
    pub fn total(&self) -> u64 {
        self.parts
            .iter()
            .fold(0u64, |sum, (_, bytes)| sum.saturating_add(*bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bytes() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(7_123_456), "6.8 MiB");
        assert_eq!(format_bytes(4 << 30), "4.0 GiB");
        assert_eq!(format_bytes(1_319_413_953_331), "1.2 TiB");
        assert_eq!(format_bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn need_sums_and_saturates() {
        let need = SpaceNeed::new("gather").with("a", u64::MAX).with("b", 1);
        assert_eq!(need.total(), u64::MAX);
        assert_eq!(SpaceNeed::new("x").total(), 0);
    }

    #[test]
    fn usage_of_a_tree() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = Utf8Path::from_path(temp.path()).expect("UTF-8");
        std::fs::create_dir(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("sub/a"), vec![1u8; 10_000]).expect("write");
        std::fs::write(dir.join("b"), vec![1u8; 5_000]).expect("write");
        let usage = dir_usage(dir);
        // At least the two files' bytes (block rounding and the subdirectory add more).
        assert!(usage >= 15_000, "{usage}");
        assert_eq!(dir_usage(&dir.join("missing")), 0);
    }

    #[test]
    fn space_of_a_missing_path_is_an_error() {
        let error = fs_space(Utf8Path::new("/nonexistent/biojob")).expect_err("missing");
        assert_eq!(
            error.to_string(),
            "reading the free space of /nonexistent/biojob"
        );
    }
}
