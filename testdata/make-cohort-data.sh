#!/usr/bin/env bash
# Makes a two-sample cohort from the real test data, at test time (never committed):
#   - NA12878 in 21 lanes: its FASTQ pair split by read name (`@<flowcell><date>:<lane>:...`)
#     into the 16 lanes of flowcells 20FUKAAXX100202 and 20GAVAAXX100126 (chr20), the 4 lanes
#     of C0D8DACXX (chrM), and one file of the chr22 reads (names from a CRAM slice, no lane);
#     each file keeps the records' order, so R1 and R2 stay paired;
#   - SIM: 30,000 read pairs simulated from ref.fa by wgsim (seed 7, 2x100 bp, SNVs only at
#     rate 0.002), its planted variants in SIM_mutations.txt (contig, position, reference base,
#     alternate base or IUPAC code for a heterozygous SNV, '+' one haplotype or '-' both);
#   - samplesheet.csv: sample,lane,fastq_1,fastq_2,library,platform_unit with paths relative
#     to it, NA12878's lanes in file order, then SIM (platform unit SIMFC.1 given in the sheet).
# Usage: make-cohort-data.sh OUTDIR   (reads $BIOJOB_TESTDATA, default ../shared/testdata beside
# the repository). Tools: zcat, gzip, awk, wgsim (Debian: samtools).
set -euo pipefail
export LC_ALL=C
out="${1:?usage: make-cohort-data.sh OUTDIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${BIOJOB_TESTDATA:-$here/../../shared/testdata}"
for tool in zcat gzip awk wgsim; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 3; }
done
mkdir -p "$out"
rm -f "$out"/*.fastq "$out"/*.fastq.gz

# 1. NA12878 by lane: the name's first two colon-separated fields name the flowcell and lane.
for mate in 1 2; do
  zcat "$data/NA12878_R$mate.fastq.gz" | awk -v out="$out" -v mate="$mate" '
    NR % 4 == 1 {
      split(substr($1, 2), f, ":")
      if (f[1] ~ /^chr22/) file = out "/chr22_R" mate ".fastq"
      else file = out "/" f[1] "_L" f[2] "_R" mate ".fastq"
    }
    { print > file }'
done
for fastq in "$out"/*.fastq; do gzip -n -f "$fastq"; done

# 2. SIM: simulated from the reference, SNVs only.
wgsim -S 7 -N 30000 -1 100 -2 100 -r 0.002 -R 0 -X 0 -e 0.001 \
  "$data/ref.fa" "$out/SIM_R1.fastq" "$out/SIM_R2.fastq" > "$out/SIM_mutations.txt" 2> "$out/wgsim.log"
gzip -n -f "$out/SIM_R1.fastq" "$out/SIM_R2.fastq"

# 3. The sheet.
{
  echo "sample,lane,fastq_1,fastq_2,library,platform_unit"
  for flowcell in 20FUKAAXX100202 20GAVAAXX100126 C0D8DACXX; do
    for r1 in "$out/${flowcell}"_L*_R1.fastq.gz; do
      name="$(basename "$r1" _R1.fastq.gz)"
      lane="${name#"${flowcell}"_L}"
      echo "NA12878,${flowcell}.${lane},${name}_R1.fastq.gz,${name}_R2.fastq.gz,,"
    done
  done
  echo "NA12878,chr22,chr22_R1.fastq.gz,chr22_R2.fastq.gz,,"
  echo "SIM,1,SIM_R1.fastq.gz,SIM_R2.fastq.gz,SIMLIB,SIMFC.1"
} > "$out/samplesheet.csv"
