"""The stack's state machine executed for real, with moto's Step Functions engine.

`Harness` deploys what the stack deploys -- its compute environments (as unmanaged ones: the
hosts are this machine), job queues, job definitions and state machine, read from
`templates/cfn/biojob.yaml` and `templates/asl/biojob.asl.json` -- into moto, and runs every
`batch:submitJob.sync` task as a real `biojob` process (`batch.JobRunner`) against a loopback
SeaweedFS server or local paths.

    with Harness(workdir) as harness:
        execution = harness.execute({"params": {...}}, name="run1")
        execution.status, execution.states(), execution.jobs
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.model import ListShape, Shape, StructureShape
from moto import mock_aws
from moto.batch.exceptions import BatchException
from moto.batch_simple.models import BatchSimpleBackend

from . import moto_patches
from .batch import Fault, JobRun, JobRunner
from .s3 import S3Server
from .storage import Storage
from .template import ACCOUNT_ID, REGION, Template, TemplateError, camel_keys

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "templates" / "cfn" / "biojob.yaml"

# Parameters the stack requires that mean nothing here (no image is pulled: the jobs run the
# workspace's build; no bundle is fetched).
LOCAL_PARAMETERS = {
    "ImageUri": "localhost/biojob:workspace-build-0",
    "ArtifactBucket": "biojob-artifacts-local",
    "EbsAutoscaleSha256": "0" * 64,
}

# The Batch service-linked role the compute environments run under on AWS.
BATCH_SERVICE_ROLE = "AWSServiceRoleForBatch"


def default_binary() -> Path:
    """`BIOJOB_BINARY`, else the workspace's debug build."""
    return Path(os.environ.get("BIOJOB_BINARY") or ROOT / "target" / "debug" / "biojob").resolve()


@dataclass
class Execution:
    """A finished execution: its status, output or error and cause, history and jobs."""

    name: str
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]
    jobs: list[JobRun]
    retry_intervals: list[float] = field(default_factory=list)
    # `DescribeMapRun` of each Distributed Map run (its `itemCounts`, `status`, ...): the
    # states of its child executions are not in this execution's history.
    map_runs: list[dict[str, Any]] = field(default_factory=list)

    def states(self) -> list[str]:
        """The states entered, in order (a Map's iterations' states included)."""
        return [
            event["stateEnteredEventDetails"]["name"]
            for event in self.events
            if event["type"].endswith("StateEntered")
        ]

    def jobs_named(self, job_name: str) -> list[JobRun]:
        return [job for job in self.jobs if job.job_name == job_name]

    def cause_json(self) -> Any:
        assert self.cause is not None, f"{self.name}: no cause ({self.status})"
        return json.loads(self.cause)


class Harness:
    """See the module's doc. `parameters` overrides the stack's parameter defaults."""

    def __init__(
        self,
        workdir: Path,
        binary: Path | None = None,
        parameters: dict[str, str] | None = None,
        s3: bool = True,
        host_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.binary = binary or default_binary()
        self.template = Template.from_file(TEMPLATE, {**LOCAL_PARAMETERS, **(parameters or {})})
        self.s3 = S3Server(workdir / "s3") if s3 else None
        self.storage = Storage(None)
        self._host_env = host_env
        self._stack = contextlib.ExitStack()
        self.runner: JobRunner
        self.retry_time: Any = None
        self.state_machine_arn = ""
        self.state_machine_name = ""
        self.definition: dict[str, Any] = {}
        self.job_definitions: dict[str, str] = {}
        # `RegisterJobDefinition` requests by job definition name, as made from the template.
        self.job_definition_requests: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, str] = {}

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> Harness:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self) -> None:
        if not self.binary.is_file():
            raise FileNotFoundError(
                f"{self.binary}: no biojob binary (build it with `cargo build -p biojob-cli`, "
                "or name one with BIOJOB_BINARY)"
            )
        host_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        if self.s3 is not None:
            self.s3.start()
            self._stack.callback(self.s3.stop)
            host_env.update(self.s3.env())
            self.storage = Storage(self.s3.client())
        host_env.update(self._host_env or {})
        self.runner = JobRunner(self.binary, self.workdir, host_env)
        mock = mock_aws(
            config={
                "stepfunctions": {"execute_state_machine": True},
                "batch": {"use_docker": False},
                # The jobs' S3 is the real server above, never moto's.
                "core": {"passthrough": {"services": ["s3"]}},
            }
        )
        mock.start()
        self._stack.callback(mock.stop)
        self.retry_time = self._stack.enter_context(moto_patches.patched(self.runner.run))
        self._deploy()

    def close(self) -> None:
        self._stack.close()

    # -- the stack ------------------------------------------------------------------------
    def client(self, service: str):  # noqa: ANN201
        return boto3.client(
            service,
            region_name=REGION,
            aws_access_key_id="harness",
            aws_secret_access_key="harness",
        )

    def _deploy(self) -> None:
        template = self.template
        iam = self.client("iam")
        trust = json.dumps({"Version": "2012-10-17", "Statement": []})
        service_role = iam.create_role(RoleName=BATCH_SERVICE_ROLE, AssumeRolePolicyDocument=trust)
        for logical_id, resource in template.resources("AWS::IAM::Role").items():
            name = template.resolve(resource["Properties"]["RoleName"])
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
            template.attributes[(logical_id, "Arn")] = role["Role"]["Arn"]
        for logical_id, resource in template.resources("AWS::Logs::LogGroup").items():
            template.refs[logical_id] = template.resolve(resource["Properties"]["LogGroupName"])

        batch = self.client("batch")
        for logical_id, resource in template.resources("AWS::Batch::ComputeEnvironment").items():
            properties = resource["Properties"]
            created = batch.create_compute_environment(
                computeEnvironmentName=template.resolve(properties["ComputeEnvironmentName"]),
                type="UNMANAGED",
                state=template.resolve(properties.get("State", "ENABLED")),
                serviceRole=service_role["Role"]["Arn"],
            )
            template.refs[logical_id] = created["computeEnvironmentArn"]
        for logical_id, resource in template.resources("AWS::Batch::JobQueue").items():
            properties = _api_request(
                batch, "CreateJobQueue", template.resolve(resource["Properties"])
            )
            created = batch.create_job_queue(**properties)
            template.refs[logical_id] = created["jobQueueArn"]
            self.queues[logical_id] = created["jobQueueArn"]
        for logical_id, resource in template.resources("AWS::Batch::JobDefinition").items():
            properties = _api_request(
                batch, "RegisterJobDefinition", template.resolve(resource["Properties"])
            )
            created = batch.register_job_definition(**properties)
            self.job_definition_requests[properties["jobDefinitionName"]] = properties
            template.refs[logical_id] = created["jobDefinitionArn"]
            self.job_definitions[logical_id] = created["jobDefinitionArn"]

        machines = template.resources("AWS::StepFunctions::StateMachine")
        if len(machines) != 1:
            raise TemplateError(f"{TEMPLATE}: expected one state machine, found {sorted(machines)}")
        (resource,) = machines.values()
        properties = resource["Properties"]
        asl_path = (TEMPLATE.parent / properties["DefinitionS3Location"]).resolve()
        text = asl_path.read_text(encoding="utf-8")
        substitutions = template.resolve(properties.get("DefinitionSubstitutions", {}))
        for key, value in substitutions.items():
            placeholder = "${" + key + "}"
            if placeholder not in text:
                raise TemplateError(f"{asl_path}: DefinitionSubstitutions.{key} is never used")
            text = text.replace(placeholder, str(value))
        self.definition = json.loads(text)
        self.state_machine_name = template.resolve(properties["StateMachineName"])
        created = self.client("stepfunctions").create_state_machine(
            name=self.state_machine_name,
            definition=text,
            roleArn=template.resolve(properties["RoleArn"]),
            type=properties.get("StateMachineType", "STANDARD"),
        )
        self.state_machine_arn = created["stateMachineArn"]

    # -- executions -------------------------------------------------------------------------
    def execute(
        self,
        execution_input: dict[str, Any],
        name: str,
        faults: Sequence[Fault] = (),
        on_event: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 900.0,
    ) -> Execution:
        """Starts an execution and waits for its end. `faults` apply to its jobs; `on_event`
        is called with each history event as it appears."""
        sfn = self.client("stepfunctions")
        self.runner.faults = list(faults)
        first_job = len(self.runner.runs)
        first_interval = len(self.retry_time.intervals)
        started = sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input)
        )
        arn = started["executionArn"]
        deadline = time.monotonic() + timeout
        seen = 0
        try:
            while True:
                description = sfn.describe_execution(executionArn=arn)
                if on_event is not None:
                    events = _history(sfn, arn)
                    for event in events[seen:]:
                        on_event(event)
                    seen = len(events)
                if description["status"] != "RUNNING":
                    break
                if time.monotonic() > deadline:
                    sfn.stop_execution(executionArn=arn, cause="the harness's timeout")
                    raise TimeoutError(f"execution {name} still running after {timeout} s")
                time.sleep(0.2)
            events = _history(sfn, arn)
            if on_event is not None:
                for event in events[seen:]:
                    on_event(event)
        finally:
            self.runner.faults = []
        output = description.get("output")
        map_runs = [
            sfn.describe_map_run(mapRunArn=run["mapRunArn"])
            for run in sfn.list_map_runs(executionArn=arn)["mapRuns"]
        ]
        return Execution(
            name=name,
            arn=arn,
            status=description["status"],
            output=json.loads(output) if output else None,
            error=description.get("error"),
            cause=description.get("cause"),
            events=events,
            jobs=self.runner.runs[first_job:],
            retry_intervals=self.retry_time.intervals[first_interval:],
            map_runs=map_runs,
        )

    @contextlib.contextmanager
    def batch_api_errors(
        self, code: str, count: int | None = None, job_name: str | None = None
    ) -> Iterator[list[str]]:
        """SubmitJob calls fail with the Batch API error `code` (e.g. `ServerException`, HTTP
        500) before any job is created: the next `count` calls (`None`: all) for jobs named
        `job_name` (`None`: any). A fault of AWS's side that cannot be produced for real.
        Yields the names of the jobs whose submission failed, one entry per failure."""
        raised: list[str] = []
        original = BatchSimpleBackend.submit_job

        def submit_job(self: BatchSimpleBackend, name: str, *args: Any, **kwargs: Any) -> Any:
            if (job_name is None or name == job_name) and (count is None or len(raised) < count):
                raised.append(name)
                raise BatchException(code, "We encountered an internal error. Please try again.")
            return original(self, name, *args, **kwargs)

        BatchSimpleBackend.submit_job = submit_job  # type: ignore[method-assign]
        try:
            yield raised
        finally:
            BatchSimpleBackend.submit_job = original  # type: ignore[method-assign]

    def run_prefix(self, execution_input: dict[str, Any], execution: str) -> str:
        """`${JOB_OUTPUT_PREFIX}/<state machine name>/<execution>/` (docs/batch-contract.md)."""
        output_prefix = execution_input["params"]["environment"]["JOB_OUTPUT_PREFIX"].rstrip("/")
        return f"{output_prefix}/{self.state_machine_name}/{execution}/"


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events


def _api_request(client: Any, operation: str, properties: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation resource properties as the API request CloudFormation makes: keys
    camel-cased, values typed as the operation's input shape says (`"3"` -> 3); properties the
    operation does not take are an error."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    request = camel_keys(properties)
    unknown = set(request) - set(shape.members)
    if unknown:
        raise TemplateError(f"{operation}: not request members: {sorted(unknown)}")
    return _typed(request, shape)


def _typed(value: Any, shape: Shape) -> Any:
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        return {
            key: _typed(item, shape.members[key]) if key in shape.members else item
            for key, item in value.items()
        }
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_typed(item, shape.member) for item in value]
    if shape.type_name in ("integer", "long") and isinstance(value, str):
        return int(value)
    if shape.type_name == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    return value


__all__ = ["ACCOUNT_ID", "Execution", "Fault", "Harness", "JobRun", "ROOT", "default_binary"]
