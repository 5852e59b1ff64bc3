#!/usr/bin/env bash
# Runs every test: installs the tools the tests use when missing (bwa, samtools, bcftools,
# tabix, and Debian's chromium for the test that renders report.html headless), then the
# workspace's tests against the real data in BIOJOB_TESTDATA (default ../shared/testdata).
# The render test fails, it does not skip, when no Chromium runs (BIOJOB_CHROMIUM names
# another binary).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-tools.sh"
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
