//! `biojob run` of a cohort: the samples and lanes of a sample sheet, through the same step
//! jobs as one sample's run (docs/cohorts.md). Each lane is aligned with its own read group
//! (`AlignStep`, with `samtools fixmate -m` when duplicates are marked), each sample's lanes
//! merged with duplicates marked (`MergeStep`), every calling shard called jointly over all
//! the samples' BAMs (`CallStep::jointly`), the shards gathered into `cohort.vcf.gz`
//! (`GatherStep::jointly`), then per sample its VCF (`SampleVcfStep`) and QC (`QcStep`), and
//! one cohort report (`ReportStep`).
//!
//! Outputs: `<JOB_OUTPUT_PREFIX>/<run id>/` holds `cohort.vcf.gz` (with the shards' VCFs,
//! `cohort.call.<shard>.vcf.gz`), `report.html` and `manifest.json`; `samples/<sample>/` holds
//! each sample's BAM, markdup statistics, VCF and QC files.

use std::time::Instant;

use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_storage::ObjectUri;
use camino::{Utf8Path, Utf8PathBuf};
use tracing::info_span;

use crate::cache::{EarlierTasks, earlier_run_manifest};
use crate::job::cancelled_by_sibling;
use crate::manifest::timestamp;
use crate::scheduler::{
    Run, check_output_dir, earlier_tasks, finish, local_input, missing_output, skipped,
};
use crate::{
    AlignStep, BAI, BAM, CallStep, CohortInput, CohortMember, Engine, Error, FASTQ_1, FASTQ_2,
    GatherInputs, GatherStep, JobInput, JobOutput, KeyPolicy, ManifestInputs, MergeStep, QcRun,
    QcStep, ReferenceInput, ReferenceUse, ReportStep, RunManifest, RunObserver, RunOptions,
    RunOutcome, SampleSheet, SampleVcfStep, ShardRequest, StepJob, TaskLabel, TaskShard,
    TaskStatus, ToolRecord, VCF, WorkflowInput, chunk_bam_role, cohort_bai_role, cohort_bam_role,
    fastq_first_read_name, lane_read_group, sample_qc_role, tbi_role, vcf_role,
};

/// The file stem of a cohort's joint outputs: `cohort.call.<shard>.vcf.gz`, `cohort.vcf.gz`.
pub const COHORT_STEM: &str = "cohort";

/// Where a cohort run puts `sample`'s files: `<run dir>/samples/<sample>/`.
pub fn sample_dir(run_dir: &ObjectUri, sample: &SampleId) -> ObjectUri {
    run_dir.join("samples").join(sample.as_str())
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
    let output_dir = input.output_prefix.join(&options.run_id);
    let _span = info_span!("cohort", run_id = %options.run_id).entered();
    let mut manifest = RunManifest {
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
    if let Err(error) = check_output_dir(&output_dir) {
        return finish(manifest, output_dir, None, Err(error), None, engine, clock);
    }
    let (scratch, space) = match engine.scratch.open(&options.job_id, options.attempt) {
        Ok(opened) => opened,
        Err(error) => {
            return finish(manifest, output_dir, None, Err(error), None, engine, clock);
        }
    };
    let work_dir = scratch.dir().to_owned();
    let context = engine.context(&work_dir.join("logs"), &space);
    let earlier = if options.resume {
        earlier_tasks(&engine.stores, &output_dir)
    } else {
        EarlierTasks::default()
    };
    // Read before this run writes its own manifest there, task by task.
    let carried = earlier_run_manifest(&engine.stores, &output_dir.join("manifest.json"));
    let result = (|| {
        let stem = cohort_stem()?;
        // `Run` holds what every task needs; its input carries the reference, contigs and
        // settings (the sample is the cohort's stem, its FASTQs the sheet's location: neither
        // is read).
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
        };
        let run = Run {
            input: &carrier,
            options,
            engine,
            context: &context,
            work_dir: &work_dir,
            output_dir: &output_dir,
            earlier: options.resume.then_some(&earlier),
            carried: carried.as_ref(),
            checkpoints: true,
            observer,
        };
        Cohort {
            input,
            run: &run,
            stem,
        }
        .execute(&mut manifest)
    })();
    manifest.scratch = Some(space.usage());
    finish(
        manifest,
        output_dir,
        Some(scratch),
        result,
        carried.as_ref(),
        engine,
        clock,
    )
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

    fn execute(&self, manifest: &mut RunManifest) -> Result<ObjectUri, Error> {
        let run = self.run;
        let engine = run.engine;
        let stores = &engine.stores;
        let sheet = SampleSheet::read(stores, &self.input.samplesheet)?;
        sheet.check_files(stores)?;
        let mut members = Vec::with_capacity(sheet.samples.len());
        for sample in &sheet.samples {
            let mut read_groups = Vec::with_capacity(sample.lanes.len());
            for lane in &sample.lanes {
                let first = match lane.platform_unit {
                    Some(_) => None,
                    None => Some(fastq_first_read_name(stores, &lane.fastq_1)?),
                };
                read_groups.push(lane_read_group(
                    &sample.sample,
                    lane,
                    &self.input.platform,
                    first.as_deref(),
                )?);
            }
            members.push(Member {
                sample: sample.sample.clone(),
                read_groups,
            });
        }
        let reference_uri = self.run.input.resolve_reference(stores)?;
        manifest.inputs.reference = reference_uri.to_string();
        let (reference, plan) = run.prepare_reference(&reference_uri, manifest)?;
        manifest.inputs.contigs = plan.contigs().into_iter().map(|c| c.name).collect();
        let samples: Vec<SampleId> = members.iter().map(|m| m.sample.clone()).collect();

        let mut planned = vec![TaskLabel::new(StepId::PrepareReference, None)];
        for (sample, member) in sheet.samples.iter().zip(&members) {
            for (index, lane) in sample.lanes.iter().enumerate() {
                planned.push(
                    TaskLabel::new(StepId::Align, Some(TaskShard::chunk(index)))
                        .of(Some(CohortMember::lane(&member.sample, &lane.lane))),
                );
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

        // Align every lane: `workers` at once, each with its share of the threads and memory.
        let steps: Vec<AlignStep> = sheet
            .samples
            .iter()
            .zip(&members)
            .flat_map(|(sample, member)| {
                sample
                    .lanes
                    .iter()
                    .zip(&member.read_groups)
                    .enumerate()
                    .map(|(index, (lane, read_group))| AlignStep {
                        sample: member.sample.clone(),
                        read_group: read_group.clone(),
                        chunk: Some(index),
                        chunk_pairs: None,
                        validate_fastq: engine.validate_fastq,
                        lane: Some(lane.lane.clone()),
                        mark_duplicates,
                    })
            })
            .collect();
        let lanes: Vec<&crate::SheetLane> =
            sheet.samples.iter().flat_map(|s| s.lanes.iter()).collect();
        let jobs: Vec<StepJob<'_>> = steps
            .iter()
            .zip(&lanes)
            .map(|(step, lane)| {
                let remedy = "fix the sample sheet's path";
                StepJob {
                    definition: step,
                    inputs: vec![
                        JobInput::new(FASTQ_1, lane.fastq_1.clone(), "FASTQ_1", remedy),
                        JobInput::new(FASTQ_2, lane.fastq_2.clone(), "FASTQ_2", remedy),
                    ],
                    reference: Some((prepared(), ReferenceUse::FastaAndBwaIndex)),
                    key: KeyPolicy::None,
                }
            })
            .collect();
        let workers = run.options.scale.workers.clamp(1, jobs.len().max(1));
        let mut share = run.context.clone();
        share.engine.resources = crate::Resources {
            threads: (engine.resources.threads / workers).max(1),
            memory_bytes: engine.resources.memory_bytes / workers as u64,
        };
        let outcomes = run.in_parallel(&jobs, (0..jobs.len()).collect(), workers, &share, &|_| {});
        let mut lane_bams: Vec<Option<JobOutput>> = Vec::with_capacity(jobs.len());
        let mut read_pairs = 0u64;
        let mut first_error = None;
        for (job, outcome) in jobs.iter().zip(outcomes) {
            let mut outcome = outcome.unwrap_or_else(|| {
                let mut never_run = skipped(job);
                never_run.record = never_run.record.of(job.definition.cohort_member().as_ref());
                never_run
            });
            if let Some(error) = outcome.error.take() {
                if cancelled_by_sibling(&error) {
                    outcome.record.status = TaskStatus::Skipped;
                } else {
                    first_error.get_or_insert(error);
                }
            }
            read_pairs += outcome.read_pairs.unwrap_or(0);
            lane_bams.push(outcome.output(".bam").cloned());
            manifest.tasks.push(outcome.record);
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        manifest.read_pairs = Some(read_pairs);

        // Merge each sample's lanes, marking duplicates.
        let mut bams = Vec::with_capacity(members.len());
        let mut lane_bams = lane_bams.into_iter();
        for member in &members {
            let dir = sample_dir(run.output_dir, &member.sample);
            let work_dir = self.sample_work_dir(&member.sample);
            let merge = MergeStep {
                sample: member.sample.clone(),
                read_groups: member.read_groups.clone(),
                chunks: member.read_groups.len(),
                mark_duplicates,
                in_cohort: true,
            };
            let mut inputs = Vec::new();
            for chunk in 0..member.read_groups.len() {
                let bam = lane_bams
                    .next()
                    .flatten()
                    .ok_or_else(|| missing_output("align", "lane BAM"))?;
                inputs.push(local_input(&chunk_bam_role(chunk), &bam, "lane BAM"));
            }
            let outcome = self.for_sample(&dir, &work_dir).task(
                &StepJob {
                    definition: &merge,
                    inputs,
                    reference: Some((prepared(), ReferenceUse::Fai)),
                    key: KeyPolicy::Own,
                },
                manifest,
            )?;
            bams.push(crate::scheduler::aligned(&outcome)?);
        }

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
            &|_| {},
        );
        let mut vcfs = Vec::with_capacity(jobs.len());
        let mut first_error = None;
        for (job, outcome) in jobs.iter().zip(outcomes) {
            let mut outcome = outcome.unwrap_or_else(|| skipped(job));
            if let Some(error) = outcome.error.take() {
                if cancelled_by_sibling(&error) {
                    outcome.record.status = TaskStatus::Skipped;
                } else {
                    first_error.get_or_insert(error);
                }
            } else if let (Some(vcf), Some(tbi)) =
                (outcome.output(".vcf.gz"), outcome.output(".tbi"))
            {
                vcfs.push((vcf.clone(), tbi.clone()));
            }
            manifest.tasks.push(outcome.record);
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        if vcfs.len() != jobs.len() {
            return Err(missing_output("call", "VCF"));
        }

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
        let report = ReportStep {
            samples: samples.clone(),
            run: manifest.clone(),
        };
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
