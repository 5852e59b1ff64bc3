//! Workflow steps and the names of the files they write.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::SampleId;

/// A step of the workflow. Each is a `biojob` subcommand and an AWS Batch job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepId {
    /// Build the missing `.fai` and bwa index of the reference.
    PrepareReference,
    /// Split the FASTQ pair into chunks of read pairs (when the run aligns in chunks).
    Split,
    /// `bwa mem | samtools sort`, then `samtools index`: of the whole FASTQ pair, or of one
    /// chunk.
    Align,
    /// `samtools merge` of the chunks' BAMs into the sample's BAM, then `samtools index`.
    Merge,
    /// `bcftools mpileup | bcftools call` for one shard, then `bcftools index`.
    Call,
    /// `bcftools concat` of the shards' VCFs in reference order, then `bcftools index`.
    Gather,
    /// `samtools flagstat`, `samtools stats`, `bcftools stats` (MultiQC's inputs), native
    /// depth and variant statistics (`qc.json`) and the HTML run report.
    Qc,
    /// One sample's records of a cohort's jointly called VCF (`bcftools view -s`), then
    /// `bcftools index`.
    SampleVcf,
    /// The cohort's HTML report: one row per sample, from each sample's `qc.json`.
    Report,
}

impl StepId {
    /// The name used in subcommands, file names and manifests (`prepare-reference`, `align`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            StepId::PrepareReference => "prepare-reference",
            StepId::Split => "split",
            StepId::Align => "align",
            StepId::Merge => "merge",
            StepId::Call => "call",
            StepId::Gather => "gather",
            StepId::Qc => "qc",
            StepId::SampleVcf => "sample-vcf",
            StepId::Report => "report",
        }
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most chunks a sample's alignment is split into: chunk numbers have four digits in the
/// file names ([`scratch_file_name`]), and a Batch job's `CHUNKS` is 1 to 9999.
pub const MAX_CHUNKS: usize = 9_999;

/// The fixed file name pattern of the workflow: `{sample}.{step}[.{shard:04}].{ext}`.
///
/// `ext` has no leading dot and may have several parts (`vcf.gz`, `bam.bai`).
///
/// ```
/// # use biojob_core::{SampleId, StepId, scratch_file_name};
/// let sample = SampleId::new("NA12878").unwrap();
/// assert_eq!(scratch_file_name(&sample, StepId::Align, None, "bam"), "NA12878.align.bam");
/// assert_eq!(scratch_file_name(&sample, StepId::Call, Some(2), "vcf.gz"), "NA12878.call.0002.vcf.gz");
/// ```
pub fn scratch_file_name(
    sample: &SampleId,
    step: StepId,
    shard: Option<usize>,
    ext: &str,
) -> String {
    match shard {
        Some(index) => format!("{sample}.{step}.{index:04}.{ext}"),
        None => format!("{sample}.{step}.{ext}"),
    }
}
