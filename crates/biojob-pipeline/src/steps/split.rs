//! The `split` step: the FASTQ pair cut into chunks of read pairs, each aligned on its own.

use std::num::NonZeroUsize;

use biojob_core::{SampleId, StepId};
use biojob_formats::{
    ChunkLayout, FastqError, FastqSource, SplitRequest, StoreSplitRequest, fastq_chunk_names,
    split_fastq_pair, split_fastq_pair_to_store,
};
use biojob_scratch::SpaceNeed;
use biojob_storage::{ObjectUri, StreamFailure};

use crate::steps::align::{FASTQ_1, FASTQ_2};
use crate::{
    CohortMember, Error, Executed, OutputRecord, PlanContext, PlannedOutput, StagedInputs,
    StepContext, StepDefinition, StepPlan, TaskShard, split_space_need, split_upload_space_need,
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
    /// Where the chunks are uploaded while they are compressed (a Batch job's run prefix in
    /// an object store): no chunk is ever whole in scratch. `None`: they are written to the
    /// work directory (a local run, a local run prefix) and published by the job.
    pub upload_to: Option<ObjectUri>,
    /// When the pair is one lane of a cohort's sample: the lane, and the number its first
    /// chunk has among the sample's chunks (docs/cohorts.md). `None`: the sample's whole pair,
    /// its chunks numbered from 0.
    pub lane: Option<SplitLane>,
}

/// The lane a [`SplitStep`] splits: its chunk files are `<sample>.split.<n>_R1.fastq.gz` and
/// `_R2` for `n` from `first_chunk`; its task is the lane's (`split <sample> lane <lane>`),
/// its shard its first chunk (the step manifest `<sample>.split.<first_chunk>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitLane {
    /// The lane's name in the sample sheet.
    pub name: String,
    /// The lane's first chunk number among the sample's chunks.
    pub first_chunk: usize,
}

impl SplitStep {
    /// The number of the first chunk the split writes.
    fn first_chunk(&self) -> usize {
        self.lane.as_ref().map_or(0, |lane| lane.first_chunk)
    }
}

impl StepDefinition for SplitStep {
    fn step(&self) -> StepId {
        StepId::Split
    }

    fn shard(&self) -> Option<TaskShard> {
        self.lane
            .as_ref()
            .map(|lane| TaskShard::chunk(lane.first_chunk))
    }

    fn cohort_member(&self) -> Option<CohortMember> {
        self.lane
            .as_ref()
            .map(|lane| CohortMember::lane(&self.sample, &lane.name))
    }

    fn space_need(&self, _staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        match (&self.upload_to, self.layout) {
            (Some(_), ChunkLayout::InTurn { chunks, .. }) => split_upload_space_need(chunks.get()),
            _ => split_space_need(inputs.iter().map(|(_, size)| size).sum()),
        }
    }

    /// No tool: biojob reads, checks and cuts the pair itself. With a known number of chunks
    /// the plan lists their files.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let first_chunk = self.first_chunk();
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
                    "biojob checks the FASTQ pair and deals blocks of {block_pairs} read pairs in turn into {chunks} {}, gzip level 2{}",
                    if chunks.get() == 1 { "chunk" } else { "chunks" },
                    if self.upload_to.is_some() { ", uploaded as they are compressed" } else { "" }
                ));
                for chunk in first_chunk..first_chunk + chunks.get() {
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
    /// into the work directory, or, with [`SplitStep::upload_to`], into objects uploaded as
    /// they are compressed ([`biojob_formats::split_fastq_pair_to_store`], parts spooled in
    /// the work directory; the objects are the step's published outputs, appearing only when
    /// the whole pair was read and checked). A stream that fails shows through the FASTQ
    /// reader as a read error or through the chunk writer as a write error; the transfer's
    /// own error (input staging or output staging class, retryable) is reported instead; a
    /// stop (SIGTERM, the time limit) is reported as the stop.
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
        // Asked before every member (about 1 MiB of records): the scratch directory's size is
        // sampled there too, so the manifest's peak sees the chunks or parts it holds (no
        // tool runs for the supervisor to sample beside).
        let stop = || {
            context.space.sample();
            context.check_stopped(what).is_err()
        };
        let (source_1, failure_1, streamed_1) = fastq_source(inputs, FASTQ_1, context)?;
        let (source_2, failure_2, streamed_2) = fastq_source(inputs, FASTQ_2, context)?;
        // Read whole when the split succeeds: a stream checks its size at its last byte.
        let bytes_streamed_in = streamed_1 + streamed_2;
        let prefix = chunk_prefix(&self.sample);
        let request = SplitRequest {
            layout: self.layout,
            dir: &inputs.work_dir,
            prefix: &prefix,
            first_chunk: self.first_chunk(),
            threads: NonZeroUsize::new(context.resources().threads).unwrap_or(NonZeroUsize::MIN),
            stop: &stop,
        };
        let uploads = StreamFailure::default();
        let explain = |error: FastqError| {
            let transfer = [failure_1.clone(), failure_2.clone(), Some(uploads.clone())]
                .into_iter()
                .flatten()
                .find_map(|failure| failure.take());
            context
                .check_stopped(what)
                .err()
                .or(transfer.map(Error::from))
                .unwrap_or(Error::from(error))
        };
        let records = |read_pairs: u64| crate::RecordCounts {
            read_pairs: Some(read_pairs),
            ..crate::RecordCounts::default()
        };
        let Some(upload_to) = &self.upload_to else {
            let written = split_fastq_pair(source_1, source_2, &request).map_err(explain)?;
            let read_pairs = written.iter().map(|chunk| chunk.pairs).sum();
            let outputs = written
                .into_iter()
                .flat_map(|chunk| [chunk.fastq_1, chunk.fastq_2])
                .map(|path| PlannedOutput {
                    path,
                    intermediate: true,
                })
                .collect();
            return Ok(Executed {
                outputs,
                records: records(read_pairs),
                bytes_streamed_in,
                ..Executed::default()
            });
        };
        let store = context.engine.stores.for_uri(upload_to)?;
        let stored = split_fastq_pair_to_store(
            source_1,
            source_2,
            &StoreSplitRequest {
                split: request,
                store,
                prefix: upload_to,
                failure: &uploads,
            },
        )
        .map_err(explain)?;
        let read_pairs = stored.iter().map(|chunk| chunk.pairs).sum();
        let published = stored
            .into_iter()
            .flat_map(|chunk| chunk.uris.into_iter().zip(chunk.transfers))
            .map(|(uri, transfer)| {
                OutputRecord::new(
                    uri.file_name().unwrap_or_default(),
                    uri.to_string(),
                    &transfer,
                )
            })
            .collect();
        Ok(Executed {
            published,
            records: records(read_pairs),
            bytes_streamed_in,
            ..Executed::default()
        })
    }
}

/// The input `role` as a FASTQ source read once: a local path as it is, an object streamed
/// from its store with the handle on its transfer error and its size in bytes (0 for a
/// local path).
fn fastq_source(
    inputs: &StagedInputs,
    role: &str,
    context: &StepContext,
) -> Result<(FastqSource, Option<StreamFailure>, u64), Error> {
    if let Some(path) = inputs.paths.get(role) {
        return Ok((FastqSource::file(path), None, 0));
    }
    let uri = inputs.uri(role)?;
    let reader = context.engine.stores.for_uri(uri)?.open(uri)?;
    let failure = reader.failure();
    let size = reader.size();
    Ok((
        FastqSource::reader(&uri.to_string(), reader),
        Some(failure),
        size,
    ))
}
