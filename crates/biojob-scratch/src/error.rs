//! The errors of this crate and their exit classes.

use std::io;
use std::time::Duration;

use biojob_core::{Classify, ExitClass};
use camino::Utf8PathBuf;

use crate::format_bytes;

/// A scratch failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScratchError {
    /// The preflight found less free space than the step needs, and the filesystem does not
    /// grow (not managed by EBS autoscale).
    #[error(
        "not enough scratch space for {step} in {path}: needs {needed} bytes ({}), {free} bytes ({}) free",
        format_bytes(*.needed),
        format_bytes(*.free)
    )]
    Insufficient {
        /// The step (`align`, `call chr20`).
        step: String,
        /// The scratch directory checked.
        path: Utf8PathBuf,
        /// Bytes the step needs (the sum of `parts`).
        needed: u64,
        /// Bytes free for an unprivileged writer (`statvfs` `f_bavail × f_frsize`).
        free: u64,
        /// What the estimate is made of, in bytes.
        parts: Vec<(String, u64)>,
    },

    /// The tools were paused because free space fell below the low-water mark, and the
    /// filesystem did not grow within the wait timeout.
    #[error(
        "scratch {path} did not grow within {}: {free} bytes ({}) free, {resume} bytes ({}) needed to resume",
        humantime::format_duration(*.waited),
        format_bytes(*.free),
        format_bytes(*.resume)
    )]
    NeverGrew {
        /// The scratch directory watched.
        path: Utf8PathBuf,
        /// Bytes free when biojob gave up.
        free: u64,
        /// Bytes free needed to resume.
        resume: u64,
        /// How long biojob waited.
        waited: Duration,
    },

    /// The scratch filesystem is (almost) full: found when a step failed, it is the likely
    /// cause even when the tool did not say "No space left on device" (samtools may report a
    /// stale errno, htslib may only warn).
    #[error(
        "scratch {path} is full: {free} bytes ({}) free of {total} ({})",
        format_bytes(*.free),
        format_bytes(*.total)
    )]
    Full {
        /// The scratch directory.
        path: Utf8PathBuf,
        /// Bytes free.
        free: u64,
        /// Size of the filesystem, in bytes.
        total: u64,
    },

    /// A job id that cannot name a directory, even after sanitising.
    #[error("job id {id:?} cannot name a scratch directory: {reason}")]
    InvalidJobId {
        /// The id as given.
        id: String,
        /// Why.
        reason: &'static str,
    },

    /// An attempt number that is not a positive integer.
    #[error("job attempt {text:?} is not a positive integer")]
    InvalidAttempt {
        /// The text as given.
        text: String,
    },

    /// Another live process holds the scratch directory of the same job.
    #[error("scratch {path} is in use by another process")]
    InUse {
        /// The job's directory.
        path: Utf8PathBuf,
    },

    /// A scratch file or directory could not be created, read or removed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: Utf8PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl ScratchError {
    /// An I/O error on `path` while doing `op`.
    pub fn io(op: &'static str, path: impl Into<Utf8PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ScratchError::Io { op, path, source }
    }
}

/// Whether an I/O error means the disk (or a quota) is full.
pub fn is_disk_full(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::StorageFull
        || error.kind() == io::ErrorKind::QuotaExceeded
        || error.raw_os_error() == Some(nix::errno::Errno::ENOSPC as i32)
}

impl Classify for ScratchError {
    fn exit_class(&self) -> ExitClass {
        match self {
            ScratchError::Insufficient { .. }
            | ScratchError::NeverGrew { .. }
            | ScratchError::Full { .. } => ExitClass::Scratch,
            ScratchError::Io { source, .. } if is_disk_full(source) => ExitClass::Scratch,
            ScratchError::InvalidJobId { .. }
            | ScratchError::InvalidAttempt { .. }
            | ScratchError::InUse { .. }
            | ScratchError::Io { .. } => ExitClass::Usage,
        }
    }

    fn remedy(&self) -> Option<String> {
        match self {
            ScratchError::Insufficient { parts, .. } => {
                let parts = parts
                    .iter()
                    .map(|(what, bytes)| format!("{what} {}", format_bytes(*bytes)))
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(format!(
                    "give the job a larger scratch volume or point BIOJOB_SCRATCH_DIR at a larger \
                     filesystem (estimate: {parts}); on an EBS-autoscaled disk set \
                     BIOJOB_SCRATCH_AUTOSCALE=1"
                ))
            }
            ScratchError::NeverGrew { .. } => Some(
                "check the EBS autoscale daemon (/var/log/ebs-autoscale.log: IAM permissions, \
                 volume limits), raise BIOJOB_SCRATCH_WAIT, or give the job a larger disk"
                    .to_owned(),
            ),
            ScratchError::Full { .. } => Some(
                "give the job a larger scratch volume or point BIOJOB_SCRATCH_DIR at a larger \
                 filesystem"
                    .to_owned(),
            ),
            ScratchError::InvalidJobId { .. } => {
                Some("check AWS_BATCH_JOB_ID or --run-id".to_owned())
            }
            ScratchError::InvalidAttempt { .. } => {
                Some("check AWS_BATCH_JOB_ATTEMPT (1 for the first attempt)".to_owned())
            }
            ScratchError::InUse { .. } => Some(
                "two processes run the same job and attempt on this host: give each run its own \
                 id, or wait for the other to finish"
                    .to_owned(),
            ),
            ScratchError::Io { source, .. } if is_disk_full(source) => {
                Some("give the job a larger scratch volume".to_owned())
            }
            ScratchError::Io { .. } => {
                Some("set BIOJOB_SCRATCH_DIR (or --scratch-dir) to a writable directory".to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insufficient_message_and_class() {
        let error = ScratchError::Insufficient {
            step: "align".into(),
            path: "/scratch/job/1".into(),
            needed: 7_123_456,
            free: 1_048_576,
            parts: vec![
                ("sorted BAM".into(), 3 << 20),
                ("sort temporary files".into(), 4 << 20),
            ],
        };
        assert_eq!(
            error.to_string(),
            "not enough scratch space for align in /scratch/job/1: needs 7123456 bytes (6.8 MiB), \
             1048576 bytes (1.0 MiB) free"
        );
        assert_eq!(error.exit_class(), ExitClass::Scratch);
        assert_eq!(error.exit_class().code(), 12);
        assert_eq!(
            error.remedy().as_deref(),
            Some(
                "give the job a larger scratch volume or point BIOJOB_SCRATCH_DIR at a larger \
                 filesystem (estimate: sorted BAM 3.0 MiB, sort temporary files 4.0 MiB); on an \
                 EBS-autoscaled disk set BIOJOB_SCRATCH_AUTOSCALE=1"
            )
        );
    }

    #[test]
    fn never_grew_message_and_class() {
        let error = ScratchError::NeverGrew {
            path: "/scratch/job/1".into(),
            free: 512 << 10,
            resume: 4 << 30,
            waited: Duration::from_secs(300),
        };
        assert_eq!(
            error.to_string(),
            "scratch /scratch/job/1 did not grow within 5m: 524288 bytes (512.0 KiB) free, \
             4294967296 bytes (4.0 GiB) needed to resume"
        );
        assert_eq!(error.exit_class().code(), 12);
    }

    #[test]
    fn full_message_and_class() {
        let error = ScratchError::Full {
            path: "/scratch/job/1".into(),
            free: 4096,
            total: 12 << 20,
        };
        assert_eq!(
            error.to_string(),
            "scratch /scratch/job/1 is full: 4096 bytes (4.0 KiB) free of 12582912 (12.0 MiB)"
        );
        assert_eq!(error.exit_class().code(), 12);
    }

    #[test]
    fn io_classes() {
        let full = ScratchError::io("creating", "/scratch/x")(io::Error::from_raw_os_error(
            nix::errno::Errno::ENOSPC as i32,
        ));
        assert_eq!(full.to_string(), "creating /scratch/x");
        assert_eq!(full.exit_class(), ExitClass::Scratch);
        let denied = ScratchError::io("creating", "/scratch/x")(io::Error::from(
            io::ErrorKind::PermissionDenied,
        ));
        assert_eq!(denied.exit_class(), ExitClass::Usage);
        assert_eq!(
            denied.remedy().as_deref(),
            Some("set BIOJOB_SCRATCH_DIR (or --scratch-dir) to a writable directory")
        );
        let in_use = ScratchError::InUse {
            path: "/scratch/job".into(),
        };
        assert_eq!(in_use.exit_class(), ExitClass::Usage);
    }
}
