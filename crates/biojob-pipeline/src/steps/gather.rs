//! The `gather` step: `bcftools concat` of the shards' VCFs in reference order.

use std::collections::HashMap;

use biojob_core::{Contig, SampleId};
use biojob_formats::{RecordSpan, VcfRules, scan_vcf, tabix_contigs};
use biojob_process::StageReport;
use biojob_tools::{BcftoolsConcat, bcftools_index_tbi};
use camino::{Utf8Path, Utf8PathBuf};

use crate::steps::{PendingOutputs, verify_bgzf_output, verify_vcf_output};
use crate::{Error, StepContext, file_bytes, gather_space_need};

/// What the gather step needs.
#[derive(Debug, Clone)]
pub struct GatherRequest<'a> {
    /// The sample; the output is `{sample}.vcf.gz`.
    pub sample: &'a SampleId,
    /// The reference's contigs in `.fai` order.
    pub contigs: &'a [Contig],
    /// The per-shard VCFs, each with its `.tbi` beside it, in any order.
    pub vcfs: &'a [Utf8PathBuf],
    /// Where the outputs are written.
    pub work_dir: &'a Utf8Path,
}

/// The gather step's results.
#[derive(Debug, Clone)]
pub struct GatherOutput {
    /// `{sample}.vcf.gz`.
    pub vcf: Utf8PathBuf,
    /// `{sample}.vcf.gz.tbi`.
    pub tbi: Utf8PathBuf,
    /// The inputs in the order they were concatenated.
    pub order: Vec<Utf8PathBuf>,
    /// Reports of the tools run.
    pub commands: Vec<StageReport>,
}

/// Orders per-shard VCFs for concatenation by what they contain, not by name or arrival: by
/// the contig (ranked by its position in `contigs`, the `.fai` order) and `POS` of each VCF's
/// first record. VCFs without records (header-only) contribute nothing and go last, in the
/// order given. `inputs` pairs each VCF with its [`RecordSpan`] (from
/// [`biojob_formats::scan_vcf`]).
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
    Ok(keyed
        .into_iter()
        .map(|(_, _, _, vcf, _)| vcf.clone())
        .chain(empty)
        .collect())
}

/// The native checks of one gather input: [`scan_vcf`] with `rules`, then the contigs with
/// records equal to those its `.tbi` lists. Returns where its records start and end.
fn check_gather_input(vcf: &Utf8Path, rules: &VcfRules<'_>) -> Result<Option<RecordSpan>, Error> {
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
    Ok(scan.span)
}

/// Concatenates the shards' VCFs in reference order (see [`order_for_gather`]) with
/// `bcftools concat -Oz`, checks the result, indexes it with `bcftools index -t`, and renames
/// both to their final names.
///
/// Each input VCF (staged in: they may come from elsewhere) is read once, natively, before any
/// tool runs ([`biojob_formats::scan_vcf`]): BGZF EOF block, header parses, `##contig` lines
/// equal to the reference's, one sample column named after the sample, records sorted, and
/// records on the contigs its `.tbi` lists (an index that disagrees with its VCF is stale).
/// Inputs whose records overlap are refused ([`order_for_gather`]). The output gets the same
/// checks.
///
/// Before anything runs, the free scratch space is checked against [`gather_space_need`].
///
/// # Errors
/// [`Error::Scratch`] when scratch is too small; [`Error::Format`] (input class) or
/// [`Error::Input`] when an input fails its checks; as [`order_for_gather`]; [`Error::Process`]
/// when a tool fails ([`Error::ScratchFull`] around it when scratch is full);
/// [`Error::Verification`] when the output fails its checks.
pub fn gather(request: &GatherRequest<'_>, context: &StepContext) -> Result<GatherOutput, Error> {
    let work_dir = request.work_dir;
    std::fs::create_dir_all(work_dir).map_err(Error::io("creating", work_dir))?;
    let vcf_bytes = request
        .vcfs
        .iter()
        .fold(0u64, |sum, vcf| sum.saturating_add(file_bytes(vcf)));
    context.preflight(&gather_space_need(0, vcf_bytes))?;
    if request.vcfs.is_empty() {
        return Err(Error::Usage {
            message: "gather needs at least one VCF".into(),
            remedy: None,
        });
    }
    let rules = VcfRules {
        contigs: request.contigs,
        sample: request.sample.as_str(),
        only_contig: None,
    };
    let mut inputs = Vec::with_capacity(request.vcfs.len());
    for vcf in request.vcfs {
        inputs.push((vcf.clone(), check_gather_input(vcf, &rules)?));
    }
    let order = order_for_gather(&inputs, request.contigs)?;
    let vcf = work_dir.join(format!("{}.vcf.gz", request.sample));
    let tbi = Utf8PathBuf::from(format!("{vcf}.tbi"));
    let mut outputs = PendingOutputs::default();
    let vcf_partial = outputs.partial_for(&vcf);
    let tbi_partial = outputs.partial_for(&tbi);
    let bcftools = &context.toolset.bcftools;
    let result = (|| {
        let mut commands = vec![
            context.supervisor.run(
                BcftoolsConcat {
                    inputs: order.clone(),
                    output: vcf_partial.clone(),
                }
                .command(bcftools),
            )?,
        ];
        verify_bgzf_output(&vcf_partial)?;
        verify_vcf_output(&vcf_partial, &rules)?;
        commands.push(context.supervisor.run(bcftools_index_tbi(
            bcftools,
            &vcf_partial,
            &tbi_partial,
        ))?);
        outputs.publish()?;
        Ok(GatherOutput {
            vcf: vcf.clone(),
            tbi: tbi.clone(),
            order: order.clone(),
            commands,
        })
    })();
    // While the partial outputs are still there: they hold the space that may have run out.
    result.map_err(|error| context.explain_failure(error))
}
