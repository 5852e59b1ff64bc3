//! The `merge` step: `samtools merge` of the chunks' BAMs into the sample's BAM, then
//! `samtools index`.

use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_formats::count_bam_records;
use biojob_scratch::SpaceNeed;
use biojob_tools::{SamtoolsMerge, Tool, samtools_index};
use camino::Utf8PathBuf;

use crate::plan::partial;
use crate::steps::align::verify_bam;
use crate::steps::{CountedBam, RunningPlan, check_records, plan_shape};
use crate::{
    Error, Executed, PlanContext, RecordCounts, StagedInputs, StepContext, StepDefinition,
    StepPlan, gather_space_need,
};

/// The role of chunk `chunk`'s BAM in a merge job's inputs: `bam.0003`.
pub fn chunk_bam_role(chunk: usize) -> String {
    format!("bam.{chunk:04}")
}

/// The merge step of one sample: the BAMs of its `chunks` alignment chunks (inputs
/// [`chunk_bam_role`]) into `<sample>.align.bam`, the name an unsplit align writes.
#[derive(Debug, Clone)]
pub struct MergeStep {
    /// The sample.
    pub sample: SampleId,
    /// The read group every chunk was aligned with: the merged BAM's one `@RG` line.
    pub read_group: ReadGroup,
    /// How many chunks.
    pub chunks: usize,
}

impl StepDefinition for MergeStep {
    fn step(&self) -> StepId {
        StepId::Merge
    }

    fn space_need(&self, staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        let bam_bytes: u64 = inputs.iter().map(|(_, size)| size).sum();
        gather_space_need(staged, bam_bytes.saturating_mul(2))
    }

    /// `samtools merge -@ T-1 -c -p -f -o - CHUNK…`, biojob writing its output to
    /// `BAM.partial` and counting its records on the way; then `samtools index`.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let samtools = &context.toolset.samtools;
        let threads = context.threads();
        let bam =
            context.work_file(&context.step_file_name(&self.sample, StepId::Align, None, "bam"));
        let bai = Utf8PathBuf::from(format!("{bam}.bai"));
        let merge = SamtoolsMerge {
            threads: threads.saturating_sub(1),
            inputs: (0..self.chunks)
                .map(|chunk| context.input(&chunk_bam_role(chunk)))
                .collect(),
            output: "-".into(),
        }
        .command(samtools);
        let index = samtools_index(
            samtools,
            &partial(&bam),
            &partial(&bai),
            threads.saturating_sub(1),
        );
        StepPlan::new(StepId::Merge, context.resources)
            .note(format!(
                "biojob counts the chunks' records, then writes merge's output to {}, counting its records",
                partial(&bam)
            ))
            .command(Tool::Samtools, merge)
            .command(Tool::Samtools, index)
            .output(bam)
            .output(bai)
    }

    /// Runs the plan; the merged BAM gets the checks of an unsplit align's (BGZF EOF block,
    /// `@HD SO:coordinate`, one `@RG` line equal to the read group's, `@SQ` equal to the
    /// `.fai`) before it is indexed and renamed, and record accounting: its records, counted
    /// as merge writes them, are the sum of the chunks' records, counted first
    /// ([`biojob_formats::count_bam_records`]). A step that marks duplicates after the merge
    /// checks its output with the same rule ([`crate::steps::check_records`] against the
    /// merged BAM's records): duplicates are flagged (0x400), never removed.
    ///
    /// # Errors
    /// [`Error::Usage`] without chunks; [`Error::Format`] when a chunk is not a complete BAM;
    /// [`Error::Process`] when a tool fails ([`Error::ScratchFull`] around it when scratch is
    /// full); [`Error::Verification`] when the merged BAM fails its checks or its records are
    /// not the chunks'.
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        if self.chunks == 0 {
            return Err(Error::Usage {
                message: "merge needs at least one BAM".into(),
                remedy: None,
            });
        }
        let reference = inputs.reference()?;
        let threads = context.resources().threads;
        let mut chunk_records = 0u64;
        for chunk in 0..self.chunks {
            let bam = inputs.path(&chunk_bam_role(chunk))?;
            chunk_records += count_bam_records(bam, threads)?.records;
        }
        tracing::info!(
            chunks = self.chunks,
            records = chunk_records,
            "merging the chunks' BAMs"
        );
        let mut running = RunningPlan::new(plan, 2)?;
        let bam_partial = running.partial(0).to_owned();
        let mut stages = running.take()?;
        let Some(merge) = stages.pop() else {
            return Err(plan_shape("merge", "samtools merge"));
        };
        let result = (|| {
            let (merged, counted) = CountedBam::start(&bam_partial, threads)?;
            stages.push(merge.stdout_pipe(merged));
            let piped = context.supervisor.run_pipeline(stages);
            let written = counted.finish();
            let report = match (piped, written) {
                (Err(_), Err(error @ Error::Io { .. })) | (Ok(_), Err(error)) => {
                    return Err(error);
                }
                (Err(error), _) => return Err(Error::Process(error)),
                (Ok(report), Ok(counts)) => {
                    running.commands.extend(report.stages);
                    counts
                }
            };
            check_records(
                &bam_partial,
                report.records,
                "records",
                chunk_records,
                &format!("its {} chunks hold {chunk_records}", self.chunks),
            )?;
            verify_bam(&bam_partial, &self.read_group, reference)?;
            running.run_next(context)?;
            running.finish(RecordCounts {
                bam: Some(report),
                ..RecordCounts::default()
            })
        })();
        result.map_err(|error| context.explain_failure(error))
    }
}
