//! The `align` step: `bwa mem | samtools sort`, indexed as it is written, of the whole FASTQ
//! pair or of one chunk of it.

use std::collections::BTreeMap;

use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_formats::{
    BamHeaderSummary, ChunkLayout, FastqError, FastqPairStats, FastqProgress, FormatError,
    describe_contig_difference, read_bam_header_summary, stream_fastq_pair_with_progress,
};
use biojob_process::CancelReason;
use biojob_scratch::SpaceNeed;
use biojob_tools::{BwaMem, SamtoolsSort, Tool, samtools_fixmate, sort_memory_per_thread};
use camino::{Utf8Path, Utf8PathBuf};
use tracing::info;

use crate::job::REFERENCE;
use crate::plan::partial;
use crate::steps::{
    CountedBam, RunningPlan, check_records, index_written, place_index, plan_shape, sink_or_tool,
    verify_bgzf_output,
};
use crate::{
    CohortMember, Error, Executed, PlanContext, PlannedCommand, PreparedReference, ProgressUnit,
    RecordCounts, StagedInputs, StepContext, StepDefinition, StepPlan, TaskShard, align_space_need,
    file_bytes,
};

/// bwa's `-K`: bases per batch. A fixed value makes the output independent of the thread count.
pub const BWA_BATCH_BASES: u64 = 10_000_000;

/// The role of read 1 in an align job's inputs.
pub const FASTQ_1: &str = "fastq_1";
/// The role of read 2.
pub const FASTQ_2: &str = "fastq_2";

/// The align step of one sample: the whole FASTQ pair, or one chunk of it.
#[derive(Debug, Clone)]
pub struct AlignStep {
    /// The sample.
    pub sample: SampleId,
    /// The read group written into the header and onto every read.
    pub read_group: ReadGroup,
    /// The chunk aligned (its number), or `None` for the whole FASTQ pair.
    pub chunk: Option<usize>,
    /// How the whole pair is cut into chunks when it is aligned in chunks: parameters of the
    /// key of the whole chunked alignment (`chunk_pairs`, and `chunks` when blocks are dealt
    /// in turn into that many), as chunks differ from a whole alignment in tie-breaks
    /// (docs/scaling.md).
    pub chunking: Option<ChunkLayout>,
    /// Whether biojob checks the FASTQs as it feeds them to bwa (see
    /// [`crate::Engine::validate_fastq`]).
    pub validate_fastq: bool,
    /// The lane of a cohort's sample this job aligns, whole or one chunk of it (then `chunk`
    /// is the unit's number across the sample, which names the BAM: the lane's index among
    /// the sample's lanes, or, when lanes are split, the chunk's, lane 0's chunks first);
    /// `None` outside a cohort.
    pub lane: Option<String>,
    /// Whether duplicates are marked later (merge): bwa's name-grouped output then goes through
    /// `samtools fixmate -m` before the sort, which adds the mate tags `samtools markdup` needs.
    pub mark_duplicates: bool,
}

impl AlignStep {
    /// The BAM's file name: `<sample>.align.bam`, or `<sample>.align.<chunk>.bam` for a
    /// chunk; its index is the same name with `.bai` added.
    pub fn bam_name(&self, context: &PlanContext<'_>) -> String {
        context.step_file_name(&self.sample, StepId::Align, self.chunk, "bam")
    }

    fn sort_temp(&self, context: &PlanContext<'_>) -> Utf8PathBuf {
        context.work_file(&context.step_file_name(
            &self.sample,
            StepId::Align,
            self.chunk,
            "sort-tmp",
        ))
    }
}

impl StepDefinition for AlignStep {
    fn step(&self) -> StepId {
        StepId::Align
    }

    fn shard(&self) -> Option<TaskShard> {
        self.chunk.map(TaskShard::chunk)
    }

    fn cohort_member(&self) -> Option<CohortMember> {
        self.lane
            .as_ref()
            .map(|lane| CohortMember::lane(&self.sample, lane))
    }

    fn space_need(&self, staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        let bytes = inputs.iter().map(|(_, size)| size).sum();
        let name = inputs.first().map_or("", |(name, _)| name.as_str());
        align_space_need(staged, bytes, name)
    }

    /// `bwa mem -t T -K 10000000 -R @RG… REFERENCE R1 R2 [| samtools fixmate -m -u - -] |
    /// samtools sort -@ T -m M -T TMP --write-index -o -##idx##BAM.partial.bai -`, biojob
    /// writing sort's output to `BAM.partial` and counting its records on the way (the index,
    /// built by samtools from the offsets it writes, is renamed `BAI.partial`). With the FASTQ
    /// check on, bwa reads the pair from biojob on descriptors 3 and 4 (`/dev/fd/3`,
    /// `/dev/fd/4`).
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let toolset = context.toolset;
        let threads = context.threads();
        let bam = context.work_file(&self.bam_name(context));
        let bai = Utf8PathBuf::from(format!("{bam}.bai"));
        let (fastq_1, fastq_2) = if self.validate_fastq {
            ("/dev/fd/3".into(), "/dev/fd/4".into())
        } else {
            (context.input(FASTQ_1), context.input(FASTQ_2))
        };
        let bwa = BwaMem {
            threads,
            batch_bases: BWA_BATCH_BASES,
            read_group: self.read_group.clone(),
            index_prefix: context.input(REFERENCE),
            fastq_1,
            fastq_2,
        }
        .command(&toolset.bwa);
        let sort = SamtoolsSort {
            threads,
            memory_per_thread: sort_memory_per_thread(context.resources.memory_bytes, threads),
            temp_prefix: self.sort_temp(context),
            output: "-".into(),
            index: Some(index_written(&bam)),
        }
        .command(&toolset.samtools);
        let mut plan = StepPlan::new(StepId::Align, context.resources);
        if self.validate_fastq {
            plan = plan.note("biojob checks both FASTQs and feeds them to bwa on fd 3 and 4");
        }
        plan = plan.note(format!(
            "biojob writes sort's output to {}, counting its records",
            partial(&bam)
        ));
        let mut stages = vec![PlannedCommand::new(toolset.bwa.tool, bwa)];
        if self.mark_duplicates {
            stages.push(PlannedCommand::new(
                Tool::Samtools,
                samtools_fixmate(&toolset.samtools),
            ));
        }
        stages.push(PlannedCommand::new(Tool::Samtools, sort));
        plan = plan.pipeline(stages);
        match self.chunking {
            Some(ChunkLayout::Consecutive { chunk_pairs }) => {
                plan = plan.parameter("chunk_pairs", chunk_pairs);
            }
            Some(ChunkLayout::InTurn {
                block_pairs,
                chunks,
            }) => {
                plan = plan
                    .parameter("chunk_pairs", block_pairs)
                    .parameter("chunks", chunks);
            }
            None => {}
        }
        if self.chunk.is_some() {
            plan.intermediate_output(bam).intermediate_output(bai)
        } else {
            plan.output(bam).output(bai)
        }
    }

    /// A pair needs read 1 and read 2: one file given twice under two names (the same
    /// content, not empty) is refused.
    fn check_digests(
        &self,
        digests: &BTreeMap<String, String>,
        inputs: &StagedInputs,
    ) -> Result<(), Error> {
        const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        match (digests.get(FASTQ_1), digests.get(FASTQ_2)) {
            (Some(one), Some(two)) if one == two && one != EMPTY => {
                // A cohort's lane names its FASTQs in the sheet's columns.
                let (names, remedy) = match self.lane {
                    Some(_) => (
                        "the lane's fastq_1 and fastq_2",
                        "give the lane's read 1 in the sample sheet's fastq_1 column and read 2 in fastq_2",
                    ),
                    None => (
                        "FASTQ_1 and FASTQ_2",
                        "give read 1 of the pair as FASTQ_1 and read 2 as FASTQ_2",
                    ),
                };
                Err(Error::Input {
                    message: format!(
                        "{names} have the same content: {} and {} (SHA-256 {one})",
                        inputs.uri(FASTQ_1)?,
                        inputs.uri(FASTQ_2)?
                    ),
                    remedy: Some(remedy.into()),
                })
            }
            _ => Ok(()),
        }
    }

    /// Runs the plan: biojob reads both FASTQs itself, checks them record by record
    /// (`biojob_formats::stream_fastq_pair`) and hands bwa the records through two pipes, so
    /// bwa never sees a truncated input as a valid end of file; bwa's SAM goes straight into
    /// `samtools sort`; both are awaited with pipefail semantics. The BAM is written as
    /// `*.partial`, checked (BGZF EOF block, `@HD SO:coordinate`, the `@RG` line, `@SQ` equal
    /// to the `.fai`), indexed, and only then renamed. On failure nothing is left.
    ///
    /// # Errors
    /// [`Error::Fastq`] for a bad input (input class), [`Error::Process`] when a tool fails,
    /// [`Error::Verification`] when the BAM is not as expected; [`Error::ScratchFull`] around
    /// either of the last two when scratch is full at that point (scratch class).
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        let reference = inputs.reference()?;
        if reference.bwa_prefix.is_none() {
            return Err(Error::Usage {
                message: "the reference was prepared without its bwa index".into(),
                remedy: None,
            });
        }
        let fastq_1 = inputs.path(FASTQ_1)?;
        let fastq_2 = inputs.path(FASTQ_2)?;
        let local = PlanContext::local(
            &context.engine.toolset,
            context.resources(),
            &inputs.work_dir,
            &inputs.paths,
        );
        let sort_temp = self.sort_temp(&local);
        let mut running = RunningPlan::new(plan, 2)?;
        let bam_partial = running.partial(0).to_owned();
        let mut stages = running.take()?;
        let Some(sort) = stages.pop() else {
            return Err(plan_shape("align", "samtools sort last"));
        };
        let (sorted, counted) = CountedBam::start(&bam_partial, context.resources().threads)?;
        stages.push(sort.stdout_pipe(sorted));
        info!(
            threads = context.resources().threads,
            fastq_validation = self.validate_fastq,
            "aligning {fastq_1} and {fastq_2}"
        );
        let (fed, piped) = if self.validate_fastq {
            let (read_1, write_1) =
                std::io::pipe().map_err(Error::io("creating a pipe for", fastq_1))?;
            let (read_2, write_2) =
                std::io::pipe().map_err(Error::io("creating a pipe for", fastq_2))?;
            if stages.is_empty() {
                return Err(plan_shape("align", "bwa first"));
            }
            let bwa = stages
                .remove(0)
                .inherit_fd(3, read_1.into())
                .inherit_fd(4, read_2.into());
            stages.insert(0, bwa);
            let cancel = context.supervisor.cancel_token().child();
            let supervisor = context.supervisor.with_cancel(cancel.clone());
            // Progress: the FASTQs' bytes read (compressed, of their size) and the pairs fed.
            let fed_so_far = std::sync::Arc::new(FastqProgress::default());
            let probe = std::sync::Arc::clone(&fed_so_far);
            context.progress.start(
                ProgressUnit::InputBytes,
                file_bytes(fastq_1).saturating_add(file_bytes(fastq_2)),
                Box::new(move || (probe.bytes_read(), Some(probe.pairs()))),
            );
            let (fed, piped) = std::thread::scope(|scope| {
                let feeder = scope.spawn(|| {
                    let result = stream_fastq_pair_with_progress(
                        fastq_1,
                        fastq_2,
                        write_1,
                        write_2,
                        &fed_so_far,
                    );
                    if matches!(&result, Err(error) if !matches!(error, FastqError::ConsumerClosed { .. }))
                    {
                        cancel.cancel(CancelReason::Sibling);
                    }
                    result
                });
                let piped = supervisor.run_pipeline(stages);
                (feeder.join(), piped)
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
            let piped = context.supervisor.run_pipeline(stages);
            (Ok(FastqPairStats::default()), piped)
        };

        // Ends once sort has exited (or never started) and closed its output.
        let written = counted.finish();
        let result = (|| {
            let fastq = match fed {
                // A bad input is the cause, whatever the tools did after being stopped.
                Err(error) if !matches!(error, FastqError::ConsumerClosed { .. }) => {
                    return Err(Error::Fastq(error));
                }
                Err(_) if piped.is_ok() => {
                    return Err(Error::Verification {
                        path: bam_partial.clone(),
                        detail: "bwa-mem exited with status 0 before reading all of its input"
                            .into(),
                    });
                }
                fed => fed.unwrap_or_default(),
            };
            // The BAM not written (a full scratch disk) is the cause of sort's broken pipe.
            let (pipeline, bam) = sink_or_tool(piped, written)?;
            running.commands.extend(pipeline.stages);
            let read_pairs = self.validate_fastq.then_some(fastq.pairs);
            if let Some(pairs) = read_pairs {
                check_primary_records(&bam_partial, bam.primary, pairs)?;
            }
            verify_bam(
                &bam_partial,
                std::slice::from_ref(&self.read_group),
                reference,
            )?;
            place_index(running.output(0), running.partial(1))?;
            running.finish(RecordCounts {
                read_pairs,
                bam: Some(bam),
                vcf_records: None,
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
}

/// Record accounting at align: a paired-end aligner writes exactly one primary record
/// (neither secondary nor supplementary) per read, mapped or not (SAM spec v1, section 1.4),
/// so the BAM of `pairs` read pairs holds `2 × pairs` primary records.
///
/// # Errors
/// [`Error::Verification`] (output invalid class) naming both counts.
pub(crate) fn check_primary_records(bam: &Utf8Path, primary: u64, pairs: u64) -> Result<(), Error> {
    let reads = pairs.saturating_mul(2);
    check_records(
        bam,
        primary,
        "primary alignment records",
        reads,
        &format!("biojob fed the aligner {pairs} read pairs ({reads} reads)"),
    )
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

/// Checks an aligned (or merged) BAM: BGZF EOF block, `@HD SO:coordinate`, one `@RG` line per
/// read group of `read_groups` (the same IDs, each line holding its fields), `@SQ` equal to
/// the reference's `.fai`.
pub(crate) fn verify_bam(
    bam: &Utf8Path,
    read_groups: &[ReadGroup],
    reference: &PreparedReference,
) -> Result<(), Error> {
    verify_bgzf_output(bam)?;
    verify_bam_header(read_bam_header_summary(bam), bam, read_groups, reference)
}

/// The header checks of [`verify_bam`] on `header`, read from `bam` (or from its first bytes,
/// as it was uploaded), errors naming `bam`.
pub(crate) fn verify_bam_header(
    header: Result<BamHeaderSummary, FormatError>,
    bam: &Utf8Path,
    read_groups: &[ReadGroup],
    reference: &PreparedReference,
) -> Result<(), Error> {
    let header = header.map_err(|error| Error::Verification {
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
    let matches = header.read_groups.len() == read_groups.len()
        && read_groups.iter().all(|read_group| {
            let expected: Vec<(String, String)> = read_group
                .fields()
                .into_iter()
                .map(|(tag, value)| (tag.to_owned(), value.to_owned()))
                .collect();
            header
                .read_groups
                .iter()
                .any(|(id, fields)| *id == read_group.id && contains_all(fields, &expected))
        });
    if !matches {
        return Err(fail(read_group_difference(
            read_groups,
            &header.read_groups,
        )));
    }
    if let Some(difference) = describe_contig_difference("@SQ", &header.contigs, &reference.contigs)
    {
        return Err(fail(format!("{difference} ({})", reference.fai)));
    }
    Ok(())
}

/// What differs between the `@RG` lines expected (`expected`) and those a BAM header holds
/// (`found`: each line's ID and its tag:value fields, `ID` first), in words.
fn read_group_difference(
    expected: &[ReadGroup],
    found: &[(String, Vec<(String, String)>)],
) -> String {
    let line = |fields: &[(String, String)]| {
        std::iter::once("@RG".to_owned())
            .chain(fields.iter().map(|(tag, value)| format!("{tag}:{value}")))
            .collect::<Vec<_>>()
            .join("\t")
    };
    let missing: Vec<String> = expected
        .iter()
        .filter(|read_group| !found.iter().any(|(id, _)| *id == read_group.id))
        .map(|read_group| read_group.id.clone())
        .collect();
    let unexpected: Vec<&str> = found
        .iter()
        .filter(|(id, _)| !expected.iter().any(|read_group| read_group.id == *id))
        .map(|(id, _)| id.as_str())
        .collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("no @RG line of read group {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "@RG lines of other read groups: {}",
            unexpected.join(", ")
        ));
    }
    for read_group in expected {
        if let Some((_, fields)) = found.iter().find(|(id, _)| *id == read_group.id) {
            let wanted = read_group.to_header_line();
            let have = line(fields);
            if !wanted
                .split('\t')
                .all(|field| have.split('\t').any(|f| f == field))
            {
                parts.push(format!("{have:?} where {wanted:?} was expected"));
            }
        }
    }
    if parts.is_empty() {
        // The same read groups, one of them on several lines.
        parts.push(format!(
            "{} @RG lines for {} read groups",
            found.len(),
            expected.len()
        ));
    }
    format!("its header has {}", parts.join("; "))
}

fn contains_all(found: &[(String, String)], expected: &[(String, String)]) -> bool {
    expected.iter().all(|pair| found.contains(pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        (
            line[0].1.to_owned(),
            line.iter()
                .map(|(tag, value)| ((*tag).to_owned(), (*value).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn a_read_group_difference_names_the_missing_other_and_changed_lines() {
        let sample = SampleId::new("A").unwrap();
        let lane = |id: &str| ReadGroup::for_sample(&sample).with_id(id).unwrap();
        let expected = [lane("A.1"), lane("A.2"), lane("A.3")];
        let found = [
            fields(&[("ID", "A.1"), ("SM", "A"), ("PL", "ILLUMINA")]),
            fields(&[("ID", "A.3"), ("SM", "B"), ("PL", "ILLUMINA")]),
            fields(&[("ID", "X.9"), ("SM", "A"), ("PL", "ILLUMINA")]),
        ];
        assert_eq!(
            read_group_difference(&expected, &found),
            "its header has no @RG line of read group A.2; @RG lines of other read groups: X.9; \
             \"@RG\\tID:A.3\\tSM:B\\tPL:ILLUMINA\" where \"@RG\\tID:A.3\\tSM:A\\tPL:ILLUMINA\" was \
             expected"
        );
    }
}
