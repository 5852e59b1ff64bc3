"""AWS Batch jobs run as real `biojob` processes, with the job definition's retry strategy.

A job runs as its container would: the image's entrypoint (`biojob`, the workspace's build) with
the job's command, the merged environment (job definition, then the submission's overrides,
then `AWS_BATCH_JOB_ID` and `AWS_BATCH_JOB_ATTEMPT`), the job definition's host volumes mounted
(each job gets its own host directory for each, so `/scratch` is the job's own scratch
directory), and the memory limit biojob would read from the container's cgroup. moto runs
nothing and retries nothing, so this module does what Batch does between attempts: it evaluates
`retryStrategy.evaluateOnExit` (first match wins; a job that matches none is retried) up to
`retryStrategy.attempts`, and stops an attempt past `timeout.attemptDurationSeconds`.

Faults that cannot be produced for real in one process tree -- a Spot host reclaimed under a
running job -- are injected here: the attempt's process gets SIGTERM (as ECS stops a container)
and the attempt ends with Batch's status reason for a terminated host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Batch's status reasons (as `describe-jobs` shows them).
REASON_EXITED = "Essential container in task exited"
REASON_HOST_TERMINATED = "Host EC2 (instance i-0b1o2j3o4b5h6a7r8) terminated."
REASON_TIMEOUT = "Job attempt duration exceeded timeout"
# ECS's default stop timeout: SIGKILL this long after SIGTERM.
STOP_TIMEOUT_SECONDS = 30


@dataclass
class Fault:
    """A fault for the attempts of the jobs it matches.

    Matches a job by its `job_name` (`biojob-align`, `biojob-call`, ...) and, when given, by
    values of its environment (`{"CHROMOSOME": "chr22"}`); `submissions` (1-based, in the order
    the matching jobs were submitted) and `attempts` (1-based) narrow it, `None` meaning all.
    `env` is added to the attempt's environment (e.g. `BIOJOB_BWA` naming a fake tool);
    `reclaim` terminates the attempt's host once the process has written its first log line.
    """

    job_name: str
    env: dict[str, str] = field(default_factory=dict)
    reclaim: bool = False
    where: dict[str, str] = field(default_factory=dict)
    submissions: set[int] | None = None
    attempts: set[int] | None = None


@dataclass
class Attempt:
    number: int
    argv: list[str]
    environment: dict[str, str]
    scratch: Path
    log: Path
    exit_code: int | None = None
    status_reason: str = ""
    started: float = 0.0
    stopped: float = 0.0


@dataclass
class JobRun:
    """One submitted job and what its attempts did."""

    job_id: str
    job_name: str
    definition: str
    queue: str
    command: list[str]
    environment: dict[str, str]
    vcpus: int
    memory_mib: int
    submission: int
    attempts: list[Attempt] = field(default_factory=list)
    status: str = "RUNNING"

    def log_text(self) -> str:
        return "".join(a.log.read_text(errors="replace") for a in self.attempts)


class JobRunner:
    """Runs the jobs moto's Batch accepts (see the module's doc).

    `host_env` is what every container sees besides its job's environment (PATH to the tools,
    the S3 endpoint and credentials that the job role gives on AWS); `workdir` holds each job's
    host directories (`<workdir>/jobs/<job id>/...`) and logs (`<workdir>/logs/`).
    """

    def __init__(self, binary: Path, workdir: Path, host_env: dict[str, str]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host_env = host_env
        self.faults: list[Fault] = []
        self.runs: list[JobRun] = []
        self._lock = threading.Lock()
        self._submissions: dict[int, int] = {}

    # -- called by the patched moto backend -------------------------------------------------
    def run(self, job: Any) -> None:
        """Runs `job` (a moto `batch.models.Job`) attempt by attempt and leaves it stopped."""
        details = job._container_details()
        definition = job.job_definition
        environment = _environment(details["environment"])
        job_run = JobRun(
            job_id=job.job_id,
            job_name=job.job_name,
            definition=definition.name,
            queue=job.job_queue.name,
            command=[str(word) for word in details["command"]],
            environment=environment,
            vcpus=int(details["vcpus"]),
            memory_mib=int(details["memory"]),
            submission=0,
        )
        with self._lock:
            self.runs.append(job_run)
            faults = list(self.faults)
        job.job_started_at = datetime.now()
        job.log_stream_name = job._stream_name
        strategy = definition.retry_strategy or {}
        max_attempts = int(strategy.get("attempts", 1))
        timeout = (job.timeout or definition.timeout or {}).get("attemptDurationSeconds")
        matching = [f for f in faults if self._matches(f, job_run)]
        job_run.submission = self._count_submission(matching)
        for number in range(1, max_attempts + 1):
            job._start_attempt()
            attempt = self._run_attempt(job, job_run, details, number, matching, timeout)
            job.latest_attempt["container"]["exitCode"] = attempt.exit_code
            job.latest_attempt["statusReason"] = attempt.status_reason
            job.latest_attempt["stoppedAt"] = int(attempt.stopped * 1000)
            job.latest_attempt["startedAt"] = int(attempt.started * 1000)
            if attempt.exit_code is None:
                del job.latest_attempt["container"]["exitCode"]
            succeeded = attempt.exit_code == 0
            if succeeded or _action(strategy, attempt) == "EXIT" or number == max_attempts:
                break
            job.latest_attempt = None
        job.exit_code = attempt.exit_code
        job.job_stopped_reason = attempt.status_reason or None
        job_run.status = "SUCCEEDED" if succeeded else "FAILED"
        # `_mark_stopped` closes the attempt too: keep this one's times.
        latest = job.latest_attempt
        job.latest_attempt = None
        job._mark_stopped(success=succeeded)
        job.latest_attempt = latest

    # -- internals -----------------------------------------------------------------------------
    def _count_submission(self, matching: list[Fault]) -> int:
        # Submissions are counted per fault, so a fault's `submissions` counts only its jobs.
        with self._lock:
            for fault in matching:
                self._submissions[id(fault)] = self._submissions.get(id(fault), 0) + 1
            return max((self._submissions[id(f)] for f in matching), default=0)

    @staticmethod
    def _matches(fault: Fault, job_run: JobRun) -> bool:
        return fault.job_name == job_run.job_name and all(
            job_run.environment.get(name) == value for name, value in fault.where.items()
        )

    def _run_attempt(
        self,
        job: Any,
        job_run: JobRun,
        details: dict[str, Any],
        number: int,
        matching: list[Fault],
        timeout: int | None,
    ) -> Attempt:
        faults = [
            f
            for f in matching
            if (f.submissions is None or job_run.submission in f.submissions)
            and (f.attempts is None or number in f.attempts)
        ]
        host_dir = self.workdir / "jobs" / job_run.job_id
        mounts = _mounts(job.job_definition.container_properties, host_dir)
        environment = dict(self.host_env)
        environment.update(
            {name: _mapped(value, mounts) for name, value in job_run.environment.items()}
        )
        environment["AWS_BATCH_JOB_ID"] = job_run.job_id
        environment["AWS_BATCH_JOB_ATTEMPT"] = str(number)
        # The container's cgroup memory limit, which biojob reads when BIOJOB_MEMORY is unset.
        environment.setdefault("BIOJOB_MEMORY", f"{job_run.memory_mib}M")
        for fault in faults:
            environment.update(fault.env)
        log = self.workdir / "logs" / f"{job_run.job_name}.{job_run.job_id}.{number}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        attempt = Attempt(
            number=number,
            argv=[str(self.binary), *job_run.command],
            environment=environment,
            scratch=Path(_mapped("/scratch", mounts)),
            log=log,
        )
        job_run.attempts.append(attempt)
        attempt.started = time.time()
        with open(log, "wb") as output:
            process = subprocess.Popen(
                attempt.argv,
                env=environment,
                cwd=host_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # The container: its own process group, everything in it ends with it.
                start_new_session=True,
            )
            try:
                if any(f.reclaim for f in faults):
                    _wait_for_output(log, process)
                    attempt.status_reason = REASON_HOST_TERMINATED
                    _stop(process)
                else:
                    try:
                        process.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        attempt.status_reason = REASON_TIMEOUT
                        _stop(process)
            finally:
                _stop(process)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        attempt.stopped = time.time()
        if attempt.status_reason == REASON_HOST_TERMINATED:
            attempt.exit_code = None  # the host went away with the container
        else:
            attempt.exit_code = (
                process.returncode if process.returncode >= 0 else 128 - process.returncode
            )
            if attempt.exit_code != 0 and not attempt.status_reason:
                attempt.status_reason = REASON_EXITED
        return attempt


def _environment(variables: list[dict[str, Any]]) -> dict[str, str]:
    """`[{"name", "value"}]` as a dict; later entries (moto puts overrides first) do not win."""
    merged: dict[str, str] = {}
    for variable in variables:
        merged.setdefault(variable["name"], str(variable["value"]))
    return merged


def _mounts(container: dict[str, Any], host_dir: Path) -> dict[str, str]:
    """`{container path: host directory}` for the job definition's host volumes."""
    volumes = {v["name"]: v.get("host", {}).get("sourcePath") for v in container.get("volumes", [])}
    mounts: dict[str, str] = {}
    for mount in container.get("mountPoints", []):
        source = volumes.get(mount["sourceVolume"])
        if source:
            path = host_dir / source.strip("/")
            path.mkdir(parents=True, exist_ok=True)
            mounts[mount["containerPath"].rstrip("/")] = str(path)
    return mounts


def _mapped(value: str, mounts: dict[str, str]) -> str:
    """A container path as the host path its mount gives it (other values unchanged)."""
    for container_path, host_path in mounts.items():
        if value == container_path or value.startswith(container_path + "/"):
            return host_path + value[len(container_path) :]
    return value


def _action(strategy: dict[str, Any], attempt: Attempt) -> str:
    """Batch's decision after a failed attempt: the first `evaluateOnExit` condition whose
    given patterns all match wins; none matching: RETRY (Batch API reference, EvaluateOnExit)."""
    exit_code = "" if attempt.exit_code is None else str(attempt.exit_code)
    for condition in strategy.get("evaluateOnExit", []):
        given = [
            (pattern, value)
            for pattern, value in (
                (condition.get("onExitCode"), exit_code),
                (condition.get("onStatusReason"), attempt.status_reason),
                (condition.get("onReason"), ""),
            )
            if pattern is not None
        ]
        if given and all(_glob(pattern, value) for pattern, value in given):
            return str(condition["action"]).upper()
    return "RETRY"


def _glob(pattern: str, value: str) -> bool:
    """Batch's patterns: exact, or a prefix when they end with `*` (the only wildcard)."""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _wait_for_output(log: Path, process: subprocess.Popen[bytes], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if log.stat().st_size > 0:
            return
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """As ECS stops a container: SIGTERM, then SIGKILL after the stop timeout."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
