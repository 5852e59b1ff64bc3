//! Failures: each with its exit class, its exact message, and nothing published but the
//! manifest and the logs.

use std::path::Path;
use std::process::Output;

use crate::support::{Workspace, fake_tool, stderr, testdata};

/// The `error:`, `hint:` and `exit class:` lines of biojob's stderr.
fn error_lines(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter(|l| {
            l.starts_with("error: ") || l.starts_with("hint: ") || l.starts_with("exit class: ")
        })
        .map(str::to_owned)
        .collect()
}

/// What a failed run left under its output directory: the manifest and logs only, no partial
/// file anywhere, no scratch left behind. Returns the manifest.
fn assert_nothing_published(ws: &Workspace, run_id: &str, exit_code: u8) -> serde_json::Value {
    let run_dir = ws.out().join("NA12878").join(run_id);
    let files = Workspace::files(&run_dir);
    let outputs: Vec<&String> = files
        .iter()
        .filter(|f| !f.starts_with("logs/") && *f != "manifest.json")
        .collect();
    assert_eq!(
        outputs,
        Vec::<&String>::new(),
        "published despite the failure"
    );
    assert_eq!(
        Workspace::files(&ws.path().join("scratch")),
        Vec::<String>::new()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "failed");
    assert_eq!(manifest["exit_code"], exit_code);
    manifest
}

#[test]
fn bwa_killed_mid_stream_fails_the_step_with_the_killed_class() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let bwa = fake_tool("fake-bwa-killed");
    let output = ws.run(&input, "killed", &[], &[("BIOJOB_BWA", &bwa)]);
    assert_eq!(output.status.code(), Some(21), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: align failed: bwa-mem was killed by SIGKILL: [M::process] read 1000 sequences",
            "hint: SIGKILL not sent by biojob usually comes from the kernel's out-of-memory killer: \
             give the job more memory (stderr in logs/bwa-mem.stderr)",
            "exit class: tool_killed (21)",
        ]
    );
    let manifest = assert_nothing_published(&ws, "killed", 21);
    let align = &manifest["tasks"][1];
    assert_eq!(align["step"], "align");
    assert_eq!(align["status"], "failed");
    assert_eq!(align["exit_class"], "tool_killed");
    assert_eq!(align["commands"][0]["label"], "bwa-mem");
    assert_eq!(align["commands"][0]["exit"], "killed by SIGKILL");
    let logs = ws.out().join("NA12878/killed/logs/bwa-mem.stderr");
    assert_eq!(
        std::fs::read_to_string(logs).unwrap(),
        "[M::process] read 1000 sequences\n"
    );
}

#[test]
fn bwa_exiting_1_fails_the_step_with_its_stderr() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let bwa = fake_tool("fake-bwa-fails");
    let output = ws.run(&input, "fails", &[], &[("BIOJOB_BWA", &bwa)]);
    assert_eq!(output.status.code(), Some(20), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: align failed: bwa-mem exited with status 1: \
             [E::bwa_idx_load_from_disk] fail to locate the index files",
            "hint: see logs/bwa-mem.stderr for the whole stderr",
            "exit class: tool_failed (20)",
        ]
    );
    assert_nothing_published(&ws, "fails", 20);
}

#[test]
fn contig_named_without_chr_is_refused_before_any_tool_runs() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["20", "chr22"]);
    let output = ws.run(&input, "contig", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let fai = testdata().join("ref.fa.fai");
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: prepare-reference failed: contig \"20\" is not in the reference {} \
                 (requested but missing: 20); available: chr20, chr22, chrM",
                fai.display()
            ),
            "hint: the reference names contigs differently; use \"20\" → \"chr20\" in params.chromosomes"
                .to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    let manifest = assert_nothing_published(&ws, "contig", 11);
    // Nothing was built or aligned: only the version probes ran.
    assert_eq!(manifest["tasks"][0]["commands"], serde_json::json!([]));
    assert_eq!(
        Workspace::files(&ws.out().join("NA12878/contig")),
        ["manifest.json"]
    );
}

#[test]
fn missing_fastq_is_refused_before_any_tool_runs() {
    let ws = Workspace::new();
    let reference = testdata().join("ref.fa");
    let input = ws.input(
        &[
            ("REFERENCE", reference.display().to_string()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", ws.path().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chr20"]),
    );
    let output = ws.run(&input, "missing", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: FASTQ_1 {}/NA12878_R1.fastq.gz cannot be read: No such file or directory (os error 2)",
                ws.path().display()
            ),
            "hint: check SOURCE_DATA_PREFIX and SAMPLE_ID (files are named NA12878_R1.fastq.gz \
             and NA12878_R2.fastq.gz), or give FASTQ_1 and FASTQ_2"
                .to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    assert_nothing_published(&ws, "missing", 11);
    assert_eq!(
        Workspace::files(&ws.out().join("NA12878/missing")),
        ["manifest.json"]
    );
}

#[test]
fn truncated_fastq_gzip_fails_align_with_the_input_class() {
    let ws = Workspace::new();
    let whole = std::fs::read(testdata().join("NA12878_R1.fastq.gz")).unwrap();
    let truncated = ws.path().join("truncated_R1.fastq.gz");
    std::fs::write(&truncated, &whole[..500_000]).unwrap();
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("FASTQ_1", truncated.display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chr20"]),
    );
    let output = ws.run(&input, "truncated", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let path = truncated.display();
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: align failed: {path}: gzip stream ends early (truncated file?) after \
                 record 7920: incomplete deflate stream"
            ),
            format!("hint: the file is damaged; upload it again (`gzip -t {path}` checks a copy)"),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    let manifest = assert_nothing_published(&ws, "truncated", 11);
    assert_eq!(manifest["tasks"][1]["exit_class"], "input_invalid");
    assert!(!Path::new(&format!("{path}.partial")).exists());
}
