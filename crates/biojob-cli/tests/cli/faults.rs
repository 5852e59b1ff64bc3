//! Rows of the fault matrix (docs/reliability.md) not covered elsewhere: SIGTERM in every
//! step, a pileup cut short, two runs sharing a cache and a scratch root. Each fault gives its
//! class, leaves nothing under a final name that no finished task records, no tool running and
//! no scratch, and a `--resume` completes with the records of a clean run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::accounting::assert_only_recorded_outputs;
use crate::kills::{assert_no_process_left, processes_of, which};
use crate::support::{Workspace, assert_same_records, fake_tool, hand_run, stderr, testdata};

const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];

/// Wrappers of the real bwa, samtools and bcftools in `dir`: each runs the real tool, except
/// when `<tool> <subcommand>` is the `STALL_ON` environment variable; then it touches
/// `dir/stalled` and becomes `sleep 3600` (by `exec`: the process biojob started stalls).
fn stalling_tools(dir: &Path) -> [(&'static str, PathBuf); 3] {
    std::fs::create_dir_all(dir).unwrap();
    [
        ("BIOJOB_BWA", "bwa"),
        ("BIOJOB_SAMTOOLS", "samtools"),
        ("BIOJOB_BCFTOOLS", "bcftools"),
    ]
    .map(|(variable, tool)| {
        let path = dir.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nif [ \"{tool} ${{1:-}}\" = \"${{STALL_ON:-}}\" ]; then\n  touch \"{dir}/stalled\"\n  exec sleep 3600\nfi\nexec \"{real}\" \"$@\"\n",
                dir = dir.display(),
                real = which(tool).display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (variable, path)
    })
}

/// Runs `biojob run --resume` of the test data as run `run_id` with the stalling tools; once
/// `stall_on` has stalled (seen among the workspace's processes), sends biojob SIGTERM.
/// Returns biojob's output.
fn stopped_run(ws: &Workspace, run_id: &str, extra: &[&str], stall_on: &str) -> Output {
    let dir = ws.path().join("tools");
    let _ = std::fs::remove_file(dir.join("stalled"));
    let input = ws.demo_input(&CONTIGS);
    let mut command = ws.biojob();
    command
        .args(["run", "--input"])
        .arg(&input)
        .args(["--run-id", run_id, "--resume"])
        .args(extra)
        .env("STALL_ON", stall_on)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (variable, path) in stalling_tools(&dir) {
        command.env(variable, path);
    }
    let child = command.spawn().unwrap();
    let start = Instant::now();
    while !dir.join("stalled").exists()
        || !processes_of(ws.path())
            .iter()
            .any(|process| process.ends_with("sleep 3600 "))
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{stall_on} never stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait_with_output().unwrap()
}

/// The `error:` line of a run's stderr.
fn error_line(output: &Output) -> String {
    stderr(output)
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default()
        .to_owned()
}

fn manifest(run_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap()
}

/// `step contig status` of each finished task.
fn finished(manifest: &serde_json::Value) -> Vec<String> {
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "succeeded" || t["status"] == "cached")
        .map(|t| {
            format!(
                "{} {}",
                t["step"].as_str().unwrap(),
                t["contig"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

#[test]
fn sigterm_in_every_step_exits_143_and_the_resumes_complete_a_clean_run() {
    let ws = Workspace::new();
    let run_dir = ws.out().join("NA12878").join("stopped");
    // One run per step, each stopped while that step's tool runs; each resume reuses what
    // the runs before it finished.
    let steps: [(&str, &str, &[&str]); 5] = [
        ("bwa index", "prepare-reference", &[]),
        ("bwa mem", "align", &["prepare-reference -"]),
        (
            "bcftools mpileup",
            "call",
            &["prepare-reference -", "align -"],
        ),
        (
            "bcftools concat",
            "gather",
            &[
                "prepare-reference -",
                "align -",
                "call chr20",
                "call chr22",
                "call chrM",
            ],
        ),
        (
            "samtools flagstat",
            "qc",
            &[
                "prepare-reference -",
                "align -",
                "call chr20",
                "call chr22",
                "call chrM",
                "gather -",
            ],
        ),
    ];
    for (stall_on, step, before) in steps {
        let output = stopped_run(&ws, "stopped", &[], stall_on);
        assert_eq!(
            output.status.code(),
            Some(143),
            "{stall_on}: {}",
            stderr(&output)
        );
        assert!(
            error_line(&output).starts_with(&format!("error: {step}")),
            "{stall_on}: {}",
            stderr(&output)
        );
        assert_no_process_left(ws.path());
        let stopped = manifest(&run_dir);
        assert_eq!(stopped["exit_code"], 143);
        assert_eq!(finished(&stopped), before, "{stall_on}");
        assert_only_recorded_outputs(&ws, &run_dir);
    }
    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(&input, "stopped", &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_same_records(&run_dir.join("NA12878.vcf.gz"), &hand_run().vcf);
    assert_only_recorded_outputs(&ws, &run_dir);
}

#[test]
fn sigterm_during_merge_exits_143_and_a_resume_completes_the_run() {
    let ws = Workspace::new();
    let run_dir = ws.out().join("NA12878").join("merge");
    let chunks = ["--chunk-pairs", "5000"];
    let output = stopped_run(&ws, "merge", &chunks, "samtools merge");
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(
        error_line(&output).starts_with("error: merge failed: "),
        "{}",
        stderr(&output)
    );
    assert_no_process_left(ws.path());
    assert_only_recorded_outputs(&ws, &run_dir);
    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(&input, "merge", &["--resume", "--chunk-pairs", "5000"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(manifest(&run_dir)["read_pairs"], 13_860);
    assert_only_recorded_outputs(&ws, &run_dir);
}

#[test]
fn a_pileup_cut_short_fails_call_with_the_output_class() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let bcftools = fake_tool("bcftools-truncates-mpileup");
    let output = ws.run(&input, "pileup", &[], &[("BIOJOB_BCFTOOLS", &bcftools)]);
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let vcf = ws
        .path()
        .join("scratch/pileup/1/NA12878.call.0000.vcf.gz.partial");
    assert_eq!(
        error_line(&output),
        format!(
            "error: call chr20 failed: {}: bcftools-mpileup.chr20 exited 0, but its output \
             ended after 20000 bytes without the BGZF EOF block: the pileup was cut short",
            vcf.display()
        )
    );
    let run_dir = ws.out().join("NA12878").join("pileup");
    assert_only_recorded_outputs(&ws, &run_dir);
    assert!(!run_dir.join("NA12878.call.0000.vcf.gz").exists());
    let output = ws.run(&input, "pileup", &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_same_records(&run_dir.join("NA12878.vcf.gz"), &hand_run().per_contig[0].1);
}

#[test]
fn two_runs_of_different_samples_at_once_share_the_cache_and_scratch_root() {
    let ws = Workspace::new();
    // A second sample: the same reads under another name.
    let source = ws.path().join("samples");
    std::fs::create_dir_all(&source).unwrap();
    for sample in ["NA12878", "HG001"] {
        for read in ["R1", "R2"] {
            std::fs::copy(
                testdata().join(format!("NA12878_{read}.fastq.gz")),
                source.join(format!("{sample}_{read}.fastq.gz")),
            )
            .unwrap();
        }
    }
    // Each its own run id: two runs with one id and attempt on one host would share a
    // scratch directory, which its lock refuses (usage class).
    let runs: Vec<std::process::Child> = ["NA12878", "HG001"]
        .iter()
        .map(|sample| {
            let input = ws.path().join(format!("{sample}.json"));
            std::fs::write(
                &input,
                serde_json::json!({"params": {"queue": "local", "environment": {
                    "REFERENCE": testdata().join("ref.fa").display().to_string(),
                    "SAMPLE_ID": sample,
                    "SOURCE_DATA_PREFIX": source.display().to_string(),
                    "JOB_OUTPUT_PREFIX": ws.out().display().to_string(),
                }, "chromosomes": CONTIGS}})
                .to_string(),
            )
            .unwrap();
            ws.biojob()
                .args(["run", "--input"])
                .arg(&input)
                .args(["--run-id", &format!("shared-{sample}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let hand = &hand_run().vcf;
    for sample in ["NA12878", "HG001"] {
        let run_dir = ws.out().join(sample).join(format!("shared-{sample}"));
        let vcf = run_dir.join(format!("{sample}.vcf.gz"));
        // The same reads give the same records; only the sample column's name differs.
        let ours: Vec<String> = crate::support::records(&vcf);
        assert_eq!(ours, crate::support::records(hand), "{sample}");
        assert_only_recorded_outputs(&ws, &run_dir);
    }
    // The reference's bwa index was built in the shared cache, whole.
    let cache = Workspace::files(&ws.path().join("cache"));
    assert!(
        cache
            .iter()
            .all(|file| !file.contains("partial") && !file.contains(".tmp")),
        "{cache:?}"
    );
}
