//! The `biojob` binary end to end, with real parts: the real tools and the NA12878 test data
//! (`BIOJOB_TESTDATA`, by default `shared/testdata` beside the work tree), real signals, and
//! tmpfs mounts as scratch (those tests need root, as CI runs them). `testdata/bin/fake-bwa`
//! stands in for bwa where a step must stall or be killed.
//!
//! Every process a test starts carries `BIOJOB_TEST_MARKER=<unique>` in its environment (the
//! children inherit it), so a test can find any process of its tree left behind in `/proc`.

use std::io::Write;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use biojob_testkit::{Tmpfs, fake_tool as fake, testdata};
use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

// ---------------------------------------------------------------------------------------------
// helpers

/// A test's directories and the environment of the processes it starts.
struct Job {
    dir: Utf8PathBuf,
    /// The scratch root.
    root: Utf8PathBuf,
    /// Where outputs go.
    out: Utf8PathBuf,
    marker: String,
    _temp: tempfile::TempDir,
}

impl Job {
    /// A job with its scratch root at `root` (default: a directory of its own).
    fn new(name: &str, root: Option<&Utf8Path>) -> Job {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = Utf8PathBuf::from_path_buf(temp.path().to_path_buf()).expect("UTF-8");
        let root = root.map_or_else(|| dir.join("scratch"), Utf8Path::to_owned);
        let out = dir.join("out");
        let marker = format!(
            "{name}-{}-{}",
            std::process::id(),
            dir.file_name().unwrap_or("")
        );
        Job {
            dir,
            root,
            out,
            marker,
            _temp: temp,
        }
    }

    /// `biojob ARGS` with this job's environment (no AWS Batch variables, text logs, scratch
    /// autoscale off unless the test says otherwise).
    fn biojob<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_biojob"));
        command
            .args(args)
            .env_remove("AWS_BATCH_JOB_ID")
            .env_remove("AWS_BATCH_JOB_ATTEMPT")
            .env_remove("BIOJOB_LOG")
            .env("BIOJOB_LOG_FORMAT", "text")
            .env("BIOJOB_CACHE_DIR", self.dir.join("cache"))
            .env("BIOJOB_SCRATCH_DIR", &self.root)
            .env("BIOJOB_SCRATCH_AUTOSCALE", "0")
            .env("BIOJOB_TEST_MARKER", &self.marker)
            .stdin(Stdio::null());
        command
    }

    /// `biojob align` of the test data into `out/`.
    fn align(&self) -> Command {
        let data = testdata();
        self.biojob([
            "align".to_owned(),
            "--sample".to_owned(),
            "NA12878".to_owned(),
            "--reference".to_owned(),
            data.join("ref.fa").to_string(),
            "--fastq-1".to_owned(),
            data.join("NA12878_R1.fastq.gz").to_string(),
            "--fastq-2".to_owned(),
            data.join("NA12878_R2.fastq.gz").to_string(),
            "--output-prefix".to_owned(),
            self.out.to_string(),
        ])
    }

    /// Starts `command` with its stderr going to `<dir>/<name>.stderr`.
    fn spawn(&self, mut command: Command, name: &str) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("{name}.stderr"))).expect("log");
        command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start biojob")
    }

    fn stderr(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.stderr"))).unwrap_or_default()
    }

    /// Processes (not zombies) whose environment carries this job's marker.
    fn processes_left(&self) -> Vec<String> {
        let needle = format!("BIOJOB_TEST_MARKER={}", self.marker);
        let mut left = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|byte| *byte == 0)
                .any(|var| var == needle.as_bytes())
            {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                left.push(format!(
                    "{}: {}",
                    entry.file_name().to_string_lossy(),
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                ));
            }
        }
        left
    }

    /// Waits (at most 5 s) until no process of this job is left; those left.
    fn wait_processes_gone(&self) -> Vec<String> {
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.processes_left();
            if left.is_empty() || Instant::now() > give_up {
                return left;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills every process of this job (what tearing down a container does).
    fn kill_all(&self) {
        for line in self.processes_left() {
            if let Some(pid) = line.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        assert_eq!(self.wait_processes_gone(), Vec::<String>::new());
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        for line in self.processes_left() {
            if let Some(pid) = line.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Waits (at most `limit`) until `path` contains `needle`; whether it did.
fn wait_for_text(path: &Utf8Path, needle: &str, limit: Duration) -> bool {
    let give_up = Instant::now() + limit;
    while !std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle)) {
        if Instant::now() > give_up {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits (at most `limit`) for `child` to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let give_up = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() > give_up {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn names(dir: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn json(path: &Utf8Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("JSON")
}

// ---------------------------------------------------------------------------------------------
// space preflight

#[test]
fn align_on_a_short_scratch_exits_12_with_needed_and_free_bytes() {
    let tmpfs = Tmpfs::mount("1M");
    let job = Job::new("short", Some(&tmpfs.dir));
    let output = job
        .align()
        .env("AWS_BATCH_JOB_ID", "job-short")
        .env("AWS_BATCH_JOB_ATTEMPT", "1")
        .output()
        .expect("run biojob");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(12), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: align failed: not enough scratch space for align in {}/job-short/1: \
             needs 7140161 bytes (6.8 MiB), 1048576 bytes (1.0 MiB) free\n",
            tmpfs.dir
        )),
        "{stderr}"
    );
    assert!(stderr.contains("\nexit class: scratch (12)\n"), "{stderr}");
    // Nothing was published but the step manifest; scratch is gone.
    assert_eq!(names(&job.out), ["NA12878.align.manifest.json"]);
    let manifest = json(&job.out.join("NA12878.align.manifest.json"));
    assert_eq!(manifest["task"]["exit_class"], "scratch");
    assert_eq!(manifest["scratch"]["free_bytes_at_start"], 1_048_576);
    assert_eq!(manifest["scratch"]["autoscale"], false);
    assert_eq!(names(&tmpfs.dir), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// growth while waiting

#[test]
fn align_waits_for_a_growing_scratch_then_succeeds() {
    let tmpfs = Tmpfs::mount("2M");
    let job = Job::new("grow", Some(&tmpfs.dir));
    // The bwa index first (in the cache, not in scratch), so that align's own tools wait.
    let prepared = job
        .biojob([
            "prepare-reference",
            "--reference",
            testdata().join("ref.fa").as_str(),
        ])
        .env("BIOJOB_SCRATCH_DIR", job.dir.join("other-scratch"))
        .output()
        .expect("prepare the reference");
    assert!(prepared.status.success(), "{prepared:?}");

    let mut command = job.align();
    command
        .env("AWS_BATCH_JOB_ID", "job-grow")
        .env("BIOJOB_SCRATCH_AUTOSCALE", "1")
        .env("BIOJOB_SCRATCH_LOW_WATER", "4M")
        .env("BIOJOB_SCRATCH_WAIT", "2m");
    let mut child = job.spawn(command, "align");
    let log = job.dir.join("align.stderr");
    let paused = wait_for_text(&log, "scratch almost full", Duration::from_secs(60));
    // Still waiting a second later: nothing can finish on 2 MiB.
    thread::sleep(Duration::from_secs(1));
    let still_waiting = child.try_wait().expect("wait").is_none();
    tmpfs.resize("64M");
    let status = wait_exit(&mut child, Duration::from_secs(120));
    let stderr = job.stderr("align");
    assert!(paused, "never paused: {stderr}");
    assert!(still_waiting, "{stderr}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    assert!(stderr.contains("pausing the tools (SIGSTOP)"), "{stderr}");
    assert!(
        stderr.contains("scratch grew from 2.0 MiB to 64.0 MiB in "),
        "{stderr}"
    );
    assert!(stderr.contains(": resuming the tools"), "{stderr}");
    let manifest = json(&job.out.join("NA12878.align.manifest.json"));
    assert_eq!(manifest["task"]["status"], "succeeded");
    let waits = &manifest["scratch"]["growth_waits"];
    assert_eq!(waits.as_array().map(Vec::len), Some(1), "{manifest}");
    assert_eq!(waits[0]["resumed"], true);
    assert_eq!(waits[0]["total_bytes_at_pause"], 2 << 20);
    assert_eq!(waits[0]["total_bytes_after"], 64 << 20);
    assert!(
        waits[0]["waited_seconds"]
            .as_f64()
            .is_some_and(|s| s >= 1.0)
    );
    assert!(
        manifest["scratch"]["peak_bytes"]
            .as_u64()
            .is_some_and(|b| b > 1 << 20)
    );
    assert!(job.out.join("NA12878.align.bam").is_file());
    assert_eq!(names(&tmpfs.dir), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// signals, retries, timeouts

/// An execution input for `biojob run` on the test data, calling chr20.
fn input_json(job: &Job) -> Utf8PathBuf {
    let data = testdata();
    let input = serde_json::json!({"params": {"queue": "local", "environment": {
        "REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878",
        "SOURCE_DATA_PREFIX": data.as_str(), "JOB_OUTPUT_PREFIX": job.out.as_str()},
        "chromosomes": ["chr20"]}});
    let path = job.dir.join("input.json");
    let mut file = std::fs::File::create(&path).expect("create input");
    file.write_all(input.to_string().as_bytes())
        .expect("write input");
    path
}

#[test]
fn sigterm_during_align_exits_143_within_the_grace_period_and_cleans_up() {
    let job = Job::new("sigterm", None);
    let input = input_json(&job);
    let mut command = job.biojob(["run", "--input", input.as_str(), "--run-id", "sigterm-run"]);
    command
        .env("BIOJOB_BWA", fake("fake-bwa"))
        .env("BIOJOB_GRACE_SECONDS", "5");
    let mut child = job.spawn(command, "run");
    let bwa_log = job.root.join("sigterm-run/1/logs/bwa-mem.stderr");
    let stalled = wait_for_text(&bwa_log, "stalling in mem", Duration::from_secs(60));
    let pid = i32::try_from(child.id()).expect("pid");
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("send SIGTERM");
    let sent = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let elapsed = sent.elapsed();
    let stderr = job.stderr("run");
    assert!(stalled, "bwa mem never started: {stderr}");
    assert_eq!(status.and_then(|s| s.code()), Some(143), "{stderr}");
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: {stderr}"
    );
    assert!(
        stderr
            .contains("error: align failed: bwa-mem | samtools-sort cancelled: SIGTERM received\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nexit class: terminated (143)\n"),
        "{stderr}"
    );
    // No process of the tree is left; the scratch directory is gone.
    assert_eq!(job.wait_processes_gone(), Vec::<String>::new());
    assert_eq!(names(&job.root), Vec::<String>::new());
    // Logs and manifest were published, no output.
    let run_dir = job.out.join("NA12878/sigterm-run");
    assert_eq!(names(&run_dir), ["logs", "manifest.json"]);
    assert!(wait_for_text(
        &run_dir.join("logs/bwa-mem.stderr"),
        "fake-bwa: stalling in mem",
        Duration::ZERO
    ));
    let manifest = json(&run_dir.join("manifest.json"));
    assert_eq!(manifest["exit_code"], 143);
    assert_eq!(manifest["exit_class"], "terminated");
    assert_eq!(manifest["status"], "failed");
}

#[test]
fn sigint_during_align_exits_130() {
    let job = Job::new("sigint", None);
    let mut command = job.align();
    command
        .env("AWS_BATCH_JOB_ID", "job-sigint")
        .env("BIOJOB_BWA", fake("fake-bwa"));
    let mut child = job.spawn(command, "align");
    let bwa_log = job.root.join("job-sigint/1/logs/bwa-mem.stderr");
    let stalled = wait_for_text(&bwa_log, "stalling in mem", Duration::from_secs(60));
    let pid = i32::try_from(child.id()).expect("pid");
    kill(Pid::from_raw(pid), Signal::SIGINT).expect("send SIGINT");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let stderr = job.stderr("align");
    assert!(stalled, "{stderr}");
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{stderr}");
    assert_eq!(job.wait_processes_gone(), Vec::<String>::new());
    assert_eq!(names(&job.root), Vec::<String>::new());
    assert!(job.out.join("logs/bwa-mem.stderr").is_file());
}

#[test]
fn a_killed_attempt_is_cleaned_up_by_the_retry_which_succeeds() {
    let job = Job::new("retry", None);
    // Attempt 1 stalls in bwa mem and is killed outright (SIGKILL: no cleanup possible).
    let mut command = job.align();
    command
        .env("AWS_BATCH_JOB_ID", "job-retry")
        .env("AWS_BATCH_JOB_ATTEMPT", "1")
        .env("BIOJOB_BWA", fake("fake-bwa"));
    let mut first = job.spawn(command, "attempt-1");
    let attempt_1 = job.root.join("job-retry/1");
    let stalled = wait_for_text(
        &attempt_1.join("logs/bwa-mem.stderr"),
        "stalling in mem",
        Duration::from_secs(60),
    );
    let pid = i32::try_from(first.id()).expect("pid");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("send SIGKILL");
    let status = wait_exit(&mut first, Duration::from_secs(10));
    assert!(stalled, "{}", job.stderr("attempt-1"));
    assert_eq!(status.and_then(|s| s.code()), None);
    // The container goes, and its processes with it; its scratch stays on the host.
    job.kill_all();
    assert!(attempt_1.join("logs/bwa-mem.stderr").is_file());
    std::fs::write(attempt_1.join("NA12878.align.sort-tmp.0000.bam"), b"stale").expect("write");

    // Attempt 2, with the real bwa, on the same host and scratch root.
    let second = job
        .align()
        .env("AWS_BATCH_JOB_ID", "job-retry")
        .env("AWS_BATCH_JOB_ATTEMPT", "2")
        .output()
        .expect("run attempt 2");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("removed what an earlier attempt of this job left in scratch"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("stale={attempt_1}")), "{stderr}");
    assert_eq!(names(&job.root), Vec::<String>::new());
    assert!(job.out.join("NA12878.align.bam").is_file());
    assert!(job.out.join("NA12878.align.bam.bai").is_file());
    let manifest = json(&job.out.join("NA12878.align.manifest.json"));
    assert_eq!(manifest["task"]["status"], "succeeded");
    assert_eq!(
        manifest["scratch"]["dir"],
        job.root.join("job-retry/2").as_str()
    );
}

#[test]
fn a_step_past_its_time_limit_exits_21() {
    let job = Job::new("timeout", None);
    let mut command = job.align();
    command
        .args(["--timeout", "5s"])
        .env("AWS_BATCH_JOB_ID", "job-timeout")
        .env("BIOJOB_BWA", fake("fake-bwa"));
    let output = command.output().expect("run biojob");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(21), "{stderr}");
    assert!(
        stderr.contains(
            "error: align failed: step align went past its time limit of 5s; stopped bwa-mem | \
             samtools-sort\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nexit class: tool_killed (21)\n"),
        "{stderr}"
    );
    assert_eq!(job.wait_processes_gone(), Vec::<String>::new());
    assert_eq!(names(&job.root), Vec::<String>::new());
}

#[test]
fn a_tool_killed_by_sigkill_exits_21() {
    let job = Job::new("oom", None);
    let mut command = job.align();
    command
        .env("AWS_BATCH_JOB_ID", "job-oom")
        .env("BIOJOB_BWA", fake("fake-bwa"))
        .env("FAKE_BWA_MEM", "oom");
    let output = command.output().expect("run biojob");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(21), "{stderr}");
    assert!(
        stderr.contains(
            "error: align failed: bwa-mem was killed by SIGKILL: fake-bwa: killing myself with \
             SIGKILL\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: SIGKILL not sent by biojob usually comes from the kernel's"),
        "{stderr}"
    );
    assert!(!job.out.join("NA12878.align.bam").exists());
    assert_eq!(names(&job.root), Vec::<String>::new());
}

#[test]
fn keep_scratch_keeps_the_attempt_directory() {
    let job = Job::new("keep", None);
    let output = job
        .biojob([
            "prepare-reference",
            "--reference",
            testdata().join("ref.fa").as_str(),
        ])
        .env("AWS_BATCH_JOB_ID", "job-keep")
        .env("AWS_BATCH_JOB_ATTEMPT", "3")
        .env("BIOJOB_KEEP_SCRATCH", "1")
        .output()
        .expect("run biojob");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let kept = job.root.join("job-keep/3");
    assert!(
        stderr.contains(&format!("scratch kept: {kept}\n")),
        "{stderr}"
    );
    assert!(kept.is_dir());
}

#[test]
fn a_bad_attempt_number_is_a_usage_error() {
    let job = Job::new("attempt", None);
    let output = job
        .biojob([
            "prepare-reference",
            "--reference",
            testdata().join("ref.fa").as_str(),
        ])
        .env("AWS_BATCH_JOB_ID", "job-attempt")
        .env("AWS_BATCH_JOB_ATTEMPT", "zero")
        .output()
        .expect("run biojob");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: job attempt \"zero\" is not a positive integer\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: check AWS_BATCH_JOB_ATTEMPT (1 for the first attempt)\n"),
        "{stderr}"
    );
}
