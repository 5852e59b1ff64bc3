//! The `merge` step: `samtools merge` of the chunks' BAMs into the sample's BAM, then
//! `samtools index`.

use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_scratch::SpaceNeed;
use biojob_tools::{SamtoolsMerge, Tool, samtools_index};
use camino::Utf8PathBuf;

use crate::plan::partial;
use crate::steps::RunningPlan;
use crate::steps::align::verify_bam;
use crate::{
    Error, Executed, PlanContext, StagedInputs, StepContext, StepDefinition, StepPlan,
    gather_space_need,
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

    /// `samtools merge -@ T-1 -c -p -f -o BAM.partial CHUNK…`, then `samtools index`.
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
            output: partial(&bam),
        }
        .command(samtools);
        let index = samtools_index(
            samtools,
            &partial(&bam),
            &partial(&bai),
            threads.saturating_sub(1),
        );
        StepPlan::new(StepId::Merge, context.resources)
            .command(Tool::Samtools, merge)
            .command(Tool::Samtools, index)
            .output(bam)
            .output(bai)
    }

    /// Runs the plan; the merged BAM gets the checks of an unsplit align's (BGZF EOF block,
    /// `@HD SO:coordinate`, one `@RG` line equal to the read group's, `@SQ` equal to the
    /// `.fai`) before it is indexed and renamed.
    ///
    /// # Errors
    /// [`Error::Usage`] without chunks; [`Error::Process`] when a tool fails
    /// ([`Error::ScratchFull`] around it when scratch is full); [`Error::Verification`] when
    /// the merged BAM fails its checks.
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
        tracing::info!(chunks = self.chunks, "merging the chunks' BAMs");
        let mut running = RunningPlan::new(plan, 2)?;
        let result = (|| {
            running.run_next(context)?;
            verify_bam(running.partial(0), &self.read_group, reference)?;
            running.run_next(context)?;
            running.finish(None)
        })();
        result.map_err(|error| context.explain_failure(error))
    }
}
