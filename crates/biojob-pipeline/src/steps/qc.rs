//! The `qc` step: the tools' QC reports that MultiQC reads, and native statistics in `qc.json`.

use biojob_core::SampleId;
use biojob_formats::{BamStats, VcfRules, VcfScan, read_bam_stats, scan_vcf};
use biojob_process::StageReport;
use biojob_tools::{bcftools_stats, samtools_flagstat, samtools_stats};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use tracing::info;

use crate::steps::PendingOutputs;
use crate::{Error, PreparedReference, StepContext};

/// Version of `qc.json`'s layout; bumped when a field changes meaning.
pub const QC_FORMAT_VERSION: u32 = 1;

/// What the QC step needs.
#[derive(Debug, Clone)]
pub struct QcRequest<'a> {
    /// The sample.
    pub sample: &'a SampleId,
    /// The reference (FASTA for `samtools stats -r` and `bcftools stats -F`, and its contigs).
    pub reference: &'a PreparedReference,
    /// The coordinate-sorted BAM of the align step.
    pub bam: &'a Utf8Path,
    /// The final VCF of the gather step.
    pub vcf: &'a Utf8Path,
    /// Where the outputs are written.
    pub work_dir: &'a Utf8Path,
}

/// The QC step's results.
#[derive(Debug, Clone)]
pub struct QcOutput {
    /// `{sample}.flagstat.txt`: `samtools flagstat`.
    pub flagstat: Utf8PathBuf,
    /// `{sample}.samtools_stats.txt`: `samtools stats`.
    pub samtools_stats: Utf8PathBuf,
    /// `{sample}.bcftools_stats.txt`: `bcftools stats`.
    pub bcftools_stats: Utf8PathBuf,
    /// `qc.json`: [`QcSummary`].
    pub qc_json: Utf8PathBuf,
    /// What `qc.json` holds.
    pub summary: QcSummary,
    /// Reports of the tools run.
    pub commands: Vec<StageReport>,
}

impl QcOutput {
    /// The files to publish, in a fixed order.
    pub fn files(&self) -> [&Utf8Path; 4] {
        [
            &self.flagstat,
            &self.samtools_stats,
            &self.bcftools_stats,
            &self.qc_json,
        ]
    }
}

/// Read counts from the BAM, as `samtools flagstat` makes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QcFiles {
    /// `samtools flagstat` output.
    pub flagstat: String,
    /// `samtools stats` output.
    pub samtools_stats: String,
    /// `bcftools stats` output.
    pub bcftools_stats: String,
}

/// `qc.json`: the native statistics of one sample's run.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Runs the QC step:
///
/// - `samtools flagstat`, `samtools stats -r FASTA` and `bcftools stats -s - -F FASTA`, each
///   into a file that MultiQC finds ([`qc_file_names`]); a report without the line MultiQC
///   looks for is an output verification failure;
/// - natively and at the same time, on its own thread: one pass over the BAM
///   ([`read_bam_stats`]: flagstat counts, mean depth and breadth per contig, depth bins, and a
///   check that the records are in coordinate order) and one over the final VCF
///   ([`scan_vcf`]: the header against the reference and sample, sorted records, variant
///   counts, Ti/Tv, het/hom);
/// - writes `qc.json` ([`QcSummary`]).
///
/// Every file is written as `*.partial` and renamed when the step has succeeded.
///
/// # Errors
/// [`Error::Process`] when a tool fails; [`Error::Verification`] when the BAM or VCF breaks a
/// rule or a report lacks its MultiQC marker; [`Error::Io`] on write failures.
pub fn qc(request: &QcRequest<'_>, context: &StepContext) -> Result<QcOutput, Error> {
    let work_dir = request.work_dir;
    std::fs::create_dir_all(work_dir).map_err(Error::io("creating", work_dir))?;
    let names = qc_file_names(request.sample);
    let flagstat = work_dir.join(&names.flagstat);
    let samtools_report = work_dir.join(&names.samtools_stats);
    let bcftools_report = work_dir.join(&names.bcftools_stats);
    let qc_json = work_dir.join("qc.json");
    let mut outputs = PendingOutputs::default();
    let flagstat_partial = outputs.partial_for(&flagstat);
    let samtools_partial = outputs.partial_for(&samtools_report);
    let bcftools_partial = outputs.partial_for(&bcftools_report);
    let qc_json_partial = outputs.partial_for(&qc_json);
    let threads = context.resources.threads.max(1);
    let samtools = &context.toolset.samtools;
    let bcftools = &context.toolset.bcftools;
    let fasta = &request.reference.fasta;
    info!(bam = %request.bam, vcf = %request.vcf, "QC");

    (|| {
        let (native, tools) = std::thread::scope(|scope| {
            let native = scope.spawn(|| {
                let bam = read_bam_stats(request.bam, threads.saturating_sub(1).max(1))?;
                let vcf = scan_vcf(
                    request.vcf,
                    &VcfRules {
                        contigs: &request.reference.contigs,
                        sample: request.sample.as_str(),
                        only_contig: None,
                    },
                )?;
                Ok::<_, biojob_formats::FormatError>((bam, vcf))
            });
            let tools = (|| {
                let commands = vec![
                    context.supervisor.run(samtools_flagstat(
                        samtools,
                        request.bam,
                        &flagstat_partial,
                        0,
                    ))?,
                    context.supervisor.run(samtools_stats(
                        samtools,
                        request.bam,
                        fasta,
                        &samtools_partial,
                        0,
                    ))?,
                    context.supervisor.run(bcftools_stats(
                        bcftools,
                        request.vcf,
                        fasta,
                        &bcftools_partial,
                    ))?,
                ];
                Ok::<_, Error>(commands)
            })();
            let native = native
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (native, tools)
        });
        let commands = tools?;
        let (bam, vcf) = native.map_err(|error| {
            let path = match &error {
                biojob_formats::FormatError::Io { path, .. }
                | biojob_formats::FormatError::Parse { path, .. }
                | biojob_formats::FormatError::Invalid { path, .. }
                | biojob_formats::FormatError::NotBgzf { path, .. }
                | biojob_formats::FormatError::MissingBgzfEof { path } => path.clone(),
                _ => request.bam.to_owned(),
            };
            Error::Verification {
                path,
                detail: reason_of(&error),
            }
        })?;
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
        let summary = QcSummary::new(request.sample, &bam, &vcf, names.clone());
        let json = serde_json::to_vec_pretty(&summary)
            .map_err(|e| Error::io("serialising", &qc_json)(std::io::Error::other(e)))?;
        std::fs::write(&qc_json_partial, json).map_err(Error::io("writing", &qc_json_partial))?;
        outputs.publish()?;
        info!(
            records = summary.reads.records,
            mapped_percent = summary.reads.mapped_percent,
            variants = summary.variants.records,
            "QC done"
        );
        Ok(QcOutput {
            flagstat: flagstat.clone(),
            samtools_stats: samtools_report.clone(),
            bcftools_stats: bcftools_report.clone(),
            qc_json: qc_json.clone(),
            summary,
            commands,
        })
    })()
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
fn verify_report(path: &Utf8Path, marker: &str) -> Result<(), Error> {
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
