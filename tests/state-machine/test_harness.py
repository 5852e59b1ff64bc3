"""The harness's own rules: Batch's `evaluateOnExit`, container mounts, and the template's
intrinsic functions (what the scenarios rely on, checked without running a job)."""

from __future__ import annotations

from pathlib import Path

import pytest

from biojob_sm.batch import (
    REASON_EXITED,
    REASON_HOST_TERMINATED,
    REASON_TIMEOUT,
    Attempt,
    _action,
    _mapped,
)
from biojob_sm.harness import TEMPLATE, Harness
from biojob_sm.template import Template, TemplateError
from conftest import FAKE_TOOLS

STACK_STRATEGY = {
    "attempts": 3,
    "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onExitCode": "2", "action": "EXIT"},
        {"onExitCode": "11", "action": "EXIT"},
        {"onExitCode": "20", "action": "EXIT"},
        {"onExitCode": "31", "action": "EXIT"},
    ],
}


def attempt(exit_code: int | None, reason: str) -> Attempt:
    return Attempt(
        number=1,
        argv=[],
        environment={},
        scratch=Path("/"),
        log=Path("/"),
        exit_code=exit_code,
        status_reason=reason,
    )


@pytest.mark.parametrize(
    ("exit_code", "reason", "action"),
    [
        (20, REASON_EXITED, "EXIT"),
        (2, REASON_EXITED, "EXIT"),
        (21, REASON_EXITED, "RETRY"),  # matches none: Batch retries
        (143, REASON_EXITED, "RETRY"),
        (None, REASON_HOST_TERMINATED, "RETRY"),
        (200, REASON_EXITED, "RETRY"),  # "20" is not a prefix pattern
    ],
)
def test_evaluate_on_exit_first_match_wins_and_none_matching_retries(
    exit_code: int | None, reason: str, action: str
) -> None:
    assert _action(STACK_STRATEGY, attempt(exit_code, reason)) == action


def test_evaluate_on_exit_takes_the_first_matching_condition() -> None:
    strategy = {
        "evaluateOnExit": [
            {"onExitCode": "2*", "action": "EXIT"},
            {"onExitCode": "21", "action": "RETRY"},
        ]
    }
    assert _action(strategy, attempt(21, REASON_EXITED)) == "EXIT"
    both = {"evaluateOnExit": [{"onExitCode": "21", "onStatusReason": "Host*", "action": "EXIT"}]}
    assert _action(both, attempt(21, REASON_EXITED)) == "RETRY"


def test_a_container_path_names_the_job_s_host_directory() -> None:
    mounts = {"/scratch": "/host/jobs/j1/scratch"}
    assert _mapped("/scratch", mounts) == "/host/jobs/j1/scratch"
    assert _mapped("/scratch/cache", mounts) == "/host/jobs/j1/scratch/cache"
    assert _mapped("/scratchpad", mounts) == "/scratchpad"
    assert _mapped("s3://b/scratch", mounts) == "s3://b/scratch"


def test_template_functions_resolve_and_unknown_ones_stop_the_harness() -> None:
    template = Template.from_file(
        TEMPLATE, {"ImageUri": "i", "ArtifactBucket": "b", "EbsAutoscaleSha256": "0" * 64}
    )
    template.attributes[("JobRole", "Arn")] = "arn:aws:iam::123456789012:role/r"
    assert template.resolve({"Fn::Sub": "${ProjectName}-x-${AWS::Region}"}) == "biojob-x-us-east-1"
    assert template.resolve({"Fn::Sub": "${JobRole.Arn}/*"}) == "arn:aws:iam::123456789012:role/r/*"
    assert template.resolve({"a": {"Fn::If": ["UseKms", "k", {"Ref": "AWS::NoValue"}]}}) == {}
    with pytest.raises(TemplateError, match="Fn::Cidr"):
        template.resolve({"Fn::Cidr": ["10.0.0.0/16", 8, 8]})
    with pytest.raises(TemplateError, match="NoSuchResource"):
        template.resolve({"Ref": "NoSuchResource"})
    with pytest.raises(TemplateError, match="no such parameters"):
        Template.from_file(TEMPLATE, {"NoSuchParameter": "1"})


def test_the_stack_s_parameters_reach_the_job_definitions(harness: Harness) -> None:
    align = harness.job_definition_requests["biojob-align"]
    container = align["containerProperties"]
    parameters = harness.template.parameters
    assert {r["type"]: r["value"] for r in container["resourceRequirements"]} == {
        "VCPU": parameters["AlignVcpus"],
        "MEMORY": parameters["AlignMemoryMiB"],
    }
    assert align["retryStrategy"]["attempts"] == int(parameters["JobAttempts"])
    assert align["timeout"]["attemptDurationSeconds"] == int(parameters["AlignTimeoutSeconds"])
    assert {v["name"]: v["value"] for v in container["environment"]}[
        "BIOJOB_THREADS"
    ] == parameters["AlignVcpus"]


def test_an_attempt_past_its_timeout_is_stopped_and_retried_as_batch_does(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled container (the fake tool as its entrypoint) with a 1 s attempt timeout: each
    attempt is stopped with Batch's reason, exits 143 (SIGTERM), which matches no EXIT rule,
    so Batch tries again until the attempts are spent; nothing of it is left running."""
    monkeypatch.setattr(harness.runner, "binary", FAKE_TOOLS / "sleep-forever")
    batch = harness.client("batch")
    submitted = batch.submit_job(
        jobName="timeout-check",
        jobQueue="biojob-high-priority",
        jobDefinition="biojob-gather",
        timeout={"attemptDurationSeconds": 1},
    )
    (job,) = batch.describe_jobs(jobs=[submitted["jobId"]])["jobs"]
    assert (job["status"], job["statusReason"]) == ("FAILED", REASON_TIMEOUT)
    assert job["container"]["exitCode"] == 143
    attempts = int(harness.template.parameters["JobAttempts"])
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [143] * attempts
    (run,) = [r for r in harness.runner.runs if r.job_id == submitted["jobId"]]
    for attempt in run.attempts:
        assert attempt.stopped - attempt.started < 10
    names = [variable["name"] for variable in job["container"]["environment"]]
    assert len(names) == len(set(names))
