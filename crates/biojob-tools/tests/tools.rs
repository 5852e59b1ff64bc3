//! The builders' command lines run with the real tools (bwa, samtools, bcftools on `PATH`) on
//! the real NA12878 test data (`BIOJOB_TESTDATA`).

// clippy.toml allows unwrap in `#[test]` functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use biojob_core::{Contig, ReadGroup, Region, SampleId, Shard};
use biojob_process::CommandSpec;
use biojob_testkit::testdata;
use biojob_tools::{
    BcftoolsCallPiped, BcftoolsMpileup, BcftoolsViewTargets, BwaMem, Tool, ToolPath,
};
use camino::{Utf8Path, Utf8PathBuf};

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `commands` as a pipeline (each one's stdout into the next one's stdin) and waits for
/// all; panics naming the first that failed.
fn run_pipeline(commands: &[CommandSpec]) {
    let mut children = Vec::new();
    let mut input = Stdio::null();
    for (position, command) in commands.iter().enumerate() {
        let argv = command.argv();
        let last = position + 1 == commands.len();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(input)
            .stdout(if last { Stdio::null() } else { Stdio::piped() })
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        input = child.stdout.take().map_or_else(Stdio::null, Stdio::from);
        children.push((argv, child));
    }
    for (argv, child) in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A scratch directory with the test data's reference indexed and its reads aligned to it:
/// `ref.fa` (bwa index, `.fai`) and `orig.bam` (sorted, indexed).
struct Aligned {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
}

impl Aligned {
    fn new() -> Aligned {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
        let fasta = root.join("ref.fa");
        std::fs::copy(testdata().join("ref.fa"), &fasta).unwrap();
        run("bwa", &["index", fasta.as_str()]);
        run("samtools", &["faidx", fasta.as_str()]);
        let sample = SampleId::new("NA12878").unwrap();
        let bwa = BwaMem {
            threads: 2,
            batch_bases: 10_000_000,
            read_group: ReadGroup::for_sample(&sample),
            index_prefix: fasta.clone(),
            fastq_1: testdata().join("NA12878_R1.fastq.gz"),
            fastq_2: testdata().join("NA12878_R2.fastq.gz"),
        }
        .command(&ToolPath::new(Tool::Bwa, "bwa"));
        let bam = root.join("orig.bam");
        let sort = CommandSpec::new("sort", "samtools").args(["sort", "-o", bam.as_str(), "-"]);
        run_pipeline(&[bwa, sort]);
        run("samtools", &["index", bam.as_str()]);
        Aligned { _dir: dir, root }
    }

    /// The reference and BAM with contig chr22 renamed `name` (FASTA header and `@SQ` line):
    /// the same sequence and records under another name.
    fn renamed(&self, name: &str, tag: &str) -> (Utf8PathBuf, Utf8PathBuf) {
        let text = std::fs::read_to_string(self.root.join("ref.fa")).unwrap();
        let fasta = self.root.join(format!("{tag}.fa"));
        std::fs::write(&fasta, text.replacen(">chr22 ", &format!(">{name} "), 1)).unwrap();
        run("samtools", &["faidx", fasta.as_str()]);
        let orig = self.root.join("orig.bam");
        let header = run("samtools", &["view", "-H", orig.as_str()]).replacen(
            "SN:chr22\t",
            &format!("SN:{name}\t"),
            1,
        );
        let header_path = self.root.join(format!("{tag}.header.sam"));
        std::fs::write(&header_path, header).unwrap();
        let bam = self.root.join(format!("{tag}.bam"));
        let reheadered = Command::new("samtools")
            .args(["reheader", header_path.as_str(), orig.as_str()])
            .output()
            .unwrap();
        assert!(reheadered.status.success());
        std::fs::write(&bam, reheadered.stdout).unwrap();
        run("samtools", &["index", bam.as_str()]);
        (fasta, bam)
    }

    /// Calls `shard` as the call step does (`mpileup | call -m -v -Ou | view -t/-T -Oz`, with
    /// the regions file written when the list needs one) and returns its records without
    /// their CHROM column.
    fn call(&self, fasta: &Utf8Path, bam: &Utf8Path, shard: &Shard, tag: &str) -> Vec<String> {
        let bcftools = ToolPath::new(Tool::Bcftools, "bcftools");
        let regions = shard.bcftools_regions();
        let regions_file = self.root.join(format!("{tag}.regions.tsv"));
        if let Some(contents) = regions.file_contents() {
            std::fs::write(&regions_file, contents).unwrap();
        }
        let vcf = self.root.join(format!("{tag}.vcf.gz"));
        let mpileup = BcftoolsMpileup {
            fasta: fasta.to_owned(),
            regions: regions.clone(),
            regions_file: regions_file.clone(),
            bams: vec![bam.to_owned()],
            min_mapping_quality: None,
        }
        .command(&bcftools);
        let call = BcftoolsCallPiped {
            region: shard.region().to_owned(),
        }
        .command(&bcftools);
        let view = BcftoolsViewTargets {
            targets: regions,
            targets_file: regions_file,
            output: vcf.clone(),
        }
        .command(&bcftools);
        run_pipeline(&[mpileup, call, view]);
        run("bcftools", &["view", "-H", vcf.as_str()])
            .lines()
            .map(|line| line.split_once('\t').unwrap().1.to_owned())
            .collect()
    }
}

/// A contig named like a region (GRCh38's `HLA-A*01:01:01:01`, `chr20:1-100` beside a real
/// chr20, `chr1-2`) was passed to `bcftools mpileup -r` and `view -t` as if it were one: 0
/// variants, silently. With biojob's rendering each name means its contig: the calls on the
/// renamed chr22 are those on chr22, whole and for a region, and `samtools view` with the
/// htslib rendering counts the same records.
#[test]
fn contig_names_that_read_as_regions_mean_their_contig() {
    let aligned = Aligned::new();
    let fasta = aligned.root.join("ref.fa");
    let bam = aligned.root.join("orig.bam");
    let chr22 = Contig::new("chr22", 12_356);
    let part = |contig: &Contig| Region::new(contig.clone(), 1_000, 5_000).unwrap();
    let whole_calls = aligned.call(
        &fasta,
        &bam,
        &Shard::new(0, vec![Region::whole(chr22.clone())]),
        "chr22",
    );
    let part_calls = aligned.call(
        &fasta,
        &bam,
        &Shard::new(0, vec![part(&chr22)]),
        "chr22-part",
    );
    assert_eq!(whole_calls.len(), 16, "chr22's variants in the test data");
    assert!(!part_calls.is_empty() && part_calls.len() < whole_calls.len());
    let count =
        |bam: &Utf8Path, region: &str| run("samtools", &["view", "-c", bam.as_str(), region]);
    let whole_records = count(&bam, "chr22");
    let part_records = count(&bam, "chr22:1000-5000");

    for (number, name) in ["HLA-A*01:01:01:01", "chr20:1-100", "chr1-2"]
        .into_iter()
        .enumerate()
    {
        let tag = format!("renamed{number}");
        let (renamed_fasta, renamed_bam) = aligned.renamed(name, &tag);
        let contig = Contig::new(name, 12_356);
        let whole = Shard::new(0, vec![Region::whole(contig.clone())]);
        let region = Shard::new(0, vec![part(&contig)]);
        assert_eq!(
            aligned.call(
                &renamed_fasta,
                &renamed_bam,
                &whole,
                &format!("{tag}-whole")
            ),
            whole_calls,
            "{name}, whole"
        );
        assert_eq!(
            aligned.call(
                &renamed_fasta,
                &renamed_bam,
                &region,
                &format!("{tag}-part")
            ),
            part_calls,
            "{name}, bases 1000-5000"
        );
        assert_eq!(
            count(
                &renamed_bam,
                &Region::whole(contig.clone()).to_htslib_region()
            ),
            whole_records,
            "{name}"
        );
        assert_eq!(
            count(&renamed_bam, &part(&contig).to_htslib_region()),
            part_records,
            "{name}"
        );
    }
}

/// What the inline form did with a name holding ':' (why the regions file exists): bcftools
/// 1.16 splits at the first ':' and calls nothing, even with htslib's braces.
#[test]
fn bcftools_cannot_take_a_name_with_a_colon_inline() {
    let aligned = Aligned::new();
    let (fasta, bam) = aligned.renamed("HLA-A*01:01:01:01", "hla");
    for inline in ["HLA-A*01:01:01:01", "{HLA-A*01:01:01:01}"] {
        let output = Command::new("bcftools")
            .args(["mpileup", "-f", fasta.as_str(), "-r", inline, bam.as_str()])
            .output()
            .unwrap();
        let records = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.starts_with('#'))
            .count();
        assert_eq!(records, 0, "{inline}");
    }
}

/// The read group reaches the BAM header as `ReadGroup::to_header_line` says, through the real
/// bwa's unescaping of `-R` (spaces, quotes, '/', '*' and ':' survive).
#[test]
fn read_groups_reach_the_header_unchanged_through_bwa() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let fasta = root.join("ref.fa");
    std::fs::copy(testdata().join("ref.fa"), &fasta).unwrap();
    run("bwa", &["index", fasta.as_str()]);
    let reads = root.join("r.fq");
    std::fs::write(
        &reads,
        "@r1\nCGGACATAGATTGGGGCATCAGTAGCTTCTACAATACATTCTGAGATTATTTTGCAAAGG\n+\n\
         IIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIII\n",
    )
    .unwrap();
    let sample = SampleId::new("NA12878").unwrap();
    let read_group = ReadGroup::for_sample(&sample)
        .with_id("run 1 * x:y")
        .unwrap()
        .with_library(r#"it's "pcr-free" / lib"#)
        .unwrap()
        .with_platform_unit("HXXX.1")
        .unwrap();
    let bwa = BwaMem {
        threads: 1,
        batch_bases: 10_000_000,
        read_group: read_group.clone(),
        index_prefix: fasta.clone(),
        fastq_1: reads.clone(),
        fastq_2: reads,
    }
    .command(&ToolPath::new(Tool::Bwa, "bwa"));
    let argv = bwa.argv();
    let sam = run(
        &argv[0],
        &argv[1..].iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let header: Vec<&str> = sam.lines().filter(|line| line.starts_with("@RG")).collect();
    assert_eq!(header, [read_group.to_header_line().as_str()]);
}
