//! biojob itself killed with SIGKILL (docs/reliability.md): its tools die with it
//! (`PR_SET_PDEATHSIG`), the run manifest it wrote as each task finished is whole, and
//! `--resume` completes the run from its last finished task with the records of a clean run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::accounting::assert_only_recorded_outputs;
use crate::support::{Workspace, assert_same_records, hand_run, stderr};

const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];

/// `program` on `PATH`.
pub fn which(program: &str) -> PathBuf {
    let output = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{program} is not on PATH");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// A wrapper of the real `tool` in `dir` whose `subcommand` becomes `sleep 3600` (by `exec`:
/// the stalled process is the one biojob started) after touching `dir/stalled`.
fn stalling(dir: &Path, tool: &str, subcommand: &str) -> PathBuf {
    let path = dir.join(tool);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = {subcommand} ]; then\n  touch \"{dir}/stalled\"\n  exec sleep 3600\nfi\nexec \"{real}\" \"$@\"\n",
            dir = dir.display(),
            real = which(tool).display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The processes, other than this test's, whose environment names `workspace`: biojob's
/// tools inherit `BIOJOB_SCRATCH_DIR` under it.
pub fn processes_of(workspace: &Path) -> Vec<String> {
    let needle = workspace.display().to_string();
    let own = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == own {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if String::from_utf8_lossy(&environ).contains(&needle) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// Waits until no process names `workspace` (the kernel delivers the death signal at once;
/// the processes take a moment to go), at most 10 s.
pub fn assert_no_process_left(workspace: &Path) {
    let start = Instant::now();
    loop {
        let left = processes_of(workspace);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running after biojob was killed: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `biojob run` of the test data as run `run_id` with `tool` in place of the real one.
fn start(ws: &Workspace, run_id: &str, tool: (&str, &Path)) -> Child {
    let input = ws.demo_input(&CONTIGS);
    ws.biojob()
        .args(["run", "--input"])
        .arg(&input)
        .args(["--run-id", run_id])
        .env(tool.0, tool.1)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for `dir/stalled` and for the stalled tool to be seen among the processes of `ws`,
/// then kills `child` with SIGKILL.
fn kill_once_stalled(child: &mut Child, dir: &Path, ws: &Workspace) {
    let start = Instant::now();
    while !dir.join("stalled").exists()
        || !processes_of(ws.path())
            .iter()
            .any(|process| process.ends_with("sleep 3600 "))
    {
        assert_eq!(child.try_wait().unwrap(), None, "the run ended first");
        assert!(start.elapsed() < Duration::from_secs(120), "never stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

fn manifest(run_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap()
}

/// `step contig status` of each task.
fn tasks(manifest: &serde_json::Value) -> Vec<String> {
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {} {}",
                t["step"].as_str().unwrap(),
                t["contig"].as_str().unwrap_or("-"),
                t["status"].as_str().unwrap()
            )
        })
        .collect()
}

/// The lines `reused: …` and `ran: …` of a run.
fn summary(output: &std::process::Output) -> String {
    stderr(output)
        .lines()
        .filter(|line| line.starts_with("reused: ") || line.starts_with("ran: "))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn biojob_killed_mid_align_leaves_no_tool_running_and_a_resume_completes_the_run() {
    let ws = Workspace::new();
    let tools = ws.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let bwa = stalling(&tools, "bwa", "mem");
    let mut child = start(&ws, "killed", ("BIOJOB_BWA", &bwa));
    kill_once_stalled(&mut child, &tools, &ws);
    assert_no_process_left(ws.path());
    let run_dir = ws.out().join("NA12878").join("killed");
    // The manifest of the run so far, whole: the reference prepared, nothing else finished.
    let killed = manifest(&run_dir);
    assert_eq!(killed["status"], "running");
    assert_eq!(tasks(&killed), ["prepare-reference - succeeded"]);
    assert_only_published(&run_dir, &["manifest.json"]);

    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(&input, "killed", &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: none\nran: prepare-reference, align, call chr20, call chr22, call chrM, gather, qc\n"
    );
    assert_same_records(&run_dir.join("NA12878.vcf.gz"), &hand_run().vcf);
    assert_only_recorded_outputs(&ws, &run_dir);
}

#[test]
fn biojob_killed_mid_call_resumes_with_the_finished_alignment() {
    let ws = Workspace::new();
    let tools = ws.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let bcftools = stalling(&tools, "bcftools", "mpileup");
    let mut child = start(&ws, "killed", ("BIOJOB_BCFTOOLS", &bcftools));
    kill_once_stalled(&mut child, &tools, &ws);
    assert_no_process_left(ws.path());
    let run_dir = ws.out().join("NA12878").join("killed");
    let killed = manifest(&run_dir);
    assert_eq!(killed["status"], "running");
    assert_eq!(
        tasks(&killed),
        ["prepare-reference - succeeded", "align - succeeded"]
    );
    assert_only_published(
        &run_dir,
        &[
            "NA12878.align.bam",
            "NA12878.align.bam.bai",
            "manifest.json",
        ],
    );

    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(&input, "killed", &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align\nran: prepare-reference, call chr20, call chr22, call chrM, gather, qc\n"
    );
    assert_same_records(&run_dir.join("NA12878.vcf.gz"), &hand_run().vcf);
    assert_only_recorded_outputs(&ws, &run_dir);
}

/// The files of a killed run's directory are exactly `expected` (no logs: biojob publishes
/// them at the end) and the run lock it held, which the next run takes over since its process
/// is gone (docs/reliability.md, "One run at a time").
fn assert_only_published(run_dir: &Path, expected: &[&str]) {
    let mut with_lock = vec![".biojob-run.lock"];
    with_lock.extend_from_slice(expected);
    assert_eq!(Workspace::files(run_dir), with_lock);
}
