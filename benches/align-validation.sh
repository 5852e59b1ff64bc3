#!/usr/bin/env bash
# Times the align step with and without biojob's FASTQ check on the benchmark data set, in
# interleaved repetitions, and prints the medians and their ratio (target: at most 1.02).
#
#   benches/align-validation.sh [DATA_DIR] [REPETITIONS] [PAIRS]
#
# DATA_DIR (default $BIOJOB_BENCH_DIR, else /tmp/biojob-bench-data) must be outside the work
# tree; when it has no sim_R1.fastq.gz, ../shared/testdata/make-bench-data.sh DATA_DIR PAIRS
# makes it (PAIRS default 100000). REPETITIONS (default 5) runs of each mode, alternating which
# goes first. "without" sets BIOJOB_FASTQ_VALIDATION=0, the benchmark switch that hands the
# FASTQ paths to bwa directly. Two figures per run: the align task's wall_seconds from the step
# manifest (staging, the fresh-index check and align: bwa mem | samtools sort, samtools index,
# BAM checks), and the CPU seconds (user + system) of the whole biojob process and its
# children from /usr/bin/time, which other load on the machine disturbs far less than wall
# time. biojob is built with the release profile. The load average is printed before and after.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${1:-${BIOJOB_BENCH_DIR:-/tmp/biojob-bench-data}}"
reps="${2:-5}"
pairs="${3:-100000}"
testdata="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
threads="${BIOJOB_THREADS:-2}"

"$root/scripts/install-tools.sh"
if [ ! -s "$data/sim_R1.fastq.gz" ]; then
  "$testdata/make-bench-data.sh" "$data" "$pairs"
fi
data="$(realpath "$data")"
(cd "$root" && cargo build --release --quiet -p biojob-cli)
biojob="$root/target/release/biojob"
work="$(mktemp -d "${TMPDIR:-/tmp}/biojob-align-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export BIOJOB_CACHE_DIR="$work/cache" BIOJOB_SCRATCH_DIR="$work/scratch" BIOJOB_LOG_FORMAT=text
"$biojob" -q prepare-reference --reference "$data/ref.fa" >/dev/null

run() { # mode repetition
  local mode="$1" rep="$2" out="$work/out-$1-$2"
  local env=()
  if [ "$mode" = without ]; then env=(BIOJOB_FASTQ_VALIDATION=0); fi
  env "${env[@]}" /usr/bin/time -f '%U %S' -o "$work/time-$mode-$rep" \
    "$biojob" -q align --sample SIM --reference "$data/ref.fa" \
    --fastq-1 "$data/sim_R1.fastq.gz" --fastq-2 "$data/sim_R2.fastq.gz" \
    --output-prefix "$out" --threads "$threads" >/dev/null
  python3 - "$out/SIM.align.manifest.json" "$work/time-$mode-$rep" <<'PY'
import json, sys
wall = json.load(open(sys.argv[1]))["task"]["wall_seconds"]
user, system = (float(x) for x in open(sys.argv[2]).read().split()[-2:])
print(f"{wall:.3f}/{user + system:.3f}")
PY
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
with=() without=()
for rep in $(seq 1 "$reps"); do
  if [ $((rep % 2)) -eq 1 ]; then order=(with without); else order=(without with); fi
  for mode in "${order[@]}"; do
    seconds="$(run "$mode" "$rep")"
    if [ "$mode" = with ]; then with+=("$seconds"); else without+=("$seconds"); fi
    echo "repetition $rep, $mode validation: wall/CPU $seconds s" >&2
    if [ "$mode" = with ]; then
      # Kept for the bam_stats bench: BIOJOB_BENCH_BAM=$data/SIM.align.bam cargo bench ...
      mv "$work/out-$mode-$rep/SIM.align.bam" "$data/SIM.align.bam"
    fi
    rm -rf "$work/out-$mode-$rep" "$work/scratch"
  done
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$threads" "${with[*]}" "${without[*]}" <<'PY'
import statistics, sys
threads, with_v, without_v = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print(f"align step, {len(with_v)} runs each, --threads {threads}")
for index, what in ((0, "wall"), (1, "CPU")):
    a = [float(x.split("/")[index]) for x in with_v]
    b = [float(x.split("/")[index]) for x in without_v]
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{what} with validation:    median {ma:.2f} s  ({', '.join(f'{x:.2f}' for x in a)})")
    print(f"{what} without validation: median {mb:.2f} s  ({', '.join(f'{x:.2f}' for x in b)})")
    print(f"{what} ratio with/without: {ma / mb:.4f}  (overhead {100 * (ma / mb - 1):+.2f} %; target <= +2 %)")
PY
