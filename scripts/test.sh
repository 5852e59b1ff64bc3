#!/usr/bin/env bash
# Runs every test: installs the tools the tests use when missing, then the workspace's tests
# against the real data in BIOJOB_TESTDATA (default ../shared/testdata).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-tools.sh"
BIOJOB_TESTDATA="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
export BIOJOB_TESTDATA
cd "$root"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
