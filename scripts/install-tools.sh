#!/usr/bin/env bash
# Installs the genomics tools biojob runs (Debian packages) when any is missing.
set -euo pipefail
missing=()
for tool in bwa samtools bcftools tabix; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
echo "installing from Debian: bwa samtools bcftools tabix (missing: ${missing[*]})" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bwa samtools bcftools tabix >/dev/null
