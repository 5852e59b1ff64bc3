"""A cohort on AWS: a sample sheet of two samples, NA12878 in the 16 lanes of its chr20 reads
and a sample simulated from the reference in one (`testdata/make-cohort-data.sh`), from
`biojob plan-cohort` to the cohort's report, against `biojob run --samplesheet` on the same
sheet."""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from biojob_sm.batch import Fault
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
def cohort_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory `testdata/make-cohort-data.sh` fills: the lanes' FASTQs and the sheet."""
    data = tmp_path_factory.mktemp("cohort-data")
    made = subprocess.run(
        ["bash", str(ROOT / "testdata" / "make-cohort-data.sh"), str(data)],
        env={"BIOJOB_TESTDATA": str(TESTDATA), "PATH": __import__("os").environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return data


@pytest.fixture(scope="session")
def sheet(harness: Harness, cohort_data: Path) -> str:
    """The sheet (paths relative to it) and its FASTQs on the S3 server; returns its URI."""
    data = cohort_data
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
    """Without --chunk-bytes no lane is split: lane i of a sample is its chunk i."""
    assert cohort["plan"] == {
        "samplesheet": sheet,
        "chunkPairs": 0,
        "samples": [
            {
                "sample": "NA12878",
                "chunks": list(range(LANES)),
                "lanes": [{"lane": lane, "chunks": [lane]} for lane in range(LANES)],
            },
            {"sample": "SIM", "chunks": [0], "lanes": [{"lane": 0, "chunks": [0]}]},
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


# ---------------------------------------------------------------------------------------------
# A cohort whose large lanes are split: NA12878 in the 8 lanes of its first flowcell (about
# 50 kB each, aligned whole), SIM in two lanes of 15,000 read pairs (about 680 kB each), each
# split by `biojob plan-cohort --chunk-bytes 400000` into two chunks of blocks of 1,000 pairs.

SPLIT_SHEET_PREFIX = f"s3://{INPUT_BUCKET}/cohort-split"
SPLIT_NA12878_LANES = 8
SIM_LANE_PAIRS = 15_000
CHUNK_BYTES = 400_000
CHUNK_PAIRS = 1_000


def write_gzip(path: Path, lines: list[str]) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as out:
        out.write("".join(lines).encode())


@pytest.fixture(scope="session")
def split_sheet(harness: Harness, cohort_data: Path) -> str:
    """NA12878's lanes of flowcell 20FUKAAXX100202, then SIM's pairs in two lanes (the first
    15,000 pairs, then the rest, in order) of one library; the sheet and its FASTQs on the S3
    server. Returns its URI."""
    data = cohort_data
    for mate in (1, 2):
        with gzip.open(data / f"SIM_R{mate}.fastq.gz", "rt") as fastq:
            lines = fastq.read().splitlines(keepends=True)
        assert len(lines) == 2 * SIM_LANE_PAIRS * 4
        write_gzip(data / f"SIMa_R{mate}.fastq.gz", lines[: SIM_LANE_PAIRS * 4])
        write_gzip(data / f"SIMb_R{mate}.fastq.gz", lines[SIM_LANE_PAIRS * 4 :])
    rows = [
        line
        for line in (data / "samplesheet.csv").read_text().splitlines()[1:]
        if line.split(",")[1].split(".")[0] == FLOWCELLS[0]
    ]
    assert len(rows) == SPLIT_NA12878_LANES
    rows += [
        "SIM,1a,SIMa_R1.fastq.gz,SIMa_R2.fastq.gz,SIMLIB,SIMFC.1",
        "SIM,1b,SIMb_R1.fastq.gz,SIMb_R2.fastq.gz,SIMLIB,SIMFC.2",
    ]
    text = "sample,lane,fastq_1,fastq_2,library,platform_unit\n" + "\n".join(rows) + "\n"
    (data / "split-sheet.csv").write_text(text)
    for row in rows:
        for name in row.split(",")[2:4]:
            harness.storage.put(data / name, f"{SPLIT_SHEET_PREFIX}/{name}")
    harness.storage.put(data / "split-sheet.csv", f"{SPLIT_SHEET_PREFIX}/sheet.csv")
    return f"{SPLIT_SHEET_PREFIX}/sheet.csv"


@pytest.fixture(scope="session")
def split_cohort(harness: Harness, split_sheet: str) -> dict[str, Any]:
    """`biojob plan-cohort --chunk-bytes`'s plan and one execution of it."""
    planned = run_biojob(
        harness,
        "plan-cohort",
        "--samplesheet",
        split_sheet,
        "--chunk-bytes",
        str(CHUNK_BYTES),
        "--chunk-pairs",
        str(CHUNK_PAIRS),
    )
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    execution_input = cohort_input(plan)
    execution = harness.execute(execution_input, name="cohort-split", timeout=1800.0)
    return {
        "plan": plan,
        "input": execution_input,
        "execution": execution,
        "prefix": harness.run_prefix(execution_input, execution.name),
    }


def test_plan_cohort_numbers_a_split_lane_s_chunks_across_its_sample(
    split_cohort: dict[str, Any], split_sheet: str
) -> None:
    assert split_cohort["plan"] == {
        "samplesheet": split_sheet,
        "chunkPairs": CHUNK_PAIRS,
        "samples": [
            {
                "sample": "NA12878",
                "chunks": list(range(SPLIT_NA12878_LANES)),
                "lanes": [
                    {"lane": lane, "chunks": [lane]} for lane in range(SPLIT_NA12878_LANES)
                ],
            },
            {
                "sample": "SIM",
                "chunks": [0, 1, 2, 3],
                "lanes": [{"lane": 0, "chunks": [0, 1]}, {"lane": 1, "chunks": [2, 3]}],
            },
        ],
    }


def test_a_split_lane_runs_a_split_job_then_one_align_job_per_chunk_then_the_sample_s_merge(
    harness: Harness, split_cohort: dict[str, Any], split_sheet: str
) -> None:
    execution = split_cohort["execution"]
    assert_succeeded(execution)
    counts = task_counts(execution)
    assert {
        state: counts.get(state)
        for state in ("AlignLane", "SplitLane", "AlignLaneChunk", "MergeLanes", "Split", "Align")
    } == {
        "AlignLane": SPLIT_NA12878_LANES,
        "SplitLane": 2,
        "AlignLaneChunk": 4,
        "MergeLanes": 2,
        "Split": None,
        "Align": None,
    }
    for job in execution.jobs:
        assert_runs_as_defined(harness, job)
        assert [a.exit_code for a in job.attempts] == [0], (job.job_name, job.log_text()[-2000:])
        assert job.environment["SAMPLESHEET"] == split_sheet, job.job_name
    whole = execution.jobs_named("biojob-align-lane")
    assert sorted(
        (j.environment["LANE"], j.environment["LANE_CHUNKS"], j.environment.get("CHUNK"))
        for j in whole
    ) == [(str(lane), f"[{lane}]", None) for lane in range(SPLIT_NA12878_LANES)]
    assert {j.environment["SAMPLE_ID"] for j in whole} == {"NA12878"}
    splits = execution.jobs_named("biojob-split-lane")
    assert sorted(
        (
            j.environment["SAMPLE_ID"],
            j.environment["LANE"],
            j.environment["LANE_CHUNKS"],
            j.environment["BIOJOB_ALIGN_CHUNK_PAIRS"],
            j.command,
        )
        for j in splits
    ) == [
        ("SIM", "0", "[0,1]", str(CHUNK_PAIRS), ["split"]),
        ("SIM", "1", "[2,3]", str(CHUNK_PAIRS), ["split"]),
    ]
    chunks = execution.jobs_named("biojob-align-lane-chunk")
    assert sorted(
        (j.environment["LANE"], j.environment["LANE_CHUNKS"], j.environment["CHUNK"])
        for j in chunks
    ) == [("0", "[0,1]", "0"), ("0", "[0,1]", "1"), ("1", "[2,3]", "2"), ("1", "[2,3]", "3")]
    merges = {
        j.environment["SAMPLE_ID"]: j.environment["CHUNKS"]
        for j in execution.jobs_named("biojob-merge")
    }
    assert merges == {"NA12878": str(SPLIT_NA12878_LANES), "SIM": "4"}


def test_a_split_lane_s_chunks_are_named_by_their_number_across_the_sample(
    harness: Harness, split_cohort: dict[str, Any]
) -> None:
    assert_succeeded(split_cohort["execution"])
    prefix = split_cohort["prefix"]
    sim = {
        name.removeprefix("samples/SIM/")
        for name in published(harness, prefix)
        if name.startswith("samples/SIM/") and "/logs/" not in name
    }
    expected = {f"SIM.split.{first:04}.manifest.json" for first in (0, 2)}
    for chunk in range(4):
        expected |= {
            f"SIM.split.{chunk:04}_R1.fastq.gz",
            f"SIM.split.{chunk:04}_R2.fastq.gz",
            f"SIM.align.{chunk:04}.bam",
            f"SIM.align.{chunk:04}.bam.bai",
            f"SIM.align.{chunk:04}.manifest.json",
        }
    assert {name for name in sim if ".split." in name or ".align.0" in name} == expected
    # What each split wrote is what its chunks aligned, and each lane is all of its pairs.
    steps = manifests(harness, prefix + "samples/SIM/")
    for first, lane in ((0, "1a"), (2, "1b")):
        split = steps[f"SIM.split.{first:04}.manifest.json"]
        aligned = [
            steps[f"SIM.align.{chunk:04}.manifest.json"]["task"]["records"]["read_pairs"]
            for chunk in (first, first + 1)
        ]
        assert split["task"]["records"]["read_pairs"] == sum(aligned) == SIM_LANE_PAIRS, lane
        assert aligned == [8_000, 7_000], lane


def test_the_sample_s_report_shows_its_lanes_splits_and_chunks(
    harness: Harness, split_cohort: dict[str, Any]
) -> None:
    """SIM's report.html has a task per split and per chunk's align in its timeline (the QC
    job finds the split lanes' step manifests in the sample's directory)."""
    assert_succeeded(split_cohort["execution"])
    report = harness.storage.read(split_cohort["prefix"] + "samples/SIM/report.html").decode()
    tasks = [
        part.split('"', 1)[0] for part in report.split('data-task="')[1:]
    ]
    assert sorted(t for t in tasks if t.startswith(("split", "align", "merge"))) == [
        "align SIM lane 1a",
        "align SIM lane 1a",
        "align SIM lane 1b",
        "align SIM lane 1b",
        "merge SIM",
        "split SIM lane 1a",
        "split SIM lane 1b",
    ]


def bam_records(harness: Harness, uri: str, tmp_path: Path) -> list[list[str]]:
    """The BAM's records as fields, in file order."""
    bam = tmp_path / uri.rsplit("/", 1)[-1]
    bam.write_bytes(harness.storage.read(uri))
    text = subprocess.run(
        ["samtools", "view", str(bam)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("\t") for line in text.splitlines()]


def tag(record: list[str], name: str) -> str:
    """The value of the record's optional field `name` (empty when it has none)."""
    return next((f[5:] for f in record[11:] if f.startswith(f"{name}:")), "")


def with_sorted_xa(record: list[str]) -> list[str]:
    """The record with its `XA` hits sorted: bwa orders equally good hits by a hash of the
    read's position in its input (docs/scaling.md)."""
    return [
        f"XA:Z:{';'.join(sorted(f[5:].rstrip(';').split(';')))};" if f.startswith("XA:Z:") else f
        for f in record
    ]


def vcf_sites(records: list[str]) -> list[str]:
    return [":".join(record.split("\t")[:2]) for record in records]


def test_a_split_cohort_gives_the_records_of_biojob_run_which_aligns_each_lane_whole(
    harness: Harness, split_cohort: dict[str, Any], split_sheet: str, tmp_path: Path
) -> None:
    """`biojob run --samplesheet` on the same sheet aligns every lane whole. NA12878 (no lane
    split): the same merged BAM records. SIM (both lanes split): the same records but for the
    few pairs with a mate in a tandem repeat whose placement is a tie (MAPQ 0), which bwa
    breaks with a hash of the read's position in its input, which restarts in each chunk
    (docs/scaling.md). The VCFs: the same records but where those reads lie: one low-quality
    SIM call there (chr20:140890, QUAL 5) is made from the whole lanes only."""
    assert_succeeded(split_cohort["execution"])
    local_input = cohort_input({})
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps(local_input))
    result = run_biojob(
        harness,
        "run",
        "--input",
        str(input_file),
        "--samplesheet",
        split_sheet,
        "--run-id",
        "local-split-cohort",
        env={"BIOJOB_SCRATCH_DIR": str(tmp_path / "scratch")},
    )
    assert result.returncode == 0, result.stderr
    local = f"{RESULTS}/local-split-cohort/"
    workflow = split_cohort["prefix"]
    storage = harness.storage
    name = "samples/NA12878/NA12878.align.bam"
    assert bam_records(harness, workflow + name, tmp_path) == bam_records(
        harness, local + name, tmp_path
    )
    name = "samples/SIM/SIM.align.bam"
    ours = [with_sorted_xa(r) for r in bam_records(harness, workflow + name, tmp_path)]
    theirs = [with_sorted_xa(r) for r in bam_records(harness, local + name, tmp_path)]
    assert len(ours) == len(theirs) == 4 * SIM_LANE_PAIRS
    assert sorted(r[0] for r in ours) == sorted(r[0] for r in theirs)
    theirs_set = {tuple(r) for r in theirs}
    differing = sorted({r[0] for r in ours if tuple(r) not in theirs_set})
    # Each differing pair has a mate with equally good hits (AS == XS) placed on another of
    # them (one its XA lists in the other run), its mate the same but for where it points.
    for read in differing:
        pair = (
            {r[1]: r for r in ours if r[0] == read},
            {r[1]: r for r in theirs if r[0] == read},
        )
        assert pair[0].keys() == pair[1].keys(), read
        for flag in pair[0]:
            one, other = pair[0][flag], pair[1][flag]
            if one == other:
                continue
            if one[3] != other[3]:
                assert tag(one, "AS") == tag(one, "XS") == tag(other, "XS"), (read, one, other)
                assert f",{'-' if int(flag) & 16 else '+'}{one[3]}," in f",{tag(other, 'XA')}"
                assert (one[4], one[5]) == (other[4], other[5]) == ("0", "100M")
            else:
                assert one[:7] + one[9:] == other[:7] + other[9:], (read, one, other)
    # Where those reads lie, in either run.
    spans = [
        (r[2], int(r[3]), int(r[3]) + len(r[9]))
        for r in ours + theirs
        if r[0] in differing
    ]
    assert {contig for contig, _, _ in spans} == {"chr20"}
    assert (min(s for _, s, _ in spans), max(e for _, _, e in spans)) == (140_374, 140_934)
    assert len(differing) == 4, differing

    def only(a: list[str], b: list[str]) -> list[str]:
        return [site for site in vcf_sites(a) if site not in set(vcf_sites(b))]

    for vcf in (
        "cohort.vcf.gz",
        "samples/NA12878/NA12878.vcf.gz",
        "samples/SIM/SIM.vcf.gz",
    ):
        split_records = storage.vcf_records(workflow + vcf)
        whole_records = storage.vcf_records(local + vcf)
        assert len(whole_records) > 10, vcf
        expected = [] if "NA12878" in vcf else ["chr20:140890"]
        assert (only(split_records, whole_records), only(whole_records, split_records)) == (
            [],
            expected,
        ), vcf
        kept = [r for r in whole_records if vcf_sites([r])[0] not in expected]
        assert split_records == kept, vcf


def test_a_lane_s_and_a_chunk_s_align_jobs_killed_past_batch_s_attempts_are_resubmitted_once(
    harness: Harness, split_cohort: dict[str, Any]
) -> None:
    """bwa killed (exit 21, retryable) in every Batch attempt of the first submission of lane
    3's align job (a lane aligned whole) and of chunk 2's (a split lane's): each is resubmitted
    once, as the single-sample align is, and the cohort's records are the first execution's."""
    killed = {"BIOJOB_BWA": str(ROOT / "testdata" / "bin" / "fake-bwa-killed")}
    faults = [
        Fault("biojob-align-lane", env=killed, where={"LANE": "3"}, submissions={1}),
        Fault("biojob-align-lane-chunk", env=killed, where={"CHUNK": "2"}, submissions={1}),
    ]
    execution = harness.execute(
        split_cohort["input"], name="cohort-split-resubmitted", faults=faults, timeout=1800.0
    )
    assert_succeeded(execution)
    for name, (key, value) in (
        ("biojob-align-lane", ("LANE", "3")),
        ("biojob-align-lane-chunk", ("CHUNK", "2")),
    ):
        resubmitted = [j for j in execution.jobs_named(name) if j.environment[key] == value]
        assert [[a.exit_code for a in j.attempts] for j in resubmitted] == [[21, 21, 21], [0]], name
        others = [j for j in execution.jobs_named(name) if j.environment[key] != value]
        assert all([a.exit_code for a in j.attempts] == [0] for j in others), name
    counts = task_counts(execution)
    for task in ("AlignLane", "AlignLaneChunk"):
        assert [counts.get(f"{task}{state}") for state in ("Classify", "Count", "Backoff")] == [
            1,
            1,
            1,
        ], task
    assert counts["AlignLane"] == SPLIT_NA12878_LANES + 1
    assert counts["AlignLaneChunk"] == 4 + 1
    prefix = harness.run_prefix(split_cohort["input"], execution.name)
    assert harness.storage.vcf_records(prefix + "cohort.vcf.gz") == harness.storage.vcf_records(
        split_cohort["prefix"] + "cohort.vcf.gz"
    )


def test_resuming_a_split_cohort_splits_its_lanes_again_and_reuses_every_chunk_s_alignment(
    harness: Harness, split_cohort: dict[str, Any]
) -> None:
    """A second execution on the split cohort's run prefix with BIOJOB_RESUME=1: each split
    lane's split runs again (a split has no key) and writes the same chunks, so every chunk's
    align job, each sample's merge and the joint steps are reused. Runs after the other tests
    of the split cohort, which read its prefix."""
    earlier = split_cohort["execution"]
    assert_succeeded(earlier)
    prefix = split_cohort["prefix"]
    before = manifests(harness, prefix)
    chunk_fastqs = {
        name: harness.storage.read(prefix + name)
        for name in harness.storage.objects(prefix)
        if ".split." in name and name.endswith(".fastq.gz")
    }
    assert len(chunk_fastqs) == 8
    execution_input = copy.deepcopy(split_cohort["input"])
    execution_input["params"]["environment"].update(
        JOB_WORKFLOW_EXECUTION_ID=earlier.name, BIOJOB_RESUME="1"
    )
    execution = harness.execute(execution_input, name="cohort-split-resume", timeout=1800.0)
    assert_succeeded(execution)
    resumed = manifests(harness, prefix)
    assert set(resumed) == set(before)
    ran_again = {f"samples/{sample}/{sample}.qc.manifest.json" for sample in SAMPLES}
    ran_again |= {"cohort.report.manifest.json"}
    ran_again |= {f"samples/SIM/SIM.split.{first:04}.manifest.json" for first in (0, 2)}
    assert {
        name: manifest["task"]["status"] for name, manifest in resumed.items()
    } == {name: "succeeded" if name in ran_again else "cached" for name in before}
    assert {name: harness.storage.read(prefix + name) for name in chunk_fastqs} == chunk_fastqs
