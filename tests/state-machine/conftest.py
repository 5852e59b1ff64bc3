"""Fixtures of the state-machine scenarios: one harness (moto + SeaweedFS + the stack) for the
session, the test data uploaded to it, and execution inputs in the reference design's shape."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from biojob_sm.harness import ROOT, Harness

TESTDATA = Path(os.environ.get("BIOJOB_TESTDATA") or ROOT.parent / "shared" / "testdata").resolve()
FAKE_TOOLS = ROOT / "testdata" / "bin"
SAMPLE = "NA12878"
CONTIGS = ["chr20", "chr22", "chrM"]  # the test reference's, in its order
INPUT_BUCKET = "biojob-inputs"
RESULTS = "s3://biojob-results/runs"


def qc_outputs(sample: str) -> set[str]:
    """The QC job's outputs in the run prefix, its manifest aside (docs/batch-contract.md)."""
    return {
        f"{sample}.flagstat.txt",
        f"{sample}.samtools_stats.txt",
        f"{sample}.bcftools_stats.txt",
        "qc.json",
        "report.html",
    }


def sample_input(**environment: str) -> dict[str, Any]:
    """The test sample's execution input (chr20, chr22, chrM); `environment` adds or replaces
    keys of `params.environment` (an empty value is kept: it means unset)."""
    return {
        "params": {
            "queue": "biojob-low-priority",
            "environment": {
                "SAMPLE_ID": SAMPLE,
                "REFERENCE_NAME": "ref",
                "REFERENCE_PREFIX": f"s3://{INPUT_BUCKET}/references",
                "SOURCE_DATA_PREFIX": f"s3://{INPUT_BUCKET}/samples",
                "JOB_OUTPUT_PREFIX": RESULTS,
                **environment,
            },
            "chromosomes": list(CONTIGS),
        }
    }


def plan_shards(harness: Harness, contigs: list[str], shard_bases: int) -> dict[str, Any]:
    """`biojob plan-shards`'s plan: `{"regions": [...], "shardBases": n, "shards": [0, ...]}`."""
    result = run_biojob(
        harness,
        "plan-shards",
        "--reference",
        str(TESTDATA / "ref.fa"),
        "--contigs",
        json.dumps(contigs),
        "--shard-bases",
        str(shard_bases),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def with_params(execution_input: dict[str, Any], **params: Any) -> dict[str, Any]:
    changed = copy.deepcopy(execution_input)
    changed["params"].update(params)
    return changed


@pytest.fixture(scope="session")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    # moto logs every IsPresent on a missing path (the definition's optional keys) as an error.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    for name in ("ref.fa", "NA12878_R1.fastq.gz"):
        if not (TESTDATA / name).is_file():
            pytest.fail(
                f"{TESTDATA / name}: missing (set BIOJOB_TESTDATA to the test data directory)"
            )
    with Harness(tmp_path_factory.mktemp("state-machine")) as started:
        storage = started.storage
        for bucket in (INPUT_BUCKET, RESULTS.removeprefix("s3://").split("/")[0]):
            storage.make_bucket(bucket)
        for name in ("ref.fa", "ref.fa.fai"):
            storage.put(TESTDATA / name, f"s3://{INPUT_BUCKET}/references/{name}")
        for mate in ("R1", "R2"):
            name = f"{SAMPLE}_{mate}.fastq.gz"
            storage.put(TESTDATA / name, f"s3://{INPUT_BUCKET}/samples/{name}")
        yield started


def run_biojob(
    harness: Harness, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The workspace's biojob, outside any job, with the harness's S3 server."""
    environment = {**os.environ, **harness.runner.host_env, **(env or {})}
    return subprocess.run(
        [str(harness.binary), *args], env=environment, capture_output=True, text=True, check=False
    )


def manifests(harness: Harness, prefix: str) -> dict[str, Any]:
    """`{name: parsed}` of the step manifests under `prefix`."""
    return {
        name: json.loads(harness.storage.read(prefix + name))
        for name in harness.storage.objects(prefix)
        if name.endswith(".manifest.json")
    }


@pytest.fixture(scope="session")
def per_contig(harness: Harness) -> dict[str, Any]:
    """One execution calling per contig, and its run prefix's objects right after it."""
    execution_input = sample_input()
    before = harness.storage.objects(RESULTS + "/")
    execution = harness.execute(execution_input, name="per-contig")
    prefix = harness.run_prefix(execution_input, execution.name)
    return {
        "input": execution_input,
        "execution": execution,
        "prefix": prefix,
        "objects": harness.storage.objects(prefix),
        "manifests": manifests(harness, prefix),
        "new_results": set(harness.storage.objects(RESULTS + "/")) - set(before),
        # The QC job's outputs as it wrote them (a resume of this execution runs QC again).
        "qc_files": {
            name: harness.storage.read(prefix + name)
            for name in harness.storage.objects(prefix)
            if name in qc_outputs(SAMPLE)
        },
    }
