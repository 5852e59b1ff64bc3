"""Runs one execution input through the stack's state machine on this machine.

    python -m biojob_sm INPUT.json [--name NAME] [--workdir DIR] [--parameter Key=Value ...]

Prefixes are local paths (absolute) or `s3://` URIs on the S3-compatible server that
`AWS_ENDPOINT_URL` names (with its credentials in the environment). Prints each state as the
execution enters it, then every job's attempts and where their logs are; exits 0 when the
execution succeeded, 1 when it did not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .harness import Harness

# What the jobs see of the caller's environment, besides PATH: the S3 endpoint and credentials
# (the job role's on AWS) and biojob's own settings (the job definitions' values win).
PASSED_ON = ("AWS_", "BIOJOB_")
# What tells apart the jobs of one Map.
ITEM_KEYS = ("SAMPLE_ID", "LANE", "CHUNK", "CHROMOSOME", "SHARD")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="run-state-machine-locally", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("input", type=Path, help="the execution input (JSON)")
    parser.add_argument("--name", help="the execution's name (default: local-<time>)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="the jobs' host directories and logs (default: a new temporary directory)",
    )
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE",
        help="a stack parameter (templates/cfn/biojob.yaml), e.g. AlignVcpus=2; repeatable",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        execution_input = json.loads(args.input.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        parser.error(f"{args.input}: {error}")
    parameters = dict(item.split("=", 1) for item in args.parameter if "=" in item)
    if len(parameters) != len(args.parameter):
        parser.error("--parameter takes KEY=VALUE")
    name = args.name or time.strftime("local-%Y%m%d-%H%M%S")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="biojob-state-machine-"))
    workdir = workdir.resolve()
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    host_env = {key: value for key, value in os.environ.items() if key.startswith(PASSED_ON)}
    started = time.monotonic()

    def show(event: dict[str, Any]) -> None:
        elapsed = f"{time.monotonic() - started:7.1f}s"
        kind = event["type"]
        if kind.endswith("StateEntered"):
            print(f"{elapsed}  {event['stateEnteredEventDetails']['name']}", flush=True)
        elif kind in ("TaskFailed", "ExecutionFailed", "MapIterationFailed"):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            print(f"{elapsed}    {kind}: {details.get('error', '')}", flush=True)

    with Harness(workdir, parameters=parameters, s3=False, host_env=host_env) as harness:
        print(f"state machine {harness.state_machine_name}, execution {name}")
        print(f"jobs' logs: {workdir}/logs")
        execution = harness.execute(execution_input, name=name, on_event=show)
    print(f"\n{execution.status}")
    for job in execution.jobs:
        codes = ", ".join(
            f"{'no exit code' if a.exit_code is None else a.exit_code}"
            + (f" ({a.status_reason})" if a.status_reason else "")
            for a in job.attempts
        )
        label = " ".join(
            [
                job.job_name,
                *(f"{key}={job.environment[key]}" for key in ITEM_KEYS if job.environment.get(key)),
            ]
        )
        print(f"  {label} (job {job.job_id}): exit codes: {codes}")
    # A Distributed Map's children are their own executions: their states are not above.
    for run in execution.map_runs:
        counts = run["itemCounts"]
        label = run["mapRunArn"].split(":")[-2].split("/")[-1]
        print(
            f"  map run {label}: {run['status']}, {counts['total']} items: "
            f"{counts['succeeded']} succeeded, {counts['failed']} failed"
        )
    if execution.status == "SUCCEEDED":
        environment = execution_input["params"]["environment"]
        print(
            f"outputs: {environment['JOB_OUTPUT_PREFIX'].rstrip('/')}/{harness.state_machine_name}/"
            f"{environment.get('JOB_WORKFLOW_EXECUTION_ID') or name}/"
        )
        return 0
    print(f"error: {execution.error}\ncause: {execution.cause}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
