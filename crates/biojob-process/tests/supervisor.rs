//! The supervisor against real children: coreutils and the fake tools in `testdata/bin`.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use biojob_core::{Classify, ExitClass};
use biojob_process::{
    CancelReason, CancelToken, CommandSpec, ExitStatusKind, ProcessError, StdinSource,
    StepDeadline, StopReason, Supervisor, WatchStop, WatchVerdict, Watchdog,
};
use camino::{Utf8Path, Utf8PathBuf};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// A fake tool from `testdata/bin`.
fn fake(name: &str) -> Utf8PathBuf {
    Utf8PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/bin")).join(name)
}

/// A temporary directory and a supervisor logging into its `logs/`.
fn setup() -> (tempfile::TempDir, Utf8PathBuf, Supervisor) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = Utf8PathBuf::from_path_buf(temp.path().to_path_buf()).expect("UTF-8 temp dir");
    let supervisor = Supervisor::new(dir.join("logs"), CancelToken::new());
    (temp, dir, supervisor)
}

fn read(path: &Utf8Path) -> String {
    std::fs::read_to_string(path).expect("read file")
}

/// Waits (at most 20 s) until `path` exists and contains `needle`; whether it did.
///
/// It does not panic, so that the caller still cancels the run it is waiting on.
fn wait_for_log(path: &Utf8Path, needle: &str) -> bool {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle)) {
        if Instant::now() > give_up {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Asserts that process `pid` is gone and no live process is left in its process group.
///
/// Zombies are dead: orphans reparented to a PID 1 that does not reap stay as zombies. A
/// grandchild that got the group's signal together with its parent may still be exiting when
/// the supervisor has reaped the parent (the supervisor polls every millisecond once it stops
/// children), so the group is given up to two seconds to empty.
fn assert_group_gone(pid: u32) {
    let raw = i32::try_from(pid).expect("pid fits in i32");
    assert_eq!(
        kill(Pid::from_raw(raw), None),
        Err(Errno::ESRCH),
        "pid {pid}"
    );
    let give_up = Instant::now() + Duration::from_secs(2);
    loop {
        let left = group_members(pid);
        if left.is_empty() || Instant::now() > give_up {
            assert_eq!(left, Vec::<String>::new(), "processes left in group {pid}");
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The `/proc/<pid>/stat` lines of the live (non-zombie) processes in process group `pgid`.
fn group_members(pgid: u32) -> Vec<String> {
    processes()
        .into_iter()
        .filter(|process| process.pgrp == pgid && process.state != 'Z')
        .map(|process| process.line)
        .collect()
}

/// A process, from `/proc/<pid>/stat` (proc(5)).
#[derive(Debug, Clone)]
struct Process {
    pid: u32,
    /// The executable's name (`comm`), e.g. `sleep`.
    comm: String,
    /// `R`, `S`, `D`, `T`, `Z`, ...
    state: char,
    ppid: u32,
    pgrp: u32,
    /// Clock ticks after boot: with the pid, tells a process from a later one given its pid.
    start_time: u64,
    line: String,
}

/// Every process (thread-group leader) in `/proc`.
fn processes() -> Vec<Process> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        if let Some(process) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
            .and_then(process)
        {
            found.push(process);
        }
    }
    found
}

/// Process `pid`, if it exists.
fn process(pid: u32) -> Option<Process> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
    let (head, rest) = line.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Process {
        pid,
        comm,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
        line: line.clone(),
    })
}

#[test]
fn run_writes_stdout_file_and_reports_the_stage() {
    let (_temp, dir, supervisor) = setup();
    let out = dir.join("out.txt");
    let report = supervisor
        .run(
            CommandSpec::new("echo", "echo")
                .args(["hello", "world"])
                .stdout_file(&out),
        )
        .expect("echo runs");
    assert_eq!(read(&out), "hello world\n");
    assert_eq!(report.label, "echo");
    assert_eq!(report.argv, ["echo", "hello", "world"]);
    assert_eq!(report.status, ExitStatusKind::Exited(0));
    assert_eq!(report.stop, None);
    assert_eq!(report.stderr_log, dir.join("logs/echo.stderr"));
    assert_eq!(read(&report.stderr_log), "");
    assert_eq!(report.stderr_tail, "");
    assert!(report.max_rss_bytes > 0, "max RSS {}", report.max_rss_bytes);
    assert!(report.pid > 0);
}

#[test]
fn stdin_is_null_by_default() {
    let (_temp, dir, supervisor) = setup();
    let out = dir.join("out.txt");
    let report = supervisor
        .run(CommandSpec::new("cat", "cat").stdout_file(&out))
        .expect("cat runs");
    assert_eq!(report.status, ExitStatusKind::Exited(0));
    assert_eq!(read(&out), "");
}

#[test]
fn failed_command_reports_status_and_stderr_tail() {
    let (_temp, dir, supervisor) = setup();
    let error = supervisor
        .run(CommandSpec::new("bwa-mem", fake("exit-1")).args([
            "[M::bwa_idx_load_from_disk] read 0 ALT contigs",
            "[E::main_mem] fail to open file 'x.fq'",
        ]))
        .expect_err("exit-1 fails");
    assert_eq!(
        error.to_string(),
        "bwa-mem exited with status 1: [M::bwa_idx_load_from_disk] read 0 ALT contigs\n\
         [E::main_mem] fail to open file 'x.fq'"
    );
    let ProcessError::Failed {
        label,
        code,
        stderr_tail,
        report,
    } = &error
    else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(label, "bwa-mem");
    assert_eq!(*code, 1);
    assert_eq!(
        stderr_tail,
        "[M::bwa_idx_load_from_disk] read 0 ALT contigs\n[E::main_mem] fail to open file 'x.fq'"
    );
    assert_eq!(report.stages.len(), 1);
    assert_eq!(report.stages[0].status, ExitStatusKind::Exited(1));
    assert_eq!(
        read(&dir.join("logs/bwa-mem.stderr")),
        "[M::bwa_idx_load_from_disk] read 0 ALT contigs\n[E::main_mem] fail to open file 'x.fq'\n"
    );
    assert_eq!(error.exit_class(), ExitClass::ToolFailed);
    assert_eq!(
        error.remedy(),
        Some("see logs/bwa-mem.stderr for the whole stderr".to_owned())
    );
}

#[test]
fn disk_full_in_stderr_is_a_scratch_failure() {
    let (_temp, _dir, supervisor) = setup();
    let error = supervisor
        .run(
            CommandSpec::new("samtools-sort", fake("exit-1"))
                .arg("samtools sort: failed to create temporary file: No space left on device"),
        )
        .expect_err("exit-1 fails");
    assert!(matches!(&error, ProcessError::Failed { code: 1, .. }));
    assert_eq!(error.exit_class(), ExitClass::Scratch);
    assert_eq!(error.exit_class().code(), 12);
}

#[test]
fn missing_program_is_a_spawn_error_with_a_remedy() {
    let (_temp, _dir, supervisor) = setup();
    let error = supervisor
        .run(CommandSpec::new("bwa-mem", "biojob-no-such-tool").arg("mem"))
        .expect_err("no such program");
    let ProcessError::Spawn {
        label,
        program,
        argv,
        source,
    } = &error
    else {
        panic!("expected Spawn, got {error:?}");
    };
    assert_eq!(label, "bwa-mem");
    assert_eq!(program, "biojob-no-such-tool");
    assert_eq!(argv, &["biojob-no-such-tool", "mem"]);
    assert_eq!(source.kind(), io::ErrorKind::NotFound);
    assert_eq!(
        error.to_string(),
        "failed to start bwa-mem (`biojob-no-such-tool`)"
    );
    assert_eq!(error.exit_class(), ExitClass::ToolFailed);
    assert_eq!(
        error.remedy().as_deref(),
        Some("install `biojob-no-such-tool` or set PATH to include the directory that holds it")
    );
}

#[test]
fn non_executable_program_is_a_spawn_error() {
    let (_temp, _dir, supervisor) = setup();
    let readme = fake("README.md");
    let error = supervisor
        .run(CommandSpec::new("readme", &readme))
        .expect_err("not executable");
    assert!(
        matches!(&error, ProcessError::Spawn { source, .. } if source.kind() == io::ErrorKind::PermissionDenied),
        "{error:?}"
    );
    assert_eq!(
        error.remedy(),
        Some(format!(
            "make `{readme}` executable (chmod +x) or point to the right file"
        ))
    );
}

#[test]
fn pipeline_passes_bytes_through_os_pipes() {
    let (_temp, dir, supervisor) = setup();
    let out = dir.join("out.txt");
    let report = supervisor
        .run_pipeline(vec![
            CommandSpec::new("produce", "printf").arg("alpha\nbeta\n"),
            CommandSpec::new("upper", "tr").args(["a-z", "A-Z"]),
            CommandSpec::new("consume", "cat").stdout_file(&out),
        ])
        .expect("pipeline runs");
    assert_eq!(read(&out), "ALPHA\nBETA\n");
    let labels: Vec<&str> = report.stages.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["produce", "upper", "consume"]);
    for stage in &report.stages {
        assert_eq!(stage.status, ExitStatusKind::Exited(0), "{}", stage.label);
        assert_eq!(stage.stop, None);
    }
}

#[test]
fn pipeline_upstream_killed_midstream_is_the_root_cause() {
    let (_temp, dir, supervisor) = setup();
    let out = dir.join("out.sam");
    let error = supervisor
        .run_pipeline(vec![
            CommandSpec::new("bwa-mem", fake("killed-midstream")).arg("1000"),
            CommandSpec::new("samtools-sort", "cat").stdout_file(&out),
        ])
        .expect_err("upstream killed");
    let ProcessError::Killed {
        label,
        signal,
        signal_name,
        stderr_tail,
        report,
    } = &error
    else {
        panic!("expected Killed, got {error:?}");
    };
    assert_eq!(label, "bwa-mem");
    assert_eq!(*signal, 9);
    assert_eq!(signal_name, "SIGKILL");
    assert_eq!(stderr_tail, "killed-midstream: wrote 1000 records");
    assert_eq!(
        error.to_string(),
        "bwa-mem was killed by SIGKILL: killed-midstream: wrote 1000 records"
    );
    assert_eq!(error.exit_class(), ExitClass::ToolKilled);
    assert_eq!(error.exit_class().code(), 21);

    assert_eq!(report.stages.len(), 2);
    assert_eq!(report.stages[0].status, ExitStatusKind::signaled(9));
    assert_eq!(report.stages[0].stop, None);
    // The consumer either finished first (exit 0 at end-of-file) or was stopped as doomed.
    let consumer = &report.stages[1];
    assert_eq!(consumer.label, "samtools-sort");
    assert!(
        consumer.status == ExitStatusKind::Exited(0)
            || consumer.stop == Some(StopReason::StageFailed),
        "{consumer:?}"
    );
    // Whatever reached the output is a prefix of what the producer wrote.
    let expected: String = (1..=1000).map(|i| format!("record {i}\n")).collect();
    assert!(expected.starts_with(&read(&out)));
}

#[test]
fn pipeline_upstream_failure_is_the_root_cause() {
    let (_temp, _dir, supervisor) = setup();
    let error = supervisor
        .run_pipeline(vec![
            CommandSpec::new("bwa-mem", fake("exit-1"))
                .arg("[E::main_mem] fail to open file 'x.fq'"),
            CommandSpec::new("samtools-sort", "cat"),
        ])
        .expect_err("upstream fails");
    let ProcessError::Failed {
        label,
        code,
        stderr_tail,
        report,
    } = &error
    else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(label, "bwa-mem");
    assert_eq!(*code, 1);
    assert_eq!(stderr_tail, "[E::main_mem] fail to open file 'x.fq'");
    assert_eq!(
        error.to_string(),
        "bwa-mem exited with status 1: [E::main_mem] fail to open file 'x.fq'"
    );
    assert_eq!(error.exit_class(), ExitClass::ToolFailed);
    let consumer = report.stage("samtools-sort").expect("consumer report");
    assert!(
        consumer.status == ExitStatusKind::Exited(0)
            || consumer.stop == Some(StopReason::StageFailed),
        "{consumer:?}"
    );
}

#[test]
fn pipeline_downstream_failure_is_blamed_not_the_broken_upstream() {
    let (_temp, _dir, supervisor) = setup();
    let error = supervisor
        .run_pipeline(vec![
            CommandSpec::new("bcftools-mpileup", fake("write-forever")),
            CommandSpec::new("bcftools-call", fake("exit-1"))
                .arg("bcftools call: write failed: No space left on device"),
        ])
        .expect_err("downstream fails");
    let ProcessError::Failed {
        label,
        code,
        stderr_tail,
        report,
    } = &error
    else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(label, "bcftools-call");
    assert_eq!(*code, 1);
    assert_eq!(
        stderr_tail,
        "bcftools call: write failed: No space left on device"
    );
    assert_eq!(error.exit_class(), ExitClass::Scratch);
    // The producer died of SIGPIPE on its own, or was stopped as doomed first.
    let producer = &report.stages[0];
    assert!(
        producer.status == ExitStatusKind::signaled(13)
            || producer.stop == Some(StopReason::StageFailed),
        "{producer:?}"
    );
}

#[test]
fn cancel_stops_every_stage_with_sigterm() {
    let (_temp, dir, supervisor) = setup();
    let supervisor = supervisor.with_grace(Duration::from_secs(30));
    let cancel = supervisor.cancel_token().clone();
    let logs = dir.join("logs");
    let started = Instant::now();
    let result = thread::scope(|scope| {
        let canceller = scope.spawn(|| {
            let ready = wait_for_log(&logs.join("bwa-mem.stderr"), "stalling")
                && wait_for_log(&logs.join("samtools-sort.stderr"), "stalling");
            cancel.cancel(CancelReason::Terminate);
            ready
        });
        let result = supervisor.run_pipeline(vec![
            CommandSpec::new("bwa-mem", fake("sleep-forever")),
            CommandSpec::new("samtools-sort", fake("sleep-forever")),
        ]);
        assert!(canceller.join().expect("canceller"), "stages never started");
        result
    });
    let elapsed = started.elapsed();
    let error = result.expect_err("cancelled");
    let ProcessError::Cancelled {
        label,
        reason,
        report,
    } = &error
    else {
        panic!("expected Cancelled, got {error:?}");
    };
    assert_eq!(label, "bwa-mem | samtools-sort");
    assert_eq!(*reason, CancelReason::Terminate);
    assert_eq!(
        error.to_string(),
        "bwa-mem | samtools-sort cancelled: SIGTERM received"
    );
    assert_eq!(error.exit_class(), ExitClass::Terminated);
    assert_eq!(error.exit_class().code(), 143);
    // Stopped by SIGTERM, well before the 30 s grace period would have led to SIGKILL.
    assert!(elapsed < Duration::from_secs(25), "took {elapsed:?}");
    assert_eq!(report.stages.len(), 2);
    for stage in &report.stages {
        assert_eq!(
            stage.status,
            ExitStatusKind::signaled(15),
            "{}",
            stage.label
        );
        assert_eq!(
            stage.stop,
            Some(StopReason::Cancelled(CancelReason::Terminate))
        );
        assert_eq!(stage.stderr_tail, "sleep-forever: stalling");
        assert_group_gone(stage.pid);
    }
}

#[test]
fn a_child_ignoring_sigterm_gets_sigkill_after_the_grace_period() {
    let (_temp, dir, supervisor) = setup();
    let supervisor = supervisor.with_grace(Duration::from_millis(200));
    let cancel = supervisor.cancel_token().clone();
    let log = dir.join("logs/stubborn.stderr");
    let started = Instant::now();
    let result = thread::scope(|scope| {
        let canceller = scope.spawn(|| {
            let ready = wait_for_log(&log, "ignoring SIGTERM");
            cancel.cancel(CancelReason::Interrupt);
            ready
        });
        let result = supervisor.run(CommandSpec::new("stubborn", fake("ignores-sigterm")));
        assert!(canceller.join().expect("canceller"), "trap never set");
        result
    });
    let elapsed = started.elapsed();
    let error = result.expect_err("cancelled");
    let ProcessError::Cancelled { reason, report, .. } = &error else {
        panic!("expected Cancelled, got {error:?}");
    };
    assert_eq!(*reason, CancelReason::Interrupt);
    assert_eq!(error.exit_class(), ExitClass::Interrupted);
    assert_eq!(error.exit_class().code(), 130);
    let stage = &report.stages[0];
    assert_eq!(
        stage.status,
        ExitStatusKind::Signaled {
            signal: 9,
            name: "SIGKILL".into()
        }
    );
    assert_eq!(
        stage.stop,
        Some(StopReason::Cancelled(CancelReason::Interrupt))
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert_group_gone(stage.pid);
}

#[test]
fn a_stalled_child_times_out() {
    let (_temp, _dir, supervisor) = setup();
    let supervisor = supervisor
        .with_timeout(Some(Duration::from_millis(300)))
        .with_grace(Duration::from_secs(30));
    let started = Instant::now();
    let error = supervisor
        .run(CommandSpec::new(
            "bcftools-call.chr20",
            fake("sleep-forever"),
        ))
        .expect_err("times out");
    let elapsed = started.elapsed();
    let ProcessError::TimedOut {
        label,
        after,
        report,
    } = &error
    else {
        panic!("expected TimedOut, got {error:?}");
    };
    assert_eq!(label, "bcftools-call.chr20");
    assert_eq!(*after, Duration::from_millis(300));
    assert_eq!(
        error.to_string(),
        "bcftools-call.chr20 timed out after 300ms"
    );
    assert_eq!(error.exit_class(), ExitClass::ToolKilled);
    let stage = &report.stages[0];
    assert_eq!(stage.status, ExitStatusKind::signaled(15));
    assert_eq!(stage.stop, Some(StopReason::TimedOut));
    assert!(elapsed >= Duration::from_millis(300), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(25), "took {elapsed:?}");
    assert_group_gone(stage.pid);
}

#[test]
fn a_flood_of_stderr_does_not_stall_the_child() {
    let (_temp, dir, supervisor) = setup();
    let out = dir.join("out.txt");
    let report = supervisor
        .run(
            CommandSpec::new("chatty", fake("flood-stderr"))
                .arg("200000")
                .stdout_file(&out),
        )
        .expect("flood-stderr runs");
    assert_eq!(report.status, ExitStatusKind::Exited(0));
    assert_eq!(read(&out), "flood-stderr: stdout\n");
    // 200000 lines of 28 bytes (5.6 MB), then "flood-stderr: done\n".
    let log_len = std::fs::metadata(&report.stderr_log)
        .expect("log metadata")
        .len();
    assert_eq!(log_len, 200_000 * 28 + 19);
    let mut tail = vec!["flood-stderr: noise on fd 2"; 39];
    tail.push("flood-stderr: done");
    assert_eq!(report.stderr_tail, tail.join("\n"));
}

#[test]
fn pipe_stdin_and_inherited_fd_reach_the_child() {
    let (_temp, dir, supervisor) = setup();
    let expected: String = (0..5000).map(|i| format!("line {i} via pipe\n")).collect();

    // An anonymous pipe visible to the child as /dev/fd/3.
    let (reader, mut writer) = io::pipe().expect("pipe");
    let out = dir.join("fd3.txt");
    let report = thread::scope(|scope| {
        scope.spawn(|| {
            writer.write_all(expected.as_bytes()).expect("write pipe");
            drop(writer);
        });
        supervisor.run(
            CommandSpec::new("cat-fd3", "cat")
                .arg("/dev/fd/3")
                .inherit_fd(3, reader.into())
                .stdout_file(&out),
        )
    })
    .expect("cat /dev/fd/3 runs");
    assert_eq!(report.status, ExitStatusKind::Exited(0));
    assert_eq!(read(&out), expected);

    // An anonymous pipe as stdin.
    let (reader, mut writer) = io::pipe().expect("pipe");
    let out = dir.join("stdin.txt");
    thread::scope(|scope| {
        scope.spawn(|| {
            writer.write_all(expected.as_bytes()).expect("write pipe");
            drop(writer);
        });
        supervisor.run(
            CommandSpec::new("cat-stdin", "cat")
                .stdin(StdinSource::Pipe(reader))
                .stdout_file(&out),
        )
    })
    .expect("cat runs");
    assert_eq!(read(&out), expected);

    // A file as stdin.
    let input = dir.join("input.txt");
    std::fs::write(&input, "from a file\n").expect("write input");
    let out = dir.join("file.txt");
    supervisor
        .run(
            CommandSpec::new("cat-file", "cat")
                .stdin(StdinSource::File(input))
                .stdout_file(&out),
        )
        .expect("cat runs");
    assert_eq!(read(&out), "from a file\n");
}

#[test]
fn the_last_stage_can_write_into_a_pipe_that_the_caller_reads() {
    let (_temp, dir, supervisor) = setup();
    let expected: String = (0..20_000).map(|i| format!("record {i}\n")).collect();
    let input = dir.join("in.txt");
    std::fs::write(&input, &expected).expect("write input");
    let (mut reader, writer) = io::pipe().expect("pipe");
    let (sender, received) = std::sync::mpsc::channel();
    // Reads to end-of-file, which comes only if no copy of the write end is left open.
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let result = io::Read::read_to_end(&mut reader, &mut bytes).map(|_| bytes);
        let _ = sender.send(result);
    });
    let report = supervisor
        .run_pipeline(vec![
            CommandSpec::new("samtools-sort", "cat").stdin(StdinSource::File(input)),
            CommandSpec::new("samtools-view", "cat").stdout_pipe(writer),
        ])
        .expect("the pipeline runs");
    assert!(report.stages.iter().all(|stage| stage.success()));
    let bytes = received
        .recv_timeout(Duration::from_secs(20))
        .expect("end-of-file once the stage has exited")
        .expect("read the pipe");
    assert_eq!(String::from_utf8(bytes).expect("UTF-8"), expected);

    let (_reader, writer) = io::pipe().expect("pipe");
    let error = supervisor
        .run_pipeline(vec![
            CommandSpec::new("a", "true").stdout_pipe(writer),
            CommandSpec::new("b", "true"),
        ])
        .expect_err("a middle stage cannot write into a pipe");
    assert_eq!(
        error.to_string(),
        "invalid command a: a stdout pipe is set on stage 1 but only the last stage may set it"
    );
}

#[test]
fn missing_stdin_file_is_an_io_error() {
    let (_temp, dir, supervisor) = setup();
    let missing = dir.join("missing.fq");
    let error = supervisor
        .run(CommandSpec::new("cat", "cat").stdin(StdinSource::File(missing.clone())))
        .expect_err("missing stdin");
    assert_eq!(
        error.to_string(),
        format!("could not open stdin file {missing}")
    );
    assert!(matches!(&error, ProcessError::Io { path, .. } if *path == missing));
}

#[test]
fn env_and_current_dir_are_applied() {
    let (_temp, dir, supervisor) = setup();
    let out = dir.join("env.txt");
    supervisor
        .run(
            CommandSpec::new("printenv", "printenv")
                .arg("BIOJOB_PROCESS_TEST")
                .env("BIOJOB_PROCESS_TEST", "shard 7")
                .stdout_file(&out),
        )
        .expect("printenv runs");
    assert_eq!(read(&out), "shard 7\n");

    let work = dir.join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let out = dir.join("pwd.txt");
    supervisor
        .run(
            CommandSpec::new("pwd", "pwd")
                .current_dir(&work)
                .stdout_file(&out),
        )
        .expect("pwd runs");
    let canonical = work.canonicalize_utf8().expect("canonical work dir");
    assert_eq!(read(&out), format!("{canonical}\n"));

    let missing = dir.join("no-such-dir");
    let error = supervisor
        .run(CommandSpec::new("pwd", "pwd").current_dir(&missing))
        .expect_err("missing cwd");
    assert_eq!(
        error.to_string(),
        format!("could not enter working directory {missing}")
    );
}

#[test]
fn capture_accepts_any_exit_status() {
    let (_temp, dir, supervisor) = setup();
    let captured = supervisor
        .capture(CommandSpec::new("bwa-version", fake("exit-1")).args([
            "",
            "Program: bwa",
            "Version: 0.7.18-r1243",
        ]))
        .expect("capture runs");
    assert_eq!(captured.report.status, ExitStatusKind::Exited(1));
    assert_eq!(captured.stdout, "");
    assert_eq!(captured.stderr, "\nProgram: bwa\nVersion: 0.7.18-r1243\n");
    assert_eq!(
        read(&dir.join("logs/bwa-version.stderr")),
        "\nProgram: bwa\nVersion: 0.7.18-r1243\n"
    );

    let captured = supervisor
        .capture(CommandSpec::new("samtools-version", "echo").args(["samtools", "1.21"]))
        .expect("capture runs");
    assert_eq!(captured.report.status, ExitStatusKind::Exited(0));
    assert_eq!(captured.stdout, "samtools 1.21\n");
    assert_eq!(captured.stderr, "");
}

#[test]
fn an_already_cancelled_token_starts_nothing() {
    let (_temp, dir, supervisor) = setup();
    supervisor.cancel_token().cancel(CancelReason::Sibling);
    let error = supervisor
        .run(CommandSpec::new("bwa-mem", fake("sleep-forever")))
        .expect_err("cancelled");
    let ProcessError::Cancelled { reason, report, .. } = &error else {
        panic!("expected Cancelled, got {error:?}");
    };
    assert_eq!(*reason, CancelReason::Sibling);
    assert!(report.stages.is_empty());
    assert_eq!(error.exit_class(), ExitClass::ToolFailed);
    assert!(!dir.join("logs/bwa-mem.stderr").exists());
}

#[test]
fn a_child_token_cancels_one_run_but_not_the_parent() {
    let (_temp, dir, supervisor) = setup();
    let root = supervisor.cancel_token().clone();
    let shard = root.child();
    let shard_supervisor = supervisor.with_cancel(shard.clone());
    let log = dir.join("logs/bcftools-call.chr1.stderr");
    let result = thread::scope(|scope| {
        let canceller = scope.spawn(|| {
            let ready = wait_for_log(&log, "stalling");
            shard.cancel(CancelReason::Sibling);
            ready
        });
        let result = shard_supervisor.run(CommandSpec::new(
            "bcftools-call.chr1",
            fake("sleep-forever"),
        ));
        assert!(canceller.join().expect("canceller"), "never started");
        result
    });
    let error = result.expect_err("cancelled");
    assert!(
        matches!(
            &error,
            ProcessError::Cancelled {
                reason: CancelReason::Sibling,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!root.is_cancelled());
    // The parent's supervisor still runs commands.
    supervisor
        .run(CommandSpec::new("true", "true"))
        .expect("true runs");
}

#[test]
fn invalid_pipelines_are_rejected_before_starting() {
    let (_temp, dir, supervisor) = setup();
    let error = supervisor.run_pipeline(Vec::new()).expect_err("empty");
    assert_eq!(
        error.to_string(),
        "invalid command (empty pipeline): a pipeline needs a stage"
    );
    assert_eq!(error.exit_class(), ExitClass::Usage);
    let error = supervisor
        .capture(CommandSpec::new("x", "echo").stdout_file(dir.join("o")))
        .expect_err("stdout file on capture");
    assert!(
        matches!(error, ProcessError::InvalidCommand { .. }),
        "{error:?}"
    );
}

/// `(target, tool, message)` of every event seen by the test subscriber.
type Events = Arc<Mutex<Vec<(String, String, String)>>>;

fn events() -> &'static Events {
    static EVENTS: OnceLock<Events> = OnceLock::new();
    EVENTS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let events = Events::default();
        let subscriber = tracing_subscriber::registry().with(Collect(Arc::clone(&events)));
        tracing::subscriber::set_global_default(subscriber).expect("first global subscriber");
        events
    })
}

struct Collect(Events);

#[derive(Default)]
struct Fields {
    tool: String,
    message: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        match field.name() {
            "tool" => self.tool = format!("{value:?}"),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if *event.metadata().level() != tracing::Level::DEBUG {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().expect("events lock").push((
            event.metadata().target().to_owned(),
            fields.tool,
            fields.message,
        ));
    }
}

#[test]
fn each_stderr_line_is_a_debug_event() {
    let events = events();
    let (_temp, _dir, supervisor) = setup();
    let error = supervisor
        .run(CommandSpec::new("debug-events", fake("exit-1")).args(["first line", "second line"]))
        .expect_err("exit-1 fails");
    assert!(matches!(error, ProcessError::Failed { code: 1, .. }));
    let seen: Vec<String> = events
        .lock()
        .expect("events lock")
        .iter()
        .filter(|(target, tool, _)| target == "biojob_process::drain" && tool == "debug-events")
        .map(|(_, _, message)| message.clone())
        .collect();
    assert_eq!(seen, ["first line", "second line"]);
}

/// What a [`Switch`] watchdog says.
const RUN: u8 = 0;
const PAUSE: u8 = 1;
const STOP: u8 = 2;

/// A watchdog the test flips by hand; after `stop_after` checks in the pause state it says
/// stop (when set).
#[derive(Debug, Default)]
struct Switch {
    verdict: AtomicU8,
    paused_checks: AtomicUsize,
    stop_after: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("scratch never grew")]
struct NeverGrew;

impl Classify for NeverGrew {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Scratch
    }
    fn remedy(&self) -> Option<String> {
        Some("use a larger disk".into())
    }
}

impl Switch {
    fn set(&self, verdict: u8) {
        self.verdict.store(verdict, Ordering::SeqCst);
    }
}

impl Watchdog for Switch {
    fn check(&self) -> WatchVerdict {
        match self.verdict.load(Ordering::SeqCst) {
            PAUSE => {
                let checks = self.paused_checks.fetch_add(1, Ordering::SeqCst) + 1;
                if self.stop_after.is_some_and(|limit| checks >= limit) {
                    WatchVerdict::Stop(WatchStop::new(NeverGrew))
                } else {
                    WatchVerdict::Pause
                }
            }
            STOP => WatchVerdict::Stop(WatchStop::new(NeverGrew)),
            _ => WatchVerdict::Run,
        }
    }
}

/// Waits (at most 20 s) until `check` holds; whether it did.
fn wait_until(mut check: impl FnMut() -> bool) -> bool {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !check() {
        if Instant::now() > give_up {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn a_watchdog_pauses_and_resumes_the_children() {
    let (_temp, dir, supervisor) = setup();
    let switch = Arc::new(Switch::default());
    let supervisor = supervisor.with_watchdog(Some(switch.clone()));
    let pid_file = dir.join("writer.pid");
    let out = dir.join("out.txt");
    let script =
        "echo $$ > \"$1\"; i=0; while [ $i -lt 30 ]; do echo $i; i=$((i+1)); sleep 0.02; done";
    let (result, observed) = thread::scope(|scope| {
        let run = scope.spawn(|| {
            supervisor.run(
                CommandSpec::new("writer", "sh")
                    .args(["-c", script, "sh", pid_file.as_str()])
                    .stdout_file(&out),
            )
        });
        // Whatever happens below, let the writer finish so that the scope can end.
        let _resume = Resume(&switch);
        let observed = (|| {
            if !wait_until(|| read_opt(&pid_file).is_some_and(|text| text.ends_with('\n'))) {
                return Err("the writer never started".to_owned());
            }
            let pid: u32 = read(&pid_file).trim().parse().map_err(|e| format!("{e}"))?;
            switch.set(PAUSE);
            // Stopped: some process of the group is in state T (a shell blocked in vfork for a
            // stopped child shows D), none is running or sleeping.
            let stopped = || {
                let states = group_states(pid);
                states.contains(&'T') && states.iter().all(|s| matches!(s, 'T' | 'D' | 'Z'))
            };
            if !wait_until(stopped) {
                return Err(format!("never stopped: {:?}", group_states(pid)));
            }
            let before = read(&out);
            thread::sleep(Duration::from_millis(300));
            let after = read(&out);
            let still = stopped();
            Ok((before, after, still))
        })();
        drop(_resume);
        (run.join().expect("run"), observed)
    });
    let (before, after, still_stopped) = observed.expect("paused");
    // Nothing was written while paused.
    assert_eq!(before, after);
    assert!(still_stopped);
    let report = result.expect("the writer finishes once resumed");
    assert_eq!(report.status, ExitStatusKind::Exited(0));
    assert_eq!(report.stop, None);
    let expected: String = (0..30).map(|i| format!("{i}\n")).collect();
    assert_eq!(read(&out), expected);
}

/// Sets a [`Switch`] to run when dropped.
struct Resume<'a>(&'a Switch);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.set(RUN);
    }
}

fn read_opt(path: &Utf8Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The state letters of the processes in process group `pgid`.
fn group_states(pgid: u32) -> Vec<char> {
    processes()
        .into_iter()
        .filter(|process| process.pgrp == pgid)
        .map(|process| process.state)
        .collect()
}

#[test]
fn a_watchdog_stop_ends_paused_children_with_sigterm_and_its_class() {
    let (_temp, _dir, supervisor) = setup();
    let switch = Arc::new(Switch {
        stop_after: Some(20),
        ..Switch::default()
    });
    switch.set(PAUSE);
    let supervisor = supervisor
        .with_grace(Duration::from_secs(30))
        .with_watchdog(Some(switch));
    let started = Instant::now();
    let error = supervisor
        .run(CommandSpec::new("sleeper", fake("sleep-forever")))
        .expect_err("stopped");
    let elapsed = started.elapsed();
    assert_eq!(error.to_string(), "stopped sleeper");
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("scratch never grew"));
    assert_eq!(error.exit_class(), ExitClass::Scratch);
    assert_eq!(error.exit_class().code(), 12);
    assert_eq!(error.remedy().as_deref(), Some("use a larger disk"));
    let report = error.report().expect("report");
    let stage = &report.stages[0];
    // SIGTERM reached the stopped child (SIGCONT after it), well before SIGKILL was due.
    assert_eq!(stage.status, ExitStatusKind::signaled(15));
    assert_eq!(stage.stop, Some(StopReason::Watchdog));
    assert!(elapsed < Duration::from_secs(25), "took {elapsed:?}");
    assert_group_gone(stage.pid);
}

#[test]
fn cancelling_paused_children_stops_them_with_sigterm() {
    let (_temp, _dir, supervisor) = setup();
    let switch = Arc::new(Switch::default());
    switch.set(PAUSE);
    let supervisor = supervisor
        .with_grace(Duration::from_secs(30))
        .with_watchdog(Some(switch.clone()));
    let cancel = supervisor.cancel_token().clone();
    let started = Instant::now();
    let result = thread::scope(|scope| {
        scope.spawn(|| {
            wait_until(|| switch.paused_checks.load(Ordering::SeqCst) > 10);
            cancel.cancel(CancelReason::Terminate);
        });
        supervisor.run(CommandSpec::new("sleeper", fake("sleep-forever")))
    });
    let elapsed = started.elapsed();
    let error = result.expect_err("cancelled");
    assert_eq!(error.to_string(), "sleeper cancelled: SIGTERM received");
    assert_eq!(error.exit_class().code(), 143);
    let stage = &error.report().expect("report").stages[0];
    assert_eq!(stage.status, ExitStatusKind::signaled(15));
    assert!(elapsed < Duration::from_secs(25), "took {elapsed:?}");
    assert_group_gone(stage.pid);
}

#[test]
fn paused_time_does_not_count_against_the_tool_timeout() {
    let (_temp, _dir, supervisor) = setup();
    let switch = Arc::new(Switch::default());
    switch.set(PAUSE);
    let supervisor = supervisor
        .with_timeout(Some(Duration::from_millis(600)))
        .with_watchdog(Some(switch.clone()));
    let started = Instant::now();
    let result = thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(Duration::from_millis(1000));
            switch.set(RUN);
        });
        supervisor.run(CommandSpec::new("short", "sleep").arg("0.2"))
    });
    let report = result.expect("paused time is not the tool's");
    assert_eq!(report.status, ExitStatusKind::Exited(0));
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

#[test]
fn the_step_deadline_stops_a_stalled_tool_and_anything_started_later() {
    let (_temp, _dir, supervisor) = setup();
    let supervisor = supervisor
        .with_grace(Duration::from_secs(30))
        .with_step_deadline(Some(StepDeadline::starting_now(
            "align",
            Duration::from_millis(300),
        )));
    let started = Instant::now();
    let error = supervisor
        .run_pipeline(vec![
            CommandSpec::new("bwa-mem", fake("sleep-forever")),
            CommandSpec::new("samtools-sort", fake("sleep-forever")),
        ])
        .expect_err("past the step's limit");
    let elapsed = started.elapsed();
    assert_eq!(
        error.to_string(),
        "step align went past its time limit of 300ms; stopped bwa-mem | samtools-sort"
    );
    assert_eq!(error.exit_class(), ExitClass::ToolKilled);
    assert_eq!(error.exit_class().code(), 21);
    assert!(
        error.remedy().is_some_and(|remedy| remedy.starts_with(
            "raise the step time limit (--timeout, BIOJOB_STEP_TIMEOUT), or find why align \
                 stalled in "
        )),
        "{:?}",
        error.remedy()
    );
    assert!(elapsed >= Duration::from_millis(300), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(25), "took {elapsed:?}");
    for stage in &error.report().expect("report").stages {
        assert_eq!(stage.status, ExitStatusKind::signaled(15));
        assert_eq!(stage.stop, Some(StopReason::StepTimedOut));
        assert_group_gone(stage.pid);
    }

    let later = supervisor
        .run(CommandSpec::new("samtools-index", "true"))
        .expect_err("the deadline has passed");
    assert_eq!(
        later.to_string(),
        "step align went past its time limit of 300ms; stopped samtools-index"
    );
    assert_eq!(later.report().map(|r| r.stages.len()), Some(0));
}

/// The environment variable that makes [`supervising_helper`] act, naming what it runs:
/// `single` or `pipeline`.
const HELPER_MODE: &str = "BIOJOB_TEST_SUPERVISING_HELPER";
/// The helper's working directory (its logs, and the marker it writes).
const HELPER_DIR: &str = "BIOJOB_TEST_SUPERVISING_HELPER_DIR";

/// Not a test: the stand-in for a `biojob run` that the tests below SIGKILL. Run as a child
/// process of this test binary, it supervises long-running tools from a worker thread (as
/// `biojob run` runs shards), while a short run on another worker thread starts a tool and
/// ends, then writes `short-done` in its directory.
#[test]
#[ignore = "run as a child process by the tools_die_with_a_sigkilled_supervisor tests"]
fn supervising_helper() {
    let Ok(mode) = std::env::var(HELPER_MODE) else {
        return;
    };
    let dir = Utf8PathBuf::from(std::env::var(HELPER_DIR).expect("helper directory"));
    // A helper left behind by a failed test stops on its own.
    let supervisor = Supervisor::new(dir.join("logs"), CancelToken::new())
        .with_timeout(Some(Duration::from_secs(60)));
    let stages = match mode.as_str() {
        "single" => vec![CommandSpec::new("bwa-mem", "sleep").arg("600")],
        "pipeline" => vec![
            CommandSpec::new("bwa-mem", "sleep").arg("600"),
            CommandSpec::new("samtools-view", "cat"),
            CommandSpec::new("samtools-sort", "cat"),
        ],
        other => panic!("unknown helper mode {other}"),
    };
    thread::scope(|scope| {
        let long = scope.spawn(|| supervisor.run_pipeline(stages));
        let short = scope.spawn(|| supervisor.run(CommandSpec::new("short", "true")));
        short.join().expect("short run").expect("true succeeds");
        std::fs::write(dir.join("short-done"), "").expect("write the marker");
        let _ = long.join();
    });
}

/// Starts [`supervising_helper`] in `mode`, waits until it runs tools named `comms` and its
/// short run has ended, checks that they still run, SIGKILLs it, and asserts that each of its
/// tools is gone (or a zombie) within two seconds.
fn assert_tools_die_with_a_sigkilled_supervisor(mode: &str, comms: &[&str]) {
    let (_temp, dir, _supervisor) = setup();
    let mut helper = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "supervising_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_MODE, mode)
        .env(HELPER_DIR, &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("helper.stderr")).expect("helper log"))
        .spawn()
        .expect("start the helper");
    let helper_pid = helper.id();
    let tools = || {
        let mut tools: Vec<Process> = processes()
            .into_iter()
            .filter(|process| process.ppid == helper_pid && process.state != 'Z')
            .collect();
        tools.sort_by_key(|process| process.pid);
        tools
    };
    let comm_list = |tools: &[Process]| {
        let mut names: Vec<String> = tools.iter().map(|tool| tool.comm.clone()).collect();
        names.sort();
        names
    };
    let mut expected: Vec<String> = comms.iter().map(|comm| (*comm).to_owned()).collect();
    expected.sort();
    let started = wait_until(|| dir.join("short-done").exists() && comm_list(&tools()) == expected);
    let running = tools();
    // The short run's thread has ended: the long run's tools are unharmed.
    thread::sleep(Duration::from_millis(200));
    let still = tools();

    helper.kill().expect("SIGKILL the helper");
    helper.wait().expect("reap the helper");
    let alive = |tool: &Process| {
        process(tool.pid).is_some_and(|now| now.start_time == tool.start_time && now.state != 'Z')
    };
    let give_up = Instant::now() + Duration::from_secs(2);
    let mut left: Vec<Process> = running.clone();
    while !left.is_empty() && Instant::now() < give_up {
        left.retain(alive);
        thread::sleep(Duration::from_millis(10));
    }
    left.retain(alive);
    // Whatever the outcome, leave no process behind.
    for tool in &left {
        let _ = kill(Pid::from_raw(tool.pid as i32), nix::sys::signal::SIGKILL);
    }
    assert!(
        started,
        "the helper never ran {expected:?}: {:?}; its stderr: {}",
        comm_list(&tools()),
        read_opt(&dir.join("helper.stderr")).unwrap_or_default()
    );
    assert_eq!(comm_list(&running), expected);
    assert_eq!(
        still.iter().map(|tool| tool.pid).collect::<Vec<_>>(),
        running.iter().map(|tool| tool.pid).collect::<Vec<_>>(),
        "a tool ended when another run's thread did"
    );
    assert_eq!(
        left.iter()
            .map(|tool| tool.line.clone())
            .collect::<Vec<_>>(),
        Vec::<String>::new(),
        "tools outlived their SIGKILLed supervisor"
    );
}

#[test]
fn a_tool_dies_with_a_sigkilled_supervisor() {
    assert_tools_die_with_a_sigkilled_supervisor("single", &["sleep"]);
}

#[test]
fn every_stage_of_a_pipeline_dies_with_a_sigkilled_supervisor() {
    assert_tools_die_with_a_sigkilled_supervisor("pipeline", &["sleep", "cat", "cat"]);
}
