//! The step subcommands, each usable alone: prepare-reference, align, call, gather.
//!
//! A step works in a private scratch directory, publishes its outputs to `--output-prefix`
//! only when it has succeeded, and always publishes its logs (under `logs/`) and a step
//! manifest (`{sample}.{step}[.{shard}].manifest.json`).

use std::time::{Instant, SystemTime};

use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_pipeline::{
    AlignRequest, CallRequest, Engine, Error, GatherRequest, OutputRecord, PreparedReference,
    ReferenceOptions, StepContext, TaskRecord, align_space_need, call_space_need, contig_plan,
    error_chain, gather_space_need, new_run_id, publish_file, publish_logs, stage_input,
};
use biojob_process::{CancelToken, StageReport};
use biojob_scratch::{JobScratch, SpaceNeed, SpaceWatch};
use biojob_storage::ObjectUri;
use camino::{Utf8Path, Utf8PathBuf};

use crate::Failure;
use crate::cli::{AlignArgs, CallArgs, GatherArgs, PrepareReferenceArgs, RuntimeArgs, StepArgs};
use crate::run::{cache_dir, engine, job_identity};

fn usage(error: impl std::fmt::Display, remedy: &str) -> Failure {
    Failure::Usage(anyhow::anyhow!("{error}"), Some(remedy.to_owned()))
}

fn sample(step: &StepArgs) -> Result<SampleId, Failure> {
    SampleId::new(step.sample.clone()).map_err(|e| usage(e, "fix --sample (or SAMPLE_ID)"))
}

fn uri(text: &str, flag: &str) -> Result<ObjectUri, Failure> {
    ObjectUri::parse(text).map_err(|e| usage(e, &format!("fix {flag}")))
}

/// A step's scratch directory, its space watch and its context.
struct StepRun {
    engine: Engine,
    scratch: JobScratch,
    space: SpaceWatch,
    work_dir: Utf8PathBuf,
    context: StepContext,
}

impl StepRun {
    /// Resolves the tools and creates the attempt's scratch directory
    /// (`<root>/<job id>/<attempt>/`; the job id is `AWS_BATCH_JOB_ID`, or a fresh id
    /// starting with the step's name outside AWS Batch). The step's time limit starts now.
    fn new(runtime: &RuntimeArgs, cancel: &CancelToken, step: StepId) -> Result<StepRun, Failure> {
        let engine = engine(runtime, cancel)?;
        let (job_id, attempt) = job_identity(&format!("{step}-{}", new_run_id()))?;
        let (scratch, space) = engine
            .scratch
            .open(&job_id, attempt)
            .map_err(|error| Failure::Pipeline(error.in_task(step.as_str())))?;
        let work_dir = scratch.dir().to_owned();
        let context = engine
            .context(&work_dir.join("logs"), &space)
            .for_step(step.as_str());
        Ok(StepRun {
            engine,
            scratch,
            space,
            work_dir,
            context,
        })
    }

    fn context(&self) -> StepContext {
        self.context.clone()
    }

    fn reference(
        &self,
        fasta: &Utf8Path,
        runtime: &RuntimeArgs,
        bwa_index: bool,
        context: &StepContext,
    ) -> Result<(PreparedReference, Vec<StageReport>), Error> {
        let local = stage_input(
            &self.engine.stores,
            &ObjectUri::Local(fasta.to_owned()),
            &self.work_dir.join("inputs"),
            "reference",
            "check --reference",
        )?;
        biojob_pipeline::prepare_reference(
            &local,
            &ReferenceOptions {
                cache_dir: cache_dir(runtime),
                bwa_index,
            },
            context,
        )
    }

    /// Checks the scratch space for the inputs to be copied in (those that are not local
    /// files) plus what the step writes, before staging anything.
    fn preflight(
        &self,
        uris: &[&ObjectUri],
        need: impl FnOnce(u64) -> SpaceNeed,
    ) -> Result<(), Error> {
        let mut staged = 0u64;
        for uri in uris.iter().filter(|uri| uri.local_path().is_none()) {
            let size = self
                .engine
                .stores
                .for_uri(uri)?
                .head(uri)?
                .map_or(0, |m| m.size);
            staged = staged.saturating_add(size);
        }
        self.context.preflight(&need(staged))
    }

    /// Publishes outputs (on success) and logs (always), removes the scratch directory (unless
    /// kept), then publishes the step manifest (always); returns the step's own result.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        self,
        step: StepId,
        shard: Option<(usize, &str)>,
        sample: &SampleId,
        prefix: &ObjectUri,
        started: SystemTime,
        clock: Instant,
        result: Result<(Vec<StageReport>, Vec<Utf8PathBuf>), Error>,
    ) -> Result<(), Failure> {
        let stores = &self.engine.stores;
        let published = result.and_then(|(commands, files)| {
            self.context.check_stopped("publishing the outputs")?;
            let outputs = files
                .iter()
                .map(|file| publish_file(stores, file, prefix))
                .collect::<Result<Vec<OutputRecord>, Error>>()?;
            Ok((commands, outputs))
        });
        let task = step.as_str().to_owned();
        let (record, result) = match published {
            Ok((commands, outputs)) => (
                TaskRecord {
                    outputs,
                    ..TaskRecord::new(step, shard, started, clock.elapsed(), &commands)
                },
                Ok(()),
            ),
            Err(error) => {
                let error = error.in_task(task);
                let commands = match error.root() {
                    Error::Process(process) => process
                        .report()
                        .map(|report| report.stages.clone())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                (
                    TaskRecord::new(step, shard, started, clock.elapsed(), &commands)
                        .failed(&error),
                    Err(Failure::Pipeline(error)),
                )
            }
        };
        let bytes_staged_out = record.outputs.iter().map(|output| output.bytes).sum();
        if let Err(error) = publish_logs(stores, &self.work_dir.join("logs"), prefix) {
            tracing::warn!(error = %error_chain(&error), "could not publish the logs");
        }
        let scratch_usage = self.space.usage();
        // Free the scratch space before writing the manifest: it may be what ran out.
        match self.scratch.finish(self.engine.scratch.keep) {
            Ok(Some(kept)) => eprintln!("scratch kept: {kept}"),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "could not remove the scratch directory")
            }
        }
        let name = match shard {
            Some((index, _)) => format!("{sample}.{step}.{index:04}.manifest.json"),
            None => format!("{sample}.{step}.manifest.json"),
        };
        let manifest = serde_json::json!({
            "format_version": biojob_pipeline::MANIFEST_FORMAT_VERSION,
            "biojob_version": env!("CARGO_PKG_VERSION"),
            "sample": sample.as_str(),
            "resources": self.engine.resources,
            "tools": {
                "bwa": {"path": self.engine.toolset.bwa.path, "version": self.engine.versions.bwa},
                "samtools": {"path": self.engine.toolset.samtools.path, "version": self.engine.versions.samtools},
                "bcftools": {"path": self.engine.toolset.bcftools.path, "version": self.engine.versions.bcftools},
            },
            "scratch": scratch_usage,
            "task": record,
        });
        let written = tempfile::tempdir()
            .map_err(Error::io("creating", "a temporary directory"))
            .and_then(|dir| {
                let path = Utf8PathBuf::from_path_buf(dir.path().join(&name)).map_err(|p| {
                    Error::io("writing", p.to_string_lossy().into_owned())(std::io::Error::other(
                        "non-UTF-8 path",
                    ))
                })?;
                serde_json::to_vec_pretty(&manifest)
                    .map_err(std::io::Error::other)
                    .and_then(|json| std::fs::write(&path, json))
                    .map_err(Error::io("writing", &path))?;
                publish_file(stores, &path, prefix)
            });
        if let Err(error) = written {
            tracing::warn!(error = %error_chain(&error), "could not publish the step manifest");
        }
        crate::metrics::emit_step(&crate::metrics::StepMetrics {
            step: step.as_str(),
            sample: sample.as_str(),
            contig: shard.map(|(_, contig)| contig),
            duration: clock.elapsed(),
            exit_code: result
                .as_ref()
                .map_or_else(|f| f.exit_class().code(), |()| 0),
            // Inputs are local until S3 staging lands; then the staging reports give this.
            bytes_staged_in: None,
            bytes_staged_out: Some(bytes_staged_out),
            scratch_peak_bytes: Some(scratch_usage.peak_bytes),
        });
        result
    }
}

pub fn prepare_reference(args: PrepareReferenceArgs, cancel: &CancelToken) -> Result<(), Failure> {
    let run = StepRun::new(&args.runtime, cancel, StepId::PrepareReference)?;
    let context = run.context();
    let (reference, _) = run
        .reference(&args.reference, &args.runtime, !args.fai_only, &context)
        .map_err(|error| error.in_task(StepId::PrepareReference.as_str()))?;
    #[allow(clippy::print_stdout, reason = "the step's result")]
    {
        println!("fasta: {}", reference.fasta);
        println!("fai: {}", reference.fai);
        if let Some(prefix) = &reference.bwa_prefix {
            println!("bwa index: {prefix}");
        }
        for built in &reference.built {
            println!("built: {built}");
        }
    }
    if let Some(kept) = run
        .scratch
        .finish(run.engine.scratch.keep)
        .map_err(|error| Failure::Pipeline(error.into()))?
    {
        eprintln!("scratch kept: {kept}");
    }
    Ok(())
}

pub fn align(args: AlignArgs, cancel: &CancelToken) -> Result<(), Failure> {
    let sample = sample(&args.step)?;
    let prefix = uri(&args.step.output_prefix, "--output-prefix")?;
    let invalid = |e: biojob_core::ReadGroupError| usage(e, "fix the --read-group-* values");
    let mut read_group = ReadGroup::for_sample(&sample)
        .with_platform(args.read_group_platform.clone())
        .map_err(invalid)?;
    if let Some(id) = &args.read_group_id {
        read_group = read_group.with_id(id.clone()).map_err(invalid)?;
    }
    if let Some(library) = &args.read_group_library {
        read_group = read_group.with_library(library.clone()).map_err(invalid)?;
    }
    if let Some(unit) = &args.read_group_platform_unit {
        read_group = read_group
            .with_platform_unit(unit.clone())
            .map_err(invalid)?;
    }
    let fastq_1 = uri(&args.fastq_1, "--fastq-1")?;
    let fastq_2 = uri(&args.fastq_2, "--fastq-2")?;
    let run = StepRun::new(&args.runtime, cancel, StepId::Align)?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let result = (|| {
        let fastq_bytes = [&fastq_1, &fastq_2].iter().try_fold(0u64, |sum, uri| {
            let size = run
                .engine
                .stores
                .for_uri(uri)?
                .head(uri)?
                .map_or(0, |m| m.size);
            Ok::<u64, Error>(sum.saturating_add(size))
        })?;
        run.preflight(&[&fastq_1, &fastq_2], |staged| {
            align_space_need(staged, fastq_bytes, &fastq_1.to_string())
        })?;
        let staging = run.work_dir.join("inputs");
        let remedy = "check --fastq-1 and --fastq-2";
        let r1 = stage_input(&run.engine.stores, &fastq_1, &staging, "FASTQ_1", remedy)?;
        let r2 = stage_input(&run.engine.stores, &fastq_2, &staging, "FASTQ_2", remedy)?;
        let (reference, mut commands) =
            run.reference(&args.step.reference, &args.runtime, true, &context)?;
        let output = biojob_pipeline::align(
            &AlignRequest {
                sample: &sample,
                read_group: &read_group,
                reference: &reference,
                fastq_1: &r1,
                fastq_2: &r2,
                work_dir: &run.work_dir,
            },
            &context,
        )?;
        commands.extend(output.commands);
        Ok((commands, vec![output.bam, output.bai]))
    })();
    run.finish(
        StepId::Align,
        None,
        &sample,
        &prefix,
        started,
        clock,
        result,
    )
}

pub fn call(args: CallArgs, cancel: &CancelToken) -> Result<(), Failure> {
    let sample = sample(&args.step)?;
    let prefix = uri(&args.step.output_prefix, "--output-prefix")?;
    let bam = uri(&args.bam, "--bam")?;
    let run = StepRun::new(&args.runtime, cancel, StepId::Call)?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let mut shard_key = None;
    let result = (|| {
        let (reference, mut commands) =
            run.reference(&args.step.reference, &args.runtime, false, &context)?;
        let plan = contig_plan(
            &reference.contigs,
            Some(std::slice::from_ref(&args.contig)),
            &reference.fai,
        )?;
        let shard = plan.shards()[0].clone();
        shard_key = Some(shard.index);
        let bam_bytes = run
            .engine
            .stores
            .for_uri(&bam)?
            .head(&bam)?
            .map_or(0, |m| m.size);
        let bai = ObjectUri::parse(&format!("{bam}.bai"))?;
        run.preflight(&[&bam, &bai], |staged| {
            call_space_need(&format!("call {}", args.contig), staged, bam_bytes)
        })?;
        let staging = run.work_dir.join("inputs");
        let bam_path = stage_input(&run.engine.stores, &bam, &staging, "BAM", "check --bam")?;
        stage_input(
            &run.engine.stores,
            &bai,
            &staging,
            "BAM index",
            "index the BAM with samtools index (the .bai must sit beside it)",
        )?;
        let output = biojob_pipeline::call(
            &CallRequest {
                sample: &sample,
                shard: &shard,
                fasta: &reference.fasta,
                bam: &bam_path,
                work_dir: &run.work_dir,
            },
            &context,
        )?;
        commands.extend(output.commands);
        Ok((commands, vec![output.vcf, output.tbi]))
    })();
    let shard = shard_key.map(|index| (index, args.contig.as_str()));
    run.finish(
        StepId::Call,
        shard,
        &sample,
        &prefix,
        started,
        clock,
        result,
    )
}

pub fn gather(args: GatherArgs, cancel: &CancelToken) -> Result<(), Failure> {
    let sample = sample(&args.step)?;
    let prefix = uri(&args.step.output_prefix, "--output-prefix")?;
    let vcfs = args
        .vcfs
        .iter()
        .map(|text| uri(text, "--vcf"))
        .collect::<Result<Vec<_>, _>>()?;
    let run = StepRun::new(&args.runtime, cancel, StepId::Gather)?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let result = (|| {
        let (reference, mut commands) =
            run.reference(&args.step.reference, &args.runtime, false, &context)?;
        let mut inputs = Vec::new();
        for vcf in &vcfs {
            inputs.push(vcf.clone());
            inputs.push(ObjectUri::parse(&format!("{vcf}.tbi"))?);
        }
        let vcf_bytes = vcfs.iter().try_fold(0u64, |sum, uri| {
            let size = run
                .engine
                .stores
                .for_uri(uri)?
                .head(uri)?
                .map_or(0, |m| m.size);
            Ok::<u64, Error>(sum.saturating_add(size))
        })?;
        run.preflight(&inputs.iter().collect::<Vec<_>>(), |staged| {
            gather_space_need(staged, vcf_bytes)
        })?;
        let staging = run.work_dir.join("inputs");
        let mut local = Vec::new();
        for vcf in &vcfs {
            local.push(stage_input(
                &run.engine.stores,
                vcf,
                &staging,
                "VCF",
                "check --vcf",
            )?);
            let tbi = ObjectUri::parse(&format!("{vcf}.tbi"))?;
            stage_input(
                &run.engine.stores,
                &tbi,
                &staging,
                "VCF index",
                "index each VCF with bcftools index -t (the .tbi must sit beside it)",
            )?;
        }
        let output = biojob_pipeline::gather(
            &GatherRequest {
                sample: &sample,
                contigs: &reference.contigs,
                vcfs: &local,
                work_dir: &run.work_dir,
            },
            &context,
        )?;
        commands.extend(output.commands);
        Ok((commands, vec![output.vcf, output.tbi]))
    })();
    run.finish(
        StepId::Gather,
        None,
        &sample,
        &prefix,
        started,
        clock,
        result,
    )
}
