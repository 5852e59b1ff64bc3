"""What moto 5.2.6's Step Functions engine lacks to run `batch:submitJob.sync` tasks for real.

Each patch is a plain assignment over one moto function, undone when `patched()` exits. The
first five are those of docs (tooling.md, "Executing the state machine"); the sixth keeps the
Task `Retry` intervals (up to minutes with `BackoffRate` 2) out of the test's wall time while
recording them, so a scenario can check the backoff the definition asks for; the seventh fails
a Distributed Map whose failed child executions exceed its tolerated failures, as AWS does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
from botocore import xform_name
from moto.batch.models import Job
from moto.batch_simple.models import BatchSimpleBackend
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (  # noqa: E501
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (  # noqa: E501
    StateTaskService,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

_botocore = botocore.session.get_session()
_models_lock = threading.Lock()


def _operation_model(service: str, action: str) -> Any:
    """botocore's model of `service`'s operation `action` (`submit_job` or `SubmitJob`)."""
    with _models_lock:
        model = _botocore.get_service_model(service)
    by_snake_case = {xform_name(name): name for name in model.operation_names}
    return model.operation_model(by_snake_case.get(action, action))


# 1. `_normalise_parameters` / `_normalise_response` are empty in moto 5.2.6, so the task's
#    `JobName` reaches boto as `JobName` and not `jobName` (KeyError in SubmitJob), and the job
#    description comes back camel-cased where the definition reads `Container.ExitCode`.
#    Re-implemented as upstream (LocalStack) does, with the service's botocore operation model.
def _normalise_parameters(
    self: StateTaskService,
    parameters: dict,
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    operation = _operation_model(
        self._get_boto_service_name(boto_service_name),
        self._get_boto_service_action(service_action_name),
    )
    if operation.input_shape is not None:
        self._to_boto_request(parameters, operation.input_shape)


def _normalise_response(
    self: StateTaskService,
    response: Any,
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    operation = _operation_model(
        self._get_boto_service_name(boto_service_name),
        self._get_boto_service_action(service_action_name),
    )
    if operation.output_shape is not None:
        self._from_boto_response(response, operation.output_shape)


# 2. `CustomErrorName` refuses names starting with `States.`, but a Fail state inside a Map
#    whose `ErrorPath` resolves to `States.TaskFailed` (a failed job) reports exactly that name.
def _custom_error_name_init(self: CustomErrorName, error_name: str | None) -> None:
    ErrorName.__init__(self, error_name=error_name)


# 3. A Wait state really sleeps (`Seconds: 300` before a resubmission): return at once.
def _wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
    return None


# 5. `Job.describe` drops `container.exitCode` (the container details replace the short
#    description's), so a failed job's cause had no exit code to classify: put it back. (It
#    also appends AWS_BATCH_JOB_ID to the environment once per call: listed once here.)
def _describe_with_exit_code(original: Callable[[Job], dict]) -> Callable[[Job], dict]:
    def describe(self: Job) -> dict:
        description = original(self)
        container = description.get("container")
        if container is not None:
            if self.exit_code is not None:
                container["exitCode"] = self.exit_code
            variables = {v["name"]: v for v in container.get("environment", [])}
            container["environment"] = list(variables.values())
        return description

    return describe


# 7. A Distributed Map keeps `ToleratedFailureCount`/`Percentage` (default 0) but never applies
#    them: its run succeeds with failed child executions. AWS fails the Map Run, and so the Map
#    state, with `States.ExceedToleratedFailureThreshold` once more children fail than it
#    tolerates (AWS then aborts the children still running; here they run to their end).
def _map_run_with_tolerated_failures(original: Callable[..., None]) -> Callable[..., None]:
    def map_run(self: DistributedIterationComponent, env: Any, eval_input: Any) -> None:
        original(self, env, eval_input)
        record = eval_input.map_run_record
        failed = record.item_counter.failed.get() + record.item_counter.timed_out.get()
        total = record.item_counter.total.get()
        tolerated = max(
            record.tolerated_failure_count,
            int(total * record.tolerated_failure_percentage / 100),
        )
        if failed > tolerated:
            error = StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold)
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=error,
                    event_type=HistoryEventType.MapRunFailed,
                    event_details=EventDetails(
                        mapRunFailedEventDetails=MapRunFailedEventDetails(
                            error=error.error_name,
                            cause="The specified tolerated failure threshold was exceeded",
                        )
                    ),
                )
            )

    return map_run


class _RecordingTime:
    """Stands in for the `time` module of moto's retrier: records each interval, sleeps none."""

    def __init__(self) -> None:
        self.intervals: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.intervals.append(seconds)


@contextlib.contextmanager
def patched(run_job: Callable[[Job], None]) -> Iterator[_RecordingTime]:
    """moto patched to run each submitted Batch job with `run_job(job)` (which must leave the job
    stopped, `job.exit_code` and `job.job_stopped_reason` set); yields the retry-interval record."""
    retry_time = _RecordingTime()

    # 4. moto's Batch without Docker marks every job SUCCEEDED without running it. Run it:
    #    `run_job` applies the job definition's retry strategy, which moto does not emulate.
    def mark_job_as_finished(
        self: BatchSimpleBackend, include_start_attempt: bool, job: Job
    ) -> None:
        self.backend._jobs[job.job_id] = job
        run_job(job)

    replacements: list[tuple[Any, str, Any]] = [
        (StateTaskService, "_normalise_parameters", _normalise_parameters),
        (StateTaskService, "_normalise_response", _normalise_response),
        (CustomErrorName, "__init__", _custom_error_name_init),
        (WaitFunction, "_wait_interval", _wait_interval),
        (BatchSimpleBackend, "_mark_job_as_finished", mark_job_as_finished),
        (Job, "describe", _describe_with_exit_code(Job.describe)),
        # 6. The Task Retry's intervals (see the module's doc).
        (retrier_decl, "time", retry_time),
        (
            DistributedIterationComponent,
            "_map_run",
            _map_run_with_tolerated_failures(DistributedIterationComponent._map_run),
        ),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    try:
        for owner, name, value in replacements:
            setattr(owner, name, value)
        yield retry_time
    finally:
        for owner, name, value in originals:
            setattr(owner, name, value)
