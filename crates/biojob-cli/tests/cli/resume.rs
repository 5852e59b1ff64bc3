//! `biojob run --resume` on the real data: which steps an earlier run's manifest lets a run
//! reuse, and that the reused outputs are the earlier ones.
//!
//! One baseline run (once per test process) is copied into each test's workspace under the
//! same run id; each test then changes one thing and resumes.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use crate::support::{Workspace, records, stderr, testdata, tool};

const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];
const RUN_ID: &str = "base";

/// The baseline run, made once: its workspace and run directory.
struct Baseline {
    workspace: Workspace,
}

impl Baseline {
    fn run_dir(&self) -> PathBuf {
        self.workspace.out().join("NA12878").join(RUN_ID)
    }
}

fn baseline() -> &'static Baseline {
    static BASELINE: OnceLock<Baseline> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let workspace = Workspace {
            dir: tempfile::Builder::new()
                .prefix("resume-baseline-")
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .unwrap(),
        };
        let input = workspace.demo_input(&CONTIGS);
        let output = workspace.run(&input, RUN_ID, &[], &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        Baseline { workspace }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A workspace holding a copy of the baseline run under the same run id.
fn workspace_with_baseline() -> Workspace {
    let ws = Workspace::new();
    copy_dir(
        &baseline().run_dir(),
        &ws.out().join("NA12878").join(RUN_ID),
    );
    ws
}

/// The execution input with the FASTQs in `fastq_dir` and the reference from the test data.
fn input_with_fastqs(ws: &Workspace, fastq_dir: &Path) -> PathBuf {
    ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("REFERENCE_PREFIX", testdata().display().to_string()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", fastq_dir.display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&CONTIGS),
    )
}

/// The lines `reused: …`, `ran: …` and `failed: …` that a resumed run prints.
fn summary(output: &std::process::Output) -> String {
    stderr(output)
        .lines()
        .filter(|line| {
            line.starts_with("reused: ")
                || line.starts_with("ran: ")
                || line.starts_with("failed: ")
        })
        .map(|line| format!("{line}\n"))
        .collect()
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

/// The cache key of each task that has one, as `step contig key`.
fn keys(manifest: &serde_json::Value) -> Vec<(String, String)> {
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            Some((
                format!(
                    "{} {}",
                    t["step"].as_str().unwrap(),
                    t["contig"].as_str().unwrap_or("-")
                ),
                t["cache_key"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The contents of the step outputs of a run directory (not the manifest, the logs or the QC
/// files, which describe the run itself), by name.
fn step_outputs(run_dir: &Path) -> Vec<(String, Vec<u8>)> {
    Workspace::files(run_dir)
        .into_iter()
        .filter(|name| name.ends_with(".bam") || name.contains(".vcf.gz") || name.ends_with(".bai"))
        .map(|name| {
            let bytes = std::fs::read(run_dir.join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

fn gzip(text: &[u8], path: &Path) {
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap();
}

/// Copies the FASTQ pair into `dir`, unchanged.
fn copy_fastqs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for read in ["R1", "R2"] {
        let name = format!("NA12878_{read}.fastq.gz");
        std::fs::copy(testdata().join(&name), dir.join(&name)).unwrap();
    }
}

#[test]
fn a_second_resumed_run_reuses_every_step_and_keeps_its_outputs() {
    let ws = workspace_with_baseline();
    // The same content at another path: the keys follow content, not location.
    let fastqs = ws.path().join("fastq");
    copy_fastqs(&fastqs);
    let input = input_with_fastqs(&ws, &fastqs);
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    let output = ws.run(&input, RUN_ID, &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr20, call chr22, call chrM, gather\nran: prepare-reference, qc\n"
    );
    let stderr_text = stderr(&output);
    assert!(
        stderr_text.contains("reused from the earlier run task=call chr22"),
        "{stderr_text}"
    );
    // No alignment or calling command ran.
    for label in ["bwa-mem", "bcftools-call", "bcftools-concat"] {
        assert!(
            !stderr_text.contains(&format!("started tool={label}")),
            "{label} ran: {stderr_text}"
        );
    }
    let resumed = manifest(&run_dir);
    assert_eq!(
        tasks(&resumed),
        [
            "prepare-reference - succeeded",
            "align - cached",
            "call chr20 cached",
            "call chr22 cached",
            "call chrM cached",
            "gather - cached",
            "qc - succeeded",
        ]
    );
    let earlier = manifest(&baseline().run_dir());
    assert_eq!(keys(&resumed), keys(&earlier));
    assert_eq!(keys(&resumed).len(), 5);
    assert_eq!(resumed["read_pairs"], 13860);
    assert_eq!(resumed["status"], "succeeded");
    // Cached tasks list the outputs they reused, at their place in this run directory.
    let align = &resumed["tasks"][1];
    assert_eq!(align["commands"], serde_json::json!([]));
    assert_eq!(
        align["outputs"][0]["uri"],
        run_dir.join("NA12878.align.bam").display().to_string()
    );
    assert_eq!(
        align["outputs"][0]["sha256"],
        earlier["tasks"][1]["outputs"][0]["sha256"]
    );
    // Every step output is byte for byte the earlier one.
    let outputs = step_outputs(&run_dir);
    assert_eq!(outputs.len(), 10);
    assert_eq!(outputs, step_outputs(&baseline().run_dir()));
    // And a third run resumes from the second's manifest just the same.
    let output = ws.run(&input, RUN_ID, &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr20, call chr22, call chrM, gather\nran: prepare-reference, qc\n"
    );
}

#[test]
fn one_changed_byte_of_read_2_reruns_align_and_everything_after_it() {
    let ws = workspace_with_baseline();
    let fastqs = ws.path().join("fastq");
    copy_fastqs(&fastqs);
    // One base of the first read of R2 changed: the 2nd line's first character.
    let r2 = fastqs.join("NA12878_R2.fastq.gz");
    let mut text = gunzip(&r2);
    let first_base = text.iter().position(|b| *b == b'\n').unwrap() + 1;
    text[first_base] = if text[first_base] == b'A' { b'C' } else { b'A' };
    gzip(&text, &r2);
    let input = input_with_fastqs(&ws, &fastqs);
    let output = ws.run(&input, RUN_ID, &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: none\nran: prepare-reference, align, call chr20, call chr22, call chrM, gather, qc\n"
    );
    let resumed = manifest(&ws.out().join("NA12878").join(RUN_ID));
    let earlier = manifest(&baseline().run_dir());
    let (new_keys, old_keys) = (keys(&resumed), keys(&earlier));
    assert_eq!(new_keys.len(), 5);
    for (new, old) in new_keys.iter().zip(&old_keys) {
        assert_eq!(new.0, old.0);
        assert_ne!(new.1, old.1, "{} kept its key", new.0);
    }
}

/// A bcftools that reports another version and otherwise is `bcftools`.
fn relabelled_bcftools(dir: &Path) -> PathBuf {
    let real = which("bcftools");
    let path = dir.join("bcftools");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then\n  \"{real}\" --version | sed '1s/$/+rebuilt/'\n  exit 0\nfi\nexec \"{real}\" \"$@\"\n",
            real = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn which(program: &str) -> PathBuf {
    let output = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "{program} is not on PATH");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[test]
fn another_calling_tool_version_reruns_call_and_gather_but_not_align() {
    let ws = workspace_with_baseline();
    let bcftools = relabelled_bcftools(ws.path());
    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(
        &input,
        RUN_ID,
        &["--resume"],
        &[("BIOJOB_BCFTOOLS", &bcftools)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align\nran: prepare-reference, call chr20, call chr22, call chrM, gather, qc\n"
    );
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    let resumed = manifest(&run_dir);
    let bcftools_version = resumed["tools"][2]["version"].as_str().unwrap();
    assert!(bcftools_version.ends_with("+rebuilt"), "{bcftools_version}");
    // The BAM is the earlier one; the calls are the same records.
    assert_eq!(
        std::fs::read(run_dir.join("NA12878.align.bam")).unwrap(),
        std::fs::read(baseline().run_dir().join("NA12878.align.bam")).unwrap()
    );
    assert_eq!(
        records(&run_dir.join("NA12878.vcf.gz")),
        records(&baseline().run_dir().join("NA12878.vcf.gz"))
    );
}

#[test]
fn a_deleted_contig_vcf_reruns_that_shard_and_the_gather() {
    let ws = workspace_with_baseline();
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    std::fs::remove_file(run_dir.join("NA12878.call.0001.vcf.gz")).unwrap();
    let input = ws.demo_input(&CONTIGS);
    // Through the environment this time.
    let mut command = ws.biojob();
    let output = command
        .args(["run", "--input"])
        .arg(&input)
        .args(["--run-id", RUN_ID])
        .env("BIOJOB_RESUME", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr20, call chrM\nran: prepare-reference, call chr22, gather, qc\n"
    );
    assert_eq!(
        tasks(&manifest(&run_dir)),
        [
            "prepare-reference - succeeded",
            "align - cached",
            "call chr20 cached",
            "call chr22 succeeded",
            "call chrM cached",
            "gather - succeeded",
            "qc - succeeded",
        ]
    );
    // Each task that ran says why it was not reused; reused ones and those without a cache
    // key say nothing.
    let reasons: Vec<String> = manifest(&run_dir)["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rerun_reason"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            format!(
                "the earlier output {} is missing or changed size",
                run_dir.join("NA12878.call.0001.vcf.gz").display()
            ),
            "-".to_owned(),
            // The new chr22 VCF has another header (bcftools records the command and date),
            // so the gather's inputs, and its key, changed.
            "no earlier task finished with this cache key (none finished, or an input, a tool \
             version, an argument or a setting changed)"
                .to_owned(),
            "-".to_owned(),
        ]
    );
    assert_eq!(
        records(&run_dir.join("NA12878.call.0001.vcf.gz")),
        records(&baseline().run_dir().join("NA12878.call.0001.vcf.gz"))
    );
    assert_eq!(records(&run_dir.join("NA12878.vcf.gz")).len(), 438);
}

#[test]
fn no_resume_overrides_the_environment_and_resume_needs_a_run_id() {
    let ws = workspace_with_baseline();
    let input = ws.demo_input(&CONTIGS);
    let mut command = ws.biojob();
    let output = command
        .args(["run", "--input"])
        .arg(&input)
        .env("BIOJOB_RESUME", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "--resume (or BIOJOB_RESUME) needs the run to resume: each run writes to <output prefix>/<sample>/<run id>/"
        ),
        "{}",
        stderr(&output)
    );
    let mut command = ws.biojob();
    let output = command
        .args(["run", "--input"])
        .arg(&input)
        .args(["--run-id", RUN_ID, "--no-resume"])
        .env("BIOJOB_RESUME", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary(&output), "");
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    assert_eq!(
        tasks(&manifest(&run_dir)),
        [
            "prepare-reference - succeeded",
            "align - succeeded",
            "call chr20 succeeded",
            "call chr22 succeeded",
            "call chrM succeeded",
            "gather - succeeded",
            "qc - succeeded",
        ]
    );
}

/// A bcftools that, while `<dir>/stall` exists, stalls on the chr22 pileup (after creating
/// `<dir>/stalled`) until it is stopped; otherwise it is `bcftools`.
fn stalling_bcftools(dir: &Path) -> PathBuf {
    let real = which("bcftools");
    let path = dir.join("bcftools");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" -r chr22 \"*)\n  if [ -e \"{dir}/stall\" ]; then\n    touch \"{dir}/stalled\"\n    exec sleep 3600\n  fi;;\nesac\nexec \"{real}\" \"$@\"\n",
            dir = dir.display(),
            real = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_step_stopped_midway_leaves_nothing_a_resume_reuses() {
    let ws = Workspace::new();
    let tools = ws.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let bcftools = stalling_bcftools(&tools);
    std::fs::write(tools.join("stall"), "").unwrap();
    let input = ws.demo_input(&CONTIGS);
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    // One thread, longest contig first: chr20, chrM, then chr22, which stalls.
    let mut child = ws
        .biojob()
        .args(["run", "--input"])
        .arg(&input)
        .args(["--run-id", RUN_ID, "--threads", "1", "--resume"])
        .env("BIOJOB_BCFTOOLS", &bcftools)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while !tools.join("stalled").exists() {
        assert_eq!(
            child.try_wait().unwrap(),
            None,
            "the run ended before chr22"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert_eq!(
        tasks(&manifest(&run_dir)),
        [
            "prepare-reference - succeeded",
            "align - succeeded",
            "call chr20 succeeded",
            "call chr22 failed",
            "call chrM succeeded",
        ]
    );
    assert!(!run_dir.join("NA12878.call.0001.vcf.gz").exists());

    std::fs::remove_file(tools.join("stall")).unwrap();
    let output = ws.run(
        &input,
        RUN_ID,
        &["--threads", "1", "--resume"],
        &[("BIOJOB_BCFTOOLS", &bcftools)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr20, call chrM\nran: prepare-reference, call chr22, gather, qc\n"
    );
    assert_eq!(records(&run_dir.join("NA12878.vcf.gz")).len(), 438);
}

/// `copies` copies of the gzipped FASTQ `name` of the test data, one after another (a
/// multi-member gzip file: the reads `copies` times over, still a valid pair with its mate).
fn repeated_fastq(name: &str, copies: usize, destination: &camino::Utf8Path) {
    let bytes = std::fs::read(testdata().join(name)).unwrap();
    std::fs::write(destination, bytes.repeat(copies)).unwrap();
}

#[test]
fn on_s3_an_input_uploaded_in_one_part_or_several_is_the_same_input() {
    use crate::s3_jobs::{assert_ok, biojob, get, put, text};
    let server = biojob_testkit::s3_server();
    let dir = tempfile::tempdir().unwrap();
    let work = camino::Utf8Path::from_path(dir.path()).unwrap();
    // Seven copies of each FASTQ: 6.0 and 7.2 MB, more than one 5 MiB part each.
    for read in ["R1", "R2"] {
        repeated_fastq(
            &format!("NA12878_{read}.fastq.gz"),
            7,
            &work.join(format!("NA12878_{read}.fastq.gz")),
        );
    }
    let bucket = biojob_testkit::TEST_BUCKET;
    let upload = |prefix: &str, part_size: &str| -> Vec<String> {
        ["R1", "R2"]
            .iter()
            .map(|read| {
                let name = format!("NA12878_{read}.fastq.gz");
                let output = biojob(server, &server.endpoint, work)
                    .env("BIOJOB_S3_PART_SIZE", part_size)
                    .args(["stage", "put"])
                    .arg(work.join(&name))
                    .arg(format!("{prefix}/{name}"))
                    .output()
                    .unwrap();
                assert_ok(&output, "stage put");
                text(&output.stdout)
            })
            .collect()
    };
    let one_part = format!("s3://{bucket}/resume/one-part");
    let parts = format!("s3://{bucket}/resume/parts");
    // The stored checksums differ: a full-object one, and a composite one of two parts.
    for line in upload(&one_part, "16M") {
        assert!(!line.trim_end().ends_with("-2"), "{line}");
    }
    for line in upload(&parts, "5M") {
        assert!(line.trim_end().ends_with("-2"), "{line}");
    }
    let results = format!("s3://{bucket}/resume/results");
    let input = |source: &str| {
        let path = work.join("input.json");
        std::fs::write(
            &path,
            serde_json::json!({"params": {"queue": "local", "environment": {
                "REFERENCE_NAME": "ref", "REFERENCE_PREFIX": testdata().display().to_string(),
                "SAMPLE_ID": "NA12878", "SOURCE_DATA_PREFIX": source,
                "JOB_OUTPUT_PREFIX": results}, "chromosomes": CONTIGS}})
            .to_string(),
        )
        .unwrap();
        path
    };
    let resumed_run = |source: &str| {
        let output = biojob(server, &server.endpoint, work)
            .args(["run", "--run-id", "r", "--resume", "--input"])
            .arg(input(source))
            .output()
            .unwrap();
        assert_ok(&output, "biojob run --resume");
        summary(&output)
    };
    assert_eq!(
        resumed_run(&one_part),
        "reused: none\nran: prepare-reference, align, call chr20, call chr22, call chrM, gather, qc\n"
    );
    assert_eq!(
        resumed_run(&parts),
        "reused: align, call chr20, call chr22, call chrM, gather\nran: prepare-reference, qc\n"
    );
    let manifest_path = work.join("manifest.json");
    get(
        server,
        work,
        &format!("{results}/NA12878/r/manifest.json"),
        &manifest_path,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(
        manifest["inputs"]["fastq_2"],
        format!("{parts}/NA12878_R2.fastq.gz")
    );
    assert_eq!(manifest["read_pairs"], 7 * 13860);
    assert_eq!(
        manifest["tasks"][1]["outputs"][0]["uri"],
        format!("{results}/NA12878/r/NA12878.align.bam")
    );
    // An output changed on S3 (same size, other bytes) is not reused: its step runs again.
    let chrm = format!("{results}/NA12878/r/NA12878.call.0002.vcf.gz");
    let local = work.join("chrM.vcf.gz");
    get(server, work, &chrm, &local);
    let mut bytes = std::fs::read(&local).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 0xff;
    std::fs::write(&local, &bytes).unwrap();
    put(server, work, &local, &chrm);
    assert_eq!(
        resumed_run(&parts),
        "reused: align, call chr20, call chr22\nran: prepare-reference, call chrM, gather, qc\n"
    );
}

#[test]
fn batch_step_jobs_with_biojob_resume_skip_what_finished_and_rerun_what_changed() {
    use crate::s3_jobs::{assert_ok, biojob, get, text};
    let server = biojob_testkit::s3_server();
    let dir = tempfile::tempdir().unwrap();
    let work = camino::Utf8Path::from_path(dir.path()).unwrap();
    let bucket = biojob_testkit::TEST_BUCKET;
    let output_prefix = format!("s3://{bucket}/resume-batch/results");
    let run_prefix = format!("{output_prefix}/germline/exec-1");
    let job = |step: &str, extra: &[(&str, &str)]| {
        let mut command = biojob(server, &server.endpoint, work);
        command
            .arg(step)
            .env("SAMPLE_ID", "NA12878")
            .env("REFERENCE_NAME", "ref")
            .env("SOURCE_DATA_PREFIX", testdata())
            .env("JOB_OUTPUT_PREFIX", &output_prefix)
            .env("JOB_WORKFLOW_NAME", "germline")
            .env("JOB_WORKFLOW_EXECUTION_ID", "exec-1")
            .env("AWS_BATCH_JOB_ID", format!("job-{step}"))
            .env("AWS_BATCH_JOB_ATTEMPT", "1")
            .env("BIOJOB_RESUME", "1");
        for (key, value) in extra {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert_ok(&output, step);
        text(&output.stderr).contains("reused: an earlier job finished this step")
    };
    let status = |name: &str| {
        let path = work.join(name);
        get(server, work, &format!("{run_prefix}/{name}"), &path);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        manifest["task"]["status"].as_str().unwrap().to_owned()
    };
    let chromosomes = [("CHROMOSOMES", "[\"chr20\",\"chr22\",\"chrM\"]")];
    let all_jobs = || {
        let mut reused = vec![job("align", &[])];
        for contig in CONTIGS {
            reused.push(job("call", &[("CHROMOSOME", contig)]));
        }
        reused.push(job("gather", &chromosomes));
        reused
    };
    // First execution: nothing to reuse.
    assert_eq!(all_jobs(), [false, false, false, false, false]);
    assert_eq!(status("NA12878.align.manifest.json"), "succeeded");
    // Re-executed: every job skips itself.
    assert_eq!(all_jobs(), [true, true, true, true, true]);
    assert_eq!(status("NA12878.align.manifest.json"), "cached");
    assert_eq!(status("NA12878.call.0001.manifest.json"), "cached");
    assert_eq!(status("NA12878.gather.manifest.json"), "cached");
    // One shard's VCF changed since (same size, one byte): that call job runs again, and so
    // does gather, whose input it is.
    let chr22 = format!("{run_prefix}/NA12878.call.0001.vcf.gz");
    let local = work.join("chr22.vcf.gz");
    get(server, work, &chr22, &local);
    let mut bytes = std::fs::read(&local).unwrap();
    let position = bytes.len() - 40;
    bytes[position] ^= 0xff;
    std::fs::write(&local, &bytes).unwrap();
    crate::s3_jobs::put(server, work, &local, &chr22);
    assert_eq!(all_jobs(), [true, true, false, true, false]);
    assert_eq!(status("NA12878.call.0001.manifest.json"), "succeeded");
    assert_eq!(status("NA12878.gather.manifest.json"), "succeeded");
    // The re-run call job's task says why.
    let path = work.join("NA12878.call.0001.manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        manifest["task"]["rerun_reason"].as_str(),
        Some(format!("the earlier output {chr22} changed (SHA-256)").as_str())
    );
    // A calling parameter given to one call job: that job runs again, then gather.
    assert!(!job(
        "call",
        &[("CHROMOSOME", "chr20"), ("MIN_MAPPING_QUALITY", "50")]
    ));
    assert!(job("call", &[("CHROMOSOME", "chrM")]));
    assert!(!job("gather", &chromosomes));
}

#[test]
fn changing_only_a_calling_parameter_reruns_call_and_gather_but_not_align() {
    let ws = workspace_with_baseline();
    let data = testdata();
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", data.display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
            ("MIN_MAPPING_QUALITY", "50".into()),
        ],
        Some(&CONTIGS),
    );
    let output = ws.run(&input, RUN_ID, &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align\nran: prepare-reference, call chr20, call chr22, call chrM, gather, qc\n"
    );
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    let resumed = manifest(&run_dir);
    let mpileup = &resumed["tasks"][2]["commands"][0]["argv"];
    assert_eq!(mpileup[9], "-q");
    assert_eq!(mpileup[10], "50");
    // The chr20 calls are those of the same command run by hand on the reused BAM.
    let bam = run_dir.join("NA12878.align.bam");
    let hand = ws.path().join("hand-q50.chr20.vcf.gz");
    crate::support::pipe(
        (
            "bcftools",
            &[
                "mpileup",
                "-f",
                data.join("ref.fa").to_str().unwrap(),
                "-r",
                "chr20",
                "-a",
                "FORMAT/AD,FORMAT/DP",
                "-q",
                "50",
                bam.to_str().unwrap(),
            ],
        ),
        (
            "bcftools",
            &["call", "-m", "-v", "-Oz", "-o", hand.to_str().unwrap()],
        ),
        ws.path(),
    );
    let calls = records(&run_dir.join("NA12878.call.0000.vcf.gz"));
    assert_eq!(calls, records(&hand));
    assert_ne!(
        calls,
        records(&baseline().run_dir().join("NA12878.call.0000.vcf.gz")),
        "-q 50 changed no chr20 call"
    );
    // Resumed again with the same parameter, everything is reused.
    let output = ws.run(&input, RUN_ID, &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr20, call chr22, call chrM, gather\nran: prepare-reference, qc\n"
    );
}

/// A copy of the test reference in `dir` whose bwa index was built from a copy with one base
/// changed (same length, same contigs) and which keeps the original's modification time, as
/// `cp -p` of a FASTA over an edited one leaves it: the index is fresh by its time, yet stale.
fn reference_with_stale_bwa_index(dir: &Path) {
    let edited_dir = dir.join("edited");
    std::fs::create_dir_all(&edited_dir).unwrap();
    let original = testdata().join("ref.fa");
    let mut text = std::fs::read(&original).unwrap();
    let middle = text.len() / 2;
    let base = middle
        + text[middle..]
            .iter()
            .position(|b| b"ACGT".contains(b))
            .unwrap();
    text[base] = if text[base] == b'A' { b'C' } else { b'A' };
    std::fs::write(edited_dir.join("ref.fa"), &text).unwrap();
    let prefix = dir.join("ref.fa");
    tool(
        "bwa",
        &["index", "-p", prefix.to_str().unwrap(), "edited/ref.fa"],
        dir,
    );
    std::fs::copy(&original, &prefix).unwrap();
    std::fs::copy(testdata().join("ref.fa.fai"), dir.join("ref.fa.fai")).unwrap();
    let original_time = std::fs::metadata(&original).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(&prefix)
        .unwrap()
        .set_modified(original_time)
        .unwrap();
}

/// A bwa index built from an earlier FASTA (one base differs, same contigs and lengths) is
/// found not to belong to the FASTA by the full check, rebuilt where it lies (the directory is
/// writable), and recorded; the rebuilt index is the baseline's, so the alignment is reused.
#[test]
fn a_stale_bwa_index_is_rebuilt_and_then_the_alignment_is_reused() {
    let ws = workspace_with_baseline();
    let reference_dir = ws.path().join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    reference_with_stale_bwa_index(&reference_dir);
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("REFERENCE_PREFIX", reference_dir.display().to_string()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&CONTIGS),
    );
    let output = ws.run(&input, RUN_ID, &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the bwa index does not belong to the FASTA; rebuilding it"),
        "{}",
        stderr(&output)
    );
    // The FASTA is the baseline's, byte for byte; the index was rebuilt from it and recorded.
    assert_eq!(
        std::fs::read(reference_dir.join("ref.fa")).unwrap(),
        std::fs::read(testdata().join("ref.fa")).unwrap()
    );
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(reference_dir.join("ref.fa.provenance.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["source"]["name"], "ref.fa");
    let resumed = manifest(&ws.out().join("NA12878").join(RUN_ID));
    let earlier = manifest(&baseline().run_dir());
    assert_eq!(tasks(&resumed)[1], "align - cached");
    let (new_keys, old_keys) = (keys(&resumed), keys(&earlier));
    assert_eq!(new_keys[0], old_keys[0]);
}

#[test]
fn a_failed_resume_keeps_the_earlier_finished_tasks_for_the_next_resume() {
    let ws = workspace_with_baseline();
    let fastqs = ws.path().join("fastq");
    copy_fastqs(&fastqs);
    let input = input_with_fastqs(&ws, &fastqs);
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    let r2 = fastqs.join("NA12878_R2.fastq.gz");
    let kept = ws.path().join("R2.kept");
    std::fs::rename(&r2, &kept).unwrap();
    let output = ws.run(&input, RUN_ID, &["--resume"], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let failed = manifest(&run_dir);
    assert_eq!(failed["status"], "failed");
    assert_eq!(tasks(&failed), Vec::<String>::new());
    // The earlier finished tasks, as the earlier manifest recorded them.
    let earlier = manifest(&baseline().run_dir());
    let carried: Vec<serde_json::Value> = earlier["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["cache_key"].is_string())
        .cloned()
        .collect();
    assert_eq!(carried.len(), 5);
    assert_eq!(failed["earlier_tasks"], serde_json::Value::Array(carried));
    assert_eq!(failed["read_pairs"], 13860);

    std::fs::rename(&kept, &r2).unwrap();
    let output = ws.run(&input, RUN_ID, &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr20, call chr22, call chrM, gather\nran: prepare-reference, qc\n"
    );
    let resumed = manifest(&run_dir);
    assert_eq!(resumed["read_pairs"], 13860);
    assert_eq!(resumed.get("earlier_tasks"), None);
}

/// A bcftools whose `mpileup` fails while `<dir>/fail` exists, for `chr20` only when
/// `<dir>/chr20` exists (else every contig); otherwise it is `bcftools`.
fn failing_bcftools(dir: &Path) -> PathBuf {
    let real = which("bcftools");
    let path = dir.join("bcftools");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = mpileup ] && [ -e \"{dir}/fail\" ]; then\n  case \" $* \" in *\" -r chr20 \"*) echo 'injected mpileup failure' >&2; exit 1;; esac\nfi\nexec \"{real}\" \"$@\"\n",
            dir = dir.display(),
            real = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_failed_step_job_keeps_the_earlier_finished_task_for_the_next_resume() {
    let ws = workspace_with_baseline();
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    let tools = ws.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let bcftools = failing_bcftools(&tools);
    let call = |resume: &str| {
        ws.biojob()
            .arg("call")
            .env("SAMPLE_ID", "NA12878")
            .env("REFERENCE", testdata().join("ref.fa"))
            .env("JOB_OUTPUT_PREFIX", &run_dir)
            .env("CHROMOSOME", "chr20")
            .env("BIOJOB_RESUME", resume)
            .env("BIOJOB_BCFTOOLS", &bcftools)
            .output()
            .unwrap()
    };
    let step_manifest = || -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(run_dir.join("NA12878.call.0000.manifest.json")).unwrap(),
        )
        .unwrap()
    };
    let first = call("1");
    assert!(first.status.success(), "{}", stderr(&first));
    let finished = step_manifest()["task"].clone();
    assert_eq!(finished["status"], "succeeded");
    // The next job fails (without resuming, so it runs).
    std::fs::write(tools.join("fail"), "").unwrap();
    let failed = call("0");
    assert_eq!(failed.status.code(), Some(20), "{}", stderr(&failed));
    let manifest = step_manifest();
    assert_eq!(manifest["task"]["status"], "failed");
    assert_eq!(manifest["earlier_task"], finished);
    // A resume finds the earlier finished task and reuses its outputs.
    std::fs::remove_file(tools.join("fail")).unwrap();
    let resumed = call("1");
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("reused: an earlier job finished this step"),
        "{}",
        stderr(&resumed)
    );
    let manifest = step_manifest();
    assert_eq!(manifest["task"]["status"], "cached");
    assert_eq!(manifest["task"]["cache_key"], finished["cache_key"]);
    assert_eq!(manifest.get("earlier_task"), None);
}

#[test]
fn a_reusable_shard_is_cached_even_after_another_shard_failed() {
    let ws = workspace_with_baseline();
    let run_dir = ws.out().join("NA12878").join(RUN_ID);
    let tools = ws.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let bcftools = failing_bcftools(&tools);
    std::fs::write(tools.join("fail"), "").unwrap();
    // chr20's VCF deleted, so that chr20 runs (and fails); chrM's deleted; chr22's intact.
    std::fs::remove_file(run_dir.join("NA12878.call.0000.vcf.gz")).unwrap();
    std::fs::remove_file(run_dir.join("NA12878.call.0002.vcf.gz")).unwrap();
    let input = ws.demo_input(&CONTIGS);
    // One thread, longest contig first: chr20 (fails), then chrM, then chr22.
    let output = ws.run(
        &input,
        RUN_ID,
        &["--threads", "1", "--resume"],
        &[("BIOJOB_BCFTOOLS", &bcftools)],
    );
    assert_eq!(output.status.code(), Some(20), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr22\nran: prepare-reference\nfailed: call chr20\n"
    );
    assert_eq!(
        tasks(&manifest(&run_dir)),
        [
            "prepare-reference - succeeded",
            "align - cached",
            "call chr20 failed",
            "call chr22 cached",
            "call chrM skipped",
        ]
    );
    std::fs::remove_file(tools.join("fail")).unwrap();
    let output = ws.run(
        &input,
        RUN_ID,
        &["--threads", "1", "--resume"],
        &[("BIOJOB_BCFTOOLS", &bcftools)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr22\nran: prepare-reference, call chr20, call chrM, gather, qc\n"
    );
    assert_eq!(records(&run_dir.join("NA12878.vcf.gz")).len(), 438);
}

#[test]
fn resuming_a_run_id_without_an_earlier_manifest_says_so_and_runs_every_step() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(&input, "fresh", &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = format!(
        "no earlier run found at {}: running every step",
        ws.out().join("NA12878").join("fresh").display()
    );
    let text = stderr(&output);
    assert_eq!(
        text.lines().filter(|line| *line == expected).count(),
        1,
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.contains(" WARN ") && line.contains(&expected)),
        "{text}"
    );
    assert_eq!(
        summary(&output),
        "reused: none\nran: prepare-reference, align, call chr20, call chr22, call chrM, gather, qc\n"
    );
    // With the earlier manifest there, nothing is said.
    let output = ws.run(&input, "fresh", &["--resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("no earlier run found"));
}

#[test]
fn biojob_resume_in_the_input_json_resumes_unless_the_environment_or_a_flag_says_otherwise() {
    let ws = workspace_with_baseline();
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
            ("BIOJOB_RESUME", "1".into()),
        ],
        Some(&CONTIGS),
    );
    let output = ws.run(&input, RUN_ID, &[], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        summary(&output),
        "reused: align, call chr20, call chr22, call chrM, gather\nran: prepare-reference, qc\n"
    );
    assert!(
        !stderr(&output).contains("ignoring an environment key"),
        "{}",
        stderr(&output)
    );
    // The environment variable wins over the input.
    let mut command = ws.biojob();
    let output = command
        .args(["run", "--input"])
        .arg(&input)
        .args(["--run-id", RUN_ID])
        .env("BIOJOB_RESUME", "0")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary(&output), "");
    assert_eq!(
        tasks(&manifest(&ws.out().join("NA12878").join(RUN_ID)))[1],
        "align - succeeded"
    );
    // --no-resume wins over the input.
    let output = ws.run(&input, RUN_ID, &["--no-resume"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary(&output), "");
}

#[test]
fn the_bam_header_holds_the_thread_count_and_scratch_path_that_the_cache_key_leaves_out() {
    let run_dir = baseline().run_dir();
    let earlier = manifest(&run_dir);
    let threads = earlier["resources"]["threads"].as_u64().unwrap();
    let header = tool(
        "samtools",
        &["view", "--no-PG", "-H", "NA12878.align.bam"],
        &run_dir,
    );
    let programs: Vec<&str> = header.lines().filter(|l| l.starts_with("@PG")).collect();
    assert_eq!(programs.len(), 2, "{header}");
    assert!(
        programs[0].contains(&format!(
            "CL:{} mem -t {threads} -K 10000000 ",
            which("bwa").display()
        )),
        "{header}"
    );
    let scratch = baseline()
        .workspace
        .path()
        .join("scratch")
        .join(RUN_ID)
        .join("1");
    assert!(
        programs[1].contains(&format!(" sort -@ {threads} -m ")),
        "{header}"
    );
    assert!(
        programs[1].contains(&format!(
            " -T {}/NA12878.align.sort-tmp ",
            scratch.display()
        )),
        "{header}"
    );
}
