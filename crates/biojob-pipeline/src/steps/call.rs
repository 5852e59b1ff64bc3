//! The `call` step: `bcftools mpileup | bcftools call` for one shard, then `bcftools index`.

use biojob_core::{SampleId, Shard, StepId, scratch_file_name};
use biojob_formats::{VcfRules, check_bam_header, read_fai};
use biojob_process::StageReport;
use biojob_tools::{BcftoolsCall, BcftoolsMpileup, bcftools_index_tbi, label_part};
use camino::{Utf8Path, Utf8PathBuf};

use crate::steps::{PendingOutputs, verify_bgzf_output, verify_vcf_output};
use crate::{Error, StepContext, call_space_need, file_bytes};

/// What the call step needs.
#[derive(Debug, Clone)]
pub struct CallRequest<'a> {
    /// The sample.
    pub sample: &'a SampleId,
    /// The shard to call (a whole contig).
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

/// Calls variants in one shard:
/// `bcftools mpileup -f FASTA -r REGION -a FORMAT/AD,FORMAT/DP -Ou BAM | bcftools call -m -v -Oz`,
/// with pipefail semantics, then `bcftools index -t`.
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
        &format!("call {}", request.shard.contig.name),
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
    let bcftools = &context.toolset.bcftools;
    let fai = Utf8PathBuf::from(format!("{}.fai", request.fasta));
    let contigs = read_fai(&fai)?;
    check_bam_header(request.bam, &contigs, request.sample.as_str())?;
    let result = (|| {
        let mpileup = BcftoolsMpileup {
            fasta: request.fasta.to_owned(),
            region: region.clone(),
            bam: request.bam.to_owned(),
            min_mapping_quality: request.min_mapping_quality,
        }
        .command(bcftools);
        let caller = BcftoolsCall {
            region: region.clone(),
            output: vcf_partial.clone(),
        }
        .command(bcftools);
        let mut commands = context
            .supervisor
            .run_pipeline(vec![mpileup, caller])?
            .stages;
        verify_bgzf_output(&vcf_partial)?;
        verify_vcf_output(
            &vcf_partial,
            &VcfRules {
                contigs: &contigs,
                sample: request.sample.as_str(),
                only_contig: Some(&request.shard.contig.name),
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
