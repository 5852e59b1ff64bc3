#!/usr/bin/env bash
# What aligning one read pair costs with bwa and with bwa-mem2, against the 4.5 Mb benchmark
# reference and against the whole of GRCh37 chr20 (63 Mb), for the planning model: CPU and wall
# microseconds per pair, medians and spreads over interleaved repetitions, the aligners' peak
# RSS, and the machine's load average (/proc/loadavg) around every run. Also checks that both
# aligners write the same SAM records (their @PG lines aside) on both references.
#
#   benches/aligner-cost.sh [--pairs N] [--reps N] [--threads N] [DATA_DIR]
#
# Data (made once in DATA_DIR, default /tmp/biojob-aligner-cost-PAIRS, outside the work tree):
#   bench/  ../shared/testdata/make-bench-data.sh bench PAIRS: four slices of GRCh37 chr20
#           (4.5 Mb) and PAIRS wgsim pairs of 2 x 150 bp (seed 11);
#   chr20/  the whole of GRCh37 chr20 (20.fa.gz of Debian's vt-examples: from the installed
#           package, else `apt-get download vt-examples`) and PAIRS pairs simulated from it with
#           the same wgsim settings and seed.
# Each reference gets a bwa and a bwa-mem2 index (built once; the build's CPU time and peak RSS
# are kept beside it and printed). A run is `ALIGNER mem -t THREADS -K 10000000 PREFIX R1 R2`
# (biojob's arguments, without the read group) timed by /usr/bin/time; its SAM goes through
# `grep -v ^@PG | md5sum`, not to disk. --pairs (default 200000), --reps (default 3; the order of
# the four runs reverses on every other repetition), --threads (default: the CPUs available).
# Needs bwa, bwa-mem2, samtools (wgsim), tabix (bgzip) (scripts/install-tools.sh), python3,
# /usr/bin/time. The load average is printed because this machine is shared: CPU time per pair
# depends far less on other load than wall time does.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pairs=200000
reps=3
threads="$(nproc)"
data=""
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    -*) echo "usage: benches/aligner-cost.sh [--pairs N] [--reps N] [--threads N] [DATA_DIR]" >&2; exit 2 ;;
    *) data="$1" ;;
  esac
  shift
done
data="${data:-/tmp/biojob-aligner-cost-$pairs}"
testdata="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
bwa="${BIOJOB_BWA:-bwa}"
bwa_mem2="${BIOJOB_BWA_MEM2:-bwa-mem2}"
export LC_ALL=C

"$root/scripts/install-tools.sh"
mkdir -p "$data"
data="$(realpath "$data")"
case "$data/" in "$root"/*) echo "aligner-cost: DATA_DIR $data is inside the work tree" >&2; exit 2 ;; esac
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average at start: $(load)" >&2

# ---- data ---------------------------------------------------------------------------------
if [ ! -s "$data/bench/sim_R2.fastq.gz" ]; then
  "$testdata/make-bench-data.sh" "$data/bench" "$pairs" >&2
fi
chr20="$data/chr20"
if [ ! -s "$chr20/sim_R2.fastq.gz" ]; then
  mkdir -p "$chr20/src"
  vt_file=/usr/share/doc/vt/examples/ref/20.fa.gz
  if [ -s "$vt_file" ]; then
    cp "$vt_file" "$chr20/src/20.fa.gz"
  else
    (cd "$chr20/src" && apt-get download vt-examples >&2)
    dpkg-deb --fsys-tarfile "$chr20"/src/vt-examples_*.deb |
      tar -xO ./usr/share/doc/vt/examples/ref/20.fa.gz >"$chr20/src/20.fa.gz"
  fi
  zcat "$chr20/src/20.fa.gz" >"$chr20/ref.fa"
  samtools faidx "$chr20/ref.fa"
  # make-bench-data.sh's wgsim settings and seed.
  wgsim -S 11 -N "$pairs" -1 150 -2 150 -d 400 -s 50 -e 0.005 -r 0.001 -R 0.15 -X 0.3 \
    "$chr20/ref.fa" "$chr20/src/R1.fq" "$chr20/src/R2.fq" >/dev/null 2>"$chr20/src/wgsim.log"
  bgzip -@ "$threads" -c "$chr20/src/R1.fq" >"$chr20/sim_R1.fastq.gz"
  bgzip -@ "$threads" -c "$chr20/src/R2.fq" >"$chr20/sim_R2.fastq.gz.partial"
  mv "$chr20/sim_R2.fastq.gz.partial" "$chr20/sim_R2.fastq.gz"
  rm -rf "$chr20/src"
fi
references=(bench chr20)

# ---- indexes (untimed for the runs; their own cost is recorded once) ------------------------
program() { if [ "$1" = bwa ]; then echo "$bwa"; else echo "$bwa_mem2"; fi; }
for reference in "${references[@]}"; do
  for aligner in bwa bwa-mem2; do
    index="$data/$reference/index-$aligner"
    if [ ! -s "$index/build.time" ]; then
      rm -rf "$index" && mkdir -p "$index"
      echo "building the $aligner index of $reference (load average $(load))" >&2
      /usr/bin/time -f '%e %U %S %M' -o "$index/build.time.partial" \
        "$(program "$aligner")" index -p "$index/ref.fa" "$data/$reference/ref.fa" >/dev/null 2>"$index/build.log"
      mv "$index/build.time.partial" "$index/build.time"
    fi
  done
done

# ---- runs -----------------------------------------------------------------------------------
results="$(mktemp)"
trap 'rm -f "$results" "$results.time"' EXIT
runs=()
for reference in "${references[@]}"; do
  for aligner in bwa bwa-mem2; do runs+=("$reference:$aligner"); done
done
for rep in $(seq 1 "$reps"); do
  order=("${runs[@]}")
  if [ $((rep % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#runs[@]} - 1; i >= 0; i--)); do order+=("${runs[i]}"); done
  fi
  for run in "${order[@]}"; do
    reference="${run%%:*}" aligner="${run#*:}"
    before="$(load)"
    digest="$(/usr/bin/time -f '%e %U %S %M' -o "$results.time" \
      "$(program "$aligner")" mem -t "$threads" -K 10000000 "$data/$reference/index-$aligner/ref.fa" \
      "$data/$reference/sim_R1.fastq.gz" "$data/$reference/sim_R2.fastq.gz" 2>/dev/null |
      grep -v '^@PG' | md5sum | cut -d' ' -f1)"
    echo "$reference $aligner $rep $(cat "$results.time") $digest ${before// /,} $(load | tr ' ' ,)" >>"$results"
    echo "repetition $rep: $reference $aligner: $(cut -d' ' -f1-3 "$results.time") (wall user sys s); load $before -> $(load)" >&2
  done
done

python3 - "$results" "$data" "$pairs" "$threads" "$reps" <<'PY'
import statistics, sys
results, data, pairs, threads, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [line.split() for line in open(results)]
def fai_bases(reference):
    return sum(int(line.split("\t")[1]) for line in open(f"{data}/{reference}/ref.fa.fai"))
def spread(values):
    return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"
print(f"aligner cost: {pairs} pairs x 2 x 150 bp (wgsim, seed 11), mem -t {threads} -K 10000000, "
      f"{reps} repetitions, order reversed every other one")
print(f"{'reference':<22} {'aligner':<9} {'CPU us/pair median (min-max)':<30} "
      f"{'wall us/pair median (min-max)':<31} {'peak RSS MiB':>12}")
cpu_median = {}
for reference in ("bench", "chr20"):
    label = f"{reference} {fai_bases(reference) / 1e6:.1f} Mb"
    for aligner in ("bwa", "bwa-mem2"):
        runs = [r for r in rows if r[0] == reference and r[1] == aligner]
        cpu = [(float(r[4]) + float(r[5])) / pairs * 1e6 for r in runs]
        wall = [float(r[3]) / pairs * 1e6 for r in runs]
        rss = max(int(r[6]) for r in runs) / 1024
        cpu_median[reference, aligner] = statistics.median(cpu)
        print(f"{label:<22} {aligner:<9} {spread(cpu):<30} {spread(wall):<31} {rss:12.0f}")
for reference in ("bench", "chr20"):
    ratio = cpu_median[reference, "bwa-mem2"] / cpu_median[reference, "bwa"]
    digests = {r[7] for r in rows if r[0] == reference}
    same = "identical" if len(digests) == 1 else f"DIFFERENT ({len(digests)} digests)"
    print(f"{reference}: CPU per pair bwa-mem2 / bwa = {ratio:.3f}; SAM records (@PG aside) of all runs: {same}")
for aligner in ("bwa", "bwa-mem2"):
    ratio = cpu_median["chr20", aligner] / cpu_median["bench", aligner]
    print(f"{aligner}: CPU per pair chr20 / bench = {ratio:.3f}")
print("index builds (once; wall, CPU s, peak RSS MiB, bytes of peak RSS per reference base):")
for reference in ("bench", "chr20"):
    for aligner in ("bwa", "bwa-mem2"):
        wall, user, system, rss = open(f"{data}/{reference}/index-{aligner}/build.time").read().split()[-4:]
        print(f"  {reference:<6} {aligner:<9} {float(wall):7.1f} {float(user) + float(system):7.1f} "
              f"{int(rss) / 1024:8.0f} {int(rss) * 1024 / fai_bases(reference):6.1f}")
loads = [float(x) for r in rows for x in r[8].split(",")[:1] + r[9].split(",")[:1]]
print(f"load average (1 min) around the runs: median {statistics.median(loads):.2f}, "
      f"{min(loads):.2f}-{max(loads):.2f}, on {threads} threads")
PY
echo "load average at end: $(load)" >&2
