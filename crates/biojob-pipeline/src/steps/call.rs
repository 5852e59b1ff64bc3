//! The `call` step: `bcftools mpileup | bcftools call` for one shard, then `bcftools index`.

use biojob_core::{Region, SampleId, Shard, StepId, scratch_file_name};
use biojob_formats::{VcfRules, check_bam_header, read_fai};
use biojob_process::StageReport;
use biojob_tools::{
    BcftoolsCall, BcftoolsCallPiped, BcftoolsMpileup, BcftoolsViewTargets, bcftools_index_tbi,
    label_part,
};
use camino::{Utf8Path, Utf8PathBuf};

use crate::steps::{PendingOutputs, verify_bgzf_output, verify_vcf_output};
use crate::{Error, StepContext, call_space_need, file_bytes};

/// What the call step needs.
#[derive(Debug, Clone)]
pub struct CallRequest<'a> {
    /// The sample.
    pub sample: &'a SampleId,
    /// The shard to call: whole contigs, or regions of contigs.
    pub shard: &'a Shard,
    /// The reference FASTA, with its `.fai` beside it.
    pub fasta: &'a Utf8Path,
    /// The coordinate-sorted BAM, with its `.bai` beside it.
    pub bam: &'a Utf8Path,
    /// Where the outputs are written.
    pub work_dir: &'a Utf8Path,
    /// `bcftools mpileup -q`, when set.
    pub min_mapping_quality: Option<u32>,
}

/// The call step's results.
#[derive(Debug, Clone)]
pub struct CallOutput {
    /// `{sample}.call.{shard:04}.vcf.gz`: variant sites only; header-only when the shard has
    /// no variants (a contig without reads gives a valid, indexed, empty VCF).
    pub vcf: Utf8PathBuf,
    /// Its tabix index, `.vcf.gz.tbi`.
    pub tbi: Utf8PathBuf,
    /// Reports of the tools run.
    pub commands: Vec<StageReport>,
}

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

/// Calls variants in one shard:
/// `bcftools mpileup -f FASTA -r REGION -a FORMAT/AD,FORMAT/DP BAM | bcftools call -m -v -Oz`,
/// with pipefail semantics, then `bcftools index -t`.
///
/// When the shard holds part of a contig (a [`biojob_core::ScatterPlan::by_size`] plan), each
/// region is piled up from [`REGION_PILEUP_PAD_BASES`] before its start, and
/// `bcftools call -m -v -Ou | bcftools view -t REGIONS -Oz` keeps the records whose `POS` is in
/// the shard's own regions: a record belongs to the shard that holds its `POS`, so an indel
/// that starts before a boundary is in the earlier shard only, and the records of all shards
/// are those of calling each contig whole.
///
/// Before any tool runs, the BAM (which may come from elsewhere: the `call` subcommand's
/// `--bam`) gets the quickcheck-equivalent and the header rules of
/// [`biojob_formats::check_bam_header`]: BGZF EOF block, header parses, `SO:coordinate`,
/// every `@RG` with `SM` = the sample, `@SQ` equal to `<fasta>.fai`. The VCF is checked before it
/// is indexed and renamed to its final name ([`biojob_formats::scan_vcf`]): BGZF EOF block,
/// header parses, `##contig` lines equal to the `.fai`, one sample column named after the
/// sample, records sorted, every record on the shard's contig.
///
/// Before anything runs, the free scratch space is checked against [`call_space_need`].
///
/// # Errors
/// [`Error::Scratch`] when scratch is too small; [`Error::Format`] (input class) when the BAM
/// fails its checks; [`Error::Process`] when a tool fails ([`Error::ScratchFull`] around it when
/// scratch is full); [`Error::Verification`] when the VCF fails its checks.
pub fn call(request: &CallRequest<'_>, context: &StepContext) -> Result<CallOutput, Error> {
    let work_dir = request.work_dir;
    std::fs::create_dir_all(work_dir).map_err(Error::io("creating", work_dir))?;
    context.preflight(&call_space_need(
        &format!("call {}", request.shard.region()),
        0,
        file_bytes(request.bam),
    ))?;
    let vcf = work_dir.join(scratch_file_name(
        request.sample,
        StepId::Call,
        Some(request.shard.index),
        "vcf.gz",
    ));
    let tbi = Utf8PathBuf::from(format!("{vcf}.tbi"));
    let mut outputs = PendingOutputs::default();
    let vcf_partial = outputs.partial_for(&vcf);
    let tbi_partial = outputs.partial_for(&tbi);
    let region = request.shard.region().to_owned();
    let whole = request.shard.is_whole_contigs();
    let bcftools = &context.toolset.bcftools;
    let fai = Utf8PathBuf::from(format!("{}.fai", request.fasta));
    let contigs = read_fai(&fai)?;
    check_bam_header(request.bam, &contigs, request.sample.as_str())?;
    let result = (|| {
        let pileup_region = if whole {
            region.clone()
        } else {
            let widened: Vec<String> = request
                .shard
                .regions
                .iter()
                .map(|r| padded(r).to_string())
                .collect();
            widened.join(",")
        };
        let mpileup = BcftoolsMpileup {
            fasta: request.fasta.to_owned(),
            region: pileup_region,
            bam: request.bam.to_owned(),
            min_mapping_quality: request.min_mapping_quality,
        }
        .command(bcftools);
        let stages = if whole {
            let caller = BcftoolsCall {
                region: region.clone(),
                output: vcf_partial.clone(),
            }
            .command(bcftools);
            vec![mpileup, caller]
        } else {
            let caller = BcftoolsCallPiped {
                region: region.clone(),
            }
            .command(bcftools);
            let view = BcftoolsViewTargets {
                targets: region.clone(),
                output: vcf_partial.clone(),
            }
            .command(bcftools);
            vec![mpileup, caller, view]
        };
        let mut commands = context.supervisor.run_pipeline(stages)?.stages;
        verify_bgzf_output(&vcf_partial)?;
        verify_vcf_output(
            &vcf_partial,
            &VcfRules {
                contigs: &contigs,
                sample: request.sample.as_str(),
                only_contig: request.shard.single_contig().map(|c| c.name.as_str()),
            },
        )?;
        let index = bcftools_index_tbi(bcftools, &vcf_partial, &tbi_partial)
            .with_label(format!("bcftools-index.{}", label_part(&region)));
        commands.push(context.supervisor.run(index)?);
        outputs.publish()?;
        Ok(CallOutput {
            vcf: vcf.clone(),
            tbi: tbi.clone(),
            commands,
        })
    })();
    // While the partial outputs are still there: they hold the space that may have run out.
    result.map_err(|error| context.explain_failure(error))
}
