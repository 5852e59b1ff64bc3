//! `biojob run` of a cohort: the samples and lanes of a sample sheet, through the same step
//! jobs as one sample's run (docs/cohorts.md). Each lane is aligned with its own read group
//! (`AlignStep`, with `samtools fixmate -m` when duplicates are marked), whole or split
//! (`SplitStep`: as `params.samples` lists its chunks, else into chunks of `chunk_pairs`) and
//! aligned chunk by chunk; each sample's lanes (or their
//! chunks) merged with duplicates marked (`MergeStep`), every calling shard called jointly over all
//! the samples' BAMs (`CallStep::jointly`), the shards gathered into `cohort.vcf.gz`
//! (`GatherStep::jointly`), then per sample its VCF (`SampleVcfStep`) and QC (`QcStep`), and
//! one cohort report (`ReportStep`).
//!
//! Outputs: `<JOB_OUTPUT_PREFIX>/<run id>/` holds `cohort.vcf.gz` (with the shards' VCFs,
//! `cohort.call.<shard>.vcf.gz`), `report.html` and `manifest.json`; `samples/<sample>/` holds
//! each sample's BAM, markdup statistics, VCF and QC files.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::ops::Range;
use std::time::Instant;

use biojob_core::{ReadGroup, SampleId, StepId, scratch_file_name};
use biojob_formats::ChunkLayout;
use biojob_storage::ObjectUri;
use camino::{Utf8Path, Utf8PathBuf};
use tracing::info_span;

use crate::cache::try_reuse;
use crate::job::cancelled_by_sibling;
use crate::manifest::timestamp;
use crate::scheduler::{Run, chunk_files, in_output_dir, local_input, missing_output, skipped};
use crate::{
    AlignStep, BAI, BAM, CallStep, CohortInput, CohortMember, Engine, Error, FASTQ_1, FASTQ_2,
    GatherInputs, GatherStep, JobInput, JobOutput, KeyPolicy, ManifestInputs, MergeStep,
    PlannedSample, QcRun, QcStep, ReferenceInput, ReferenceUse, ReportStep, RunManifest,
    RunObserver, RunOptions, RunOutcome, SampleSheet, SampleVcfStep, ShardRequest, SheetSample,
    SplitLane, SplitStep, StepDefinition, StepJob, TaskLabel, TaskRecord, TaskShard, TaskStatus,
    ToolRecord, VCF, WorkflowInput, chunk_bam_role, cohort_bai_role, cohort_bam_role,
    sample_qc_role, sample_read_groups, tbi_role, vcf_role,
};

/// The file stem of a cohort's joint outputs: `cohort.call.<shard>.vcf.gz`, `cohort.vcf.gz`.
pub const COHORT_STEM: &str = "cohort";

/// Where a cohort run puts `sample`'s files: `<run dir>/samples/<sample>/`.
pub fn sample_dir(run_dir: &ObjectUri, sample: &SampleId) -> ObjectUri {
    run_dir.join("samples").join(sample.as_str())
}

/// A cohort sample's BAM: `<run dir>/samples/<sample>/<sample>.align.bam` (its `.bai` beside
/// it), what its merge writes and the joint calls read.
pub fn sample_bam(run_dir: &ObjectUri, sample: &SampleId) -> ObjectUri {
    sample_dir(run_dir, sample).join(&scratch_file_name(sample, StepId::Align, None, "bam"))
}

/// The cohort's file stem as a [`SampleId`].
///
/// # Errors
/// Never in practice ([`COHORT_STEM`] is a valid id); [`Error::Usage`] otherwise.
pub fn cohort_stem() -> Result<SampleId, Error> {
    SampleId::new(COHORT_STEM).map_err(|error| Error::Usage {
        message: error.to_string(),
        remedy: None,
    })
}

/// The task a lane's alignment starts with, as the run plans it: the lane's split when it is
/// split into chunks by `chunking` (its chunks' aligns are known once it ran), else the align
/// of the lane, the sample's unit `index`.
fn lane_label(chunking: Option<ChunkLayout>, index: usize) -> TaskLabel {
    match chunking {
        Some(_) => TaskLabel::new(StepId::Split, None),
        None => TaskLabel::new(StepId::Align, Some(TaskShard::chunk(index))),
    }
}

/// How each lane of each sample of `sheet` is aligned: `None` whole, else split into chunks.
/// When `planned` (`params.samples`) lists a lane in several chunks, as the state machine
/// does: such lanes dealt in blocks of `input_chunk_pairs` (`params.chunkPairs`) into their
/// chunks, the others whole. Else every lane split into consecutive chunks of `chunk_pairs`
/// (the run's setting), or none.
///
/// # Errors
/// [`Error::Usage`] when `planned` lists other samples or lanes than the sheet, when a lane of
/// several chunks has no `input_chunk_pairs`, or `chunk_pairs` is another size.
pub(crate) fn lane_layouts(
    sheet: &SampleSheet,
    planned: &[PlannedSample],
    input_chunk_pairs: Option<NonZeroU64>,
    chunk_pairs: Option<NonZeroU64>,
) -> Result<Vec<Vec<Option<ChunkLayout>>>, Error> {
    let remake = || {
        Some(
            "make params.samples again with biojob plan-cohort from the sheet the execution reads"
                .to_owned(),
        )
    };
    if !planned.is_empty() {
        let listed: Vec<(&str, usize)> = planned
            .iter()
            .map(|sample| (sample.sample.as_str(), sample.lane_chunks.len()))
            .collect();
        let in_sheet: Vec<(&str, usize)> = sheet
            .samples
            .iter()
            .map(|sample| (sample.sample.as_str(), sample.lanes.len()))
            .collect();
        if listed != in_sheet {
            let show = |list: &[(&str, usize)]| {
                list.iter()
                    .map(|(sample, lanes)| match lanes {
                        1 => format!("{sample} (1 lane)"),
                        lanes => format!("{sample} ({lanes} lanes)"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::Usage {
                message: format!(
                    "params.samples lists {}, and the sample sheet {} has {}",
                    show(&listed),
                    sheet.uri,
                    show(&in_sheet)
                ),
                remedy: remake(),
            });
        }
    }
    // The first lane params.samples lists in several chunks, with its row of the sheet.
    let split = planned
        .iter()
        .zip(&sheet.samples)
        .flat_map(|(planned, sample)| {
            planned
                .lane_chunks
                .iter()
                .zip(&sample.lanes)
                .map(move |(chunks, row)| (&sample.sample, row, chunks))
        })
        .find(|(_, _, chunks)| chunks.get() > 1);
    let Some((sample, row, _)) = split else {
        if let (false, Some(flag)) = (planned.is_empty(), chunk_pairs) {
            return Err(Error::Usage {
                message: format!(
                    "--chunk-pairs ({}) is {flag}, and the input's params.samples aligns every lane whole",
                    crate::env::BIOJOB_ALIGN_CHUNK_PAIRS
                ),
                remedy: Some(format!(
                    "leave --chunk-pairs ({}) out: the input's params.samples aligns the lanes as the state machine does",
                    crate::env::BIOJOB_ALIGN_CHUNK_PAIRS
                )),
            });
        }
        let layout = chunk_pairs.map(|chunk_pairs| ChunkLayout::Consecutive { chunk_pairs });
        return Ok(sheet
            .samples
            .iter()
            .map(|sample| vec![layout; sample.lanes.len()])
            .collect());
    };
    let Some(block_pairs) = input_chunk_pairs else {
        // As the state machine refuses it (MissingChunkPairs).
        return Err(Error::Usage {
            message: format!(
                "lane {} of sample {sample} ({} line {}) is listed in several chunks in params.samples, and params.chunkPairs is missing or 0",
                row.lane, sheet.uri, row.line
            ),
            remedy: Some("give the chunkPairs biojob plan-cohort prints".into()),
        });
    };
    if let Some(flag) = chunk_pairs.filter(|flag| *flag != block_pairs) {
        return Err(crate::contradicts_input(
            "chunk-pairs",
            crate::env::BIOJOB_ALIGN_CHUNK_PAIRS,
            flag.get(),
            "chunkPairs",
            block_pairs.get(),
            "params.samples and params.chunkPairs split the lanes",
        ));
    }
    Ok(planned
        .iter()
        .map(|sample| {
            sample
                .lane_chunks
                .iter()
                .map(|&chunks| {
                    (chunks.get() > 1).then_some(ChunkLayout::InTurn {
                        block_pairs,
                        chunks,
                    })
                })
                .collect()
        })
        .collect())
}

/// A split lane: its split's work directory, the read pairs the split wrote, the sample's
/// alignment units that are its chunks, and its task's name for the record accounting.
struct LaneChunks {
    work_dir: Utf8PathBuf,
    written: Option<u64>,
    units: Range<usize>,
    task: String,
}

/// One alignment task of a sample: its align step (a lane, or a chunk of a split lane) and
/// its inputs (the lane's staged FASTQs, or the chunk's files).
type AlignUnit = (AlignStep, Vec<JobInput>);

/// One sample of the run with its lanes' read groups.
struct Member {
    sample: SampleId,
    read_groups: Vec<ReadGroup>,
}

/// Runs a cohort; see the module documentation. Before any tool runs: the sheet is read and
/// checked (every rule, then every FASTQ exists), each lane's read group is settled (the
/// first read of each lane without a `platform_unit` is read for it), and the requested
/// contigs are checked against the reference's `.fai`.
pub fn run_cohort(
    input: &CohortInput,
    options: &RunOptions,
    engine: &Engine,
    observer: &dyn RunObserver,
) -> RunOutcome {
    let clock = Instant::now();
    let started = std::time::SystemTime::now();
    let output_dir = input.output_dir(&options.run_id);
    let _span = info_span!("cohort", run_id = %options.run_id).entered();
    let manifest = RunManifest {
        run_id: options.run_id.clone(),
        sample: COHORT_STEM.to_owned(),
        inputs: ManifestInputs {
            samplesheet: Some(input.samplesheet.to_string()),
            ..ManifestInputs::default()
        },
        output_prefix: output_dir.to_string(),
        resources: engine.resources,
        tools: ToolRecord::list(&engine.toolset, &engine.versions),
        started_at: timestamp(started),
        ..RunManifest::default()
    };
    in_output_dir(
        manifest,
        output_dir,
        options,
        engine,
        clock,
        |manifest, setup| {
            let stem = cohort_stem()?;
            // `Run` holds what every task needs; its input carries the reference, contigs and
            // settings (the sample is the cohort's stem, its FASTQs the sheet's location:
            // neither is read).
            let carrier = WorkflowInput {
                sample: stem.clone(),
                read_group: ReadGroup::for_sample(&stem),
                fastq_1: input.samplesheet.clone(),
                fastq_2: input.samplesheet.clone(),
                reference_candidates: input.reference_candidates.clone(),
                contigs: input.contigs.clone(),
                output_prefix: input.output_prefix.clone(),
                min_mapping_quality: input.min_mapping_quality,
                resume: input.resume,
                aligner: input.aligner,
                scatter: input.scatter,
            };
            let run = setup.run(&carrier, options, engine, observer);
            Cohort {
                input,
                run: &run,
                stem,
            }
            .execute(manifest)
        },
    )
}

/// One sample's alignment, keyed as a whole: its lanes' align steps with their (staged)
/// inputs, its merge, the key the merge carries, and what a resume reused of it (the earlier
/// merge's outputs and read pairs) or why it runs.
struct SampleAlignment {
    lanes: Vec<AlignUnit>,
    merge: MergeStep,
    key: String,
    reused: Option<(Vec<crate::ReusedOutput>, Option<u64>)>,
    rerun_reason: Option<String>,
}

struct Cohort<'a> {
    input: &'a CohortInput,
    run: &'a Run<'a>,
    stem: SampleId,
}

impl Cohort<'_> {
    /// A `Run` like the cohort's, publishing to a sample's directory `dir` and writing in
    /// `work_dir` (each sample's own: its QC files have the same names as the others').
    fn for_sample<'b>(&'b self, dir: &'b ObjectUri, work_dir: &'b Utf8Path) -> Run<'b> {
        Run {
            input: self.run.input,
            options: self.run.options,
            engine: self.run.engine,
            context: self.run.context,
            work_dir,
            output_dir: dir,
            earlier: self.run.earlier,
            carried: None,
            checkpoints: false,
            observer: self.run.observer,
        }
    }

    fn sample_work_dir(&self, sample: &SampleId) -> Utf8PathBuf {
        self.run.work_dir.join("samples").join(sample.as_str())
    }

    /// Splits each of `sample`'s `lanes` (their align steps, with the lane's staged FASTQs)
    /// into chunks of `chunk_pairs` read pairs, one lane after the other, each in its own work
    /// directory (`samples/<sample>/lanes/<lane index>/`), its chunk files numbered across the
    /// sample as on AWS ([`SplitLane`]); returns the sample's alignment units, numbered across the sample (lane 0's
    /// chunks first), each with its lane's read group, and each lane's chunks.
    ///
    /// # Errors
    /// A split's failure, in its task.
    fn split_lanes(
        &self,
        sample: &SheetSample,
        lanes: &[AlignUnit],
        manifest: &mut RunManifest,
    ) -> Result<(Vec<AlignUnit>, Vec<LaneChunks>), Error> {
        let mut units = Vec::new();
        let mut splits = Vec::with_capacity(lanes.len());
        for (index, ((lane, inputs), row)) in lanes.iter().zip(&sample.lanes).enumerate() {
            let sample = &sample.sample;
            let Some(layout) = lane.chunking else {
                // A lane of one chunk, aligned whole: the sample's next unit.
                let step = AlignStep {
                    chunk: Some(units.len()),
                    ..lane.clone()
                };
                units.push((step, inputs.clone()));
                continue;
            };
            let work_dir = self
                .sample_work_dir(sample)
                .join("lanes")
                .join(index.to_string());
            let name = lane
                .lane
                .clone()
                .ok_or_else(|| missing_output("align", "lane"))?;
            let split = SplitStep {
                sample: sample.clone(),
                layout,
                upload_to: None,
                lane: Some(SplitLane {
                    name,
                    first_chunk: units.len(),
                }),
            };
            let lane_run = Run {
                work_dir: &work_dir,
                ..*self.run
            };
            let split = lane_run
                .task(
                    &StepJob {
                        definition: &split,
                        inputs: inputs.iter().cloned().map(JobInput::streamed).collect(),
                        reference: None,
                        key: KeyPolicy::None,
                    },
                    manifest,
                )
                .map_err(|error| row.failed(error, "split", sample, &self.input.samplesheet))?;
            let first = units.len();
            for (one, two) in chunk_files(&split.outputs) {
                let step = AlignStep {
                    chunk: Some(units.len()),
                    chunking: None,
                    ..lane.clone()
                };
                let inputs = vec![
                    local_input(FASTQ_1, one, "FASTQ_1"),
                    local_input(FASTQ_2, two, "FASTQ_2"),
                ];
                units.push((step, inputs));
            }
            splits.push(LaneChunks {
                work_dir,
                written: split.read_pairs,
                units: first..units.len(),
                task: TaskLabel::new(StepId::Align, None)
                    .of(lane.cohort_member())
                    .to_string(),
            });
        }
        Ok((units, splits))
    }

    fn execute(&self, manifest: &mut RunManifest) -> Result<ObjectUri, Error> {
        let run = self.run;
        let engine = run.engine;
        let stores = &engine.stores;
        let sheet = SampleSheet::read(stores, &self.input.samplesheet)?;
        sheet.check_files(stores)?;
        let layouts = lane_layouts(
            &sheet,
            &self.input.samples,
            self.input.scatter.chunk_pairs,
            run.options.scale.chunk_pairs,
        )?;
        let mut members = Vec::with_capacity(sheet.samples.len());
        for sample in &sheet.samples {
            members.push(Member {
                sample: sample.sample.clone(),
                read_groups: sample_read_groups(stores, &sheet.uri, sample, &self.input.platform)?,
            });
        }
        let reference_uri = self.run.input.resolve_reference(stores)?;
        manifest.inputs.reference = reference_uri.to_string();
        let (reference, plan) = run.prepare_reference(&reference_uri, manifest)?;
        manifest.inputs.contigs = plan.contigs().into_iter().map(|c| c.name).collect();
        let samples: Vec<SampleId> = members.iter().map(|m| m.sample.clone()).collect();

        let mut planned = vec![TaskLabel::new(StepId::PrepareReference, None)];
        for ((sample, member), layouts) in sheet.samples.iter().zip(&members).zip(&layouts) {
            // A split lane's tasks (its split, numbered by its first chunk, and its chunks'
            // aligns) are known once the lanes before it are split: they appear as they start,
            // and so do the lanes after it.
            for (index, lane) in sample.lanes.iter().enumerate() {
                if layouts.iter().all(Option::is_none) {
                    planned.push(
                        lane_label(None, index)
                            .of(Some(CohortMember::lane(&member.sample, &lane.lane))),
                    );
                }
            }
            planned.push(
                TaskLabel::new(StepId::Merge, None).of(Some(CohortMember::sample(&member.sample))),
            );
        }
        planned.extend(
            plan.shards().iter().map(|s| {
                TaskLabel::new(StepId::Call, Some(TaskShard::region(s.index, s.region())))
            }),
        );
        planned.push(TaskLabel::new(StepId::Gather, None));
        for sample in &samples {
            for step in [StepId::SampleVcf, StepId::Qc] {
                planned.push(TaskLabel::new(step, None).of(Some(CohortMember::sample(sample))));
            }
        }
        planned.push(TaskLabel::new(StepId::Report, None));
        run.observer.planned(&planned);

        let prepared = || ReferenceInput::Prepared(reference.clone());
        let mark_duplicates = self.input.mark_duplicates;

        // Key each sample's alignment as a whole before any lane runs: its lanes' keys (their
        // FASTQs, read groups, the reference, the align plan and the read pairs per chunk when
        // lanes are split), which determine the lanes' BAMs, under its merge's plan; the merge
        // carries that key. A resume reuses a sample whose merge finished with it without
        // aligning its lanes again (lane BAMs are kept in scratch only), as a chunked
        // alignment is reused (docs/resume.md).
        let remedy = "fix the sample sheet's path";
        let lane_context = run.context.for_step(StepId::Align.as_str());
        let mut alignments = Vec::with_capacity(members.len());
        for ((sample, member), layouts) in sheet.samples.iter().zip(&members).zip(&layouts) {
            let mut lanes = Vec::with_capacity(sample.lanes.len());
            let mut lane_keys = BTreeMap::new();
            for (index, ((lane, read_group), layout)) in sample
                .lanes
                .iter()
                .zip(&member.read_groups)
                .zip(layouts)
                .enumerate()
            {
                let step = AlignStep {
                    sample: member.sample.clone(),
                    read_group: read_group.clone(),
                    chunk: Some(index),
                    chunking: *layout,
                    validate_fastq: engine.validate_fastq,
                    lane: Some(lane.lane.clone()),
                    mark_duplicates,
                };
                let keyed = StepJob {
                    definition: &step,
                    inputs: vec![
                        JobInput::new(FASTQ_1, lane.fastq_1.clone(), "FASTQ_1", remedy),
                        JobInput::new(FASTQ_2, lane.fastq_2.clone(), "FASTQ_2", remedy),
                    ],
                    reference: Some((prepared(), ReferenceUse::FastaAndBwaIndex)),
                    key: KeyPolicy::Own,
                };
                let (staged, key) =
                    keyed
                        .stage_and_key(&run.target(&lane_context))
                        .map_err(|error| {
                            lane.failed(
                                error.in_task(keyed.label().to_string()),
                                "align",
                                &member.sample,
                                &sheet.uri,
                            )
                        })?;
                // An align step always has a key; without it the sample's key would not
                // cover this lane's FASTQs.
                let key = key.ok_or_else(|| missing_output("align", "cache key"))?;
                lane_keys.insert(chunk_bam_role(index), key);
                // The lane's job reads what was staged for its key.
                let staged_input = |role: &str, what: &str| {
                    staged
                        .paths
                        .get(role)
                        .map(|path| {
                            JobInput::new(role, ObjectUri::Local(path.clone()), what, remedy)
                        })
                        .ok_or_else(|| missing_output("align", role))
                };
                let inputs = vec![
                    staged_input(FASTQ_1, "FASTQ_1")?,
                    staged_input(FASTQ_2, "FASTQ_2")?,
                ];
                lanes.push((step, inputs));
            }
            let merge = MergeStep {
                sample: member.sample.clone(),
                read_groups: member.read_groups.clone(),
                chunks: member.read_groups.len(),
                mark_duplicates,
                in_cohort: true,
                chunk_records: None,
                upload_to: None,
            };
            let key = StepJob {
                definition: &merge,
                inputs: Vec::new(),
                reference: Some((prepared(), ReferenceUse::Fai)),
                key: KeyPolicy::Own,
            }
            .key_from_digests(lane_keys, run.context)?;
            let dir = sample_dir(run.output_dir, &member.sample);
            let (reused, rerun_reason) = match run.earlier {
                Some(earlier) => match try_reuse(
                    stores,
                    earlier,
                    &key,
                    &dir,
                    &self.sample_work_dir(&member.sample).join("reused"),
                ) {
                    Ok(outputs) => {
                        let read_pairs = earlier.finished(&key).and_then(|task| task.read_pairs);
                        (Some((outputs, read_pairs)), None)
                    }
                    Err(reason) => (None, Some(reason.to_string())),
                },
                None => (None, None),
            };
            alignments.push(SampleAlignment {
                lanes,
                merge,
                key,
                reused,
                rerun_reason,
            });
        }

        // The alignment units of every sample not reused, numbered across the sample: its
        // lanes, or, when lanes are split, each lane's chunks (lane 0's first, then lane 1's…).
        let mut units: Vec<Vec<AlignUnit>> = Vec::with_capacity(members.len());
        let mut splits: Vec<Vec<LaneChunks>> = Vec::with_capacity(members.len());
        for (sheet_sample, alignment) in sheet.samples.iter().zip(&alignments) {
            let split = alignment
                .lanes
                .iter()
                .any(|(step, _)| step.chunking.is_some());
            match (split, &alignment.reused) {
                (_, Some(_)) => {
                    units.push(Vec::new());
                    splits.push(Vec::new());
                }
                (false, None) => {
                    units.push(alignment.lanes.clone());
                    splits.push(Vec::new());
                }
                (true, None) => {
                    let (sample_units, sample_splits) =
                        self.split_lanes(sheet_sample, &alignment.lanes, manifest)?;
                    units.push(sample_units);
                    splits.push(sample_splits);
                }
            }
        }

        // Align every unit: `workers` at once, each with its share of the threads and memory.
        let jobs: Vec<StepJob<'_>> = units
            .iter()
            .flatten()
            .map(|(step, inputs)| StepJob {
                definition: step,
                inputs: inputs.clone(),
                reference: Some((prepared(), ReferenceUse::FastaAndBwaIndex)),
                key: KeyPolicy::None,
            })
            .collect();
        let workers = run.options.scale.workers.clamp(1, jobs.len().max(1));
        let mut share = run.context.clone();
        share.engine.resources = crate::scheduler::chunk_share(engine.resources, workers);
        let outcomes = run.in_parallel(&jobs, (0..jobs.len()).collect(), workers, &share, manifest);
        let mut unit_bams: Vec<(Option<JobOutput>, Option<u64>, Option<u64>)> =
            Vec::with_capacity(jobs.len());
        let mut first_error = None;
        let steps = units.iter().flatten().map(|(step, _)| step);
        for ((job, step), outcome) in jobs.iter().zip(steps).zip(outcomes) {
            let mut outcome = outcome.unwrap_or_else(|| {
                let mut never_run = skipped(job);
                never_run.record = never_run.record.of(job.definition.cohort_member().as_ref());
                never_run
            });
            if let Some(error) = outcome.error.take() {
                if cancelled_by_sibling(&error) {
                    outcome.record.status = TaskStatus::Skipped;
                } else {
                    first_error.get_or_insert_with(|| {
                        let row = sheet
                            .samples
                            .iter()
                            .filter(|sample| sample.sample == step.sample)
                            .flat_map(|sample| &sample.lanes)
                            .find(|row| step.lane.as_deref() == Some(row.lane.as_str()));
                        match row {
                            Some(row) => {
                                row.failed(error, "align", &step.sample, &self.input.samplesheet)
                            }
                            None => error,
                        }
                    });
                }
            }
            unit_bams.push((
                outcome.output(".bam").cloned(),
                outcome.read_pairs,
                outcome.record.records.bam.map(|counts| counts.records),
            ));
            manifest.tasks.push(outcome.record);
        }
        if let Some(error) = first_error {
            return Err(error);
        }

        // Merge each sample's units, marking duplicates, under the key of its whole alignment.
        let mut bams = Vec::with_capacity(members.len());
        let mut sample_pairs: Vec<Option<u64>> = Vec::with_capacity(members.len());
        let mut unit_bams = unit_bams.into_iter();
        for (((member, alignment), sample_units), lane_chunks) in
            members.iter().zip(alignments).zip(&units).zip(&splits)
        {
            let member_of = CohortMember::sample(&member.sample);
            if let Some((reused, read_pairs)) = alignment.reused {
                for (index, (step, _)) in alignment.lanes.iter().enumerate() {
                    run.observer
                        .reused(&lane_label(step.chunking, index).of(step.cohort_member()));
                }
                run.observer
                    .reused(&TaskLabel::new(StepId::Merge, None).of(Some(member_of.clone())));
                let outputs: Vec<JobOutput> = reused
                    .iter()
                    .map(|output| JobOutput {
                        name: output.record.name.clone(),
                        path: output.path.clone(),
                        sha256: Some(output.record.sha256.clone()),
                    })
                    .collect();
                manifest.tasks.push(
                    TaskRecord {
                        read_pairs,
                        ..TaskRecord::cached(
                            StepId::Merge,
                            None,
                            std::time::SystemTime::now(),
                            std::time::Duration::ZERO,
                            alignment.key,
                            reused.into_iter().map(|output| output.record).collect(),
                        )
                    }
                    .of(Some(&member_of)),
                );
                sample_pairs.push(read_pairs);
                bams.push(crate::scheduler::aligned_from(&outputs)?);
                continue;
            }
            let dir = sample_dir(run.output_dir, &member.sample);
            let work_dir = self.sample_work_dir(&member.sample);
            let mut inputs = Vec::new();
            let mut unit_pairs = Vec::with_capacity(sample_units.len());
            let mut unit_records = Some(0u64);
            let what = if lane_chunks.is_empty() {
                "lane BAM"
            } else {
                "chunk BAM"
            };
            for unit in 0..sample_units.len() {
                let (bam, pairs, records) = unit_bams
                    .next()
                    .ok_or_else(|| missing_output("align", what))?;
                let bam = bam.ok_or_else(|| missing_output("align", what))?;
                unit_pairs.push(pairs);
                unit_records = unit_records.zip(records).map(|(sum, n)| sum + n);
                inputs.push(local_input(&chunk_bam_role(unit), &bam, what));
            }
            // Each split lane's chunks aligned the read pairs its split wrote.
            for lane in lane_chunks {
                let aligned = unit_pairs
                    .iter()
                    .skip(lane.units.start)
                    .take(lane.units.len())
                    .flatten()
                    .sum();
                crate::scheduler::check_split_accounting(
                    engine.validate_fastq,
                    &lane.work_dir,
                    aligned,
                    lane.written,
                    lane.units.len(),
                )
                .map_err(|error| error.in_task(lane.task.clone()))?;
            }
            let read_pairs = unit_pairs
                .into_iter()
                .try_fold(0u64, |sum, pairs| pairs.map(|pairs| sum + pairs));
            let mut merge = alignment.merge;
            merge.chunks = sample_units.len();
            merge.chunk_records = unit_records;
            let job = StepJob {
                definition: &merge,
                inputs,
                reference: Some((prepared(), ReferenceUse::Fai)),
                key: KeyPolicy::Given(alignment.key),
            };
            // Reuse was decided above, for the whole alignment.
            let sample_run = self.for_sample(&dir, &work_dir);
            let context = run.context.for_step(&job.label().to_string());
            let mut target = sample_run.target(&context);
            target.earlier = None;
            let mut outcome = job.run(&target);
            outcome.record.rerun_reason = alignment.rerun_reason;
            outcome.record.read_pairs = read_pairs;
            manifest.tasks.push(outcome.record.clone());
            if let Some(error) = outcome.error.take() {
                return Err(error);
            }
            sample_pairs.push(read_pairs);
            bams.push(crate::scheduler::aligned(&outcome)?);
        }
        // The cohort's read pairs: its samples', each recorded on its merge (an earlier run's
        // when reused); unknown when one is (a merge reused from a run that did not record it).
        manifest.read_pairs = sample_pairs.into_iter().sum();

        // Call every shard jointly.
        let steps: Vec<CallStep> = plan
            .shards()
            .iter()
            .map(|shard| {
                CallStep::new(
                    self.stem.clone(),
                    ShardRequest::Shard(shard.clone()),
                    self.input.min_mapping_quality,
                )
                .jointly(samples.clone())
            })
            .collect();
        let bam_inputs: Vec<JobInput> = bams
            .iter()
            .enumerate()
            .flat_map(|(position, aligned)| {
                [
                    local_input(&cohort_bam_role(position), &aligned.bam, "BAM")
                        .known(aligned.bam.sha256.clone()),
                    local_input(&cohort_bai_role(position), &aligned.bai, "BAM index").unkeyed(),
                ]
            })
            .collect();
        let jobs: Vec<StepJob<'_>> = steps
            .iter()
            .map(|step| StepJob {
                definition: step,
                inputs: bam_inputs.clone(),
                reference: Some((prepared(), ReferenceUse::Fasta)),
                key: KeyPolicy::Own,
            })
            .collect();
        let outcomes = run.in_parallel(
            &jobs,
            plan.longest_first(),
            engine.resources.threads,
            run.context,
            manifest,
        );
        let vcfs = crate::scheduler::shard_vcfs(&jobs, outcomes, manifest)?;

        // Gather into cohort.vcf.gz.
        let gather = GatherStep::new(self.stem.clone(), GatherInputs::Given(vcfs.len()))
            .jointly(samples.clone());
        let mut inputs = Vec::new();
        for (position, (vcf, tbi)) in vcfs.iter().enumerate() {
            inputs.push(local_input(&vcf_role(position), vcf, "VCF").known(vcf.sha256.clone()));
            inputs.push(local_input(&tbi_role(position), tbi, "VCF index").unkeyed());
        }
        let gathered = run.task(
            &StepJob {
                definition: &gather,
                inputs,
                reference: Some((prepared(), ReferenceUse::Fai)),
                key: KeyPolicy::Own,
            },
            manifest,
        )?;
        let (Some(cohort_vcf), Some(cohort_tbi)) =
            (gathered.output(".vcf.gz"), gathered.output(".tbi"))
        else {
            return Err(missing_output("gather", "VCF"));
        };

        // Each sample's VCF and QC.
        let mut qc_files = Vec::with_capacity(members.len());
        for (member, aligned) in members.iter().zip(&bams) {
            let dir = sample_dir(run.output_dir, &member.sample);
            let work_dir = self.sample_work_dir(&member.sample);
            let sample_run = self.for_sample(&dir, &work_dir);
            let select = SampleVcfStep {
                sample: member.sample.clone(),
            };
            let selected = sample_run.task(
                &StepJob {
                    definition: &select,
                    inputs: vec![
                        local_input(VCF, cohort_vcf, "VCF").known(cohort_vcf.sha256.clone()),
                        local_input("tbi", cohort_tbi, "VCF index").unkeyed(),
                    ],
                    reference: Some((prepared(), ReferenceUse::Fai)),
                    key: KeyPolicy::Own,
                },
                manifest,
            )?;
            let (Some(vcf), Some(tbi)) = (selected.output(".vcf.gz"), selected.output(".tbi"))
            else {
                return Err(missing_output("sample-vcf", "VCF"));
            };
            let mut sample_manifest = manifest.clone();
            sample_manifest.sample = member.sample.to_string();
            sample_manifest.output_prefix = dir.to_string();
            sample_manifest.read_group = member
                .read_groups
                .iter()
                .map(ReadGroup::to_header_line)
                .collect::<Vec<_>>()
                .join("\n");
            sample_manifest.tasks.retain(|task| {
                task.sample
                    .as_deref()
                    .is_none_or(|s| s == member.sample.as_str())
            });
            let mut qc = QcStep::new(
                member.sample.clone(),
                QcRun::Given(Box::new(sample_manifest)),
            );
            qc.in_cohort = true;
            let checked = sample_run.task(
                &StepJob {
                    definition: &qc,
                    inputs: vec![
                        local_input(BAM, &aligned.bam, "BAM").unkeyed(),
                        local_input(BAI, &aligned.bai, "BAM index").unkeyed(),
                        local_input(VCF, vcf, "VCF").unkeyed(),
                        local_input("tbi", tbi, "VCF index").unkeyed(),
                    ],
                    reference: Some((prepared(), ReferenceUse::Fasta)),
                    key: KeyPolicy::None,
                },
                manifest,
            )?;
            qc_files.push(
                checked
                    .output("qc.json")
                    .cloned()
                    .ok_or_else(|| missing_output("qc", "qc.json"))?,
            );
        }

        // The cohort's report.
        let report = ReportStep::new(samples.clone(), QcRun::Given(Box::new(manifest.clone())));
        run.task(
            &StepJob {
                definition: &report,
                inputs: qc_files
                    .iter()
                    .enumerate()
                    .map(|(position, qc)| {
                        local_input(&sample_qc_role(position), qc, "qc.json").unkeyed()
                    })
                    .collect(),
                reference: None,
                key: KeyPolicy::None,
            },
            manifest,
        )?;
        Ok(run.output_dir.join(&cohort_vcf.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet() -> SampleSheet {
        SampleSheet::parse(
            "sample,lane,fastq_1,fastq_2\nA,1,a1_1.fq,a1_2.fq\nA,2,a2_1.fq,a2_2.fq\nB,1,b1_1.fq,b1_2.fq\n",
            &ObjectUri::parse("/data/sheet.csv").unwrap(),
        )
        .unwrap()
    }

    fn planned(samples: &[(&str, &[usize])]) -> Vec<PlannedSample> {
        samples
            .iter()
            .map(|(sample, lanes)| PlannedSample {
                sample: (*sample).to_owned(),
                lane_chunks: lanes
                    .iter()
                    .map(|&n| std::num::NonZeroUsize::new(n).unwrap())
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn lanes_are_split_as_params_samples_lists_them_else_as_the_runs_setting() {
        let pairs = |n: u64| NonZeroU64::new(n);
        let split = |chunks: usize| {
            Some(ChunkLayout::InTurn {
                block_pairs: NonZeroU64::new(5000).unwrap(),
                chunks: std::num::NonZeroUsize::new(chunks).unwrap(),
            })
        };
        let plan = planned(&[("A", &[1, 3]), ("B", &[1])]);
        assert_eq!(
            lane_layouts(&sheet(), &plan, pairs(5000), None).unwrap(),
            [vec![None, split(3)], vec![None]]
        );
        // The same size given as a flag too changes nothing.
        assert_eq!(
            lane_layouts(&sheet(), &plan, pairs(5000), pairs(5000)).unwrap(),
            [vec![None, split(3)], vec![None]]
        );
        // No params.samples: the run's setting splits every lane, or none; params.samples
        // with every lane in one chunk: none, and a setting that would split is refused.
        let whole = planned(&[("A", &[1, 1]), ("B", &[1])]);
        let consecutive = Some(ChunkLayout::Consecutive {
            chunk_pairs: NonZeroU64::new(2000).unwrap(),
        });
        assert_eq!(
            lane_layouts(&sheet(), &[], pairs(5000), pairs(2000)).unwrap(),
            [vec![consecutive; 2], vec![consecutive]]
        );
        assert_eq!(
            lane_layouts(&sheet(), &whole, pairs(5000), None).unwrap(),
            [vec![None, None], vec![None]]
        );
        assert_eq!(
            lane_layouts(&sheet(), &[], None, None).unwrap(),
            [vec![None, None], vec![None]]
        );
        let error =
            |plan: &[PlannedSample], input: Option<NonZeroU64>, flag: Option<NonZeroU64>| {
                lane_layouts(&sheet(), plan, input, flag)
                    .unwrap_err()
                    .to_string()
            };
        assert_eq!(
            error(&planned(&[("A", &[1, 3])]), pairs(5000), None),
            "params.samples lists A (2 lanes), and the sample sheet /data/sheet.csv has A (2 \
             lanes), B (1 lane)"
        );
        assert_eq!(
            error(&planned(&[("A", &[4]), ("B", &[1])]), pairs(5000), None),
            "params.samples lists A (1 lane), B (1 lane), and the sample sheet /data/sheet.csv \
             has A (2 lanes), B (1 lane)"
        );
        assert_eq!(
            error(&plan, None, None),
            "lane 2 of sample A (/data/sheet.csv line 3) is listed in several chunks in \
             params.samples, and params.chunkPairs is missing or 0"
        );
        assert_eq!(
            error(&whole, pairs(5000), pairs(2000)),
            "--chunk-pairs (BIOJOB_ALIGN_CHUNK_PAIRS) is 2000, and the input's params.samples \
             aligns every lane whole"
        );
        assert_eq!(
            error(&plan, pairs(5000), pairs(2000)),
            "--chunk-pairs (BIOJOB_ALIGN_CHUNK_PAIRS) is 2000, and the input's \
             params.chunkPairs is 5000"
        );
    }
}
