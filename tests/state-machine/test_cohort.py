"""A cohort on AWS: a sample sheet of two samples, NA12878 in the 16 lanes of its chr20 reads
and a sample simulated from the reference in one (`testdata/make-cohort-data.sh`), from
`biojob plan-cohort` to the cohort's report, against `biojob run --samplesheet` on the same
sheet."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from biojob_sm.harness import ROOT, Execution, Harness
from conftest import (
    CONTIGS,
    INPUT_BUCKET,
    RESULTS,
    TESTDATA,
    manifests,
    run_biojob,
    sample_input,
)
from test_workflow import assert_runs_as_defined, assert_succeeded, published

SHEET_PREFIX = f"s3://{INPUT_BUCKET}/cohort"
# NA12878's chr20 lanes: two flowcells of 8 lanes each.
FLOWCELLS = ["20FUKAAXX100202", "20GAVAAXX100126"]
LANES = 16
SAMPLES = ["NA12878", "SIM"]


@pytest.fixture(scope="session")
def sheet(harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sheet (paths relative to it) and its FASTQs on the S3 server; returns its URI."""
    data = tmp_path_factory.mktemp("cohort-data")
    made = subprocess.run(
        ["bash", str(ROOT / "testdata" / "make-cohort-data.sh"), str(data)],
        env={"BIOJOB_TESTDATA": str(TESTDATA), "PATH": __import__("os").environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    rows = [
        line
        for line in (data / "samplesheet.csv").read_text().splitlines()[1:]
        if line.split(",")[1].split(".")[0] in FLOWCELLS or line.startswith("SIM,")
    ]
    assert len(rows) == LANES + 1
    text = "sample,lane,fastq_1,fastq_2,library,platform_unit\n" + "\n".join(rows) + "\n"
    (data / "sheet.csv").write_text(text)
    for row in rows:
        for name in row.split(",")[2:4]:
            harness.storage.put(data / name, f"{SHEET_PREFIX}/{name}")
    harness.storage.put(data / "sheet.csv", f"{SHEET_PREFIX}/sheet.csv")
    return f"{SHEET_PREFIX}/sheet.csv"


def cohort_input(plan: dict[str, Any]) -> dict[str, Any]:
    """The test input without SAMPLE_ID, with the plan's sheet and samples."""
    execution_input = sample_input()
    environment = execution_input["params"]["environment"]
    del environment["SAMPLE_ID"]
    del environment["SOURCE_DATA_PREFIX"]
    execution_input["params"].update(plan)
    return execution_input


@pytest.fixture(scope="session")
def cohort(harness: Harness, sheet: str) -> dict[str, Any]:
    """`biojob plan-cohort`'s plan and one execution of it."""
    planned = run_biojob(harness, "plan-cohort", "--samplesheet", sheet)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    execution_input = cohort_input(plan)
    execution = harness.execute(execution_input, name="cohort", timeout=1800.0)
    return {
        "plan": plan,
        "input": execution_input,
        "execution": execution,
        "prefix": harness.run_prefix(execution_input, execution.name),
    }


def test_plan_cohort_lists_the_samples_and_their_lanes(cohort: dict[str, Any], sheet: str) -> None:
    assert cohort["plan"] == {
        "samplesheet": sheet,
        "samples": [
            {"sample": "NA12878", "lanes": list(range(LANES))},
            {"sample": "SIM", "lanes": [0]},
        ],
    }


def task_counts(execution: Execution) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in execution.states():
        counts[state] = counts.get(state, 0) + 1
    return counts


def test_the_cohort_runs_each_lane_each_sample_and_the_joint_steps_as_defined(
    harness: Harness, cohort: dict[str, Any], sheet: str
) -> None:
    execution = cohort["execution"]
    assert_succeeded(execution)
    counts = task_counts(execution)
    assert {
        state: counts.get(state)
        for state in (
            "AlignLane",
            "MergeLanes",
            "Call",
            "Gather",
            "SampleVcf",
            "SampleQc",
            "Report",
            "Align",
            "Qc",
        )
    } == {
        "AlignLane": LANES + 1,
        "MergeLanes": 2,
        "Call": len(CONTIGS),
        "Gather": 1,
        "SampleVcf": 2,
        "SampleQc": 2,
        "Report": 1,
        "Align": None,
        "Qc": None,
    }
    for job in execution.jobs:
        assert_runs_as_defined(harness, job)
        assert [a.exit_code for a in job.attempts] == [0], (job.job_name, job.log_text()[-2000:])
        assert job.environment["SAMPLESHEET"] == sheet, job.job_name
    lanes = execution.jobs_named("biojob-align-lane")
    by_sample = {
        sample: sorted(int(j.environment["LANE"]) for j in lanes if j.environment["SAMPLE_ID"] == sample)
        for sample in SAMPLES
    }
    assert by_sample == {"NA12878": list(range(LANES)), "SIM": [0]}
    merges = {j.environment["SAMPLE_ID"]: j for j in execution.jobs_named("biojob-merge")}
    assert {s: (j.command, j.environment["CHUNKS"]) for s, j in merges.items()} == {
        "NA12878": (["merge"], str(LANES)),
        "SIM": (["merge"], "1"),
    }
    for name in ("biojob-call", "biojob-gather", "biojob-report"):
        for job in execution.jobs_named(name):
            assert job.environment["SAMPLE_ID"] == "cohort", name
    assert [j.command for j in execution.jobs_named("biojob-report")] == [["report"]]
    assert sorted(j.environment["SAMPLE_ID"] for j in execution.jobs_named("biojob-sample-vcf")) == SAMPLES
    assert sorted(j.environment["SAMPLE_ID"] for j in execution.jobs_named("biojob-qc")) == SAMPLES


def documented_cohort_objects() -> set[str]:
    """What docs/batch-contract.md says a cohort's run prefix holds, logs/ aside."""
    names = {"cohort.vcf.gz", "cohort.vcf.gz.tbi", "cohort.gather.manifest.json"}
    names |= {"report.html", "cohort.report.manifest.json"}
    for shard in ("0000", "0001", "0002"):
        names |= {
            f"cohort.call.{shard}.vcf.gz",
            f"cohort.call.{shard}.vcf.gz.tbi",
            f"cohort.call.{shard}.manifest.json",
        }
    for sample, lanes in (("NA12878", LANES), ("SIM", 1)):
        directory = f"samples/{sample}/"
        for lane in range(lanes):
            names |= {
                f"{directory}{sample}.align.{lane:04}.bam",
                f"{directory}{sample}.align.{lane:04}.bam.bai",
                f"{directory}{sample}.align.{lane:04}.manifest.json",
            }
        names |= {
            f"{directory}{name}"
            for name in (
                f"{sample}.align.bam",
                f"{sample}.align.bam.bai",
                f"{sample}.markdup.txt",
                f"{sample}.markdup.json",
                f"{sample}.merge.manifest.json",
                f"{sample}.vcf.gz",
                f"{sample}.vcf.gz.tbi",
                f"{sample}.sample-vcf.manifest.json",
                f"{sample}.flagstat.txt",
                f"{sample}.samtools_stats.txt",
                f"{sample}.bcftools_stats.txt",
                "qc.json",
                "report.html",
                f"{sample}.qc.manifest.json",
            )
        }
    return names


def test_the_run_prefix_holds_exactly_the_documented_objects(
    harness: Harness, cohort: dict[str, Any]
) -> None:
    assert_succeeded(cohort["execution"])
    names = {
        name
        for name in published(harness, cohort["prefix"])
        if not name.startswith("samples/") or "/logs/" not in name
    }
    assert names == documented_cohort_objects()


def test_one_read_group_per_lane_and_duplicates_marked(
    harness: Harness, cohort: dict[str, Any], tmp_path: Path
) -> None:
    assert_succeeded(cohort["execution"])
    bam = tmp_path / "NA12878.align.bam"
    bam.write_bytes(harness.storage.read(cohort["prefix"] + "samples/NA12878/NA12878.align.bam"))
    header = subprocess.run(
        ["samtools", "view", "-H", str(bam)], capture_output=True, text=True, check=True
    ).stdout
    read_groups = [line for line in header.splitlines() if line.startswith("@RG")]
    assert len(read_groups) == LANES
    assert read_groups[0] == (
        "@RG\tID:NA12878.20FUKAAXX100202.1\tSM:NA12878\tLB:NA12878\tPL:ILLUMINA"
        "\tPU:20FUKAAXX100202.1"
    )
    assert "samtools markdup" in header
    flagstat = subprocess.run(
        ["samtools", "flagstat", str(bam)], capture_output=True, text=True, check=True
    ).stdout
    qc = json.loads(harness.storage.read(cohort["prefix"] + "samples/NA12878/qc.json"))
    duplicates = int(next(l for l in flagstat.splitlines() if "duplicates" in l).split()[0])
    assert duplicates > 0
    assert qc["reads"]["duplicates"] == duplicates


def test_the_cohort_s_vcfs_and_qc_are_biojob_run_s(
    harness: Harness, cohort: dict[str, Any], sheet: str, tmp_path: Path
) -> None:
    """`biojob run --samplesheet` on the same sheet (read from S3) gives the same records, the
    same sample VCFs and the same QC figures."""
    assert_succeeded(cohort["execution"])
    local_input = cohort_input({})
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps(local_input))
    result = run_biojob(
        harness,
        "run",
        "--input",
        str(input_file),
        "--samplesheet",
        sheet,
        "--run-id",
        "local-cohort",
        env={"BIOJOB_SCRATCH_DIR": str(tmp_path / "scratch")},
    )
    assert result.returncode == 0, result.stderr
    local = f"{RESULTS}/local-cohort/"
    workflow = cohort["prefix"]
    storage = harness.storage
    records = storage.vcf_records(workflow + "cohort.vcf.gz")
    assert len(records) > 200
    assert records == storage.vcf_records(local + "cohort.vcf.gz")
    for sample in SAMPLES:
        directory = f"samples/{sample}/"
        assert storage.vcf_records(workflow + f"{directory}{sample}.vcf.gz") == storage.vcf_records(
            local + f"{directory}{sample}.vcf.gz"
        )
        assert json.loads(storage.read(workflow + f"{directory}qc.json")) == json.loads(
            storage.read(local + f"{directory}qc.json")
        )
    report = storage.read(workflow + "report.html").decode()
    for sample in SAMPLES:
        assert f"samples/{sample}/report.html" in report


def test_resuming_the_cohort_by_execution_id_reuses_every_lane_merge_and_joint_step(
    harness: Harness, cohort: dict[str, Any]
) -> None:
    """A second execution on the cohort's run prefix with BIOJOB_RESUME=1: every job told to
    resume finds its step manifest with the same cache key and its outputs unchanged, so it
    runs no tool; only each sample's QC and the report (not told to resume) run again. Runs
    after the other tests of this module, which read the first execution's prefix."""
    earlier = cohort["execution"]
    assert_succeeded(earlier)
    prefix = cohort["prefix"]
    before_objects = harness.storage.objects(prefix)
    before = manifests(harness, prefix)
    execution_input = copy.deepcopy(cohort["input"])
    execution_input["params"]["environment"].update(
        JOB_WORKFLOW_EXECUTION_ID=earlier.name, BIOJOB_RESUME="1"
    )
    execution = harness.execute(execution_input, name="cohort-resume", timeout=1800.0)
    assert_succeeded(execution)
    assert task_counts(execution)["AlignLane"] == LANES + 1
    always_run = {"biojob-qc", "biojob-report"}
    for job in execution.jobs:
        assert job.environment["JOB_WORKFLOW_EXECUTION_ID"] == earlier.name
        told = job.environment.get("BIOJOB_RESUME", "")
        assert told == ("" if job.job_name in always_run else "1"), job.job_name
        assert [a.exit_code for a in job.attempts] == [0], (job.job_name, job.log_text()[-2000:])
    resumed = manifests(harness, prefix)
    assert set(resumed) == set(before)
    ran_again = {f"samples/{sample}/{sample}.qc.manifest.json" for sample in SAMPLES}
    ran_again.add("cohort.report.manifest.json")
    for name, manifest in resumed.items():
        expected = "succeeded" if name in ran_again else "cached"
        assert manifest["task"]["status"] == expected, name
        if expected == "cached":
            assert manifest["task"]["cache_key"] == before[name]["task"]["cache_key"], name
    # The outputs of every reused step are untouched; the new execution's own prefix is empty.
    qc_files = {"qc.json", "report.html"}
    after_objects = harness.storage.objects(prefix)
    kept = {
        name: size
        for name, size in before_objects.items()
        if not name.endswith(".manifest.json")
        and "logs/" not in name
        and name.rsplit("/", 1)[-1] not in qc_files
        and not name.endswith(("flagstat.txt", "samtools_stats.txt", "bcftools_stats.txt"))
    }
    # Each lane's BAM and index; each sample's BAM, index, markdup statistics (text, JSON),
    # VCF and index; each shard's VCF and index; cohort.vcf.gz and its index.
    assert len(kept) == 2 * (LANES + 1) + 6 * len(SAMPLES) + 2 * len(CONTIGS) + 2
    assert {name: after_objects.get(name) for name in kept} == kept
    assert harness.storage.objects(harness.run_prefix(execution_input, execution.name)) == {}
