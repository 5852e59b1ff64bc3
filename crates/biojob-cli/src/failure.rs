//! How the binary fails: a classified pipeline error or a usage problem, printed as the cause,
//! a `hint:` line and the exit class.

use biojob_core::{Classify, ExitClass};

/// A failure: the classified pipeline error, or a usage problem found by the binary.
#[derive(Debug)]
pub enum Failure {
    /// From the pipeline.
    Pipeline(biojob_pipeline::Error),
    /// From the binary itself (flags, files it reads), with a remedy.
    Usage(anyhow::Error, Option<String>),
}

impl Failure {
    /// A cohort lane job's failure naming the lane's row of the sheet
    /// ([`biojob_pipeline::SheetLane::failed`]); a usage failure stays as it is.
    pub fn of_lane(
        self,
        lane: &biojob_pipeline::SheetLane,
        what: &str,
        sample: &biojob_core::SampleId,
        sheet: &biojob_storage::ObjectUri,
    ) -> Failure {
        match self {
            Failure::Pipeline(error) => Failure::Pipeline(lane.failed(error, what, sample, sheet)),
            usage @ Failure::Usage(..) => usage,
        }
    }

    /// Its exit class.
    pub fn exit_class(&self) -> ExitClass {
        match self {
            Failure::Pipeline(error) => error.exit_class(),
            Failure::Usage(..) => ExitClass::Usage,
        }
    }
}

impl From<biojob_pipeline::Error> for Failure {
    fn from(error: biojob_pipeline::Error) -> Self {
        Failure::Pipeline(error)
    }
}

/// `text` as an object URI (`s3://bucket/key`, `file://`, a path). A key with `.`, `..` or
/// empty segments keeps its input class (11, [`biojob_storage::StorageError::UnsafeKey`]);
/// any other parse error is a usage failure with `remedy`.
pub fn parse_uri(text: &str, remedy: &str) -> Result<biojob_storage::ObjectUri, Failure> {
    biojob_storage::ObjectUri::parse(text).map_err(|error| match error {
        unsafe_key @ biojob_storage::StorageError::UnsafeKey { .. } => {
            Failure::Pipeline(unsafe_key.into())
        }
        other => usage(other, remedy),
    })
}

/// A usage failure with its remedy.
pub fn usage(error: impl std::fmt::Display, remedy: &str) -> Failure {
    Failure::Usage(anyhow::anyhow!("{error}"), Some(remedy.to_owned()))
}

/// Prints the error chain (a failed tool's message ends with its stderr tail), the remedy on
/// the next line, and the exit class.
pub fn report(failure: &Failure) {
    let class = failure.exit_class();
    match failure {
        Failure::Pipeline(error) => {
            eprintln!("error: {}", biojob_pipeline::error_chain(error));
            if let Some(remedy) = error.remedy() {
                eprintln!("hint: {remedy}");
            }
        }
        Failure::Usage(error, remedy) => {
            eprintln!("error: {error:#}");
            if let Some(remedy) = remedy {
                eprintln!("hint: {remedy}");
            }
        }
    }
    eprintln!("exit class: {} ({})", class.name(), class.code());
}
