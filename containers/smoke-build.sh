#!/usr/bin/env bash
# A smoke build of the image without a Docker engine or network access to upstream: buildah
# (--isolation chroot) builds containers/Dockerfile with Debian's tools (TOOLS_SOURCE=debian)
# and a biojob binary built on this machine (BIOJOB_SOURCE=prebuilt), on a debian:bookworm-slim
# base made with debootstrap when none can be pulled; then runs `biojob --version` and
# `samtools --version` in the image and checks that it has no compiler and runs as non-root.
# Needs root (apt-get install buildah debootstrap). Not part of .ci/run (it takes minutes).
# debootstrap fetches from the machine's own Debian mirror: the first enabled `deb` source for
# bookworm in its apt sources (DEBIAN_MIRROR overrides it). `smoke-build.sh --print-mirror
# [APT_DIR]` prints that mirror (from APT_DIR instead of /etc/apt) and exits.
set -euo pipefail

# The URI of the first enabled `deb` source for suite $1 in the apt configuration under $2
# (default /etc/apt): sources.list and sources.list.d/*.list (one-line format, sources.list(5)),
# then sources.list.d/*.sources (deb822 format); nothing when there is none.
apt_mirror() {
  local suite="$1" dir="${2:-/etc/apt}" file found=""
  local -a one_line=() deb822=()
  for file in "$dir/sources.list" "$dir"/sources.list.d/*.list; do
    if [ -r "$file" ]; then one_line+=("$file"); fi
  done
  for file in "$dir"/sources.list.d/*.sources; do
    if [ -r "$file" ]; then deb822+=("$file"); fi
  done
  if [ "${#one_line[@]}" -gt 0 ]; then
    # deb [ options ] URI SUITE COMPONENT...
    found="$(awk -v suite="$suite" '
      { sub(/#.*/, "") }
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "${one_line[@]}")"
  fi
  if [ -z "$found" ] && [ "${#deb822[@]}" -gt 0 ]; then
    # Stanzas of "Key: value" lines, separated by blank lines; a line starting with a blank
    # continues the field above.
    found="$(awk -v suite="$suite" '
      function flush() {
        if (index(" " types " ", " deb ") && enabled != "no" && index(" " suites " ", " " suite " ")) {
          split(uris, uri, " ")
          if (uri[1] != "") { print uri[1]; done = 1 }
        }
        types = ""; uris = ""; suites = ""; enabled = "yes"; key = ""
      }
      BEGIN { enabled = "yes" }
      FNR == 1 && NR > 1 { flush() }
      done { exit }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { value = $0; gsub(/^[ \t]+|[ \t]+$/, "", value); field(key, value, 1); next }
      {
        key = tolower(substr($0, 1, index($0, ":") - 1))
        value = substr($0, index($0, ":") + 1)
        gsub(/^[ \t]+|[ \t]+$/, "", value)
        field(key, value, 0)
      }
      function field(name, text, more) {
        if (name == "types") types = more ? types " " text : text
        else if (name == "uris") uris = more ? uris " " text : text
        else if (name == "suites") suites = more ? suites " " text : text
        else if (name == "enabled") enabled = tolower(text)
      }
      END { if (!done) flush() }' "${deb822[@]}")"
  fi
  printf '%s' "$found"
}

if [ "${1:-}" = "--print-mirror" ]; then
  mirror="$(apt_mirror bookworm "${2:-/etc/apt}")"
  if [ -z "$mirror" ]; then
    echo "no enabled deb source for bookworm in ${2:-/etc/apt}" >&2
    exit 1
  fi
  echo "$mirror"
  exit 0
fi

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
  mirror="${DEBIAN_MIRROR:-$(apt_mirror bookworm)}"
  if [ -z "$mirror" ]; then
    echo "no enabled deb source for bookworm in /etc/apt/sources.list{,.d/*.list,.d/*.sources};" \
      "set DEBIAN_MIRROR to a Debian mirror's URI" >&2
    exit 1
  fi
  base="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$base/root" "$mirror" >/dev/null
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
