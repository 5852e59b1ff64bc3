//! The workflow's steps. Each writes its outputs under temporary names in a work directory,
//! verifies them, and renames them to their final names only when the step has succeeded.

mod align;
mod call;
mod gather;
mod qc;

pub use align::{AlignOutput, AlignRequest, BWA_BATCH_BASES, align};
pub use call::{CallOutput, CallRequest, call};
pub use gather::{GatherOutput, GatherRequest, gather, order_for_gather};
pub use qc::{
    ContigQc, QC_FORMAT_VERSION, QcFiles, QcOutput, QcRequest, QcSummary, ReadsQc, VariantsQc, qc,
    qc_file_names,
};

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

/// Checks one of our VCF outputs with [`biojob_formats::scan_vcf`]; a failure is an output
/// verification failure.
pub(crate) fn verify_vcf_output(
    path: &Utf8Path,
    rules: &biojob_formats::VcfRules<'_>,
) -> Result<biojob_formats::VcfScan, Error> {
    biojob_formats::scan_vcf(path, rules).map_err(|error| Error::Verification {
        path: path.to_owned(),
        detail: match error {
            biojob_formats::FormatError::Invalid { reason, .. } => reason,
            other => crate::error_chain(&other),
        },
    })
}

/// Renames a verified `*.partial` output to its final name.
pub(crate) fn publish_local(partial: &Utf8Path, final_path: &Utf8Path) -> Result<(), Error> {
    std::fs::rename(partial, final_path).map_err(Error::io("renaming to", final_path))
}
