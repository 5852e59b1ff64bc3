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
base_image=docker.io/library/debian:bookworm-slim
if ! buildah inspect --type image "$base_image" >/dev/null 2>&1; then
  # No registry: a debootstrapped bookworm, added to an empty image (buildah add unpacks it).
  base="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$base/root" http://deb.debian.org/debian >/dev/null
  tar -C "$base/root" -cf "$base/root.tar" .
  container="$(buildah from scratch)"
  buildah add --quiet "$container" "$base/root.tar" /
  buildah config --cmd /bin/bash "$container"
  buildah commit --quiet "$container" "$base_image" >/dev/null
  buildah rm "$container" >/dev/null
  rm -rf "$base"
fi
cargo build --quiet -p biojob-cli
install -D -m 0755 target/debug/biojob containers/prebuilt/biojob
# shellcheck disable=SC1091 # versions.env is data: KEY=value lines
. containers/versions.env
buildah bud --isolation chroot --layers \
  --file containers/Dockerfile --target runtime \
  --build-arg TOOLS_SOURCE=debian --build-arg BIOJOB_SOURCE=prebuilt \
  --pull=false --build-arg "DEBIAN_IMAGE=$base_image" \
  --build-arg "HTSLIB_VERSION=$DEBIAN_HTSLIB_VERSION" \
  --build-arg "SAMTOOLS_VERSION=$DEBIAN_SAMTOOLS_VERSION" \
  --build-arg "BCFTOOLS_VERSION=$DEBIAN_BCFTOOLS_VERSION" \
  --build-arg "BWA_VERSION=$DEBIAN_BWA_VERSION" \
  --build-arg "BWA_MEM2_VERSION=none" \
  --build-arg "VCS_REF=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg "BIOJOB_VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)" \
  --tag biojob:smoke .
container="$(buildah from biojob:smoke)"
trap 'buildah rm "$container" >/dev/null' EXIT
run() { buildah run --isolation chroot "$container" -- "$@"; }
run biojob --version
run samtools --version | head -n 2
run sh -c 'if command -v cc gcc >/dev/null; then echo "a compiler is in the image" >&2; exit 1; fi'
test "$(run id -u)" = 10001
buildah inspect --format '{{index .OCIv1.Config.Entrypoint 0}} {{.OCIv1.Config.User}}' biojob:smoke
echo
# A whole workflow in the image, when the test data is here.
testdata="${BIOJOB_TESTDATA:-$root/../shared/testdata}"
if [ -r "$testdata/ref.fa" ]; then
  out="$(mktemp -d)"
  chmod 0777 "$out"
  cat >"$out/input.json" <<'JSON'
{"params": {"queue": "local",
            "environment": {"REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878",
                            "SOURCE_DATA_PREFIX": "/testdata", "JOB_OUTPUT_PREFIX": "/out/results"},
            "chromosomes": ["chr20", "chr22", "chrM"]}}
JSON
  buildah run --isolation chroot -v "$(realpath "$testdata"):/testdata:ro" -v "$out:/out" \
    -e BIOJOB_CACHE_DIR=/out/cache "$container" -- biojob -q run --input /out/input.json --run-id smoke
  test -s "$out/results/NA12878/smoke/NA12878.vcf.gz"
  rm -rf "$out"
fi
echo "smoke build ok: biojob:smoke"
