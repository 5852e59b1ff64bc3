"""Executions that meet faults: each exit class takes its documented path (README, "Retries,
and who does them"; docs/batch-contract.md, "Exit codes") -- retried by Batch, resubmitted once
by the state machine, or `Failed` with the exit code and reason in the cause --, a reclaimed
Spot host is retried, a Batch API error past the Task's Retry ends in `Failed` (not
`States.Runtime`), and an input without `params.environment` or `chromosomes` ends in the
input-validation Fail state."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from biojob_sm.batch import REASON_EXITED, REASON_HOST_TERMINATED, Fault
from biojob_sm.harness import Execution, Harness
from conftest import CONTIGS, FAKE_TOOLS, INPUT_BUCKET, plan_shards, sample_input, with_params

FAKE_BWA_KILLED = {"BIOJOB_BWA": str(FAKE_TOOLS / "fake-bwa-killed")}
FAKE_BWA_FAILS = {"BIOJOB_BWA": str(FAKE_TOOLS / "fake-bwa-fails")}
# The Task Retry on Batch API errors (templates/asl/biojob.asl.json).
RETRY_INTERVAL, RETRY_BACKOFF, RETRY_ATTEMPTS = 5, 2, 6
BATCH_ATTEMPTS = 3  # the stack's JobAttempts default
UP_TO_ALIGN = [
    "ValidateInput",
    "Defaults",
    "Prepare",
    "EarlierExecution?",
    "Cohort?",
    "AlignInChunks?",
    "Align",
]


def assert_failed(execution: Execution, error: str) -> None:
    assert execution.status == "FAILED", execution.status
    assert execution.error == error, f"{execution.error}: {execution.cause}"


def assert_full_jitter(intervals: list[float], retries: int) -> None:
    """`JitterStrategy: FULL`: retry k waits a random time in [0, interval * backoff^k]."""
    assert len(intervals) == retries, intervals
    for k, seconds in enumerate(intervals):
        assert 0 <= seconds <= RETRY_INTERVAL * RETRY_BACKOFF**k, (k, seconds)


@pytest.fixture(scope="module")
def retried(harness: Harness) -> Execution:
    """One execution meeting three faults it recovers from: two Batch API errors on the align
    submission (the Task's Retry), bwa killed in align's first attempt (exit 21, Batch's
    retry), and chr22's call host reclaimed in its first attempt (Batch's retry)."""
    faults = [
        Fault("biojob-align", env=FAKE_BWA_KILLED, attempts={1}),
        Fault("biojob-call", where={"CHROMOSOME": "chr22"}, reclaim=True, attempts={1}),
    ]
    with harness.batch_api_errors("ServerException", count=2, job_name="biojob-align") as raised:
        execution = harness.execute(sample_input(), name="retried", faults=faults)
    assert raised == ["biojob-align", "biojob-align"]
    return execution


def test_retryable_exit_is_retried_by_batch(retried: Execution) -> None:
    assert retried.status == "SUCCEEDED", f"{retried.error}: {retried.cause}"
    (align,) = retried.jobs_named("biojob-align")
    assert [(a.exit_code, a.status_reason) for a in align.attempts] == [
        (21, REASON_EXITED),
        (0, ""),
    ]
    assert "AlignClassify" not in retried.states()


def test_spot_reclaim_is_retried_by_batch(retried: Execution) -> None:
    calls = {job.environment["CHROMOSOME"]: job for job in retried.jobs_named("biojob-call")}
    assert [(a.exit_code, a.status_reason) for a in calls["chr22"].attempts] == [
        (None, REASON_HOST_TERMINATED),
        (0, ""),
    ]
    assert [len(calls[c].attempts) for c in ("chr20", "chrM")] == [1, 1]
    assert "CallClassify" not in retried.states()


def test_batch_api_errors_are_retried_with_full_jitter(retried: Execution) -> None:
    assert retried.states().count("Align") == 1
    assert_full_jitter(retried.retry_intervals, 2)


def test_retryable_exit_past_batch_attempts_is_resubmitted_once_then_fails(
    harness: Harness,
) -> None:
    execution = harness.execute(
        sample_input(),
        name="killed-every-time",
        faults=[Fault("biojob-align", env=FAKE_BWA_KILLED)],
    )
    assert_failed(execution, "States.TaskFailed")
    job = execution.cause_json()
    assert job["Container"]["ExitCode"] == 21
    assert job["StatusReason"] == REASON_EXITED
    assert job["JobName"] == "biojob-align"
    assert len(job["Attempts"]) == BATCH_ATTEMPTS
    aligns = execution.jobs_named("biojob-align")
    assert [[a.exit_code for a in job.attempts] for job in aligns] == [[21] * BATCH_ATTEMPTS] * 2
    classify = ["AlignJobFailed?", "AlignClassify", "AlignResubmit?"]
    assert execution.states() == [
        *UP_TO_ALIGN,
        *classify,
        "AlignCount",
        "AlignBackoff",
        "Align",
        *classify,
        "Failed",
    ]


def shards_input(harness: Harness) -> dict[str, Any]:
    """The sample called in four shards of at most 100,000 bases (the states' CallShards)."""
    plan = plan_shards(harness, CONTIGS, 100_000)
    return with_params(sample_input(), shards=plan["shards"], shardBases=plan["shardBases"])


def test_a_shard_s_call_that_cannot_be_retried_fails_the_distributed_map_and_the_execution(
    harness: Harness,
) -> None:
    """Shard 1's job exits 2 (no results location): its child execution fails, which is more
    than the Map's tolerated failures (none), so the Map Run and the execution fail before
    gather; the other shards' calls ran to their end."""
    execution = harness.execute(
        shards_input(harness),
        name="shard-call-fails",
        faults=[
            Fault("biojob-call-shard", where={"SHARD": "1"}, env={"JOB_OUTPUT_PREFIX": ""})
        ],
    )
    assert_failed(execution, "States.ExceedToleratedFailureThreshold")
    assert execution.states()[-3:] == ["CallByShard?", "CallShards", "Failed"]
    calls = {j.environment["SHARD"]: j for j in execution.jobs_named("biojob-call-shard")}
    assert {shard: [a.exit_code for a in job.attempts] for shard, job in calls.items()} == {
        "0": [0],
        "1": [2],
        "2": [0],
        "3": [0],
    }
    assert execution.jobs_named("biojob-gather") == []
    (call_shards,) = execution.map_runs
    assert call_shards["status"] == "FAILED"
    counts = call_shards["itemCounts"]
    assert (counts["total"], counts["succeeded"], counts["failed"]) == (4, 3, 1)


def test_a_shard_s_call_on_a_host_reclaimed_past_batch_s_attempts_is_resubmitted_in_its_child(
    harness: Harness,
) -> None:
    """Every attempt of shard 2's first job loses its Spot host: its child execution resubmits
    it once (ShardCallResubmit?), the second job calls the shard, and the run goes on."""
    execution = harness.execute(
        shards_input(harness),
        name="shard-call-reclaimed",
        faults=[
            Fault("biojob-call-shard", where={"SHARD": "2"}, reclaim=True, submissions={1})
        ],
    )
    assert execution.status == "SUCCEEDED", f"{execution.error}: {execution.cause}"
    calls = execution.jobs_named("biojob-call-shard")
    shard_2 = [job for job in calls if job.environment["SHARD"] == "2"]
    assert [[a.exit_code for a in job.attempts] for job in shard_2] == [
        [None] * BATCH_ATTEMPTS,
        [0],
    ]
    (call_shards,) = execution.map_runs
    assert call_shards["status"] == "SUCCEEDED"
    assert (call_shards["itemCounts"]["total"], call_shards["itemCounts"]["succeeded"]) == (4, 4)
    states = execution.states()
    assert states[states.index("CallShards") :] == [
        "CallShards",
        "Gather",
        "CohortResults?",
        "Qc",
        "Succeeded",
    ]


NOT_RETRYABLE = {
    # A tool that fails (bwa mem exits 1).
    "tool failed (20)": (20, {}, FAKE_BWA_FAILS),
    # A FASTQ that is no FASTQ (the reference FASTA as read 2).
    "input invalid (11)": (11, {"FASTQ_2": f"s3://{INPUT_BUCKET}/references/ref.fa"}, {}),
    # A job that cannot be configured (no results location).
    "usage (2)": (2, {"JOB_OUTPUT_PREFIX": ""}, {}),
}


@pytest.mark.parametrize("case", NOT_RETRYABLE, ids=list(NOT_RETRYABLE))
def test_exit_a_retry_cannot_fix_fails_at_once_with_the_exit_code_in_the_cause(
    harness: Harness, case: str
) -> None:
    code, environment, tools = NOT_RETRYABLE[case]
    execution = harness.execute(
        sample_input(**environment),
        name=f"exit-{code}",
        faults=[Fault("biojob-align", env=tools)] if tools else [],
    )
    assert_failed(execution, "States.TaskFailed")
    job = execution.cause_json()
    assert (job["Container"]["ExitCode"], job["StatusReason"]) == (code, REASON_EXITED)
    (align,) = execution.jobs_named("biojob-align")
    assert [a.exit_code for a in align.attempts] == [code]
    assert execution.states() == [
        *UP_TO_ALIGN,
        "AlignJobFailed?",
        "AlignClassify",
        "AlignResubmit?",
        "Failed",
    ]


@pytest.mark.parametrize(
    ("job_name", "job_failed"),
    [
        ("biojob-align", "AlignJobFailed?"),
        ("biojob-call", "CallJobFailed?"),
        ("biojob-gather", "GatherJobFailed?"),
    ],
)
def test_batch_api_error_past_retries_ends_in_failed_with_the_error(
    harness: Harness, per_contig: dict[str, Any], job_name: str, job_failed: str
) -> None:
    """Every submission of `job_name` fails with Batch.ServerException. The steps before it
    resume the per-contig execution's (which align, call and gather finished), so they only
    check their outputs."""
    if job_name == "biojob-align":
        execution_input = sample_input()
    else:
        earlier = per_contig["execution"]
        steps = ("biojob-align", "biojob-call", "biojob-gather")
        assert {job.status for job in earlier.jobs if job.job_name in steps} == {"SUCCEEDED"}
        execution_input = sample_input(JOB_WORKFLOW_EXECUTION_ID=earlier.name, BIOJOB_RESUME="1")
    with harness.batch_api_errors("ServerException", job_name=job_name) as raised:
        execution = harness.execute(execution_input, name=f"api-errors-{job_name}")
    assert_failed(execution, "Batch.ServerException")
    assert "We encountered an internal error" in execution.cause
    assert execution.jobs_named(job_name) == []
    states = execution.states()
    assert states[-1] == "Failed", states
    assert job_failed in states, states
    assert not [s for s in states if s.endswith("Classify")], states
    assert set(raised) == {job_name}
    tries = RETRY_ATTEMPTS + 1
    if job_name == "biojob-call":
        # The first iteration to fail stops the Map; the other contigs' iterations may have
        # retries in flight when it does, so only the failed one's count is exact.
        assert "CallFailed" in states, states
        assert len(raised) >= tries, raised
    else:
        assert len(raised) == tries
        assert_full_jitter(execution.retry_intervals, RETRY_ATTEMPTS)


# One sample of one lane, as biojob plan-cohort lists it.
ONE_SAMPLE = [{"sample": "A", "chunks": [0], "lanes": [{"lane": 0, "chunks": [0]}]}]


def cohort_input(**params: Any) -> dict[str, Any]:
    """The test input without SAMPLE_ID, with `params` added."""
    changed = copy.deepcopy(sample_input())
    del changed["params"]["environment"]["SAMPLE_ID"]
    changed["params"].update(params)
    return changed


def without(execution_input: dict[str, Any], key: str) -> dict[str, Any]:
    changed = copy.deepcopy(execution_input)
    del changed["params"][key]
    return changed


@pytest.mark.parametrize(
    ("name", "execution_input", "fail_state"),
    [
        ("no-environment", without(sample_input(), "environment"), "MissingEnvironment"),
        ("no-params", {"input": "not the reference design's"}, "MissingEnvironment"),
        ("no-chromosomes", without(sample_input(), "chromosomes"), "MissingChromosomes"),
        (
            "empty-chromosomes",
            {"params": {**sample_input()["params"], "chromosomes": []}},
            "MissingChromosomes",
        ),
        (
            "sheet-without-samples",
            cohort_input(samplesheet="s3://biojob-inputs/sheet.csv"),
            "MissingSamples",
        ),
        (
            "samples-without-sheet",
            cohort_input(samples=ONE_SAMPLE),
            "MissingSampleSheet",
        ),
        (
            "sample-id-with-sheet",
            with_params(
                sample_input(),
                samplesheet="s3://biojob-inputs/sheet.csv",
                samples=ONE_SAMPLE,
            ),
            "SampleIdWithSampleSheet",
        ),
        (
            "chunks-with-sheet",
            cohort_input(
                samplesheet="s3://biojob-inputs/sheet.csv",
                samples=ONE_SAMPLE,
                chunks=[0, 1],
                chunkPairs=1000,
            ),
            "ChunksWithSampleSheet",
        ),
    ],
)
def test_invalid_input_ends_in_the_validation_fail_state(
    harness: Harness, name: str, execution_input: dict[str, Any], fail_state: str
) -> None:
    execution = harness.execute(execution_input, name=name)
    assert_failed(execution, "InvalidInput")
    assert execution.states() == ["ValidateInput", fail_state]
    expected = {
        "MissingEnvironment": "params.environment is missing",
        "MissingChromosomes": "params.chromosomes is missing",
        "MissingSamples": "params.samplesheet is given without params.samples",
        "MissingSampleSheet": "params.samples is given without params.samplesheet",
        "SampleIdWithSampleSheet": "params.environment.SAMPLE_ID is given with params.samplesheet",
        "ChunksWithSampleSheet": "params.chunks is given with params.samplesheet",
    }
    assert execution.cause.startswith(expected[fail_state])
    assert execution.jobs == []


def test_a_split_lane_without_chunk_pairs_fails_before_any_job(harness: Harness) -> None:
    """A lane of several chunks needs params.chunkPairs, the blocks its split deals: without
    it the lane's iteration fails as it starts, and the execution with it."""
    execution = harness.execute(
        cohort_input(
            samplesheet="s3://biojob-inputs/sheet.csv",
            samples=[{"sample": "A", "chunks": [0, 1], "lanes": [{"lane": 0, "chunks": [0, 1]}]}],
        ),
        name="split-lane-without-chunk-pairs",
    )
    assert_failed(execution, "InvalidInput")
    assert execution.cause.startswith(
        "a lane of params.samples has several chunks, and params.chunkPairs"
    )
    assert execution.states()[-5:] == [
        "AlignLanes",
        "LaneSplit?",
        "MissingChunkPairs",
        "AlignSampleFailed",
        "Failed",
    ]
    assert execution.jobs == []
