"""QC on AWS: the QC job runs after gather with the gather job's environment and writes the QC
files of docs/batch-contract.md to the run prefix (the per-contig execution of conftest)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from biojob_sm.harness import Harness
from conftest import CONTIGS, SAMPLE, qc_outputs


def test_qc_job_runs_after_gather_with_the_contract_s_environment(
    harness: Harness, per_contig: dict[str, Any]
) -> None:
    execution = per_contig["execution"]
    states = execution.states()
    # After gather, the choice between a cohort's per-sample results and one sample's QC.
    assert states[states.index("Gather") + 1 :][:2] == ["CohortResults?", "Qc"], states
    (qc,) = execution.jobs_named("biojob-qc")
    assert qc.command == ["qc"]
    assert qc.definition == "biojob-qc"
    environment = per_contig["input"]["params"]["environment"]
    expected = {
        "SAMPLE_ID": SAMPLE,
        "REFERENCE_NAME": environment["REFERENCE_NAME"],
        "REFERENCE_PREFIX": environment["REFERENCE_PREFIX"],
        "REFERENCE": "",
        "SOURCE_DATA_PREFIX": environment["SOURCE_DATA_PREFIX"],
        "JOB_OUTPUT_PREFIX": environment["JOB_OUTPUT_PREFIX"],
        "JOB_WORKFLOW_NAME": harness.state_machine_name,
        "JOB_WORKFLOW_EXECUTION_ID": execution.name,
        "BIOJOB_CALL_SHARD_BASES": "0",
        "CHUNKS": "",  # not aligned in chunks: empty, i.e. unset
        "BIOJOB_METRICS_NAMESPACE": "biojob/biojob",
    }
    assert {name: qc.environment.get(name) for name in expected} == expected
    assert json.loads(qc.environment["CHROMOSOMES"]) == CONTIGS
    assert "BIOJOB_RESUME" not in qc.environment
    assert [a.exit_code for a in qc.attempts] == [0], qc.log_text()[-2000:]


def test_qc_writes_the_documented_files_to_the_run_prefix(
    harness: Harness, per_contig: dict[str, Any], tmp_path
) -> None:
    files = per_contig["qc_files"]
    assert set(files) == qc_outputs(SAMPLE)
    manifest = per_contig["manifests"][f"{SAMPLE}.qc.manifest.json"]
    assert manifest["task"]["status"] == "succeeded"
    assert {output["name"] for output in manifest["task"]["outputs"]} == qc_outputs(SAMPLE)
    # The flagstat is samtools flagstat's of the execution's BAM.
    bam = tmp_path / "align.bam"
    bam.write_bytes(harness.storage.read(per_contig["prefix"] + f"{SAMPLE}.align.bam"))
    flagstat = subprocess.run(
        ["samtools", "flagstat", str(bam)], capture_output=True, text=True, check=True
    ).stdout
    assert files[f"{SAMPLE}.flagstat.txt"].decode() == flagstat
    # bcftools stats counts the final VCF's records.
    records = len(harness.storage.vcf_records(per_contig["prefix"] + f"{SAMPLE}.vcf.gz"))
    stats = files[f"{SAMPLE}.bcftools_stats.txt"].decode()
    assert f"SN\t0\tnumber of records:\t{records}\n" in stats
    assert "SN\traw total sequences:" in files[f"{SAMPLE}.samtools_stats.txt"].decode()
    assert isinstance(json.loads(files["qc.json"]), dict)
    assert files["report.html"].lstrip().lower().startswith(b"<!doctype html")
