#!/usr/bin/env bash
# A smoke build of the image without a Docker engine or network access to upstream: buildah
# (--isolation chroot) builds containers/Dockerfile with Debian's tools (TOOLS_SOURCE=debian)
# and a biojob binary built on this machine (BIOJOB_SOURCE=prebuilt), on a debian:bookworm-slim
# base made with debootstrap when none can be pulled; then runs `biojob --version` and
# `samtools --version` in the image and checks that it has no compiler and runs as non-root.
# Needs root (apt-get install buildah debootstrap). Not part of .ci/run (it takes minutes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
for tool in buildah debootstrap; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null
    break
  fi
done
if ! buildah inspect --type image debian:bookworm-slim >/dev/null 2>&1; then
  base="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$base" >/dev/null
  tar -C "$base" -c . | buildah import - debian:bookworm-slim >/dev/null 2>&1 \
    || { tar -C "$base" -cf "$base.tar" . && buildah import "$base.tar" debian:bookworm-slim; }
  rm -rf "$base" "$base.tar"
fi
cargo build --quiet -p biojob-cli
install -D -m 0755 target/debug/biojob containers/prebuilt/biojob
# shellcheck disable=SC1091 # versions.env is data: KEY=value lines
. containers/versions.env
buildah bud --isolation chroot --layers \
  --file containers/Dockerfile --target runtime \
  --build-arg TOOLS_SOURCE=debian --build-arg BIOJOB_SOURCE=prebuilt \
  --build-arg DEBIAN_IMAGE=debian:bookworm-slim \
  --build-arg "HTSLIB_VERSION=$DEBIAN_HTSLIB_VERSION" \
  --build-arg "SAMTOOLS_VERSION=$DEBIAN_SAMTOOLS_VERSION" \
  --build-arg "BCFTOOLS_VERSION=$DEBIAN_BCFTOOLS_VERSION" \
  --build-arg "BWA_VERSION=$DEBIAN_BWA_VERSION" \
  --build-arg "VCS_REF=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --tag biojob:smoke .
container="$(buildah from biojob:smoke)"
trap 'buildah rm "$container" >/dev/null' EXIT
run() { buildah run --isolation chroot "$container" -- "$@"; }
run biojob --version
run samtools --version | head -n 2
run sh -c 'if command -v cc gcc >/dev/null; then echo "a compiler is in the image" >&2; exit 1; fi'
test "$(run id -u)" = 10001
buildah inspect --format '{{index .OCIv1.Config.Entrypoint 0}} {{.OCIv1.Config.User}}' biojob:smoke
echo "smoke build ok: biojob:smoke"
