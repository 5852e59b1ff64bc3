#!/usr/bin/env bash
# Builds the biojob image with Docker (or another builder that takes `docker build`
# arguments, via CONTAINER_BUILDER), passing containers/versions.env as build arguments.
#
#   containers/build-image.sh TAG [extra build arguments...]
#
# Environment: CONTAINER_BUILDER (default docker), TARGET (default runtime; "test" for the
# test image), VCS_REF (default: git HEAD), SOURCE_URL.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:?usage: containers/build-image.sh TAG [extra build arguments...]}"
shift
# shellcheck disable=SC1091 # versions.env is data: KEY=value lines
. "$root/containers/versions.env"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
vcs_ref="${VCS_REF:-$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)}"
builder="${CONTAINER_BUILDER:-docker}"
set -x
"$builder" build \
  --file "$root/containers/Dockerfile" \
  --target "${TARGET:-runtime}" \
  --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
  --build-arg "RUST_IMAGE=$RUST_IMAGE" \
  --build-arg "BIOJOB_VERSION=$version" \
  --build-arg "VCS_REF=$vcs_ref" \
  --build-arg "SOURCE_URL=${SOURCE_URL:-https://github.com/biojob/biojob}" \
  --build-arg "HTSLIB_VERSION=$HTSLIB_VERSION" \
  --build-arg "SAMTOOLS_VERSION=$SAMTOOLS_VERSION" \
  --build-arg "BCFTOOLS_VERSION=$BCFTOOLS_VERSION" \
  --build-arg "BWA_VERSION=$BWA_VERSION" \
  --build-arg "BWA_MEM2_VERSION=$BWA_MEM2_VERSION" \
  --tag "$tag" \
  "$@" \
  "$root"
