#!/usr/bin/env bash
# Runs a cohort (testdata/make-cohort-data.sh: NA12878 in 21 lanes and a simulated sample) with
# `biojob run --samplesheet`, then MultiQC on its run directory, and checks that MultiQC names
# every sample in each of its tables, with the markdup statistics biojob wrote
# (tests/multiqc/check_multiqc.py). MultiQC and its packages (tests/multiqc/requirements.txt,
# every version pinned) live in their own virtual environment,
# ${BIOJOB_CI_TOOLS:-~/.cache/biojob-ci}/multiqc-venv, rebuilt when the requirements change.
# BIOJOB_BINARY names the biojob to run (default: target/debug/biojob, built when unset).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$root/tests/multiqc/requirements.txt"
venv="${BIOJOB_CI_TOOLS:-$HOME/.cache/biojob-ci}/multiqc-venv"
if ! cmp -s "$requirements" "$venv/.pinned" 2>/dev/null; then
  echo "== installing MultiQC into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.pinned"
fi
if [ -z "${BIOJOB_BINARY:-}" ]; then
  (cd "$root" && cargo build --quiet -p biojob-cli)
  BIOJOB_BINARY="$root/target/debug/biojob"
fi
BIOJOB_TESTDATA="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
export BIOJOB_TESTDATA
export AWS_EC2_METADATA_DISABLED=true

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash "$root/testdata/make-cohort-data.sh" "$work/data" >/dev/null
cat >"$work/input.json" <<JSON
{"params": {"queue": "local", "samplesheet": "$work/data/samplesheet.csv",
  "environment": {"REFERENCE_NAME": "ref", "REFERENCE_PREFIX": "$BIOJOB_TESTDATA",
                  "JOB_OUTPUT_PREFIX": "$work/out"},
  "chromosomes": ["chr20", "chr22", "chrM"]}}
JSON
BIOJOB_SCRATCH_DIR="$work/scratch" "$BIOJOB_BINARY" run --input "$work/input.json" \
  --run-id multiqc 2>"$work/run.log" || { cat "$work/run.log" >&2; exit 1; }
"$venv/bin/multiqc" "$work/out/multiqc" --outdir "$work/multiqc" --no-ansi --quiet
"$venv/bin/python" "$root/tests/multiqc/check_multiqc.py" "$work/data/samplesheet.csv" \
  "$work/out/multiqc" "$work/multiqc/multiqc_data"
