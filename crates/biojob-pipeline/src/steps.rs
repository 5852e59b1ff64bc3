//! The workflow's steps. Each writes its outputs under temporary names in a work directory,
//! verifies them, and renames them to their final names only when the step has succeeded.

mod align;
mod call;
mod gather;

pub use align::{AlignOutput, AlignRequest, BWA_BATCH_BASES, align};
pub use call::{CallOutput, CallRequest, call};
pub use gather::{GatherOutput, GatherRequest, gather, order_for_gather};

use camino::{Utf8Path, Utf8PathBuf};

use crate::Error;

/// `<path>.partial`: the name an output has until its step succeeds.
pub(crate) fn partial(path: &Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{path}.partial"))
}

/// Checks that an output of ours ends with the BGZF EOF block; a truncated output is an
/// output verification failure (not an input one).
pub(crate) fn verify_bgzf_output(path: &Utf8Path) -> Result<(), Error> {
    biojob_formats::check_bgzf_eof(path).map_err(|error| Error::Verification {
        path: path.to_owned(),
        detail: error.to_string(),
    })
}

/// Renames a verified `*.partial` output to its final name.
pub(crate) fn publish_local(partial: &Utf8Path, final_path: &Utf8Path) -> Result<(), Error> {
    std::fs::rename(partial, final_path).map_err(Error::io("renaming to", final_path))
}
