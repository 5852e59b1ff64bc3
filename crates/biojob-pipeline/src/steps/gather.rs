//! The `gather` step: `bcftools concat` of the shards' VCFs in reference order.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::sync::OnceLock;

use biojob_core::{Contig, SampleId, StepId, scratch_file_name};
use biojob_formats::{RecordSpan, VcfRules, scan_vcf, tabix_contigs};
use biojob_scratch::SpaceNeed;
use biojob_storage::ObjectUri;
use biojob_tools::{BcftoolsConcat, Tool};
use camino::{Utf8Path, Utf8PathBuf};

use crate::plan::partial;
use crate::steps::{RunningPlan, check_records, then_index_vcf, verify_vcf_output};
use crate::{
    Error, Executed, JobInput, PlanContext, PreparedReference, RecordCounts, StagedInputs,
    StepContext, StepDefinition, StepPlan, contig_plan, gather_space_need, shard_plan,
};

/// The role of the `position`-th VCF in a gather job's inputs: `vcf.0003`.
pub fn vcf_role(position: usize) -> String {
    format!("vcf.{position:04}")
}

/// The role of the `position`-th VCF's index: `tbi.0003`.
pub fn tbi_role(position: usize) -> String {
    format!("tbi.{position:04}")
}

/// The final VCF's file name: `<sample>.vcf.gz`.
pub fn final_vcf_name(sample: &SampleId) -> String {
    format!("{sample}.vcf.gz")
}

/// Which VCFs a gather job concatenates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatherInputs {
    /// This many, given as the job's inputs ([`vcf_role`] and [`tbi_role`] of positions
    /// `0..n`).
    Given(usize),
    /// Every shard's VCF, `<sample>.call.<shard>.vcf.gz` and its `.tbi` under `prefix`, of the
    /// plan of `contigs` (cut into shards of at most `shard_bases` bases, or one per contig).
    Plan {
        /// Where the call jobs published them.
        prefix: ObjectUri,
        /// The run's contigs.
        contigs: Vec<String>,
        /// The largest shard in bases; `None`: one shard per contig.
        shard_bases: Option<NonZeroU64>,
    },
}

/// The gather step of one sample (or of a cohort): its shards' VCFs, in reference order, into
/// `<sample>.vcf.gz` (`cohort.vcf.gz`).
#[derive(Debug, Clone)]
pub struct GatherStep {
    /// The sample, or the cohort's file stem.
    pub sample: SampleId,
    /// A cohort's samples, the VCFs' columns in order; empty for one sample's.
    pub cohort: Vec<SampleId>,
    /// The VCFs.
    pub inputs: GatherInputs,
    /// How many VCFs, once known.
    count: OnceLock<usize>,
}

impl GatherStep {
    /// The gather step of `inputs`; a [`GatherInputs::Plan`] is settled once the reference
    /// is staged.
    pub fn new(sample: SampleId, inputs: GatherInputs) -> Self {
        let count = OnceLock::new();
        if let GatherInputs::Given(n) = inputs {
            let _ = count.set(n);
        }
        GatherStep {
            sample,
            cohort: Vec::new(),
            inputs,
            count,
        }
    }

    /// The gather of a cohort's joint calls, columns `samples`.
    pub fn jointly(mut self, samples: Vec<SampleId>) -> Self {
        self.cohort = samples;
        self
    }

    fn vcfs(&self) -> usize {
        self.count.get().copied().unwrap_or(0)
    }
}

impl StepDefinition for GatherStep {
    fn step(&self) -> StepId {
        StepId::Gather
    }

    fn with_reference(
        &self,
        reference: &PreparedReference,
        context: &StepContext,
    ) -> Result<Vec<JobInput>, Error> {
        let GatherInputs::Plan {
            prefix,
            contigs,
            shard_bases,
        } = &self.inputs
        else {
            return Ok(Vec::new());
        };
        let plan = shard_plan(
            contig_plan(&reference.contigs, Some(contigs), &reference.fai)?,
            *shard_bases,
        );
        let mut inputs = Vec::new();
        for (position, shard) in plan.shards().iter().enumerate() {
            let name = scratch_file_name(&self.sample, StepId::Call, Some(shard.index), "vcf.gz");
            let vcf = prefix.join(&name);
            // Checked against what its call job recorded when it published it.
            let manifest = prefix.join(&crate::step_manifest_name(
                &self.sample,
                StepId::Call,
                Some(shard.index),
            ));
            inputs.push(
                JobInput::new(
                    &vcf_role(position),
                    vcf.clone(),
                    "VCF",
                    "run the call step for every shard first",
                )
                .published(crate::published_output(
                    &context.engine.stores,
                    &[manifest],
                    &name,
                )),
            );
            inputs.push(
                JobInput::new(
                    &tbi_role(position),
                    crate::sibling(&vcf, ".tbi"),
                    "VCF index",
                    "index each VCF with bcftools index -t (the .tbi must sit beside it)",
                )
                .unkeyed(),
            );
        }
        let _ = self.count.set(plan.shards().len());
        Ok(inputs)
    }

    fn space_need(&self, staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        gather_space_need(staged, inputs.iter().map(|(_, size)| size).sum())
    }

    /// `bcftools concat -Oz -o VCF.partial VCF…` in the order given, then `bcftools index -t`.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let bcftools = &context.toolset.bcftools;
        let vcf = context.work_file(&final_vcf_name(&self.sample));
        let concat = BcftoolsConcat {
            inputs: (0..self.vcfs())
                .map(|position| context.input(&vcf_role(position)))
                .collect(),
            output: partial(&vcf),
        }
        .command(bcftools);
        let plan = StepPlan::new(StepId::Gather, context.resources).command(Tool::Bcftools, concat);
        then_index_vcf(plan, bcftools, vcf)
    }

    /// Runs the plan. Each input VCF (staged in: they may come from elsewhere) is read once,
    /// natively, before any tool runs ([`biojob_formats::scan_vcf`]): BGZF EOF block, header
    /// parses, `##contig` lines equal to the reference's, one sample column named after the
    /// sample, records sorted, and records on the contigs its `.tbi` lists (an index that
    /// disagrees with its VCF is stale). Inputs whose records overlap are refused; inputs
    /// given out of reference order are concatenated in reference order
    /// ([`order_for_gather`]). The output gets the same checks, and holds exactly the sum of
    /// the inputs' records.
    ///
    /// # Errors
    /// [`Error::Format`] (input class) or [`Error::Input`] when an input fails its checks; as
    /// [`order_for_gather`]; [`Error::Process`] when a tool fails ([`Error::ScratchFull`]
    /// around it when scratch is full); [`Error::Verification`] when the output fails its
    /// checks.
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        let vcfs = self.vcfs();
        if vcfs == 0 {
            return Err(Error::Usage {
                message: "gather needs at least one VCF".into(),
                remedy: None,
            });
        }
        let contigs = &inputs.reference()?.contigs;
        let samples: Vec<&str> = if self.cohort.is_empty() {
            vec![self.sample.as_str()]
        } else {
            self.cohort.iter().map(SampleId::as_str).collect()
        };
        let rules = VcfRules {
            contigs,
            samples: &samples,
            only_regions: None,
        };
        let mut scanned = Vec::with_capacity(vcfs);
        let mut shard_records = 0u64;
        for position in 0..vcfs {
            let vcf = inputs.path(&vcf_role(position))?.to_owned();
            let (span, records) = check_gather_input(&vcf, &rules)?;
            shard_records += records;
            scanned.push((vcf, span));
        }
        let order = order_for_gather(&scanned, contigs)?;
        let given: Vec<&Utf8PathBuf> = scanned.iter().map(|(vcf, _)| vcf).collect();
        let plan = if order.iter().collect::<Vec<_>>() == given {
            plan
        } else {
            // Out of order (`biojob gather --vcf` in any order): the plan of the same inputs
            // in reference order.
            let mut paths: BTreeMap<String, Utf8PathBuf> = inputs.paths.clone();
            for (position, vcf) in order.iter().enumerate() {
                paths.insert(vcf_role(position), vcf.clone());
            }
            self.plan(&PlanContext::local(
                &context.engine.toolset,
                context.resources(),
                &inputs.work_dir,
                &paths,
            ))
        };
        let mut running = RunningPlan::new(plan, 2)?;
        let result = (|| {
            running.run_next(context)?;
            let vcf_partial = running.partial(0).to_owned();
            let gathered = verify_vcf_output(&vcf_partial, &rules)?.counts.records;
            // No record is dropped at a shard boundary: each shard keeps the records whose
            // `POS` is in its own regions (`bcftools view -t`, checked by the call step), and
            // `order_for_gather` refused shards whose records overlap.
            check_records(
                &vcf_partial,
                gathered,
                "records",
                shard_records,
                &format!("its {vcfs} shards' VCFs hold {shard_records}"),
            )?;
            running.run_next(context)?;
            running.finish(RecordCounts {
                vcf_records: Some(gathered),
                ..RecordCounts::default()
            })
        })();
        // While the partial outputs are still there: they hold the space that may have run out.
        result.map_err(|error| context.explain_failure(error))
    }
}

/// Orders per-shard VCFs for concatenation by what they contain, not by name or arrival: by
/// the contig (ranked by its position in `contigs`, the `.fai` order) and `POS` of each VCF's
/// first record. When the VCFs with records are already in that order, the order given is
/// kept whole (header-only VCFs, which contribute nothing, where they are); otherwise
/// header-only VCFs go last, in the order given. `inputs` pairs each VCF with its
/// [`RecordSpan`] (from [`biojob_formats::scan_vcf`]).
///
/// A shard may hold several contigs (small contigs grouped) or part of one (a long contig cut
/// into regions), so the rule is on positions: once ordered, each VCF's last record must come
/// strictly before the next VCF's first record. Two shards that both hold a record at one
/// position would duplicate it.
///
/// # Errors
/// [`Error::Input`] when a VCF holds a contig that is not in the reference, or two VCFs' records
/// overlap (naming both and their first and last records).
pub fn order_for_gather(
    inputs: &[(Utf8PathBuf, Option<RecordSpan>)],
    contigs: &[Contig],
) -> Result<Vec<Utf8PathBuf>, Error> {
    // Each contig's rank, looked up once per VCF: linear in the VCFs plus the contigs, as a
    // run without a `chromosomes` list gathers one VCF per contig of the reference.
    let ranks: HashMap<&str, usize> = contigs
        .iter()
        .enumerate()
        .map(|(rank, contig)| (contig.name.as_str(), rank))
        .collect();
    let key = |vcf: &Utf8Path, (name, position): &(String, u64)| {
        ranks
            .get(name.as_str())
            .map(|&rank| (rank, *position))
            .ok_or_else(|| Error::Input {
                message: format!("{vcf} holds contig {name:?}, which is not in the reference"),
                remedy: Some("gather VCFs called against the same reference".into()),
            })
    };
    // (first record's (contig rank, POS), last record's, position given, VCF, span)
    type Keyed<'a> = (
        (usize, u64),
        (usize, u64),
        usize,
        &'a Utf8PathBuf,
        &'a RecordSpan,
    );
    let mut keyed: Vec<Keyed<'_>> = Vec::with_capacity(inputs.len());
    let mut empty: Vec<Utf8PathBuf> = Vec::new();
    for (position, (vcf, span)) in inputs.iter().enumerate() {
        match span {
            None => empty.push(vcf.clone()),
            Some(span) => keyed.push((
                key(vcf, &span.first)?,
                key(vcf, &span.last)?,
                position,
                vcf,
                span,
            )),
        }
    }
    let in_order = keyed.windows(2).all(|pair| pair[0].0 < pair[1].0);
    keyed.sort_by_key(|(first, _, position, _, _)| (*first, *position));
    for pair in keyed.windows(2) {
        let (_, earlier_last, _, earlier, earlier_span) = &pair[0];
        let (later_first, _, _, later, later_span) = &pair[1];
        if earlier_last >= later_first {
            let show = |span: &RecordSpan| {
                format!(
                    "{}:{} to {}:{}",
                    span.first.0, span.first.1, span.last.0, span.last.1
                )
            };
            return Err(Error::Input {
                message: format!(
                    "{earlier} (records {}) and {later} (records {}) overlap",
                    show(earlier_span),
                    show(later_span)
                ),
                remedy: Some("give each shard's VCF once, from one scatter plan".into()),
            });
        }
    }
    if in_order {
        return Ok(inputs.iter().map(|(vcf, _)| vcf.clone()).collect());
    }
    Ok(keyed
        .into_iter()
        .map(|(_, _, _, vcf, _)| vcf.clone())
        .chain(empty)
        .collect())
}

/// The native checks of one gather input: [`scan_vcf`] with `rules`, then the contigs with
/// records equal to those its `.tbi` lists. Returns where its records start and end, and how
/// many it holds.
fn check_gather_input(
    vcf: &Utf8Path,
    rules: &VcfRules<'_>,
) -> Result<(Option<RecordSpan>, u64), Error> {
    let scan = scan_vcf(vcf, rules)?;
    let held: Vec<&str> = scan
        .contigs
        .iter()
        .filter(|c| c.counts.records > 0)
        .map(|c| c.name.as_str())
        .collect();
    let tbi = Utf8PathBuf::from(format!("{vcf}.tbi"));
    let indexed = tabix_contigs(&tbi)?;
    if indexed != held {
        return Err(Error::Input {
            message: format!(
                "{tbi} lists records on [{}] but {vcf} holds records on [{}]: the index is stale",
                indexed.join(", "),
                held.join(", ")
            ),
            remedy: Some(format!("rebuild it: bcftools index -f -t {vcf}")),
        });
    }
    Ok((scan.span, scan.counts.records))
}
