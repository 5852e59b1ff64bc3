//! bcftools (Danecek et al., 2021; manual `bcftools.1`: mpileup, call, concat, index).

use biojob_core::BcftoolsRegions;
use biojob_process::CommandSpec;
use camino::{Utf8Path, Utf8PathBuf};

use crate::ToolPath;

/// `bcftools mpileup -Oz0 -f FASTA -r REGIONS -a FORMAT/AD,FORMAT/DP BAM…` (or
/// `-R REGIONS_FILE`): genotype likelihoods for the regions, as text VCF on stdout in BGZF
/// blocks stored without compression (`z0`). With several BAMs (a cohort), one column per
/// sample (`@RG SM`) in the order the BAMs are given.
///
/// The regions are given inline (`-r`) unless a contig name holds a `:`, which bcftools cannot
/// take inline; then they are read from `regions_file` (`-R`), which the caller writes with
/// [`BcftoolsRegions::file_contents`] before the command runs (see [`BcftoolsRegions`]).
///
/// The text is that of mpileup's default output type, so `bcftools call` computes what it
/// computes from the hand-run command's pipe; the BGZF framing ends with the EOF block (SAM
/// spec v1, section 4.1.2), so a pileup cut short, even at a line boundary, is told from a
/// complete one. Uncompressed BCF (`-Ou`) would hand the likelihoods to `bcftools call`
/// without the text round-trip, but then a few QUAL values differ in the sixth significant
/// digit from the same command run by hand (measured on the test data: 2 of 438 records), and
/// biojob's calls are meant to equal the hand-run command's exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BcftoolsMpileup {
    /// The reference FASTA; its `.fai` must sit beside it.
    pub fasta: Utf8PathBuf,
    /// The regions to pile up.
    pub regions: BcftoolsRegions,
    /// Where the regions file is (`-R`), when [`BcftoolsRegions::file_contents`] is `Some`;
    /// not used otherwise.
    pub regions_file: Utf8PathBuf,
    /// The coordinate-sorted, indexed BAMs.
    pub bams: Vec<Utf8PathBuf>,
    /// `-q`: alignments with a lower mapping quality are skipped; `None` leaves the option out
    /// (bcftools' default, 0), so the command stays the hand-run one.
    pub min_mapping_quality: Option<u32>,
}

impl BcftoolsMpileup {
    /// The command; labelled `bcftools-mpileup.<regions>`.
    pub fn command(&self, bcftools: &ToolPath) -> CommandSpec {
        let [flag, value] = region_arguments(&self.regions, &self.regions_file, ["-r", "-R"]);
        CommandSpec::new(
            format!("bcftools-mpileup.{}", label_part(self.regions.text())),
            bcftools.program(),
        )
        .arg("mpileup")
        .arg("-Oz0")
        .arg("-f")
        .arg(self.fasta.as_str())
        .arg(flag)
        .arg(value)
        .arg("-a")
        .arg("FORMAT/AD,FORMAT/DP")
        .args(
            self.min_mapping_quality
                .map(|quality| ["-q".to_owned(), quality.to_string()])
                .into_iter()
                .flatten(),
        )
        .args(self.bams.iter().map(|bam| bam.as_str().to_owned()))
    }
}

/// The option and value that give bcftools `regions`: `[inline_flag, text]`, or
/// `[file_flag, file]` when the list must be read from a file.
fn region_arguments<'a>(
    regions: &'a BcftoolsRegions,
    file: &'a Utf8Path,
    [inline_flag, file_flag]: [&'static str; 2],
) -> [&'a str; 2] {
    match regions.file_contents() {
        None => [inline_flag, regions.text()],
        Some(_) => [file_flag, file.as_str()],
    }
}

/// `bcftools call -m -v -Oz -o OUT -`: multiallelic caller, variant sites only, bgzipped VCF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BcftoolsCall {
    /// The region, for the label only.
    pub region: String,
    /// The bgzipped VCF to write.
    pub output: Utf8PathBuf,
}

impl BcftoolsCall {
    /// The command; it reads mpileup's BCF on stdin. Labelled `bcftools-call.<region>`.
    pub fn command(&self, bcftools: &ToolPath) -> CommandSpec {
        call_command(bcftools, &self.region, ["-Oz", "-o", self.output.as_str()])
    }
}

/// `bcftools call -m -v OUTPUT… -`, labelled `bcftools-call.<region>`.
fn call_command<'a>(
    bcftools: &ToolPath,
    region: &str,
    output: impl IntoIterator<Item = &'a str>,
) -> CommandSpec {
    CommandSpec::new(
        format!("bcftools-call.{}", label_part(region)),
        bcftools.program(),
    )
    .arg("call")
    .arg("-m")
    .arg("-v")
    .args(output)
    .arg("-")
}

/// `bcftools call -m -v -Ou -`: as [`BcftoolsCall`], but writes uncompressed BCF to stdout, for
/// a [`BcftoolsViewTargets`] after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BcftoolsCallPiped {
    /// The region, for the label only.
    pub region: String,
}

impl BcftoolsCallPiped {
    /// The command; it reads mpileup's VCF on stdin. Labelled `bcftools-call.<region>`.
    pub fn command(&self, bcftools: &ToolPath) -> CommandSpec {
        call_command(bcftools, &self.region, ["-Ou"])
    }
}

/// `bcftools view -t TARGETS -Oz -o OUT -` (or `-T TARGETS_FILE`): keeps the records read on
/// stdin whose `POS` lies in the targets, bgzipped.
///
/// Targets, unlike regions (`-r`), are streamed, and a record matches a target by its `POS`
/// alone (bcftools manual, `--targets-overlap`, default `pos`; the behaviour of every bcftools
/// release since targets exist): a deletion that starts before the target and reaches into it
/// is dropped, which is what gives each record to exactly one shard. As for
/// [`BcftoolsMpileup`], the targets are read from `targets_file` (`-T`) when a contig name
/// holds a `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BcftoolsViewTargets {
    /// The targets.
    pub targets: BcftoolsRegions,
    /// Where the targets file is (`-T`), when [`BcftoolsRegions::file_contents`] is `Some`;
    /// not used otherwise.
    pub targets_file: Utf8PathBuf,
    /// The bgzipped VCF to write.
    pub output: Utf8PathBuf,
}

impl BcftoolsViewTargets {
    /// The command. Labelled `bcftools-view.<targets>`.
    pub fn command(&self, bcftools: &ToolPath) -> CommandSpec {
        let [flag, value] = region_arguments(&self.targets, &self.targets_file, ["-t", "-T"]);
        CommandSpec::new(
            format!("bcftools-view.{}", label_part(self.targets.text())),
            bcftools.program(),
        )
        .arg("view")
        .arg(flag)
        .arg(value)
        .arg("-Oz")
        .arg("-o")
        .arg(self.output.as_str())
        .arg("-")
    }
}

/// `bcftools view -s SAMPLE -c 1 -Oz -o OUT VCF`: one sample's column of a cohort's VCF, and
/// only the records where that sample's genotype holds a non-reference allele (`0/1`, `1/1`,
/// `1/2`, `./1`, haploid `1`; not `0/0`, `./.`, `0`). `-c 1` (`--min-ac 1`, non-reference
/// alleles) counts the alleles of the genotypes kept by `-s`, and `INFO/AC`, `INFO/AN` are
/// recomputed for them (bcftools manual, `view`). `-i 'GT="alt"'` is not the same: measured with
/// bcftools 1.16, with `-s` it is evaluated over every sample before subsetting (a record where
/// only another sample is `1/1` passes), and `./1` does not match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BcftoolsViewSample {
    /// The sample to keep.
    pub sample: String,
    /// The cohort's bgzipped, indexed VCF.
    pub vcf: Utf8PathBuf,
    /// The bgzipped VCF to write.
    pub output: Utf8PathBuf,
}

impl BcftoolsViewSample {
    /// The command. Labelled `bcftools-view.<sample>`.
    pub fn command(&self, bcftools: &ToolPath) -> CommandSpec {
        CommandSpec::new(
            format!("bcftools-view.{}", label_part(&self.sample)),
            bcftools.program(),
        )
        .arg("view")
        .arg("-s")
        .arg(self.sample.as_str())
        .arg("-c")
        .arg("1")
        .arg("-Oz")
        .arg("-o")
        .arg(self.output.as_str())
        .arg(self.vcf.as_str())
    }
}

/// `bcftools concat -Oz -o OUT IN…`: concatenates VCFs of the same samples in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BcftoolsConcat {
    /// Inputs, already in reference order.
    pub inputs: Vec<Utf8PathBuf>,
    /// The bgzipped VCF to write.
    pub output: Utf8PathBuf,
}

impl BcftoolsConcat {
    /// The command.
    pub fn command(&self, bcftools: &ToolPath) -> CommandSpec {
        CommandSpec::new("bcftools-concat", bcftools.program())
            .arg("concat")
            .arg("-Oz")
            .arg("-o")
            .arg(self.output.as_str())
            .args(self.inputs.iter().map(|input| input.as_str().to_owned()))
    }
}

/// `bcftools stats -s - -F FASTA VCF > OUT`: variant statistics with per-sample counts
/// (`PSC` lines: het, hom-alt) and indel context from the reference (the MultiQC bcftools
/// module finds the output by its content, `This file was produced by bcftools stats`).
pub fn bcftools_stats(
    bcftools: &ToolPath,
    vcf: &Utf8Path,
    fasta: &Utf8Path,
    output: &Utf8Path,
) -> CommandSpec {
    CommandSpec::new("bcftools-stats", bcftools.program())
        .arg("stats")
        .arg("-s")
        .arg("-")
        .arg("-F")
        .arg(fasta.as_str())
        .arg(vcf.as_str())
        .stdout_file(output)
}

/// `region` made safe for a command label (labels name log files): characters other than
/// ASCII letters, digits and `._:+-` become `_` (`HLA-A*01:01` → `HLA-A_01:01`; `:` is kept,
/// which Linux file names and S3 keys hold as it is).
pub fn label_part(region: &str) -> String {
    region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `bcftools index -t -o TBI VCF`: writes the tabix index of a bgzipped VCF.
pub fn bcftools_index_tbi(bcftools: &ToolPath, vcf: &Utf8Path, tbi: &Utf8Path) -> CommandSpec {
    CommandSpec::new("bcftools-index", bcftools.program())
        .arg("index")
        .arg("-t")
        .arg("-o")
        .arg(tbi.as_str())
        .arg(vcf.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tool;
    use biojob_core::{Contig, Region};

    fn regions(list: &[(&str, u64, u64, u64)]) -> BcftoolsRegions {
        let regions: Vec<Region> = list
            .iter()
            .map(|(name, length, start, end)| {
                Region::new(Contig::new(*name, *length), *start, *end).unwrap()
            })
            .collect();
        BcftoolsRegions::new(&regions)
    }

    #[test]
    fn calling_argv() {
        let bcftools = ToolPath::new(Tool::Bcftools, "bcftools");
        let mpileup = BcftoolsMpileup {
            fasta: "ref.fa".into(),
            regions: regions(&[("chr20", 300_000, 1, 300_000)]),
            regions_file: "w/regions.tsv".into(),
            bams: vec!["s.bam".into()],
            min_mapping_quality: None,
        };
        assert_eq!(
            mpileup.command(&bcftools).argv().join(" "),
            "bcftools mpileup -Oz0 -f ref.fa -r chr20 -a FORMAT/AD,FORMAT/DP s.bam"
        );
        let filtered = BcftoolsMpileup {
            min_mapping_quality: Some(20),
            ..mpileup.clone()
        };
        assert_eq!(
            filtered.command(&bcftools).argv().join(" "),
            "bcftools mpileup -Oz0 -f ref.fa -r chr20 -a FORMAT/AD,FORMAT/DP -q 20 s.bam"
        );
        let call = BcftoolsCall {
            region: "chr20".into(),
            output: "o.vcf.gz.partial".into(),
        }
        .command(&bcftools);
        assert_eq!(
            call.argv().join(" "),
            "bcftools call -m -v -Oz -o o.vcf.gz.partial -"
        );
        assert_eq!(call.label(), "bcftools-call.chr20");
        let piped = BcftoolsCallPiped {
            region: "chr20:1-100".into(),
        }
        .command(&bcftools);
        assert_eq!(piped.argv().join(" "), "bcftools call -m -v -Ou -");
        assert_eq!(piped.label(), "bcftools-call.chr20:1-100");
        let view = BcftoolsViewTargets {
            targets: regions(&[("chr20", 300_000, 101, 200)]),
            targets_file: "w/targets.tsv".into(),
            output: "o.vcf.gz.partial".into(),
        }
        .command(&bcftools);
        assert_eq!(
            view.argv().join(" "),
            "bcftools view -t chr20:101-200 -Oz -o o.vcf.gz.partial -"
        );
        assert_eq!(label_part("HLA-A*01:01/x"), "HLA-A_01:01_x");
        let joint = BcftoolsMpileup {
            bams: vec!["a.bam".into(), "b.bam".into()],
            ..filtered
        };
        assert_eq!(
            joint.command(&bcftools).argv().join(" "),
            "bcftools mpileup -Oz0 -f ref.fa -r chr20 -a FORMAT/AD,FORMAT/DP -q 20 a.bam b.bam"
        );
        let sample = BcftoolsViewSample {
            sample: "S1".into(),
            vcf: "cohort.vcf.gz".into(),
            output: "S1.vcf.gz.partial".into(),
        }
        .command(&bcftools);
        assert_eq!(
            sample.argv().join(" "),
            "bcftools view -s S1 -c 1 -Oz -o S1.vcf.gz.partial cohort.vcf.gz"
        );
        let concat = BcftoolsConcat {
            inputs: vec!["a.vcf.gz".into(), "b.vcf.gz".into()],
            output: "s.vcf.gz.partial".into(),
        }
        .command(&bcftools);
        assert_eq!(
            concat.argv().join(" "),
            "bcftools concat -Oz -o s.vcf.gz.partial a.vcf.gz b.vcf.gz"
        );
    }

    /// A contig name with ':' goes through the regions and targets files; the labels keep the
    /// human-readable form, made safe.
    #[test]
    fn names_with_a_colon_go_through_files() {
        let bcftools = ToolPath::new(Tool::Bcftools, "bcftools");
        let hla = regions(&[("HLA-A*01:01:01:01", 3_503, 1, 3_503)]);
        let mpileup = BcftoolsMpileup {
            fasta: "ref.fa".into(),
            regions: hla.clone(),
            regions_file: "w/regions.tsv".into(),
            bams: vec!["s.bam".into()],
            min_mapping_quality: None,
        }
        .command(&bcftools);
        assert_eq!(
            mpileup.argv().join(" "),
            "bcftools mpileup -Oz0 -f ref.fa -R w/regions.tsv -a FORMAT/AD,FORMAT/DP s.bam"
        );
        assert_eq!(mpileup.label(), "bcftools-mpileup.HLA-A_01:01:01:01");
        let view = BcftoolsViewTargets {
            targets: regions(&[("chr20:1-100", 300_000, 1_001, 2_000)]),
            targets_file: "w/targets.tsv".into(),
            output: "o.vcf.gz.partial".into(),
        }
        .command(&bcftools);
        assert_eq!(
            view.argv().join(" "),
            "bcftools view -T w/targets.tsv -Oz -o o.vcf.gz.partial -"
        );
        assert_eq!(view.label(), "bcftools-view.chr20:1-100:1001-2000");
        // A name with '-' only stays inline.
        let dash = BcftoolsViewTargets {
            targets: regions(&[("chr1-2", 16_571, 100, 300)]),
            targets_file: "w/targets.tsv".into(),
            output: "o.vcf.gz.partial".into(),
        }
        .command(&bcftools);
        assert_eq!(
            dash.argv().join(" "),
            "bcftools view -t chr1-2:100-300 -Oz -o o.vcf.gz.partial -"
        );
    }
}
