"""Checks what MultiQC found in a cohort's run directory (docs/cohorts.md, "Outputs"): every
sample of the sheet, by its name, in the general statistics and in each module's table
(samtools flagstat, stats and markdup, bcftools stats), with the duplicate counts of the
sample's `<sample>.markdup.json`.

Usage: check_multiqc.py SAMPLESHEET RUN_DIR MULTIQC_DATA_DIR
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def table(path: Path) -> dict[str, dict[str, str]]:
    """A MultiQC data table (tab-separated, `Sample` first) by sample."""
    with path.open(newline="") as handle:
        return {row["Sample"]: row for row in csv.DictReader(handle, delimiter="\t")}


def main(sheet: Path, run_dir: Path, data: Path) -> int:
    with sheet.open(newline="") as handle:
        samples = sorted({row["sample"] for row in csv.DictReader(handle)})
    checks = 0
    for name in (
        "multiqc_general_stats.txt",
        "multiqc_samtools_flagstat.txt",
        "multiqc_samtools_stats.txt",
        "multiqc_samtools_markdup.txt",
        "multiqc_bcftools_stats.txt",
    ):
        found = sorted(table(data / name))
        assert found == samples, f"{name}: {found}, the sheet's samples are {samples}"
        checks += 1
    markdup = table(data / "multiqc_samtools_markdup.txt")
    for sample in samples:
        stats = json.loads((run_dir / "samples" / sample / f"{sample}.markdup.json").read_text())
        row = markdup[sample]
        assert int(row["read"]) == stats["READ"], (sample, row["read"], stats["READ"])
        assert int(row["duplicate_total"]) == stats["DUPLICATE TOTAL"], (
            sample,
            row["duplicate_total"],
            stats["DUPLICATE TOTAL"],
        )
        checks += 1
    print(f"multiqc: {checks} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
