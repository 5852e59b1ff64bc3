#!/usr/bin/env bash
# What record accounting costs inside real steps: runs the align job, then the call job of the
# first contig (release build), on the benchmark data set under `perf record`, and prints the
# CPU seconds of each thread name (comm), per million read pairs: in align, biojob's
# `bam-counter` (the thread that writes sort's output to the BAM, counting its records) and
# `bam-count-N` (its inflating workers); in call, `pileup-relay` (the thread that relays
# mpileup's output into bcftools call, checking its end).
#
#   benches/accounting.sh [DATA_DIR] [PAIRS]
#
# DATA_DIR (default $BIOJOB_BENCH_DIR, else /tmp/biojob-bench-data) must be outside the work
# tree; when it has no sim_R1.fastq.gz, ../shared/testdata/make-bench-data.sh DATA_DIR PAIRS
# makes it (PAIRS default 200000). CPU seconds are perf samples at 999 Hz of the task clock,
# counted per thread: other load on the machine changes wall time, not these. Needs `perf`
# (Debian: linux-perf) and the right to use it (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${1:-${BIOJOB_BENCH_DIR:-/tmp/biojob-bench-data}}"
pairs="${2:-200000}"
testdata="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
threads="${BIOJOB_THREADS:-2}"

if [ ! -s "$data/sim_R1.fastq.gz" ]; then
  "$testdata/make-bench-data.sh" "$data" "$pairs"
fi
data="$(realpath "$data")"
(cd "$root" && cargo build --release --quiet -p biojob-cli)
biojob="$root/target/release/biojob"
work="$(mktemp -d "${TMPDIR:-/tmp}/biojob-accounting-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export BIOJOB_CACHE_DIR="$work/cache" BIOJOB_SCRATCH_DIR="$work/scratch" BIOJOB_LOG_FORMAT=text
export BIOJOB_THREADS="$threads"
"$biojob" -q prepare-reference --reference "$data/ref.fa" >/dev/null

contig=$(cut -f1 "$data/ref.fa.fai" | head -1)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for step in align call; do
  env SAMPLE_ID=sim REFERENCE="$data/ref.fa" SOURCE_DATA_PREFIX="$data" CHROMOSOME="$contig" \
    JOB_OUTPUT_PREFIX="$work/out" AWS_BATCH_JOB_ID="accounting-bench-$step" \
    perf record -q -F 999 -e task-clock -o "$work/$step.perf" -- "$biojob" -q "$step" >/dev/null
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
pairs=$(grep -o '"read_pairs": [0-9]*' "$work/out/sim.align.manifest.json" | head -1 | grep -o '[0-9]*$')
primary=$(grep -o '"primary": [0-9]*' "$work/out/sim.align.manifest.json" | head -1 | grep -o '[0-9]*$')
echo "read pairs: $pairs; primary records counted: $primary; call: $contig"
for step in align call; do
  echo "$step:"
  printf "  %-16s %10s %18s\n" "thread" "CPU s" "CPU s / M pairs"
  perf report -q -i "$work/$step.perf" --stdio --sort comm -F sample,comm 2>/dev/null |
    awk -v pairs="$pairs" '
      NF >= 2 { samples[$2] += $1; total += $1 }
      END {
        for (comm in samples)
          printf "  %-16s %10.2f %18.3f\n", comm, samples[comm] / 999, samples[comm] / 999 / (pairs / 1e6)
        printf "  %-16s %10.2f %18.3f\n", "all", total / 999, total / 999 / (pairs / 1e6)
      }' | sort -k2 -n -r
done
