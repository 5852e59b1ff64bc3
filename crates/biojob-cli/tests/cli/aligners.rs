//! `biojob run --aligner bwa-mem2` against `--aligner bwa`: the same BAM records and the same
//! VCF records (the header's `@PG` lines aside), on the NA12878 test data and on pairs
//! simulated from its reference; each run's manifest and cache key name its own aligner, and
//! each aligner's index files are built once beside the other's.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Workspace, records, stderr, testdata, tool};

/// The test data's contigs.
const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];

/// Pairs simulated for the second set, and wgsim's seed.
const SIMULATED_PAIRS: &str = "20000";
const WGSIM_SEED: &str = "11";

/// The BAM's records (no header), as text.
fn bam_records(bam: &Path) -> String {
    tool("samtools", &["view", bam.to_str().unwrap()], Path::new("/"))
}

/// The BAM's header lines other than `@PG`.
fn bam_header_without_pg(bam: &Path) -> Vec<String> {
    tool(
        "samtools",
        &["view", "-H", bam.to_str().unwrap()],
        Path::new("/"),
    )
    .lines()
    .filter(|line| !line.starts_with("@PG"))
    .map(str::to_owned)
    .collect()
}

/// Runs the workflow of `input` with `aligner` as run `aligner`; returns its output directory.
fn run_with(ws: &Workspace, input: &Path, sample: &str, aligner: &str) -> PathBuf {
    let output = ws.run(input, aligner, &["--aligner", aligner], &[]);
    assert!(output.status.success(), "{aligner}: {}", stderr(&output));
    ws.out().join(sample).join(aligner)
}

fn manifest(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap()).unwrap()
}

/// The align task's record.
fn align_task(manifest: &Value) -> &Value {
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["step"] == "align")
        .unwrap()
}

/// Asserts both runs of `sample` wrote the same BAM records and VCF records, and that each
/// recorded its own aligner.
fn assert_same_outputs(bwa: &Path, bwa_mem2: &Path, sample: &str) -> usize {
    let bam = |dir: &Path| dir.join(format!("{sample}.align.bam"));
    let (ours, theirs) = (bam_records(&bam(bwa)), bam_records(&bam(bwa_mem2)));
    assert!(!ours.is_empty());
    if ours != theirs {
        let first = ours
            .lines()
            .zip(theirs.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "the BAM records differ from record {first} ({} and {} lines)",
            ours.lines().count(),
            theirs.lines().count()
        );
    }
    assert_eq!(
        bam_header_without_pg(&bam(bwa)),
        bam_header_without_pg(&bam(bwa_mem2))
    );
    let vcf = |dir: &Path| dir.join(format!("{sample}.vcf.gz"));
    let variants = records(&vcf(bwa));
    assert_eq!(variants, records(&vcf(bwa_mem2)));

    let (bwa, bwa_mem2) = (manifest(bwa), manifest(bwa_mem2));
    let tools = |manifest: &Value| -> Vec<String> {
        manifest["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{} {}",
                    t["tool"].as_str().unwrap(),
                    t["version"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert!(tools(&bwa)[0].starts_with("bwa 0.7."), "{:?}", tools(&bwa));
    assert!(
        tools(&bwa_mem2)[0].starts_with("bwa-mem2 2."),
        "{:?}",
        tools(&bwa_mem2)
    );
    assert_eq!(tools(&bwa)[1..], tools(&bwa_mem2)[1..]);
    let labels = |manifest: &Value| -> Vec<String> {
        align_task(manifest)["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["label"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(labels(&bwa), ["bwa-mem", "samtools-sort"]);
    assert_eq!(labels(&bwa_mem2), ["bwa-mem2-mem", "samtools-sort"]);
    // The align keys differ: the aligner's name and version, its index files.
    assert_ne!(
        align_task(&bwa)["cache_key"],
        align_task(&bwa_mem2)["cache_key"]
    );
    variants.len()
}

#[test]
fn bwa_mem2_gives_the_bam_and_vcf_records_of_bwa_on_the_test_data() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    let bwa = run_with(&ws, &input, "NA12878", "bwa");
    let bwa_mem2 = run_with(&ws, &input, "NA12878", "bwa-mem2");
    // The test data's README: 438 records with these tools.
    assert_eq!(assert_same_outputs(&bwa, &bwa_mem2, "NA12878"), 438);
    // Both indexes sit side by side in the cache (the test data's directory is read-only).
    let cached: Vec<String> = Workspace::files(&ws.path().join("cache"))
        .into_iter()
        .filter_map(|file| {
            file.split_once("ref.fa")
                .map(|(_, suffix)| suffix.to_owned())
        })
        .collect();
    assert_eq!(
        cached,
        [
            "",
            ".0123",
            ".amb",
            ".ann",
            ".bwt",
            ".bwt.2bit.64",
            ".fai",
            ".pac",
            ".provenance.json",
            ".sa"
        ]
    );
}

#[test]
fn bwa_mem2_gives_the_bam_and_vcf_records_of_bwa_on_simulated_pairs() {
    let ws = Workspace::new();
    let reference = testdata().join("ref.fa");
    let fastq = |mate: u8| ws.path().join(format!("SIM_R{mate}.fastq"));
    // wgsim (samtools' simulator): 2 x 150 bp, insert 400 +- 50, its default error and
    // mutation rates, so the VCF has the variants it planted.
    let planted = tool(
        "wgsim",
        &[
            "-S",
            WGSIM_SEED,
            "-N",
            SIMULATED_PAIRS,
            "-1",
            "150",
            "-2",
            "150",
            "-d",
            "400",
            "-s",
            "50",
            reference.to_str().unwrap(),
            fastq(1).to_str().unwrap(),
            fastq(2).to_str().unwrap(),
        ],
        ws.path(),
    );
    assert!(!planted.is_empty());
    let input = ws.input(
        &[
            ("SAMPLE_ID", "SIM".into()),
            ("REFERENCE", reference.display().to_string()),
            ("FASTQ_1", fastq(1).display().to_string()),
            ("FASTQ_2", fastq(2).display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        None,
    );
    let bwa = run_with(&ws, &input, "SIM", "bwa");
    let bwa_mem2 = run_with(&ws, &input, "SIM", "bwa-mem2");
    let variants = assert_same_outputs(&bwa, &bwa_mem2, "SIM");
    assert!(variants > 100, "{variants} variants called");
}

#[test]
fn bwa_mem2_index_that_does_not_fit_the_memory_is_refused_before_the_build() {
    let ws = Workspace::new();
    // A reference of 8,000,000 bases (one contig, 60 bases a line): its bwa-mem2 index needs
    // 28 bytes a base plus 64 MiB, more than the 256 MiB a job may be given at the least.
    let reference = ws.path().join("big.fa");
    let mut fasta = String::from(">big\n");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut line = String::with_capacity(61);
    for base in 0..8_000_000u64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        line.push(['A', 'C', 'G', 'T'][(state >> 62) as usize]);
        if base % 60 == 59 {
            line.push('\n');
            fasta.push_str(&line);
            line.clear();
        }
    }
    fasta.push_str(&line);
    fasta.push('\n');
    std::fs::write(&reference, fasta).unwrap();
    let data = testdata();
    let input = ws.input(
        &[
            ("SAMPLE_ID", "NA12878".into()),
            ("REFERENCE", reference.display().to_string()),
            (
                "FASTQ_1",
                data.join("NA12878_R1.fastq.gz").display().to_string(),
            ),
            (
                "FASTQ_2",
                data.join("NA12878_R2.fastq.gz").display().to_string(),
            ),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        None,
    );
    let output = ws.run(
        &input,
        "small",
        &["--aligner", "bwa-mem2", "--memory", "256M"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(
            "bwa-mem2 index needs about 277.6 MiB for this reference's 8000000 bases; this job \
             has 256.0 MiB: give the job more memory, or use --aligner bwa"
        ),
        "{text}"
    );
    // Nothing was built.
    let built: Vec<String> = Workspace::files(ws.path())
        .into_iter()
        .filter(|file| file.ends_with(".bwt.2bit.64") || file.ends_with(".0123"))
        .collect();
    assert_eq!(built, Vec::<String>::new());
}

#[test]
fn the_flag_wins_over_the_input_s_aligner_and_the_plan_runs_it() {
    let ws = Workspace::new();
    let input = ws.input(
        &[
            ("SAMPLE_ID", "S".into()),
            ("REFERENCE_NAME", "ref".into()),
            ("SOURCE_DATA_PREFIX", "/data".into()),
            ("JOB_OUTPUT_PREFIX", "/out".into()),
            ("BIOJOB_ALIGNER", "bwa-mem2".into()),
        ],
        None,
    );
    let plan = |extra: &[&str]| {
        let output = ws.run(&input, "plan", &[&["--dry-run"], extra].concat(), &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        crate::support::stdout(&output)
    };
    let from_input = plan(&[]);
    assert!(
        from_input.contains("\n   bwa-mem2 index -p <reference> <reference>\n"),
        "{from_input}"
    );
    assert!(from_input.contains("\n   bwa-mem2 mem -t "), "{from_input}");
    let from_flag = plan(&["--aligner", "bwa"]);
    assert!(
        from_flag.contains("\n   bwa index -p <reference> <reference>\n"),
        "{from_flag}"
    );
    assert!(from_flag.contains("\n   bwa mem -t "), "{from_flag}");
    assert!(!from_flag.contains("bwa-mem2"), "{from_flag}");
    let output = ws.run(&input, "plan", &["--dry-run", "--aligner", "bowtie2"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown aligner \"bowtie2\": choose bwa or bwa-mem2"),
        "{}",
        stderr(&output)
    );
}
