//! The step subcommands, each usable alone: prepare-reference, align, call, gather.
//!
//! A step works in a private scratch directory, publishes its outputs to `--output-prefix`
//! only when it has succeeded, and always publishes its logs (under `logs/`) and a step
//! manifest (`{sample}.{step}[.{shard}].manifest.json`).

use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_pipeline::{
    AlignRequest, CallRequest, Engine, Error, GatherRequest, OutputRecord, PreparedReference,
    ReferenceOptions, StepContext, TaskRecord, contig_plan, error_chain, publish_file,
    publish_logs, stage_input,
};
use biojob_process::{CancelToken, StageReport};
use biojob_storage::ObjectUri;
use camino::{Utf8Path, Utf8PathBuf};

use crate::Failure;
use crate::cli::{AlignArgs, CallArgs, GatherArgs, PrepareReferenceArgs, RuntimeArgs, StepArgs};
use crate::run::{cache_dir, engine, scratch_root};

fn usage(error: impl std::fmt::Display, remedy: &str) -> Failure {
    Failure::Usage(anyhow::anyhow!("{error}"), Some(remedy.to_owned()))
}

fn sample(step: &StepArgs) -> Result<SampleId, Failure> {
    SampleId::new(step.sample.clone()).map_err(|e| usage(e, "fix --sample (or SAMPLE_ID)"))
}

fn uri(text: &str, flag: &str) -> Result<ObjectUri, Failure> {
    ObjectUri::parse(text).map_err(|e| usage(e, &format!("fix {flag}")))
}

/// A step's scratch directory and context.
struct StepRun {
    engine: Engine,
    work: tempfile::TempDir,
    work_dir: Utf8PathBuf,
    keep: bool,
}

impl StepRun {
    fn new(runtime: &RuntimeArgs, cancel: &CancelToken, name: &str) -> Result<StepRun, Failure> {
        let engine = engine(runtime, cancel)?;
        let root = scratch_root(runtime);
        let work = std::fs::create_dir_all(&root)
            .and_then(|()| {
                tempfile::Builder::new()
                    .prefix(&format!("biojob-{name}-"))
                    .tempdir_in(&root)
            })
            .with_context(|| format!("creating a scratch directory in {root}"))
            .map_err(|error| {
                Failure::Usage(
                    error,
                    Some("set --scratch-dir to a writable directory".into()),
                )
            })?;
        let work_dir = Utf8PathBuf::from_path_buf(work.path().to_owned())
            .map_err(|_| usage("the scratch path is not UTF-8", "set --scratch-dir"))?;
        Ok(StepRun {
            engine,
            work,
            work_dir,
            keep: runtime.keep_scratch,
        })
    }

    fn context(&self) -> StepContext {
        self.engine.context(&self.work_dir.join("logs"))
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

    /// Publishes outputs (on success), logs and the step manifest (always); returns the
    /// step's own result.
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
            "task": record,
        });
        let path = self.work_dir.join(&name);
        let written = serde_json::to_vec_pretty(&manifest)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&path, json))
            .map_err(Error::io("writing", &path))
            .and_then(|()| publish_file(stores, &path, prefix));
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
            scratch_peak_bytes: None,
        });
        if self.keep {
            let kept = self.work.keep();
            eprintln!("scratch kept: {}", kept.display());
        }
        result
    }
}

pub fn prepare_reference(args: PrepareReferenceArgs, cancel: &CancelToken) -> Result<(), Failure> {
    let run = StepRun::new(&args.runtime, cancel, "prepare-reference")?;
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
    let run = StepRun::new(&args.runtime, cancel, "align")?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let result = (|| {
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
    let run = StepRun::new(&args.runtime, cancel, "call")?;
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
        let staging = run.work_dir.join("inputs");
        let bam_path = stage_input(&run.engine.stores, &bam, &staging, "BAM", "check --bam")?;
        let bai = ObjectUri::parse(&format!("{bam}.bai"))?;
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
    let run = StepRun::new(&args.runtime, cancel, "gather")?;
    let (started, clock) = (SystemTime::now(), Instant::now());
    let context = run.context();
    let result = (|| {
        let (reference, mut commands) =
            run.reference(&args.step.reference, &args.runtime, false, &context)?;
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
