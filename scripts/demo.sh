#!/usr/bin/env bash
# Runs the whole workflow on the small real NA12878 dataset (BIOJOB_TESTDATA, default
# ../shared/testdata) and prints where the final VCF, the QC files (qc.json, report.html and
# the MultiQC inputs) are.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-tools.sh"
testdata="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
for file in ref.fa NA12878_R1.fastq.gz NA12878_R2.fastq.gz; do
  if [ ! -r "$testdata/$file" ]; then
    echo "demo: $testdata/$file is missing; set BIOJOB_TESTDATA to the test data directory" >&2
    exit 2
  fi
done
out="${BIOJOB_DEMO_DIR:-$root/target/demo}"
mkdir -p "$out"
out="$(realpath "$out")"
json_string() { local s="${1//\\/\\\\}"; printf '"%s"' "${s//\"/\\\"}"; }
cat > "$out/input.json" <<JSON
{"params": {"queue": "local",
            "environment": {"REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878",
                            "SOURCE_DATA_PREFIX": $(json_string "$testdata"),
                            "JOB_OUTPUT_PREFIX": $(json_string "$out/results"),
                            "JOB_AWS_CLI_PATH": "/opt/miniconda/bin"},
            "chromosomes": ["chr20", "chr22", "chrM"]}}
JSON
cd "$root"
cargo build --quiet -p biojob-cli
export BIOJOB_CACHE_DIR="${BIOJOB_CACHE_DIR:-$out/cache}"
run_id="demo-$(date -u +%Y%m%dT%H%M%SZ)-$$"
"$root/target/debug/biojob" run --input "$out/input.json" --run-id "$run_id" "$@"
run_dir="$out/results/NA12878/$run_id"
for file in qc.json report.html NA12878.flagstat.txt NA12878.samtools_stats.txt \
  NA12878.bcftools_stats.txt; do
  if [ ! -s "$run_dir/$file" ]; then
    echo "demo: $run_dir/$file was not written" >&2
    exit 1
  fi
done
echo "QC: $run_dir/qc.json"
echo "report: $run_dir/report.html"
echo "MultiQC inputs: $run_dir/NA12878.{flagstat,samtools_stats,bcftools_stats}.txt (multiqc $run_dir)"
