//! The `align` step: `bwa mem | samtools sort`, then `samtools index`.

use biojob_core::{ReadGroup, SampleId, StepId, scratch_file_name};
use biojob_formats::{
    FastqError, FastqPairStats, describe_contig_difference, read_bam_header_summary,
    stream_fastq_pair,
};
use biojob_process::{CancelReason, StageReport};
use biojob_tools::{BwaMem, SamtoolsSort, samtools_index, sort_memory_per_thread};
use camino::{Utf8Path, Utf8PathBuf};
use tracing::info;

use crate::steps::{PendingOutputs, verify_bgzf_output};
use crate::{Error, PreparedReference, StepContext, align_space_need, file_bytes};

/// bwa's `-K`: bases per batch. A fixed value makes the output independent of the thread count.
pub const BWA_BATCH_BASES: u64 = 10_000_000;

/// What the align step needs.
#[derive(Debug, Clone)]
pub struct AlignRequest<'a> {
    /// The sample.
    pub sample: &'a SampleId,
    /// The read group written into the header and onto every read.
    pub read_group: &'a ReadGroup,
    /// The reference, prepared with its bwa index.
    pub reference: &'a PreparedReference,
    /// Read 1 (local FASTQ, plain or gzip).
    pub fastq_1: &'a Utf8Path,
    /// Read 2 (local FASTQ, plain or gzip), same read order as read 1.
    pub fastq_2: &'a Utf8Path,
    /// Where the outputs are written.
    pub work_dir: &'a Utf8Path,
}

/// The align step's results.
#[derive(Debug, Clone)]
pub struct AlignOutput {
    /// `{sample}.align.bam`, coordinate-sorted.
    pub bam: Utf8PathBuf,
    /// `{sample}.align.bam.bai`.
    pub bai: Utf8PathBuf,
    /// What the FASTQ check counted.
    pub fastq: FastqPairStats,
    /// Reports of the tools run.
    pub commands: Vec<StageReport>,
}

/// The sample's BAM in `work_dir` and its index: `<sample>.align.bam` and `.bam.bai`, the names
/// align and merge write and the call step reads.
pub(crate) fn sample_bam_paths(
    work_dir: &Utf8Path,
    sample: &SampleId,
) -> (Utf8PathBuf, Utf8PathBuf) {
    let bam = work_dir.join(scratch_file_name(sample, StepId::Align, None, "bam"));
    let bai = Utf8PathBuf::from(format!("{bam}.bai"));
    (bam, bai)
}

/// Aligns a read pair and writes the sorted, indexed BAM.
///
/// biojob reads both FASTQs itself, checks them record by record (structure, quality length
/// and range, mate names, counts, gzip integrity; see `biojob_formats::stream_fastq_pair`) and
/// hands bwa the plain records through two anonymous pipes (`/dev/fd/3`, `/dev/fd/4`), so each
/// file is read once and bwa never sees a truncated input as a valid end of file. bwa's SAM
/// goes straight into `samtools sort` through an OS pipe; no SAM touches the disk. Both tools
/// are awaited with pipefail semantics. `sort -m` comes from
/// [`sort_memory_per_thread`] and the job's memory; `sort -T` is private to `work_dir`.
///
/// The BAM is written as `*.partial`, checked (BGZF EOF block, `@HD SO:coordinate`, the `@RG`
/// line, `@SQ` equal to the `.fai`), indexed, and only then renamed to its final names. On
/// failure the partial outputs and the sort's temporary files are removed.
///
/// Before anything runs, the free scratch space is checked against [`align_space_need`].
///
/// With [`StepContext::validate_fastq`] off (a benchmark switch), bwa reads the FASTQ paths
/// itself and nothing is checked; the returned [`FastqPairStats`] are then all zero.
///
/// # Errors
/// [`Error::Scratch`] when scratch is too small (scratch class), [`Error::Fastq`] for a bad
/// input (input class), [`Error::Process`] when a tool fails (the root cause with its stderr
/// tail; "No space left on device" is scratch class), [`Error::Verification`] when the BAM is
/// not as expected; [`Error::ScratchFull`] around either of the last two when scratch is full
/// at that point (scratch class).
pub fn align(request: &AlignRequest<'_>, context: &StepContext) -> Result<AlignOutput, Error> {
    let work_dir = request.work_dir;
    std::fs::create_dir_all(work_dir).map_err(Error::io("creating", work_dir))?;
    context.preflight(&align_space_need(
        0,
        file_bytes(request.fastq_1).saturating_add(file_bytes(request.fastq_2)),
        request.fastq_1.as_str(),
    ))?;
    let (bam, bai) = sample_bam_paths(work_dir, request.sample);
    let mut outputs = PendingOutputs::default();
    let bam_partial = outputs.partial_for(&bam);
    let bai_partial = outputs.partial_for(&bai);
    let sort_temp = work_dir.join(scratch_file_name(
        request.sample,
        StepId::Align,
        None,
        "sort-tmp",
    ));
    let index_prefix = request
        .reference
        .bwa_prefix
        .clone()
        .ok_or_else(|| Error::Usage {
            message: "the reference was prepared without its bwa index".into(),
            remedy: None,
        })?;

    let threads = context.resources.threads.max(1);
    let memory_per_thread = sort_memory_per_thread(context.resources.memory_bytes, threads);
    let validate = context.validate_fastq;
    let sort = SamtoolsSort {
        threads,
        memory_per_thread,
        temp_prefix: sort_temp.clone(),
        output: bam_partial.clone(),
    }
    .command(&context.toolset.samtools);
    info!(
        threads,
        sort_memory_per_thread = memory_per_thread,
        fastq_validation = validate,
        "aligning {} and {}",
        request.fastq_1,
        request.fastq_2
    );

    let (fed, piped) = if validate {
        let (read_1, write_1) =
            std::io::pipe().map_err(Error::io("creating a pipe for", request.fastq_1))?;
        let (read_2, write_2) =
            std::io::pipe().map_err(Error::io("creating a pipe for", request.fastq_2))?;
        let bwa = BwaMem {
            threads,
            batch_bases: BWA_BATCH_BASES,
            read_group: request.read_group.clone(),
            index_prefix,
            fastq_1: "/dev/fd/3".into(),
            fastq_2: "/dev/fd/4".into(),
        }
        .command(&context.toolset.bwa)
        .inherit_fd(3, read_1.into())
        .inherit_fd(4, read_2.into());
        let cancel = context.supervisor.cancel_token().child();
        let supervisor = context.supervisor.with_cancel(cancel.clone());
        let (fed, piped) = std::thread::scope(|scope| {
            let feeder = scope.spawn(|| {
                let result = stream_fastq_pair(request.fastq_1, request.fastq_2, write_1, write_2);
                if matches!(&result, Err(error) if !matches!(error, FastqError::ConsumerClosed { .. }))
                {
                    cancel.cancel(CancelReason::Sibling);
                }
                result
            });
            let piped = supervisor.run_pipeline(vec![bwa, sort]);
            let fed = feeder.join();
            (fed, piped)
        });
        let fed = fed.map_err(|_| Error::Usage {
            message: "the FASTQ reader thread panicked".into(),
            remedy: None,
        })?;
        (fed, piped)
    } else {
        tracing::warn!(
            "FASTQ validation is off: the FASTQ files go to bwa unchecked (benchmark switch)"
        );
        let bwa = BwaMem {
            threads,
            batch_bases: BWA_BATCH_BASES,
            read_group: request.read_group.clone(),
            index_prefix,
            fastq_1: request.fastq_1.to_owned(),
            fastq_2: request.fastq_2.to_owned(),
        }
        .command(&context.toolset.bwa);
        let piped = context.supervisor.run_pipeline(vec![bwa, sort]);
        (Ok(FastqPairStats::default()), piped)
    };

    let result = (|| {
        let report = match (fed, piped) {
            // A bad input is the cause, whatever the tools did after being stopped.
            (Err(error), _) if !matches!(error, FastqError::ConsumerClosed { .. }) => {
                return Err(Error::Fastq(error));
            }
            (_, Err(error)) => return Err(Error::Process(error)),
            (Err(_), Ok(_)) => {
                return Err(Error::Verification {
                    path: bam_partial.clone(),
                    detail: "bwa-mem exited with status 0 before reading all of its input".into(),
                });
            }
            (Ok(stats), Ok(report)) => (stats, report),
        };
        let (fastq, pipeline) = report;
        let mut commands = pipeline.stages;
        verify_bam(&bam_partial, request)?;
        commands.push(context.supervisor.run(samtools_index(
            &context.toolset.samtools,
            &bam_partial,
            &bai_partial,
            threads.saturating_sub(1),
        ))?);
        outputs.publish()?;
        Ok(AlignOutput {
            bam: bam.clone(),
            bai: bai.clone(),
            fastq,
            commands,
        })
    })();
    context.space.sample();
    // While the partial outputs are still there: they hold the space that may have run out.
    let result = result.map_err(|error| context.explain_failure(error));
    if result.is_err() {
        remove_sort_temporaries(&sort_temp);
    }
    result
}

/// Removes what `samtools sort -T PREFIX` may have left: `PREFIX.NNNN.bam` files.
fn remove_sort_temporaries(prefix: &Utf8Path) {
    let (Some(dir), Some(name)) = (prefix.parent(), prefix.file_name()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let start = format!("{name}.");
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&start) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub(crate) fn verify_bam(bam: &Utf8Path, request: &AlignRequest<'_>) -> Result<(), Error> {
    verify_bgzf_output(bam)?;
    let header = read_bam_header_summary(bam).map_err(|error| Error::Verification {
        path: bam.to_owned(),
        detail: error.to_string(),
    })?;
    let fail = |detail: String| Error::Verification {
        path: bam.to_owned(),
        detail,
    };
    if header.sort_order.as_deref() != Some("coordinate") {
        return Err(fail(format!(
            "expected @HD SO:coordinate, found {:?}",
            header.sort_order
        )));
    }
    let expected: Vec<(String, String)> = request
        .read_group
        .fields()
        .into_iter()
        .map(|(tag, value)| (tag.to_owned(), value.to_owned()))
        .collect();
    match header.read_groups.as_slice() {
        [(id, fields)] if *id == request.read_group.id && contains_all(fields, &expected) => {}
        other => {
            return Err(fail(format!(
                "expected one @RG line {:?}, found {other:?}",
                request.read_group.to_header_line()
            )));
        }
    }
    if let Some(difference) =
        describe_contig_difference("@SQ", &header.contigs, &request.reference.contigs)
    {
        return Err(fail(format!("{difference} ({})", request.reference.fai)));
    }
    Ok(())
}

fn contains_all(found: &[(String, String)], expected: &[(String, String)]) -> bool {
    expected.iter().all(|pair| found.contains(pair))
}
