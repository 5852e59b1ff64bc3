//! The `merge` step: `samtools merge` of the chunks' BAMs into the sample's BAM, then
//! `samtools index`.

use biojob_process::StageReport;
use biojob_tools::{SamtoolsMerge, samtools_index};
use camino::{Utf8Path, Utf8PathBuf};

use crate::steps::PendingOutputs;
use crate::steps::align::{sample_bam_paths, verify_bam};
use crate::{AlignRequest, Error, StepContext, file_bytes};

/// The merge step's results.
#[derive(Debug, Clone)]
pub struct MergeOutput {
    /// `{sample}.align.bam`, coordinate-sorted: the name an unsplit align writes.
    pub bam: Utf8PathBuf,
    /// `{sample}.align.bam.bai`.
    pub bai: Utf8PathBuf,
    /// Reports of the tools run.
    pub commands: Vec<StageReport>,
}

/// Merges the coordinate-sorted BAMs of the chunks of one sample into `{sample}.align.bam` in
/// `work_dir` with `samtools merge -@ THREADS-1 -f` and indexes it with `samtools index`.
///
/// `request` is the sample's align request (the whole FASTQ pair): its sample, read group and
/// reference give the checks of the merged BAM, the same as an unsplit align's (BGZF EOF block,
/// `@HD SO:coordinate`, one `@RG` line equal to the read group's, `@SQ` equal to the `.fai`).
/// Outputs are written as `*.partial` and renamed once checked and indexed.
///
/// # Errors
/// [`Error::Usage`] when `bams` is empty; [`Error::Process`] when a tool fails
/// ([`Error::ScratchFull`] around it when scratch is full); [`Error::Verification`] when the
/// merged BAM fails its checks.
pub fn merge(
    request: &AlignRequest<'_>,
    bams: &[Utf8PathBuf],
    context: &StepContext,
) -> Result<MergeOutput, Error> {
    let work_dir: &Utf8Path = request.work_dir;
    std::fs::create_dir_all(work_dir).map_err(Error::io("creating", work_dir))?;
    if bams.is_empty() {
        return Err(Error::Usage {
            message: "merge needs at least one BAM".into(),
            remedy: None,
        });
    }
    let bytes = bams
        .iter()
        .fold(0u64, |sum, bam| sum.saturating_add(file_bytes(bam)));
    tracing::info!(bams = bams.len(), bytes, "merging the chunks' BAMs");
    let (bam, bai) = sample_bam_paths(work_dir, request.sample);
    let mut outputs = PendingOutputs::default();
    let bam_partial = outputs.partial_for(&bam);
    let bai_partial = outputs.partial_for(&bai);
    let threads = context.resources.threads.max(1);
    let samtools = &context.toolset.samtools;
    let result = (|| {
        let mut commands = vec![
            context.supervisor.run(
                SamtoolsMerge {
                    threads: threads.saturating_sub(1),
                    inputs: bams.to_vec(),
                    output: bam_partial.clone(),
                }
                .command(samtools),
            )?,
        ];
        verify_bam(&bam_partial, request)?;
        commands.push(context.supervisor.run(samtools_index(
            samtools,
            &bam_partial,
            &bai_partial,
            threads.saturating_sub(1),
        ))?);
        outputs.publish()?;
        Ok(MergeOutput {
            bam: bam.clone(),
            bai: bai.clone(),
            commands,
        })
    })();
    result.map_err(|error| context.explain_failure(error))
}
