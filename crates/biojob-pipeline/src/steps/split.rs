//! The `split` step: the FASTQ pair cut into chunks of read pairs, each aligned on its own.

use std::num::NonZeroUsize;

use biojob_core::{SampleId, StepId};
use biojob_formats::{ChunkLayout, FastqSource, SplitRequest, fastq_chunk_names, split_fastq_pair};
use biojob_scratch::SpaceNeed;
use biojob_storage::StreamFailure;

use crate::steps::align::{FASTQ_1, FASTQ_2};
use crate::{
    Error, Executed, PlanContext, PlannedOutput, StagedInputs, StepContext, StepDefinition,
    StepPlan, split_space_need,
};

/// The prefix of the chunk files of `sample`: `{sample}.split` (chunk files are
/// `{sample}.split.{chunk:04}_R1.fastq.gz` and `_R2`).
pub fn chunk_prefix(sample: &SampleId) -> String {
    format!("{sample}.{}", StepId::Split)
}

/// The file names of chunk `chunk` of `sample`'s FASTQ pair.
pub fn chunk_fastq_names(sample: &SampleId, chunk: usize) -> (String, String) {
    fastq_chunk_names(&chunk_prefix(sample), chunk)
}

/// The split step of one sample: its FASTQ pair (inputs [`FASTQ_1`], [`FASTQ_2`], read from
/// where they are: an S3 object streams as it downloads) into chunks laid out by `layout`.
#[derive(Debug, Clone)]
pub struct SplitStep {
    /// The sample.
    pub sample: SampleId,
    /// Which chunk each read pair goes to.
    pub layout: ChunkLayout,
}

impl StepDefinition for SplitStep {
    fn step(&self) -> StepId {
        StepId::Split
    }

    fn space_need(&self, _staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        split_space_need(inputs.iter().map(|(_, size)| size).sum())
    }

    /// No tool: biojob reads, checks and cuts the pair itself. With a known number of chunks
    /// the plan lists their files.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let plan = StepPlan::new(StepId::Split, context.resources);
        match self.layout {
            ChunkLayout::Consecutive { chunk_pairs } => plan.note(format!(
                "biojob checks the FASTQ pair and cuts it into chunks of {chunk_pairs} read pairs, gzip level 2"
            )),
            ChunkLayout::InTurn {
                block_pairs,
                chunks,
            } => {
                let mut plan = plan.note(format!(
                    "biojob checks the FASTQ pair and deals blocks of {block_pairs} read pairs in turn into {chunks} chunks, gzip level 2"
                ));
                for chunk in 0..chunks.get() {
                    let (name_1, name_2) = chunk_fastq_names(&self.sample, chunk);
                    plan = plan
                        .intermediate_output(context.work_file(&name_1))
                        .intermediate_output(context.work_file(&name_2));
                }
                plan
            }
        }
    }

    fn cacheable(&self) -> bool {
        false
    }

    /// Splits the pair ([`biojob_formats::split_fastq_pair`], the job's threads compressing)
    /// into the work directory. A stream that fails shows through the FASTQ reader as a read
    /// error; the transfer's own error (staging class, retryable) is reported instead; a stop
    /// (SIGTERM, the time limit) is reported as the stop.
    ///
    /// # Errors
    /// As [`biojob_formats::split_fastq_pair`] ([`Error::Fastq`]), the transfer's error, or
    /// the stop.
    fn execute(
        &self,
        _plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        let what = "splitting the FASTQ pair";
        context.check_stopped(what)?;
        let stop = || context.check_stopped(what).is_err();
        let (source_1, failure_1) = fastq_source(inputs, FASTQ_1, context)?;
        let (source_2, failure_2) = fastq_source(inputs, FASTQ_2, context)?;
        let written = split_fastq_pair(
            source_1,
            source_2,
            &SplitRequest {
                layout: self.layout,
                dir: &inputs.work_dir,
                prefix: &chunk_prefix(&self.sample),
                threads: NonZeroUsize::new(context.resources().threads)
                    .unwrap_or(NonZeroUsize::MIN),
                stop: &stop,
            },
        )
        .map_err(|error| {
            let streamed = [failure_1, failure_2]
                .into_iter()
                .flatten()
                .find_map(|failure| failure.take());
            context
                .check_stopped(what)
                .err()
                .or(streamed.map(Error::from))
                .unwrap_or(Error::from(error))
        })?;
        let read_pairs = written.iter().map(|chunk| chunk.pairs).sum();
        let outputs = written
            .into_iter()
            .flat_map(|chunk| [chunk.fastq_1, chunk.fastq_2])
            .map(|path| PlannedOutput {
                path,
                intermediate: true,
            })
            .collect();
        Ok(Executed {
            commands: Vec::new(),
            outputs,
            records: crate::RecordCounts {
                read_pairs: Some(read_pairs),
                ..crate::RecordCounts::default()
            },
        })
    }
}

/// The input `role` as a FASTQ source read once: a local path as it is, an object streamed
/// from its store with the handle on its transfer error.
fn fastq_source(
    inputs: &StagedInputs,
    role: &str,
    context: &StepContext,
) -> Result<(FastqSource, Option<StreamFailure>), Error> {
    if let Some(path) = inputs.paths.get(role) {
        return Ok((FastqSource::file(path), None));
    }
    let uri = inputs.uri(role)?;
    let reader = context.engine.stores.for_uri(uri)?.open(uri)?;
    let failure = reader.failure();
    Ok((FastqSource::reader(&uri.to_string(), reader), Some(failure)))
}
