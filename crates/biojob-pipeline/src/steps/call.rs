//! The `call` step: `bcftools mpileup | bcftools call` for one shard, then `bcftools index`.

use std::num::NonZeroU64;
use std::sync::OnceLock;

use biojob_core::{BcftoolsRegions, Contig, Region, SampleId, Shard, StepId};
use biojob_formats::{FormatError, VcfRules, check_bai_matches_bam, check_bam_header};
use biojob_process::StageReport;
use biojob_scratch::SpaceNeed;
use biojob_tools::{
    BcftoolsCall, BcftoolsCallPiped, BcftoolsMpileup, BcftoolsViewTargets, Tool,
    bcftools_index_tbi, label_part, samtools_index,
};
use camino::{Utf8Path, Utf8PathBuf};
use tracing::warn;

use crate::job::REFERENCE;
use crate::plan::partial;
use crate::steps::{RunningPlan, plan_shape, verify_bgzf_output, verify_vcf_output};
use crate::{
    Error, Executed, JobInput, PlanContext, PlannedCommand, PreparedReference, StagedInputs,
    StepContext, StepDefinition, StepPlan, TaskShard, call_space_need, contig_plan, shard_plan,
};

/// Bases before a region's start that the pileup of a part of a contig begins at (see [`call`]).
///
/// bcftools 1.16's indel annotations (`BQBZ`) depend on pileup columns before the indel, so an
/// indel near a region's start called from that start may differ from the same indel called
/// with its contig whole. Measured on the test data (NA12878, chr20, 120 boundaries next to the
/// first 40 indels): a pileup started 1 base before the region changed an indel's `BQBZ` at 39
/// boundaries, 200 bases before at 3, 1,000 bases before at none.
pub const REGION_PILEUP_PAD_BASES: u64 = 1_000;

/// `region` widened to start [`REGION_PILEUP_PAD_BASES`] earlier (not before base 1).
fn padded(region: &Region) -> Region {
    Region {
        start: region.start.saturating_sub(REGION_PILEUP_PAD_BASES).max(1),
        ..region.clone()
    }
}

/// The role of the BAM in a call job's inputs.
pub const BAM: &str = "bam";
/// The role of the BAM's index.
pub const BAI: &str = "bai";

/// Which shard a call job calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardRequest {
    /// A shard of a plan already made (a local run's).
    Shard(Shard),
    /// One contig: its by-contig shard, numbered by the contig's line in the `.fai`.
    Contig(String),
    /// Shard `index` of the plan of `contigs` (`None`: every contig of the reference) cut into
    /// shards of at most `shard_bases` bases, the plan `biojob plan-shards` prints.
    OfPlan {
        /// The shard's index in the plan.
        index: usize,
        /// The run's contigs.
        contigs: Option<Vec<String>>,
        /// The largest shard, in bases.
        shard_bases: NonZeroU64,
    },
}

/// The call step of one shard of one sample.
#[derive(Debug, Clone)]
pub struct CallStep {
    /// The sample.
    pub sample: SampleId,
    /// The shard requested.
    pub request: ShardRequest,
    /// `bcftools mpileup -q`, when set.
    pub min_mapping_quality: Option<u32>,
    /// The shard, once the reference's contigs are known.
    shard: OnceLock<Shard>,
}

impl CallStep {
    /// The call step of `request`; a [`ShardRequest::Shard`] is the shard at once, the others
    /// once the reference is staged ([`StepDefinition::with_reference`]).
    pub fn new(sample: SampleId, request: ShardRequest, min_mapping_quality: Option<u32>) -> Self {
        let shard = OnceLock::new();
        if let ShardRequest::Shard(known) = &request {
            let _ = shard.set(known.clone());
        }
        CallStep {
            sample,
            request,
            min_mapping_quality,
            shard,
        }
    }

    /// The shard, once known.
    pub fn resolved(&self) -> Option<&Shard> {
        self.shard.get()
    }

    /// The shard `self.request` names among the reference's `contigs` (`.fai` order).
    ///
    /// # Errors
    /// [`Error::Input`] when a contig is not in the reference; [`Error::Usage`] when the shard
    /// index is beyond the plan.
    fn resolve(&self, contigs: &[Contig], fai: &Utf8Path) -> Result<Shard, Error> {
        match &self.request {
            ShardRequest::Shard(shard) => Ok(shard.clone()),
            ShardRequest::Contig(contig) => {
                let plan = contig_plan(contigs, Some(std::slice::from_ref(contig)), fai)?;
                plan.shards().first().cloned().ok_or_else(|| Error::Usage {
                    message: format!("contig {contig} gives no shard"),
                    remedy: None,
                })
            }
            ShardRequest::OfPlan {
                index,
                contigs: requested,
                shard_bases,
            } => {
                let plan = shard_plan(
                    contig_plan(contigs, requested.as_deref(), fai)?,
                    Some(*shard_bases),
                );
                let count = plan.shards().len();
                plan.shards()
                    .get(*index)
                    .cloned()
                    .ok_or_else(|| Error::Usage {
                        message: format!(
                            "shard {index} is not in the plan: {count} shards of at most {shard_bases} bases"
                        ),
                        remedy: Some(format!(
                            "give a shard from 0 to {}",
                            count.saturating_sub(1)
                        )),
                    })
            }
        }
    }
}

impl StepDefinition for CallStep {
    fn step(&self) -> StepId {
        StepId::Call
    }

    fn shard(&self) -> Option<TaskShard> {
        self.resolved()
            .map(|shard| TaskShard::region(shard.index, shard.region()))
    }

    fn space_need(&self, staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        let bam_bytes = inputs.first().map_or(0, |(_, size)| *size);
        let step = match self.resolved() {
            Some(shard) => format!("call {}", shard.region()),
            None => "call".to_owned(),
        };
        call_space_need(&step, staged, bam_bytes)
    }

    fn with_reference(
        &self,
        reference: &PreparedReference,
        _context: &StepContext,
    ) -> Result<Vec<JobInput>, Error> {
        if self.shard.get().is_none() {
            let shard = self.resolve(&reference.contigs, &reference.fai)?;
            let _ = self.shard.set(shard);
        }
        Ok(Vec::new())
    }

    /// `bcftools mpileup -f REFERENCE -r REGION -a FORMAT/AD,FORMAT/DP [-q Q] BAM |
    /// bcftools call -m -v -Oz -o VCF.partial -`, then `bcftools index -t`. A shard that
    /// holds part of a contig is piled up from [`REGION_PILEUP_PAD_BASES`] before each of its
    /// regions, and `bcftools call -m -v -Ou | bcftools view -t REGIONS -Oz` keeps the records
    /// whose `POS` is in the shard's own regions: a record belongs to the shard that holds its
    /// `POS`, so the records of all shards are those of calling each contig whole.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let Some(shard) = self.resolved() else {
            return StepPlan::new(StepId::Call, context.resources)
                .note("the shard is settled once the reference's contigs are known");
        };
        let bcftools = &context.toolset.bcftools;
        let region = shard.region().to_owned();
        let whole = shard.is_whole_contigs();
        let file = |ext: &str| {
            context.work_file(&context.step_file_name(
                &self.sample,
                StepId::Call,
                Some(shard.index),
                ext,
            ))
        };
        let vcf = file("vcf.gz");
        let tbi = Utf8PathBuf::from(format!("{vcf}.tbi"));
        let targets = shard.bcftools_regions();
        let pileup_regions = if whole {
            targets.clone()
        } else {
            let widened: Vec<Region> = shard.regions.iter().map(padded).collect();
            BcftoolsRegions::new(&widened)
        };
        // A contig name holding ':' cannot be given inline: bcftools reads the regions (and
        // the targets) from files the plan writes.
        let mut files = Vec::new();
        let regions_file = file("regions.tsv");
        if let Some(contents) = pileup_regions.file_contents() {
            files.push((regions_file.clone(), contents.to_owned()));
        }
        let targets_file = file("targets.tsv");
        let mpileup = BcftoolsMpileup {
            fasta: context.input(REFERENCE),
            regions: pileup_regions,
            regions_file,
            bam: context.input(BAM),
            min_mapping_quality: self.min_mapping_quality,
        }
        .command(bcftools);
        let mut stages = vec![PlannedCommand::new(Tool::Bcftools, mpileup)];
        if whole {
            let caller = BcftoolsCall {
                region: region.clone(),
                output: partial(&vcf),
            }
            .command(bcftools);
            stages.push(PlannedCommand::new(Tool::Bcftools, caller));
        } else {
            let caller = BcftoolsCallPiped {
                region: region.clone(),
            }
            .command(bcftools);
            if let Some(contents) = targets.file_contents() {
                files.push((targets_file.clone(), contents.to_owned()));
            }
            let view = BcftoolsViewTargets {
                targets,
                targets_file,
                output: partial(&vcf),
            }
            .command(bcftools);
            stages.push(PlannedCommand::new(Tool::Bcftools, caller));
            stages.push(PlannedCommand::new(Tool::Bcftools, view));
        }
        let index = bcftools_index_tbi(bcftools, &partial(&vcf), &partial(&tbi))
            .with_label(format!("bcftools-index.{}", label_part(&region)));
        let mut plan = StepPlan::new(StepId::Call, context.resources);
        for (path, contents) in files {
            plan = plan.file(path, contents);
        }
        plan.pipeline(stages)
            .command(Tool::Bcftools, index)
            .output(vcf)
            .output(tbi)
    }

    /// Runs the plan. Before any tool runs, the BAM (which may come from elsewhere: the `call`
    /// subcommand's `--bam`) gets the quickcheck-equivalent and the header rules of
    /// [`biojob_formats::check_bam_header`]: BGZF EOF block, header parses, `SO:coordinate`,
    /// every `@RG` with `SM` = the sample, `@SQ` equal to the `.fai`. Its `.bai` must belong to
    /// it ([`check_bai_matches_bam`]); one that does not (another BAM's, an earlier version's)
    /// is not used: the BAM is indexed again in scratch ([`reindex_bam`]) and the plan made
    /// again with it. The VCF is checked before
    /// it is indexed and renamed ([`biojob_formats::scan_vcf`]): BGZF EOF block, header parses,
    /// `##contig` lines equal to the `.fai`, one sample column named after the sample, records
    /// sorted, every record on the shard's contig.
    ///
    /// # Errors
    /// [`Error::Format`] (input class) when the BAM fails its checks; [`Error::Process`] when a
    /// tool fails ([`Error::ScratchFull`] around it when scratch is full);
    /// [`Error::Verification`] when the VCF fails its checks.
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        let reference = inputs.reference()?;
        let shard = self
            .resolved()
            .ok_or_else(|| plan_shape("call", "a shard"))?;
        let bam = inputs.path(BAM)?;
        check_bam_header(bam, &reference.contigs, self.sample.as_str())?;
        let (plan, reindexed) = match check_bai_matches_bam(bam, inputs.path(BAI)?) {
            Ok(()) => (plan, None),
            Err(error @ FormatError::Io { .. }) => return Err(error.into()),
            Err(mismatch) => {
                warn!(bam = %bam, problem = %mismatch, "the BAM index does not belong to the BAM; indexing the BAM again in scratch");
                // One directory per shard: a local run's shards share the work directory.
                let dir = inputs
                    .work_dir
                    .join(format!("reindexed.{:04}", shard.index));
                let (link, report) = reindex_bam(bam, &dir, context)?;
                let mut paths = inputs.paths.clone();
                paths.insert(BAM.to_owned(), link);
                let replanned = self.plan(&PlanContext::local(
                    &context.engine.toolset,
                    plan.resources,
                    &inputs.work_dir,
                    &paths,
                ));
                (replanned, Some(report))
            }
        };
        let mut running = RunningPlan::new(plan, 2)?;
        running.commands.extend(reindexed);
        let result = (|| {
            running.run_next(context)?;
            let vcf_partial = running.partial(0).to_owned();
            verify_bgzf_output(&vcf_partial)?;
            verify_vcf_output(
                &vcf_partial,
                &VcfRules {
                    contigs: &reference.contigs,
                    sample: self.sample.as_str(),
                    only_contig: shard.single_contig().map(|c| c.name.as_str()),
                },
            )?;
            running.run_next(context)?;
            running.finish(None)
        })();
        // While the partial outputs are still there: they hold the space that may have run out.
        result.map_err(|error| context.explain_failure(error))
    }
}

/// Indexes `bam` again in `dir`: a link to it at `<dir>/<name>` with a fresh `<name>.bai`
/// beside it (the input's own files are left as they are). Returns the link, which the tools
/// read instead of `bam`, and the report of `samtools index`.
///
/// # Errors
/// [`Error::Io`] when the link cannot be made; [`Error::Process`] when samtools fails.
fn reindex_bam(
    bam: &Utf8Path,
    dir: &Utf8Path,
    context: &StepContext,
) -> Result<(Utf8PathBuf, StageReport), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let link = dir.join(bam.file_name().unwrap_or("input.bam"));
    let target = bam
        .canonicalize_utf8()
        .map_err(Error::input_io("resolving", bam))?;
    std::os::unix::fs::symlink(&target, &link).map_err(Error::io("linking", &link))?;
    let bai = Utf8PathBuf::from(format!("{link}.bai"));
    let threads = context.resources().threads.saturating_sub(1);
    let report = context.supervisor.run(samtools_index(
        &context.toolset().samtools,
        &link,
        &bai,
        threads,
    ))?;
    Ok((link, report))
}
