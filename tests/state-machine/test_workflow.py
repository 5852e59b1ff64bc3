"""Executions that succeed: per-contig calling, chunks + size shards, the example input, and a
resume by `JOB_WORKFLOW_EXECUTION_ID` + `BIOJOB_RESUME`."""

from __future__ import annotations

import gzip
import json
from typing import Any

from biojob_sm.batch import JobRun
from biojob_sm.harness import ROOT, Execution, Harness
from conftest import (
    CONTIGS,
    RESULTS,
    SAMPLE,
    TESTDATA,
    manifests,
    plan_shards,
    qc_outputs,
    run_biojob,
    sample_input,
    with_params,
)

# The states that submit a job (ShardCall's run in CallShards' child executions).
TASKS = {"Split", "AlignChunk", "Merge", "Align", "Call", "Gather", "Qc"}


def task_states(execution: Execution) -> list[str]:
    return [state for state in execution.states() if state in TASKS]


def assert_succeeded(execution: Execution) -> None:
    assert execution.status == "SUCCEEDED", f"{execution.error}: {execution.cause}"


def assert_runs_as_defined(harness: Harness, job: JobRun) -> None:
    """The job ran with what its job definition in the template says: command (unless the
    state overrides it), vCPUs, memory, and every environment variable."""
    request = harness.job_definition_requests[job.definition]
    container = request["containerProperties"]
    resources = {r["type"]: int(r["value"]) for r in container["resourceRequirements"]}
    assert (job.vcpus, job.memory_mib) == (resources["VCPU"], resources["MEMORY"]), job.job_name
    if job.job_name not in (
        "biojob-split",
        "biojob-split-lane",
        "biojob-merge",
        "biojob-sample-vcf",
        "biojob-report",
    ):
        assert job.command == container["command"], job.job_name
    for variable in container["environment"]:
        assert job.environment[variable["name"]] == variable["value"], (job.job_name, variable)
    for attempt in job.attempts:
        assert attempt.environment["AWS_BATCH_JOB_ID"] == job.job_id
        assert attempt.environment["AWS_BATCH_JOB_ATTEMPT"] == str(attempt.number)
        assert attempt.environment["BIOJOB_SCRATCH_DIR"] == str(attempt.scratch)


def emf_steps(job: JobRun) -> list[tuple[str, str]]:
    """`(namespace, Step)` of each CloudWatch embedded-metric-format line in the job's log."""
    found = []
    for line in job.log_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            for directive in record["_aws"]["CloudWatchMetrics"]:
                found.append((directive["Namespace"], record["Step"]))
    return found


def qc_objects(sample: str) -> set[str]:
    """The QC job's outputs and step manifest."""
    return qc_outputs(sample) | {f"{sample}.qc.manifest.json"}


def documented_objects(sample: str, shards: list[str], chunks: list[str] = ()) -> set[str]:
    """What docs/batch-contract.md ("Outputs each step stages out") says a run prefix holds,
    logs/ aside: each step's outputs and its step manifest."""
    names = {
        f"{sample}.align.bam",
        f"{sample}.align.bam.bai",
        f"{sample}.align.manifest.json",
        f"{sample}.vcf.gz",
        f"{sample}.vcf.gz.tbi",
        f"{sample}.gather.manifest.json",
        *qc_objects(sample),
    }
    for shard in shards:
        names |= {
            f"{sample}.call.{shard}.vcf.gz",
            f"{sample}.call.{shard}.vcf.gz.tbi",
            f"{sample}.call.{shard}.manifest.json",
        }
    if chunks:
        names |= {f"{sample}.split.manifest.json", f"{sample}.merge.manifest.json"}
        names.remove(f"{sample}.align.manifest.json")
    for chunk in chunks:
        names |= {
            f"{sample}.split.{chunk}_R1.fastq.gz",
            f"{sample}.split.{chunk}_R2.fastq.gz",
            f"{sample}.align.{chunk}.bam",
            f"{sample}.align.{chunk}.bam.bai",
            f"{sample}.align.{chunk}.manifest.json",
        }
    return names


def published(harness: Harness, prefix: str) -> set[str]:
    """The run prefix's objects, logs/ aside (asserting there is one log per tool run)."""
    names = set(harness.storage.objects(prefix))
    logs = {name for name in names if name.startswith("logs/")}
    assert logs, f"no logs/ under {prefix}"
    return names - logs


def test_per_contig_calling_runs_each_job_as_the_stack_defines_it(
    harness: Harness, per_contig: dict[str, Any]
) -> None:
    execution = per_contig["execution"]
    assert_succeeded(execution)
    assert task_states(execution) == ["Align", "Call", "Call", "Call", "Gather", "Qc"]
    assert [job.job_name for job in execution.jobs if job.job_name != "biojob-call"] == [
        "biojob-align",
        "biojob-gather",
        "biojob-qc",
    ]
    calls = execution.jobs_named("biojob-call")
    assert sorted(job.environment["CHROMOSOME"] for job in calls) == CONTIGS
    for job in execution.jobs:
        assert_runs_as_defined(harness, job)
        assert [a.exit_code for a in job.attempts] == [0], job.job_name
        assert job.environment["JOB_WORKFLOW_NAME"] == harness.state_machine_name
        assert job.environment["JOB_WORKFLOW_EXECUTION_ID"] == "per-contig"
        assert job.queue == "biojob-low-priority"
    gather = execution.jobs_named("biojob-gather")[0]
    assert json.loads(gather.environment["CHROMOSOMES"]) == CONTIGS
    assert gather.environment["BIOJOB_CALL_SHARD_BASES"] == "0"


def test_per_contig_run_prefix_holds_exactly_the_documented_objects(
    per_contig: dict[str, Any], harness: Harness
) -> None:
    names = {name for name in per_contig["objects"] if not name.startswith("logs/")}
    assert names == documented_objects(SAMPLE, ["0000", "0001", "0002"])
    assert any(name.startswith("logs/") for name in per_contig["objects"])
    for name, manifest in per_contig["manifests"].items():
        assert manifest["task"]["status"] == "succeeded", name
    # Nothing is written outside the run prefix.
    assert per_contig["new_results"] == {
        f"{harness.state_machine_name}/per-contig/{name}" for name in per_contig["objects"]
    }


def test_per_contig_vcf_and_qc_are_biojob_run_s(
    harness: Harness, per_contig: dict[str, Any], tmp_path
) -> None:
    """`biojob run` on the same input gives the same records (headers name commands and dates)
    and the same QC: qc.json and the flagstat whole, the tools' reports' summary numbers (their
    headers name the files' paths)."""
    execution_input = sample_input()
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps(execution_input))
    result = run_biojob(
        harness,
        "run",
        "--input",
        str(input_file),
        "--run-id",
        "local-run",
        env={"BIOJOB_SCRATCH_DIR": str(tmp_path / "scratch")},
    )
    assert result.returncode == 0, result.stderr
    local = harness.storage.vcf_records(f"{RESULTS}/{SAMPLE}/local-run/{SAMPLE}.vcf.gz")
    workflow = harness.storage.vcf_records(per_contig["prefix"] + f"{SAMPLE}.vcf.gz")
    assert len(workflow) > 200
    assert {record.split("\t")[0] for record in workflow} == {"chr20", "chr22"}
    assert workflow == local
    run_dir = f"{RESULTS}/{SAMPLE}/local-run/"
    local_qc = {name: harness.storage.read(run_dir + name) for name in qc_outputs(SAMPLE)}
    workflow_qc = per_contig["qc_files"]
    assert set(workflow_qc) == set(local_qc)
    assert json.loads(workflow_qc["qc.json"]) == json.loads(local_qc["qc.json"])
    flagstat = f"{SAMPLE}.flagstat.txt"
    assert workflow_qc[flagstat] == local_qc[flagstat]
    for report in (f"{SAMPLE}.samtools_stats.txt", f"{SAMPLE}.bcftools_stats.txt"):
        summary = [
            [line for line in files[report].decode().splitlines() if line.startswith("SN\t")]
            for files in (workflow_qc, local_qc)
        ]
        assert summary[0] and summary[0] == summary[1], report


def test_every_job_reports_its_step_metrics_and_leaves_its_scratch_clean(
    per_contig: dict[str, Any],
) -> None:
    for job in per_contig["execution"].jobs:
        step = job.command[0]
        assert emf_steps(job) == [("biojob/biojob", step)], job.job_name
        for attempt in job.attempts:
            leftovers = [p for p in attempt.scratch.rglob("*") if "cache" not in p.parts]
            assert not [p for p in leftovers if p.is_file()], leftovers


def test_resume_by_execution_id_reuses_every_step(
    harness: Harness, per_contig: dict[str, Any]
) -> None:
    earlier = per_contig["execution"]
    assert_succeeded(earlier)
    execution_input = sample_input(JOB_WORKFLOW_EXECUTION_ID=earlier.name, BIOJOB_RESUME="1")
    execution = harness.execute(execution_input, name="resume-per-contig")
    assert_succeeded(execution)
    assert "UseEarlierExecution" in execution.states()
    for job in execution.jobs:
        assert job.environment["JOB_WORKFLOW_EXECUTION_ID"] == earlier.name
        # QC always runs (its report describes the execution at hand): it is not told to resume.
        if job.job_name != "biojob-qc":
            assert job.environment["BIOJOB_RESUME"] == "1"
        assert [a.exit_code for a in job.attempts] == [0]
    # The earlier execution's prefix: the same objects, every step manifest now `cached` with
    # the earlier cache key, the outputs untouched -- but QC's, which always runs again (its
    # report describes the execution at hand); the new execution's own prefix is empty.
    prefix = per_contig["prefix"]
    after = harness.storage.objects(prefix)
    kept = {
        name: size
        for name, size in per_contig["objects"].items()
        if not name.endswith(".manifest.json")
        and not name.startswith("logs/")
        and name not in qc_objects(SAMPLE)
    }
    assert {name: after.get(name) for name in kept} == kept
    resumed = manifests(harness, prefix)
    assert set(resumed) == set(per_contig["manifests"])
    qc_manifest = f"{SAMPLE}.qc.manifest.json"
    assert resumed.pop(qc_manifest)["task"]["status"] == "succeeded"
    for name, manifest in resumed.items():
        assert manifest["task"]["status"] == "cached", name
        assert manifest["task"]["cache_key"] == per_contig["manifests"][name]["task"]["cache_key"]
    assert harness.storage.objects(harness.run_prefix(execution_input, execution.name)) == {}


def test_chunks_and_size_shards(harness: Harness) -> None:
    shard_bases = 100_000
    plan = plan_shards(harness, CONTIGS, shard_bases)
    # chr20 (300,000 bases) in three regions; chr22 and chrM (28,927 bases together) grouped.
    assert plan["regions"] == [
        "chr20:1-100000",
        "chr20:100001-200000",
        "chr20:200001-300000",
        "chr22,chrM",
    ]
    execution_input = with_params(
        sample_input(),
        chunks=[0, 1],
        chunkPairs=5000,
        shards=plan["shards"],
        shardBases=plan["shardBases"],
    )
    execution = harness.execute(execution_input, name="chunks-and-shards")
    assert_succeeded(execution)
    assert task_states(execution) == [
        "Split",
        "AlignChunk",
        "AlignChunk",
        "Merge",
        "Gather",
        "Qc",
    ]
    # The shards' calls ran as one Distributed Map run of four child executions.
    (call_shards,) = execution.map_runs
    assert call_shards["status"] == "SUCCEEDED"
    assert (call_shards["itemCounts"]["total"], call_shards["itemCounts"]["succeeded"]) == (4, 4)
    assert "CallShards" in execution.states()
    for job in execution.jobs:
        assert_runs_as_defined(harness, job)
        assert [a.exit_code for a in job.attempts] == [0], job.job_name
    assert execution.jobs_named("biojob-split")[0].command == ["split"]
    assert execution.jobs_named("biojob-split")[0].environment["CHUNKS"] == "2"
    assert execution.jobs_named("biojob-split")[0].environment["BIOJOB_ALIGN_CHUNK_PAIRS"] == "5000"
    assert sorted(j.environment["CHUNK"] for j in execution.jobs_named("biojob-align-chunk")) == [
        "0",
        "1",
    ]
    assert execution.jobs_named("biojob-merge")[0].command == ["merge"]
    (qc,) = execution.jobs_named("biojob-qc")
    assert qc.environment["CHUNKS"] == "2"
    assert qc.environment["BIOJOB_CALL_SHARD_BASES"] == str(shard_bases)
    shard_jobs = execution.jobs_named("biojob-call-shard")
    assert sorted(j.environment["SHARD"] for j in shard_jobs) == ["0", "1", "2", "3"]
    for job in shard_jobs:
        assert json.loads(job.environment["CHROMOSOMES"]) == CONTIGS
        assert job.environment["BIOJOB_CALL_SHARD_BASES"] == str(shard_bases)
    prefix = harness.run_prefix(execution_input, execution.name)
    assert published(harness, prefix) == documented_objects(
        SAMPLE, ["0000", "0001", "0002", "0003"], chunks=["0000", "0001"]
    )
    records = harness.storage.vcf_records(prefix + f"{SAMPLE}.vcf.gz")
    contigs = [record.split("\t")[0] for record in records]
    assert contigs == sorted(contigs, key=CONTIGS.index), "records out of reference order"
    assert set(contigs) == {"chr20", "chr22"}


def test_the_example_input(harness: Harness) -> None:
    """templates/examples/execution-input.json with its own buckets and names, made on the
    loopback server: only `chromosomes` is cut to the test reference's contigs."""
    example = json.loads((ROOT / "templates" / "examples" / "execution-input.json").read_text())
    environment = example["params"]["environment"]
    storage = harness.storage
    buckets = {
        uri.removeprefix("s3://").split("/")[0]
        for key, uri in environment.items()
        if key.endswith("_PREFIX")
    }
    for bucket in sorted(buckets):
        storage.make_bucket(bucket)
    reference = f"{environment['REFERENCE_PREFIX']}/{environment['REFERENCE_NAME']}"
    storage.put(TESTDATA / "ref.fa", reference + ".fa")
    storage.put(TESTDATA / "ref.fa.fai", reference + ".fa.fai")
    sample = environment["SAMPLE_ID"]
    for mate in ("R1", "R2"):
        storage.put(
            TESTDATA / f"{SAMPLE}_{mate}.fastq.gz",
            f"{environment['SOURCE_DATA_PREFIX']}/{sample}_{mate}.fastq.gz",
        )
    example["params"]["chromosomes"] = [c for c in example["params"]["chromosomes"] if c in CONTIGS]
    assert example["params"]["chromosomes"], "the example names none of the test contigs"
    execution = harness.execute(example, name="example")
    assert_succeeded(execution)
    assert {job.queue for job in execution.jobs} == {example["params"]["queue"]}
    prefix = harness.run_prefix(example, execution.name)
    shards = {"chr20": "0000", "chr22": "0001", "chrM": "0002"}
    assert published(harness, prefix) == documented_objects(
        sample, [shards[c] for c in example["params"]["chromosomes"]]
    )
    records = storage.vcf_records(prefix + f"{sample}.vcf.gz")
    assert {r.split("\t")[0] for r in records} == set(example["params"]["chromosomes"]) - {"chrM"}
    header = gzip.decompress(storage.read(prefix + f"{sample}.vcf.gz")).decode()
    columns = next(line for line in header.splitlines() if line.startswith("#CHROM"))
    assert columns.split("\t")[9:] == [sample]


def test_the_input_s_aligner_reaches_the_align_job_which_builds_and_runs_it(
    harness: Harness, per_contig: dict[str, Any]
) -> None:
    """params.environment.BIOJOB_ALIGNER wins over the stack's Aligner (the align job's own
    environment): the align job builds bwa-mem2's index from the FASTA (only bwa's index files
    could be beside it), aligns with it, and the VCF has the records of the per-contig run, which
    aligned with bwa (the default)."""
    assert harness.template.parameters["Aligner"] == "bwa"
    (default_align,) = per_contig["execution"].jobs_named("biojob-align")
    assert default_align.environment["BIOJOB_ALIGNER"] == "bwa"
    execution_input = with_params(sample_input(BIOJOB_ALIGNER="bwa-mem2"), chromosomes=["chr22"])
    execution = harness.execute(execution_input, name="bwa-mem2")
    assert_succeeded(execution)
    (align,) = execution.jobs_named("biojob-align")
    assert align.environment["BIOJOB_ALIGNER"] == "bwa-mem2"
    prefix = harness.run_prefix(execution_input, execution.name)
    step = manifests(harness, prefix)[f"{SAMPLE}.align.manifest.json"]
    assert [tool["tool"] for tool in step["tools"]] == ["bwa-mem2", "samtools", "bcftools"]
    labels = [command["label"] for command in step["task"]["commands"]]
    assert "bwa-mem2-index" in labels and "bwa-mem2-mem" in labels, labels
    ours = harness.storage.vcf_records(prefix + f"{SAMPLE}.vcf.gz")
    per_contig_prefix = per_contig["prefix"]
    theirs = [
        record
        for record in harness.storage.vcf_records(per_contig_prefix + f"{SAMPLE}.vcf.gz")
        if record.split("\t")[0] == "chr22"
    ]
    assert ours == theirs
    assert len(ours) == 16
