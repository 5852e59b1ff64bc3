#!/usr/bin/env bash
# Tests the image built by containers/build-image.sh:
#  1. builds the Dockerfile's `test` target (the workspace with the image's own tools) and runs
#     biojob's tests in it against the test data;
#  2. runs the runtime image as it runs on Batch: --version, the tools' versions (compared with
#     containers/versions.env), no compiler, non-root, and a whole workflow on the test data.
#   buildspecs/scripts/test-image.sh IMAGE
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
image="${1:?usage: test-image.sh IMAGE}"
testdata="$("$root/buildspecs/scripts/fetch-testdata.sh")"
# shellcheck disable=SC1091 # versions.env is data: KEY=value lines
. "$root/containers/versions.env"

echo "== tests inside the image's toolchain"
TARGET="test" "$root/containers/build-image.sh" "$image-test"
docker run --rm -v "$testdata:/testdata:ro" "$image-test" \
  cargo test --workspace --all-targets --locked

echo "== the runtime image"
docker run --rm "$image" --version
versions="$(docker run --rm --entrypoint samtools "$image" --version)"
echo "$versions" | grep -qx "samtools $SAMTOOLS_VERSION"
echo "$versions" | grep -qx "Using htslib $HTSLIB_VERSION"
docker run --rm --entrypoint bcftools "$image" --version | grep -qx "bcftools $BCFTOOLS_VERSION"
docker run --rm --entrypoint bwa "$image" 2>&1 | grep -q "^Version: $BWA_VERSION"
# The launcher names the binary it picked for this CPU on stderr; the version is on stdout.
test "$(docker run --rm --entrypoint bwa-mem2 "$image" version)" = "$BWA_MEM2_VERSION"
test "$(docker run --rm --entrypoint id "$image" -u)" != 0
if docker run --rm --entrypoint sh "$image" -c 'command -v cc gcc cargo'; then
  echo "test-image: a compiler is left in the runtime image" >&2
  exit 1
fi

echo "== a whole workflow in the runtime image"
out="$(mktemp -d)"
chmod 0777 "$out"
cat >"$out/input.json" <<'JSON'
{"params": {"queue": "local",
            "environment": {"REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878",
                            "SOURCE_DATA_PREFIX": "/testdata",
                            "JOB_OUTPUT_PREFIX": "/out/results"},
            "chromosomes": ["chr20", "chr22", "chrM"]}}
JSON
docker run --rm -v "$testdata:/testdata:ro" -v "$out:/out" -e BIOJOB_CACHE_DIR=/out/cache \
  "$image" run --input /out/input.json --run-id image-test
test -s "$out/results/NA12878/image-test/NA12878.vcf.gz"
echo "image ok: $image"
