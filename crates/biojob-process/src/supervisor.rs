//! Spawning, waiting for and stopping children.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use command_fds::{CommandFdExt, FdMapping};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use wait4::Wait4;

use crate::command::StdoutTarget;
use crate::drain::{Drain, DrainOptions};
use crate::{
    CancelToken, Captured, CommandSpec, ExitStatusKind, PipelineReport, ProcessError, StageReport,
    StdinSource, StepDeadline, StopReason, WatchStop, WatchVerdict, Watchdog,
};

/// The default time between SIGTERM and SIGKILL: 10 seconds.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// The shortest and the longest time between two polls of the running children (each poll also
/// checks the cancel token, the deadlines and the watchdog). Polls start at the shortest interval,
/// so a tool that runs for milliseconds is reaped at once, and double up to the longest, so a
/// tool that runs for minutes costs ten wake-ups a second, not a hundred: at a fixed 10 ms the
/// poll loop was about 0.7 s of biojob's own CPU on a four-minute run (`benches/e2e.sh`). They
/// go back to the shortest once a child is reaped or the children are being stopped.
const POLL_INTERVAL_MIN: Duration = Duration::from_millis(1);
const POLL_INTERVAL_MAX: Duration = Duration::from_millis(100);
/// How long to wait, after a child has exited, for its output to reach end-of-file.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Runs commands and pipelines as supervised children.
///
/// Every child runs in its own process group with stdin `/dev/null` unless set. Its stderr is
/// drained on a thread (a full pipe never stalls it) into `<log_dir>/<label>.stderr` (created or
/// truncated), emitted line by line as `tracing::debug!` events with a `tool` field, and its last
/// lines are kept as the stderr tail of its [`StageReport`].
///
/// When the [`CancelToken`] is cancelled, the timeout passes, or a stage of a pipeline fails, the
/// supervisor sends SIGTERM to the process group of every child not yet reaped, waits the grace
/// period, then sends SIGKILL to those still running. A child that has been reaped is never
/// signalled, so a recycled pid is never hit; processes that a child left behind in its group
/// after it exited are the child's own business.
///
/// The calling thread polls the children, every millisecond at first, backing off to every
/// 100 ms while they run; the cancel token can be cancelled from any thread (e.g. the binary's
/// signal handler) and is seen within 100 ms.
///
/// Every child dies with biojob, even when biojob is killed by SIGKILL: it is started with a
/// parent-death signal of SIGKILL (`PR_SET_PDEATHSIG`, prctl(2)) by the thread that calls
/// [`run`](Self::run), [`run_pipeline`](Self::run_pipeline) or [`capture`](Self::capture),
/// which returns only once all of them are reaped (docs/process-supervision.md says why).
///
/// A [`Watchdog`], when set, is checked on every poll: it can pause the children (SIGSTOP to
/// every process group, SIGCONT when it says run again) or stop them with its own error. A
/// [`StepDeadline`], when set, stops the children once the step's time limit has passed.
/// Stopping paused children sends SIGTERM then SIGCONT, so that they can act on SIGTERM.
#[derive(Debug, Clone)]
pub struct Supervisor {
    log_dir: Utf8PathBuf,
    cancel: CancelToken,
    grace: Duration,
    timeout: Option<Duration>,
    step_deadline: Option<StepDeadline>,
    watchdog: Option<Arc<dyn Watchdog>>,
}

impl Supervisor {
    /// A supervisor writing stderr logs into `log_dir` (created when a command starts, if
    /// missing), with a grace period of [`DEFAULT_GRACE`] and no timeout.
    pub fn new(log_dir: impl Into<Utf8PathBuf>, cancel: CancelToken) -> Self {
        Self {
            log_dir: log_dir.into(),
            cancel,
            grace: DEFAULT_GRACE,
            timeout: None,
            step_deadline: None,
            watchdog: None,
        }
    }

    /// Sets the time between SIGTERM and SIGKILL when stopping children.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the longest a run (one command, or a whole pipeline) may take; `None` for no limit.
    /// Time the children spend paused by the [`Watchdog`] does not count.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the time limit of the step this supervisor runs commands for; `None` for no limit.
    pub fn with_step_deadline(mut self, deadline: Option<StepDeadline>) -> Self {
        self.step_deadline = deadline;
        self
    }

    /// Sets the watchdog checked while children run; `None` for none.
    pub fn with_watchdog(mut self, watchdog: Option<Arc<dyn Watchdog>>) -> Self {
        self.watchdog = watchdog;
        self
    }

    /// The same settings with another cancel token (e.g. a [`CancelToken::child`] per shard).
    pub fn with_cancel(&self, cancel: CancelToken) -> Self {
        Self {
            cancel,
            ..self.clone()
        }
    }

    /// The directory of the stderr logs.
    pub fn log_dir(&self) -> &Utf8Path {
        &self.log_dir
    }

    /// The cancel token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The time between SIGTERM and SIGKILL.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The longest a run may take, if limited.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The step's time limit, if any.
    pub fn step_deadline(&self) -> Option<&StepDeadline> {
        self.step_deadline.as_ref()
    }

    /// The watchdog, if any.
    pub fn watchdog(&self) -> Option<&Arc<dyn Watchdog>> {
        self.watchdog.as_ref()
    }

    /// Runs one command to completion.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Failed`] or [`ProcessError::Killed`] when it does not exit with status 0,
    /// [`ProcessError::TimedOut`] or [`ProcessError::Cancelled`] when the supervisor stopped it,
    /// [`ProcessError::Spawn`] when it cannot start, [`ProcessError::Io`] when its stdin,
    /// stdout or stderr log cannot be opened, [`ProcessError::InvalidCommand`] for a bad label.
    pub fn run(&self, command: CommandSpec) -> Result<StageReport, ProcessError> {
        let report = self.run_pipeline(vec![command])?;
        report
            .stages
            .into_iter()
            .next()
            .ok_or_else(|| ProcessError::InvalidCommand {
                label: "(empty pipeline)".into(),
                reason: "no stage ran".into(),
            })
    }

    /// Runs stages joined by OS pipes (stage i's stdout is stage i+1's stdin; no bytes pass
    /// through biojob) and waits for all of them.
    ///
    /// Only the first stage may set its stdin and only the last its stdout file.
    ///
    /// Pipefail: the run fails if any stage fails. When one stage fails, the others are doomed
    /// and are stopped (SIGTERM, grace period, SIGKILL); stages stopped by the supervisor are
    /// never reported as the cause, unless one exited with an error status of its own before the
    /// signal reached it. The error names the root cause: the earliest failing stage in
    /// pipeline order, skipping a stage that only broke because a later one failed (killed by
    /// SIGPIPE, exit status 141, or "broken pipe" in its stderr tail).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run), for the root-cause stage; [`ProcessError::InvalidCommand`] for an
    /// empty pipeline, duplicate labels, or stdin/stdout set on a middle stage.
    pub fn run_pipeline(&self, stages: Vec<CommandSpec>) -> Result<PipelineReport, ProcessError> {
        let executed = self.execute(stages, false)?;
        match self.stop_error(executed) {
            Ok(executed) => match root_cause(&executed.report.stages) {
                Some(index) => Err(stage_error(index, executed.report)),
                None => Ok(executed.report),
            },
            Err(error) => Err(error),
        }
    }

    /// The error for a run the supervisor stopped (cancel, timeouts, watchdog), or the run
    /// back when it was not stopped or a stage failed on its own.
    fn stop_error(&self, executed: Executed) -> Result<Executed, ProcessError> {
        let label = executed.group_label.clone();
        match executed.trigger {
            Some(StopReason::Cancelled(reason)) => Err(ProcessError::Cancelled {
                label,
                reason,
                report: Box::new(executed.report),
            }),
            Some(StopReason::TimedOut) => Err(ProcessError::TimedOut {
                label,
                after: self.timeout.unwrap_or_default(),
                report: Box::new(executed.report),
            }),
            Some(StopReason::StepTimedOut) => {
                let (step, limit) = self
                    .step_deadline
                    .as_ref()
                    .map(|deadline| (deadline.step.clone(), deadline.limit))
                    .unwrap_or_default();
                Err(ProcessError::StepTimedOut {
                    step,
                    limit,
                    label,
                    report: Box::new(executed.report),
                })
            }
            Some(StopReason::Watchdog) => {
                let stop = executed.watch_stop.unwrap_or_else(|| WatchStop {
                    class: biojob_core::ExitClass::ToolKilled,
                    remedy: None,
                    error: "the watchdog gave no reason".into(),
                });
                Err(ProcessError::Watchdog {
                    label,
                    class: stop.class,
                    remedy: stop.remedy,
                    source: stop.error,
                    report: Box::new(executed.report),
                })
            }
            Some(StopReason::StageFailed) | None => Ok(executed),
        }
    }

    /// Runs a command and captures its stdout and stderr in memory (the first 1 MiB of each),
    /// e.g. for a `tool --version` probe. Any exit status is accepted; stderr also goes to the
    /// log file.
    ///
    /// # Errors
    ///
    /// [`ProcessError::TimedOut`], [`ProcessError::Cancelled`], [`ProcessError::Spawn`],
    /// [`ProcessError::Io`], and [`ProcessError::InvalidCommand`] when a stdout file is set.
    pub fn capture(&self, command: CommandSpec) -> Result<Captured, ProcessError> {
        let executed = self.execute(vec![command], true)?;
        let mut executed = self.stop_error(executed)?;
        let report = executed
            .report
            .stages
            .pop()
            .ok_or_else(|| ProcessError::InvalidCommand {
                label: executed.group_label.clone(),
                reason: "no stage ran".into(),
            })?;
        Ok(Captured {
            report,
            stdout: String::from_utf8_lossy(&executed.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&executed.stderr).into_owned(),
        })
    }

    /// Validates, spawns, supervises and reaps `specs`; the caller turns the result into an
    /// error or a report.
    fn execute(&self, specs: Vec<CommandSpec>, capture: bool) -> Result<Executed, ProcessError> {
        validate(&specs, capture)?;
        let group_label = specs
            .iter()
            .map(|spec| spec.label.as_str())
            .collect::<Vec<_>>()
            .join(" | ");
        let span = tracing::info_span!("tool", tool = %group_label);
        let _entered = span.enter();

        let nothing_ran = || {
            Box::new(PipelineReport {
                stages: Vec::new(),
                wall: Duration::ZERO,
            })
        };
        if let Some(reason) = self.cancel.reason() {
            tracing::info!("not starting: {reason}");
            return Err(ProcessError::Cancelled {
                label: group_label,
                reason,
                report: nothing_ran(),
            });
        }
        if let Some(deadline) = &self.step_deadline
            && deadline.passed(Instant::now())
        {
            tracing::warn!(step = %deadline.step, "not starting: the step's time limit has passed");
            return Err(ProcessError::StepTimedOut {
                step: deadline.step.clone(),
                limit: deadline.limit,
                label: group_label,
                report: nothing_ran(),
            });
        }
        fs::create_dir_all(&self.log_dir).map_err(|source| ProcessError::Io {
            action: "create log directory",
            path: self.log_dir.clone(),
            source,
        })?;

        let started = Instant::now();
        let mut running = Vec::with_capacity(specs.len());
        if let Err(error) = self.spawn_all(specs, capture, &mut running) {
            if !running.is_empty() {
                tracing::warn!("stopping the stages already started: {error}");
                self.supervise(&mut running, started, Some(StopReason::StageFailed));
                finish(running);
            }
            return Err(error);
        }
        let (trigger, watch_stop) = self.supervise(&mut running, started, None);

        if let Some(index) = running.iter().position(|stage| stage.wait_error.is_some()) {
            let label = running[index].label.clone();
            let source = running[index]
                .wait_error
                .take()
                .unwrap_or_else(|| io::Error::other("wait4 failed"));
            finish(running);
            return Err(ProcessError::Os {
                label,
                operation: "wait4",
                source,
            });
        }
        let finished = finish(running);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut stages = Vec::with_capacity(finished.len());
        for stage in finished {
            stdout = stage.stdout;
            stderr = stage.stderr;
            stages.push(stage.report);
        }
        Ok(Executed {
            group_label,
            trigger,
            watch_stop,
            report: PipelineReport {
                stages,
                wall: started.elapsed(),
            },
            stdout,
            stderr,
        })
    }

    /// Spawns every stage, pushing each started one onto `running`.
    fn spawn_all(
        &self,
        specs: Vec<CommandSpec>,
        capture: bool,
        running: &mut Vec<Running>,
    ) -> Result<(), ProcessError> {
        let count = specs.len();
        let mut next_stdin: Option<Stdio> = None;
        for (index, spec) in specs.into_iter().enumerate() {
            let CommandSpec {
                label,
                program,
                args,
                current_dir,
                env,
                stdin,
                stdout,
                inherited_fds,
            } = spec;
            let argv = std::iter::once(program.to_string())
                .chain(args.iter().map(|arg| arg.to_string_lossy().into_owned()))
                .collect::<Vec<_>>();

            let mut command = Command::new(&program);
            for (name, _) in std::env::vars_os() {
                if crate::is_withheld_variable(&name) {
                    command.env_remove(name);
                }
            }
            command.args(&args).envs(env).process_group(0);
            if let Some(dir) = &current_dir {
                // Checked here so that a missing directory is not reported as a missing program.
                fs::metadata(dir).map_err(|source| ProcessError::Io {
                    action: "enter working directory",
                    path: dir.clone(),
                    source,
                })?;
                command.current_dir(dir);
            }

            let stdin = match next_stdin.take() {
                Some(pipe) => pipe,
                None => open_stdin(stdin)?,
            };
            command.stdin(stdin);

            let last = index + 1 == count;
            if !last {
                let (reader, writer) = io::pipe().map_err(|source| ProcessError::Os {
                    label: label.clone(),
                    operation: "create pipe",
                    source,
                })?;
                command.stdout(writer);
                next_stdin = Some(Stdio::from(reader));
            } else if capture {
                command.stdout(Stdio::piped());
            } else {
                command.stdout(open_stdout(stdout)?);
            }
            command.stderr(Stdio::piped());

            if !inherited_fds.is_empty() {
                let mappings = inherited_fds
                    .into_iter()
                    .map(|(child_fd, parent_fd)| FdMapping {
                        parent_fd,
                        child_fd,
                    })
                    .collect();
                command
                    .fd_mappings(mappings)
                    .map_err(|_| ProcessError::InvalidCommand {
                        label: label.clone(),
                        reason: "two descriptors inherited as the same child descriptor".into(),
                    })?;
            }

            let stderr_log = self.log_dir.join(format!("{label}.stderr"));
            let log = File::create(&stderr_log).map_err(|source| ProcessError::Io {
                action: "create stderr log",
                path: stderr_log.clone(),
                source,
            })?;

            // The child gets SIGKILL when this thread ends (PR_SET_PDEATHSIG, set between fork
            // and exec), so it dies with biojob even when biojob is SIGKILLed. This thread
            // supervises and reaps it before returning (see `Supervisor`). The command is
            // consumed: the parent's copies of the pipe ends and inherited descriptors are closed
            // now, so that downstream stages see end-of-file when upstream ones exit.
            let mut child =
                ur_taking_me_with_you::spawn_dying_with_parent(command).map_err(|source| {
                    ProcessError::Spawn {
                        label: label.clone(),
                        program: program.clone(),
                        argv: argv.clone(),
                        source,
                    }
                })?;
            let pid = child.id();
            if capture {
                tracing::debug!(tool = %label, pid, ?argv, "started");
            } else {
                tracing::info!(tool = %label, pid, ?argv, "started");
            }

            let stderr_pipe = child.stderr.take();
            let stdout_pipe = child.stdout.take();
            let mut stage = Running {
                label: label.clone(),
                argv,
                pid,
                child,
                started: Instant::now(),
                stderr_log,
                stderr: None,
                stdout: None,
                exit: None,
                stop: None,
                wait_error: None,
                probe: capture,
            };
            let drains = start_drains(&label, log, stderr_pipe, stdout_pipe, capture);
            match drains {
                Ok((stderr, stdout)) => {
                    stage.stderr = stderr;
                    stage.stdout = stdout;
                    running.push(stage);
                }
                Err(source) => {
                    running.push(stage);
                    return Err(ProcessError::Os {
                        label,
                        operation: "start output thread",
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Polls `stages` until every one is reaped, stopping them all when the cancel token is
    /// cancelled, a timeout passes, the watchdog says stop, or a stage fails; pausing and
    /// resuming them as the watchdog says. Returns what made it stop them, if anything did,
    /// and the watchdog's reason when it was the watchdog.
    fn supervise(
        &self,
        stages: &mut [Running],
        started: Instant,
        initial: Option<StopReason>,
    ) -> (Option<StopReason>, Option<WatchStop>) {
        let mut trigger = initial;
        let mut watch_stop = None;
        let mut term_sent: Option<Instant> = None;
        let mut kill_sent = false;
        let mut paused_since: Option<Instant> = None;
        let mut paused_total = Duration::ZERO;
        if let Some(reason) = trigger {
            signal_running(stages, Signal::SIGTERM, reason);
            term_sent = Some(Instant::now());
        }
        let mut interval = POLL_INTERVAL_MIN;
        loop {
            let mut failed = false;
            for stage in stages.iter_mut().filter(|stage| stage.is_running()) {
                match stage.child.try_wait4() {
                    Ok(Some(used)) => {
                        stage.reaped(used);
                        failed |= stage.failed_on_its_own();
                        interval = POLL_INTERVAL_MIN;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::error!(tool = %stage.label, %error, "wait4 failed");
                        stage.wait_error = Some(error);
                        failed = true;
                    }
                }
            }
            if !stages.iter().any(Running::is_running) {
                return (trigger, watch_stop);
            }
            let now = Instant::now();
            match trigger {
                None => {
                    let mut reason = if failed {
                        Some(StopReason::StageFailed)
                    } else if let Some(reason) = self.cancel.reason() {
                        Some(StopReason::Cancelled(reason))
                    } else if self
                        .step_deadline
                        .as_ref()
                        .is_some_and(|deadline| deadline.passed(now))
                    {
                        Some(StopReason::StepTimedOut)
                    } else if self.timeout.is_some_and(|timeout| {
                        let paused =
                            paused_total + paused_since.map_or(Duration::ZERO, |since| now - since);
                        now.duration_since(started) >= timeout + paused
                    }) {
                        Some(StopReason::TimedOut)
                    } else {
                        None
                    };
                    if reason.is_none()
                        && let Some(watchdog) = &self.watchdog
                    {
                        match watchdog.check() {
                            WatchVerdict::Run => {
                                if let Some(since) = paused_since.take() {
                                    let paused = now.duration_since(since);
                                    paused_total += paused;
                                    tracing::info!(
                                        paused_seconds = paused.as_secs_f64(),
                                        "resuming the paused tools"
                                    );
                                    signal_groups(stages, Signal::SIGCONT);
                                }
                            }
                            WatchVerdict::Pause => {
                                if paused_since.is_none() {
                                    tracing::warn!(
                                        "pausing the tools (SIGSTOP) at the watchdog's request"
                                    );
                                    signal_groups(stages, Signal::SIGSTOP);
                                    paused_since = Some(now);
                                }
                            }
                            WatchVerdict::Stop(stop) => {
                                watch_stop = Some(stop);
                                reason = Some(StopReason::Watchdog);
                            }
                        }
                    }
                    if let Some(reason) = reason {
                        tracing::info!("stopping: {reason}");
                        signal_running(stages, Signal::SIGTERM, reason);
                        if paused_since.take().is_some() {
                            // Stopped processes act on SIGTERM only once continued.
                            signal_groups(stages, Signal::SIGCONT);
                        }
                        trigger = Some(reason);
                        term_sent = Some(now);
                        interval = POLL_INTERVAL_MIN;
                    }
                }
                Some(reason) => {
                    if !kill_sent
                        && term_sent.is_some_and(|sent| now.duration_since(sent) >= self.grace)
                    {
                        tracing::warn!(
                            "still running {:?} after SIGTERM: sending SIGKILL",
                            self.grace
                        );
                        signal_running(stages, Signal::SIGKILL, reason);
                        kill_sent = true;
                    }
                }
            }
            thread::sleep(interval);
            interval = (interval * 2).min(POLL_INTERVAL_MAX);
        }
    }
}

/// What [`Supervisor::execute`] produced.
struct Executed {
    group_label: String,
    trigger: Option<StopReason>,
    /// The watchdog's reason, when it stopped the run.
    watch_stop: Option<WatchStop>,
    report: PipelineReport,
    /// Captured stdout of the last stage (capture mode only).
    stdout: Vec<u8>,
    /// Captured stderr of the last stage (capture mode only).
    stderr: Vec<u8>,
}

/// A started child.
struct Running {
    label: String,
    argv: Vec<String>,
    pid: u32,
    child: Child,
    started: Instant,
    stderr_log: Utf8PathBuf,
    stderr: Option<Drain>,
    stdout: Option<Drain>,
    exit: Option<Exit>,
    stop: Option<StopReason>,
    wait_error: Option<io::Error>,
    /// A probe (capture mode) whose exit status is not judged: logged at debug level.
    probe: bool,
}

struct Exit {
    status: ExitStatusKind,
    wall: Duration,
    usage: wait4::ResourceUsage,
}

impl Running {
    fn is_running(&self) -> bool {
        self.exit.is_none() && self.wait_error.is_none()
    }

    fn reaped(&mut self, used: wait4::ResUse) {
        let status = ExitStatusKind::from_std(used.status);
        let wall = self.started.elapsed();
        if self.probe {
            tracing::debug!(tool = %self.label, pid = self.pid, ?wall, "{status}");
        } else if status.success() {
            tracing::info!(tool = %self.label, pid = self.pid, ?wall, "{status}");
        } else {
            tracing::warn!(tool = %self.label, pid = self.pid, ?wall, stop = ?self.stop, "{status}");
        }
        self.exit = Some(Exit {
            status,
            wall,
            usage: used.rusage,
        });
    }

    fn failed_on_its_own(&self) -> bool {
        self.stop.is_none()
            && self
                .exit
                .as_ref()
                .is_some_and(|exit| !exit.status.success())
    }
}

/// A reaped child with its output collected.
struct Finished {
    report: StageReport,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Waits for the output threads of reaped stages and builds their reports.
fn finish(stages: Vec<Running>) -> Vec<Finished> {
    stages
        .into_iter()
        .filter_map(|stage| {
            let stderr = stage
                .stderr
                .map(|drain| drain.finish(DRAIN_WAIT))
                .unwrap_or_default();
            let stdout = stage
                .stdout
                .map(|drain| drain.finish(DRAIN_WAIT))
                .unwrap_or_default();
            let exit = stage.exit?;
            Some(Finished {
                report: StageReport {
                    label: stage.label,
                    argv: stage.argv,
                    pid: stage.pid,
                    status: exit.status,
                    stop: stage.stop,
                    wall: exit.wall,
                    user_cpu: exit.usage.utime,
                    system_cpu: exit.usage.stime,
                    max_rss_bytes: exit.usage.maxrss,
                    stderr_log: stage.stderr_log,
                    stderr_tail: stderr.tail,
                },
                stdout: stdout.captured,
                stderr: stderr.captured,
            })
        })
        .collect()
}

/// Sends `signal` to the process group of every stage not yet reaped, recording `reason` as
/// why the supervisor stopped it.
fn signal_running(stages: &mut [Running], signal: Signal, reason: StopReason) {
    for stage in stages.iter_mut().filter(|stage| stage.is_running()) {
        stage.stop.get_or_insert(reason);
        // Not reaped yet, so the pid (which is also the group id) cannot have been recycled.
        let Ok(raw) = i32::try_from(stage.pid) else {
            continue;
        };
        match killpg(Pid::from_raw(raw), signal) {
            Ok(()) => tracing::debug!(tool = %stage.label, pid = stage.pid, "sent {signal}"),
            Err(Errno::ESRCH) => {}
            Err(error) => {
                tracing::warn!(tool = %stage.label, pid = stage.pid, %error, "could not send {signal}")
            }
        }
    }
}

/// Sends `signal` (SIGSTOP, SIGCONT) to the process group of every stage not yet reaped,
/// without marking the stages as stopped by the supervisor.
fn signal_groups(stages: &[Running], signal: Signal) {
    for stage in stages.iter().filter(|stage| stage.is_running()) {
        let Ok(raw) = i32::try_from(stage.pid) else {
            continue;
        };
        match killpg(Pid::from_raw(raw), signal) {
            Ok(()) => tracing::debug!(tool = %stage.label, pid = stage.pid, "sent {signal}"),
            Err(Errno::ESRCH) => {}
            Err(error) => {
                tracing::warn!(tool = %stage.label, pid = stage.pid, %error, "could not send {signal}")
            }
        }
    }
}

type Drains = (Option<Drain>, Option<Drain>);

fn start_drains(
    label: &str,
    log: File,
    stderr: Option<std::process::ChildStderr>,
    stdout: Option<std::process::ChildStdout>,
    capture: bool,
) -> io::Result<Drains> {
    let stderr = stderr
        .map(|pipe| {
            Drain::start(
                pipe,
                DrainOptions {
                    label: label.to_owned(),
                    log: Some(log),
                    trace_lines: true,
                    capture,
                },
            )
        })
        .transpose()?;
    let stdout = stdout
        .map(|pipe| {
            Drain::start(
                pipe,
                DrainOptions {
                    label: label.to_owned(),
                    log: None,
                    trace_lines: false,
                    capture: true,
                },
            )
        })
        .transpose()?;
    Ok((stderr, stdout))
}

fn open_stdin(source: StdinSource) -> Result<Stdio, ProcessError> {
    Ok(match source {
        StdinSource::Null => Stdio::null(),
        StdinSource::File(path) => {
            let file = File::open(&path).map_err(|source| ProcessError::Io {
                action: "open stdin file",
                path,
                source,
            })?;
            Stdio::from(file)
        }
        StdinSource::Pipe(reader) => Stdio::from(reader),
    })
}

fn open_stdout(target: StdoutTarget) -> Result<Stdio, ProcessError> {
    Ok(match target {
        StdoutTarget::Null => Stdio::null(),
        StdoutTarget::File(path) => {
            let file = File::create(&path).map_err(|source| ProcessError::Io {
                action: "create stdout file",
                path,
                source,
            })?;
            Stdio::from(file)
        }
        StdoutTarget::Pipe(writer) => Stdio::from(writer),
    })
}

/// Checks what can be checked before starting anything.
fn validate(specs: &[CommandSpec], capture: bool) -> Result<(), ProcessError> {
    let invalid = |label: &str, reason: String| ProcessError::InvalidCommand {
        label: label.to_owned(),
        reason,
    };
    if specs.is_empty() {
        return Err(invalid(
            "(empty pipeline)",
            "a pipeline needs a stage".into(),
        ));
    }
    let mut labels = HashSet::new();
    let last = specs.len() - 1;
    for (index, spec) in specs.iter().enumerate() {
        let label = spec.label.as_str();
        if let Some(problem) = CommandSpec::label_problem(label) {
            return Err(invalid(label, problem.into()));
        }
        if !labels.insert(label) {
            return Err(invalid(
                label,
                "two stages have this label (and would share a log file)".into(),
            ));
        }
        if index > 0 && !matches!(spec.stdin, StdinSource::Null) {
            return Err(invalid(
                label,
                format!(
                    "stdin is set on stage {} but only the first stage may set it",
                    index + 1
                ),
            ));
        }
        let target = match &spec.stdout {
            StdoutTarget::Null => None,
            StdoutTarget::File(path) => Some(format!("stdout file {path}")),
            StdoutTarget::Pipe(_) => Some("a stdout pipe".to_owned()),
        };
        if let Some(target) = target {
            if capture {
                return Err(invalid(
                    label,
                    format!("{target} is set but stdout is being captured"),
                ));
            }
            if index != last {
                return Err(invalid(
                    label,
                    format!(
                        "{target} is set on stage {} but only the last stage may set it",
                        index + 1
                    ),
                ));
            }
        }
        let mut child_fds = HashSet::new();
        for (child_fd, _) in &spec.inherited_fds {
            if *child_fd < 3 {
                return Err(invalid(
                    label,
                    format!("cannot inherit a descriptor as {child_fd}: 0, 1 and 2 are stdio"),
                ));
            }
            if !child_fds.insert(*child_fd) {
                return Err(invalid(
                    label,
                    format!("two descriptors are inherited as {child_fd}"),
                ));
            }
        }
    }
    Ok(())
}

/// Whether a failed stage probably failed only because a later stage stopped reading.
fn broke_on_pipe(stage: &StageReport) -> bool {
    match &stage.status {
        ExitStatusKind::Signaled { signal, .. } => *signal == Signal::SIGPIPE as i32,
        // 141 = 128 + SIGPIPE, as a shell reports a child killed by SIGPIPE.
        ExitStatusKind::Exited(141) => true,
        ExitStatusKind::Exited(_) => stage
            .stderr_tail
            .to_ascii_lowercase()
            .contains("broken pipe"),
    }
}

/// The index of the stage to blame, if any stage failed on its own.
///
/// Stages the supervisor stopped are never blamed. Among the rest that failed, the earliest in
/// pipeline order that did not just break on a pipe; if all of them broke on a pipe, the last
/// (the one nearest to whatever stopped reading).
fn root_cause(stages: &[StageReport]) -> Option<usize> {
    let failed: Vec<usize> = stages
        .iter()
        .enumerate()
        .filter(|(_, stage)| stage.stop.is_none() && !stage.success())
        .map(|(index, _)| index)
        .collect();
    // A stage being stopped because another broke may have failed on its own first: it exited
    // with a status of its own (a stopped tool dies of the signal), as a downstream tool that
    // exits with an error, and whose upstream's SIGPIPE is seen first, does.
    let failed_before_its_stop = || {
        stages.iter().position(|stage| {
            stage.stop == Some(StopReason::StageFailed)
                && matches!(stage.status, ExitStatusKind::Exited(code) if code != 0)
                && !broke_on_pipe(stage)
        })
    };
    failed
        .iter()
        .copied()
        .find(|&index| !broke_on_pipe(&stages[index]))
        .or_else(failed_before_its_stop)
        .or_else(|| failed.last().copied())
}

/// The error blaming stage `index` of `report`.
fn stage_error(index: usize, report: PipelineReport) -> ProcessError {
    let stage = &report.stages[index];
    let label = stage.label.clone();
    let stderr_tail = stage.stderr_tail.clone();
    match stage.status.clone() {
        ExitStatusKind::Exited(code) => ProcessError::Failed {
            label,
            code,
            stderr_tail,
            report: Box::new(report),
        },
        ExitStatusKind::Signaled { signal, name } => ProcessError::Killed {
            label,
            signal,
            signal_name: name,
            stderr_tail,
            report: Box::new(report),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CancelReason;

    fn stage(
        label: &str,
        status: ExitStatusKind,
        stop: Option<StopReason>,
        tail: &str,
    ) -> StageReport {
        StageReport {
            label: label.to_owned(),
            argv: vec![label.to_owned()],
            pid: 1,
            status,
            stop,
            wall: Duration::ZERO,
            user_cpu: Duration::ZERO,
            system_cpu: Duration::ZERO,
            max_rss_bytes: 0,
            stderr_log: Utf8PathBuf::from(format!("/logs/{label}.stderr")),
            stderr_tail: tail.to_owned(),
        }
    }

    const OK: ExitStatusKind = ExitStatusKind::Exited(0);

    #[test]
    fn no_failure_no_cause() {
        let stages = [stage("a", OK, None, ""), stage("b", OK, None, "")];
        assert_eq!(root_cause(&stages), None);
    }

    #[test]
    fn earliest_failure_wins() {
        let stages = [
            stage("a", ExitStatusKind::Exited(1), None, "bad input"),
            stage("b", ExitStatusKind::Exited(2), None, "truncated file"),
        ];
        assert_eq!(root_cause(&stages), Some(0));
    }

    #[test]
    fn sigpipe_upstream_blames_downstream() {
        let stages = [
            stage("a", ExitStatusKind::signaled(13), None, ""),
            stage(
                "b",
                ExitStatusKind::Exited(1),
                None,
                "No space left on device",
            ),
        ];
        assert_eq!(root_cause(&stages), Some(1));
        let stages = [
            stage("a", ExitStatusKind::Exited(141), None, ""),
            stage("b", ExitStatusKind::signaled(9), None, ""),
        ];
        assert_eq!(root_cause(&stages), Some(1));
    }

    #[test]
    fn broken_pipe_message_blames_downstream() {
        let stages = [
            stage(
                "a",
                ExitStatusKind::Exited(1),
                None,
                "[main_samview] writing to standard output failed: Broken pipe",
            ),
            stage("b", ExitStatusKind::Exited(1), None, "sort failed"),
        ];
        assert_eq!(root_cause(&stages), Some(1));
    }

    #[test]
    fn only_broken_stages_blames_the_last_of_them() {
        let stages = [
            stage("a", ExitStatusKind::signaled(13), None, ""),
            stage("b", ExitStatusKind::signaled(13), None, ""),
            stage("c", OK, None, ""),
        ];
        assert_eq!(root_cause(&stages), Some(1));
    }

    #[test]
    fn stopped_stages_are_never_blamed() {
        let stages = [
            stage(
                "a",
                ExitStatusKind::signaled(15),
                Some(StopReason::StageFailed),
                "",
            ),
            stage("b", ExitStatusKind::Exited(3), None, "oops"),
        ];
        assert_eq!(root_cause(&stages), Some(1));
        let stopped = [stage(
            "a",
            ExitStatusKind::signaled(15),
            Some(StopReason::Cancelled(CancelReason::Terminate)),
            "",
        )];
        assert_eq!(root_cause(&stopped), None);
    }

    #[test]
    fn a_stage_that_failed_before_its_stop_is_blamed_over_its_upstream_s_sigpipe() {
        // markdup exits 1; merge's SIGPIPE is seen first, and markdup, already exiting, is
        // signalled as doomed.
        let stages = [
            stage("merge", ExitStatusKind::signaled(13), None, ""),
            stage(
                "markdup",
                ExitStatusKind::Exited(1),
                Some(StopReason::StageFailed),
                "[markdup] error: no ms score tag. Please run samtools fixmate on file first.",
            ),
        ];
        assert_eq!(root_cause(&stages), Some(1));
        // Killed by the stop: never blamed.
        let stages = [
            stage("merge", ExitStatusKind::signaled(13), None, ""),
            stage(
                "markdup",
                ExitStatusKind::signaled(15),
                Some(StopReason::StageFailed),
                "",
            ),
        ];
        assert_eq!(root_cause(&stages), Some(0));
    }

    #[test]
    fn stage_error_carries_the_tail() {
        let report = PipelineReport {
            stages: vec![
                stage("a", ExitStatusKind::signaled(9), None, "read 10 reads"),
                stage("b", OK, None, ""),
            ],
            wall: Duration::ZERO,
        };
        let error = stage_error(0, report);
        assert_eq!(error.to_string(), "a was killed by SIGKILL: read 10 reads");
    }

    #[test]
    fn validation() {
        let check = |specs: Vec<CommandSpec>| validate(&specs, false).map_err(|e| e.to_string());
        assert_eq!(
            check(vec![]),
            Err("invalid command (empty pipeline): a pipeline needs a stage".into())
        );
        assert_eq!(
            check(vec![CommandSpec::new("a", "x"), CommandSpec::new("a", "y")]),
            Err(
                "invalid command a: two stages have this label (and would share a log file)".into()
            )
        );
        assert_eq!(
            check(vec![
                CommandSpec::new("a", "x").stdout_file("/o"),
                CommandSpec::new("b", "y")
            ]),
            Err("invalid command a: stdout file /o is set on stage 1 but only the last stage may set it".into())
        );
        assert_eq!(
            check(vec![
                CommandSpec::new("a", "x"),
                CommandSpec::new("b", "y").stdin(StdinSource::File("/i".into()))
            ]),
            Err(
                "invalid command b: stdin is set on stage 2 but only the first stage may set it"
                    .into()
            )
        );
        assert_eq!(
            check(vec![CommandSpec::new("a/b", "x")]),
            Err("invalid command a/b: the label contains `/`".into())
        );
        assert_eq!(
            check(vec![CommandSpec::new("a", "x").stdout_file("/o")]),
            Ok(())
        );
        assert_eq!(
            validate(&[CommandSpec::new("a", "x").stdout_file("/o")], true)
                .map_err(|e| e.to_string()),
            Err("invalid command a: stdout file /o is set but stdout is being captured".into())
        );
    }

    #[test]
    fn inherited_descriptors_must_be_3_or_more_and_distinct() {
        let (reader, _writer) = io::pipe().expect("pipe");
        let low = CommandSpec::new("a", "x").inherit_fd(2, reader.into());
        assert_eq!(
            validate(&[low], false).map_err(|e| e.to_string()),
            Err("invalid command a: cannot inherit a descriptor as 2: 0, 1 and 2 are stdio".into())
        );
        let (first, _w1) = io::pipe().expect("pipe");
        let (second, _w2) = io::pipe().expect("pipe");
        let twice = CommandSpec::new("a", "x")
            .inherit_fd(3, first.into())
            .inherit_fd(3, second.into());
        assert_eq!(
            validate(&[twice], false).map_err(|e| e.to_string()),
            Err("invalid command a: two descriptors are inherited as 3".into())
        );
    }
}
