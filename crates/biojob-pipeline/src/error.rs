//! The pipeline's errors.

use biojob_core::{Classify, ExitClass};
use biojob_formats::{FastqError, FormatError};
use biojob_process::ProcessError;
use biojob_scratch::{ScratchError, is_disk_full};
use biojob_storage::StorageError;
use biojob_tools::ToolError;
use camino::Utf8PathBuf;

/// A failure of a step or of the workflow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A step failed; the source says why.
    #[error("{task} failed")]
    Step {
        /// The step and shard (`align`, `call chr20`).
        task: String,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
    /// The workflow input or a flag is wrong.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        remedy: Option<String>,
    },
    /// An input is missing, unreadable or inconsistent.
    #[error("{message}")]
    Input {
        /// What is wrong.
        message: String,
        /// How to fix it.
        remedy: Option<String>,
    },
    /// An output failed verification.
    #[error("{path}: {detail}")]
    Verification {
        /// The output.
        path: Utf8PathBuf,
        /// What was expected and found.
        detail: String,
    },
    /// A tool could not be found or probed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A child process failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A FASTQ input is invalid.
    #[error(transparent)]
    Fastq(#[from] FastqError),
    /// A file is not in the expected format.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Staging failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Scratch space is short, never grew, or its directory cannot be made.
    #[error(transparent)]
    Scratch(#[from] ScratchError),
    /// A step failed while its scratch filesystem was full: the full disk (`full`, a
    /// [`ScratchError::Full`]) is the likely cause of the failure (`source`).
    #[error("{full}")]
    ScratchFull {
        /// What was found.
        full: ScratchError,
        /// The failure as reported.
        #[source]
        source: Box<Error>,
    },
    /// Local I/O failed: on an input (class input invalid) or on scratch, cache or output
    /// files (class scratch).
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: Utf8PathBuf,
        /// Input side (true) or working files (false).
        input: bool,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps `self` as the failure of `task`.
    pub fn in_task(self, task: impl Into<String>) -> Error {
        Error::Step {
            task: task.into(),
            source: Box::new(self),
        }
    }

    /// An I/O error on the working file `path` (scratch, cache, outputs): scratch class.
    pub fn io(
        op: &'static str,
        path: impl Into<Utf8PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            op,
            path,
            input: false,
            source,
        }
    }

    /// An I/O error on the input `path`: input class.
    pub fn input_io(
        op: &'static str,
        path: impl Into<Utf8PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            op,
            path,
            input: true,
            source,
        }
    }

    /// The innermost error, below any [`Error::Step`] wrappers.
    pub fn root(&self) -> &Error {
        match self {
            Error::Step { source, .. } | Error::ScratchFull { source, .. } => source.root(),
            other => other,
        }
    }
}

impl Classify for Error {
    fn exit_class(&self) -> ExitClass {
        match self {
            Error::Step { source, .. } => source.exit_class(),
            Error::Usage { .. } => ExitClass::Usage,
            Error::Input { .. } => ExitClass::InputInvalid,
            Error::Verification { .. } => ExitClass::OutputInvalid,
            Error::Tool(error) => error.exit_class(),
            Error::Process(error) => error.exit_class(),
            Error::Fastq(error) => error.exit_class(),
            Error::Format(error) => error.exit_class(),
            Error::Storage(error) => error.exit_class(),
            Error::Scratch(error) => error.exit_class(),
            Error::ScratchFull { .. } => ExitClass::Scratch,
            Error::Io { source, input, .. } => {
                if *input && !is_disk_full(source) {
                    ExitClass::InputInvalid
                } else {
                    ExitClass::Scratch
                }
            }
        }
    }

    fn remedy(&self) -> Option<String> {
        match self {
            Error::Step { source, .. } => source.remedy(),
            Error::Usage { remedy, .. } | Error::Input { remedy, .. } => remedy.clone(),
            Error::Verification { .. } => None,
            Error::Tool(error) => error.remedy(),
            Error::Process(error) => error.remedy(),
            Error::Fastq(error) => error.remedy(),
            Error::Format(error) => error.remedy(),
            Error::Storage(error) => error.remedy(),
            Error::Scratch(error) => error.remedy(),
            Error::ScratchFull { full, .. } => full.remedy(),
            Error::Io { source, input, .. } => {
                if is_disk_full(source) {
                    Some("free space on the scratch filesystem or use a larger disk".to_owned())
                } else if *input {
                    Some("check that the file exists and is readable".to_owned())
                } else {
                    Some("check that the scratch and cache directories are writable".to_owned())
                }
            }
        }
    }
}
