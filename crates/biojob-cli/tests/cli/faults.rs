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
    stopped_run_of(ws, &ws.demo_input(&CONTIGS), run_id, extra, stall_on)
}

/// As [`stopped_run`], of the execution input `input`.
fn stopped_run_of(
    ws: &Workspace,
    input: &Path,
    run_id: &str,
    extra: &[&str],
    stall_on: &str,
) -> Output {
    let dir = ws.path().join("tools");
    let _ = std::fs::remove_file(dir.join("stalled"));
    let mut command = ws.biojob();
    command
        .args(["run", "--input"])
        .arg(input)
        .args(["--run-id", run_id, "--resume"])
        .args(extra)
        .env("STALL_ON", stall_on)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (variable, path) in stalling_tools(&dir) {
        command.env(variable, path);
    }
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    while !dir.join("stalled").exists()
        || !processes_of(ws.path())
            .iter()
            .any(|process| process.ends_with("sleep 3600 "))
    {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "the run ended before {stall_on} stalled: {}",
                stderr(&output)
            );
        }
        if start.elapsed() > Duration::from_secs(600) {
            child.kill().unwrap();
            panic!("{stall_on} never stalled");
        }
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
            // QC's BAM part (samtools flagstat and stats) runs beside calling; the qc task's
            // own tool is bcftools stats.
            "bcftools stats",
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

/// A cohort stopped while its first sample's VCF is selected from the joint calls: 143, no
/// tool left, nothing published that no finished task records; a resume reuses every
/// sample's alignment and every joint call and completes the cohort.
#[test]
fn sigterm_during_a_cohort_s_sample_vcf_exits_143_and_a_resume_completes_the_cohort() {
    let ws = Workspace::new();
    // NA12878's first lane and the simulated sample.
    let mut sheet = String::from("sample,lane,fastq_1,fastq_2\n");
    for (sample, lane, fastq_1, fastq_2) in crate::cohort::sheet_rows() {
        if sample == "SIM" || !sheet.contains("NA12878") {
            sheet.push_str(&format!(
                "{sample},{lane},{},{}\n",
                fastq_1.display(),
                fastq_2.display()
            ));
        }
    }
    let sheet_path = ws.path().join("samples.csv");
    std::fs::write(&sheet_path, sheet).unwrap();
    let input = crate::cohort::cohort_input(&ws, &sheet_path);
    let run_dir = ws.out().join("stopped");
    let output = stopped_run_of(&ws, &input, "stopped", &[], "bcftools view");
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(
        error_line(&output).starts_with("error: sample-vcf NA12878"),
        "{}",
        stderr(&output)
    );
    assert_no_process_left(ws.path());
    let stopped = manifest(&run_dir);
    assert_eq!(stopped["exit_code"], 143);
    let done = finished(&stopped);
    assert!(done.contains(&"gather -".to_owned()), "{done:?}");
    assert!(
        !done.iter().any(|task| task.starts_with("sample-vcf")),
        "{done:?}"
    );
    assert_only_recorded_outputs(&ws, &run_dir);

    let output = ws.run(&input, "stopped", &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let resumed = manifest(&run_dir);
    let statuses: Vec<(String, String)> = resumed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| {
            (
                task["step"].as_str().unwrap().to_owned(),
                task["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (step, status) in &statuses {
        let expected = match step.as_str() {
            "merge" | "call" | "gather" => "cached",
            _ => "succeeded",
        };
        assert_eq!(status, expected, "{step}: {statuses:?}");
    }
    for sample in ["NA12878", "SIM"] {
        assert!(
            run_dir
                .join(format!("samples/{sample}/{sample}.vcf.gz"))
                .exists()
        );
    }
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
