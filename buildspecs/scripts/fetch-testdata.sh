#!/usr/bin/env bash
# Prints the directory of the test data set: BIOJOB_TESTDATA when set, else a copy of
# TESTDATA_URI (s3://...) in ../shared/testdata (where scripts/test.sh looks by default).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -n "${BIOJOB_TESTDATA:-}" ]; then
  realpath "$BIOJOB_TESTDATA"
  exit 0
fi
uri="${TESTDATA_URI:?set BIOJOB_TESTDATA or TESTDATA_URI (s3:// prefix of the test data)}"
target="$root/../shared/testdata"
mkdir -p "$target"
aws s3 sync --only-show-errors "$uri" "$target" >&2
realpath "$target"
