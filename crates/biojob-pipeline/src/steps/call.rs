//! The `call` step: `bcftools mpileup | bcftools call` for one shard, then `bcftools index`.

use std::num::NonZeroU64;
use std::sync::{Mutex, OnceLock};

use biojob_core::{BcftoolsRegions, Contig, Region, SampleId, Shard, StepId};
use biojob_formats::{BgzfTail, FormatError, VcfRules, check_bai_matches_bam, check_bam_header};
use biojob_process::{StageReport, StdinSource};
use biojob_scratch::SpaceNeed;
use biojob_tools::{
    BcftoolsCall, BcftoolsCallPiped, BcftoolsMpileup, BcftoolsViewTargets, Tool,
    bcftools_index_tbi, label_part, samtools_index,
};
use camino::{Utf8Path, Utf8PathBuf};
use tracing::warn;

use crate::job::REFERENCE;
use crate::plan::partial;
use crate::steps::{RunningPlan, plan_shape, relay_bgzf, verify_vcf_output};
use crate::{
    Error, Executed, JobInput, PlanContext, PlannedCommand, PreparedReference, ProgressUnit,
    RecordCounts, StagedInputs, StepContext, StepDefinition, StepPlan, TaskShard, call_space_need,
    contig_plan, shard_plan,
};

/// Runs the plan's first pipeline, `bcftools mpileup -Oz0 | bcftools call …`, with biojob
/// between the two: it relays the pileup into the caller ([`relay_bgzf`]) and checks that the
/// pileup ended with its BGZF EOF block, so a pileup cut short while its tool exits 0 fails
/// the step instead of giving fewer records. Pipefail semantics across the two: a failed
/// caller is the cause when the pileup then died of `SIGPIPE`.
///
/// # Errors
/// [`Error::Process`] when a tool fails; [`Error::Verification`] when the pileup was cut
/// short; [`Error::Io`] when the relay fails while both tools succeeded.
fn run_pileup(
    running: &mut RunningPlan,
    context: &StepContext,
    vcf: &Utf8Path,
) -> Result<(), Error> {
    let mut stages = running.take()?;
    if stages.len() < 2 {
        return Err(plan_shape("call", "mpileup piped into call"));
    }
    let mut callers = stages.split_off(1);
    let Some(mpileup) = stages.pop() else {
        return Err(plan_shape("call", "mpileup"));
    };
    let label = mpileup.label().to_owned();
    let (from_pileup, pileup_out) =
        std::io::pipe().map_err(Error::io("creating a pipe for the pileup of", vcf))?;
    let (caller_in, to_caller) =
        std::io::pipe().map_err(Error::io("creating a pipe for the pileup of", vcf))?;
    let first = callers.remove(0).stdin(StdinSource::Pipe(caller_in));
    callers.insert(0, first);
    let mpileup = mpileup.stdout_pipe(pileup_out);
    let supervisor = &context.supervisor;
    let (pileup, relayed, called) = std::thread::scope(|scope| {
        let pileup = scope.spawn(|| supervisor.run_pipeline(vec![mpileup]));
        let relay = std::thread::Builder::new()
            .name("pileup-relay".into())
            .spawn_scoped(scope, move || relay_bgzf(from_pileup, to_caller));
        let called = supervisor.run_pipeline(callers);
        let relayed = match relay {
            Ok(relay) => relay.join(),
            Err(error) => Ok(Err(error)),
        };
        (pileup.join(), relayed, called)
    });
    let panicked = || Error::Usage {
        message: "a thread of the call step panicked".into(),
        remedy: None,
    };
    let (pileup, relayed) = (
        pileup.map_err(|_| panicked())?,
        relayed.map_err(|_| panicked())?,
    );
    let died_of_sigpipe = |error: &biojob_process::ProcessError| {
        error.report().is_some_and(|report| {
            report
                .stages
                .iter()
                .any(|stage| stage.status.signal() == Some(SIGPIPE))
        })
    };
    match (pileup, relayed, called) {
        (Err(pileup), _, Err(called)) if died_of_sigpipe(&pileup) => Err(Error::Process(called)),
        (Err(pileup), _, _) => Err(Error::Process(pileup)),
        // A pileup cut short is the cause, whatever the caller made of it.
        (Ok(_), Ok((bytes, false)), _) => Err(Error::Verification {
            path: vcf.to_owned(),
            detail: format!(
                "{label} exited 0, but its output ended after {bytes} bytes without the BGZF \
                 EOF block: the pileup was cut short"
            ),
        }),
        (Ok(_), _, Err(called)) => Err(Error::Process(called)),
        (Ok(_), Err(error), Ok(_)) => Err(
            Error::io("relaying the pileup into the caller of", vcf)(error),
        ),
        (Ok(pileup), Ok((_, true)), Ok(called)) => {
            running.commands.extend(pileup.stages);
            running.commands.extend(called.stages);
            Ok(())
        }
    }
}

/// `SIGPIPE`'s number on Linux.
const SIGPIPE: i32 = 13;

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

/// The regions `bcftools mpileup -r` reads for `shard`: its whole contigs as they are, else
/// each of its regions [`padded`]. The plan's `-r` and the records a call job stages of a
/// stored BAM ([`StepDefinition::bam_regions`]) both come from here.
pub fn pileup_regions(shard: &Shard) -> Vec<Region> {
    if shard.is_whole_contigs() {
        shard.regions.clone()
    } else {
        shard.regions.iter().map(padded).collect()
    }
}

/// The role of the BAM in a call job's inputs (of a cohort's BAMs: [`cohort_bam_role`]).
pub const BAM: &str = "bam";

/// The role of the BAM of the cohort's `position`-th sample in a joint call job's inputs:
/// `bam.0003` (its index: `bai.0003`).
pub fn cohort_bam_role(position: usize) -> String {
    format!("{BAM}.{position:04}")
}

/// The role of that BAM's index.
pub fn cohort_bai_role(position: usize) -> String {
    format!("{BAI}.{position:04}")
}
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

/// The call step of one shard of one sample, or of a cohort jointly: one `bcftools mpileup`
/// over every sample's BAM and one `bcftools call`, one column per sample.
#[derive(Debug, Clone)]
pub struct CallStep {
    /// The sample, or the cohort's file stem (`cohort`): the VCF's name starts with it.
    pub sample: SampleId,
    /// A joint call's samples, in the order of their BAMs (inputs [`cohort_bam_role`]) and of
    /// the VCF's columns; empty for one sample's call (input [`BAM`]).
    pub cohort: Vec<SampleId>,
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
            cohort: Vec::new(),
            request,
            min_mapping_quality,
            shard,
        }
    }

    /// The joint call of `samples` (one BAM each, in this order), its files named after
    /// `self.sample`.
    pub fn jointly(mut self, samples: Vec<SampleId>) -> Self {
        self.cohort = samples;
        self
    }

    /// The BAMs' roles and the samples they hold, in column order.
    pub fn bams(&self) -> Vec<(String, &SampleId)> {
        if self.cohort.is_empty() {
            vec![(BAM.to_owned(), &self.sample)]
        } else {
            self.cohort
                .iter()
                .enumerate()
                .map(|(position, sample)| (cohort_bam_role(position), sample))
                .collect()
        }
    }

    /// The role of the index of the BAM at `position` of [`CallStep::bams`].
    fn bai_role(&self, position: usize) -> String {
        if self.cohort.is_empty() {
            BAI.to_owned()
        } else {
            cohort_bai_role(position)
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

/// The bases of `regions` (in their order) up to `position` of `contig`: every region before
/// the one that holds it (else the last on `contig`), and that region up to `position`; 0 when
/// no region is on `contig`.
fn bases_before(regions: &[Region], contig: &str, position: u64) -> u64 {
    let on_contig = |region: &&Region| region.contig.name == contig;
    let Some(current) = regions
        .iter()
        .position(|region| on_contig(&region) && position <= region.end)
        .or_else(|| regions.iter().rposition(|region| on_contig(&region)))
    else {
        return 0;
    };
    let before: u64 = regions.iter().take(current).map(Region::bases).sum();
    let within = regions.get(current).map_or(0, |region| {
        position.clamp(region.start - 1, region.end) - (region.start - 1)
    });
    before + within
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
        let bam_bytes = inputs
            .iter()
            .filter(|(uri, _)| !uri.ends_with(".bai"))
            .map(|(_, size)| size)
            .sum();
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

    /// The shard's [`pileup_regions`]: a BAM from an object store is staged for these only.
    fn bam_regions(&self) -> Option<Vec<Region>> {
        self.resolved().map(pileup_regions)
    }

    /// `bcftools mpileup -Oz0 -f REFERENCE -r REGION -a FORMAT/AD,FORMAT/DP [-q Q] BAM |
    /// bcftools call -m -v -Oz -o VCF.partial -`, then `bcftools index -t`. A shard that
    /// holds part of a contig is piled up from [`REGION_PILEUP_PAD_BASES`] before each of its
    /// regions, and `bcftools call -m -v -Ou | bcftools view -t REGIONS -Oz` keeps the records
    /// whose `POS` is in the shard's own regions: a record belongs to the shard that holds its
    /// `POS`, so the records of all shards are those of calling each contig whole. biojob
    /// relays the pileup into the caller (see [`run_pileup`]).
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
        let pileup = if whole {
            targets.clone()
        } else {
            BcftoolsRegions::new(&pileup_regions(shard))
        };
        // A contig name holding ':' cannot be given inline: bcftools reads the regions (and
        // the targets) from files the plan writes.
        let mut files = Vec::new();
        let regions_file = file("regions.tsv");
        if let Some(contents) = pileup.file_contents() {
            files.push((regions_file.clone(), contents.to_owned()));
        }
        let targets_file = file("targets.tsv");
        let mpileup = BcftoolsMpileup {
            fasta: context.input(REFERENCE),
            regions: pileup,
            regions_file,
            bams: self
                .bams()
                .iter()
                .map(|(role, _)| context.input(role))
                .collect(),
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
        plan.note("biojob relays mpileup's output to bcftools call, checking that it ends with its BGZF EOF block")
            .pipeline(stages)
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
    /// sorted, every record's `POS` in the shard's regions (the shard's output covers exactly
    /// its regions); its records are counted for the gather's accounting.
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
        let bams = self.bams();
        for (role, sample) in &bams {
            check_bam_header(inputs.path(role)?, &reference.contigs, sample.as_str())?;
        }
        let samples: Vec<&str> = bams.iter().map(|(_, sample)| sample.as_str()).collect();
        // A BAM whose .bai belongs to another BAM is indexed again in scratch, and the plan
        // made again with it.
        let mut paths = inputs.paths.clone();
        let mut reindexed = Vec::new();
        for (position, (role, _)) in bams.iter().enumerate() {
            let bam = inputs.path(role)?;
            // A BAM staged for its regions has the index of its slice beside it, no input.
            let bai = match inputs.paths.get(&self.bai_role(position)) {
                Some(bai) => bai.clone(),
                None => Utf8PathBuf::from(format!("{bam}.bai")),
            };
            match check_bai_matches_bam(bam, &bai) {
                Ok(()) => {}
                Err(error @ FormatError::Io { .. }) => return Err(error.into()),
                Err(mismatch) => {
                    warn!(bam = %bam, problem = %mismatch, "the BAM index does not belong to the BAM; indexing the BAM again in scratch");
                    // One directory per shard and BAM: a local run's shards share the work
                    // directory.
                    let dir = inputs
                        .work_dir
                        .join(format!("reindexed.{:04}.{role}", shard.index));
                    let (link, report) = reindex_bam(bam, &dir, context)?;
                    paths.insert(role.clone(), link);
                    reindexed.push(report);
                }
            }
        }
        let plan = if reindexed.is_empty() {
            plan
        } else {
            self.plan(&PlanContext::local(
                &context.engine.toolset,
                plan.resources,
                &inputs.work_dir,
                &paths,
            ))
        };
        let mut running = RunningPlan::new(plan, 2)?;
        running.commands.extend(reindexed);
        // Progress: the shard's bases up to the last record in the VCF written so far.
        let tail = Mutex::new((BgzfTail::new(running.partial(0)), 0u64));
        let regions = shard.regions.clone();
        context.progress.start(
            ProgressUnit::Bases,
            shard.bases(),
            Box::new(move || {
                let Ok(mut tail) = tail.lock() else {
                    return (0, None);
                };
                let (reader, done) = &mut *tail;
                if let Some(last) = reader
                    .poll()
                    .iter()
                    .rev()
                    .find(|line| !line.starts_with('#'))
                {
                    let mut fields = last.split('\t');
                    if let (Some(contig), Some(Ok(position))) =
                        (fields.next(), fields.next().map(str::parse::<u64>))
                    {
                        *done = bases_before(&regions, contig, position);
                    }
                }
                (*done, None)
            }),
        );
        let result = (|| {
            let vcf_partial = running.partial(0).to_owned();
            run_pileup(&mut running, context, &vcf_partial)?;
            let scan = verify_vcf_output(
                &vcf_partial,
                &VcfRules {
                    contigs: &reference.contigs,
                    samples: &samples,
                    only_regions: Some(&shard.regions),
                },
            )?;
            running.run_next(context)?;
            running.finish(RecordCounts {
                vcf_records: Some(scan.counts.records),
                ..RecordCounts::default()
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_s_position_counts_the_shard_s_bases_before_it() {
        let contig = |name: &str, length| Contig {
            name: name.into(),
            length,
        };
        let regions = [
            Region::new(contig("chr20", 300_000), 150_001, 300_000).unwrap(),
            Region::whole(contig("chr22", 12_356)),
            Region::whole(contig("chrM", 16_571)),
        ];
        assert_eq!(bases_before(&regions, "chr20", 150_001), 1);
        assert_eq!(bases_before(&regions, "chr20", 200_000), 50_000);
        // Before its region (a record of the padding) and after its end.
        assert_eq!(bases_before(&regions, "chr20", 100), 0);
        assert_eq!(bases_before(&regions, "chr22", 12_356), 162_356);
        assert_eq!(bases_before(&regions, "chrM", 1), 162_357);
        assert_eq!(bases_before(&regions, "chrM", 99_999), 178_927);
        assert_eq!(bases_before(&regions, "chr1", 5), 0);
    }
}
