//! Record accounting between steps (docs/reliability.md): a clean run records its counts at
//! every boundary, and a tool that loses records while exiting 0 fails its step with the
//! output-invalid class (31), the message naming both counts, nothing published under a final
//! name.

use std::path::Path;
use std::process::Output;

use crate::support::{Workspace, fake_tool, records, stderr};

/// Read pairs in the test data's FASTQ pair.
const PAIRS: u64 = 13_860;

/// The `error:` and `exit class:` lines of biojob's stderr.
fn error_lines(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("exit class: "))
        .map(str::to_owned)
        .collect()
}

fn manifest(run_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap()
}

/// The tasks of `step` in the manifest.
fn tasks<'a>(manifest: &'a serde_json::Value, step: &str) -> Vec<&'a serde_json::Value> {
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|task| task["step"] == step)
        .collect()
}

/// Asserts that every file under the run directory but the manifest and the logs is an
/// output that the manifest records for a finished task (a cohort's task of one sample: under
/// `samples/<sample>/`), that no partial file is left, and
/// that the scratch root is empty.
pub fn assert_only_recorded_outputs(ws: &Workspace, run_dir: &Path) {
    let manifest = manifest(run_dir);
    let recorded: Vec<String> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|task| task["status"] == "succeeded" || task["status"] == "cached")
        .flat_map(|task| {
            // A cohort's task of one sample publishes into the sample's directory.
            let dir = task["sample"]
                .as_str()
                .map_or(String::new(), |sample| format!("samples/{sample}/"));
            task["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |output| format!("{dir}{}", output["name"].as_str().unwrap()))
        })
        .collect();
    for file in Workspace::files(run_dir) {
        if file.starts_with("logs/") || file == "manifest.json" {
            continue;
        }
        assert!(
            recorded.contains(&file),
            "{file} is under its final name but no finished task records it"
        );
    }
    assert_eq!(
        Workspace::files(&ws.path().join("scratch")),
        Vec::<String>::new(),
        "scratch left behind"
    );
}

#[test]
fn a_clean_run_records_its_counts_at_every_boundary() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20", "chr22", "chrM"]);
    let output = ws.run(&input, "counted", &[], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run_dir = ws.out().join("NA12878").join("counted");
    let manifest = manifest(&run_dir);
    let align = tasks(&manifest, "align")[0];
    assert_eq!(align["records"]["read_pairs"], PAIRS);
    assert_eq!(align["records"]["bam"]["primary"], 2 * PAIRS);
    let bam = &align["records"]["bam"];
    assert_eq!(
        bam["records"].as_u64().unwrap(),
        bam["primary"].as_u64().unwrap()
            + bam["secondary"].as_u64().unwrap()
            + bam["supplementary"].as_u64().unwrap()
    );
    let calls: u64 = tasks(&manifest, "call")
        .iter()
        .map(|task| task["records"]["vcf_records"].as_u64().unwrap())
        .sum();
    let gathered = tasks(&manifest, "gather")[0]["records"]["vcf_records"]
        .as_u64()
        .unwrap();
    assert_eq!(gathered, calls);
    assert_eq!(
        records(&run_dir.join("NA12878.vcf.gz")).len() as u64,
        gathered
    );
    // Every output was read back after it was published.
    for task in manifest["tasks"].as_array().unwrap() {
        for published in task["outputs"].as_array().unwrap() {
            assert_eq!(
                published["verified"],
                format!("read back: {} bytes, SHA-256", published["bytes"]),
                "{published}"
            );
        }
    }
}

#[test]
fn a_sort_that_drops_records_fails_align_with_the_output_class_and_both_counts() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let samtools = fake_tool("samtools-drops-records");
    let output = ws.run(&input, "sorted", &[], &[("BIOJOB_SAMTOOLS", &samtools)]);
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let bam = ws.path().join("scratch/sorted/1/NA12878.align.bam.partial");
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: align failed: {}: {} primary alignment records, but biojob fed the \
                 aligner {PAIRS} read pairs ({} reads): 3 lost",
                bam.display(),
                2 * PAIRS - 3,
                2 * PAIRS
            ),
            "exit class: output_invalid (31)".to_owned(),
        ]
    );
    let run_dir = ws.out().join("NA12878").join("sorted");
    assert_only_recorded_outputs(&ws, &run_dir);
    assert!(!run_dir.join("NA12878.align.bam").exists());
}

#[test]
fn an_aligner_that_cuts_its_output_short_fails_align_with_the_output_class() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let bwa = fake_tool("bwa-truncates");
    let output = ws.run(&input, "cut", &[], &[("BIOJOB_BWA", &bwa)]);
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let bam = ws.path().join("scratch/cut/1/NA12878.align.bam.partial");
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: align failed: {}: {} primary alignment records, but biojob fed the \
                 aligner {PAIRS} read pairs ({} reads): 4 lost",
                bam.display(),
                2 * PAIRS - 4,
                2 * PAIRS
            ),
            "exit class: output_invalid (31)".to_owned(),
        ]
    );
    assert_only_recorded_outputs(&ws, &ws.out().join("NA12878").join("cut"));
}

#[test]
fn a_merge_that_drops_records_fails_with_the_output_class_and_both_counts() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let samtools = fake_tool("samtools-drops-records");
    let mut command = ws.biojob();
    command
        .args(["run", "--input"])
        .arg(&input)
        .args(["--run-id", "merged", "--chunk-pairs", "5000"])
        .env("BIOJOB_SAMTOOLS", &samtools)
        .env("DROP_IN", "merge");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let run_dir = ws.out().join("NA12878").join("merged");
    let manifest = manifest(&run_dir);
    let chunks: Vec<&serde_json::Value> = tasks(&manifest, "align");
    assert_eq!(chunks.len(), 3);
    let pairs: u64 = chunks
        .iter()
        .map(|task| task["records"]["read_pairs"].as_u64().unwrap())
        .sum();
    assert_eq!(pairs, PAIRS);
    let held: u64 = chunks
        .iter()
        .map(|task| task["records"]["bam"]["records"].as_u64().unwrap())
        .sum();
    let bam = ws.path().join("scratch/merged/1/NA12878.align.bam.partial");
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: merge failed: {}: {} records, but its 3 chunks hold {held} (as their align \
                 tasks counted them): 3 lost",
                bam.display(),
                held - 3
            ),
            "exit class: output_invalid (31)".to_owned(),
        ]
    );
    assert_only_recorded_outputs(&ws, &run_dir);
}

#[test]
fn a_concat_that_drops_a_record_fails_gather_with_the_output_class_and_both_counts() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20", "chr22", "chrM"]);
    let bcftools = fake_tool("bcftools-drops-records");
    let output = ws.run(&input, "gathered", &[], &[("BIOJOB_BCFTOOLS", &bcftools)]);
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let run_dir = ws.out().join("NA12878").join("gathered");
    let manifest = manifest(&run_dir);
    let held: u64 = tasks(&manifest, "call")
        .iter()
        .map(|task| task["records"]["vcf_records"].as_u64().unwrap())
        .sum();
    let vcf = ws.path().join("scratch/gathered/1/NA12878.vcf.gz.partial");
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: gather failed: {}: {} records, but its 3 shards' VCFs hold {held}: 1 lost",
                vcf.display(),
                held - 1
            ),
            "exit class: output_invalid (31)".to_owned(),
        ]
    );
    assert_only_recorded_outputs(&ws, &run_dir);
    assert!(!run_dir.join("NA12878.vcf.gz").exists());
    // The shards' VCFs stand, each recorded: a resume reuses them and gathers again.
    let resumed = ws.run(&input, "gathered", &["--resume"], &[]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(records(&run_dir.join("NA12878.vcf.gz")).len() as u64, held);
}
