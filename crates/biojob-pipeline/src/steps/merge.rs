//! The `merge` step: `samtools merge` of the chunks' (or a cohort sample's lanes') BAMs into
//! the sample's BAM, with `samtools markdup` when duplicates are marked, then `samtools index`.

use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_formats::count_bam_records;
use biojob_scratch::SpaceNeed;
use biojob_tools::{SamtoolsMarkdup, SamtoolsMerge, SamtoolsMergePiped, Tool, samtools_index};
use camino::Utf8PathBuf;

use crate::plan::partial;
use crate::steps::align::verify_bam;
use crate::steps::{CountedBam, RunningPlan, check_records, plan_shape};
use crate::{
    CohortMember, Error, Executed, PlanContext, PlannedCommand, RecordCounts, StagedInputs,
    StepContext, StepDefinition, StepPlan, gather_space_need,
};

/// The `samtools markdup -f` statistics of `sample`'s BAM, beside it: `<sample>.markdup.txt`
/// (its first line is `COMMAND: <samtools path> markdup …`; docs/cohorts.md says what MultiQC
/// makes of it).
pub fn markdup_stats_name(sample: &SampleId) -> String {
    format!("{sample}.markdup.txt")
}

/// The role of chunk `chunk`'s BAM in a merge job's inputs: `bam.0003`.
pub fn chunk_bam_role(chunk: usize) -> String {
    format!("bam.{chunk:04}")
}

/// The merge step of one sample: the BAMs of its `chunks` alignment chunks, or of a cohort
/// sample's lanes (inputs [`chunk_bam_role`]), into `<sample>.align.bam`, the name an unsplit
/// align writes.
#[derive(Debug, Clone)]
pub struct MergeStep {
    /// The sample.
    pub sample: SampleId,
    /// The merged BAM's `@RG` lines: the one read group every chunk was aligned with, or one
    /// per lane.
    pub read_groups: Vec<ReadGroup>,
    /// How many BAMs: chunks, or lanes.
    pub chunks: usize,
    /// Flag duplicates (`samtools markdup`, per library) in the merged BAM; its inputs went
    /// through `samtools fixmate -m` ([`crate::AlignStep::mark_duplicates`]).
    pub mark_duplicates: bool,
    /// Whether the sample is a cohort's (its task is named after it).
    pub in_cohort: bool,
}

impl MergeStep {
    fn markdup_temp(&self, context: &PlanContext<'_>) -> Utf8PathBuf {
        context.work_file(&context.step_file_name(&self.sample, StepId::Merge, None, "markdup-tmp"))
    }
}

impl StepDefinition for MergeStep {
    fn step(&self) -> StepId {
        StepId::Merge
    }

    fn cohort_member(&self) -> Option<CohortMember> {
        self.in_cohort.then(|| CohortMember::sample(&self.sample))
    }

    fn space_need(&self, staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        let bam_bytes: u64 = inputs.iter().map(|(_, size)| size).sum();
        gather_space_need(staged, bam_bytes.saturating_mul(2))
    }

    /// `samtools merge -@ T-1 -c -p -f -o - CHUNK…`, biojob writing its output to
    /// `BAM.partial` and counting its records on the way, then `samtools index`; when marking
    /// duplicates, `samtools merge -@ T-1 -c -p -u -o - CHUNK… | samtools markdup -@ T-1 -T TMP
    /// -f STATS.partial - -`, counted on its way to `BAM.partial` alike, then `samtools
    /// index`: merged first, so that duplicates across the lanes of one library are found.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let samtools = &context.toolset.samtools;
        let threads = context.threads();
        let bam =
            context.work_file(&context.step_file_name(&self.sample, StepId::Align, None, "bam"));
        let bai = Utf8PathBuf::from(format!("{bam}.bai"));
        let inputs: Vec<Utf8PathBuf> = (0..self.chunks)
            .map(|chunk| context.input(&chunk_bam_role(chunk)))
            .collect();
        let index = samtools_index(
            samtools,
            &partial(&bam),
            &partial(&bai),
            threads.saturating_sub(1),
        );
        let plan = StepPlan::new(StepId::Merge, context.resources).note(format!(
            "biojob counts the chunks' records, then writes {}'s output to {}, counting its records",
            if self.mark_duplicates { "markdup" } else { "merge" },
            partial(&bam)
        ));
        if !self.mark_duplicates {
            let merge = SamtoolsMerge {
                threads: threads.saturating_sub(1),
                inputs,
                output: "-".into(),
            }
            .command(samtools);
            return plan
                .command(Tool::Samtools, merge)
                .command(Tool::Samtools, index)
                .output(bam)
                .output(bai);
        }
        let stats = context.work_file(&markdup_stats_name(&self.sample));
        let merge = SamtoolsMergePiped {
            threads: threads.saturating_sub(1),
            inputs,
        }
        .command(samtools);
        let markdup = SamtoolsMarkdup {
            threads: threads.saturating_sub(1),
            temp_prefix: self.markdup_temp(context),
            stats: partial(&stats),
            output: "-".into(),
        }
        .command(samtools);
        plan.pipeline(vec![
            PlannedCommand::new(Tool::Samtools, merge),
            PlannedCommand::new(Tool::Samtools, markdup),
        ])
        .command(Tool::Samtools, index)
        .output(bam)
        .output(bai)
        .output(stats)
    }

    /// Runs the plan; the merged BAM gets the checks of an unsplit align's (BGZF EOF block,
    /// `@HD SO:coordinate`, the `@RG` lines of the read groups, `@SQ` equal to the `.fai`)
    /// before it is indexed and renamed; markdup's statistics must name the command. Record
    /// accounting: the BAM's records, counted as biojob writes them, are the sum of the
    /// chunks' records, counted first ([`biojob_formats::count_bam_records`]); with duplicates
    /// marked too, since `samtools markdup` flags duplicates (0x400) and removes none.
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
        let mut running = RunningPlan::new(plan, if self.mark_duplicates { 3 } else { 2 })?;
        let bam_partial = running.partial(0).to_owned();
        let mut stages = running.take()?;
        let Some(last) = stages.pop() else {
            return Err(plan_shape("merge", "samtools merge"));
        };
        let result = (|| {
            let (merged, counted) = CountedBam::start(&bam_partial, threads)?;
            stages.push(last.stdout_pipe(merged));
            let piped = context.supervisor.run_pipeline(stages);
            let written = counted.finish();
            let counts = match (piped, written) {
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
                counts.records,
                "records",
                chunk_records,
                &format!("its {} chunks hold {chunk_records}", self.chunks),
            )?;
            verify_bam(&bam_partial, &self.read_groups, reference)?;
            if self.mark_duplicates {
                crate::steps::qc::verify_report(running.partial(2), "samtools markdup")?;
            }
            running.run_next(context)?;
            running.finish(RecordCounts {
                bam: Some(counts),
                ..RecordCounts::default()
            })
        })();
        result.map_err(|error| context.explain_failure(error))
    }
}
