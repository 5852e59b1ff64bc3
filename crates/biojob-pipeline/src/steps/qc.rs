//! The `qc` step: the tools' QC reports that MultiQC reads, and native statistics in `qc.json`.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, OnceLock};

use biojob_core::{SampleId, StepId};
use biojob_formats::{BamStats, VcfRules, VcfScan, read_bam_stats, scan_vcf};
use biojob_process::StageReport;
use biojob_scratch::SpaceNeed;
use biojob_storage::ObjectUri;
use biojob_tools::{Tool, bcftools_stats, samtools_flagstat, samtools_stats};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::cache::read_json;
use crate::job::REFERENCE;
use crate::plan::partial;
use crate::steps::{RunningPlan, plan_shape};
use crate::{
    CostSummary, Error, Executed, JobInput, PlanContext, PreparedReference, Prices, RunManifest,
    StagedInputs, StepContext, StepDefinition, StepManifest, StepPlan, TaskRecord, contig_plan,
    render_report, shard_plan, step_manifest_name,
};

/// Version of `qc.json`'s layout; bumped when a field changes meaning.
pub const QC_FORMAT_VERSION: u32 = 1;

/// Read counts from the BAM, as `samtools flagstat` makes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadsQc {
    /// Every record (primary, secondary, supplementary).
    pub records: u64,
    /// Primary records.
    pub primary: u64,
    /// Secondary records.
    pub secondary: u64,
    /// Supplementary records.
    pub supplementary: u64,
    /// Duplicate-flagged records.
    pub duplicates: u64,
    /// `duplicates / records`, percent (0 when duplicates were not marked).
    pub duplicates_percent: f64,
    /// Mapped records.
    pub mapped: u64,
    /// `mapped / records`, percent.
    pub mapped_percent: f64,
    /// Primary records of paired reads.
    pub paired: u64,
    /// Of those, properly paired.
    pub properly_paired: u64,
    /// `properly_paired / paired`, percent.
    pub properly_paired_percent: f64,
    /// Mapped records whose mate is unmapped.
    pub singletons: u64,
}

/// Depth, breadth and variants of one contig.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContigQc {
    /// The contig.
    pub name: String,
    /// Its length in bases.
    pub length: u64,
    /// Mean depth over every base (`samtools depth -a`, averaged), in reads:
    /// `aligned_bases / length`.
    pub mean_depth: f64,
    /// Fraction of bases with depth ≥ 1, from 0 to 1: `covered_bases / length`.
    pub breadth: f64,
    /// Sum of per-base depths (bases of `M`, `=`, `X` operations of the counted records).
    pub aligned_bases: u64,
    /// Bases with depth ≥ 1.
    pub covered_bases: u64,
    /// Variant records in the final VCF.
    pub variants: u64,
    /// Of those, with an SNV allele.
    pub snvs: u64,
    /// Of those, with an indel allele.
    pub indels: u64,
    /// Bases per depth bin.
    pub depth_bin_bases: u64,
    /// Mean depth per bin along the contig, rounded to 0.01.
    pub depth_bins: Vec<f64>,
}

/// Variant counts of the final VCF, as `bcftools stats` makes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantsQc {
    /// Records.
    pub records: u64,
    /// Records with an SNV allele.
    pub snvs: u64,
    /// Records with an MNP allele.
    pub mnps: u64,
    /// Records with an indel allele.
    pub indels: u64,
    /// Records with another kind of allele.
    pub others: u64,
    /// Records with several ALT alleles.
    pub multiallelic: u64,
    /// SNV alleles that are transitions.
    pub transitions: u64,
    /// SNV alleles that are transversions.
    pub transversions: u64,
    /// `transitions / transversions`; absent without transversions.
    pub ti_tv: Option<f64>,
    /// Heterozygous genotypes of the sample, among genotypes with an SNV allele (as
    /// `bcftools stats` PSC `nHets`).
    pub het: u64,
    /// Homozygous-alternate genotypes of the sample, among genotypes with an SNV allele (PSC
    /// `nNonRefHom`).
    pub hom_alt: u64,
    /// `het / hom_alt`; absent without homozygous-alternate genotypes.
    pub het_hom_ratio: Option<f64>,
}

/// The file names of the step's outputs, relative to the run's output directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QcFiles {
    /// `samtools flagstat` output.
    pub flagstat: String,
    /// `samtools stats` output.
    pub samtools_stats: String,
    /// `bcftools stats` output.
    pub bcftools_stats: String,
}

/// `qc.json`: the native statistics of one sample's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QcSummary {
    /// [`QC_FORMAT_VERSION`].
    pub format_version: u32,
    /// The sample.
    pub sample: String,
    /// Read counts.
    pub reads: ReadsQc,
    /// Per contig, in reference order.
    pub contigs: Vec<ContigQc>,
    /// Variant counts over all contigs.
    pub variants: VariantsQc,
    /// The tools' reports beside `qc.json`.
    pub files: QcFiles,
}

impl QcSummary {
    /// Builds the summary from one BAM pass and one VCF pass.
    pub fn new(sample: &SampleId, bam: &BamStats, vcf: &VcfScan, files: QcFiles) -> QcSummary {
        let flags = &bam.flags;
        let contigs = bam
            .contigs
            .iter()
            .map(|coverage| {
                let variants = vcf
                    .contigs
                    .iter()
                    .find(|c| c.name == coverage.name)
                    .map(|c| c.counts)
                    .unwrap_or_default();
                ContigQc {
                    name: coverage.name.clone(),
                    length: coverage.length,
                    mean_depth: coverage.mean_depth(),
                    breadth: coverage.breadth(),
                    aligned_bases: coverage.aligned_bases,
                    covered_bases: coverage.covered_bases,
                    variants: variants.records,
                    snvs: variants.snvs,
                    indels: variants.indels,
                    depth_bin_bases: coverage.bin_bases,
                    depth_bins: coverage
                        .bin_depths()
                        .into_iter()
                        .map(|depth| (depth * 100.0).round() / 100.0)
                        .collect(),
                }
            })
            .collect();
        let counts = &vcf.counts;
        QcSummary {
            format_version: QC_FORMAT_VERSION,
            sample: sample.to_string(),
            reads: ReadsQc {
                records: flags.records,
                primary: flags.primary,
                secondary: flags.secondary,
                supplementary: flags.supplementary,
                duplicates: flags.duplicates,
                duplicates_percent: if flags.records == 0 {
                    0.0
                } else {
                    flags.duplicates as f64 * 100.0 / flags.records as f64
                },
                mapped: flags.mapped,
                mapped_percent: flags.mapped_percent(),
                paired: flags.paired,
                properly_paired: flags.properly_paired,
                properly_paired_percent: flags.properly_paired_percent(),
                singletons: flags.singletons,
            },
            contigs,
            variants: VariantsQc {
                records: counts.records,
                snvs: counts.snvs,
                mnps: counts.mnps,
                indels: counts.indels,
                others: counts.others,
                multiallelic: counts.multiallelic,
                transitions: counts.transitions,
                transversions: counts.transversions,
                ti_tv: counts.ti_tv(),
                het: counts.het,
                hom_alt: counts.hom_alt,
                het_hom_ratio: counts.het_hom_ratio(),
            },
            files,
        }
    }
}

/// The names MultiQC needs, and why they are enough: MultiQC's samtools and bcftools modules
/// find their inputs by *content* (its `search_patterns.yaml`: `samtools/flagstat` matches
/// `in total (QC-passed reads + QC-failed reads)`, `samtools/stats` matches
/// `This file was produced by samtools stats`, `bcftools/stats` matches
/// `This file was produced by bcftools stats`), not by name; the name only gives the sample
/// name, after MultiQC strips known extensions (`.txt`, `.flagstat`, `.stats`, …). Each
/// name therefore starts with the sample and says which report it is.
pub fn qc_file_names(sample: &SampleId) -> QcFiles {
    QcFiles {
        flagstat: format!("{sample}.flagstat.txt"),
        samtools_stats: format!("{sample}.samtools_stats.txt"),
        bcftools_stats: format!("{sample}.bcftools_stats.txt"),
    }
}

/// The role of the BAM in a QC job's inputs (the VCF's is [`VCF`]).
pub const BAM: &str = "bam";
/// The role of the final VCF.
pub const VCF: &str = "vcf";

/// What `report.html` shows of the run before QC.
#[derive(Debug, Clone, PartialEq)]
pub enum QcRun {
    /// The run so far: a local run's manifest (the QC task is added when the report is
    /// written).
    Given(Box<RunManifest>),
    /// A Batch execution's: the step manifests its jobs published under `prefix` (the
    /// split, align or chunk, merge, call per shard and gather jobs of the plan of `contigs`).
    StepManifests {
        /// The execution's run prefix.
        prefix: ObjectUri,
        /// The execution's id, the report's run id.
        run_id: String,
        /// The run's contigs (`None`: every contig of the reference).
        contigs: Option<Vec<String>>,
        /// The largest calling shard in bases; `None`: one shard per contig.
        shard_bases: Option<NonZeroU64>,
        /// The alignment chunks, when aligned in chunks.
        chunks: Option<usize>,
    },
    /// A cohort execution's on AWS Batch: the step manifests its jobs published under
    /// `run_prefix` (the joint calls and gather) and each sample's directory (lanes, merge,
    /// sample VCF, QC: [`crate::sample_dir`]). A sample's QC reads its own and the joint
    /// ones; the cohort's report reads every sample's.
    Cohort {
        /// The execution's run prefix.
        run_prefix: ObjectUri,
        /// The execution's id, the report's run id.
        run_id: String,
        /// Each sample, in sheet order, with its number of lanes.
        samples: Vec<(SampleId, usize)>,
        /// The run's contigs (`None`: every contig of the reference).
        contigs: Option<Vec<String>>,
        /// The largest calling shard in bases; `None`: one shard per contig.
        shard_bases: Option<NonZeroU64>,
    },
}

impl QcRun {
    /// The run so far, read from the step manifests of a Batch execution: `of` is the
    /// sample whose QC reads it (`None`: the cohort's report, every sample). A missing
    /// manifest is left out, with a warning. `None` for [`QcRun::Given`].
    ///
    /// # Errors
    /// [`Error::Input`] when a contig is not in the reference; a storage error when a
    /// manifest cannot be read.
    pub(crate) fn read(
        &self,
        of: Option<&SampleId>,
        reference: &PreparedReference,
        context: &StepContext,
    ) -> Result<Option<RunManifest>, Error> {
        let (run_id, output_prefix, contigs, shard_bases) = match self {
            QcRun::Given(_) => return Ok(None),
            QcRun::StepManifests {
                prefix,
                run_id,
                contigs,
                shard_bases,
                ..
            } => (run_id, prefix.clone(), contigs, shard_bases),
            QcRun::Cohort {
                run_prefix,
                run_id,
                contigs,
                shard_bases,
                ..
            } => {
                let prefix = match of {
                    Some(sample) => crate::sample_dir(run_prefix, sample),
                    None => run_prefix.clone(),
                };
                (run_id, prefix, contigs, shard_bases)
            }
        };
        let plan = shard_plan(
            contig_plan(&reference.contigs, contigs.as_deref(), &reference.fai)?,
            *shard_bases,
        );
        let shards: Vec<usize> = plan.shards().iter().map(|shard| shard.index).collect();
        let uris = match (self, of) {
            (QcRun::StepManifests { prefix, chunks, .. }, Some(sample)) => {
                let mut names = Vec::new();
                match chunks {
                    Some(chunks) => {
                        names.push(step_manifest_name(sample, StepId::Split, None));
                        names.extend(
                            (0..*chunks).map(|chunk| {
                                step_manifest_name(sample, StepId::Align, Some(chunk))
                            }),
                        );
                        names.push(step_manifest_name(sample, StepId::Merge, None));
                    }
                    None => names.push(step_manifest_name(sample, StepId::Align, None)),
                }
                names.extend(
                    shards
                        .iter()
                        .map(|shard| step_manifest_name(sample, StepId::Call, Some(*shard))),
                );
                names.push(step_manifest_name(sample, StepId::Gather, None));
                names.into_iter().map(|name| prefix.join(&name)).collect()
            }
            (
                QcRun::Cohort {
                    run_prefix,
                    samples,
                    ..
                },
                _,
            ) => cohort_step_manifests(&context.engine.stores, run_prefix, samples, &shards, of)?,
            _ => Vec::new(),
        };
        let mut run = RunManifest {
            run_id: run_id.clone(),
            sample: of.map_or(crate::COHORT_STEM, SampleId::as_str).to_owned(),
            output_prefix: output_prefix.to_string(),
            inputs: crate::ManifestInputs {
                contigs: plan.contigs().into_iter().map(|c| c.name).collect(),
                ..crate::ManifestInputs::default()
            },
            resources: context.resources(),
            tools: crate::ToolRecord::list(context.toolset(), &context.engine.versions),
            ..RunManifest::default()
        };
        let mut manifests = Vec::new();
        for uri in uris {
            match read_json::<crate::StepManifest>(&context.engine.stores, &uri)? {
                Some(manifest) => {
                    run.tasks.push(manifest.task.clone());
                    manifests.push(manifest);
                }
                None => tracing::warn!(%uri, "no step manifest: the report leaves the step out"),
            }
        }
        if let Some(first) = run.tasks.first() {
            run.started_at.clone_from(&first.started_at);
        }
        run.cost = Some(summed_cost(&manifests, context.engine.prices));
        Ok(Some(run))
    }
}

/// The step manifests of a cohort execution in the order its tasks run: for `of`, its split
/// lanes' splits, its chunks' aligns and merge, the joint calls (`shards`) and gather, its
/// sample VCF; for the whole cohort (`of` `None`), every sample's splits, aligns and merge, the
/// joint calls and gather, then each sample's sample VCF and QC. A sample's chunks are one per
/// lane, and those whose manifests its directory holds (a lane split on AWS: docs/cohorts.md);
/// its splits, those its directory holds.
///
/// # Errors
/// [`Error::Usage`] when `of` is not one of `samples`; a storage error when a sample's
/// directory cannot be listed.
fn cohort_step_manifests(
    stores: &biojob_storage::Stores,
    run_prefix: &ObjectUri,
    samples: &[(SampleId, usize)],
    shards: &[usize],
    of: Option<&SampleId>,
) -> Result<Vec<ObjectUri>, Error> {
    let chosen: Vec<&(SampleId, usize)> = match of {
        Some(sample) => {
            vec![
                samples
                    .iter()
                    .find(|(s, _)| s == sample)
                    .ok_or_else(|| Error::Usage {
                        message: format!("sample {sample} is not one of the cohort's"),
                        remedy: None,
                    })?,
            ]
        }
        None => samples.iter().collect(),
    };
    let stem = crate::cohort_stem()?;
    let in_sample = |sample: &SampleId, step: StepId, shard: Option<usize>| {
        crate::sample_dir(run_prefix, sample).join(&step_manifest_name(sample, step, shard))
    };
    let mut uris = Vec::new();
    for (sample, lanes) in &chosen {
        let dir = crate::sample_dir(run_prefix, sample);
        let listed = stores.for_uri(&dir)?.list(&dir)?;
        let numbered = |step: StepId| -> std::collections::BTreeSet<usize> {
            let prefix = format!("{sample}.{step}.");
            listed
                .iter()
                .filter_map(|name| name.strip_prefix(&prefix)?.strip_suffix(".manifest.json"))
                .filter(|number| number.len() == 4)
                .filter_map(|number| number.parse().ok())
                .collect()
        };
        let mut chunks = numbered(StepId::Align);
        chunks.extend(0..*lanes);
        uris.extend(
            numbered(StepId::Split)
                .into_iter()
                .map(|first| in_sample(sample, StepId::Split, Some(first))),
        );
        uris.extend(
            chunks
                .into_iter()
                .map(|chunk| in_sample(sample, StepId::Align, Some(chunk))),
        );
        uris.push(in_sample(sample, StepId::Merge, None));
    }
    uris.extend(
        shards
            .iter()
            .map(|shard| run_prefix.join(&step_manifest_name(&stem, StepId::Call, Some(*shard)))),
    );
    uris.push(run_prefix.join(&step_manifest_name(&stem, StepId::Gather, None)));
    for (sample, _) in &chosen {
        uris.push(in_sample(sample, StepId::SampleVcf, None));
        if of.is_none() {
            uris.push(in_sample(sample, StepId::Qc, None));
        }
    }
    Ok(uris)
}

/// The part of QC that reads the BAM alone — `samtools flagstat`, `samtools stats` and the
/// native BAM pass — done before the VCF exists: a local run does it beside calling
/// ([`QcStep::bam_part`]), and the QC task then does only the VCF's part.
#[derive(Debug)]
pub struct BamQc {
    /// The BAM it read.
    bam: Utf8PathBuf,
    /// `samtools flagstat`'s report and `samtools stats`'s, as written (under `.partial`
    /// names in the work directory).
    reports: [Utf8PathBuf; 2],
    /// The native pass.
    stats: BamStats,
    /// The two tools' reports.
    commands: Vec<StageReport>,
}

/// The QC step of one sample, with what its report shows of the run so far.
#[derive(Debug, Clone)]
pub struct QcStep {
    /// The sample.
    pub sample: SampleId,
    /// The run before QC.
    pub run: QcRun,
    /// Whether the sample is a cohort's (its task is named after it).
    pub in_cohort: bool,
    /// [`QcRun::StepManifests`] read, once the reference is staged.
    read: OnceLock<RunManifest>,
    /// The BAM's part, when done beforehand ([`QcStep::with_bam_part`]); taken by `execute`.
    bam_part: Arc<Mutex<Option<BamQc>>>,
}

impl QcStep {
    /// The QC step of `sample` for `run`.
    pub fn new(sample: SampleId, run: QcRun) -> Self {
        let read = OnceLock::new();
        if let QcRun::Given(manifest) = &run {
            let _ = read.set((**manifest).clone());
        }
        QcStep {
            sample,
            run,
            in_cohort: false,
            read,
            bam_part: Arc::default(),
        }
    }

    /// This step with the BAM's part done beforehand: `execute` then runs only the VCF's part
    /// (when `part` read the BAM the step is given; else it does the whole).
    pub fn with_bam_part(self, part: BamQc) -> Self {
        if let Ok(mut slot) = self.bam_part.lock() {
            *slot = Some(part);
        }
        self
    }

    /// Does the BAM's part of QC of `bam` (`samtools flagstat`, `samtools stats -r`, the
    /// native pass, at once) in `work_dir`, as the plan made with `bam` and `reference` says,
    /// before the VCF exists. The result goes to [`QcStep::with_bam_part`].
    ///
    /// # Errors
    /// [`Error::Process`] when a tool fails; [`Error::Verification`] when the BAM breaks a
    /// rule.
    pub fn bam_part(
        &self,
        bam: &Utf8Path,
        reference: &PreparedReference,
        work_dir: &Utf8Path,
        context: &StepContext,
    ) -> Result<BamQc, Error> {
        let inputs = BTreeMap::from([
            (BAM.to_owned(), bam.to_owned()),
            (REFERENCE.to_owned(), reference.fasta.clone()),
        ]);
        let plan = self.plan(&PlanContext::local(
            context.toolset(),
            context.resources(),
            work_dir,
            &inputs,
        ));
        let report = |index: usize| {
            plan.outputs
                .get(index)
                .map(|output| partial(&output.path))
                .ok_or_else(|| plan_shape("qc", "five outputs"))
        };
        let reports = [report(0)?, report(1)?];
        let threads = context.resources().threads.max(1);
        let mut pipelines = plan.pipelines.into_iter();
        let (native, tools) = std::thread::scope(|scope| {
            let native = scope.spawn(|| read_bam_stats(bam, threads.saturating_sub(1).max(1)));
            let tools = (|| {
                let mut commands = Vec::new();
                for _ in 0..2 {
                    let stages = pipelines
                        .next()
                        .ok_or_else(|| plan_shape("qc", "the BAM's two commands"))?;
                    let report = context
                        .supervisor
                        .run_pipeline(stages.into_iter().map(|c| c.command).collect())?;
                    commands.extend(report.stages);
                }
                Ok::<_, Error>(commands)
            })();
            let native = native
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (native, tools)
        });
        let result = tools.and_then(|commands| {
            let stats = native.map_err(|error| format_failure(&error, bam))?;
            Ok(BamQc {
                bam: bam.to_owned(),
                reports: reports.clone(),
                stats,
                commands,
            })
        });
        if result.is_err() {
            for report in &reports {
                let _ = std::fs::remove_file(report);
            }
        }
        result
    }

    fn take_bam_part(&self, bam: &Utf8Path) -> Option<BamQc> {
        let part = self.bam_part.lock().ok()?.take()?;
        (part.bam == bam).then_some(part)
    }

    fn files(&self, context: &PlanContext<'_>) -> [Utf8PathBuf; 5] {
        let names = qc_file_names(&self.sample);
        [
            context.work_file(&names.flagstat),
            context.work_file(&names.samtools_stats),
            context.work_file(&names.bcftools_stats),
            context.work_file("qc.json"),
            context.work_file("report.html"),
        ]
    }
}

impl StepDefinition for QcStep {
    fn step(&self) -> StepId {
        StepId::Qc
    }

    fn cohort_member(&self) -> Option<crate::CohortMember> {
        self.in_cohort
            .then(|| crate::CohortMember::sample(&self.sample))
    }

    fn space_need(&self, staged: u64, _inputs: &[(String, u64)]) -> SpaceNeed {
        SpaceNeed::new("qc")
            .with("staged inputs", staged)
            .with("reports", 16 << 20)
    }

    /// `samtools flagstat`, `samtools stats -r REFERENCE` and `bcftools stats -s - -F
    /// REFERENCE`, each into a file that MultiQC finds ([`qc_file_names`]); biojob's own pass
    /// over the BAM and the VCF gives `qc.json`, and the run's tasks `report.html`.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let samtools = &context.toolset.samtools;
        let bcftools = &context.toolset.bcftools;
        let [flagstat, samtools_report, bcftools_report, qc_json, report] = self.files(context);
        let fasta = context.input(REFERENCE);
        let bam = context.input(BAM);
        StepPlan::new(StepId::Qc, context.resources)
            .note("biojob reads the BAM and the VCF once for qc.json, beside the tools")
            .command(
                Tool::Samtools,
                samtools_flagstat(samtools, &bam, &partial(&flagstat), 0),
            )
            .command(
                Tool::Samtools,
                samtools_stats(samtools, &bam, &fasta, &partial(&samtools_report), 0),
            )
            .command(
                Tool::Bcftools,
                bcftools_stats(
                    bcftools,
                    &context.input(VCF),
                    &fasta,
                    &partial(&bcftools_report),
                ),
            )
            .output(flagstat)
            .output(samtools_report)
            .output(bcftools_report)
            .output(qc_json)
            .output(report)
    }

    fn cacheable(&self) -> bool {
        false
    }

    fn with_reference(
        &self,
        reference: &PreparedReference,
        context: &StepContext,
    ) -> Result<Vec<JobInput>, Error> {
        if let Some(run) = self.run.read(Some(&self.sample), reference, context)? {
            let _ = self.read.set(run);
        }
        Ok(Vec::new())
    }

    /// Runs the tools and, at the same time on its own thread, one native pass over the BAM
    /// ([`read_bam_stats`]: flagstat counts, depth and breadth per contig, coordinate order)
    /// and one over the VCF ([`scan_vcf`]); writes `qc.json` ([`QcSummary`]) and
    /// `report.html` ([`render_report`]). Every file is written as `*.partial` and renamed
    /// only when all are written: the outputs appear together or not at all.
    ///
    /// # Errors
    /// [`Error::Process`] when a tool fails; [`Error::Verification`] when the BAM or VCF breaks
    /// a rule or a report lacks its MultiQC marker; [`Error::Io`] on write failures.
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        let (started, clock) = (std::time::SystemTime::now(), std::time::Instant::now());
        let reference = inputs.reference()?;
        let bam = inputs.path(BAM)?;
        let vcf = inputs.path(VCF)?;
        let mut running = RunningPlan::new(plan, 5)?;
        let flagstat_partial = running.partial(0).to_owned();
        let samtools_partial = running.partial(1).to_owned();
        let bcftools_partial = running.partial(2).to_owned();
        let qc_json_partial = running.partial(3).to_owned();
        let report_partial = running.partial(4).to_owned();
        let threads = context.resources().threads.max(1);
        let early = self.take_bam_part(bam);
        info!(%bam, %vcf, bam_part_done = early.is_some(), "QC");
        let (early_stats, early_run) = match early {
            Some(part) => (Some(part.stats), Some((part.reports, part.commands))),
            None => (None, None),
        };
        let (native, tools) = std::thread::scope(|scope| {
            let native = scope.spawn(|| {
                let bam = match early_stats {
                    Some(stats) => stats,
                    None => read_bam_stats(bam, threads.saturating_sub(1).max(1))?,
                };
                let vcf = scan_vcf(
                    vcf,
                    &VcfRules {
                        contigs: &reference.contigs,
                        samples: &[self.sample.as_str()],
                        only_regions: None,
                    },
                )?;
                Ok::<_, biojob_formats::FormatError>((bam, vcf))
            });
            let tools = (|| {
                match early_run {
                    Some((reports, commands)) => {
                        // The BAM's two commands ran beforehand: their reports take the plan's
                        // names.
                        for (index, report) in reports.iter().enumerate() {
                            running.take()?;
                            let planned = running.partial(index).to_owned();
                            if *report != planned {
                                std::fs::rename(report, &planned)
                                    .map_err(Error::io("renaming to", &planned))?;
                            }
                        }
                        running.commands.extend(commands);
                    }
                    None => {
                        running.run_next(context)?;
                        running.run_next(context)?;
                    }
                }
                running.run_next(context)
            })();
            let native = native
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (native, tools)
        });
        tools?;
        let (bam_stats, vcf_scan) = native.map_err(|error| format_failure(&error, bam))?;
        for (report, marker) in [
            (
                &flagstat_partial,
                "in total (QC-passed reads + QC-failed reads)",
            ),
            (
                &samtools_partial,
                "This file was produced by samtools stats",
            ),
            (
                &bcftools_partial,
                "This file was produced by bcftools stats",
            ),
        ] {
            verify_report(report, marker)?;
        }
        let summary = QcSummary::new(
            &self.sample,
            &bam_stats,
            &vcf_scan,
            qc_file_names(&self.sample),
        );
        let json = serde_json::to_vec_pretty(&summary)
            .map_err(|e| Error::io("serialising", running.output(3))(std::io::Error::other(e)))?;
        std::fs::write(&qc_json_partial, json).map_err(Error::io("writing", &qc_json_partial))?;
        let mut snapshot = self.read.get().cloned().unwrap_or_default();
        let task = TaskRecord {
            bytes_staged_in: inputs.bytes_staged_in,
            ..TaskRecord::new(
                StepId::Qc,
                None,
                started,
                clock.elapsed(),
                &running.commands,
            )
        };
        let prices = context.engine.prices;
        snapshot.cost = Some(match &self.run {
            // A local run holds its machine: the QC task is one more of its tasks.
            QcRun::Given(_) => {
                snapshot.tasks.push(task);
                CostSummary::for_run(&snapshot.tasks, snapshot.resources, prices)
            }
            // An execution's jobs each held their own resources: their manifests' figures,
            // and this job's.
            QcRun::StepManifests { .. } | QcRun::Cohort { .. } => {
                let mut cost = snapshot
                    .cost
                    .take()
                    .unwrap_or_else(|| CostSummary::new(prices));
                cost.merge(&CostSummary::for_job(&task, context.resources(), prices));
                snapshot.tasks.push(task);
                cost
            }
        });
        std::fs::write(&report_partial, render_report(&snapshot, &summary))
            .map_err(Error::io("writing", &report_partial))?;
        info!(
            records = summary.reads.records,
            mapped_percent = summary.reads.mapped_percent,
            variants = summary.variants.records,
            "QC done"
        );
        running.finish(crate::RecordCounts::default())
    }
}

/// A native pass's failure as a verification error of the file it names (else `bam`).
fn format_failure(error: &biojob_formats::FormatError, bam: &Utf8Path) -> Error {
    let path = match error {
        biojob_formats::FormatError::Io { path, .. }
        | biojob_formats::FormatError::Parse { path, .. }
        | biojob_formats::FormatError::Invalid { path, .. }
        | biojob_formats::FormatError::NotBgzf { path, .. }
        | biojob_formats::FormatError::MissingBgzfEof { path } => path.clone(),
        _ => bam.to_owned(),
    };
    Error::Verification {
        path,
        detail: reason_of(error),
    }
}

/// The cost figures the step manifests of an execution carry, summed by step; a manifest
/// written without them (an older biojob) is priced at `prices` from its task and resources.
fn summed_cost(manifests: &[StepManifest], prices: Prices) -> CostSummary {
    let mut cost = CostSummary::new(prices);
    for manifest in manifests {
        match &manifest.cost {
            Some(carried) => cost.merge(carried),
            None => cost.merge(&CostSummary::for_job(
                &manifest.task,
                manifest.resources,
                prices,
            )),
        }
    }
    cost
}

/// A format error's reason without its path (the verification error carries the path).
fn reason_of(error: &biojob_formats::FormatError) -> String {
    match error {
        biojob_formats::FormatError::Invalid { reason, .. } => reason.clone(),
        biojob_formats::FormatError::MissingBgzfEof { .. } => {
            "missing BGZF EOF block (truncated?)".to_owned()
        }
        other => crate::error_chain(other),
    }
}

/// Checks that a tool's report holds the line MultiQC finds it by.
pub(crate) fn verify_report(path: &Utf8Path, marker: &str) -> Result<(), Error> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
    if text.contains(marker) {
        Ok(())
    } else {
        Err(Error::Verification {
            path: path.to_owned(),
            detail: format!(
                "the report lacks the line MultiQC finds it by ({marker:?}); {} bytes",
                text.len()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_without_its_multiqc_line_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(dir.path().join("x.flagstat.txt")).unwrap();
        std::fs::write(&path, "samtools: unrecognised option\n").unwrap();
        let error = verify_report(&path, "in total (QC-passed reads + QC-failed reads)")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "{path}: the report lacks the line MultiQC finds it by (\"in total (QC-passed \
                 reads + QC-failed reads)\"); 30 bytes"
            )
        );
        std::fs::write(
            &path,
            "27726 + 0 in total (QC-passed reads + QC-failed reads)\n",
        )
        .unwrap();
        verify_report(&path, "in total (QC-passed reads + QC-failed reads)").unwrap();
    }

    #[test]
    fn file_names_start_with_the_sample() {
        let sample = SampleId::new("NA12878").unwrap();
        assert_eq!(
            qc_file_names(&sample),
            QcFiles {
                flagstat: "NA12878.flagstat.txt".into(),
                samtools_stats: "NA12878.samtools_stats.txt".into(),
                bcftools_stats: "NA12878.bcftools_stats.txt".into(),
            }
        );
    }
}
